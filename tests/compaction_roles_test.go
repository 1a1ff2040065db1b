package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shmkv/shmkv/store"
)

const (
	compactKeys       = 512
	compactShare      = 0.92 // of the heap, the most the writer keeps live
	compactEveryOps   = 3000 // Store.Compact after 500 to this many puts
	compactTidePeriod = 1100 * time.Millisecond
)

func compactKey(k int) string { return "c:" + strconv.Itoa(k) }

// compactWriter overwrites the keys c:0 to c:511 with torture values
// (tortureValue) whose sizes sweep from 8 bytes to 4 KiB and back
// (sizeDrift), one delete in ten, keeping at most 92% of the heap live: a
// value that would pass that is written tiny instead, so big and tiny
// blocks alternate over the heap and a put often finds no block that fits
// and compacts. That is inside the store's room guarantee (live + block <=
// HeapSize - Reserve: the largest block is 8 KiB and Reserve twice that),
// so any error fails the role. Every 500 to 3000 puts it runs
// Store.Compact, a whole pass, printing "compacting" before and
// "compacted MOVED ENTRIES" after. It learns its keys' sizes from the
// store when it starts.
func compactWriter(name string) error {
	s, err := store.Open(name, roleOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	limit := int64(compactShare * float64(s.Stats().HeapSize))
	var blocks [compactKeys]int64
	var live int64
	err = s.Range(func(k, v []byte) bool {
		if rest, ok := strings.CutPrefix(string(k), "c:"); ok {
			blocks[atoi(rest)] = blockOf(string(k), v)
			live += blocks[atoi(rest)]
		}
		return true
	})
	if err != nil {
		return err
	}
	out := bufioWriter()
	fmt.Fprintln(out, "ready")
	out.Flush()
	pid := os.Getpid()
	nextCompact := 500 + rand.IntN(compactEveryOps-500)
	for seq := 0; ; seq++ {
		if seq == nextCompact {
			fmt.Fprintln(out, "compacting")
			out.Flush()
			p, err := s.Compact(context.Background())
			if err != nil {
				return fmt.Errorf("compact: %w", err)
			}
			fmt.Fprintf(out, "compacted %d %d\n", p.Moved, p.Entries)
			out.Flush()
			nextCompact += 500 + rand.IntN(compactEveryOps-500)
		}
		k := rand.IntN(compactKeys)
		key := compactKey(k)
		if rand.IntN(10) == 0 {
			if err := s.Delete([]byte(key)); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete %s: %w", key, err)
			}
			live -= blocks[k]
			blocks[k] = 0
			continue
		}
		vid := fmt.Sprintf("%d-%d", pid, seq)
		v := tortureValue(key, vid, driftSize(sizeDrift(phase(monotonic(), compactTidePeriod)), tortureMaxValue))
		if live-blocks[k]+blockOf(key, v) > limit {
			v = tortureValue(key, vid, rand.IntN(24))
		}
		if err := s.Put([]byte(key), v); err != nil {
			return fmt.Errorf("put %s, a %d-byte block, with %d bytes live of %d allowed: %w",
				key, blockOf(key, v), live, limit, err)
		}
		live += blockOf(key, v) - blocks[k]
		blocks[k] = blockOf(key, v)
	}
}

// compactReader reads random keys c:K, and every few thousand reads the
// whole store with Range, validating every value (checkTortureValue), until
// the key "stop" appears. Every 100 ms it prints "reads R hits H ranges G";
// at the end "done reads R hits H ranges G". It verifies checksums
// (VerifyReads): a race with a writer that merges, splits and moves the
// entries it reads must never look like damage.
func compactReader(name string) error {
	s, err := store.Open(name, &store.Options{ReadOnly: true, VerifyReads: true})
	if err != nil {
		return err
	}
	defer s.Close()
	buf := make([]byte, 0, 64<<10)
	var reads, hits, ranges int
	report := time.Now()
	for ; ; reads++ {
		if reads%1024 == 0 {
			if stop, err := s.Has([]byte("stop")); err != nil {
				return err
			} else if stop {
				break
			}
			if time.Since(report) > 100*time.Millisecond {
				fmt.Printf("reads %d hits %d ranges %d\n", reads, hits, ranges)
				report = time.Now()
			}
		}
		if reads%8192 == 0 {
			var bad error
			err := s.Range(func(k, v []byte) bool {
				if strings.HasPrefix(string(k), "c:") {
					bad = checkTortureValue(string(k), v)
				}
				return bad == nil
			})
			if err != nil {
				return err
			}
			if bad != nil {
				return fmt.Errorf("range: %w", bad)
			}
			ranges++
		}
		key := compactKey(rand.IntN(compactKeys))
		v, err := s.GetAppend(buf[:0], []byte(key))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := checkTortureValue(key, v); err != nil {
			return err
		}
		hits++
	}
	fmt.Printf("done reads %d hits %d ranges %d\n", reads, hits, ranges)
	return nil
}
