package health

import (
	"fmt"
	"math"
	"time"
)

// Config tunes a Machine. A zero field takes the default named beside it.
type Config struct {
	// K multiplies the p99 latency to make the deadline. Default 4.
	K float64
	// Floor and Ceiling bound the adaptive deadline. Defaults 2 ms and
	// 100 ms.
	Floor, Ceiling time.Duration
	// Initial is the deadline until MinSamples latencies have been seen.
	// Default: Ceiling.
	Initial time.Duration
	// MinSamples is how many latencies are needed before the deadline
	// adapts. Default 16; at most Window.
	MinSamples int
	// Fixed, when positive, is the deadline always, with no adaptation.
	Fixed time.Duration
	// DownAfter is how many consecutive timeouts, counting the one that
	// made the node suspect, mark it down. Default 3.
	DownAfter int
	// RecoverAfter is how many consecutive on-time answers bring a suspect
	// node back to healthy. Default 3.
	RecoverAfter int
	// SuspectTimeout is how long a node may stay suspect without an
	// on-time answer before it is marked down. Default 1 s.
	SuspectTimeout time.Duration
	// ProbeInterval is the time between the end of one probe of a down
	// node and the start of the next. Default 250 ms.
	ProbeInterval time.Duration
}

// Defaults of Config.
const (
	DefaultK              = 4.0
	DefaultFloor          = 2 * time.Millisecond
	DefaultCeiling        = 100 * time.Millisecond
	DefaultMinSamples     = 16
	DefaultDownAfter      = 3
	DefaultRecoverAfter   = 3
	DefaultSuspectTimeout = time.Second
	DefaultProbeInterval  = 250 * time.Millisecond
)

func (c Config) withDefaults() Config {
	if c.K == 0 {
		c.K = DefaultK
	}
	if c.Floor == 0 {
		c.Floor = DefaultFloor
	}
	if c.Ceiling == 0 {
		c.Ceiling = max(DefaultCeiling, c.Floor)
	}
	if c.Initial == 0 {
		c.Initial = c.Ceiling
	}
	if c.MinSamples == 0 {
		c.MinSamples = DefaultMinSamples
	}
	if c.DownAfter == 0 {
		c.DownAfter = DefaultDownAfter
	}
	if c.RecoverAfter == 0 {
		c.RecoverAfter = DefaultRecoverAfter
	}
	if c.SuspectTimeout == 0 {
		c.SuspectTimeout = DefaultSuspectTimeout
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	return c
}

// maxConfigDuration bounds every duration of a Config, so that sums of them
// and event times never overflow.
const maxConfigDuration = 24 * time.Hour

// Validate reports a value out of range, wrapping ErrBadConfig.
func (c Config) Validate() error {
	d := c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"floor", d.Floor}, {"ceiling", d.Ceiling}, {"initial", d.Initial}, {"fixed", d.Fixed},
		{"suspect timeout", d.SuspectTimeout}, {"probe interval", d.ProbeInterval}} {
		if f.v < 0 || f.v > maxConfigDuration {
			return bad("%s %v not in [0, %v]", f.name, f.v, maxConfigDuration)
		}
	}
	switch {
	case math.IsNaN(d.K) || d.K <= 0 || d.K > 1000:
		return bad("k %v not in (0, 1000]", d.K)
	case d.Floor > d.Ceiling:
		return bad("floor %v above ceiling %v", d.Floor, d.Ceiling)
	case d.MinSamples < 1 || d.MinSamples > Window:
		return bad("min samples %d not in [1, %d]", d.MinSamples, Window)
	case d.DownAfter < 1 || d.DownAfter > 1<<20:
		return bad("down after %d not in [1, %d]", d.DownAfter, 1<<20)
	case d.RecoverAfter < 1 || d.RecoverAfter > 1<<20:
		return bad("recover after %d not in [1, %d]", d.RecoverAfter, 1<<20)
	}
	return nil
}
