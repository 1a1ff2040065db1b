package tests

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/store"
)

// monotonic reads CLOCK_MONOTONIC, which every process on the host shares.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

var linKeys = []string{"a", "b", "c"}

// linClient waits for the key "go" to appear (the start signal), then runs n random operations on a
// few keys, printing each with its call and return times:
// "op KIND KEY ARG OLD CALL RET RESULT VALUE" (ARG, OLD, VALUE "-" when
// none).
func linClient(name, id string, n int) error {
	s, err := store.Open(name, roleOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	for {
		if ok, err := s.Has([]byte("go")); err != nil {
			return err
		} else if ok {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	seen := []string{}
	for i := range n {
		key := linKeys[rand.IntN(len(linKeys))]
		arg, old, result, value := "-", "-", "ok", "-"
		var kind string
		call := monotonic()
		var ret int64
		switch rand.IntN(4) {
		case 0, 1:
			kind = "get"
			v, err := s.Get([]byte(key))
			ret = monotonic()
			switch {
			case errors.Is(err, store.ErrNotFound):
				result = "absent"
			case err != nil:
				return err
			default:
				value = string(v)
				seen = append(seen, value)
			}
		case 2:
			kind = "put"
			arg = fmt.Sprintf("c%s-%d", id, i)
			if rand.IntN(4) == 0 {
				kind = "del"
				arg = "-"
				err := s.Delete([]byte(key))
				ret = monotonic()
				if errors.Is(err, store.ErrNotFound) {
					result = "absent"
				} else if err != nil {
					return err
				}
				break
			}
			err := s.Put([]byte(key), []byte(arg))
			ret = monotonic()
			if err != nil {
				return err
			}
		case 3:
			kind = "cas"
			arg = fmt.Sprintf("c%s-%d", id, i)
			var oldb []byte
			if len(seen) > 0 && rand.IntN(4) != 0 {
				old = seen[rand.IntN(len(seen))]
				oldb = []byte(old)
			}
			call = monotonic()
			ok, err := s.CompareAndSwap([]byte(key), oldb, []byte(arg))
			ret = monotonic()
			if err != nil {
				return err
			}
			if !ok {
				result = "mismatch"
			}
		}
		fmt.Fprintf(out, "op %s %s %s %s %d %d %s %s\n", kind, key, arg, old, call, ret, result, value)
	}
	return nil
}
