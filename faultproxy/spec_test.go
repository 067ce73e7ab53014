package faultproxy

import (
	"errors"
	"testing"
	"time"
)

const (
	ms = time.Millisecond
	s  = time.Second
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, spec string
		want       []Event
	}{
		{"empty", "", nil},
		{"blank", "  ", nil},
		{"issue example", "blackhole@5s+3s,delay@10s+2s:50ms,reset@14s,kill@16s+2s", []Event{
			{Kind: Blackhole, Start: 5 * s, Duration: 3 * s},
			{Kind: Delay, Start: 10 * s, Duration: 2 * s, Param: 50 * ms},
			{Kind: Reset, Start: 14 * s},
			{Kind: Kill, Start: 16 * s, Duration: 2 * s},
		}},
		{"defaults", "blackhole@1s,delay@0s,cut@3s,kill@4s", []Event{
			{Kind: Delay, Start: 0, Duration: DefaultDuration, Param: DefaultDelay},
			{Kind: Blackhole, Start: 1 * s, Duration: DefaultDuration},
			{Kind: Cut, Start: 3 * s, Duration: DefaultDuration},
			{Kind: Kill, Start: 4 * s},
		}},
		{"sorted stably, blanks ignored", " reset@2s , cut@1s+500ms, blackhole@1s+1s ", []Event{
			{Kind: Cut, Start: s, Duration: 500 * ms},
			{Kind: Blackhole, Start: s, Duration: s},
			{Kind: Reset, Start: 2 * s},
		}},
		{"adjacent windows of one kind", "blackhole@1s+1s,blackhole@2s+1s", []Event{
			{Kind: Blackhole, Start: s, Duration: s},
			{Kind: Blackhole, Start: 2 * s, Duration: s},
		}},
		{"fractions and units", "delay@1.5s+250ms:1.5ms,kill@1m+1h", []Event{
			{Kind: Delay, Start: 1500 * ms, Duration: 250 * ms, Param: 1500 * time.Microsecond},
			{Kind: Kill, Start: time.Minute, Duration: time.Hour},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.spec)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.spec, err)
			}
			if len(got.Events) != len(tc.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tc.spec, got.Events, tc.want)
			}
			for i := range tc.want {
				if got.Events[i] != tc.want[i] {
					t.Errorf("event %d = %+v, want %+v", i, got.Events[i], tc.want[i])
				}
			}
			again, err := Parse(got.String())
			if err != nil || again.String() != got.String() {
				t.Errorf("round trip of %q: %q, %v", got.String(), again.String(), err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec string
		want error
	}{
		{"blackhole", ErrSpecSyntax},
		{"blackhole@1s,", ErrSpecSyntax},
		{",reset@1s", ErrSpecSyntax},
		{"flood@1s", ErrUnknownKind},
		{"Blackhole@1s", ErrUnknownKind},
		{"@1s", ErrUnknownKind},
		{"reset@", ErrBadDuration},
		{"reset@5", ErrBadDuration},
		{"reset@-1s", ErrBadDuration},
		{"reset@+1s", ErrBadDuration},
		{"blackhole@1s+0s", ErrBadDuration},
		{"blackhole@1s+", ErrBadDuration},
		{"blackhole@1s+-2s", ErrBadDuration},
		{"delay@1s+1s:0s", ErrBadDuration},
		{"delay@1s+1s:", ErrBadDuration},
		{"kill@1s+2x", ErrBadDuration},
		{"reset@1001h", ErrBadDuration},
		{"cut@999h+2h", ErrBadDuration},
		{"reset@99999999999999h", ErrBadDuration},
		{"reset@1s+1s", ErrUnexpectedDuration},
		{"blackhole@1s+1s:5ms", ErrUnexpectedParam},
		{"kill@1s:5ms", ErrUnexpectedParam},
		{"blackhole@1s+2s,blackhole@2s+2s", ErrOverlap},
		{"reset@1s,reset@1s", ErrOverlap},
		{"kill@1s+5s,kill@3s", ErrOverlap},
		{"kill@3s,kill@3s", ErrOverlap},
		{"delay@0s+10s:1ms,delay@9s+1s:2ms", ErrOverlap},
	}
	for _, tc := range tests {
		_, err := Parse(tc.spec)
		if !errors.Is(err, tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.spec, err, tc.want)
		}
	}
}

func TestParseTooMany(t *testing.T) {
	spec := make([]byte, 0, 2*MaxEvents+2)
	for range MaxEvents + 1 {
		spec = append(spec, ',')
	}
	if _, err := Parse(string(spec)); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("got %v, want ErrTooManyEvents", err)
	}
}

func TestAt(t *testing.T) {
	sched := MustParse("blackhole@5s+3s,delay@10s+2s:50ms,reset@14s,kill@16s+2s,cut@6s+1s,kill@20s")
	tests := []struct {
		at   time.Duration
		want State
	}{
		{0, State{}},
		{5*s - 1, State{}},
		{5 * s, State{Blackhole: true}},
		{6 * s, State{Blackhole: true, Cut: true}},
		{7 * s, State{Blackhole: true}},
		{8 * s, State{}},
		{10 * s, State{Delay: 50 * ms}},
		{12*s - 1, State{Delay: 50 * ms}},
		{12 * s, State{}},
		{14 * s, State{}}, // a reset is a point, never in force
		{16 * s, State{Killed: true}},
		{18 * s, State{}},
		{20 * s, State{}}, // kill without duration restarts at once
		{time.Hour, State{}},
	}
	for _, tc := range tests {
		if got := sched.At(tc.at); got != tc.want {
			t.Errorf("At(%v) = %+v, want %+v", tc.at, got, tc.want)
		}
	}
	if got := sched.End(); got != 20*s {
		t.Errorf("End = %v, want 20s", got)
	}
}

func TestEdgesOrder(t *testing.T) {
	// At 2s: the first blackhole ends before the second begins; the kill
	// without duration begins and then ends (restart); the reset is a
	// single edge.
	sched := MustParse("blackhole@1s+1s,blackhole@2s+1s,kill@2s,reset@2s")
	type e struct {
		at    time.Duration
		kind  Kind
		begin bool
	}
	want := []e{
		{s, Blackhole, true},
		{2 * s, Blackhole, false},
		{2 * s, Blackhole, true},
		{2 * s, Kill, true},
		{2 * s, Reset, true},
		{2 * s, Kill, false},
		{3 * s, Blackhole, false},
	}
	got := sched.Edges()
	if len(got) != len(want) {
		t.Fatalf("Edges = %v", got)
	}
	for i, g := range got {
		if w := want[i]; g.At != w.at || sched.Events[g.Event].Kind != w.kind || g.Begin != w.begin {
			t.Errorf("edge %d = %v %v begin=%v, want %+v", i, g.At, sched.Events[g.Event].Kind, g.Begin, w)
		}
	}
}

func TestValidateRejectsBuiltSchedules(t *testing.T) {
	tests := []struct {
		name string
		s    Schedule
		want error
	}{
		{"unknown kind", Schedule{Events: []Event{{Kind: NumKinds}}}, ErrUnknownKind},
		{"negative start", Schedule{Events: []Event{{Kind: Reset, Start: -1}}}, ErrBadDuration},
		{"unsorted", Schedule{Events: []Event{{Kind: Reset, Start: 2}, {Kind: Kill, Start: 1}}}, ErrSpecSyntax},
		{"windowed without duration", Schedule{Events: []Event{{Kind: Cut, Start: 1}}}, ErrBadDuration},
		{"delay without param", Schedule{Events: []Event{{Kind: Delay, Duration: 1}}}, ErrBadDuration},
		{"param on cut", Schedule{Events: []Event{{Kind: Cut, Duration: 1, Param: 1}}}, ErrUnexpectedParam},
		{"reset with duration", Schedule{Events: []Event{{Kind: Reset, Duration: 1}}}, ErrUnexpectedDuration},
	}
	for _, tc := range tests {
		if err := tc.s.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k := range NumKinds {
		if s, err := Parse(k.String() + "@1s"); err != nil || s.Events[0].Kind != k {
			t.Errorf("kind %v does not parse back: %v", k, err)
		}
	}
	if got := NumKinds.String(); got != "kind(5)" {
		t.Errorf("NumKinds.String() = %q", got)
	}
}
