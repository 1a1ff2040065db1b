//go:build !cgo

package shmopen

import "os"

// Open returns ErrNoCgo: shm_open needs cgo.
func Open(name string, flag int, perm os.FileMode) (int, error) {
	if _, err := Normalize(name); err != nil {
		return -1, err
	}
	return -1, &os.PathError{Op: "shm_open", Path: name, Err: ErrNoCgo}
}

// Unlink returns ErrNoCgo: shm_unlink needs cgo.
func Unlink(name string) error {
	if _, err := Normalize(name); err != nil {
		return err
	}
	return &os.PathError{Op: "shm_unlink", Path: name, Err: ErrNoCgo}
}
