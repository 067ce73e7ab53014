package crc32c

import (
	"bytes"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"testing"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// randomBytes returns n bytes from r.
func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestUpdate compares Update with hash/crc32 for every length from 0 to a
// little past 4 KiB, at each address mod 8, from random initial values:
// every split into three parts, every count of bytes before and after the
// words, on both sides of ALIGN.
func TestUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := randomBytes(r, 4200+8)
	for off := 0; off < 8; off++ {
		for n := 0; n <= 4200; n++ {
			p := buf[off : off+n]
			c := r.Uint32()
			if got, want := Update(c, p), crc32.Update(c, castagnoli, p); got != want {
				t.Fatalf("Update(%#x, %d bytes at offset %d) = %#x, want %#x", c, n, off, got, want)
			}
		}
	}
}

// TestUpdateLong covers lengths around multiples of 8 KiB, where amd64
// goes over to pieces.
func TestUpdateLong(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := randomBytes(r, 3*8192+200)
	for _, n := range []int{8185, 8191, 8192, 8193, 8199, 8200, 8207, 16383, 16384, 16389, 3*8192 + 99} {
		for off := 0; off < 8; off += 3 {
			p := buf[off : off+n]
			c := r.Uint32()
			if got, want := Update(c, p), crc32.Update(c, castagnoli, p); got != want {
				t.Fatalf("Update(%#x, %d bytes at offset %d) = %#x, want %#x", c, n, off, got, want)
			}
		}
	}
}

// TestChecksum checks Checksum against hash/crc32 and a known value: the
// CRC-32C check value of "123456789" is 0xe3069283.
func TestChecksum(t *testing.T) {
	if got := Checksum([]byte("123456789")); got != 0xe3069283 {
		t.Errorf(`Checksum("123456789") = %#x, want 0xe3069283`, got)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 28, 63, 64, 280, 1040, 4096, 5000} {
		p := randomBytes(r, n)
		if got, want := Checksum(p), crc32.Checksum(p, castagnoli); got != want {
			t.Errorf("Checksum(%d bytes) = %#x, want %#x", n, got, want)
		}
	}
}

// TestChaining checks Update(Update(c, a), b) == Update(c, ab) at every
// split of a few lengths.
func TestChaining(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{100, 300, 1100} {
		p := randomBytes(r, n)
		c := r.Uint32()
		whole := Update(c, p)
		for i := 0; i <= n; i++ {
			if got := Update(Update(c, p[:i]), p[i:]); got != whole {
				t.Fatalf("Update(Update(%#x, p[:%d]), p[%d:]) = %#x, want %#x (%d bytes)", c, i, i, got, whole, n)
			}
		}
	}
}

// FuzzUpdate compares Update with hash/crc32 on any input and initial
// value, whole and split in two at split mod (len+1).
//
// The fuzzer minimizes each input that finds new coverage (here, in
// hash/crc32's Go code) for up to -fuzzminimizetime, 60 s by default, and
// runs nothing else meanwhile: a 10-second run made 19,000 executions
// with the default and 780,000 with -fuzzminimizetime 2s.
func FuzzUpdate(f *testing.F) {
	f.Add(uint32(0), []byte("123456789"), uint16(4))
	f.Add(uint32(0xffffffff), bytes.Repeat([]byte{0xff}, 64), uint16(1))
	f.Add(uint32(0x12345678), bytes.Repeat([]byte("farmem"), 47), uint16(100))
	f.Add(uint32(1), make([]byte, 1045), uint16(517))
	f.Add(uint32(7), bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 600), uint16(9))
	f.Fuzz(func(t *testing.T, c uint32, p []byte, split uint16) {
		want := crc32.Update(c, castagnoli, p)
		if got := Update(c, p); got != want {
			t.Fatalf("Update(%#x, %d bytes) = %#x, want %#x", c, len(p), got, want)
		}
		i := int(split) % (len(p) + 1)
		if got := Update(Update(c, p[:i]), p[i:]); got != want {
			t.Fatalf("Update(Update(%#x, p[:%d]), p[%d:]) = %#x, want %#x (%d bytes)", c, i, i, got, want, len(p))
		}
	})
}

var benchSizes = []int{28, 64, 280, 1040, 4096}

var sink uint32

// BenchmarkChecksum runs calls back to back: each is independent of the
// one before, so the processor may overlap them.
func BenchmarkChecksum(b *testing.B) {
	for _, n := range benchSizes {
		p := make([]byte, n)
		b.Run("crc32c/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sink = Checksum(p)
			}
		})
		b.Run("hash-crc32/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sink = crc32.Checksum(p, castagnoli)
			}
		})
	}
}

// zero is 0, but the compiler cannot know it.
var zero uint32

// BenchmarkChecksumLatency makes each call's buffer address depend on the
// result of the one before (an offset of c&zero), so that no two calls
// overlap: the time a caller that waits for the checksum sees.
func BenchmarkChecksumLatency(b *testing.B) {
	for _, n := range benchSizes {
		p := make([]byte, n)
		b.Run("crc32c/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			c := uint32(0)
			for b.Loop() {
				c = Checksum(p[c&zero:])
			}
			sink = c
		})
		b.Run("hash-crc32/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			c := uint32(0)
			for b.Loop() {
				c = crc32.Checksum(p[c&zero:], castagnoli)
			}
			sink = c
		})
	}
}
