package tests

// The helper processes of hostile_test.go: legitimate writers and readers
// that must survive a rogue neighbour, the rogue itself, a squatter running
// as another user, and a read-only user who read-locks the process slots.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/internal/shmtest"
	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/store"
)

// TestHostileHelperProcess is not a test: it is the body of the helper
// processes the hostile tests start. SHMKV_HOSTILE_ROLE selects what it
// does; its arguments follow "--".
func TestHostileHelperProcess(t *testing.T) {
	role := os.Getenv("SHMKV_HOSTILE_ROLE")
	if role == "" {
		t.Skip("helper process body; run by the hostile tests")
	}
	var args []string
	for i, a := range os.Args {
		if a == "--" {
			args = os.Args[i+1:]
			break
		}
	}
	if err := runHostileRole(role, args); err != nil {
		fmt.Fprintf(os.Stderr, "hostile helper %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// hproc is a hostile-test helper process: a child whose stdin the test
// writes commands to (closing it means "stop") and whose stderr is kept.
type hproc struct {
	*child
	stdin  io.WriteCloser
	stderr *syncBuffer
}

// spawnHostile starts bin (the test binary when "") as a helper process in
// role with args, as user cred when not nil.
func spawnHostile(t testing.TB, bin string, cred *syscall.Credential, role string, args ...string) *hproc {
	t.Helper()
	if bin == "" {
		bin = os.Args[0]
	}
	cmd := shmtest.SelfAt(bin, "TestHostileHelperProcess", append([]string{"--"}, args...)...)
	cmd.Env = append(os.Environ(), "SHMKV_HOSTILE_ROLE="+role)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = filepath.Dir(bin)
	}
	errBuf := &syncBuffer{}
	cmd.Stderr = errBuf
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return &hproc{child: startChild(t, cmd), stdin: in, stderr: errBuf}
}

// send writes one command line to the helper's stdin.
func (p *hproc) send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("writing %q to helper %v: %v", line, p.Cmd.Args, err)
	}
}

// syncBuffer is a bytes.Buffer safe for the exec package's copying
// goroutine and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tailLines is the last n lines of s.
func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// stdinClosed reports, once stdin reaches EOF, that the test said stop.
func stdinClosed() *atomic.Bool {
	var stop atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	return &stop
}

// hostileOpts is what the legitimate helpers open with: a short
// LockTimeout, so a dead or forged holder costs little time.
var hostileOpts = &store.Options{LockTimeout: 50 * time.Millisecond}

// hostileValue is the value of key at version n, size bytes long (or as
// long as its prefix): "KEY|N|SIZE|" then letters that depend on n.
func hostileValue(key string, n, size int) []byte {
	v := fmt.Appendf(nil, "%s|%d|%d|", key, n, size)
	for i := len(v); i < size; i++ {
		v = append(v, byte('a'+(n+i)%26))
	}
	return v
}

// hostileValid reports whether v is a value hostileValue makes for key.
func hostileValid(key string, v []byte) bool {
	f := bytes.SplitN(v, []byte("|"), 4)
	if len(f) != 4 || string(f[0]) != key {
		return false
	}
	n, err1 := strconv.Atoi(string(f[1]))
	size, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil || n < 0 {
		return false
	}
	return bytes.Equal(v, hostileValue(key, n, size))
}

// hostileKeys is how many keys the scribbler's writer uses: with
// hostileSize, they fill about 70% of the heap of a 1 MiB store.
const hostileKeys = 150

// hostileSize draws a value size: mostly small, some of a few KiB, a few
// up to 30 KB, so blocks split, merge, run out and get compacted.
func hostileSize(rng *rand.Rand) int {
	switch r := rng.IntN(10); {
	case r < 5:
		return rng.IntN(200)
	case r < 8:
		return 200 + rng.IntN(4000)
	default:
		return 4000 + rng.IntN(26000)
	}
}

// opStats counts what a legitimate helper did, and keeps its errors by
// message.
type opStats struct {
	ops, ok, errs, bad int
	msgs               map[string]int
	lastBeat           time.Time
}

func (st *opStats) record(op string, err error) {
	st.ops++
	if err == nil || errors.Is(err, store.ErrNotFound) {
		st.ok++
		return
	}
	st.errs++
	if st.msgs == nil {
		st.msgs = map[string]int{}
	}
	msg := op + ": " + strings.ReplaceAll(err.Error(), "\n", " | ")
	if len(msg) > 160 {
		msg = msg[:160] + "..."
	}
	if st.msgs[msg]++; st.msgs[msg] == 1 && len(st.msgs) <= 5 {
		fmt.Fprintf(os.Stderr, "error (allowed): %s\n", msg)
	}
}

// beat prints "beat OPS OK ERRS BAD" at most every 50ms: the test's
// evidence that the process is making progress.
func (st *opStats) beat() {
	if time.Since(st.lastBeat) >= 50*time.Millisecond {
		st.lastBeat = time.Now()
		fmt.Printf("beat %d %d %d %d\n", st.ops, st.ok, st.errs, st.bad)
	}
}

// finish prints "done OPS OK ERRS BAD" and the most frequent errors.
func (st *opStats) finish() {
	fmt.Printf("done %d %d %d %d\n", st.ops, st.ok, st.errs, st.bad)
	type kv struct {
		msg string
		n   int
	}
	var all []kv
	for m, n := range st.msgs {
		all = append(all, kv{m, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	for i, e := range all {
		if i == 6 {
			fmt.Fprintf(os.Stderr, "... and %d more kinds of error\n", len(all)-i)
			break
		}
		fmt.Fprintf(os.Stderr, "%6dx %s\n", e.n, e.msg)
	}
}

func runHostileRole(role string, args []string) error {
	switch role {
	case "writer": // writer NAME SEED: random put/delete/get/CAS/batch on s:<k>, Check now and then, until stdin closes
		return hostileWriter(args[0], parseSeed(args[1]))
	case "reader": // reader NAME SEED ro|rw: validated gets, Check now and then (rw: a put every 100ms), until stdin closes
		return hostileReader(args[0], parseSeed(args[1]), args[2] == "rw")
	case "rogue": // rogue NAME SEED MILLIS: scribbles on the object until stdin closes; random words after MILLIS
		return rogue(args[0], parseSeed(args[1]), time.Duration(atoi(args[2]))*time.Millisecond)
	case "squat-empty": // squat-empty NAME: creates /dev/shm/NAME empty, mode 0666
		path := filepath.Join("/dev/shm", args[0])
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if err != nil {
			return err
		}
		f.Close()
		if err := os.Chmod(path, 0o666); err != nil {
			return err
		}
		fmt.Println("ok")
	case "squat-store": // squat-store NAME: creates a real store of mode 0666 holding "secret"
		s, err := store.Create(args[0], &store.Options{Size: 1 << 20, Mode: 0o666})
		if err != nil {
			return err
		}
		if err := s.Put([]byte("secret"), []byte("nobody's")); err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
		fmt.Println("ok")
	case "idle-writer": // idle-writer NAME: attached, idle; obeys hold/put/check from stdin
		return idleWriter(args[0])
	case "slot-read-locker": // slot-read-locker NAME: read-locks every slot byte it can; "relock" tries again
		return slotReadLocker(args[0])
	case "busy-writer": // busy-writer NAME MILLIS: puts for MILLIS, pausing briefly every 50 puts
		return busyWriter(args[0], time.Duration(atoi(args[1]))*time.Millisecond)
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}

func parseSeed(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func hostileWriter(name string, seed uint64) error {
	s, err := store.Open(name, hostileOpts)
	if err != nil {
		return err
	}
	stop := stdinClosed()
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(seed, 1))
	var st opStats
	lastCheck := time.Now()
	for n := 0; !stop.Load(); n++ {
		k := fmt.Sprintf("s:%d", rng.IntN(hostileKeys))
		switch r := rng.IntN(100); {
		case r < 55:
			st.record("put", s.Put([]byte(k), hostileValue(k, n, hostileSize(rng))))
		case r < 65:
			st.record("delete", s.Delete([]byte(k)))
		case r < 82:
			v, err := s.Get([]byte(k))
			if err == nil && !hostileValid(k, v) {
				st.bad++
			}
			st.record("get", err)
		case r < 92:
			old, err := s.Get([]byte(k))
			if err == nil {
				_, err = s.CompareAndSwap([]byte(k), old, hostileValue(k, n, hostileSize(rng)))
			}
			st.record("cas", err)
		default:
			st.record("update", s.Update(func(b *store.Batch) error {
				for i := range 3 {
					bk := fmt.Sprintf("s:%d", rng.IntN(hostileKeys))
					if err := b.Put([]byte(bk), hostileValue(bk, n*3+i, hostileSize(rng)/2)); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		if time.Since(lastCheck) > 500*time.Millisecond {
			st.record("check", s.Check())
			lastCheck = time.Now()
		}
		st.beat()
	}
	st.finish()
	ss := s.Stats()
	fmt.Fprintf(os.Stderr, "stats: %d commits, %d compactions moved %d bytes, %d takeovers here, %d recoveries\n",
		ss.Commits, ss.Compactions, ss.BytesMoved, ss.TakeOversHere, ss.Recoveries)
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "close: %v\n", err)
	}
	return nil
}

func hostileReader(name string, seed uint64, rw bool) error {
	s, err := store.Open(name, &store.Options{LockTimeout: hostileOpts.LockTimeout, ReadOnly: !rw})
	if err != nil {
		return err
	}
	stop := stdinClosed()
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(seed, 2))
	var st opStats
	buf := make([]byte, 0, 32<<10)
	lastCheck, lastPut := time.Now(), time.Now()
	beatKey := fmt.Sprintf("r:%d", os.Getpid())
	for n := 0; !stop.Load(); n++ {
		k := fmt.Sprintf("s:%d", rng.IntN(hostileKeys))
		v, err := s.GetAppend(buf[:0], []byte(k))
		if err == nil && !hostileValid(k, v) {
			st.bad++ // the rogue wrote over it: allowed, counted
		}
		st.record("get", err)
		if rw && time.Since(lastPut) > 100*time.Millisecond {
			// A put now and then: this Store holds the writer lock at times,
			// so the rogue learns its identity too.
			st.record("put", s.Put([]byte(beatKey), hostileValue(beatKey, n, rng.IntN(100))))
			lastPut = time.Now()
		}
		if time.Since(lastCheck) > 700*time.Millisecond {
			st.record("check", s.Check())
			lastCheck = time.Now()
		}
		st.beat()
	}
	st.finish()
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "close: %v\n", err)
	}
	return nil
}

// rogue maps the object read-write, as any process with write access can,
// and scribbles:
//   - pulses (a word changed for a few microseconds, then put back) at the
//     journal's header, intents and undo records, at block headers and at
//     the lock word;
//   - for 2ms in every 10, a word of an intent, an undo record or a block
//     header flickered (changed and put back every microsecond or so);
//   - every 100ms, and once more as it leaves, the lock word set to the
//     identity of a live Store, learnt from the word while that Store held
//     it, at a moment it does not;
//   - after randomAfter, random words at random offsets, for good. They
//     wreck the store for its users soon; until then the writer works on a
//     store whose damage lasts microseconds.
func rogue(name string, seed uint64, randomAfter time.Duration) error {
	f, err := os.OpenFile(filepath.Join("/dev/shm", name), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := uint64(fi.Size())
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return err
	}
	defer syscall.Munmap(mem)
	g := (*layout.Header)(unsafe.Pointer(&mem[0])).Geometry() // read once, before any scribble
	if err := g.Check(); err != nil || g.Size > size {
		return fmt.Errorf("rogue: bad geometry %+v: %v", g, err)
	}
	stop := stdinClosed()
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(seed, 3))
	word := func(off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }
	word32 := func(off uint64) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	lockWord := word32(layout.LockOff)
	mutate := func(old uint64) uint64 {
		switch rng.IntN(8) {
		case 0:
			return rng.Uint64()
		case 1:
			return old ^ 1<<rng.IntN(64)
		case 2:
			return uint64(rng.IntN(64))
		case 3:
			return old + uint64(rng.IntN(16)-8)*8
		case 4:
			return old&0xffffffff | 8<<32 // a block header's Size of 8
		case 5:
			return ^uint64(0)
		case 6:
			return old&0xffffffff | uint64(rng.Uint32())<<32
		default:
			return g.Size + rng.Uint64N(1<<20)
		}
	}
	spin := func() {
		for end := time.Now().Add(time.Duration(1+rng.IntN(20)) * time.Microsecond); time.Now().Before(end); {
		}
	}
	// pulse changes a word for a few microseconds, then puts it back
	// unless a writer changed it meanwhile.
	pulse := func(off uint64) {
		p := word(off)
		old := atomic.LoadUint64(p)
		v := mutate(old)
		atomic.StoreUint64(p, v)
		spin()
		atomic.CompareAndSwapUint64(p, v, old)
	}
	// flicker pulses the word at off over and over for d, each pulse about
	// a microsecond: a writer that checks a word and then reads it again
	// meets a changed one sooner or later. It stops when a writer changes
	// the word meanwhile (its value is then the writer's, not ours).
	flicker := func(off uint64, d time.Duration) {
		p := word(off)
		old := atomic.LoadUint64(p)
		v := mutate(old)
		if v == old {
			return
		}
		for end := time.Now().Add(d); time.Now().Before(end); {
			if !atomic.CompareAndSwapUint64(p, old, v) {
				return
			}
			for range 1 + rng.IntN(200) {
				atomic.LoadUint64(p)
			}
			if !atomic.CompareAndSwapUint64(p, v, old) {
				return
			}
			for range 1 + rng.IntN(200) {
				atomic.LoadUint64(p)
			}
		}
	}
	// pick is an index below n, mostly among the first few.
	pick := func(n uint32) uint64 {
		if n == 0 {
			return 0
		}
		if rng.IntN(2) == 0 {
			return uint64(rng.IntN(int(min(n, 4))))
		}
		return uint64(rng.IntN(int(n)))
	}
	// blockHeader finds the start of a heap block: one an index slot names,
	// or one reached by walking the heap a few blocks from its start.
	blockHeader := func() (uint64, bool) {
		if rng.IntN(2) == 0 {
			for range 16 {
				bi := rng.Uint64N(g.NumBuckets)
				w := atomic.LoadUint64(word(g.IndexOff + bi*layout.BucketSize + 8 + uint64(rng.IntN(layout.BucketSlots))*8))
				if off := layout.SlotOffset(w); w != 0 && off >= g.HeapOff && off+16 <= g.Size {
					return off, true
				}
			}
			return 0, false
		}
		off := g.HeapOff
		for range rng.IntN(64) {
			sz := atomic.LoadUint64(word(off)) >> 32 &^ uint64(layout.SizeFlags)
			if sz < layout.EntrySize || off+sz+16 > g.Size {
				break
			}
			off += sz
		}
		return off, true
	}
	idents := map[uint32]uint32{} // identity -> pid, learnt from the lock word
	var identList []uint32
	learn := func() {
		v := atomic.LoadUint32(lockWord) &^ layout.WaitersBit
		slot := int(v&(1<<layout.SlotBits-1)) - 1
		if v == 0 || slot < 0 || slot >= layout.NumSlots {
			return
		}
		ps := g.SlotsOff + uint64(slot)*layout.ProcSlotSize
		gen, pid := atomic.LoadUint32(word32(ps)), atomic.LoadUint32(word32(ps+4))
		if pid == 0 || gen&(1<<layout.GenBits-1) != v>>layout.SlotBits {
			return
		}
		if _, ok := idents[v]; !ok {
			idents[v] = pid
			identList = append(identList, v)
			fmt.Printf("identity %#x pid %d\n", v, pid)
		}
	}
	var random, pIntent, pUndo, pBlock, pLock, pJournal, flickers, forged int
	// forge sets the lock word to a live Store's identity (each in turn)
	// at a moment the lock is free, trying for at most d.
	forge := func(d time.Duration) bool {
		id := identList[forged%len(identList)]
		for end := time.Now().Add(d); time.Now().Before(end); {
			if atomic.CompareAndSwapUint32(lockWord, 0, id) {
				return true
			}
		}
		return false
	}
	start, lastForge, lastFlicker := time.Now(), time.Now(), time.Now()
	for !stop.Load() {
		learn()
		switch r := rng.IntN(100); {
		case r < 5 && time.Since(start) > randomAfter: // a random word, for good
			off := rng.Uint64N(g.Size/8) * 8
			p := word(off)
			atomic.StoreUint64(p, mutate(atomic.LoadUint64(p)))
			random++
		case r < 30:
			n := min(atomic.LoadUint32(word32(g.JournalOff+4)), g.MaxIntents)
			pulse(g.IntentsOff() + pick(max(n, 1))*layout.IntentSize + uint64(rng.IntN(5))*8)
			pIntent++
		case r < 50:
			n := min(atomic.LoadUint32(word32(g.JournalOff+8)), g.MaxUndo)
			pulse(g.UndoOff() + pick(max(n, 1))*layout.UndoSize + uint64(rng.IntN(2))*8)
			pUndo++
		case r < 75:
			if off, ok := blockHeader(); ok {
				pulse(off + uint64(rng.IntN(2))*8)
				pBlock++
			}
		case r < 85:
			old := atomic.LoadUint32(lockWord)
			v := uint32(mutate(uint64(old)))
			atomic.StoreUint32(lockWord, v)
			spin()
			atomic.CompareAndSwapUint32(lockWord, v, old)
			pLock++
		case r < 90:
			pulse(g.JournalOff + uint64(rng.IntN(3))*8)
			pJournal++
		}
		if time.Since(lastFlicker) > 10*time.Millisecond {
			// Flicker, for 2ms in every 10, a word the writer is using: a
			// field of a journal intent or undo record in use, or a block
			// header.
			var off uint64
			switch rng.IntN(3) {
			case 0:
				n := min(atomic.LoadUint32(word32(g.JournalOff+4)), g.MaxIntents)
				off = g.IntentsOff() + pick(max(n, 1))*layout.IntentSize + uint64(1+rng.IntN(4))*8
			case 1:
				n := min(atomic.LoadUint32(word32(g.JournalOff+8)), g.MaxUndo)
				off = g.UndoOff() + pick(max(n, 1))*layout.UndoSize + uint64(rng.IntN(2))*8
			default:
				off, _ = blockHeader()
			}
			if off != 0 {
				flicker(off, 2*time.Millisecond)
				flickers++
			}
			lastFlicker = time.Now()
		}
		if len(identList) > 0 && time.Since(lastForge) > 100*time.Millisecond {
			if forge(20 * time.Millisecond) {
				forged++
			}
			lastForge = time.Now()
		}
		time.Sleep(100 * time.Microsecond)
	}
	// A last forgery as it leaves: nothing of the rogue's can undo it now.
	last := "none"
	if len(identList) > 0 && forge(500*time.Millisecond) {
		forged++
		last = fmt.Sprintf("%#x", atomic.LoadUint32(lockWord)&^layout.WaitersBit)
	}
	fmt.Printf("stats random %d pulses intent %d undo %d block %d lock %d journal %d forged %d identities %d last %s flickers %d\n",
		random, pIntent, pUndo, pBlock, pLock, pJournal, forged, len(identList), last, flickers)
	return nil
}

// idleWriter is an attached Store that does only what stdin says:
//
//	hold       Update that puts a key, prints "held", and waits for the next line
//	put K V    prints "put ok MICROS" or "put err MICROS: ERROR"
//	check      prints "check ok" or "check err: ERROR"
func idleWriter(name string) error {
	s, err := store.Open(name, hostileOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "hold":
			err := s.Update(func(b *store.Batch) error {
				if err := b.Put([]byte(fmt.Sprintf("held-by-%d", os.Getpid())), []byte("x")); err != nil {
					return err
				}
				fmt.Println("held")
				sc.Scan() // "release"
				return nil
			})
			fmt.Printf("released %v\n", err)
		case "put":
			t0 := time.Now()
			err := s.Put([]byte(f[1]), []byte(f[2]))
			us := time.Since(t0).Microseconds()
			if err != nil {
				fmt.Printf("put err %d: %v\n", us, err)
			} else {
				fmt.Printf("put ok %d\n", us)
			}
		case "check":
			if err := s.Check(); err != nil {
				fmt.Printf("check err: %q\n", err.Error())
			} else {
				fmt.Println("check ok")
			}
		}
	}
	return nil
}

// slotReadLocker opens the object read-only, as any user who may read it
// can, and takes an OFD read lock on every process slot's byte it can (the
// attached Stores' bytes are write-locked). It prints "locked N" after each
// round; "relock" on stdin runs another round; EOF ends it.
func slotReadLocker(name string) error {
	f, err := os.OpenFile(filepath.Join("/dev/shm", name), os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	locked := make([]bool, layout.NumSlots)
	round := func() error {
		for i := range locked {
			if locked[i] {
				continue
			}
			lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: layout.SlotLockBase + int64(i), Len: 1}
			err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
			switch {
			case err == nil:
				locked[i] = true
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES):
			default:
				return err
			}
		}
		fmt.Printf("locked %d\n", len(slices.DeleteFunc(slices.Clone(locked), func(b bool) bool { return !b })))
		return nil
	}
	if err := round(); err != nil {
		return err
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "relock" {
			if err := round(); err != nil {
				return err
			}
		}
	}
	return nil
}

// busyWriter puts b:<k> with varied sizes for d, pausing 2ms every 50
// puts, then prints "done N". Any error fails it: nothing disturbs it.
func busyWriter(name string, d time.Duration) error {
	s, err := store.Open(name, hostileOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(5, 5))
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		k := fmt.Sprintf("b:%d", rng.IntN(200))
		if err := s.Put([]byte(k), hostileValue(k, n, rng.IntN(2000))); err != nil {
			return err
		}
		if n%7 == 0 {
			if err := s.Delete([]byte(k)); err != nil {
				return err
			}
		}
		if n%50 == 49 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	fmt.Printf("done %d\n", n)
	return nil
}
