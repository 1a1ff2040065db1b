package main

// shmkv bench: throughput and latency of reader and writer processes
// sharing one store. The bench creates a fresh store sized for the
// workload, fills it with every key, and starts the workers (this binary
// re-executed with the hidden command bench-worker) together:
//
//	parent                           worker
//	                                 opens the store, prefaults its mapping,
//	                                 builds its keys
//	                          <----  ready pid=P
//	(every worker ready)
//	go                        ---->  runs for the duration
//	                          <----  done ops=N ns=T allocs=A hist=I:C,I:C,...
//
// Readers GetAppend uniform random keys into one reused buffer; writers Put
// a value of --value-size to uniform random keys (every key exists, so
// every put overwrites). One op in benchSampleEvery is timed into a
// log-linear histogram, which the worker sends whole so that the parent can
// merge the percentiles of a role. Only the timed loop is measured: ops/s
// is a worker's ops over its own elapsed time, and allocs counts the heap
// allocations of the whole worker process during the loop.
//
// A worker stops at the end of its duration, or as soon as its stdin
// reaches EOF after "go": the parent closes it to stop early, and the
// kernel closes it if the parent dies, so no worker outlives the bench.

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/store"
)

const (
	// benchSampleEvery: one op in this many is timed. Power of two.
	benchSampleEvery = 16
	// benchMinKeySize is the shortest key: 8 bytes hold any key index.
	benchMinKeySize = 8
	// benchMaxProcs bounds readers+writers.
	benchMaxProcs = 256
	// benchStartTimeout bounds how long a worker may take to get ready,
	// and to report once its duration is over.
	benchStartTimeout = 30 * time.Second
)

// benchConfig is the workload.
type benchConfig struct {
	readers, writers int
	dur              time.Duration
	keys             int
	keySize          int
	valueSize        int
}

func (c *cli) bench(args []string) error {
	fl := c.flags("bench")
	var cfg benchConfig
	fl.IntVar(&cfg.readers, "readers", 1, "number of reader processes")
	fl.IntVar(&cfg.writers, "writers", 1, "number of writer processes")
	fl.DurationVar(&cfg.dur, "duration", 3*time.Second, "how long the workers run")
	fl.IntVar(&cfg.keys, "keys", 100000, "number of keys, all in the store before the workers start")
	fl.IntVar(&cfg.keySize, "key-size", 16, "`BYTES` per key (at least 8)")
	fl.IntVar(&cfg.valueSize, "value-size", 100, "`BYTES` per value")
	scaling := fl.Bool("scaling", false, "run readers only, 1 process then 2, and print the throughput ratio")
	rounds := fl.Int("rounds", 1, "with --scaling: run the 1- and 2-reader phases this many times, alternating, and report the median ratio (this VM's speed drifts between phases)")
	if _, err := c.parse(fl, args, 0, 0); err != nil {
		return err
	}
	explicit := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	switch {
	case *scaling && (explicit["readers"] || explicit["writers"]):
		return usagef("--scaling sets the processes itself (1 reader, then 2): drop --readers and --writers")
	case explicit["rounds"] && !*scaling:
		return usagef("--rounds goes with --scaling")
	case *rounds < 1 || *rounds > 100:
		return usagef("--rounds must be in [1, 100]")
	case cfg.readers < 0 || cfg.writers < 0:
		return usagef("--readers and --writers must be >= 0")
	case !*scaling && cfg.readers+cfg.writers == 0:
		return usagef("no processes: want --readers or --writers above 0")
	case cfg.readers+cfg.writers > benchMaxProcs:
		return usagef("%d processes: at most %d", cfg.readers+cfg.writers, benchMaxProcs)
	case cfg.dur < 100*time.Millisecond:
		return usagef("--duration must be at least 100ms")
	case cfg.keys < 1:
		return usagef("--keys must be at least 1")
	case cfg.keySize < benchMinKeySize || cfg.keySize > store.MaxKeySize:
		return usagef("--key-size must be in [%d, %d]", benchMinKeySize, store.MaxKeySize)
	case cfg.valueSize < 0 || cfg.valueSize > store.MaxValueSize:
		return usagef("--value-size must be in [0, %d]", store.MaxValueSize)
	case float64(cfg.keys)*float64(cfg.valueSize+cfg.keySize+64) > 1<<38:
		// Keeps the size below (and the arithmetic far from) int64's limit;
		// the store's own limit is 1 TiB.
		return usagef("--keys %d of --value-size %d need more than 512 GiB", cfg.keys, cfg.valueSize)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: cannot find this program to start the workers: %w", err)
	}
	opts := &store.Options{
		// The index stays at most 80% full, and the heap holds every
		// entry twice over, so overwrites never meet ErrFull. Size
		// without MaxSize: a store of a fixed size, so that no growth
		// step (an fallocate of up to 64 MiB) lands in a timed phase.
		MaxEntries: int64(cfg.keys) + int64(cfg.keys)/4,
		Size:       int64(cfg.keys)*int64(cfg.valueSize+cfg.keySize+64)*2 + 16<<20,
	}
	var b *bench
	err = c.withScratchStore("bench", opts, func(ctx context.Context, s *store.Store) error {
		b = &bench{c: c, ctx: ctx, exe: exe, cfg: cfg, name: c.name}
		return b.run(s, *scaling, *rounds)
	})
	if err != nil {
		return err
	}
	b.printf("")
	b.printf("removed store %q", b.name)
	return nil
}

// bench is the state of one run.
type bench struct {
	c    *cli
	ctx  context.Context
	exe  string
	cfg  benchConfig
	name string
}

func (b *bench) printf(format string, args ...any) {
	fmt.Fprintf(b.c.stdout, format+"\n", args...)
}

// run fills the store and runs the phases.
func (b *bench) run(s *store.Store, scaling bool, rounds int) error {
	cfg := &b.cfg
	st := s.Stats()
	b.printf("shmkv bench: store %q: %s, index of %d entries (%s)", b.name, units.FormatBytes(st.Size), st.MaxEntries, st.Path)
	t0 := time.Now()
	key := make([]byte, cfg.keySize)
	val := make([]byte, cfg.valueSize)
	for i := range cfg.keys {
		benchKeyInto(key, i)
		if err := s.Put(key, val); err != nil {
			return failed(fmt.Sprintf("bench: fill: put key %d", i), err)
		}
		if i%4096 == 0 && b.ctx.Err() != nil {
			return b.ctx.Err()
		}
	}
	b.printf("  %d keys of %d B, values of %d B, filled in %s; uniform random keys; %d CPUs",
		cfg.keys, cfg.keySize, cfg.valueSize, formatLatency(time.Since(t0)), runtime.NumCPU())
	b.printf("  readers: GetAppend into a reused buffer; writers: Put (overwrite); latency: 1 op in %d timed", benchSampleEvery)
	if !scaling {
		_, err := b.phase(cfg.readers, cfg.writers)
		return err
	}
	var ratios []float64
	var summary []string
	for r := range rounds {
		one, err := b.phase(1, 0)
		if err != nil {
			return err
		}
		two, err := b.phase(2, 0)
		if err != nil {
			return err
		}
		ratio := two.rate("reader") / one.rate("reader")
		ratios = append(ratios, ratio)
		summary = append(summary, fmt.Sprintf("round %d: 1 reader %s gets/s, 2 readers %s gets/s: %.2fx",
			r+1, formatRate(one.rate("reader")), formatRate(two.rate("reader")), ratio))
	}
	b.printf("")
	for _, line := range summary {
		b.printf("%s", line)
	}
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + median) / 2
	}
	b.printf("2 readers / 1 reader: %.2fx total get throughput", median)
	if rounds > 1 {
		b.printf("(the median of %d rounds; lowest %.2fx, highest %.2fx)", rounds, ratios[0], ratios[len(ratios)-1])
	}
	return nil
}

// benchProc is one worker process and its role, "reader" or "writer".
type benchProc struct {
	*worker
	role string
}

// benchStat is what one process, or one role in total, did.
type benchStat struct {
	ops    int64
	rate   float64 // ops/s over the process's own elapsed time
	allocs int64
	hist   *latHist
}

// phaseResult is one phase: each process's figures, and each role's.
type phaseResult struct {
	procs []*benchProc
	stats []benchStat
	roles map[string]*benchStat
}

// rate is the total ops/s of a role.
func (r *phaseResult) rate(role string) float64 {
	if t := r.roles[role]; t != nil {
		return t.rate
	}
	return 0
}

// phase runs readers and writers together for the duration and prints
// their table.
func (b *bench) phase(readers, writers int) (*phaseResult, error) {
	b.printf("")
	b.printf("%s, %s, %v:", plural(readers, "reader"), plural(writers, "writer"), b.cfg.dur)
	var procs []*benchProc
	defer func() {
		// After an error: kill and reap what still runs. After a clean
		// run every worker has exited and this only closes pipes.
		for _, p := range procs {
			p.stdin.Close()
			select {
			case <-p.eof:
			default:
				p.cmd.Process.Kill()
			}
			p.wait()
		}
	}()
	for _, r := range []struct {
		role string
		n    int
	}{{"reader", readers}, {"writer", writers}} {
		for id := 1; id <= r.n; id++ {
			p, err := b.start(r.role, id)
			if err != nil {
				return nil, err
			}
			procs = append(procs, p)
		}
	}
	for _, p := range procs {
		select {
		case <-p.ready:
		case <-p.eof:
			return nil, fmt.Errorf("bench: worker %s exited before it was ready: %v", p.label, p.wait())
		case <-b.ctx.Done():
			return nil, b.ctx.Err()
		case <-time.After(benchStartTimeout):
			return nil, fmt.Errorf("bench: worker %s not ready after %v", p.label, benchStartTimeout)
		}
	}
	// The start barrier: every worker is waiting for this line.
	for _, p := range procs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			return nil, fmt.Errorf("bench: start %s: %w", p.label, err)
		}
	}
	deadline := time.After(b.cfg.dur + benchStartTimeout)
	for _, p := range procs {
		select {
		case <-p.eof:
		case <-b.ctx.Done():
			return nil, b.ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("bench: worker %s still running %v after its duration", p.label, benchStartTimeout)
		}
		if err := p.wait(); err != nil || p.doneLine() == "" {
			return nil, fmt.Errorf("bench: worker %s (pid %d) failed: %v", p.label, p.pid(), err)
		}
	}
	res := &phaseResult{procs: procs, roles: map[string]*benchStat{}}
	for _, p := range procs {
		st, err := parseBenchDone(p.doneLine())
		if err != nil {
			return nil, fmt.Errorf("bench: worker %s: %w", p.label, err)
		}
		res.stats = append(res.stats, st)
		t := res.roles[p.role]
		if t == nil {
			t = &benchStat{hist: new(latHist)}
			res.roles[p.role] = t
		}
		// The workers ran at the same time: their rates add up.
		t.ops += st.ops
		t.rate += st.rate
		t.allocs += st.allocs
		t.hist.merge(st.hist)
	}
	b.printTable(res)
	return res, nil
}

// printTable prints one line per process, then a total per role.
func (b *bench) printTable(r *phaseResult) {
	widths := []int{-8, 8, 12, 10, 9, 9, 8} // negative: left-aligned
	line := func(cols ...string) {
		var sb strings.Builder
		sb.WriteString(" ")
		for i, col := range cols {
			// Pad by runes, not bytes: "µs" is two bytes, two columns.
			w := widths[i]
			pad := strings.Repeat(" ", max(abs(w)-utf8.RuneCountInString(col), 0))
			sb.WriteString(" ")
			if w < 0 {
				sb.WriteString(col + pad)
			} else {
				sb.WriteString(pad + col)
			}
		}
		b.printf("%s", strings.TrimRight(sb.String(), " "))
	}
	line("role", "pid", "ops", "ops/s", "p50", "p99", "allocs")
	stat := func(role, pid string, st *benchStat) {
		line(role, pid, strconv.FormatInt(st.ops, 10), formatRate(st.rate),
			formatLatency(st.hist.quantile(0.50)), formatLatency(st.hist.quantile(0.99)), strconv.FormatInt(st.allocs, 10))
	}
	for i, p := range r.procs {
		stat(p.role, strconv.Itoa(p.pid()), &r.stats[i])
	}
	for _, role := range []string{"reader", "writer"} {
		if t := r.roles[role]; t != nil {
			stat(role+"s", "total", t)
		}
	}
}

func abs(n int) int { return max(n, -n) }

// start starts worker role number id.
func (b *bench) start(role string, id int) (*benchProc, error) {
	cfg := &b.cfg
	w, err := startWorker(b.ctx, b.c.stderr, fmt.Sprintf("%c%d", role[0], id), b.exe,
		"bench-worker", role, b.name, strconv.Itoa(id),
		strconv.Itoa(cfg.keys), strconv.Itoa(cfg.keySize), strconv.Itoa(cfg.valueSize), cfg.dur.String())
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	p := &benchProc{worker: w, role: role}
	return p, nil
}

// parseBenchDone reads "done ops=N ns=T allocs=A hist=I:C,...".
func parseBenchDone(line string) (benchStat, error) {
	st := benchStat{hist: new(latHist)}
	var ns int64
	var hist string
	if _, err := fmt.Sscanf(line, "done ops=%d ns=%d allocs=%d hist=%s", &st.ops, &ns, &st.allocs, &hist); err != nil || ns <= 0 {
		return st, fmt.Errorf("bad report %q", line)
	}
	if err := st.hist.parse(hist); err != nil {
		return st, fmt.Errorf("bad histogram in its report: %w", err)
	}
	st.rate = float64(st.ops) / (float64(ns) / 1e9)
	return st, nil
}

// benchWorker is the body of a worker process:
// bench-worker reader|writer STORE ID KEYS KEYSIZE VALUESIZE DURATION.
func (c *cli) benchWorker(args []string) error {
	rest, err := c.parse(c.flags("bench-worker"), args, 7, 7)
	if err != nil {
		return err
	}
	role, id := rest[0], atoiPos(rest[2])
	keys, keySize, valueSize := atoiPos(rest[3]), atoiPos(rest[4]), atoiPos(rest[5])
	dur, derr := time.ParseDuration(rest[6])
	if (role != "reader" && role != "writer") || id <= 0 || keys <= 0 || keySize < benchMinKeySize || valueSize < 0 || derr != nil || dur <= 0 {
		return usagef("bad arguments %q", rest)
	}
	c.name = rest[1]
	// Readers map the store read-only: they write nothing to it anyway.
	// Populate: the first touch of each page must not land in the timed loop.
	s, err := store.Open(c.name, &store.Options{ReadOnly: role == "reader", Populate: true})
	if err != nil {
		return err
	}
	defer s.Close()

	keyBuf := make([]byte, keys*keySize)
	for i := range keys {
		benchKeyInto(keyBuf[i*keySize:(i+1)*keySize], i)
	}
	var op func(key []byte) error
	if role == "reader" {
		buf := make([]byte, 0, valueSize)
		op = func(key []byte) error {
			var err error
			buf, err = s.GetAppend(buf[:0], key)
			return err
		}
	} else {
		val := make([]byte, valueSize)
		var n uint64
		op = func(key []byte) error {
			if len(val) >= 8 {
				n++
				binary.LittleEndian.PutUint64(val, n)
			}
			return s.Put(key, val)
		}
	}
	rng := rand.NewPCG(uint64(os.Getpid()), uint64(id))
	hist := new(latHist)

	in := bufio.NewReader(c.stdin)
	fmt.Fprintf(c.stdout, "ready pid=%d\n", os.Getpid())
	if line, err := in.ReadString('\n'); err != nil || line != "go\n" {
		return fmt.Errorf("bench worker %s%d: no start signal (%q, %v): the bench is gone", role[:1], id, line, err)
	}
	// From here on nothing should allocate: the drain buffer and the
	// goroutine exist before the count starts.
	var stop atomic.Bool
	drain := make([]byte, 512)
	go func() {
		for {
			if _, err := in.Read(drain); err != nil {
				break
			}
		}
		stop.Store(true)
	}()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs

	start := time.Now()
	end := start.Add(dur)
	nkeys := uint64(keys)
	var ops int64
	for done := false; !done; {
		hi, _ := bits.Mul64(rng.Uint64(), nkeys) // uniform in [0, keys)
		key := keyBuf[hi*uint64(keySize) : (hi+1)*uint64(keySize)]
		if ops%benchSampleEvery != 0 {
			err = op(key)
		} else {
			t := time.Now()
			err = op(key)
			now := time.Now()
			hist.add(now.Sub(t))
			// The clock is read only here: the end is checked once per
			// sample, which is often enough.
			done = now.After(end) || stop.Load()
		}
		if err != nil {
			return failed(fmt.Sprintf("bench worker %s%d: key %d", role[:1], id, hi), err)
		}
		ops++
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(c.stdout, "done ops=%d ns=%d allocs=%d hist=%s\n", ops, elapsed.Nanoseconds(), ms.Mallocs-mallocs, hist.encode())
	return nil
}

// benchKeyInto writes key number i into k (len(k) >= 8): the index in the
// last 8 bytes, little-endian, so keys are distinct; before it, the
// repeated bytes of i times the 64-bit golden ratio. With 16 bytes this is
// store/bench_test.go's benchKey.
func benchKeyInto(k []byte, i int) {
	var mix [8]byte
	binary.LittleEndian.PutUint64(mix[:], uint64(i)*0x9E3779B97F4A7C15)
	head := k[:len(k)-8]
	for j := range head {
		head[j] = mix[j%8]
	}
	binary.LittleEndian.PutUint64(k[len(k)-8:], uint64(i))
}

// latHist is a histogram of latencies in nanoseconds, log-linear: exact
// below 2*latSub ns, then latSub buckets per power of two, so a bucket's
// midpoint is within 1/(2*latSub) (1.6%) of every value in it.
type latHist [latBuckets]uint64

const (
	latSub     = 32
	latSubBits = 5 // log2(latSub)
	// latBuckets covers every uint64: the top value has 64 bits.
	latBuckets = (64-latSubBits)*latSub + latSub
)

func latIndex(ns uint64) int {
	if ns < 2*latSub {
		return int(ns)
	}
	e := bits.Len64(ns) - latSubBits - 1 // ns>>e is in [latSub, 2*latSub)
	return e*latSub + int(ns>>e)
}

// latValue is the midpoint of bucket i.
func latValue(i int) uint64 {
	if i < 2*latSub {
		return uint64(i)
	}
	e := i/latSub - 1
	low := uint64(i%latSub+latSub) << e
	return low + (uint64(1)<<e)/2
}

func (h *latHist) add(d time.Duration) { h[latIndex(uint64(max(d, 0)))]++ }

func (h *latHist) merge(o *latHist) {
	for i, n := range o {
		h[i] += n
	}
}

// quantile is the latency below which a fraction q of the samples lie.
func (h *latHist) quantile(q float64) time.Duration {
	var total uint64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	var seen uint64
	for i, n := range h {
		if seen += n; seen >= rank {
			return time.Duration(latValue(i))
		}
	}
	return 0
}

// encode writes the non-empty buckets as "I:C,I:C" ("-" if none).
func (h *latHist) encode() string {
	var b []byte
	for i, n := range h {
		if n == 0 {
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ':')
		b = strconv.AppendUint(b, n, 10)
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

func (h *latHist) parse(s string) error {
	if s == "-" {
		return nil
	}
	for _, f := range strings.Split(s, ",") {
		is, ns, ok := strings.Cut(f, ":")
		i, err1 := strconv.Atoi(is)
		n, err2 := strconv.ParseUint(ns, 10, 64)
		if !ok || err1 != nil || err2 != nil || i < 0 || i >= latBuckets {
			return fmt.Errorf("bad bucket %q", f)
		}
		h[i] += n
	}
	return nil
}

// formatRate is an ops/s figure with a unit.
func formatRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

// formatLatency shows three significant digits at most.
func formatLatency(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return d.Round(time.Millisecond).String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
