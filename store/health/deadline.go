package health

import (
	"slices"
	"time"
)

// Window is the number of recent latencies the deadline is computed from.
const Window = 256

// recomputeEvery is how many samples pass between two recomputations of the
// percentile: sorting the window costs about Window·log(Window) compares,
// so recomputing on every 16th sample keeps the amortized cost per event
// near a hundred compares.
const recomputeEvery = 16

// Deadline computes the adaptive read deadline
//
//	deadline = clamp(K × p99(last Window latencies), Floor, Ceiling)
//
// with Initial used until MinSamples latencies have been seen, and Fixed,
// when set, used always. Latencies live in a fixed ring, so recording one
// never allocates. The zero Deadline is not usable: make one with
// NewDeadline. It is not safe for concurrent use.
type Deadline struct {
	cfg     Config
	ring    [Window]time.Duration
	scratch [Window]time.Duration
	n       int // samples seen, saturating at Window
	next    int // ring index of the next sample
	since   int // samples since the last recomputation
	p99     time.Duration
	cur     time.Duration
}

// NewDeadline returns a deadline estimator for cfg (which must have passed
// Config.Validate; zero fields take their defaults).
func NewDeadline(cfg Config) *Deadline {
	d := &Deadline{cfg: cfg.withDefaults()}
	d.cur = d.initial()
	return d
}

func (d *Deadline) initial() time.Duration {
	if d.cfg.Fixed > 0 {
		return d.cfg.Fixed
	}
	return d.cfg.Initial
}

// Observe records the latency of one answered request (on time or late).
// Negative latencies count as zero.
func (d *Deadline) Observe(lat time.Duration) {
	d.ring[d.next] = max(lat, 0)
	d.next = (d.next + 1) % Window
	if d.n < Window {
		d.n++
	}
	d.since++
	if d.n >= d.cfg.MinSamples && (d.since >= recomputeEvery || d.n == d.cfg.MinSamples) {
		d.recompute()
	}
}

func (d *Deadline) recompute() {
	d.since = 0
	s := d.scratch[:d.n]
	copy(s, d.ring[:d.n])
	slices.Sort(s)
	// The nearest-rank 99th percentile: the smallest sample that is not
	// exceeded by more than 1% of the samples.
	d.p99 = s[(99*d.n+99)/100-1]
	if d.cfg.Fixed > 0 {
		return
	}
	d.cur = min(max(time.Duration(d.cfg.K*float64(d.p99)), d.cfg.Floor), d.cfg.Ceiling)
}

// Current returns the deadline in force.
func (d *Deadline) Current() time.Duration { return d.cur }

// P99 returns the 99th percentile of the window at the last recomputation
// (0 before MinSamples samples).
func (d *Deadline) P99() time.Duration { return d.p99 }

// Samples returns how many latencies the window holds.
func (d *Deadline) Samples() int { return d.n }
