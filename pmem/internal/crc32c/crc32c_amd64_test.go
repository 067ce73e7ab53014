package crc32c

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestUpdateGeneric runs Update as on a processor without SSE4.2 or
// PCLMULQDQ: through the assembly's jump to updateGeneric.
func TestUpdateGeneric(t *testing.T) {
	saved, savedTable := hasAsm, table
	hasAsm, table = false, crc32.MakeTable(crc32.Castagnoli)
	defer func() { hasAsm, table = saved, savedTable }()
	r := rand.New(rand.NewPCG(9, 10))
	buf := randomBytes(r, 9000)
	for _, n := range []int{0, 1, 28, 64, 280, 1040, 9000} {
		c := r.Uint32()
		if got, want := Update(c, buf[:n]), crc32.Update(c, castagnoli, buf[:n]); got != want {
			t.Errorf("generic Update(%#x, %d bytes) = %#x, want %#x", c, n, got, want)
		}
	}
}

// TestShiftConst checks the constants against their definition,
// shiftConst[m] = x^(64m-33) mod P, computed a bit at a time.
func TestShiftConst(t *testing.T) {
	if !hasAsm {
		t.Skip("no SSE4.2 and PCLMULQDQ")
	}
	k := uint32(1 << 31) // x^0, reflected
	for n := 0; n <= 64*maxWords-33; n++ {
		if n >= 31 && (n+33)%64 == 0 {
			if m := (n + 33) / 64; shiftConst[m] != k {
				t.Fatalf("shiftConst[%d] = %#x, want %#x", m, shiftConst[m], k)
			}
		}
		// k *= x: a reflected shift right, reducing by P's reflected low bits.
		k = k>>1 ^ 0x82f63b78&-(k&1)
	}
}
