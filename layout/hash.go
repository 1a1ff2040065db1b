package layout

// The key hash is part of the format: every process must send a key to the
// same home bucket and tag. Keys of up to 128 bytes hash with XXH3-64
// (seed 0, the default secret), written out here because the common short
// key then costs one or two 64x64->128 multiplies and no assembly call:
// xxhash64's fixed chain of multiplies was the largest single cost of a
// Get miss (about 8 of 50 ns). Longer keys hash with XXH64, whose
// assembly loop is fast on long input. The results are XXH3's and XXH64's
// exactly; layout/hash_test.go pins them to reference implementations.

import (
	"encoding/binary"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// The first 128 bytes of XXH3's default secret, as little-endian words.
const (
	sec000 = 0xbe4ba423396cfeb8
	sec008 = 0x1cad21f72c81017c
	sec016 = 0xdb979083e96dd4de
	sec024 = 0x1f67b3b7a4a44072
	sec032 = 0x78e5c0cc4ee679cb
	sec040 = 0x2172ffcc7dd05a82
	sec048 = 0x8e2443f7744608b8
	sec056 = 0x4c263a81e69035e0
	sec064 = 0xcb00c391bb52283c
	sec072 = 0xa32e531b8b65d088
	sec080 = 0x4ef90da297486471
	sec088 = 0xd8acdea946ef1938
	sec096 = 0x3f349ce33f76faa8
	sec104 = 0x1d4f0bc7c7bbdcf9
	sec112 = 0x3159b4cd4be0518a
	sec120 = 0x647378d9c97e9fc8

	sec32_000 = 0x396cfeb8 // low half of sec000
	sec32_004 = 0xbe4ba423 // high half of sec000

	prime64_1 = 0x9e3779b185ebca87
	prime64_2 = 0xc2b2ae3d27d4eb4f
	prime64_3 = 0x165667b19e3779f9
)

// XXH3ShortMax is the longest key hashed with XXH3; longer keys use XXH64.
const XXH3ShortMax = 128

// KeyHash is the 64-bit hash of a key: it picks the key's home bucket
// (Home) and its slot tag (Tag).
// Keys of up to 16 bytes are hashed without a further call.
func KeyHash(p []byte) uint64 {
	n := uint64(len(p))
	switch {
	case n > 16:
		return keyHashLong(p)
	case n > 8:
		lo := le64(p, 0) ^ (sec024 ^ sec032)
		hi := le64(p, len(p)-8) ^ (sec040 ^ sec048)
		return xxh3Avalanche(n + bits.ReverseBytes64(lo) + hi + mulFold64(lo, hi))
	case n >= 4:
		in1 := uint64(binary.LittleEndian.Uint32(p))
		in2 := uint64(binary.LittleEndian.Uint32(p[len(p)-4:]))
		return rrmxmx((in2+in1<<32)^(sec008^sec016), n)
	case n > 0:
		c1, c2, c3 := uint64(p[0]), uint64(p[n>>1]), uint64(p[n-1])
		acc := c1<<16 | c2<<24 | c3 | n<<8
		return xxh64Avalanche(acc ^ (sec32_000 ^ sec32_004))
	default:
		return xxh64Avalanche(sec056 ^ sec064)
	}
}

func keyHashLong(key []byte) uint64 {
	if len(key) <= XXH3ShortMax {
		return xxh3Upto128(key)
	}
	return xxhash.Sum64(key)
}

func le64(b []byte, i int) uint64 { return binary.LittleEndian.Uint64(b[i:]) }

func xxh3Upto128(p []byte) uint64 {
	n := len(p)
	acc := uint64(n) * prime64_1
	if n > 32 {
		if n > 64 {
			if n > 96 {
				acc += mix16(p, 48, sec096, sec104)
				acc += mix16(p, n-64, sec112, sec120)
			}
			acc += mix16(p, 32, sec064, sec072)
			acc += mix16(p, n-48, sec080, sec088)
		}
		acc += mix16(p, 16, sec032, sec040)
		acc += mix16(p, n-32, sec048, sec056)
	}
	acc += mix16(p, 0, sec000, sec008)
	acc += mix16(p, n-16, sec016, sec024)
	return xxh3Avalanche(acc)
}

func mix16(p []byte, i int, s0, s1 uint64) uint64 {
	return mulFold64(le64(p, i)^s0, le64(p, i+8)^s1)
}

func mulFold64(x, y uint64) uint64 {
	hi, lo := bits.Mul64(x, y)
	return hi ^ lo
}

func xxh3Avalanche(h uint64) uint64 {
	h ^= h >> 37
	h *= 0x165667919e3779f9
	return h ^ h>>32
}

func xxh64Avalanche(h uint64) uint64 {
	h ^= h >> 33
	h *= prime64_2
	h ^= h >> 29
	h *= prime64_3
	return h ^ h>>32
}

func rrmxmx(h, n uint64) uint64 {
	h ^= bits.RotateLeft64(h, 49) ^ bits.RotateLeft64(h, 24)
	h *= 0x9fb21c651e98df25
	h ^= h>>35 + n
	h *= 0x9fb21c651e98df25
	return h ^ h>>28
}
