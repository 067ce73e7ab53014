package pmembench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHistIndex checks that every bucket holds a contiguous range, that
// the buckets cover the uint64 range in order, and that a bucket's
// midpoint lies within 1/128 of every value it holds.
func TestHistIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, math.MaxUint64}
	for k := 0; k < 100000; k++ {
		vals = append(vals, rng.Uint64()>>rng.IntN(64))
	}
	for _, v := range vals {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, out of [0, %d)", v, i, histBuckets)
		}
		mid := histValue(i)
		if d := math.Abs(float64(mid) - float64(v)); d > float64(v)/128+0.5 {
			t.Fatalf("value %d in bucket %d with midpoint %d: off by %.0f", v, i, mid, d)
		}
		if i > 0 && histIndex(v-1) > i {
			t.Fatalf("histIndex(%d) = %d > histIndex(%d) = %d: not monotonic", v-1, histIndex(v-1), v, i)
		}
	}
	if histIndex(math.MaxUint64) != histBuckets-1 {
		t.Fatalf("last bucket %d, want %d", histIndex(math.MaxUint64), histBuckets-1)
	}
}

// TestHistQuantile compares the histogram's p50 and p99 with those of the
// sorted values, on a latency-like (log-normal) sample.
func TestHistQuantile(t *testing.T) {
	var h hist
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram: nonzero quantile")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var all []int64
	for k := 0; k < 200000; k++ {
		v := int64(math.Exp(6 + 1.5*rng.NormFloat64()))
		all = append(all, v)
		h.record(v)
	}
	var other hist
	other.record(-5) // clamped to 0
	h.add(&other)
	all = append(all, 0)
	slices.Sort(all)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
		want := float64(all[int(q*float64(len(all)-1))])
		got := float64(h.quantile(q))
		if math.Abs(got-want) > want/128+0.5 {
			t.Fatalf("q%.2f: histogram %.0f, sorted %.0f", q, got, want)
		}
	}
}
