package shmopen

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestNormalize(t *testing.T) {
	long := strings.Repeat("a", NameMax)
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"demo", "/demo", true},
		{"/demo", "/demo", true},
		{"/" + long, "/" + long, true},
		{long + "a", "", false},
		{"", "", false},
		{"/", "", false},
		{"//demo", "", false},
		{"a/b", "", false},
		{"/a/b", "", false},
		{".", "", false},
		{"/..", "", false},
		{"a\x00b", "", false},
	}
	for _, c := range cases {
		got, err := Normalize(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q, ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("Normalize(%q) error %v does not wrap ErrInvalidName", c.in, err)
		}
	}
}

func TestOpenUnlinkErrors(t *testing.T) {
	name := fmt.Sprintf("/shmkv-shmopen-test-%d", os.Getpid())
	t.Cleanup(func() { Unlink(name) })

	if _, err := Open(name, os.O_RDWR, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of an absent object: %v, want fs.ErrNotExist", err)
	}
	fd, err := Open(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	if _, err := os.Stat("/dev/shm" + name); err != nil {
		t.Fatalf("object not in /dev/shm: %v", err)
	}
	_, err = Open(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	var pe *os.PathError
	if !errors.Is(err, fs.ErrExist) || !errors.As(err, &pe) || pe.Op != "shm_open" {
		t.Fatalf("exclusive create of an existing object: %v, want *os.PathError wrapping fs.ErrExist", err)
	}
	if err := Unlink(name); err != nil {
		t.Fatal(err)
	}
	if err := Unlink(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Unlink: %v, want fs.ErrNotExist", err)
	}
	if _, err := Open("a/b", os.O_RDWR, 0); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Open(a/b): %v, want ErrInvalidName", err)
	}
}
