//go:build linux

package cpuqos

import (
	"errors"
	"testing"
	"time"
)

// TestHold: while a request is held the kernel enforces at most its value,
// and after Close a larger one again (unless someone else on the machine
// holds a request at least as strict, which the test then cannot tell).
func TestHold(t *testing.T) {
	before, err := Current()
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("no PM QoS here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	const want = 3 * time.Microsecond
	r, err := Hold(want)
	if err != nil {
		t.Fatal(err)
	}
	if r.Latency() != want {
		t.Errorf("Latency() = %v, want %v", r.Latency(), want)
	}
	during, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	if during > want {
		t.Errorf("while holding %v the kernel enforces %v", want, during)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	after, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	if before > want && after <= want {
		t.Errorf("after Close the kernel still enforces %v (before: %v)", after, before)
	}
}

func TestHoldRange(t *testing.T) {
	for _, d := range []time.Duration{-time.Microsecond, maxLatency + time.Microsecond} {
		if _, err := Hold(d); !errors.Is(err, ErrLatency) {
			t.Errorf("Hold(%v) = %v, want ErrLatency", d, err)
		}
	}
}
