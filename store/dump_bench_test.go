package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// fillBench puts n keys of 16 bytes with values of 100 bytes.
func fillBench(b *testing.B, s *Store, n int) {
	b.Helper()
	k, v := make([]byte, 16), make([]byte, 100)
	for i := 0; i < n; {
		err := s.Update(func(bt *Batch) error {
			for j := 0; j < 1000 && i < n; j, i = j+1, i+1 {
				binary.LittleEndian.PutUint64(k, uint64(i)*0x9e3779b97f4a7c15)
				binary.LittleEndian.PutUint64(k[8:], uint64(i))
				binary.LittleEndian.PutUint64(v, uint64(i))
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
}

// BenchmarkDumpLoad1M dumps a store of 1,000,000 keys (16 B keys, 100 B
// values) to a file and loads the file into a new store, and, in the same
// run, copies the store's object from /dev/shm to a file in the same
// directory with cp: the baseline. Each iteration does all three; the
// metrics are each one's bytes (of the dump file; of the object for cp)
// and keys per second, and the dump's and load's byte rates over cp's.
// Run it once per round: go test -run '^$' -bench DumpLoad1M -benchtime 1x -count 5 ./store
func BenchmarkDumpLoad1M(b *testing.B) {
	const n = 1_000_000
	src := newStore(b, &Options{Size: 160 << 20, MaxEntries: 1_050_000})
	fillBench(b, src, n)
	dir := b.TempDir()
	dumpFile, rawFile := filepath.Join(dir, "d.dump"), filepath.Join(dir, "raw")
	var cpT, dumpT, loadT time.Duration
	var dumpBytes int64
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if out, err := exec.Command("cp", src.Path(), rawFile).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		cpT += time.Since(start)
		os.Remove(rawFile)

		f, err := os.Create(dumpFile)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := src.Dump(f); err != nil {
			b.Fatal(err)
		}
		dumpT += time.Since(start)
		f.Close()
		fi, _ := os.Stat(dumpFile)
		dumpBytes = fi.Size()

		name := testName(b)
		f, _ = os.Open(dumpFile)
		start = time.Now()
		d, err := NewDumpReader(f)
		if err != nil {
			b.Fatal(err)
		}
		p, err := Load(context.Background(), name, d, nil)
		if err != nil || p.Keys != n {
			b.Fatalf("load: %d keys, %v", p.Keys, err)
		}
		loadT += time.Since(start)
		f.Close()
		Remove(name)
		os.Remove(dumpFile)
	}
	b.StopTimer()
	secs := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	cpRate := float64(src.Stats().Size) / secs(cpT) / 1e6
	dumpRate := float64(dumpBytes) / secs(dumpT) / 1e6
	loadRate := float64(dumpBytes) / secs(loadT) / 1e6
	b.ReportMetric(cpRate, "cp-MB/s")
	b.ReportMetric(dumpRate, "dump-MB/s")
	b.ReportMetric(n/secs(dumpT), "dump-keys/s")
	b.ReportMetric(dumpRate/cpRate, "dump/cp")
	b.ReportMetric(loadRate, "load-MB/s")
	b.ReportMetric(n/secs(loadT), "load-keys/s")
	b.ReportMetric(loadRate/cpRate, "load/cp")
}

// BenchmarkBackup1M is BenchmarkDumpLoad1M for backup and restore.
func BenchmarkBackup1M(b *testing.B) {
	const n = 1_000_000
	src := newStore(b, &Options{Size: 160 << 20, MaxEntries: 1_050_000})
	fillBench(b, src, n)
	dir := b.TempDir()
	bakFile, rawFile := filepath.Join(dir, "b.bak"), filepath.Join(dir, "raw")
	var cpT, bakT, resT time.Duration
	var bakBytes int64
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if out, err := exec.Command("cp", src.Path(), rawFile).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		cpT += time.Since(start)
		os.Remove(rawFile)

		f, _ := os.Create(bakFile)
		start = time.Now()
		if err := src.Backup(f); err != nil {
			b.Fatal(err)
		}
		bakT += time.Since(start)
		f.Close()
		fi, _ := os.Stat(bakFile)
		bakBytes = fi.Size()

		name := testName(b)
		f, _ = os.Open(bakFile)
		start = time.Now()
		if _, err := Restore(context.Background(), name, f, nil); err != nil {
			b.Fatal(err)
		}
		resT += time.Since(start)
		f.Close()
		Remove(name)
		os.Remove(bakFile)
	}
	b.StopTimer()
	// Restore runs Check on what it restored: most of its time.
	start := time.Now()
	if err := src.Check(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds()), "check-ms")
	secs := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	cpRate := float64(src.Stats().Size) / secs(cpT) / 1e6
	b.ReportMetric(cpRate, "cp-MB/s")
	b.ReportMetric(float64(bakBytes)/secs(bakT)/1e6, "backup-MB/s")
	b.ReportMetric(float64(bakBytes)/secs(bakT)/1e6/cpRate, "backup/cp")
	b.ReportMetric(float64(bakBytes)/secs(resT)/1e6, "restore-MB/s")
	b.ReportMetric(n/secs(resT), "restore-keys/s")
}

// BenchmarkLoad1M loads a dump of 1,000,000 keys (16 B keys, 100 B
// values) into a new store, from memory.
func BenchmarkLoad1M(b *testing.B) {
	const n = 1_000_000
	src := newStore(b, &Options{Size: 160 << 20, MaxEntries: 1_050_000})
	fillBench(b, src, n)
	var buf bytes.Buffer
	if err := src.Dump(&buf); err != nil {
		b.Fatal(err)
	}
	src.Close()
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for range b.N {
		name := testName(b)
		d, err := NewDumpReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		if p, err := Load(context.Background(), name, d, nil); err != nil || p.Keys != n {
			b.Fatalf("load: %d keys, %v", p.Keys, err)
		}
		b.StopTimer()
		Remove(name)
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkPutDuringSnapshot is the cost a snapshot adds to writers: puts
// of random keys into a store of 1,000,000 keys from another Store, with
// no snapshot, and with one held (its taker drains the copies but reads
// nothing, so every page a put changes is copied once: the worst case).
func BenchmarkPutDuringSnapshot(b *testing.B) {
	const n = 1_000_000
	src := newStore(b, &Options{Size: 160 << 20, MaxEntries: 1_050_000})
	fillBench(b, src, n)
	w, err := Open(src.Name(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	for _, held := range []bool{false, true} {
		b.Run(fmt.Sprintf("snapshot=%v", held), func(b *testing.B) {
			if held {
				sn, err := src.takeSnapshot(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				defer sn.end()
			}
			k, v := make([]byte, 16), make([]byte, 100)
			r := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				i := r.IntN(n)
				binary.LittleEndian.PutUint64(k, uint64(i)*0x9e3779b97f4a7c15)
				binary.LittleEndian.PutUint64(k[8:], uint64(i))
				if err := w.Put(k, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
