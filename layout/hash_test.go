package layout

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/zeebo/xxh3"
)

// TestKeyHashIsXXH3 pins KeyHash to the reference XXH3-64 (zeebo/xxh3) for
// every length it claims, and to XXH64 beyond: the hash is part of the
// format, so a slip here would send two builds to different buckets.
func TestKeyHashIsXXH3(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	buf := make([]byte, 4*XXH3ShortMax)
	for n := 0; n <= len(buf); n++ {
		for range 50 {
			for i := range buf[:n] {
				buf[i] = byte(rng.Uint32())
			}
			key := buf[:n]
			want := xxhash.Sum64(key)
			if n <= XXH3ShortMax {
				want = xxh3.Hash(key)
			}
			if got := KeyHash(key); got != want {
				t.Fatalf("KeyHash(%x) = %#x, want %#x (len %d)", key, got, want, n)
			}
		}
	}
}

// TestKeyHashSpreads checks what the index needs of the hash on keys that
// differ little: sequential integers as 8- and 16-byte keys, and short
// strings. Their home buckets must fill evenly (none under half or over
// twice the mean) and their tags must cover the 2^15 odd values as random
// ones would (within 2% of the expected count of distinct values).
func TestKeyHashSpreads(t *testing.T) {
	const keys, buckets = 1 << 16, 1 << 10
	for _, kind := range []string{"u64", "u128", "decimal"} {
		count := make([]int, buckets)
		tags := make(map[uint16]bool)
		for i := range keys {
			var key []byte
			switch kind {
			case "u64":
				key = []byte{byte(i), byte(i >> 8), byte(i >> 16), 0, 0, 0, 0, 0}
			case "u128":
				key = make([]byte, 16)
				key[15] = byte(i)
				key[14] = byte(i >> 8)
			case "decimal":
				key = []byte("user:" + strconv.Itoa(i))
			}
			h := KeyHash(key)
			count[Home(h, buckets)]++
			tags[Tag(h)] = true
		}
		mean := keys / buckets
		for b, c := range count {
			if c > 2*mean || c < mean/2 {
				t.Fatalf("%s keys: bucket %d got %d keys, mean %d", kind, b, c, mean)
			}
		}
		want := (1 << 15) * (1 - math.Exp(-keys/(1<<15)))
		if float64(len(tags)) < 0.98*want {
			t.Fatalf("%s keys: %d distinct tags, random ones would give %.0f", kind, len(tags), want)
		}
	}
}
