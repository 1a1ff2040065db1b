package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/shmkv/shmkv/store"
)

// The invariants the snapshot tests' writers keep in every transaction:
// pair keys a<i> and b<i> hold the same value; the accounts acct<j> hold
// decimal balances that sum to snapTotal.
const snapTotal = 1000000

func pairKey(side byte, i int) []byte { return fmt.Appendf(nil, "%c%d", side, i) }
func acctKey(j int) []byte            { return fmt.Appendf(nil, "acct%d", j) }

// seedInvariants puts the pairs and accounts a snapshot test starts from.
func seedInvariants(s *store.Store, pairs, accounts int) error {
	for i := range pairs {
		err := s.Update(func(b *store.Batch) error {
			if err := b.Put(pairKey('a', i), []byte("0")); err != nil {
				return err
			}
			return b.Put(pairKey('b', i), []byte("0"))
		})
		if err != nil {
			return err
		}
	}
	for j := range accounts {
		bal := snapTotal / accounts
		if j == 0 {
			bal += snapTotal % accounts
		}
		if err := s.Put(acctKey(j), []byte(strconv.Itoa(bal))); err != nil {
			return err
		}
	}
	return nil
}

// checkInvariants checks a set of keys and values seen at one instant.
func checkInvariants(kv map[string]string, pairs, accounts int) error {
	if len(kv) != 2*pairs+accounts {
		return fmt.Errorf("%d keys, want %d", len(kv), 2*pairs+accounts)
	}
	for i := range pairs {
		a, b := kv[string(pairKey('a', i))], kv[string(pairKey('b', i))]
		if a != b {
			return fmt.Errorf("pair %d differs: a is %d bytes (%.12q), b %d bytes (%.12q)", i, len(a), a, len(b), b)
		}
	}
	sum := 0
	for j := range accounts {
		n, err := strconv.Atoi(kv[string(acctKey(j))])
		if err != nil {
			return fmt.Errorf("account %d: %v", j, err)
		}
		sum += n
	}
	if sum != snapTotal {
		return fmt.Errorf("the accounts sum to %d, want %d", sum, snapTotal)
	}
	return nil
}

// snapWriter updates pairs (values of drifting sizes, so blocks are freed,
// merged, split) and moves money between accounts, forever, printing "ack
// N" every 1000 transactions. Writer "x" also compacts the store every 500.
func snapWriter(name, id string, pairs, accounts int) error {
	s, err := store.Open(name, roleOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 7))
	fmt.Println("ready")
	for n := 1; ; n++ {
		if r.IntN(3) > 0 {
			i := r.IntN(pairs)
			v := bytes.Repeat([]byte(id), 1+r.IntN(1+(n/500)%800))
			v = binary.BigEndian.AppendUint64(v, uint64(n))
			err = s.Update(func(b *store.Batch) error {
				if err := b.Put(pairKey('a', i), v); err != nil {
					return err
				}
				return b.Put(pairKey('b', i), v)
			})
		} else {
			x, y := r.IntN(accounts), r.IntN(accounts)
			err = s.Update(func(b *store.Batch) error {
				bx, err := b.Get(acctKey(x))
				if err != nil {
					return err
				}
				by, err := b.Get(acctKey(y))
				if err != nil {
					return err
				}
				nx, _ := strconv.Atoi(string(bx))
				ny, _ := strconv.Atoi(string(by))
				amt := r.IntN(nx + 1)
				if x == y {
					return nil
				}
				if err := b.Put(acctKey(x), []byte(strconv.Itoa(nx-amt))); err != nil {
					return err
				}
				return b.Put(acctKey(y), []byte(strconv.Itoa(ny+amt)))
			})
		}
		if err != nil && !errors.Is(err, store.ErrFull) { // full at the peak of the sizes' drift: go on
			return err
		}
		if n%500 == 0 && id == "x" {
			// Compaction moves entries: new blocks, old ones freed.
			if _, err := s.Compact(context.Background()); err != nil {
				return err
			}
		}
		if n%1000 == 0 {
			fmt.Printf("ack %d\n", n)
		}
	}
}

// stallWriter accepts its first write, then blocks for ever.
type stallWriter struct{ n int }

func (w *stallWriter) Write(b []byte) (int, error) {
	if w.n++; w.n == 1 {
		return len(b), nil
	}
	fmt.Println("stalled")
	select {}
}

func dumpRole(role string, args []string) error {
	switch role {
	case "snap-writer": // snap-writer NAME ID PAIRS ACCOUNTS
		return snapWriter(args[0], args[1], atoi(args[2]), atoi(args[3]))
	case "dumper-stall": // dumper-stall NAME: starts a dump whose output blocks after its header
		s, err := store.Open(args[0], roleOpts)
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.DumpContext(context.Background(), &stallWriter{}, nil)
		return err
	case "dumper": // dumper NAME: dumps to nowhere, prints "ok" or the error's class
		s, err := store.Open(args[0], roleOpts)
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Println("ready")
		err = s.Dump(io.Discard)
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, store.ErrSnapshotLost):
			fmt.Println("lost:", err)
		default:
			return err
		}
	case "load": // load NAME FILE [replace]: store.Load, then "ok"
		f, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		d, err := store.NewDumpReader(f)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		if _, err := store.Load(context.Background(), args[0], d, &store.LoadOptions{Replace: len(args) > 2}); err != nil {
			return err
		}
		fmt.Println("ok")
	case "generation-reader": // generation-reader NAME MILLIS: opens NAME again and again; each store must be one generation, whole
		end := time.Now().Add(time.Duration(atoi(args[1])) * time.Millisecond)
		opens := map[string]int{}
		for time.Now().Before(end) {
			s, err := store.Open(args[0], &store.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			gen, err := storeGeneration(s)
			s.Close()
			if err != nil {
				return err
			}
			opens[gen]++
		}
		fmt.Printf("opens old %d new %d\n", opens["old"], opens["new"])
	case "latency": // latency NAME KEYS MILLIS: gets (3 in 4) and puts of random bench keys; prints the latencies' quantiles
		return latencyRole(args[0], atoi(args[1]), time.Duration(atoi(args[2]))*time.Millisecond)
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}

// benchKey is key i of the latency benchmark's store: 16 bytes.
func benchKey(k []byte, i int) {
	binary.LittleEndian.PutUint64(k, uint64(i)*0x9e3779b97f4a7c15)
	binary.LittleEndian.PutUint64(k[8:], uint64(i))
}

// latencyRole times each get and put, on random keys of keys, for d, and
// prints "get|put N p50 p99 p999 max" in nanoseconds.
func latencyRole(name string, keys int, d time.Duration) error {
	s, err := store.Open(name, roleOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 3))
	k, v, buf := make([]byte, 16), make([]byte, 100), make([]byte, 0, 128)
	gets, puts := make([]int64, 0, 1<<22), make([]int64, 0, 1<<21)
	fmt.Println("ready")
	for end := time.Now().Add(d); ; {
		benchKey(k, r.IntN(keys))
		start := time.Now()
		if start.After(end) {
			break
		}
		if r.IntN(4) == 0 {
			binary.LittleEndian.PutUint64(v, uint64(start.UnixNano()))
			if err := s.Put(k, v); err != nil {
				return err
			}
			puts = append(puts, int64(time.Since(start)))
		} else {
			if _, err := s.GetAppend(buf[:0], k); err != nil {
				return err
			}
			gets = append(gets, int64(time.Since(start)))
		}
	}
	for _, x := range []struct {
		what string
		l    []int64
	}{{"get", gets}, {"put", puts}} {
		slices.Sort(x.l)
		q := func(f float64) int64 { return x.l[min(int(f*float64(len(x.l))), len(x.l)-1)] }
		fmt.Printf("%s %d %d %d %d %d\n", x.what, len(x.l), q(0.5), q(0.99), q(0.999), x.l[len(x.l)-1])
	}
	return nil
}

// storeGeneration says which generation a store of the load --replace test
// is: every key "g<i>" holds "old" or every one "new", and the count is
// the generation's.
func storeGeneration(s *store.Store) (string, error) {
	gen, n := "", 0
	for k, v := range s.All() {
		if gen == "" {
			gen = string(v)
		}
		if string(v) != gen {
			return "", fmt.Errorf("key %q is %q, another is %q: two generations in one store", k, v, gen)
		}
		n++
	}
	want := map[string]int{"old": genOld, "new": genNew}[gen]
	if n != want || s.Len() != want {
		return "", fmt.Errorf("a %q store with %d keys (Len %d), want %d", gen, n, s.Len(), want)
	}
	return gen, nil
}

const genOld, genNew = 1000, 60000
