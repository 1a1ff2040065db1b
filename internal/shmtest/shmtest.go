// Package shmtest holds the test helpers that the tests of store, tests
// and cmd/shmkv share: store names unique to a test, removed when it ends,
// and helper processes (the test binary run again in a role, or any
// command), which are real OS processes, killed when the test ends.
//
// It does not import package store, whose own tests use it: the caller
// passes the function that removes a store by name.
package shmtest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var nameSeq atomic.Int64

// NewName is a store name unique to this process: prefix, the pid and a
// sequence number. Nothing removes the store; see Name.
func NewName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nameSeq.Add(1))
}

// Name is NewName(prefix) for one test: unlink (store.Unlink) removes the
// store when the test ends, failed or not.
func Name(t testing.TB, prefix string, unlink func(name string) error) string {
	t.Helper()
	name := NewName(prefix)
	RemoveAtEnd(t, name, unlink)
	return name
}

// RemoveAtEnd has unlink remove the store name when the test ends; a store
// that is already gone is no error.
func RemoveAtEnd(t testing.TB, name string, unlink func(name string) error) {
	t.Cleanup(func() {
		if err := unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// Self is the test binary run again to run the test named test alone,
// with args after its flags (a role's arguments follow "--").
func Self(test string, args ...string) *exec.Cmd { return SelfAt(os.Args[0], test, args...) }

// SelfAt is Self for a copy of the test binary at bin (CopySelf).
func SelfAt(bin, test string, args ...string) *exec.Cmd {
	return exec.Command(bin, append([]string{"-test.run=^" + test + "$"}, args...)...)
}

// CopySelf copies the test binary into a directory of its own that every
// user may enter, for a helper process that runs as another user, and
// returns the copy's path. The directory goes when the test ends.
func CopySelf(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shmkv-test-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(os.Args[0]))
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Child is a helper process whose stdout is read line by line.
type Child struct {
	Cmd   *exec.Cmd
	Lines chan string // its stdout, line by line; closed at EOF
	Done  chan error  // its exit, once Lines is closed
}

// Start starts cmd, whose stdout it reads line by line, and kills it when
// the test ends.
func Start(t testing.TB, cmd *exec.Cmd) *Child {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{Cmd: cmd, Lines: make(chan string, 1<<16), Done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.Lines <- sc.Text()
		}
		close(c.Lines)
		c.Done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	return c
}

// Wait waits for the child to exit and returns its error; past timeout it
// kills the child and fails the test.
func (c *Child) Wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	var rest []string
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.Lines:
			if ok {
				rest = append(rest, l)
				continue
			}
			select {
			case err := <-c.Done:
				return err
			case <-deadline:
				t.Fatalf("helper %v did not exit within %v", c.Cmd.Args, timeout)
			}
		case <-deadline:
			c.Cmd.Process.Kill()
			t.Fatalf("helper %v did not exit within %v; last output %q", c.Cmd.Args, timeout, rest[max(len(rest)-5, 0):])
		}
	}
}

// Expect reads lines until one starts with prefix, and returns it.
func (c *Child) Expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.Lines:
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

// WaitWithin waits for cmd, started, to exit, and kills it if it runs
// past timeout; the error then says so.
func WaitWithin(cmd *exec.Cmd, timeout time.Duration) error {
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		return fmt.Errorf("killed after running %v: %w", timeout, err)
	}
	return err
}

// Killed reports whether err is an exit by SIGKILL.
func Killed(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && strings.Contains(ee.String(), "killed")
}
