package tests

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/internal/shmtest"
	"github.com/shmkv/shmkv/store"
)

// TestCounterHelperProcess is not a test: it is the body of the helper
// processes of the counter and deadline tests, chosen by SHMKV_COUNTER_ROLE.
func TestCounterHelperProcess(t *testing.T) {
	role := os.Getenv("SHMKV_COUNTER_ROLE")
	if role == "" {
		t.Skip("helper process body; run by the counter tests")
	}
	name := os.Getenv("SHMKV_COUNTER_STORE")
	err := func() error {
		s, err := store.Open(name, roleOpts)
		if err != nil {
			return err
		}
		defer s.Close()
		switch role {
		case "incr": // SHMKV_COUNTER_N times Add(total, 1)
			n, _ := strconv.Atoi(os.Getenv("SHMKV_COUNTER_N"))
			for range n {
				if _, err := s.Add([]byte("total"), 1); err != nil {
					return err
				}
			}
			fmt.Println("done")
		case "hold": // holds the writer lock until stdin closes
			return s.Update(func(*store.Batch) error {
				fmt.Println("holding")
				bufio.NewReader(os.Stdin).ReadString('\n')
				return nil
			})
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func counterHelper(t *testing.T, name, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := shmtest.Self("TestCounterHelperProcess")
	cmd.Env = append(os.Environ(), append([]string{"SHMKV_COUNTER_ROLE=" + role, "SHMKV_COUNTER_STORE=" + name}, env...)...)
	cmd.Stderr = os.Stderr
	t.Cleanup(func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	})
	return cmd
}

// TestCounterAcrossProcesses: 4 processes each add 1 to one counter
// 10,000 times; the total is 40,000.
func TestCounterAcrossProcesses(t *testing.T) {
	const procs, each = 4, 10_000
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var cmds []*exec.Cmd
	for range procs {
		c := counterHelper(t, name, "incr", fmt.Sprintf("SHMKV_COUNTER_N=%d", each))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("incrementing process: %v", err)
		}
	}
	v, err := s.Get([]byte("total"))
	if err != nil || string(v) != strconv.Itoa(procs*each) {
		t.Fatalf("total = %q, %v; want %d", v, err, procs*each)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestWriteDeadlineNamesHolder: a process holds the writer lock and lives;
// a write with a deadline in another process gives up then, with an error
// that names the holder's pid.
func TestWriteDeadlineNamesHolder(t *testing.T) {
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, WriteTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := counterHelper(t, name, "hold")
	in, _ := c.StdinPipe()
	out, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if l, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(l) != "holding" {
		t.Fatalf("holder said %q", l)
	}
	start := time.Now()
	err = s.Put([]byte("k"), []byte("v"))
	if !errors.Is(err, store.ErrLockTimeout) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", c.Process.Pid)) {
		t.Fatalf("Put behind a live holder: %v; want ErrLockTimeout naming pid %d", err, c.Process.Pid)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("a 300ms WriteTimeout gave up after %v", d)
	}
	in.Close()
	if err := c.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	if err := s.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put after the holder let go: %v", err)
	}
}
