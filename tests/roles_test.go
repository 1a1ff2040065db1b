package tests

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// TestHelperProcess is not a test: it is the body of the helper processes
// the other tests start. SHMKV_ROLE selects what it does; its arguments
// follow "--".
func TestHelperProcess(t *testing.T) {
	role := os.Getenv("SHMKV_ROLE")
	if role == "" {
		t.Skip("helper process body; run by the cross-process tests")
	}
	var args []string
	for i, a := range os.Args {
		if a == "--" {
			args = os.Args[i+1:]
			break
		}
	}
	if err := runRole(role, args); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

var roleOpts = &store.Options{LockTimeout: 50 * time.Millisecond}

func runRole(role string, args []string) error {
	switch role {
	case "put": // put NAME KEY VALUE...: one or more puts, then "ok"
		s, err := store.Open(args[0], roleOpts)
		if err != nil {
			return err
		}
		defer s.Close()
		for i := 1; i+1 < len(args); i += 2 {
			if err := s.Put([]byte(args[i]), []byte(args[i+1])); err != nil {
				return err
			}
		}
		fmt.Println("ok")
	case "get": // get NAME KEY: prints "value V" or "missing"
		s, err := store.Open(args[0], roleOpts)
		if err != nil {
			return err
		}
		defer s.Close()
		v, err := s.Get([]byte(args[1]))
		if errors.Is(err, store.ErrNotFound) {
			fmt.Println("missing")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Printf("value %s\n", v)
	case "mutate": // mutate NAME OP KEY [VALUE] [OLD]: one mutation, then "ok"
		s, err := store.Open(args[0], roleOpts)
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Println("ready")
		k := []byte(args[2])
		switch args[1] {
		case "put":
			err = s.Put(k, []byte(args[3]))
		case "del":
			err = s.Delete(k)
		case "cas":
			_, err = s.CompareAndSwap(k, []byte(args[4]), []byte(args[3]))
		case "batch2": // the same key twice, and a key put then deleted
			err = s.Update(func(b *store.Batch) error {
				b.Put(k, []byte("v1"))
				b.Put(k, []byte(args[3]))
				b.Put([]byte("transient"), []byte("x"))
				return b.Delete([]byte("transient"))
			})
		case "batchlz": // puts lq=VALUE, then KEY=VALUE (both of their old sizes)
			err = s.Update(func(b *store.Batch) error {
				if err := b.Put([]byte("lq"), []byte(args[3])); err != nil {
					return err
				}
				return b.Put(k, []byte(args[3]))
			})
		case "batchbig": // puts KEY#0 and KEY#1 = "small", then KEY=VALUE
			err = s.Update(func(b *store.Batch) error {
				for i := range 2 {
					if err := b.Put([]byte(fmt.Sprintf("%s#%d", k, i)), []byte("small")); err != nil {
						return err
					}
				}
				return b.Put(k, []byte(args[3]))
			})
		case "batch": // puts KEY=VALUE, KEY#i=VALUE for i < 5, deletes "victim"
			err = s.Update(func(b *store.Batch) error {
				for i := range 5 {
					if err := b.Put([]byte(fmt.Sprintf("%s#%d", k, i)), []byte(args[3])); err != nil {
						return err
					}
				}
				if err := b.Delete([]byte("victim")); err != nil {
					return err
				}
				return b.Put(k, []byte(args[3]))
			})
		}
		if err != nil {
			return err
		}
		fmt.Println("ok")
	case "writer": // writer NAME ID N: puts "w<ID>:<i%keys>" = "<key>=<i>", prints "ack i"
		s, err := store.Open(args[0], roleOpts)
		if err != nil {
			return err
		}
		defer s.Close()
		id, n := args[1], atoi(args[2])
		for i := 0; n == 0 || i < n; i++ {
			k := fmt.Sprintf("w%s:%d", id, i%50)
			v := fmt.Sprintf("%s=%d%s", k, i, strings.Repeat("x", i%200))
			if err := s.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
			fmt.Printf("ack %d\n", i)
		}
	case "reader": // reader NAME WRITERS MILLIS: gets random writer keys, checks each value is its key's
		s, err := store.Open(args[0], roleOpts)
		if err != nil {
			return err
		}
		defer s.Close()
		writers, d := atoi(args[1]), time.Duration(atoi(args[2]))*time.Millisecond
		reads, hits := 0, 0
		buf := make([]byte, 0, 512)
		for end := time.Now().Add(d); time.Now().Before(end); reads++ {
			k := fmt.Sprintf("w%d:%d", rand.IntN(writers), rand.IntN(50))
			v, err := s.GetAppend(buf[:0], []byte(k))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			hits++
			key, rest, ok := strings.Cut(string(v), "=")
			if !ok || key != k {
				return fmt.Errorf("read %q for key %q: a value of another key, or torn", v, k)
			}
			digits := strings.TrimRight(rest, "x")
			i := atoi(digits)
			if len(rest)-len(digits) != i%200 || fmt.Sprint(i) != digits {
				return fmt.Errorf("read %q for key %q: torn value", v, k)
			}
		}
		fmt.Printf("reads %d hits %d\n", reads, hits)
	case "growth-reader": // growth-reader NAME: see growthReader
		return growthReader(args[0])
	case "torture-writer": // torture-writer NAME ID [STAGE]: random mutations on keys t<ID>:<k> forever; STAGE: growth, "-" to read it from stdin first
		if len(args) > 2 {
			stage := args[2]
			if stage == "-" {
				// Started ahead of its turn: it waits, its start-up
				// done, for its stage.
				l, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil {
					return fmt.Errorf("waiting for the stage: %w", err)
				}
				stage = strings.TrimSpace(l)
			}
			x, err := strconv.ParseFloat(stage, 64)
			if err != nil {
				return err
			}
			return tortureWriter(args[0], args[1], true, x)
		}
		return tortureWriter(args[0], args[1], false, 0)
	case "torture-reader": // torture-reader NAME WRITERS KEYS STATIC: validates every value it reads, forever
		return tortureReader(args[0], atoi(args[1]), atoi(args[2]), atoi(args[3]))
	case "compact-writer": // compact-writer NAME: overwrites c:<k> with drifting sizes and compacts, forever
		return compactWriter(args[0])
	case "compact-reader": // compact-reader NAME: validates values of c:<k> until "stop" appears
		return compactReader(args[0])
	case "attached-reader": // attached-reader NAME: a read-write Store that only reads, forever
		s, err := store.Open(args[0], roleOpts)
		if err != nil {
			return err
		}
		fmt.Println("attached")
		buf := make([]byte, 0, 256)
		for {
			k := fmt.Sprintf("w0:%d", rand.IntN(50))
			v, err := s.GetAppend(buf[:0], []byte(k))
			if err == nil && !strings.HasPrefix(string(v), k+"=") {
				return fmt.Errorf("read %q for %q", v, k)
			}
		}
	case "lin-client": // lin-client NAME ID N BALLAST: see linClient
		return linClient(args[0], args[1], atoi(args[2]), linBallastKeys(atoi(args[3])))
	case "openorcreate": // openorcreate NAME ID: joins the store, puts its key
		s, err := store.OpenOrCreate(args[0], &store.Options{Size: 1 << 20, LockTimeout: 50 * time.Millisecond})
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.Put([]byte("p"+args[1]), []byte(args[1])); err != nil {
			return err
		}
		fmt.Println("ok")
	case "open": // open NAME: prints the error class of opening it
		s, err := store.Open(args[0], nil)
		switch {
		case err == nil:
			s.Close()
			fmt.Println("opened")
		case errors.Is(err, os.ErrPermission):
			fmt.Println("permission:", err)
		default:
			fmt.Println("error:", err)
		}
	default:
		return dumpRole(role, args) // dump_roles_test.go
	}
	return nil
}
