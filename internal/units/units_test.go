package units

import "testing"

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true},
		{"256K", 256 << 10, true},
		{" 64m ", 64 << 20, true},
		{"64MiB", 64 << 20, true},
		{"64MB", 64 << 20, true},
		{"1G", 1 << 30, true},
		{"1T", 1 << 40, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1X", 0, false},
		{"99999999999T", 0, false},
	} {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0 B",
		1023:          "1023 B",
		1024:          "1.0 KiB",
		64 << 20:      "64.0 MiB",
		3 << 29:       "1.5 GiB",
		1 << 40:       "1.0 TiB",
		1<<62 + 1<<61: "6.0 EiB",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
