package tests

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

var nameSeq atomic.Int64

// storeName is unique to this test; the store is removed when the test
// ends, failed or not.
func storeName(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("shmkv-xproc-%d-%d", os.Getpid(), nameSeq.Add(1))
	t.Cleanup(func() {
		if err := store.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// child is a helper process running one role.
type child struct {
	cmd   *exec.Cmd
	lines chan string // its stdout, line by line; closed at EOF
	done  chan error
}

// spawn starts the test binary as a helper process in role with args.
// extraEnv entries are KEY=VALUE.
func spawn(t testing.TB, role string, args []string, extraEnv ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{"SHMKV_ROLE=" + role}, extraEnv...)...)
	cmd.Stderr = os.Stderr
	return startChild(t, cmd)
}

// startChild starts cmd, whose stdout it reads line by line, and kills it
// when the test ends.
func startChild(t testing.TB, cmd *exec.Cmd) *child {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 1<<16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	return c
}

// wait waits for the child to exit and returns its error.
func (c *child) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	var rest []string
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if ok {
				rest = append(rest, l)
				continue
			}
			select {
			case err := <-c.done:
				return err
			case <-deadline:
				t.Fatalf("helper %v did not exit within %v", c.cmd.Args, timeout)
			}
		case <-deadline:
			c.cmd.Process.Kill()
			t.Fatalf("helper %v did not exit within %v; last output %q", c.cmd.Args, timeout, tail(rest))
		}
	}
}

// expect reads lines until one starts with prefix, and returns it.
func (c *child) expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("helper exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("helper did not print %q within %v", prefix, timeout)
		}
	}
}

func tail(s []string) []string {
	if len(s) > 5 {
		return s[len(s)-5:]
	}
	return s
}

// killed reports whether err is an exit by SIGKILL.
func killed(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && strings.Contains(ee.String(), "killed")
}
