package workload

import (
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// testSeed returns the seed of a randomized test: FARMEM_SEED if set, else
// the clock. It prints it so a failure can be replayed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	if s := os.Getenv("FARMEM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("FARMEM_SEED=%q: %v", s, err)
		}
		t.Logf("seed %d (from FARMEM_SEED)", v)
		return v
	}
	v := uint64(time.Now().UnixNano())
	t.Logf("seed %d (replay with FARMEM_SEED=%d)", v, v)
	return v
}

// corruptMemory flips one byte of every every-th read after the call to the
// underlying Memory, as a faulty far memory would.
type corruptMemory struct {
	Memory
	every uint64
	reads atomic.Uint64
	flips atomic.Uint64
}

func (c *corruptMemory) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Memory.ReadAt(p, off)
	if c.reads.Add(1)%c.every == 0 && n > 0 {
		p[n/2] ^= 0x5a
		c.flips.Add(1)
	}
	return n, err
}
