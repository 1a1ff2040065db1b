package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/shmkv/shmkv/store"
)

// Torture values describe themselves, so a reader can tell a whole value
// of the right key from anything else: KEY|VID|FILL|N where FILL is N
// copies of one letter chosen by VID.
func tortureValue(key, vid string, n int) []byte {
	c := byte('a' + len(vid)%26)
	for _, b := range []byte(vid) {
		c = 'a' + (c+b)%26
	}
	return []byte(fmt.Sprintf("%s|%s|%s|%d", key, vid, strings.Repeat(string(c), n), n))
}

// checkTortureValue reports why v cannot be a value written for key.
func checkTortureValue(key string, v []byte) error {
	parts := strings.Split(string(v), "|")
	if len(parts) != 4 || parts[0] != key {
		return fmt.Errorf("value %.60q is not one written for key %q", v, key)
	}
	n, err := strconv.Atoi(parts[3])
	if err != nil || len(parts[2]) != n {
		return fmt.Errorf("value %.60q for %q is torn (fill %d bytes, says %s)", v, key, len(parts[2]), parts[3])
	}
	if want := tortureValue(key, parts[1], n); string(want) != string(v) {
		return fmt.Errorf("value %.60q for %q is torn", v, key)
	}
	return nil
}

const tortureKeys = 16

// tortureWriter does random puts, deletes and CASes on its own keys. Before
// each it prints "pre OP KEY VID" and after it "ack OP KEY VID" or
// "full OP KEY" (ErrFull) or "miss OP KEY" (not found, CAS mismatch), so
// the parent knows every acknowledged mutation and the one in flight.
func tortureWriter(name, id string) error {
	s, err := store.Open(name, roleOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	pid := os.Getpid()
	out := bufioWriter()
	for seq := 0; ; seq++ {
		key := fmt.Sprintf("t%s:%d", id, rand.IntN(tortureKeys))
		vid := fmt.Sprintf("%d-%d", pid, seq)
		// Sizes from tiny to large enough that a few fill the store, so
		// freed blocks are reused and ErrFull happens.
		n := rand.IntN(64)
		if rand.IntN(8) == 0 {
			n = rand.IntN(40 << 10)
		}
		v := tortureValue(key, vid, n)
		op := []string{"put", "put", "del", "cas"}[rand.IntN(4)]
		fmt.Fprintf(out, "pre %s %s %s %d\n", op, key, vid, n)
		out.Flush()
		var err error
		ok := true
		switch op {
		case "put":
			err = s.Put([]byte(key), v)
		case "del":
			err = s.Delete([]byte(key))
		case "cas":
			var old []byte
			old, err = s.Get([]byte(key))
			if errors.Is(err, store.ErrNotFound) {
				old, err = nil, nil
			}
			if err == nil {
				ok, err = s.CompareAndSwap([]byte(key), old, v)
			}
		}
		switch {
		case errors.Is(err, store.ErrFull):
			fmt.Fprintf(out, "full %s %s\n", op, key)
		case errors.Is(err, store.ErrNotFound) || !ok:
			fmt.Fprintf(out, "miss %s %s\n", op, key)
		case err != nil:
			return err
		default:
			fmt.Fprintf(out, "ack %s %s %s %d\n", op, key, vid, n)
		}
		out.Flush()
	}
}

func tortureReader(name string, writers int) error {
	s, err := store.Open(name, &store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	buf := make([]byte, 0, 64<<10)
	for i := 0; ; i++ {
		key := fmt.Sprintf("t%d:%d", rand.IntN(writers), rand.IntN(tortureKeys))
		v, err := s.GetAppend(buf[:0], []byte(key))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := checkTortureValue(key, v); err != nil {
			return err
		}
		if i%100000 == 0 {
			fmt.Printf("reads %d\n", i)
		}
	}
}
