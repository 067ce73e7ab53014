package hist

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// SubBits is log2 of the sub-buckets per power of two.
const SubBits = 6

const (
	sub      = 1 << SubBits
	nBuckets = (62-SubBits)*sub + 2*sub // index(MaxInt64) + 1
)

// Histogram counts values in log-linear buckets. The zero value is ready to
// use.
type Histogram struct {
	counts   [nBuckets]uint64
	n        uint64
	min, max int64
	sum      float64
}

// index returns the bucket of v ≥ 0.
func index(v int64) int {
	u := uint64(v)
	if u < sub {
		return int(u)
	}
	e := bits.Len64(u) - SubBits - 1
	return e*sub + int(u>>uint(e))
}

// bounds returns the lowest and highest value of bucket i.
func bounds(i int) (lo, hi int64) {
	if i < sub {
		return int64(i), int64(i)
	}
	e := i/sub - 1
	m := int64(i%sub + sub)
	lo = m << uint(e)
	return lo, lo + (int64(1) << uint(e)) - 1
}

// Record counts one value; a negative value counts as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[index(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min and Max return the smallest and largest value recorded (0 if none).
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest value recorded (0 if none).
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the mean of the values recorded (0 if none).
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q in [0, 1] (0.99 is p99): the
// highest value of the bucket that holds the ⌈q·n⌉-th smallest value,
// capped at Max. It returns 0 for an empty histogram; q outside [0, 1] is
// clamped.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if !(q > 0) {
		return h.min
	}
	if q > 1 {
		q = 1
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i]
		if seen >= rank {
			_, hi := bounds(i)
			return min(hi, h.max)
		}
	}
	return h.max
}

// Merge adds the counts of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i := range h.counts {
		h.counts[i] += o.counts[i]
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Reset forgets every value.
func (h *Histogram) Reset() { *h = Histogram{} }

// Summary is the usual digest of a latency distribution, in the unit of the
// recorded values (nanoseconds for RecordDuration).
type Summary struct {
	Count                    uint64
	Mean                     float64
	P50, P90, P99, P999, Max int64
}

// Summary returns the digest of h.
func (h *Histogram) Summary() Summary {
	return Summary{Count: h.n, Mean: h.Mean(), P50: h.Quantile(0.5), P90: h.Quantile(0.9),
		P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.max}
}

// Micros is a Summary converted from nanoseconds to microseconds, the unit of
// farmem bench's JSON fields (fault_latency_us and the like).
type Micros struct {
	Count                          uint64
	Mean, P50, P90, P99, P999, Max float64
}

// Micros converts a nanosecond Summary to microseconds.
func (s Summary) Micros() Micros {
	us := func(v int64) float64 { return float64(v) / 1e3 }
	return Micros{Count: s.Count, Mean: s.Mean / 1e3, P50: us(s.P50), P90: us(s.P90), P99: us(s.P99),
		P999: us(s.P999), Max: us(s.Max)}
}

// String formats the summary on one line.
func (s Summary) String() string {
	return fmt.Sprintf("n=%d p50=%d p90=%d p99=%d p999=%d max=%d", s.Count, s.P50, s.P90, s.P99, s.P999, s.Max)
}
