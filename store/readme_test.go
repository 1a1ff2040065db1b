package store

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEExamplesCompile: every line of the README's Go example is a
// line of example_test.go, whose Examples are compiled and run, so the
// README cannot show code that does not build or does not do what it
// says.
func TestREADMEExamplesCompile(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	examples, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(examples), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	_, block, ok := strings.Cut(string(readme), "```go\n")
	if !ok {
		t.Fatal("README has no Go example")
	}
	block, _, _ = strings.Cut(block, "```")
	n := 0
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if !lines[l] {
			t.Errorf("README's Go example has a line that no Example holds: %s", l)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("README's Go example has %d lines", n)
	}
}
