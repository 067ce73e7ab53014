package hist

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

func seed(t *testing.T) uint64 {
	if s := os.Getenv("FARMEM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d (from FARMEM_SEED)", v)
		return v
	}
	v := uint64(time.Now().UnixNano())
	t.Logf("seed %d (replay with FARMEM_SEED=%d)", v, v)
	return v
}

func TestIndexBounds(t *testing.T) {
	// Every value lies within the bounds of its bucket, buckets are
	// contiguous and the widths stay within 1/64 of the value.
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 4095, 4096, 1 << 40, math.MaxInt64 - 1, math.MaxInt64} {
		i := index(v)
		lo, hi := bounds(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if i >= nBuckets {
			t.Fatalf("value %d: index %d beyond %d buckets", v, i, nBuckets)
		}
		if v >= sub && float64(hi-lo+1)/float64(lo) > 1.0/sub+1e-12 {
			t.Fatalf("bucket [%d, %d] wider than 1/%d", lo, hi, sub)
		}
	}
	if index(math.MaxInt64) != nBuckets-1 {
		t.Fatalf("last index %d, buckets %d", index(math.MaxInt64), nBuckets)
	}
	for i := 1; i < nBuckets; i++ {
		_, hiPrev := bounds(i - 1)
		lo, _ := bounds(i)
		if lo != hiPrev+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, hiPrev)
		}
	}
}

func TestQuantilesAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 1))
	var h Histogram
	vals := make([]int64, 200000)
	for i := range vals {
		// Log-normal-ish latencies from 100 ns to seconds.
		vals[i] = int64(math.Exp(r.NormFloat64()*2 + 10))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := int(math.Ceil(q * float64(len(vals))))
		if rank < 1 {
			rank = 1
		}
		want := vals[rank-1]
		got := h.Quantile(q)
		if got < want || float64(got-want) > float64(want)/sub+1 {
			t.Errorf("q %v: got %d, exact %d", q, got, want)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] || h.Count() != uint64(len(vals)) {
		t.Fatalf("min %d max %d count %d", h.Min(), h.Max(), h.Count())
	}
	s := h.Summary()
	if !(s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
		t.Fatalf("summary not monotone: %v", s)
	}
}

func TestMergeEqualsSingle(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 2))
	var all, a, b Histogram
	for i := 0; i < 50000; i++ {
		v := r.Int64N(1 << 30)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatal("merged histogram differs from the single one")
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.5) != 0 {
		t.Fatal("reset histogram not empty")
	}
}

func TestEdgeValues(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram")
	}
	h.Record(-5)
	h.RecordDuration(3 * time.Microsecond)
	h.Record(math.MaxInt64)
	if h.Min() != 0 || h.Max() != math.MaxInt64 || h.Quantile(2) != math.MaxInt64 || h.Quantile(-1) != 0 {
		t.Fatalf("min %d max %d", h.Min(), h.Max())
	}
	if m := (Summary{P50: 1500}).Micros(); m.P50 != 1.5 {
		t.Fatalf("micros %v", m.P50)
	}
}

func TestRecordAllocFree(t *testing.T) {
	h := new(Histogram)
	if n := testing.AllocsPerRun(1000, func() { h.Record(12345) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	v := int64(1)
	for i := 0; i < b.N; i++ {
		v = v*6364136223846793005 + 1442695040888963407
		h.Record(v >> 34)
	}
}
