package faultproxy

import (
	"testing"
)

// FuzzParseSpec checks that Parse never panics, that whatever it accepts is
// valid, and that the canonical form parses back to the same schedule.
func FuzzParseSpec(f *testing.F) {
	for _, seed := range []string{
		"",
		"blackhole@5s+3s,delay@10s+2s:50ms,reset@14s,kill@16s+2s",
		"cut@1s,kill@2s,delay@3s:1ms",
		"blackhole@1s+1s,blackhole@2s+1s",
		"reset@1.5s, reset@2s",
		"kill@1s+5s,kill@3s",
		"delay@0s+1ns:1ns",
		"reset@1000h",
		"x@y+z:w",
		",,,",
		"blackhole@1e3s",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted an invalid schedule: %v", spec, err)
		}
		canon := s.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, spec, err)
		}
		if len(again.Events) != len(s.Events) {
			t.Fatalf("round trip of %q changed the event count", canon)
		}
		for i := range s.Events {
			if again.Events[i] != s.Events[i] {
				t.Fatalf("round trip of %q: event %d %+v became %+v", canon, i, s.Events[i], again.Events[i])
			}
		}
		edges := s.Edges()
		for i := 1; i < len(edges); i++ {
			if edges[i].At < edges[i-1].At {
				t.Fatalf("edges of %q out of order", canon)
			}
		}
	})
}
