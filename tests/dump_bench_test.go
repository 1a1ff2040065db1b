package tests

import (
	"encoding/binary"
	"fmt"
	"github.com/shmkv/shmkv/internal/units"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// BenchmarkLatencyDuringDump measures get and put latency in another
// process on a big store (SHMKV_BENCH_SIZE bytes, default 1 GiB, filled
// to about 75% with 16-byte keys and 100-byte values), with nothing else
// running, then while this process dumps the store to a file again and
// again, then while it backs it up again and again. It reports p99 (and
// p99.9, max) of each, in microseconds, and the dumps' rate. Run once:
//
//	go test -run '^$' -bench LatencyDuringDump -benchtime 1x ./tests
func BenchmarkLatencyDuringDump(b *testing.B) {
	size := int64(1 << 30)
	if v := os.Getenv("SHMKV_BENCH_SIZE"); v != "" {
		n, err := units.ParseSize(v)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	keys := int(size / 128 * 3 / 4)
	name := storeName(b)
	s, err := store.Create(name, &store.Options{Size: size})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	k, v := make([]byte, 16), make([]byte, 100)
	for i := 0; i < keys; {
		err := s.Update(func(bt *store.Batch) error {
			for j := 0; j < 1000 && i < keys; j, i = j+1, i+1 {
				benchKey(k, i)
				if err := bt.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("store of %s with %d keys filled in %v", units.FormatBytes(size), keys, time.Since(start).Round(time.Millisecond))
	dir := b.TempDir()
	const phase = 8 * time.Second
	b.ResetTimer()
	for _, what := range []string{"idle", "dump", "backup"} {
		c := spawn(b, "latency", []string{name, fmt.Sprint(keys), fmt.Sprint(phase.Milliseconds())})
		c.Expect(b, "ready", time.Minute)
		var runs int
		var bytes int64
		var busy time.Duration
		for end := time.Now().Add(phase); what != "idle" && time.Now().Before(end); runs++ {
			f, err := os.Create(filepath.Join(dir, "out"))
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if what == "dump" {
				err = s.Dump(f)
			} else {
				err = s.Backup(f)
			}
			busy += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := f.Seek(0, io.SeekCurrent)
			bytes += n
			f.Close()
			os.Remove(f.Name())
		}
		for _, op := range []string{"get", "put"} {
			line := c.Expect(b, op, 2*phase)
			var n, p50, p99, p999, mx int64
			fmt.Sscanf(strings.TrimPrefix(line, op), "%d %d %d %d %d", &n, &p50, &p99, &p999, &mx)
			us := func(ns int64) float64 { return float64(ns) / 1e3 }
			b.ReportMetric(us(p99), fmt.Sprintf("%s-p99-us/%s", op, what))
			b.Logf("%-6s %s: %d ops, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us", what, op, n, us(p50), us(p99), us(p999), us(mx))
		}
		if err := c.Wait(b, time.Minute); err != nil {
			b.Fatal(err)
		}
		if runs > 0 {
			b.Logf("%-6s %d runs, %s written at %.0f MB/s", what, runs, units.FormatBytes(bytes), float64(bytes)/busy.Seconds()/1e6)
		}
	}
	_ = binary.LittleEndian
}
