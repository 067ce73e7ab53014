package pmembench

import "math/bits"

// hist is a log-linear latency histogram in nanoseconds: exact below 128,
// then 64 buckets per power of two, so a quantile is off by less than 1/128
// of its value. A committer records into its own hist with one index
// computation and one increment: no allocation per transaction, so the
// harness adds no garbage-collection work to what it measures (a slice of
// every latency grew to megabytes per row, and the collector's cycles cost
// the committers about 8% of their throughput, measured with GOGC=off).
// The C peer (bench/peers/pmdk/kvbench.c) records into the same histogram.
type hist [histBuckets]uint64

const (
	histSubBits = 6 // 64 buckets per power of two
	histBuckets = (64-histSubBits-1)<<histSubBits + 2<<histSubBits
)

// histIndex returns the bucket of v.
func histIndex(v uint64) int {
	if v < 2<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1 // v>>e is in [64, 128)
	return e<<histSubBits + int(v>>e)
}

// histValue returns the midpoint of bucket i (the value itself below 128).
func histValue(i int) uint64 {
	if i < 2<<histSubBits {
		return uint64(i)
	}
	e := i>>histSubBits - 1
	m := uint64(i - e<<histSubBits)
	return m<<e + (uint64(1)<<e)/2
}

func (h *hist) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h[histIndex(uint64(ns))]++
}

func (h *hist) add(o *hist) {
	for i := range h {
		h[i] += o[i]
	}
}

// quantile returns the value at rank q*(n-1) of the n recorded values, as
// a sorted slice of them would (0 when empty).
func (h *hist) quantile(q float64) uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n-1))
	var seen uint64
	for i, c := range h {
		seen += c
		if seen > rank {
			return histValue(i)
		}
	}
	return histValue(len(h) - 1)
}
