package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/store"
)

// grow makes the store at least --size bytes now (store.Grow), ahead of a
// load or a burst of writes that would otherwise grow it step by step as
// they go. Growing needs the writer lock, so it waits for writers as a put
// does (--timeout bounds the wait); readers and writers go on meanwhile.
func (c *cli) grow(args []string) error {
	fl := c.flags("grow")
	var size int64
	fl.Func("size", "grow the store to at least `SIZE` bytes, such as 256M or 2G (at most its maximum size; stat shows both)", func(v string) error {
		n, err := parseStoreSize(v)
		size = n
		return err
	})
	if _, err := c.parse(fl, args, 0, 0); err != nil {
		return err
	}
	if size == 0 {
		return usagef("want --size SIZE, the size to grow the store to")
	}
	s, err := c.open(false)
	if errors.Is(err, fs.ErrPermission) {
		return c.growDenied(err)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	before := s.Stats()
	switch {
	case size > before.MaxSize:
		return c.pastMaxSize(size, &before)
	case size <= before.Size:
		_, err := fmt.Fprintf(c.stdout, "the store is %s already, at least --size %s: nothing to grow; maximum size %s\n",
			bytesExact(before.Size), units.FormatBytes(size), units.FormatBytes(before.MaxSize))
		return err
	}
	if err := s.Grow(size); err != nil {
		switch {
		case errors.Is(err, store.ErrFull) && strings.Contains(err.Error(), "maximum size is"):
			// The check above passed: a huge page store, whose sizes
			// round up to whole pages.
			return c.pastMaxSize(size, &before)
		case errors.Is(err, store.ErrReadOnly):
			return &codeError{code: exitError, msg: fmt.Sprintf("shmkv: store %q: grow: the store is open read-only: growing needs write access", c.name)}
		}
		// Each step is its own transaction: a growth that stopped part
		// of the way (/dev/shm full) keeps the steps it made.
		now := s.Stats()
		return &opError{doing: "grow", err: err,
			hint: fmt.Sprintf("the store is %s, of at most %s", units.FormatBytes(now.Size), units.FormatBytes(now.MaxSize))}
	}
	after := s.Stats()
	_, err = fmt.Fprintf(c.stdout, "grew from %s to %s in %s; maximum size %s\n",
		units.FormatBytes(before.Size), bytesExact(after.Size),
		counted(after.Growths-min(before.Growths, after.Growths), "step", "steps"), units.FormatBytes(after.MaxSize))
	return err
}

// pastMaxSize is grow's error for a size beyond the store's maximum, which
// was fixed when the store was created.
func (c *cli) pastMaxSize(size int64, st *store.Stats) error {
	why := "set when it was created (create --max-size)"
	if st.MaxSize == st.InitialSize {
		why = "it was created with a fixed size (create --size without --max-size)"
	}
	return &codeError{code: exitError, msg: fmt.Sprintf(
		"shmkv: store %q: grow: %s is past the store's maximum size, %s: %s; for a larger store, dump this one and load the dump with a larger --max-size",
		c.name, units.FormatBytes(size), units.FormatBytes(st.MaxSize), why)}
}

// growDenied is grow's error when this user may not open the store for
// writing (err): it says whose the store is and its mode, when this user
// can read that much.
func (c *cli) growDenied(err error) error {
	whose := ""
	if s, rerr := store.Open(c.name, &store.Options{ReadOnly: true}); rerr == nil {
		st := s.Stats()
		s.Close()
		whose = fmt.Sprintf(" (owned by %s, mode %s)", st.OwnerName, modeString(st.Mode))
	}
	var se *store.Error
	if errors.As(err, &se) {
		err = se.Err // the line names the store once
	}
	return &codeError{code: exitError, msg: fmt.Sprintf(
		"shmkv: store %q: grow: %s: growing needs write access to the store%s, and this user may not write it",
		c.name, causeText(err), whose)}
}

// bytesExact is a size in a binary unit and in bytes: "32.0 MiB (33554432
// bytes)", for a sentence (sizeString is for stat's columns).
func bytesExact(n int64) string {
	return fmt.Sprintf("%s (%d bytes)", units.FormatBytes(n), n)
}
