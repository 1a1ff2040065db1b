package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"

	"github.com/shmkv/shmkv/store"
)

// openOrCreate is how put and cas --absent reach the store: it is created
// with the defaults if missing, so the CLI works with no set-up. Only
// commands that write a key create a store: a read never does, so a
// mistyped --store cannot reserve memory in /dev/shm.
func (c *cli) openOrCreate() (*store.Store, error) {
	return store.OpenOrCreate(c.name, &store.Options{WriteTimeout: c.timeout})
}

// open opens an existing store; a missing one is exit 4 (noStore).
func (c *cli) open(readOnly bool) (*store.Store, error) {
	s, err := store.Open(c.name, &store.Options{ReadOnly: readOnly, WriteTimeout: c.timeout})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, c.noStore(`create it with "shmkv create" or "shmkv put"`)
	}
	return s, err
}

// noStore is the exit-4 error for a store that does not exist; hint says
// what to do.
func (c *cli) noStore(hint string) error {
	return &codeError{code: exitNoStore, msg: fmt.Sprintf("shmkv: store %q: no such store (%s)", c.name, hint)}
}

// notFound is the exit-1 error for a missing key.
func (c *cli) notFound(key string) error {
	return &codeError{code: exitNotFound, msg: fmt.Sprintf("shmkv: store %q: key %s not found", c.name, keyString(key))}
}

func (c *cli) put(args []string) error {
	rest, err := c.parse(c.flags("put"), args, 1, 2)
	if err != nil {
		return err
	}
	key := []byte(rest[0])
	s, err := c.openOrCreate()
	if err != nil {
		return err
	}
	defer s.Close()
	var value []byte
	if len(rest) == 2 {
		value = []byte(rest[1])
	} else {
		// Read no more than the store could ever hold, plus one byte to
		// know the value is too large: never all of an endless stream.
		limit := s.ValueLimit(len(key))
		if value, err = io.ReadAll(io.LimitReader(c.stdin, int64(limit)+1)); err != nil {
			return fmt.Errorf("reading the value from stdin: %w", err)
		}
		if len(value) > limit {
			return failed("put "+keyString(string(key)), fmt.Errorf("%w: the value on stdin is longer than the %d bytes this store can hold for this key", store.ErrTooLarge, limit))
		}
	}
	if err := s.Put(key, value); err != nil {
		return failed("put "+keyString(string(key)), err)
	}
	return nil
}

func (c *cli) get(args []string) error {
	fl := c.flags("get")
	raw := fl.Bool("raw", false, "print the exact bytes of the value, without a newline")
	asJSON := fl.Bool("json", false, `print {"key":..,"value":..} and a newline; a key or value that is not UTF-8 is given in base64 as "key_base64" or "value_base64"`)
	rest, err := c.parse(fl, args, 1, 1)
	if err != nil {
		return err
	}
	if *raw && *asJSON {
		return usagef("--raw and --json exclude each other")
	}
	s, err := c.open(false)
	if errors.Is(err, fs.ErrPermission) {
		// Reading needs only read permission.
		s, err = c.open(true)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	v, err := s.Get([]byte(rest[0]))
	if errors.Is(err, store.ErrNotFound) {
		return c.notFound(rest[0])
	}
	if err != nil {
		return failed("get "+keyString(rest[0]), err)
	}
	switch {
	case *asJSON:
		v = fmt.Appendf(nil, "{%s,%s}\n", jsonField("key", []byte(rest[0])), jsonField("value", v))
	case !*raw:
		v = append(v, '\n')
	}
	_, err = c.stdout.Write(v)
	return err
}

func (c *cli) del(args []string) error {
	rest, err := c.parse(c.flags("del"), args, 1, 1)
	if err != nil {
		return err
	}
	s, err := c.open(false)
	if err != nil {
		return err
	}
	defer s.Close()
	err = s.Delete([]byte(rest[0]))
	if errors.Is(err, store.ErrNotFound) {
		return c.notFound(rest[0])
	}
	if err != nil {
		return failed("del "+keyString(rest[0]), err)
	}
	return nil
}

func (c *cli) cas(args []string) error {
	fl := c.flags("cas")
	absent := fl.Bool("absent", false, "set KEY only if it is absent; the arguments are then KEY NEW")
	rest, err := c.parse(fl, args, 2, 3)
	if err != nil {
		return err
	}
	var key, old, new []byte
	switch {
	case *absent && len(rest) == 2:
		key, new = []byte(rest[0]), []byte(rest[1]) // old nil: only if absent
	case !*absent && len(rest) == 3:
		key, old, new = []byte(rest[0]), []byte(rest[1]), []byte(rest[2])
		if old == nil {
			old = []byte{} // an empty OLD matches an empty value, not absence
		}
	case *absent:
		return usagef("with --absent, want KEY NEW (got %d arguments)", len(rest))
	default:
		return usagef("want KEY OLD NEW (got %d arguments)", len(rest))
	}
	// cas --absent writes a key that is absent: it creates the store as
	// put does. cas KEY OLD NEW cannot succeed on a missing store, so it
	// does not make one (exit 4, as for a read).
	var s *store.Store
	if *absent {
		s, err = c.openOrCreate()
	} else {
		s, err = c.open(false)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	ok, err := s.CompareAndSwap(key, old, new)
	if err != nil {
		return failed("cas "+keyString(string(key)), err)
	}
	if !ok {
		why := "its value is not OLD"
		if *absent {
			why = "it exists"
		}
		return &codeError{code: exitNotFound, msg: fmt.Sprintf("shmkv: store %q: cas %s: not swapped: %s", c.name, keyString(string(key)), why)}
	}
	return nil
}

func (c *cli) keys(args []string) error {
	fl := c.flags("keys")
	asJSON := fl.Bool("json", false, `print a JSON array of the keys; a key that is not UTF-8 is {"base64": "..."}`)
	nul := fl.Bool("0", false, "end each key with a NUL byte instead of a newline (for keys that contain newlines; as xargs -0 reads)")
	rest, err := c.parse(fl, args, 0, 1)
	if err != nil {
		return err
	}
	if *asJSON && *nul {
		return usagef("--json and -0 exclude each other")
	}
	var prefix []byte
	if len(rest) == 1 {
		prefix = []byte(rest[0])
	}
	s, err := c.open(true)
	if err != nil {
		return err
	}
	defer s.Close()
	// Keys only: a value is never copied, so this holds the keys' bytes
	// and no more.
	var keys [][]byte
	err = s.RangeKeys(func(k []byte) bool {
		if bytes.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return true
	})
	if err != nil {
		return failed("keys", err)
	}
	slices.SortFunc(keys, bytes.Compare)
	out := bufio.NewWriter(c.stdout) // streamed, not built whole in memory
	switch {
	case *asJSON:
		writeKeysJSON(out, keys)
	default:
		end := byte('\n')
		if *nul {
			end = 0
		}
		for _, k := range keys {
			out.Write(k)
			out.WriteByte(end)
		}
	}
	return out.Flush()
}

func (c *cli) check(args []string) error {
	if _, err := c.parse(c.flags("check"), args, 0, 0); err != nil {
		return err
	}
	s, err := c.open(false)
	if err != nil {
		return err
	}
	defer s.Close()
	err = s.Check()
	if err == nil {
		fmt.Fprintf(c.stdout, "ok: %d entries\n", s.Len())
		return nil
	}
	if !errors.Is(err, store.ErrCorrupt) {
		return failed("check", err)
	}
	// Check joins one error per violation.
	violations := []error{err}
	if se, ok := err.(*store.Error); ok {
		violations = []error{se.Err}
		if j, ok := se.Err.(interface{ Unwrap() []error }); ok {
			violations = j.Unwrap()
		}
	}
	for _, v := range violations {
		fmt.Fprintln(c.stderr, c.errLine(v))
	}
	return &codeError{code: exitNotFound, msg: fmt.Sprintf("shmkv: store %q: check found %d violations", c.name, len(violations))}
}

func (c *cli) create(args []string) error {
	fl := c.flags("create")
	// Size and MaxSize stay 0 unless given, so that the library's defaults
	// apply: with neither, a store of 8 MiB that grows as writes need room,
	// up to the size of /dev/shm; with --size alone, a store of that size
	// that never grows (as --size always meant); with --max-size, one that
	// grows up to it.
	o := store.Options{Mode: store.DefaultMode}
	fl.Func("size", "initial `SIZE` of the store, such as 256M, 1G or 1048576: from 256K to 1T. Alone, the store stays that size (it never grows); "+
		"with --max-size, it grows from it. Default: 8M (--max-size if smaller), growing as writes need room up to --max-size, else up to the size of "+store.ShmDir, func(v string) error {
		n, err := parseStoreSize(v)
		o.Size = n
		return err
	})
	fl.Func("max-size", "the most the store may grow to, `SIZE` (256K to 1T; not below --size). It grows by itself as writes need room, or by hand with \"shmkv grow\". "+
		"Default: --size when given, else the size of "+store.ShmDir+" (with --hugepages tlb, the initial size: huge pages are reserved ahead)", func(v string) error {
		n, err := parseSizeFlag("max-size", v)
		o.MaxSize = n
		return err
	})
	fl.Func("entries", "hold at most `N` keys (default: chosen by the store from the size)", func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want a count >= 0")
		}
		o.MaxEntries = n
		return nil
	})
	fl.Func("hugepages", "page size `MODE`: off (4 KiB pages), thp (transparent huge pages) or tlb (hugetlbfs) (default off)", func(v string) error {
		h, err := store.ParseHugePages(v)
		if err != nil {
			return errors.New("want off, thp or tlb")
		}
		o.HugePages = h
		return nil
	})
	fl.BoolVar(&o.NoReserve, "noreserve", false, "do not reserve the memory now: sparse object, instant creation (writes may fail when "+store.ShmDir+" is full)")
	fl.BoolVar(&o.Populate, "populate", false, "prefault every page at each open")
	fl.BoolVar(&o.Lock, "lock", false, "mlock the mapping at each open (needs CAP_IPC_LOCK or ulimit -l)")
	fl.Func("mode", "permission bits `PERM` of the object, in octal (default 0600)", func(v string) error {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil || m > 0o777 || m == 0 {
			return errors.New("want octal permission bits such as 0600 or 0660")
		}
		o.Mode = fs.FileMode(m)
		return nil
	})
	if _, err := c.parse(fl, args, 0, 0); err != nil {
		return err
	}
	if o.MaxSize != 0 && o.Size > o.MaxSize {
		return maxBelowSize(o.MaxSize, o.Size)
	}
	s, err := store.Create(c.name, &o)
	if isShmFull(err, &o) {
		return c.shmFull(initialSize(&o), err)
	}
	if err != nil {
		return err
	}
	if o.HugePages == store.HugeTransparent {
		st := s.Stats()
		if w := thpWarning(c.name, thpShmemSetting(&st)); w != "" {
			fmt.Fprintln(c.stderr, w)
		}
	}
	return s.Close()
}

func (c *cli) rm(args []string) error {
	fl := c.flags("rm")
	force := fl.Bool("force", false, "remove the object even if it is not a shmkv store")
	if _, err := c.parse(fl, args, 0, 0); err != nil {
		return err
	}
	var err error
	if *force {
		err = store.Unlink(c.name)
	} else {
		err = store.Remove(c.name)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c.noStore("nothing removed")
	case errors.Is(err, store.ErrIncompatible):
		return &opError{doing: "remove", hint: "rm --force removes it anyway", err: err}
	}
	return err
}

func (c *cli) incr(args []string) error {
	rest, err := c.parse(c.flags("incr"), args, 1, 2)
	if err != nil {
		return err
	}
	delta := int64(1)
	if len(rest) == 2 {
		if delta, err = strconv.ParseInt(rest[1], 10, 64); err != nil {
			return usagef("N must be an integer: %q", rest[1])
		}
	}
	s, err := c.open(false)
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.Add([]byte(rest[0]), delta)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, n)
	return nil
}
