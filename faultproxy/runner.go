package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Clock is the runner's source of time, so that tests can drive a schedule
// without sleeping. Implementations are safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Injector is what a runner drives for the link faults. *Proxy implements
// it. Calls come from one goroutine at a time.
type Injector interface {
	// SetBlackhole starts (true) or ends (false) a blackhole.
	SetBlackhole(on bool)
	// SetDelay sets the added latency per chunk (0: none).
	SetDelay(d time.Duration)
	// SetCut starts (true) or ends (false) a cut.
	SetCut(on bool)
	// ResetAll aborts every current connection with an RST.
	ResetAll()
}

var _ Injector = (*Proxy)(nil)

// Hooks stop and start the backend behind the proxy; the bench plugs in its
// embedded memnode. Kill should stop it abruptly (as kill -9 would: no
// goodbye to clients, state lost); Restart starts it again, typically empty
// and with a new boot epoch. Each is called from the runner's goroutine and
// should return promptly.
type Hooks struct {
	Kill    func() error
	Restart func() error
}

// Counts holds the number of events of each kind a runner has injected,
// indexed by Kind.
type Counts [NumKinds]uint64

// Total is the sum over all kinds.
func (c Counts) Total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// String formats the counts as "blackhole=N delay=N ...".
func (c Counts) String() string {
	s := ""
	for k, v := range c {
		if k > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", Kind(k), v)
	}
	return s
}

// Runner applies a schedule to an Injector and Hooks. Step is the pure-time
// core: it applies every edge due by a given offset, in order, so an event
// is applied even if the runner wakes up after it has already ended. Run
// drives Step from a Clock. A Runner is safe for concurrent use; Counts may
// be read while Run is going.
type Runner struct {
	sched Schedule
	edges []Edge
	inj   Injector
	hooks Hooks

	mu       sync.Mutex
	next     int // index into edges of the next edge to apply
	open     [NumKinds]int
	counts   Counts
	hookErrs []error
}

// NewRunner returns a runner of s over inj (which may be nil when s has no
// link faults) and h (needed when s has kills). It checks s with Validate.
func NewRunner(s Schedule, inj Injector, h Hooks) (*Runner, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Count(Kill) > 0 && (h.Kill == nil || h.Restart == nil) {
		return nil, ErrNoHooks
	}
	if inj == nil && s.Count(Kill) != len(s.Events) {
		return nil, fmt.Errorf("faultproxy: schedule has link faults but no injector")
	}
	r := &Runner{sched: s, edges: s.Edges(), inj: inj, hooks: h}
	for k := range r.open {
		r.open[k] = -1
	}
	return r, nil
}

// Step applies, in order, every edge with At <= elapsed that has not been
// applied yet. It returns the offset of the next edge, and done once every
// edge has been applied.
func (r *Runner) Step(elapsed time.Duration) (next time.Duration, done bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.next < len(r.edges) && r.edges[r.next].At <= elapsed {
		r.apply(r.edges[r.next])
		r.next++
	}
	if r.next == len(r.edges) {
		return 0, true
	}
	return r.edges[r.next].At, false
}

// Heal ends every event that has begun and not yet ended (a blackhole in
// force is lifted, a killed backend restarted) and skips the rest of the
// schedule. Run calls it when its context is canceled.
func (r *Runner) Heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, i := range r.open {
		if i >= 0 {
			r.apply(Edge{Event: i})
			r.open[k] = -1
		}
	}
	r.next = len(r.edges)
}

func (r *Runner) apply(g Edge) {
	e := r.sched.Events[g.Event]
	if g.Begin {
		r.counts[e.Kind]++
		if e.Kind != Reset {
			r.open[e.Kind] = g.Event
		}
	} else {
		r.open[e.Kind] = -1
	}
	switch e.Kind {
	case Blackhole:
		r.inj.SetBlackhole(g.Begin)
	case Delay:
		if g.Begin {
			r.inj.SetDelay(e.Param)
		} else {
			r.inj.SetDelay(0)
		}
	case Cut:
		r.inj.SetCut(g.Begin)
	case Reset:
		r.inj.ResetAll()
	case Kill:
		hook, what := r.hooks.Restart, "restart"
		if g.Begin {
			hook, what = r.hooks.Kill, "kill"
		}
		if err := hook(); err != nil {
			r.hookErrs = append(r.hookErrs, fmt.Errorf("%w: %s at %v: %w", ErrHook, what, g.At, err))
		}
	}
}

// Counts returns how many events of each kind have begun so far.
func (r *Runner) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

// Run applies the schedule with offsets measured from the moment Run is
// called, on clk (nil: the wall clock). It returns when the schedule is
// over, or when ctx is done, in which case it heals every fault in force
// first and returns ctx's error. Failed hooks do not stop it; they are
// returned joined, each wrapping ErrHook.
func (r *Runner) Run(ctx context.Context, clk Clock) error {
	if clk == nil {
		clk = SystemClock{}
	}
	start := clk.Now()
	for {
		next, done := r.Step(clk.Now().Sub(start))
		if done {
			break
		}
		select {
		case <-ctx.Done():
			r.Heal()
			return errors.Join(append([]error{ctx.Err()}, r.HookErrors()...)...)
		case <-clk.After(next - clk.Now().Sub(start)):
		}
	}
	return errors.Join(r.HookErrors()...)
}

// HookErrors returns the hook failures so far.
func (r *Runner) HookErrors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.hookErrs...)
}
