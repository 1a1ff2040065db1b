package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shmkv/shmkv/store"
)

// runStatJSON runs stat --json on the store name.
func runStatJSON(t *testing.T, name string) store.Stats {
	t.Helper()
	js := mustRun(t, "", "--store", name, "stat", "--json")
	var st struct {
		store.Stats
		Mode string // octal text in the CLI's JSON
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("stat --json: %v\n%s", err, js)
	}
	return st.Stats
}

// TestCreateSizes: create without --size made a fixed store of
// store.DefaultSize once that became the initial size of a growing store;
// --size alone is fixed, --max-size grows, and a maximum below the size is
// a usage error that creates nothing.
func TestCreateSizes(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	const M = 1 << 20
	for _, tc := range []struct {
		args          []string
		size, maxSize int64 // maxSize -1: above size (the size of /dev/shm)
	}{
		{nil, store.DefaultSize, -1},
		{[]string{"--size", "1M"}, 1 * M, 1 * M},
		{[]string{"--size", "1M", "--max-size", "64M"}, 1 * M, 64 * M},
		{[]string{"--max-size", "64M"}, store.DefaultSize, 64 * M},
		{[]string{"--max-size", "2M"}, 2 * M, 2 * M},
		{[]string{"--size", "2M", "--max-size", "2M"}, 2 * M, 2 * M},
	} {
		name := storeName(t)
		mustRun(t, "", append([]string{"--store", name, "create"}, tc.args...)...)
		st := runStatJSON(t, name)
		ok := st.Size == tc.size && st.InitialSize == tc.size && st.Growths == 0
		if tc.maxSize < 0 {
			ok = ok && st.MaxSize > st.Size
		} else {
			ok = ok && st.MaxSize == tc.maxSize
		}
		if !ok {
			t.Errorf("create %s: Size %d, InitialSize %d, MaxSize %d, Growths %d; want size %d, maximum %d (-1: above it)",
				strings.Join(tc.args, " "), st.Size, st.InitialSize, st.MaxSize, st.Growths, tc.size, tc.maxSize)
		}
	}

	name := storeName(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--size", "8M", "--max-size", "4M"}, "--max-size 4.0 MiB is below --size 8.0 MiB"},
		{[]string{"--max-size", "0"}, "a store needs at least 256 KiB (--max-size 256K)"},
		{[]string{"--max-size", "2T"}, "above the maximum 1 TiB"},
		{[]string{"--max-size", "12Q"}, `bad size "12Q"`},
	} {
		stdout, stderr, code := runBin(t, "", append([]string{"--store", name, "create"}, tc.args...)...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("create %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
		if exists(name) {
			t.Fatalf("create %s created the store", strings.Join(tc.args, " "))
		}
	}
}
