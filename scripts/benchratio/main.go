// Command benchratio reads the output of rounds of the store benchmarks
// (scripts/bench-ratios writes it) and prints, for each figure, the median
// over rounds of shmkv's time divided by the baseline's time in the same
// round, with the lowest and highest. On a VM whose speed drifts over
// seconds, a ratio taken within one round is steadier than a ratio of
// medians taken over all rounds.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// BenchmarkGetHit/val=100B/impl=shmkv-2   2000000   190.5 ns/op ...
var line = regexp.MustCompile(`^Benchmark(\S+?)/impl=(\S+?)(-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchratio BENCH-OUTPUT")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
	defer f.Close()
	out, err := ratios(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
	for _, l := range out {
		fmt.Println(l)
	}
}

// ratios reads benchmark output and returns one line per figure, shmkv
// implementation and baseline, sorted.
func ratios(r io.Reader) ([]string, error) {
	// times[figure][impl] is one time per round, in order.
	times := map[string]map[string][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			continue
		}
		fig, impl := m[1], m[2]
		if times[fig] == nil {
			times[fig] = map[string][]float64{}
		}
		times[fig][impl] = append(times[fig][impl], ns)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []string
	for fig, impls := range times {
		for impl, ts := range impls {
			if !strings.HasPrefix(impl, "shmkv") {
				continue
			}
			for base, bs := range impls {
				if strings.HasPrefix(base, "shmkv") {
					continue
				}
				n := min(len(ts), len(bs))
				if n == 0 {
					continue
				}
				r := make([]float64, n)
				for i := range n {
					r[i] = ts[i] / bs[i]
				}
				slices.Sort(r)
				med := r[n/2]
				if n%2 == 0 {
					med = (r[n/2-1] + r[n/2]) / 2
				}
				out = append(out, fmt.Sprintf("%-16s %-15s vs %-12s %.2fx  (%.2fx to %.2fx over %d rounds)", fig, impl, base, med, r[0], r[n-1], n))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
