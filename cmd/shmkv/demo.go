package main

// shmkv demo: the main job shown end to end. Writer and reader processes
// (this binary re-executed with the hidden command demo-worker) share a
// fresh store; one writer is SIGKILLed while it writes; the others carry on,
// and at the end the store passes Check and holds every put the dead writer
// had acknowledged.
//
// Workers talk to the demo on their stdout, one line per report:
//
//	ready pid=P                                   store opened
//	ack N                                         (writer) puts 0..N-1 have returned nil
//	done puts=N takeovers=T                       (writer) stopped cleanly
//	done gets=N found=F bad=B backwards=K         (reader) stopped cleanly
//
// A write(2) of a short line to a pipe is atomic, so the last "ack" line the
// demo reads from a killed writer is whole, and every put it counts had
// returned before the line was written. Workers stop when their stdin
// reaches EOF, which also happens if the demo itself dies.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/store"
)

const (
	demoWriters = 3
	demoReaders = 2
	// demoKeys is how many keys each writer cycles through: writer N puts
	// seq S to key "wN:<S mod demoKeys>", so the store stays well inside its
	// capacity however fast the writers go.
	demoKeys        = 10000
	demoSize        = 16 << 20
	demoLockTimeout = 50 * time.Millisecond
	// demoVictim is the writer that is killed.
	demoVictim = 2
)

// demo is the state of one run.
type demo struct {
	c     *cli
	ctx   context.Context
	name  string
	s     *store.Store
	procs []*worker
	t0    time.Time
	fails []string
}

func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.c.stdout, format+"\n", args...)
}

// at prints a line stamped with the time since the workers started.
func (d *demo) at(format string, args ...any) {
	t := time.Since(d.t0).Seconds()
	fmt.Fprintf(d.c.stdout, "t=%.2fs  "+format+"\n", append([]any{t}, args...)...)
}

func (d *demo) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.fails = append(d.fails, msg)
	d.printf("FAILED: %s", msg)
}

func (c *cli) demo(args []string) error {
	fl := c.flags("demo")
	dur := fl.Duration("duration", 2*time.Second, "how long the writers and readers run")
	if _, err := c.parse(fl, args, 0, 0); err != nil {
		return err
	}
	if *dur < 300*time.Millisecond {
		return usagef("--duration must be at least 300ms")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: cannot find this program to start the workers: %w", err)
	}
	var d *demo
	err = c.withScratchStore("demo", &store.Options{Size: demoSize, MaxEntries: 2 * demoWriters * demoKeys, LockTimeout: demoLockTimeout},
		func(ctx context.Context, s *store.Store) error {
			d = &demo{c: c, ctx: ctx, name: c.name, s: s}
			defer d.killAll()
			return d.run(exe, *dur)
		})
	if err != nil {
		return err
	}
	d.printf("removed store %q", d.name)
	if len(d.fails) > 0 {
		return &codeError{code: exitNotFound, msg: fmt.Sprintf("shmkv demo: %d verifications FAILED: %s", len(d.fails), strings.Join(d.fails, "; "))}
	}
	d.printf("demo passed: every verification held")
	return nil
}

// run starts the workers, kills the victim midway, stops the rest and
// verifies. Failed verifications are collected in d.fails; an error means
// the demo could not run.
func (d *demo) run(exe string, dur time.Duration) error {
	d.printf("shmkv demo: %d writer and %d reader processes share the new store %q (%s, %s)",
		demoWriters, demoReaders, d.name, units.FormatBytes(demoSize), d.s.Path())
	d.printf("  writer wN puts seq 0, 1, 2... to keys \"wN:<seq mod %d>\", value \"KEY|seq=S|pid=P\";", demoKeys)
	d.printf("  readers get random keys and check that each value names its own key")
	var pids []string
	for i := 1; i <= demoWriters; i++ {
		if err := d.start(exe, "writer", i); err != nil {
			return err
		}
	}
	for i := 1; i <= demoReaders; i++ {
		if err := d.start(exe, "reader", i); err != nil {
			return err
		}
	}
	for _, p := range d.procs {
		select {
		case <-p.ready:
		case <-p.eof:
			return fmt.Errorf("demo: worker %s exited before it was ready: %v", p.label, p.wait())
		case <-d.ctx.Done():
			return d.ctx.Err()
		case <-time.After(15 * time.Second):
			return fmt.Errorf("demo: worker %s not ready after 15s", p.label)
		}
		pids = append(pids, fmt.Sprintf("%s pid %d", p.label, p.pid()))
	}
	d.t0 = time.Now()
	d.printf("started  %s", strings.Join(pids, ", "))

	victim := d.procs[demoVictim-1]
	if err := d.sleepUntil(d.t0.Add(dur * 2 / 5)); err != nil {
		return err
	}
	// The victim must be writing when it is killed: wait for its first acks
	// on a slow machine.
	for deadline := time.Now().Add(10 * time.Second); victim.acked.Load() == 0; {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: writer %s acknowledged no put in 10s", victim.label)
		}
		if err := d.sleepUntil(time.Now().Add(10 * time.Millisecond)); err != nil {
			return err
		}
	}
	// Kill it at its worst moment if we can catch one: while it holds the
	// writer lock (in the middle of a transaction). The lock is taken and
	// released millions of times a second, so a sample often finds it held
	// by a writer the scheduler has preempted; if none is seen in time,
	// kill it anyway, wherever it is.
	// Two samples in a row that find it holding the lock make it likely the
	// hold lasts until the signal lands.
	for deadline, streak := time.Now().Add(dur/5), 0; streak < 2 && time.Now().Before(deadline); {
		if h := d.s.Stats().Writer; h.Held && h.PID == victim.pid() {
			streak++
		} else {
			streak = 0
		}
	}
	if err := syscall.Kill(victim.pid(), syscall.SIGKILL); err != nil {
		return fmt.Errorf("demo: kill %s: %w", victim.label, os.NewSyscallError("kill", err))
	}
	before := d.counts() // the survivors' puts when it died
	victim.wait()
	killedAck := victim.acked.Load()
	before[victim.label] = killedAck
	holder := d.s.Stats().Writer
	d.at("SIGKILL %s (pid %d) while it writes; acknowledged puts: %s", victim.label, victim.pid(), d.countString(before))
	if holder.Held && holder.PID == victim.pid() && !holder.Alive {
		d.printf("         it died holding the writer lock: the next writer will find the holder dead,")
		d.printf("         take the lock over and repair any half-done transaction from the journal")
	} else {
		d.printf("         it died between two transactions (it did not hold the writer lock)")
	}

	if err := d.sleepUntil(d.t0.Add(dur * 7 / 10)); err != nil {
		return err
	}
	mid := d.counts()
	var rising []string
	for i := 1; i <= demoWriters; i++ {
		if i != demoVictim {
			l := fmt.Sprintf("w%d", i)
			rising = append(rising, fmt.Sprintf("%s +%d", l, mid[l]-before[l]))
		}
	}
	d.at("puts since the kill: %s: the other writers keep going", strings.Join(rising, ", "))

	if err := d.sleepUntil(d.t0.Add(dur)); err != nil {
		return err
	}
	d.at("stopping the workers")
	for _, p := range d.procs {
		p.stdin.Close()
	}
	for _, p := range d.procs {
		select {
		case <-p.eof:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
		}
		p.wait()
	}

	d.report(victim, before)
	d.verifyStore(victim, killedAck)
	return nil
}

// start starts worker role number id.
func (d *demo) start(exe, role string, id int) error {
	p, err := startWorker(d.ctx, d.c.stderr, fmt.Sprintf("%c%d", role[0], id), exe,
		"demo-worker", role, d.name, strconv.Itoa(id), strconv.Itoa(demoKeys), strconv.Itoa(demoWriters))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d.procs = append(d.procs, p)
	return nil
}

// killAll kills and reaps every worker still running (after an error or an
// interrupt; a no-op after a clean stop).
func (d *demo) killAll() {
	for _, p := range d.procs {
		select {
		case <-p.eof:
		default:
			p.cmd.Process.Kill()
		}
		p.wait()
	}
}

func (d *demo) sleepUntil(t time.Time) error {
	select {
	case <-time.After(time.Until(t)):
		return nil
	case <-d.ctx.Done():
		return d.ctx.Err()
	}
}

// counts is each writer's acknowledged puts now.
func (d *demo) counts() map[string]int64 {
	m := map[string]int64{}
	for _, p := range d.procs[:demoWriters] {
		m[p.label] = p.acked.Load()
	}
	return m
}

func (d *demo) countString(m map[string]int64) string {
	var parts []string
	for _, p := range d.procs[:demoWriters] {
		parts = append(parts, fmt.Sprintf("%s %d", p.label, m[p.label]))
	}
	return strings.Join(parts, ", ")
}

// report prints what each worker did and checks the survivors kept
// writing and the readers saw only good values.
func (d *demo) report(victim *worker, before map[string]int64) {
	for _, p := range d.procs {
		if p == victim {
			d.printf("%-3s pid %-7d %d puts acknowledged, then killed", p.label, p.pid(), p.acked.Load())
			continue
		}
		line := p.doneLine()
		if p.err != nil || line == "" {
			d.fail("%s did not stop cleanly (%v)", p.label, p.err)
			continue
		}
		if p.label[0] == 'w' {
			var puts, takeovers int64
			if _, err := fmt.Sscanf(line, "done puts=%d takeovers=%d", &puts, &takeovers); err != nil {
				d.fail("%s: bad report %q", p.label, line)
				continue
			}
			note := ""
			switch {
			case takeovers == 1:
				note = ", took over the dead writer's lock"
			case takeovers > 1:
				note = fmt.Sprintf(", took over a dead writer's lock %d times", takeovers)
			}
			d.printf("%-3s pid %-7d %d puts (%d after the kill)%s", p.label, p.pid(), puts, puts-before[p.label], note)
			if puts <= before[p.label] {
				d.fail("%s wrote nothing after the kill", p.label)
			}
			p.acked.Store(puts)
			continue
		}
		var gets, found, bad, backwards int64
		if _, err := fmt.Sscanf(line, "done gets=%d found=%d bad=%d backwards=%d", &gets, &found, &bad, &backwards); err != nil {
			d.fail("%s: bad report %q", p.label, line)
			continue
		}
		d.printf("%-3s pid %-7d %d gets, %d found: %d values not their key's, %d older than one seen before",
			p.label, p.pid(), gets, found, bad, backwards)
		if bad > 0 || backwards > 0 {
			d.fail("%s saw %d wrong and %d stale values", p.label, bad, backwards)
		}
		if gets == 0 {
			d.fail("%s did not read", p.label)
		}
	}
}

// verifyStore checks the store and every acknowledged put.
func (d *demo) verifyStore(victim *worker, killedAck int64) {
	st := d.s.Stats()
	if st.Recoveries > 0 {
		d.printf("store: %d entries, %d commits; the transaction %s died in was repaired from the journal (recoveries: %d)",
			st.Entries, st.Commits, victim.label, st.Recoveries)
	} else {
		d.printf("store: %d entries, %d commits; %s died outside a transaction's changes, nothing to repair (recoveries: 0)",
			st.Entries, st.Commits, victim.label)
	}
	if err := d.s.Check(); err != nil {
		d.fail("Check: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	} else {
		d.printf("check: store passes Check (every invariant of the region holds)")
	}
	for i, p := range d.procs[:demoWriters] {
		id := i + 1
		acked := p.acked.Load()
		if p == victim {
			acked = killedAck
		}
		n, bad := verifyWriter(d.s, id, acked, p != victim)
		for _, b := range bad {
			d.fail("%s", b)
		}
		if p == victim && len(bad) == 0 {
			what := fmt.Sprintf("its %d acknowledged puts (keys w%d:0..w%d:%d)", acked, id, id, acked-1)
			if acked > demoKeys {
				what = fmt.Sprintf("the latest of its %d acknowledged puts", acked)
			}
			d.printf("killed writer %s: %d keys, %s, all present with Get", p.label, n, what)
		}
	}
	if len(d.fails) == 0 {
		d.printf("surviving writers: each of their keys holds exactly its last acknowledged put")
	}
}

// verifyWriter gets every key writer id wrote, given that its puts
// 0..acked-1 returned nil. exact says no put of it can have landed beyond
// acked (it stopped cleanly); a killed writer may have had more in flight.
// It returns how many keys it verified and the problems found.
func verifyWriter(s *store.Store, id int, acked int64, exact bool) (int, []string) {
	var bad []string
	n := 0
	for k := int64(0); k < min(acked, demoKeys); k++ {
		key := fmt.Sprintf("w%d:%d", id, k)
		want := k + (acked-1-k)/demoKeys*demoKeys // the last acknowledged seq for key
		v, err := s.Get([]byte(key))
		if err != nil {
			bad = append(bad, fmt.Sprintf("get %s (last acknowledged seq %d): %v", keyString(key), want, err))
		} else if seq, ok := parseDemoValue([]byte(key), v); !ok || seq%demoKeys != k {
			bad = append(bad, fmt.Sprintf("%s holds %s, not a value of its own", keyString(key), keyString(string(v))))
		} else if seq < want || (exact && seq != want) {
			bad = append(bad, fmt.Sprintf("%s holds seq %d, last acknowledged was %d", keyString(key), seq, want))
		} else {
			n++
		}
		if len(bad) >= 5 {
			bad = append(bad, "...")
			break
		}
	}
	return n, bad
}

// parseDemoValue reads the seq from a value "KEY|seq=S|pid=P" and checks
// it names key.
func parseDemoValue(key, v []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(v, append(append([]byte(nil), key...), "|seq="...))
	if !ok {
		return 0, false
	}
	num, _, ok := bytes.Cut(rest, []byte("|pid="))
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseInt(string(num), 10, 64)
	return seq, err == nil && seq >= 0
}

// demoWorker is the body of a worker process:
// demo-worker writer|reader STORE ID KEYS WRITERS.
func (c *cli) demoWorker(args []string) error {
	rest, err := c.parse(c.flags("demo-worker"), args, 5, 5)
	if err != nil {
		return err
	}
	role, id, keys, writers := rest[0], atoiPos(rest[2]), atoiPos(rest[3]), atoiPos(rest[4])
	if id <= 0 || keys <= 0 || writers <= 0 || (role != "writer" && role != "reader") {
		return usagef("bad arguments %q", rest)
	}
	c.name = rest[1]
	s, err := store.Open(c.name, &store.Options{LockTimeout: demoLockTimeout})
	if err != nil {
		return err
	}
	defer s.Close()
	var stop atomic.Bool
	go func() {
		io.Copy(io.Discard, c.stdin)
		stop.Store(true)
	}()
	fmt.Fprintf(c.stdout, "ready pid=%d\n", os.Getpid())
	if role == "writer" {
		return demoWrite(c, s, id, keys, &stop)
	}
	return demoRead(c, s, id, keys, writers, &stop)
}

func atoiPos(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// demoWrite puts until stopped, reporting acknowledged puts every few
// milliseconds.
func demoWrite(c *cli, s *store.Store, id, keys int, stop *atomic.Bool) error {
	var acked atomic.Int64
	quit, reported := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(reported)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		last := int64(-1)
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			// Loaded after the puts it counts returned: never ahead of them.
			if n := acked.Load(); n != last {
				fmt.Fprintf(c.stdout, "ack %d\n", n)
				last = n
			}
		}
	}()
	pid := os.Getpid()
	var key, val []byte
	var err error
	var n int64
	for ; !stop.Load(); n++ {
		key = fmt.Appendf(key[:0], "w%d:%d", id, n%int64(keys))
		val = fmt.Appendf(val[:0], "%s|seq=%d|pid=%d", key, n, pid)
		if err = s.Put(key, val); err != nil {
			break
		}
		acked.Store(n + 1)
	}
	close(quit)
	<-reported
	if err != nil {
		return failed(fmt.Sprintf("writer w%d: put %s", id, keyString(string(key))), err)
	}
	fmt.Fprintf(c.stdout, "ack %d\n", n)
	fmt.Fprintf(c.stdout, "done puts=%d takeovers=%d\n", n, s.Stats().TakeOversHere)
	return nil
}

// demoRead gets random keys until stopped and checks each value: it must
// name its key, and no key's seq may go backwards (a value once seen is
// never undone).
func demoRead(c *cli, s *store.Store, id, keys, writers int, stop *atomic.Bool) error {
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(id)))
	last := make([]int64, writers*keys)
	for i := range last {
		last[i] = -1
	}
	var gets, found, bad, backwards int64
	var key, buf []byte
	for !stop.Load() {
		w, k := rng.IntN(writers), rng.IntN(keys)
		key = fmt.Appendf(key[:0], "w%d:%d", w+1, k)
		v, err := s.GetAppend(buf[:0], key)
		gets++
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return failed(fmt.Sprintf("reader r%d: get %s", id, keyString(string(key))), err)
		}
		buf = v
		found++
		seq, ok := parseDemoValue(key, v)
		if !ok || seq%int64(keys) != int64(k) {
			if bad++; bad <= 3 {
				fmt.Fprintf(c.stderr, "shmkv demo: reader r%d: key %s holds %s, not a value of its own\n", id, keyString(string(key)), keyString(string(v)))
			}
			continue
		}
		i := w*keys + k
		if seq < last[i] {
			if backwards++; backwards <= 3 {
				fmt.Fprintf(c.stderr, "shmkv demo: reader r%d: key %s went back from seq %d to %d\n", id, keyString(string(key)), last[i], seq)
			}
		}
		last[i] = max(last[i], seq)
	}
	fmt.Fprintf(c.stdout, "done gets=%d found=%d bad=%d backwards=%d\n", gets, found, bad, backwards)
	return nil
}
