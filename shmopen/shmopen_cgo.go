//go:build cgo

package shmopen

/*
#cgo LDFLAGS: -lrt
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

static int shmkv_shm_open(const char *name, int oflag, mode_t mode, int *err) {
	int fd = shm_open(name, oflag, mode);
	*err = fd < 0 ? errno : 0;
	return fd;
}

static int shmkv_shm_unlink(const char *name, int *err) {
	int rc = shm_unlink(name);
	*err = rc < 0 ? errno : 0;
	return rc;
}
*/
import "C"

import (
	"os"
	"syscall"
	"unsafe"
)

// Open calls shm_open(name, flag|O_CLOEXEC, perm) and returns the descriptor.
// name is normalized first (see Normalize). flag takes os.O_RDONLY, os.O_RDWR,
// os.O_CREATE, os.O_EXCL and os.O_TRUNC.
func Open(name string, flag int, perm os.FileMode) (int, error) {
	n, err := Normalize(name)
	if err != nil {
		return -1, err
	}
	cs := C.CString(n)
	defer C.free(unsafe.Pointer(cs))
	var cerr C.int
	fd := C.shmkv_shm_open(cs, C.int(flag|syscall.O_CLOEXEC), C.mode_t(perm.Perm()), &cerr)
	if fd < 0 {
		return -1, &os.PathError{Op: "shm_open", Path: n, Err: syscall.Errno(cerr)}
	}
	return int(fd), nil
}

// Unlink calls shm_unlink(name). Processes that have the object mapped keep
// their mapping; the name is free for a new object at once.
func Unlink(name string) error {
	n, err := Normalize(name)
	if err != nil {
		return err
	}
	cs := C.CString(n)
	defer C.free(unsafe.Pointer(cs))
	var cerr C.int
	if C.shmkv_shm_unlink(cs, &cerr) < 0 {
		return &os.PathError{Op: "shm_unlink", Path: n, Err: syscall.Errno(cerr)}
	}
	return nil
}
