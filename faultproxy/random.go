package faultproxy

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Bounds of the delays RandomSchedule draws.
const (
	randMinDelay = time.Millisecond
	randMaxDelay = 50 * time.Millisecond
)

// RandomSchedule returns a valid schedule with perKind events of every kind
// spread over [0, total), drawn from seed: the same arguments always give
// the same schedule. Each kind's events are placed one per slot of width
// total/perKind, so events of one kind never overlap while different kinds
// overlap freely. A windowed event lasts between 1/8 and 1/2 of its slot, a
// kill keeps the backend down for up to 1/2 of its slot (a quarter of kills
// restart at once), and a delay adds 1 ms to 50 ms. perKind <= 0, a
// non-positive total, or slots shorter than 8 ns give an empty schedule.
func RandomSchedule(seed int64, total time.Duration, perKind int) Schedule {
	if perKind <= 0 || total <= 0 || total > MaxSpan || perKind > MaxEvents/int(NumKinds) {
		return Schedule{}
	}
	slot := total / time.Duration(perKind)
	if slot < 8 {
		return Schedule{}
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	span := func(lo, hi time.Duration) time.Duration { // uniform in [lo, hi)
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(r.Int64N(int64(hi-lo)))
	}
	events := make([]Event, 0, perKind*int(NumKinds))
	for k := range NumKinds {
		for i := range perKind {
			base := time.Duration(i) * slot
			e := Event{Kind: k, Start: base + span(0, slot/2)}
			switch {
			case k.Windowed():
				e.Duration = span(slot/8, slot/2)
			case k == Kill && r.IntN(4) != 0:
				e.Duration = span(1, slot/2)
			}
			if k == Delay {
				e.Param = span(randMinDelay, randMaxDelay+1)
			}
			events = append(events, e)
		}
	}
	slices.SortStableFunc(events, func(a, b Event) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return int(a.Kind) - int(b.Kind)
	})
	return Schedule{Events: events}
}
