// Package hist is a fixed-size latency histogram with log-linear buckets, in
// the manner of Gil Tene's HdrHistogram: allocation-free Record, bounded
// relative error, percentiles in constant memory.
//
// # Buckets
//
// Values (nanoseconds, or any non-negative int64) below 2^SubBits are
// counted exactly. Above, each power-of-two range [2^k, 2^(k+1)) is split
// into 2^SubBits equal sub-buckets, so a bucket is at most 1/64 of the value
// it holds wide: a reported percentile is within 1.6% of the true one (it
// is the highest value of its bucket, capped at the largest value seen, as
// HdrHistogram's highestEquivalentValue). The whole int64 range needs 3712
// counters, 29 KiB, fixed at construction; nothing grows.
//
// # Concurrency
//
// A Histogram is not safe for concurrent use: give each goroutine its own
// and Merge them, which is exact.
package hist
