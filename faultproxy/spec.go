package faultproxy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind is the kind of an injected fault.
type Kind uint8

// The fault kinds. The numbering is stable: Counts is indexed by Kind.
const (
	// Blackhole holds every byte in both directions for the event's
	// duration: connections stay open, nothing answers, new connections are
	// accepted and held too. Held bytes are delivered when it ends, as TCP
	// retransmission would after a partition heals.
	Blackhole Kind = iota
	// Delay adds the event's parameter of latency to every chunk forwarded
	// in either direction, preserving order.
	Delay
	// Reset aborts every current connection with a TCP RST. Instantaneous.
	Reset
	// Cut closes every current connection (FIN) and resets every new one
	// for the event's duration.
	Cut
	// Kill stops the backend through Hooks.Kill at the event's start and
	// starts it again through Hooks.Restart when its duration has passed
	// (at once when it has none).
	Kill
	// NumKinds is the number of kinds.
	NumKinds
)

var kindNames = [NumKinds]string{"blackhole", "delay", "reset", "cut", "kill"}

// String returns the kind's name as written in a spec.
func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Windowed reports whether the kind lasts for a duration (blackhole, delay,
// cut); reset is a point in time and kill a point with an optional restart
// delay.
func (k Kind) Windowed() bool { return k == Blackhole || k == Delay || k == Cut }

// Defaults applied by Parse when a spec leaves a value out.
const (
	// DefaultDuration is the duration of a blackhole, delay or cut written
	// without +duration.
	DefaultDuration = time.Second
	// DefaultDelay is the added latency of a delay written without :param.
	DefaultDelay = 50 * time.Millisecond
	// MaxSpan bounds every start + duration and every parameter, so that
	// arithmetic on them never overflows.
	MaxSpan = 1000 * time.Hour
	// MaxEvents bounds the number of events in one spec.
	MaxEvents = 1 << 16
)

// Event is one scheduled fault, relative to the start of a run.
type Event struct {
	Kind Kind
	// Start is when the fault begins, measured from the runner's start.
	Start time.Duration
	// Duration is how long a windowed fault lasts, or how long a killed
	// backend stays down before it is restarted (0: restarted at once).
	// Always 0 for Reset.
	Duration time.Duration
	// Param is the added latency of a Delay; 0 for every other kind.
	Param time.Duration
}

// End is Start + Duration: the first instant at which the event is over.
func (e Event) End() time.Duration { return e.Start + e.Duration }

// String formats the event in spec syntax, every value explicit.
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	b.WriteByte('@')
	b.WriteString(e.Start.String())
	if e.Duration > 0 {
		b.WriteByte('+')
		b.WriteString(e.Duration.String())
	}
	if e.Kind == Delay {
		b.WriteByte(':')
		b.WriteString(e.Param.String())
	}
	return b.String()
}

// Schedule is a list of events sorted by Start (ties keep spec order). No two
// events of the same kind overlap. The zero Schedule injects nothing.
type Schedule struct {
	Events []Event
}

// String formats the schedule in spec syntax; Parse(s.String()) returns a
// schedule equal to s.
func (s Schedule) String() string {
	parts := make([]string, len(s.Events))
	for i, e := range s.Events {
		parts[i] = e.String()
	}
	return strings.Join(parts, ",")
}

// End is the instant the last event is over (0 for an empty schedule).
func (s Schedule) End() time.Duration {
	var end time.Duration
	for _, e := range s.Events {
		end = max(end, e.End())
	}
	return end
}

// Count returns how many events of kind k the schedule holds.
func (s Schedule) Count(k Kind) int {
	n := 0
	for _, e := range s.Events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Parse reads a schedule spec: a comma-separated list of events
//
//	kind@start[+duration][:param]
//
// for example "blackhole@5s+3s,delay@10s+2s:50ms,reset@14s,kill@16s+2s".
// Durations are Go durations (time.ParseDuration) without a sign. Blanks
// around events are ignored; an empty or blank spec is an empty schedule.
// The events are returned sorted by start. See docs/FAULTS.md for the full
// grammar, the defaults and the overlap rule.
func Parse(spec string) (Schedule, error) {
	if strings.TrimSpace(spec) == "" {
		return Schedule{}, nil
	}
	if n := strings.Count(spec, ",") + 1; n > MaxEvents {
		return Schedule{}, fmt.Errorf("%w: %d events, at most %d", ErrTooManyEvents, n, MaxEvents)
	}
	fields := strings.Split(spec, ",")
	events := make([]Event, 0, len(fields))
	for i, f := range fields {
		e, err := parseEvent(strings.TrimSpace(f))
		if err != nil {
			return Schedule{}, fmt.Errorf("%w (event %d %q)", err, i+1, quoteShort(f))
		}
		events = append(events, e)
	}
	slices.SortStableFunc(events, func(a, b Event) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	s := Schedule{Events: events}
	if err := s.Validate(); err != nil {
		return Schedule{}, err
	}
	return s, nil
}

// MustParse is Parse for specs written in code; it panics on a bad spec.
func MustParse(spec string) Schedule {
	s, err := Parse(spec)
	if err != nil {
		panic(err)
	}
	return s
}

func quoteShort(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func parseEvent(f string) (Event, error) {
	if f == "" {
		return Event{}, fmt.Errorf("%w: empty event", ErrSpecSyntax)
	}
	name, rest, ok := strings.Cut(f, "@")
	if !ok {
		return Event{}, fmt.Errorf("%w: missing '@'", ErrSpecSyntax)
	}
	kind := NumKinds
	for k, n := range kindNames {
		if name == n {
			kind = Kind(k)
		}
	}
	if kind == NumKinds {
		return Event{}, fmt.Errorf("%w: %q (want blackhole, delay, reset, cut or kill)", ErrUnknownKind, quoteShort(name))
	}
	rest, param, hasParam := strings.Cut(rest, ":")
	start, dur, hasDur := strings.Cut(rest, "+")
	e := Event{Kind: kind}
	var err error
	if e.Start, err = parseDur("start", start, false); err != nil {
		return Event{}, err
	}
	switch {
	case hasDur && kind == Reset:
		return Event{}, fmt.Errorf("%w: reset is instantaneous", ErrUnexpectedDuration)
	case hasDur:
		if e.Duration, err = parseDur("duration", dur, true); err != nil {
			return Event{}, err
		}
	case kind.Windowed():
		e.Duration = DefaultDuration
	}
	switch {
	case hasParam && kind != Delay:
		return Event{}, fmt.Errorf("%w: only delay takes :param", ErrUnexpectedParam)
	case hasParam:
		if e.Param, err = parseDur("delay", param, true); err != nil {
			return Event{}, err
		}
	case kind == Delay:
		e.Param = DefaultDelay
	}
	if e.End() > MaxSpan {
		return Event{}, fmt.Errorf("%w: ends at %v, beyond %v", ErrBadDuration, e.End(), MaxSpan)
	}
	return e, nil
}

// parseDur parses an unsigned Go duration no larger than MaxSpan.
func parseDur(what, s string, positive bool) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty %s", ErrBadDuration, what)
	}
	if c := s[0]; (c < '0' || c > '9') && c != '.' {
		return 0, fmt.Errorf("%w: %s %q must start with a digit", ErrBadDuration, what, quoteShort(s))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q: %v", ErrBadDuration, what, quoteShort(s), err)
	}
	if d > MaxSpan {
		return 0, fmt.Errorf("%w: %s %v beyond %v", ErrBadDuration, what, d, MaxSpan)
	}
	if positive && d <= 0 {
		return 0, fmt.Errorf("%w: %s must be positive", ErrBadDuration, what)
	}
	return d, nil
}

// Validate checks what Parse guarantees, for schedules built in code: known
// kinds, values within MaxSpan, positive durations for windowed kinds and a
// positive parameter for delay, none for the others, events sorted by start,
// and no two events of the same kind overlapping. Windows are half-open
// [Start, End): one may begin at the instant another ends. Two point events
// (resets, kills without duration) of the same kind may not share an
// instant, and a point event may not fall inside a window of its kind.
func (s Schedule) Validate() error {
	if len(s.Events) > MaxEvents {
		return fmt.Errorf("%w: %d events, at most %d", ErrTooManyEvents, len(s.Events), MaxEvents)
	}
	var last [NumKinds]*Event
	for i := range s.Events {
		e := &s.Events[i]
		switch {
		case e.Kind >= NumKinds:
			return fmt.Errorf("%w: %v", ErrUnknownKind, e.Kind)
		case e.Start < 0 || e.Duration < 0 || e.Param < 0 || e.Start > MaxSpan ||
			e.Duration > MaxSpan || e.Param > MaxSpan || e.End() > MaxSpan:
			return fmt.Errorf("%w: event %v out of range", ErrBadDuration, e)
		case e.Kind.Windowed() && e.Duration == 0:
			return fmt.Errorf("%w: %v needs a positive duration", ErrBadDuration, e)
		case e.Kind == Reset && e.Duration != 0:
			return fmt.Errorf("%w: %v", ErrUnexpectedDuration, e)
		case e.Kind == Delay && e.Param == 0:
			return fmt.Errorf("%w: %v needs a positive delay", ErrBadDuration, e)
		case e.Kind != Delay && e.Param != 0:
			return fmt.Errorf("%w: %v", ErrUnexpectedParam, e)
		case i > 0 && e.Start < s.Events[i-1].Start:
			return fmt.Errorf("%w: events not sorted by start at %v", ErrSpecSyntax, e)
		}
		// Events are sorted by start, so an event can only overlap the
		// latest earlier event of its kind.
		if p := last[e.Kind]; p != nil && (e.Start < p.End() || e.Start == p.Start) {
			return fmt.Errorf("%w: %v and %v", ErrOverlap, p, e)
		}
		last[e.Kind] = e
	}
	return nil
}

// State is what a schedule has in force at one instant.
type State struct {
	// Blackhole and Cut are true inside such a window.
	Blackhole, Cut bool
	// Delay is the added latency in force (0: none).
	Delay time.Duration
	// Killed is true while the backend is down between a kill and its
	// restart.
	Killed bool
}

// At returns the faults in force at instant t of a run: the windows that
// contain t (Start <= t < End). Resets, and kills without a duration, are
// points that are never "in force"; Edges lists them.
func (s Schedule) At(t time.Duration) State {
	var st State
	for _, e := range s.Events {
		if e.Start > t {
			break
		}
		if t >= e.End() {
			continue
		}
		switch e.Kind {
		case Blackhole:
			st.Blackhole = true
		case Delay:
			st.Delay = e.Param
		case Cut:
			st.Cut = true
		case Kill:
			st.Killed = true
		}
	}
	return st
}

// Edge is one instant at which a runner acts: an event begins or ends.
type Edge struct {
	At time.Duration
	// Event indexes Schedule.Events.
	Event int
	// Begin is true when the event starts, false when it ends. A reset has
	// only a beginning.
	Begin bool
}

// Edges returns the instants at which a runner acts, in the order it acts:
// by time; at one instant, first the ends of windows, then beginnings, then
// the ends (restarts) of kills without duration, so that a window ending
// when the next of its kind begins, and a kill-and-restart, come out right.
func (s Schedule) Edges() []Edge {
	edges := make([]Edge, 0, 2*len(s.Events))
	for i, e := range s.Events {
		edges = append(edges, Edge{At: e.Start, Event: i, Begin: true})
		if e.Kind != Reset {
			edges = append(edges, Edge{At: e.End(), Event: i})
		}
	}
	rank := func(g Edge) int {
		switch {
		case g.Begin:
			return 1
		case s.Events[g.Event].Duration == 0:
			return 2
		}
		return 0
	}
	slices.SortStableFunc(edges, func(a, b Edge) int {
		switch {
		case a.At != b.At:
			if a.At < b.At {
				return -1
			}
			return 1
		case rank(a) != rank(b):
			return rank(a) - rank(b)
		}
		return a.Event - b.Event
	})
	return edges
}
