package main

import (
	"slices"
	"strings"
	"testing"
)

// TestRatiosArePerRound: the ratio is taken within each round, then the
// median over rounds, so a slow round on both sides does not skew it.
func TestRatiosArePerRound(t *testing.T) {
	in := `goos: linux
BenchmarkGetMiss/impl=map-2       	1000	 10.0 ns/op	 0 B/op
BenchmarkGetMiss/impl=shmkv-2     	1000	 12.0 ns/op	 0 B/op
BenchmarkGetMiss/impl=map-2       	1000	 100.0 ns/op	 0 B/op
BenchmarkGetMiss/impl=shmkv-2     	1000	 110.0 ns/op	 0 B/op
BenchmarkGetMiss/impl=map-2       	1000	 20.0 ns/op	 0 B/op
BenchmarkGetMiss/impl=shmkv-2     	1000	 26.0 ns/op	 0 B/op
BenchmarkSpace-2   	 45614	 23166 ns/op	 25.33 B-overhead/entry
`
	got, err := ratios(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	// Per round: 1.2, 1.1, 1.3; median 1.2. (A ratio of medians, 26/20,
	// would say 1.3.)
	want := []string{"GetMiss          shmkv           vs map          1.20x  (1.10x to 1.30x over 3 rounds)"}
	if !slices.Equal(got, want) {
		t.Fatalf("ratios:\n%q\nwant\n%q", got, want)
	}
}
