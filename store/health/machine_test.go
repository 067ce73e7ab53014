package health

import (
	"errors"
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestProperties drives a machine with random event sequences and checks
// the routing invariants after every event. rapid prints the failing
// sequence and a seed; rerun it with -rapid.seed=N.
func TestProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{
			DownAfter:      rapid.IntRange(1, 4).Draw(t, "downAfter"),
			RecoverAfter:   rapid.IntRange(1, 4).Draw(t, "recoverAfter"),
			MinSamples:     rapid.IntRange(1, 32).Draw(t, "minSamples"),
			SuspectTimeout: time.Duration(rapid.IntRange(1, 1000).Draw(t, "suspectMs")) * time.Millisecond,
			ProbeInterval:  time.Duration(rapid.IntRange(1, 500).Draw(t, "probeMs")) * time.Millisecond,
		}
		epoch := rapid.Uint64Range(0, 3).Draw(t, "epoch")
		m, err := New(cfg, epoch)
		if err != nil {
			t.Fatal(err)
		}
		cfg = cfg.withDefaults()
		var (
			now            time.Duration
			needResync     bool // entered down since the last completed resync
			resyncStarted  bool // a resync began after the last down
			epochChanged   bool // a new boot epoch was seen and not yet repopulated
			probeOut       bool
			lastFail       time.Duration
			lastKnownEpoch = epoch
		)
		n := rapid.IntRange(1, 200).Draw(t, "events")
		for i := range n {
			now += time.Duration(rapid.IntRange(0, 300).Draw(t, "advanceMs")) * time.Millisecond
			ev := Event{
				Kind:    EventKind(rapid.IntRange(int(RequestOK), int(Tick)).Draw(t, "kind")),
				At:      now,
				Latency: time.Duration(rapid.IntRange(0, 200_000).Draw(t, "latencyUs")) * time.Microsecond,
				Epoch:   rapid.Uint64Range(0, 3).Draw(t, "probeEpoch"),
				Pages:   rapid.Uint64Range(0, 100).Draw(t, "pages"),
			}
			before := m.State()
			d := m.Step(ev)

			if ev.Kind == ProbeOK && lastKnownEpoch != 0 && ev.Epoch != lastKnownEpoch {
				epochChanged = true
			}
			if ev.Kind == ProbeOK {
				lastKnownEpoch = ev.Epoch
			}
			switch {
			case d.State == Down && (d.ReadRemote || d.WaitDeadline || d.WriteRemote):
				t.Fatalf("event %d: reads or writes routed to a down node: %+v", i, d)
			case d.State == Down && before != Down:
				needResync, resyncStarted = true, false
			}
			if d.StartResync {
				if d.State != Resyncing {
					t.Fatalf("event %d: resync started in state %v", i, d.State)
				}
				resyncStarted = true
				if epochChanged && !d.FullResync {
					t.Fatalf("event %d: new boot epoch but a partial resync", i)
				}
			}
			if d.State == Resyncing && d.FullResync && d.ReadRemote {
				t.Fatalf("event %d: reads sent to a node being repopulated", i)
			}
			if d.State == Healthy && before != Healthy {
				if (needResync || epochChanged) && !(before == Resyncing && ev.Kind == ResyncDone && resyncStarted) {
					t.Fatalf("event %d: healthy after down without a completed resync (from %v on %v)", i, before, ev.Kind)
				}
				needResync, resyncStarted, epochChanged = false, false, false
			}
			if d.State == Healthy && !(d.ReadRemote && d.WaitDeadline && d.WriteRemote) {
				t.Fatalf("event %d: healthy but not routed to the node: %+v", i, d)
			}
			if d.Deadline < cfg.Floor || d.Deadline > cfg.Ceiling {
				t.Fatalf("event %d: deadline %v outside [%v, %v]", i, d.Deadline, cfg.Floor, cfg.Ceiling)
			}
			// Probes: only while down, one at a time, and one at least every
			// ProbeInterval after the last one failed.
			if before != Down || (probeOut && (ev.Kind == ProbeFailed || ev.Kind == ProbeOK)) {
				if probeOut && ev.Kind == ProbeFailed {
					lastFail = now
				}
				probeOut = false
			}
			if d.StartProbe {
				if d.State != Down || probeOut {
					t.Fatalf("event %d: probe started in %v with one outstanding=%v", i, d.State, probeOut)
				}
				probeOut = true
			}
			if d.State == Down && !probeOut && now >= lastFail+cfg.ProbeInterval {
				t.Fatalf("event %d: down at %v, last probe failed at %v, and no probe started", i, now, lastFail)
			}
		}
	})
}

func TestStepDoesNotAllocate(t *testing.T) {
	m, err := New(Config{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var at time.Duration
	allocs := testing.AllocsPerRun(1000, func() {
		at += time.Millisecond
		m.Step(Event{Kind: RequestOK, At: at, Latency: at % (3 * time.Millisecond)})
		m.Step(Event{Kind: RequestTimeout, At: at})
		m.Step(Event{Kind: Tick, At: at})
	})
	if allocs != 0 {
		t.Fatalf("Step allocates %v times per run", allocs)
	}
}

func TestDeadlinePercentile(t *testing.T) {
	d := NewDeadline(Config{K: 1, Floor: time.Nanosecond, Ceiling: time.Hour, MinSamples: 1})
	// 1..256 µs, in a shuffled order: the nearest-rank p99 of 256 samples
	// is the 254th smallest.
	for i := range Window {
		d.Observe(time.Duration((i*97)%Window+1) * time.Microsecond)
	}
	if got := d.P99(); got != 254*time.Microsecond {
		t.Fatalf("p99 = %v, want 254µs", got)
	}
	if got := d.Current(); got != 254*time.Microsecond {
		t.Fatalf("deadline = %v, want 254µs", got)
	}
	d.Observe(-time.Second) // clamped to zero, never panics
	if d.Samples() != Window {
		t.Fatalf("samples = %d", d.Samples())
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{K: -1},
		{K: math.NaN()},
		{K: 1e9},
		{Floor: 10 * time.Millisecond, Ceiling: time.Millisecond},
		{Floor: -1},
		{Fixed: 48 * time.Hour},
		{MinSamples: Window + 1},
		{MinSamples: -3},
		{DownAfter: -1},
		{RecoverAfter: 1 << 30},
		{SuspectTimeout: -time.Second},
	}
	for _, c := range bad {
		if _, err := New(c, 0); !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v) = %v, want ErrBadConfig", c, err)
		}
	}
	if err := (Config{Floor: 200 * time.Millisecond}).Validate(); err != nil {
		t.Errorf("a floor above the default ceiling raises the ceiling: %v", err)
	}
}

func TestNames(t *testing.T) {
	if Healthy.String() != "healthy" || Resyncing.String() != "resyncing" || State(9).String() != "state(9)" {
		t.Error("state names")
	}
	if RequestOK.String() != "ok" || Tick.String() != "tick" || EventKind(0).String() != "event(0)" {
		t.Error("event names")
	}
}

func BenchmarkStep(b *testing.B) {
	m, err := New(Config{}, 1)
	if err != nil {
		b.Fatal(err)
	}
	var at time.Duration
	for b.Loop() {
		at += time.Microsecond
		m.Step(Event{Kind: RequestOK, At: at, Latency: at % (500 * time.Microsecond)})
	}
}
