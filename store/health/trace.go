package health

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Trace files replay a Machine exactly, one event per line, each followed
// by the decision expected after it:
//
//	# a comment; blank lines are kept too
//	config k=4 floor=2ms ceiling=100ms epoch=7
//	0s      ok 200us x32   => healthy read=remote wait write=remote deadline=2ms
//	+10ms   timeout        => suspect read=remote nowait write=remote deadline=2ms
//	1.5s    tick           => down read=backup nowait write=backup deadline=2ms probe
//	+1ms    probe-ok 8     => resyncing read=backup nowait write=remote deadline=2ms resync-full
//
// A line is AT EVENT [ARG] [xN] [=> DECISION]. AT is a Go duration, absolute
// or, with a leading '+', after the previous event. EVENT is an EventKind
// name; ok and late take a latency, probe-ok a boot epoch, resync-progress a
// page count. xN repeats the event N times (the decision shown is after the
// last). The optional config line, before the first event, sets Config
// fields (k, floor, ceiling, initial, min-samples, fixed, down-after,
// recover-after, suspect-timeout, probe-interval) and the initial epoch.
// FormatDecision writes the part after "=>".

// Limits of the trace decoder.
const (
	maxTraceRepeat = 100_000
	maxTraceTime   = 1000 * time.Hour
)

// Trace is a decoded trace file.
type Trace struct {
	Config Config
	Epoch  uint64
	Lines  []TraceLine
}

// TraceLine is one line of a trace. Lines without an event (comments, blank
// lines, the config line) have Repeat 0 and are kept verbatim in Raw.
type TraceLine struct {
	// Raw is the line as read.
	Raw string
	// Input is the event part, before "=>", trimmed.
	Input string
	// Event and Repeat (>= 1) are set for event lines.
	Event  Event
	Repeat int
	// Want is the expected decision, after "=>" (empty if none).
	Want string
}

// ParseTrace decodes a trace file. Errors name the line and wrap
// ErrTraceSyntax, ErrTraceEvent, ErrTraceValue or ErrBadConfig.
func ParseTrace(text string) (*Trace, error) {
	tr := &Trace{}
	var at time.Duration
	sawEvent := false
	for i, raw := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		line := TraceLine{Raw: raw}
		if strings.HasPrefix(strings.TrimSpace(raw), "#") {
			tr.Lines = append(tr.Lines, line)
			continue
		}
		input, want, _ := strings.Cut(raw, "=>")
		line.Input, line.Want = strings.TrimSpace(input), strings.TrimSpace(want)
		fields := strings.Fields(line.Input)
		switch {
		case len(fields) == 0:
			if line.Want != "" {
				return nil, fmt.Errorf("%w: line %d: decision without an event", ErrTraceSyntax, i+1)
			}
		case fields[0] == "config":
			if sawEvent {
				return nil, fmt.Errorf("%w: line %d: config after the first event", ErrTraceSyntax, i+1)
			}
			if err := tr.parseConfig(fields[1:]); err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
		default:
			sawEvent = true
			var err error
			if line.Event, line.Repeat, at, err = parseEventLine(fields, at); err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		tr.Lines = append(tr.Lines, line)
	}
	if err := tr.Config.Validate(); err != nil {
		return nil, err
	}
	return tr, nil
}

func (tr *Trace) parseConfig(kvs []string) error {
	c := &tr.Config
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%w: config %q is not key=value", ErrTraceSyntax, kv)
		}
		var err error
		switch k {
		case "k":
			c.K, err = strconv.ParseFloat(v, 64)
		case "floor":
			c.Floor, err = parseTraceDur(v)
		case "ceiling":
			c.Ceiling, err = parseTraceDur(v)
		case "initial":
			c.Initial, err = parseTraceDur(v)
		case "fixed":
			c.Fixed, err = parseTraceDur(v)
		case "suspect-timeout":
			c.SuspectTimeout, err = parseTraceDur(v)
		case "probe-interval":
			c.ProbeInterval, err = parseTraceDur(v)
		case "min-samples":
			c.MinSamples, err = strconv.Atoi(v)
		case "down-after":
			c.DownAfter, err = strconv.Atoi(v)
		case "recover-after":
			c.RecoverAfter, err = strconv.Atoi(v)
		case "epoch":
			tr.Epoch, err = strconv.ParseUint(v, 10, 64)
		default:
			return fmt.Errorf("%w: unknown config key %q", ErrTraceSyntax, k)
		}
		if err != nil {
			return fmt.Errorf("%w: config %s: %v", ErrTraceValue, k, err)
		}
	}
	return nil
}

func parseTraceDur(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > maxTraceTime {
		return 0, fmt.Errorf("%v not in [0, %v]", d, maxTraceTime)
	}
	return d, nil
}

func parseEventLine(f []string, prev time.Duration) (Event, int, time.Duration, error) {
	var ev Event
	if len(f) < 2 {
		return ev, 0, prev, fmt.Errorf("%w: want AT EVENT [ARG] [xN]", ErrTraceSyntax)
	}
	rel := strings.HasPrefix(f[0], "+")
	d, err := parseTraceDur(strings.TrimPrefix(f[0], "+"))
	if err != nil {
		return ev, 0, prev, fmt.Errorf("%w: time %q: %v", ErrTraceValue, f[0], err)
	}
	ev.At = d
	if rel {
		ev.At = prev + d
	}
	if ev.At > maxTraceTime {
		return ev, 0, prev, fmt.Errorf("%w: time %v beyond %v", ErrTraceValue, ev.At, maxTraceTime)
	}
	for k := RequestOK; k < numEventKinds; k++ {
		if eventNames[k] == f[1] {
			ev.Kind = k
		}
	}
	if ev.Kind == 0 {
		return ev, 0, prev, fmt.Errorf("%w: %q", ErrTraceEvent, f[1])
	}
	rest := f[2:]
	repeat := 1
	if n := len(rest); n > 0 && strings.HasPrefix(rest[n-1], "x") {
		repeat, err = strconv.Atoi(rest[n-1][1:])
		if err != nil || repeat < 1 || repeat > maxTraceRepeat {
			return ev, 0, prev, fmt.Errorf("%w: repeat %q not in x1..x%d", ErrTraceValue, rest[n-1], maxTraceRepeat)
		}
		rest = rest[:n-1]
	}
	wantArg := ev.Kind == RequestOK || ev.Kind == LateAnswer || ev.Kind == ProbeOK || ev.Kind == ResyncProgress
	switch {
	case wantArg && len(rest) != 1:
		return ev, 0, prev, fmt.Errorf("%w: %s takes one argument", ErrTraceSyntax, ev.Kind)
	case !wantArg && len(rest) != 0:
		return ev, 0, prev, fmt.Errorf("%w: %s takes no argument", ErrTraceSyntax, ev.Kind)
	}
	switch ev.Kind {
	case RequestOK, LateAnswer:
		ev.Latency, err = parseTraceDur(rest[0])
	case ProbeOK:
		ev.Epoch, err = strconv.ParseUint(rest[0], 10, 64)
	case ResyncProgress:
		ev.Pages, err = strconv.ParseUint(rest[0], 10, 64)
	}
	if err != nil {
		return ev, 0, prev, fmt.Errorf("%w: %s argument %q: %v", ErrTraceValue, ev.Kind, rest[0], err)
	}
	return ev, repeat, ev.At, nil
}

// FormatDecision writes a decision as trace files show it:
//
//	STATE read=remote|backup wait|nowait write=remote|backup deadline=D [probe] [resync|resync-full]
func FormatDecision(d Decision) string {
	where := func(remote bool) string {
		if remote {
			return "remote"
		}
		return "backup"
	}
	wait := "nowait"
	if d.WaitDeadline {
		wait = "wait"
	}
	s := fmt.Sprintf("%s read=%s %s write=%s deadline=%v", d.State, where(d.ReadRemote), wait, where(d.WriteRemote), d.Deadline)
	if d.StartProbe {
		s += " probe"
	}
	switch {
	case d.StartResync && d.FullResync:
		s += " resync-full"
	case d.StartResync:
		s += " resync"
	}
	return s
}

// Replay runs the trace on a new Machine and returns, for every line, the
// decision after its event (formatted) or "" for lines without one.
func (tr *Trace) Replay() ([]string, error) {
	m, err := New(tr.Config, tr.Epoch)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(tr.Lines))
	for i, l := range tr.Lines {
		var d Decision
		for range l.Repeat {
			d = m.Step(l.Event)
		}
		if l.Repeat > 0 {
			out[i] = FormatDecision(d)
		}
	}
	return out, nil
}
