package shmopen

import (
	"errors"
	"fmt"
	"strings"
)

// NameMax is the longest object name POSIX allows after the leading slash
// (NAME_MAX on Linux).
const NameMax = 255

// ErrInvalidName is returned when a name is not a valid POSIX shared-memory
// object name.
var ErrInvalidName = errors.New("shmkv: invalid shared-memory object name")

// ErrNoCgo is returned by Open and Unlink in a build without cgo.
var ErrNoCgo = errors.New("shmkv: shared-memory objects need a build with cgo (CGO_ENABLED=1)")

// Normalize checks name and returns it in the form shm_open expects: one
// leading slash, no other slash, at most NameMax bytes after the slash, and
// none of "", ".", ".." or a NUL byte. "demo" is accepted as "/demo".
func Normalize(name string) (string, error) {
	base := strings.TrimPrefix(name, "/")
	switch {
	case base == "":
		return "", fmt.Errorf("%w %q: empty", ErrInvalidName, name)
	case base == "." || base == "..":
		return "", fmt.Errorf("%w %q: reserved name", ErrInvalidName, name)
	case strings.Contains(base, "/"):
		return "", fmt.Errorf("%w %q: only one leading slash is allowed", ErrInvalidName, name)
	case strings.IndexByte(base, 0) >= 0:
		return "", fmt.Errorf("%w %q: contains a NUL byte", ErrInvalidName, name)
	case len(base) > NameMax:
		return "", fmt.Errorf("%w %q: %d bytes, at most %d allowed", ErrInvalidName, name, len(base), NameMax)
	}
	return "/" + base, nil
}
