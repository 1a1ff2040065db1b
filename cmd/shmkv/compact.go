package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/store"
)

// exitInterrupted is compact's exit code when SIGINT stopped it: 128 plus
// the signal's number, what a shell reports for a process SIGINT killed.
const exitInterrupted = 130

// compactStepHook, when set (by tests), is called after each compaction
// transaction with the context that SIGINT cancels.
var compactStepHook func(ctx context.Context, p store.CompactProgress)

// compact runs Store.Compact, with a progress bar on stderr when stderr is a
// terminal, and prints what it changed in one line. SIGINT stops it between
// two transactions: what moved stays moved, and the store is consistent.
func (c *cli) compact(args []string) error {
	if _, err := c.parse(c.flags("compact"), args, 0, 0); err != nil {
		return err
	}
	s, err := c.open(false) // never creates the store
	if err != nil {
		return err
	}
	defer s.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// After the first SIGINT, a second one kills the process as usual (a
	// killed writer leaves the store consistent too).
	context.AfterFunc(ctx, stop)

	before := s.Stats()
	tty := isTerminal(c.stderr)
	var bar *progressbar.ProgressBar
	var drawn time.Time
	start := time.Now()
	p, err := s.CompactWithProgress(ctx, func(p store.CompactProgress) {
		if tty && bar == nil && p.Total > 0 {
			bar = newCompactBar(c.stderr, p.Total)
		}
		// Throttled here, not by the bar: Describe and Set64 each draw
		// it, and the second must not be skipped.
		if bar != nil && time.Since(drawn) >= barInterval {
			bar.Describe(compactDescription(p))
			bar.Set64(p.Done)
			drawn = time.Now()
		}
		if compactStepHook != nil {
			compactStepHook(ctx, p)
		}
	})
	took := time.Since(start)
	if bar != nil {
		if err == nil {
			bar.Finish() // clears the bar (OptionClearOnFinish)
		} else {
			bar.Exit()
			bar.Clear()
		}
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return &codeError{code: exitInterrupted, msg: fmt.Sprintf(
			"shmkv: store %q: compact interrupted (%v) after %s, having moved %s in %s; the store is consistent and what moved stays moved; run compact again to finish",
			c.name, context.Cause(ctx), roundDuration(took), units.FormatBytes(p.Moved), counted(uint64(p.Entries), "entry", "entries"))}
	}
	if err != nil && p.Entries > 0 {
		return failed(fmt.Sprintf("compact, after moving %s in %s", units.FormatBytes(p.Moved), counted(uint64(p.Entries), "entry", "entries")), err)
	}
	if err != nil {
		return failed("compact", err)
	}
	after := s.Stats()
	_, err = fmt.Fprintf(c.stdout, "moved %s in %s; fragmentation %.1f%% -> %.1f%%; largest free piece %s -> %s; took %s\n",
		units.FormatBytes(p.Moved), counted(uint64(p.Entries), "entry", "entries"),
		100*before.Fragmentation, 100*after.Fragmentation,
		units.FormatBytes(before.LargestFree), units.FormatBytes(after.LargestFree),
		roundDuration(took))
	return err
}

// barInterval is how often compact redraws its progress bar.
const barInterval = 100 * time.Millisecond

// newCompactBar is the progress bar of a compaction over total heap bytes:
// bytes passed of total, rate, elapsed and time left, and (in the
// description) what was moved. It is erased when done, for the summary
// line.
func newCompactBar(w io.Writer, total int64) *progressbar.ProgressBar {
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(compactDescription(store.CompactProgress{})),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionClearOnFinish(),
	)
	bar.StartWithoutRender()
	return bar
}

func compactDescription(p store.CompactProgress) string {
	return fmt.Sprintf("compacting: moved %s, %s ", units.FormatBytes(p.Moved), counted(uint64(p.Entries), "entry", "entries"))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// roundDuration keeps three or so significant digits.
func roundDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
