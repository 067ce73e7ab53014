package faultproxy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Injector and a pair of Hooks that log every call.
type recorder struct {
	mu      sync.Mutex
	log     []string
	failing bool // hooks fail
}

func (r *recorder) add(s string)             { r.mu.Lock(); r.log = append(r.log, s); r.mu.Unlock() }
func (r *recorder) SetBlackhole(on bool)     { r.add(fmt.Sprintf("blackhole=%v", on)) }
func (r *recorder) SetDelay(d time.Duration) { r.add(fmt.Sprintf("delay=%v", d)) }
func (r *recorder) SetCut(on bool)           { r.add(fmt.Sprintf("cut=%v", on)) }
func (r *recorder) ResetAll()                { r.add("reset") }
func (r *recorder) hooks() Hooks {
	hook := func(name string) func() error {
		return func() error {
			r.add(name)
			if r.failing {
				return errors.New("boom")
			}
			return nil
		}
	}
	return Hooks{Kill: hook("kill"), Restart: hook("restart")}
}
func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.log, " ")
	r.log = nil
	return s
}

func TestRunnerStep(t *testing.T) {
	rec := &recorder{}
	r, err := NewRunner(MustParse("blackhole@5s+3s,delay@10s+2s:50ms,reset@14s,kill@16s+2s,cut@6s+1s,kill@20s"), rec, rec.hooks())
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at       time.Duration
		wantLog  string
		wantNext time.Duration
		wantDone bool
	}{
		{0, "", 5 * s, false},
		{5 * s, "blackhole=true", 6 * s, false},
		{6*s + 500*ms, "cut=true", 7 * s, false},
		// Late wake-up: the cut's end, the blackhole's end and the whole
		// delay window are applied, in order.
		{13 * s, "cut=false blackhole=false delay=50ms delay=0s", 14 * s, false},
		{14 * s, "reset", 16 * s, false},
		{17 * s, "kill", 18 * s, false},
		{18 * s, "restart", 20 * s, false},
		{20 * s, "kill restart", 0, true},
		{30 * s, "", 0, true},
	}
	for _, st := range steps {
		next, done := r.Step(st.at)
		if got := rec.take(); got != st.wantLog || next != st.wantNext || done != st.wantDone {
			t.Errorf("Step(%v) = %v, %v, log %q; want %v, %v, log %q", st.at, next, done, got, st.wantNext, st.wantDone, st.wantLog)
		}
	}
	want := Counts{Blackhole: 1, Delay: 1, Reset: 1, Cut: 1, Kill: 2}
	if got := r.Counts(); got != want {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	if got := want.Total(); got != 6 {
		t.Errorf("Total = %d", got)
	}
}

func TestRunnerHealAndHookErrors(t *testing.T) {
	rec := &recorder{failing: true}
	r, err := NewRunner(MustParse("blackhole@1s+10s,kill@2s+10s,delay@3s+10s:1ms,cut@4s+10s"), rec, rec.hooks())
	if err != nil {
		t.Fatal(err)
	}
	r.Step(5 * s)
	rec.take()
	r.Heal()
	if got, want := rec.take(), "blackhole=false delay=0s cut=false restart"; got != want {
		t.Errorf("Heal log %q, want %q", got, want)
	}
	if _, done := r.Step(time.Hour); !done {
		t.Error("schedule not done after Heal")
	}
	if got := rec.take(); got != "" {
		t.Errorf("Step after Heal applied %q", got)
	}
	errs := r.HookErrors()
	if len(errs) != 2 || !errors.Is(errs[0], ErrHook) {
		t.Errorf("HookErrors = %v, want a failed kill and a failed restart", errs)
	}
}

func TestNewRunnerErrors(t *testing.T) {
	if _, err := NewRunner(MustParse("kill@1s"), nil, Hooks{}); !errors.Is(err, ErrNoHooks) {
		t.Errorf("kill without hooks: %v", err)
	}
	if _, err := NewRunner(MustParse("reset@1s"), nil, Hooks{}); err == nil {
		t.Error("link fault without injector accepted")
	}
	if _, err := NewRunner(Schedule{Events: []Event{{Kind: Cut}}}, &recorder{}, Hooks{}); !errors.Is(err, ErrBadDuration) {
		t.Errorf("invalid schedule: %v", err)
	}
}

// fakeClock is a Clock moved by hand. After registers a waiter that fires
// when Advance passes its deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	waiting chan struct{} // receives when a waiter registers
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1e9, 0), waiting: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	c.waiting <- struct{}{}
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func TestRunnerRunFakeClock(t *testing.T) {
	rec := &recorder{}
	r, err := NewRunner(MustParse("blackhole@1s+1s,reset@3s"), rec, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	res := make(chan error, 1)
	go func() { res <- r.Run(context.Background(), clk) }()
	<-clk.waiting // Run waits for the first edge
	for i, want := range []string{"blackhole=true", "blackhole=false", "reset"} {
		clk.Advance(time.Second)
		if i < 2 {
			<-clk.waiting // Run applied the edge and waits for the next
		} else if err := <-res; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := rec.take(); got != want {
			t.Fatalf("after advance %d: log %q, want %q", i+1, got, want)
		}
	}
}

func TestRunnerRunCancelHeals(t *testing.T) {
	rec := &recorder{}
	r, err := NewRunner(MustParse("blackhole@0s+1h"), rec, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- r.Run(ctx, clk) }()
	<-clk.waiting
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if got := rec.take(); got != "blackhole=true blackhole=false" {
		t.Fatalf("log %q: the blackhole was not healed", got)
	}
}

var seedFlag = flag.Int64("seed", 0, "seed for the randomized faultproxy tests (0: from the clock)")

func TestRandomSchedule(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	for _, tc := range []struct {
		total   time.Duration
		perKind int
	}{{time.Minute, 100}, {10 * s, 1}, {100 * time.Nanosecond, 10}, {time.Hour, 1000}} {
		sched := RandomSchedule(seed, tc.total, tc.perKind)
		if err := sched.Validate(); err != nil {
			t.Fatalf("RandomSchedule(%d, %v, %d) invalid: %v", seed, tc.total, tc.perKind, err)
		}
		for k := range NumKinds {
			if n := sched.Count(k); n != tc.perKind {
				t.Errorf("%v: %d %v events, want %d", tc.total, n, k, tc.perKind)
			}
		}
		if sched.End() > tc.total {
			t.Errorf("%v: schedule ends at %v", tc.total, sched.End())
		}
		if again := RandomSchedule(seed, tc.total, tc.perKind); again.String() != sched.String() {
			t.Errorf("same seed gave another schedule")
		}
		// Every event is applied: a runner over the whole schedule counts
		// perKind of each kind.
		rec := &recorder{}
		r, err := NewRunner(sched, rec, rec.hooks())
		if err != nil {
			t.Fatal(err)
		}
		if _, done := r.Step(tc.total); !done {
			t.Errorf("schedule not done at its total")
		}
		for k, n := range r.Counts() {
			if n != uint64(tc.perKind) {
				t.Errorf("injected %d %v, want %d", n, Kind(k), tc.perKind)
			}
		}
	}
	for _, tc := range []struct {
		total   time.Duration
		perKind int
	}{{0, 5}, {time.Second, 0}, {7, 1}, {-time.Second, 3}} {
		if got := RandomSchedule(seed, tc.total, tc.perKind); len(got.Events) != 0 {
			t.Errorf("RandomSchedule(%v, %d) = %v, want empty", tc.total, tc.perKind, got)
		}
	}
}
