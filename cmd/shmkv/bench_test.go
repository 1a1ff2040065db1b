package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/internal/shmtest"
	"github.com/shmkv/shmkv/store"
)

// TestBench builds the real binary and runs a short bench: a reader and a
// writer process, then the scaling run.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs worker processes")
	}
	bin := shmkvBinary(t)
	runBench := func(t *testing.T, args ...string) string {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, append([]string{"bench"}, args...)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		prefix := fmt.Sprintf("shmkv-bench-%d", cmd.Process.Pid)
		// The bench removes its store itself; this is for when it fails.
		removeAtEnd(t, prefix)
		err := shmtest.WaitWithin(cmd, time.Minute)
		t.Logf("bench %q:\n%s", args, stdout.String())
		if err != nil {
			t.Fatalf("bench: %v\nstderr: %s", err, stderr.String())
		}
		if stderr.Len() > 0 {
			t.Errorf("bench wrote to stderr: %s", stderr.String())
		}
		if left, _ := filepath.Glob(filepath.Join(store.ShmDir, prefix+"*")); len(left) > 0 {
			t.Errorf("bench left %q behind", left)
		}
		return stdout.String()
	}

	t.Run("readers and writers", func(t *testing.T) {
		o := runBench(t, "--readers", "1", "--writers", "1", "--duration", "300ms", "--keys", "1000")
		// role pid ops ops/s p50 p99 allocs. The reader's loop must not
		// allocate: allocs counts the whole process's over the run, so the
		// runtime's own (a rare one, under load) is allowed, but not one in
		// 100,000 reads, which a loop that allocated would far pass.
		if m := regexp.MustCompile(`(?m)^\s+reader\s+\d+\s+(\d+)\s+\S+\s+\S*s\s+\S*s\s+(\d+)$`).FindStringSubmatch(o); m == nil {
			t.Errorf("no reader line")
		} else if ops, _ := strconv.Atoi(m[1]); ops == 0 {
			t.Errorf("the reader did no reads")
		} else if allocs, _ := strconv.Atoi(m[2]); allocs*100000 > ops {
			t.Errorf("the reader allocated %d times in %d reads", allocs, ops)
		}
		for _, re := range []string{
			`(?m)^\s+role\s+pid\s+ops\s+ops/s\s+p50\s+p99\s+allocs$`,
			`(?m)^\s+writer\s+\d+\s+[1-9]\d*\s+\S+\s+\S*s\s+\S*s\s+\d+$`,
			`(?m)^\s+readers\s+total\s+[1-9]\d*\s+`,
			`(?m)^\s+writers\s+total\s+[1-9]\d*\s+`,
			`removed store "shmkv-bench-\d+"`,
		} {
			if !regexp.MustCompile(re).MatchString(o) {
				t.Errorf("output does not match %s", re)
			}
		}
		if n := len(regexp.MustCompile(`(?m)^\s+(reader|writer)\s+\d+\s`).FindAllString(o, -1)); n != 2 {
			t.Errorf("%d lines of processes, want 2", n)
		}
	})
	t.Run("scaling", func(t *testing.T) {
		o := runBench(t, "--scaling", "--duration", "100ms", "--keys", "1000")
		if n := len(regexp.MustCompile(`(?m)^\s+reader\s+\d+\s`).FindAllString(o, -1)); n != 3 {
			t.Errorf("%d lines of reader processes, want 1 then 2", n)
		}
		if regexp.MustCompile(`(?m)^\s+writers?\s+(\d+|total)\s`).MatchString(o) {
			t.Errorf("scaling ran writers")
		}
		if !regexp.MustCompile(`(?m)^2 readers / 1 reader: \d+\.\d\dx total get throughput$`).MatchString(o) {
			t.Errorf("no ratio line")
		}
	})
	t.Run("scaling-rounds", func(t *testing.T) {
		o := runBench(t, "--scaling", "--rounds", "3", "--duration", "100ms", "--keys", "1000")
		if n := len(regexp.MustCompile(`(?m)^\s+reader\s+\d+\s`).FindAllString(o, -1)); n != 9 {
			t.Errorf("%d lines of reader processes, want 3 rounds of 1 then 2", n)
		}
		if n := len(regexp.MustCompile(`(?m)^round \d: 1 reader \S+ gets/s, 2 readers \S+ gets/s: \d+\.\d\dx$`).FindAllString(o, -1)); n != 3 {
			t.Errorf("%d round lines, want 3", n)
		}
		if !regexp.MustCompile(`(?m)^\(the median of 3 rounds; lowest \d+\.\d\dx, highest \d+\.\d\dx\)$`).MatchString(o) {
			t.Errorf("no median line")
		}
	})
}

// TestBenchWorkerStops runs a worker in-process: it refuses to start
// without "go", and stops at once when its stdin ends, as it does when the
// bench dies.
func TestBenchWorkerStops(t *testing.T) {
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := make([]byte, 16)
	for i := range 10 {
		benchKeyInto(key, i)
		if err := s.Put(key, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"bench-worker", "reader", name, "1", "10", "16", "1", "1m"}
	stdout, stderr, code := run("", args...)
	if code != 3 || !strings.Contains(stderr, "no start signal") || !strings.HasPrefix(stdout, "ready pid=") {
		t.Errorf("without go: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, role := range []string{"reader", "writer"} {
		args[1] = role
		t0 := time.Now()
		stdout, stderr, code = run("go\n", args...)
		if code != 0 || !strings.Contains(stdout, "\ndone ops=") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", role, code, stdout, stderr)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("%s ran %v after its stdin ended; want it to stop", role, d)
		}
		st, err := parseBenchDone(strings.TrimSpace(stdout[strings.Index(stdout, "done "):]))
		if err != nil || st.ops < 1 || st.hist.quantile(0.5) <= 0 {
			t.Errorf("%s: report %+v, %v", role, st, err)
		}
	}
	if err := s.Check(); err != nil {
		t.Errorf("after the writer: %v", err)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--readers", "0", "--writers", "0"},
		{"bench", "--readers", "-1"},
		{"bench", "--scaling", "--readers", "2"},
		{"bench", "--scaling", "--writers", "1"},
		{"bench", "--rounds", "3"},
		{"bench", "--scaling", "--rounds", "0"},
		{"bench", "--duration", "1ms"},
		{"bench", "--keys", "0"},
		{"bench", "--key-size", "7"},
		{"bench", "--value-size", "-1"},
		{"bench", "--keys", "1000000000", "--value-size", "1000"},
		{"bench", "extra"},
		{"bench-worker", "reader", "x"},
		{"bench-worker", "both", "x", "1", "10", "16", "1", "1s"},
	} {
		if _, stderr, code := run("", args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d; stderr %q", args, code, exitUsage, stderr)
		}
	}
}

func TestBenchKey(t *testing.T) {
	// 16 bytes: the layout of store/bench_test.go's benchKey.
	k := make([]byte, 16)
	i := uint64(12345)
	benchKeyInto(k, int(i))
	if binary.LittleEndian.Uint64(k) != i*0x9E3779B97F4A7C15 || binary.LittleEndian.Uint64(k[8:]) != i {
		t.Errorf("benchKeyInto(16 bytes, 12345) = %x", k)
	}
	for _, size := range []int{8, 11, 16, 40} {
		seen := map[string]bool{}
		for i := range 1000 {
			k := make([]byte, size)
			benchKeyInto(k, i)
			if seen[string(k)] {
				t.Fatalf("size %d: key %d repeats", size, i)
			}
			seen[string(k)] = true
		}
	}
}

func TestLatHist(t *testing.T) {
	// Every bucket's midpoint falls in it, and indexes grow with values.
	last := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 100, 127, 128, 1000, 12345, 1 << 20, 1<<40 + 7, 1<<63 + 5, 1<<64 - 1} {
		i := latIndex(v)
		if i < last || i >= latBuckets || latIndex(latValue(i)) != i {
			t.Errorf("latIndex(%d) = %d (previous %d), midpoint %d", v, i, last, latValue(i))
		}
		if v >= 64 {
			if err := float64(latValue(i)) / float64(v); err < 0.96 || err > 1.04 {
				t.Errorf("value %d: bucket midpoint %d", v, latValue(i))
			}
		}
		last = i
	}
	var h latHist
	for v := 1; v <= 1000; v++ {
		h.add(time.Duration(v) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		if got := h.quantile(tc.q); got < tc.want*97/100 || got > tc.want*103/100 {
			t.Errorf("quantile(%v) = %v, want about %v", tc.q, got, tc.want)
		}
	}
	var back latHist
	if err := back.parse(h.encode()); err != nil || back != h {
		t.Errorf("encode/parse round trip: %v", err)
	}
	var empty latHist
	if err := back.parse(empty.encode()); err != nil || empty.quantile(0.5) != 0 {
		t.Errorf("empty histogram: %v", err)
	}
	if err := back.parse("3:x"); err == nil {
		t.Errorf("parse accepts a bad bucket")
	}
}
