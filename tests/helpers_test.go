package tests

import (
	"os"
	"os/exec"
	"testing"

	"github.com/shmkv/shmkv/internal/shmtest"
	"github.com/shmkv/shmkv/store"
)

// storeName is unique to this test; the store is removed when the test
// ends, failed or not.
func storeName(t testing.TB) string {
	t.Helper()
	return shmtest.Name(t, "shmkv-xproc", store.Unlink)
}

// child is a helper process running one role (see shmtest.Child).
type child = shmtest.Child

// spawn starts the test binary as a helper process in role with args.
// extraEnv entries are KEY=VALUE.
func spawn(t testing.TB, role string, args []string, extraEnv ...string) *child {
	t.Helper()
	cmd := shmtest.Self("TestHelperProcess", append([]string{"--"}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{"SHMKV_ROLE=" + role}, extraEnv...)...)
	cmd.Stderr = os.Stderr
	return startChild(t, cmd)
}

// spawnHeld is spawn with a pipe on the helper's stdin, whose write end
// it returns: a helper that reads its stdin first can be started ahead of
// time and set going with a line.
func spawnHeld(t testing.TB, role string, args []string) (*child, *os.File) {
	t.Helper()
	cmd := shmtest.Self("TestHelperProcess", append([]string{"--"}, args...)...)
	cmd.Env = append(os.Environ(), "SHMKV_ROLE="+role)
	cmd.Stderr = os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = r
	t.Cleanup(func() { w.Close() }) // after the helper is killed: not an EOF it would report
	c := startChild(t, cmd)
	r.Close() // the helper has its own copy
	return c, w
}

// startChild starts cmd, whose stdout it reads line by line, and kills it
// when the test ends.
func startChild(t testing.TB, cmd *exec.Cmd) *child { t.Helper(); return shmtest.Start(t, cmd) }

// killed reports whether err is an exit by SIGKILL.
func killed(err error) bool { return shmtest.Killed(err) }
