package main

// FuzzCLIArgs runs arbitrary command lines and stdin through Main. `go test`
// runs its seed corpus; to fuzz it for longer (any -fuzztime):
//
//	go test -run '^$' -fuzz '^FuzzCLIArgs$' -fuzztime 1h ./cmd/shmkv
//
// A failing input is written under cmd/shmkv/testdata/fuzz/FuzzCLIArgs/ and
// replays with go test -run 'FuzzCLIArgs/HASH'.

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// cliFuzzBound is how long one command may run before the target reports
// a hang.
const cliFuzzBound = 10 * time.Second

// cliFuzzMaxSize is the largest store an input may ask create for; larger
// ones are skipped (each would reserve that much of /dev/shm).
const cliFuzzMaxSize = 8 << 20

// longCommands run for seconds and start processes; inputs naming them are
// skipped.
var longCommands = map[string]bool{"demo": true, "bench": true, "demo-worker": true, "bench-worker": true}

// fuzzArgs splits the fuzz string on NUL into arguments and makes them
// harmless: a --store flag anywhere is dropped, so every command acts on
// the test's own store. ok is false for an input to skip: one naming a long
// command, or asking create for a big store.
func fuzzArgs(s string) (args []string, ok bool) {
	parts := strings.Split(s, "\x00")
	for i := 0; i < len(parts); i++ {
		a := parts[i]
		if longCommands[a] {
			return nil, false
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "store" {
			continue
		}
		if strings.HasPrefix(a, "-") && name == "size" {
			if !hasValue && i+1 < len(parts) {
				value = parts[i+1]
			}
			if n, err := parseStoreSize(value); err == nil && n > cliFuzzMaxSize {
				return nil, false
			}
		}
		args = append(args, a)
	}
	return args, true
}

func FuzzCLIArgs(f *testing.F) {
	seeds := []struct {
		args  string
		stdin string
		fresh bool
	}{
		{"get\x00k", "", false},
		{"get\x00--raw\x00bin", "", false},
		{"get\x00k\x00--json", "", false},
		{"get\x00--\x00-k", "", false},
		{"get\x00missing", "", false},
		{"get", "", true},
		{"put\x00k\x00v", "", true},
		{"put\x00k", "stdin \x00 bytes\n", false},
		{"put\x00-5\x00--\x00x", "", false},
		{"del\x00k", "", false},
		{"del\x00k\x00extra", "", false},
		{"incr\x00n\x00-3", "", false},
		{"incr\x00k", "", false},
		{"incr\x00n\x009223372036854775807", "", false},
		{"cas\x00k\x00v\x00w", "", false},
		{"cas\x00--absent\x00new\x00x", "", true},
		{"keys", "", false},
		{"keys\x00--json", "", false},
		{"keys\x00-0\x00b", "", false},
		{"stat", "", false},
		{"stat\x00--json", "", false},
		{"check", "", false},
		{"compact", "", false},
		{"create\x00--size\x00256K\x00--entries\x00100", "", true},
		{"create\x00--size=1K", "", true},
		{"create\x00--size\x00256K\x00--mode\x00999", "", true},
		{"create\x00--hugepages\x00nope\x00--size\x00256K", "", true},
		{"create", "", false},
		{"rm", "", false},
		{"rm\x00--force", "", true},
		{"ls", "", false},
		{"version", "", false},
		{"--version", "", false},
		{"help", "", false},
		{"help\x00put", "", false},
		{"put\x00-h", "", false},
		{"--timeout\x001ms\x00put\x00a\x00b", "", false},
		{"--timeout\x00x", "", false},
		{"--store", "", false},
		{"--nope", "", false},
		{"nope", "", false},
		{"", "", false},
		{"demo", "", false},
	}
	for _, s := range seeds {
		f.Add(s.args, []byte(s.stdin), s.fresh)
	}
	f.Fuzz(func(t *testing.T, argv string, stdin []byte, fresh bool) {
		args, ok := fuzzArgs(argv)
		if !ok {
			t.Skip("a long command or a big store")
		}
		name := storeName(t)
		if !fresh {
			s, err := store.Create(name, &store.Options{Size: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string]string{"k": "v", "n": "41", "-k": "dash", "bin": "\x00\xff"} {
				if err := s.Put([]byte(k), []byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
		}
		full := append([]string{"--store", name}, args...)
		done := make(chan int, 1)
		var stdout, stderr bytes.Buffer
		go func() {
			done <- Main(full, bytes.NewReader(stdin), &stdout, &stderr)
		}()
		select {
		case code := <-done:
			switch code {
			case exitOK, exitNotFound, exitUsage, exitError, exitNoStore, 130:
			default:
				t.Fatalf("shmkv %q: exit code %d, not a documented one; stderr:\n%s", full, code, stderr.String())
			}
		case <-time.After(cliFuzzBound):
			t.Fatalf("shmkv %q ran over %v", full, cliFuzzBound)
		}
	})
}
