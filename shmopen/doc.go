// Package shmopen opens and unlinks POSIX shared-memory objects (shm_open(3),
// shm_unlink(3)), the only part of shmkv that needs cgo.
//
// x/sys/unix offers System V shared memory but not the POSIX calls, so this
// package wraps glibc's shm_open and shm_unlink (linked with -lrt). Errors come
// back as *os.PathError wrapping the errno, so callers can test them with
// errors.Is(err, fs.ErrNotExist), fs.ErrExist or fs.ErrPermission.
//
// Without cgo the package still builds (so `CGO_ENABLED=0 go vet ./...` works)
// but Open and Unlink return ErrNoCgo.
package shmopen
