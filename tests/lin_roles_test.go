package tests

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
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

// linKeys are the keys the clients contend on; linBallast are more keys,
// written less often, whose values of many sizes lie all over the heap
// between them.
var linKeys, linBallast = []string{"a", "b", "c"}, linBallastKeys(60)

func linBallastKeys(n int) []string {
	var ks []string
	for i := range n {
		ks = append(ks, "z"+strconv.Itoa(i))
	}
	return ks
}

// linSweep is how many operations a client's value sizes take to sweep
// from a few bytes up to the most and back (sizeDrift): the sweeps up
// leave the heap in pieces too small for the new values.
const linSweep = 500

// linMostHot and linMostBallast are the largest value sizes on linKeys and
// linBallast.
const linMostHot, linMostBallast = 4095, 1400

// linValue is the value a history names NAME ("c<client>-<op>.<size>"):
// a torture value of that size (tortureValue), so that a client can tell
// a whole value of the key from anything else.
func linValue(key, name string) []byte {
	return tortureValue(key, name, atoi(name[strings.LastIndexByte(name, '.')+1:]))
}

// linName is the name of v, a value read from key, or why v is not one
// written for key.
func linName(key string, v []byte) (string, error) {
	if err := checkTortureValue(key, v); err != nil {
		return "", err
	}
	return strings.Split(string(v), "|")[1], nil
}

// linClient waits for the key "go" to appear (the start signal), then runs
// n random operations, seven in ten on linKeys and the rest on ballast,
// printing each with its call and return times:
// "op KIND KEY ARG OLD CALL RET RESULT VALUE" (ARG, OLD, VALUE "-" when
// none). Values are written as linValue of their name, and the history
// holds only names. Their sizes drift from a few bytes up to linMostHot
// (linMostBallast on ballast keys) and back every linSweep operations.
// The test makes sure the store owes every put room (fragment, or room to
// grow), so an ErrFull fails the client.
func linClient(name, id string, n int, ballast []string) error {
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
	seen := map[string][]string{} // names read, by key
	for i := range n {
		key, most := linKeys[rand.IntN(len(linKeys))], linMostHot
		if rand.IntN(10) < 3 {
			key, most = ballast[rand.IntN(len(ballast))], linMostBallast
		}
		size := driftSize(sizeDrift(float64(i%linSweep)/linSweep), most)
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
				if value, err = linName(key, v); err != nil {
					return err
				}
				seen[key] = append(seen[key], value)
			}
		case 2:
			kind = "put"
			arg = fmt.Sprintf("c%s-%d.%d", id, i, size)
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
			v := linValue(key, arg)
			call = monotonic()
			err := s.Put([]byte(key), v)
			ret = monotonic()
			if err != nil {
				return err
			}
		case 3:
			kind = "cas"
			arg = fmt.Sprintf("c%s-%d.%d", id, i, size)
			var oldb []byte
			if ks := seen[key]; len(ks) > 0 && rand.IntN(4) != 0 {
				old = ks[rand.IntN(len(ks))]
				oldb = linValue(key, old)
			}
			newb := linValue(key, arg)
			call = monotonic()
			ok, err := s.CompareAndSwap([]byte(key), oldb, newb)
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
