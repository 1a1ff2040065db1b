// Package units reads and prints byte counts the way shmkv's messages and
// command line write them: binary units, "64M" in and "64.0 MiB" out. It is
// internal: the CLI's flags and the store's own messages share it, and
// neither is part of package store's API.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a size such as "64M", "1G", "1048576" or "64MiB": a
// whole number of bytes, or of K, M, G or T (binary units, with an
// optional "B" or "iB").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("shmkv: bad size %q", s)
	}
	return n * mult, nil
}

// FormatBytes prints a byte count with a binary unit ("64.0 MiB"), as
// shmkv's messages do.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
