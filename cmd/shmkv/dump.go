package main

// dump, load, backup and restore: a store to a file and back, while other
// processes keep using it (see store/snapshot.go for the snapshot, and
// store/dump.go and store/backup.go for the formats).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/shmkv/shmkv/internal/units"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/shmkv/shmkv/store"
)

// transferHook, when set (by tests), is called with each progress report
// of a dump, load, backup or restore, and the context SIGINT cancels.
var transferHook func(ctx context.Context, p store.Progress)

func (c *cli) dump(args []string) error {
	rest, err := c.parse(c.flags("dump"), args, 0, 1)
	if err != nil {
		return err
	}
	return c.snapshotTo("dump", argOr(rest, "-"), func(ctx context.Context, s *store.Store, w io.Writer, fn func(store.Progress)) (store.Progress, error) {
		return s.DumpContext(ctx, w, fn)
	})
}

func (c *cli) backup(args []string) error {
	rest, err := c.parse(c.flags("backup"), args, 1, 1)
	if err != nil {
		return err
	}
	return c.snapshotTo("backup", rest[0], func(ctx context.Context, s *store.Store, w io.Writer, fn func(store.Progress)) (store.Progress, error) {
		return s.BackupContext(ctx, w, fn)
	})
}

func argOr(rest []string, def string) string {
	if len(rest) > 0 {
		return rest[0]
	}
	return def
}

// snapshotTo runs a dump or a backup of the store into target (a file, or
// "-" for stdout). A file is written under a temporary name beside it,
// synced, and renamed into place only when complete: a failed or
// interrupted run leaves target as it was.
func (c *cli) snapshotTo(what, target string, run func(context.Context, *store.Store, io.Writer, func(store.Progress)) (store.Progress, error)) error {
	if target == "-" && isTerminal(c.stdout) {
		return usagef("refusing to write a binary %s to a terminal: give a FILE, or redirect stdout", what)
	}
	s, err := c.open(false) // never creates the store
	if err != nil {
		return err
	}
	defer s.Close()
	var out *outputFile
	var w io.Writer = c.stdout
	if target != "-" {
		if out, err = createOutput(target); err != nil {
			// Its own message: not errLine's hint for a missing store.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return &codeError{code: exitError, msg: fmt.Sprintf("shmkv: store %q: %s: cannot write %s: %v", c.name, what, target, diskHint(err))}
		}
		defer out.abort() // after commit, a no-op
		w = out
	}
	ctx, stop := interruptible()
	defer stop()
	bar := c.newBar(what + "ing")
	start := time.Now()
	p, err := run(ctx, s, w, bar.update(ctx))
	bar.done(err == nil)
	took := time.Since(start)
	where := "stdout"
	if out != nil {
		where = target
		if err == nil {
			err = out.commit()
		}
	}
	if err != nil {
		left := ""
		if out != nil {
			left = fmt.Sprintf("; %s was left as it was", target)
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return &codeError{code: exitInterrupted, msg: fmt.Sprintf("shmkv: store %q: %s interrupted (%v) after %s%s; the store is unharmed",
				c.name, what, context.Cause(ctx), roundDuration(took), left)}
		}
		return fmt.Errorf("%s to %s: %w%s", what, where, c.cause(what, diskHint(err)), left)
	}
	if out == nil {
		return nil
	}
	_, err = fmt.Fprintf(c.stdout, "%s of %s written to %s: %s in %s (%s/s)\n",
		what, counted(uint64(p.Keys), "key", "keys"), target,
		units.FormatBytes(p.Written), roundDuration(took), units.FormatBytes(int64(float64(p.Written)/max(took.Seconds(), 1e-9))))
	return err
}

// cause drops from err's message what the CLI says already: the store's
// "OP NAME: " and "OP: " (errLine names the store once). errors.Is still
// sees every cause.
func (c *cli) cause(op string, err error) error {
	msg := err.Error()
	// The line names the store and the operation already: keep only what
	// went wrong, without the sentinel's "shmkv: ".
	if se := (*store.Error)(nil); errors.As(err, &se) {
		msg = se.Err.Error()
	}
	for _, p := range []string{op + " " + c.name + ": ", op + ": ", "shmkv: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return &causeError{msg: msg, err: err}
}

type causeError struct {
	msg string
	err error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.err }

// diskHint adds what a full disk means to a write error.
func diskHint(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w (the disk is full: make room, or write elsewhere)", err)
	}
	if errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w (over the disk quota)", err)
	}
	return err
}

// outputFile is a file being written under a temporary name in its
// directory, renamed over its name by commit.
type outputFile struct {
	f    *os.File
	bw   *bufio.Writer
	path string
	done bool
}

func createOutput(path string) (*outputFile, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return nil, err
	}
	return &outputFile{f: f, bw: bufio.NewWriterSize(f, 1<<20), path: path}, nil
}

func (o *outputFile) Write(b []byte) (int, error) { return o.bw.Write(b) }

// commit flushes, syncs and renames the file into place, and syncs its
// directory, so that it survives a crash or a reboot right after.
func (o *outputFile) commit() error {
	err := o.bw.Flush()
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.f.Name())
		o.done = true
		return diskHint(err)
	}
	o.done = true
	if d, err := os.Open(filepath.Dir(o.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (o *outputFile) abort() {
	if !o.done {
		o.f.Close()
		os.Remove(o.f.Name())
		o.done = true
	}
}

// openInput opens what a load or restore reads: a file, or stdin for "-".
// size is the file's length, or 0 when unknown.
func (c *cli) openInput(op, what, src string) (r io.Reader, size int64, closeFn func(), err error) {
	if src == "-" {
		if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return nil, 0, nil, usagef("refusing to read a %s from a terminal: give a FILE, or redirect stdin", what)
		}
		return c.stdin, 0, func() {}, nil
	}
	// A file that cannot be read is exit 3 with its own message: not the
	// hint for a missing store that errLine gives fs.ErrNotExist.
	cannot := func(why string) error {
		return &codeError{code: exitError, msg: fmt.Sprintf("shmkv: store %q: %s: cannot read %s: %s", c.name, op, src, why)}
	}
	f, err := os.Open(src)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, 0, nil, cannot(pe.Err.Error())
		}
		return nil, 0, nil, cannot(err.Error())
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		f.Close()
		return nil, 0, nil, cannot("it is a directory")
	}
	if err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return bufio.NewReaderSize(f, 1<<20), size, func() { f.Close() }, nil
}

func (c *cli) load(args []string) error {
	fl := c.flags("load")
	replace := fl.Bool("replace", false, "load into a new store and swap it in under the name only once the whole dump is in: until then the name is the old store (or nothing)")
	merge := fl.Bool("merge", false, "load into the store if it exists: the dump's keys overwrite its own, others stay")
	var size, maxSize, entries int64
	fl.Func("size", "create the store with `SIZE` bytes, such as 256M or 1G (default: the dumped store's initial size). "+
		"It keeps the dumped store's maximum size, or this size if that is smaller", func(v string) error {
		n, err := parseStoreSize(v)
		size = n
		return err
	})
	fl.Func("max-size", "let the store grow to `SIZE` bytes (default: the dumped store's maximum size); below the dumped store's size without --size, the store starts at it", func(v string) error {
		n, err := parseSizeFlag("max-size", v)
		maxSize = n
		return err
	})
	fl.Func("entries", "create the store to hold at most `N` keys (default: the dumped store's)", func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want a count >= 0")
		}
		entries = n
		return nil
	})
	rest, err := c.parse(fl, args, 0, 1)
	if err != nil {
		return err
	}
	if *replace && *merge {
		return usagef("--replace and --merge exclude each other")
	}
	if size != 0 && maxSize != 0 && size > maxSize {
		return maxBelowSize(maxSize, size)
	}
	src := argOr(rest, "-")
	in, total, closeIn, err := c.openInput("load", "dump", src)
	if err != nil {
		return err
	}
	defer closeIn()
	d, err := store.NewDumpReader(in)
	if err != nil {
		return fmt.Errorf("load from %s: %w", inputName(src), c.cause("load", err))
	}
	o := loadOptions(d.Header().Options, size, maxSize)
	if entries != 0 {
		o.MaxEntries = entries
	}
	o.WriteTimeout = c.timeout
	ctx, stop := interruptible()
	defer stop()
	bar := c.newBar("loading")
	start := time.Now()
	p, err := store.Load(ctx, c.name, d, &store.LoadOptions{Options: &o, Replace: *replace, Merge: *merge, Progress: func(p store.Progress) {
		p.TotalBytes = total
		bar.update(ctx)(p)
	}})
	bar.done(err == nil)
	took := time.Since(start)
	if err != nil {
		switch {
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			kept := "; the store it was loading was removed"
			switch {
			case *replace:
				kept = "; the store was not replaced"
			case *merge:
				kept = fmt.Sprintf("; the store holds the %s loaded before", counted(uint64(p.Keys), "key", "keys"))
			}
			return &codeError{code: exitInterrupted, msg: fmt.Sprintf("shmkv: store %q: load interrupted (%v) after %s%s", c.name, context.Cause(ctx), roundDuration(took), kept)}
		case errors.Is(err, fs.ErrExist):
			return fmt.Errorf("load: the store exists: load with --replace to swap in a new store built from the dump, or --merge to put the dump's keys into it")
		case isShmFull(err, &o) && strings.Contains(err.Error(), "do not fit in"):
			return c.shmFull(o.Size, err)
		}
		return fmt.Errorf("load from %s: %w", inputName(src), c.cause("load", err))
	}
	verb := "loaded"
	if *replace {
		verb = "loaded, and swapped in,"
	}
	_, err = fmt.Fprintf(c.stdout, "%s %s (%s read) from %s in %s (%s keys/s)\n", verb, counted(uint64(p.Keys), "key", "keys"),
		units.FormatBytes(p.Bytes), inputName(src), roundDuration(took), formatRate(float64(p.Keys)/max(took.Seconds(), 1e-9)))
	return err
}

// loadOptions are the options load creates the store with: the dumped
// store's (dumped), with --size and --max-size (0 when not given). A store
// keeps the dumped one's maximum size unless --max-size says otherwise, so
// that a store that grew grows again; --size above that maximum (a fixed
// store's, which is its size) raises it to --size, as a user who asks for
// that size expects, rather than failing on a maximum they never set; and
// --max-size below the dumped size, without --size, starts the store at
// --max-size. REQUIRES: size <= maxSize when both are given.
func loadOptions(dumped store.Options, size, maxSize int64) store.Options {
	o := dumped
	if size != 0 {
		o.Size = size
	}
	switch {
	case maxSize != 0:
		o.MaxSize = maxSize
		o.Size = min(o.Size, maxSize)
	case o.MaxSize != 0:
		// A dump of format 1 has no maximum (0): the library's default,
		// Size, keeps the store fixed as its source was.
		o.MaxSize = max(o.MaxSize, o.Size)
	}
	return o
}

func inputName(src string) string {
	if src == "-" {
		return "stdin"
	}
	return src
}

func (c *cli) restore(args []string) error {
	fl := c.flags("restore")
	replace := fl.Bool("replace", false, "replace the store if it exists (processes that have it open keep the old one until they open it again)")
	rest, err := c.parse(fl, args, 1, 1)
	if err != nil {
		return err
	}
	in, total, closeIn, err := c.openInput("restore", "backup", rest[0])
	if err != nil {
		return err
	}
	defer closeIn()
	ctx, stop := interruptible()
	defer stop()
	bar := c.newBar("restoring")
	start := time.Now()
	p, err := store.Restore(ctx, c.name, in, &store.RestoreOptions{Replace: *replace, Progress: func(p store.Progress) {
		if total > 0 {
			p.TotalBytes = total
		}
		bar.update(ctx)(p)
	}})
	bar.done(err == nil)
	took := time.Since(start)
	if err != nil {
		switch {
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			return &codeError{code: exitInterrupted, msg: fmt.Sprintf("shmkv: store %q: restore interrupted (%v) after %s; nothing was restored", c.name, context.Cause(ctx), roundDuration(took))}
		case errors.Is(err, fs.ErrExist):
			return fmt.Errorf("restore: the store exists: restore with --replace to replace it")
		case errors.Is(err, store.ErrFull) && strings.Contains(err.Error(), "do not fit in "+store.ShmDir):
			return c.shmFull(p.TotalBytes, err)
		}
		return fmt.Errorf("restore from %s: %w; nothing was restored", inputName(rest[0]), c.cause("restore", err))
	}
	_, err = fmt.Fprintf(c.stdout, "restored %s (%s of image) from %s in %s; check passed\n",
		counted(uint64(p.TotalKeys), "key", "keys"), units.FormatBytes(p.Bytes), inputName(rest[0]), roundDuration(took))
	return err
}

// interruptible is a context that the first SIGINT cancels; a second one
// kills the process as usual.
func interruptible() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// transferBar is the progress bar of a dump, load, backup or restore on a
// terminal: bytes of total, rate and time left, and the keys in its
// description. On anything else it draws nothing.
type transferBar struct {
	c     *cli
	verb  string
	tty   bool
	bar   *progressbar.ProgressBar
	drawn time.Time
}

func (c *cli) newBar(verb string) *transferBar {
	return &transferBar{c: c, verb: verb, tty: isTerminal(c.stderr)}
}

func (b *transferBar) update(ctx context.Context) func(store.Progress) {
	return func(p store.Progress) {
		if b.tty && b.bar == nil && p.TotalBytes > 0 {
			b.bar = progressbar.NewOptions64(p.TotalBytes,
				progressbar.OptionSetWriter(b.c.stderr),
				progressbar.OptionSetDescription(b.describe(p)),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowCount(),
				progressbar.OptionUseIECUnits(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionUseANSICodes(true),
				progressbar.OptionClearOnFinish(),
			)
			b.bar.StartWithoutRender()
		}
		// Throttled here, not by the bar: Describe and Set64 each draw
		// it, and the second must not be skipped.
		if b.bar != nil && time.Since(b.drawn) >= barInterval {
			b.bar.Describe(b.describe(p))
			b.bar.Set64(min(p.Bytes, p.TotalBytes))
			b.drawn = time.Now()
		}
		if transferHook != nil {
			transferHook(ctx, p)
		}
	}
}

func (b *transferBar) describe(p store.Progress) string {
	keys := counted(uint64(p.Keys), "key", "keys")
	if p.TotalKeys > 0 {
		keys = fmt.Sprintf("%d of %s", p.Keys, counted(uint64(p.TotalKeys), "key", "keys"))
	}
	return fmt.Sprintf("%s: %s ", b.verb, keys)
}

func (b *transferBar) done(ok bool) {
	if b.bar == nil {
		return
	}
	if ok {
		b.bar.Finish() // clears the bar (OptionClearOnFinish)
	} else {
		b.bar.Exit()
		b.bar.Clear()
	}
}
