package health

import (
	"fmt"
	"time"
)

// State is the health of one memnode as seen by one client.
type State uint8

// The states. The numbering is stable (it appears in metrics).
const (
	// Healthy: reads go to the node and wait for it up to the deadline.
	Healthy State = iota
	// Suspect: the node missed a deadline. Reads are still sent to it, so
	// that its answers can bring it back, but faults are served from the
	// backup at once rather than waiting another deadline.
	Suspect
	// Down: nothing is sent to the node; reads and writes go to the
	// backup and written pages join the outage set. A probe reconnects in
	// the background.
	Down
	// Resyncing: a probe reached the node and the outage set (or, after a
	// new boot epoch, every page) is being copied back to it.
	Resyncing
	numStates
)

var stateNames = [numStates]string{"healthy", "suspect", "down", "resyncing"}

// String returns the state's lower-case name.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// EventKind is what happened.
type EventKind uint8

// The events a driver feeds to a Machine.
const (
	// RequestOK: a request was answered within its deadline; Latency is
	// its round trip.
	RequestOK EventKind = iota + 1
	// LateAnswer: a request that had already timed out was answered after
	// Latency. The answer itself was discarded; the latency feeds the
	// deadline so that a slow link raises it (up to the ceiling).
	LateAnswer
	// RequestTimeout: a request passed its deadline unanswered.
	RequestTimeout
	// ConnError: the connection failed (refused, reset, closed). The node
	// is down at once: nothing more can be sent until a probe reconnects.
	ConnError
	// ProbeOK: a probe (or any reconnect) reached the node; Epoch is its
	// boot epoch, which changes when the node restarts empty.
	ProbeOK
	// ProbeFailed: a probe did not reach the node.
	ProbeFailed
	// ResyncProgress: Pages more pages were copied back.
	ResyncProgress
	// ResyncDone: the resync copied everything it had to.
	ResyncDone
	// ResyncFailed: the resync stopped on an error.
	ResyncFailed
	// Tick: only time passes.
	Tick
	numEventKinds
)

var eventNames = [numEventKinds]string{"", "ok", "late", "timeout", "connerr", "probe-ok",
	"probe-fail", "resync-progress", "resync-done", "resync-fail", "tick"}

// String returns the event's name as written in trace files.
func (k EventKind) String() string {
	if k > 0 && k < numEventKinds {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one input of a Machine.
type Event struct {
	Kind EventKind
	// At is when it happened, on any monotonic time line shared by all
	// events of one machine (for example time since the client started).
	// An event earlier than the previous one is taken as simultaneous.
	At time.Duration
	// Latency of RequestOK and LateAnswer.
	Latency time.Duration
	// Epoch of ProbeOK.
	Epoch uint64
	// Pages of ResyncProgress.
	Pages uint64
}

// Decision is a Machine's output after an event: how the driver should
// route requests from now on, and what to start now.
type Decision struct {
	State State
	// ReadRemote: send reads to the node. False while down, and during a
	// full resync (the node is empty). During any resync the driver still
	// reads pages of the outage set from the backup.
	ReadRemote bool
	// WaitDeadline: a read waits for the node up to Deadline before the
	// backup serves it. False while suspect (the read is sent, but the
	// backup answers at once) and whenever ReadRemote is false.
	WaitDeadline bool
	// WriteRemote: write evicted pages to the node (always also to the
	// backup). False while down: the page joins the outage set instead.
	WriteRemote bool
	// Deadline is the read deadline in force.
	Deadline time.Duration
	// StartProbe: start one probe now; report ProbeOK or ProbeFailed when
	// it ends. Never set while a probe is outstanding.
	StartProbe bool
	// StartResync: start a resync now; report ResyncProgress and then
	// ResyncDone or ResyncFailed. FullResync: the node came back with a
	// new boot epoch, so every page it homes must be copied from the
	// backup, not only the outage set.
	StartResync, FullResync bool
	// Changed: this event changed State.
	Changed bool
}

// Machine is the node-health state machine of one memnode. It does no I/O
// and reads no clock: events carry their time. Not safe for concurrent use;
// the driver serializes events.
//
//	          timeout                 timeout × DownAfter,
//	healthy ───────────▶ suspect ───── or SuspectTimeout ──┐
//	   ▲  ◀── ok × RecoverAfter ─┘                         ▼
//	   │                     connerr (from any state) ──▶ down ◀──┐
//	   │                                                   │ probe-ok
//	   │                     timeout, connerr, resync-fail │       │
//	   └──── resync-done ──── resyncing ◀──────────────────┘       │
//	                              └────────────────────────────────┘
//
// A probe-ok whose epoch differs from the last one seen moves any state to
// resyncing with a full repopulate.
type Machine struct {
	cfg      Config
	dl       *Deadline
	state    State
	now      time.Duration
	epoch    uint64 // last boot epoch seen (0: unknown)
	full     bool   // the resync in progress repopulates everything
	fails    int    // consecutive timeouts
	oks      int    // consecutive on-time answers while suspect
	since    time.Duration
	probing  bool
	nextProb time.Duration
	resynced uint64 // pages copied by the current resync
}

// New returns a machine in state Healthy that knows the node's boot epoch
// (0: unknown, adopted from the first ProbeOK without a resync).
func New(cfg Config, epoch uint64) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Machine{cfg: cfg, dl: NewDeadline(cfg), epoch: epoch}, nil
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Epoch returns the last boot epoch seen.
func (m *Machine) Epoch() uint64 { return m.epoch }

// ResyncedPages returns the pages copied by the current (or last) resync.
func (m *Machine) ResyncedPages() uint64 { return m.resynced }

// Deadline returns the deadline estimator.
func (m *Machine) Deadline() *Deadline { return m.dl }

// Status returns the routing part of the decision for the current state,
// with no actions.
func (m *Machine) Status() Decision {
	d := Decision{State: m.state, Deadline: m.dl.Current()}
	switch m.state {
	case Healthy:
		d.ReadRemote, d.WaitDeadline, d.WriteRemote = true, true, true
	case Suspect:
		d.ReadRemote, d.WriteRemote = true, true
	case Resyncing:
		d.ReadRemote, d.WaitDeadline, d.WriteRemote = !m.full, !m.full, true
		d.FullResync = m.full
	}
	return d
}

// Step feeds one event and returns the decision after it. Unknown event
// kinds are ignored (only time passes).
func (m *Machine) Step(ev Event) Decision {
	before := m.state
	m.now = max(m.now, ev.At)
	var startResync bool
	switch ev.Kind {
	case RequestOK:
		m.dl.Observe(ev.Latency)
		m.fails = 0
		if m.state == Suspect {
			m.oks++
			m.since = m.now
			if m.oks >= m.cfg.RecoverAfter {
				m.enter(Healthy)
			}
		}
	case LateAnswer:
		m.dl.Observe(ev.Latency)
	case RequestTimeout:
		switch m.state {
		case Healthy:
			m.fails = 1
			m.enter(Suspect)
			if m.fails >= m.cfg.DownAfter {
				m.enter(Down)
			}
		case Suspect:
			m.fails++
			m.oks = 0
			if m.fails >= m.cfg.DownAfter {
				m.enter(Down)
			}
		case Resyncing:
			m.enter(Down)
		}
	case ConnError, ResyncFailed:
		if m.state != Down && (ev.Kind == ConnError || m.state == Resyncing) {
			m.enter(Down)
		}
	case ProbeOK:
		if m.state == Down {
			m.probing = false
		}
		switch {
		case m.epoch != 0 && ev.Epoch != m.epoch:
			// The node restarted empty: whatever it held is gone, in any
			// state.
			m.epoch = ev.Epoch
			m.full = true
			m.enter(Resyncing)
			startResync = true
		case m.state == Down:
			// Same node, same memory: copy back the outage set only,
			// unless an earlier full resync was cut short.
			m.epoch = ev.Epoch
			m.enter(Resyncing)
			startResync = true
		default:
			m.epoch = ev.Epoch
		}
	case ProbeFailed:
		if m.state == Down && m.probing {
			m.probing = false
			m.nextProb = m.now + m.cfg.ProbeInterval
		}
	case ResyncProgress:
		if m.state == Resyncing {
			m.resynced += ev.Pages
		}
	case ResyncDone:
		if m.state == Resyncing {
			m.full = false
			m.enter(Healthy)
		}
	}
	if m.state == Suspect && m.now-m.since >= m.cfg.SuspectTimeout {
		m.enter(Down)
	}
	d := m.Status()
	d.Changed = m.state != before
	if startResync {
		d.StartResync, d.FullResync = true, m.full
	}
	if m.state == Down && !m.probing && m.now >= m.nextProb {
		m.probing = true
		d.StartProbe = true
	}
	return d
}

// enter moves to s and resets what s keeps.
func (m *Machine) enter(s State) {
	m.state = s
	m.since = m.now
	switch s {
	case Healthy:
		m.fails, m.oks = 0, 0
	case Suspect:
		m.oks = 0
	case Down:
		m.fails, m.oks = 0, 0
		m.probing = false
		m.nextProb = m.now // probe at once
	case Resyncing:
		m.resynced = 0
	}
}
