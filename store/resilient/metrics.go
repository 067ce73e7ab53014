package resilient

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the store's running totals.
type counters struct {
	failovers, backupReads, timeouts, connErrors     atomic.Uint64
	remoteCorrupt, remoteLost, remoteStale           atomic.Uint64
	remoteWriteFailures, outageAdded, resyncedPages  atomic.Uint64
	resyncs, fullResyncs, probes, transitions, downs atomic.Uint64
	logErrors                                        atomic.Uint64
}

// Counters is a snapshot of a Store's counters, for benchmarks (JSON) and
// tests. Prometheus exports the same numbers (see Metrics).
type Counters struct {
	// Failovers: remote reads of a page that the backup served instead
	// (deadline, broken connection, corrupt, missing or stale remote copy).
	Failovers uint64 `json:"failovers"`
	// BackupReads: pages read from the backup, failovers and pages routed
	// there directly (node down or suspect, page in the outage set).
	BackupReads uint64 `json:"backup_reads"`
	// Timeouts and ConnErrors: remote requests that missed their deadline
	// or failed in transport.
	Timeouts   uint64 `json:"timeouts"`
	ConnErrors uint64 `json:"conn_errors"`
	// RemoteCorrupt, RemoteLost, RemoteStale: remote answers that failed
	// their checksum, said "not found" for a page written through this
	// store, or carried an older version; each page is rewritten.
	RemoteCorrupt uint64 `json:"remote_corrupt"`
	RemoteLost    uint64 `json:"remote_lost"`
	RemoteStale   uint64 `json:"remote_stale"`
	// RemoteWriteFailures: pages whose remote write failed (they joined
	// the outage set).
	RemoteWriteFailures uint64 `json:"remote_write_failures"`
	// OutagePages is the outage set's size now; OutageAdded counts the
	// pages that joined it by a write (a page written again while still in
	// it is not counted again).
	OutagePages int64  `json:"outage_pages"`
	OutageAdded uint64 `json:"outage_added"`
	// ResyncedPages: pages copied from the backup to a node.
	ResyncedPages uint64 `json:"resynced_pages"`
	// Resyncs and FullResyncs started by the health machines; Probes of
	// down nodes; Downs: times a node was marked down.
	Resyncs     uint64 `json:"resyncs"`
	FullResyncs uint64 `json:"full_resyncs"`
	Probes      uint64 `json:"probes"`
	Downs       uint64 `json:"downs"`
	// LogErrors: outage-set log appends that failed outside a write (a
	// write whose record fails fails itself).
	LogErrors uint64 `json:"log_errors"`
	// Nodes is each node's state and read deadline.
	Nodes []NodeCounters `json:"nodes"`
}

// NodeCounters is one node's state, read deadline, and how many times it
// was marked down.
type NodeCounters struct {
	Addr       string  `json:"addr"`
	State      string  `json:"state"`
	DeadlineMS float64 `json:"deadline_ms"`
	Downs      uint64  `json:"downs"`
}

// Counters returns a snapshot of the counters.
func (s *Store) Counters() Counters {
	c := &s.ctr
	out := Counters{
		Failovers: c.failovers.Load(), BackupReads: c.backupReads.Load(),
		Timeouts: c.timeouts.Load(), ConnErrors: c.connErrors.Load(),
		RemoteCorrupt: c.remoteCorrupt.Load(), RemoteLost: c.remoteLost.Load(), RemoteStale: c.remoteStale.Load(),
		RemoteWriteFailures: c.remoteWriteFailures.Load(),
		OutagePages:         s.out.Len(), OutageAdded: c.outageAdded.Load(),
		ResyncedPages: c.resyncedPages.Load(), Resyncs: c.resyncs.Load(), FullResyncs: c.fullResyncs.Load(),
		Probes: c.probes.Load(), Downs: c.downs.Load(), LogErrors: c.logErrors.Load(),
	}
	for _, n := range s.nodes {
		r := n.routing()
		out.Nodes = append(out.Nodes, NodeCounters{Addr: n.addr, State: r.state.String(),
			DeadlineMS: float64(r.deadline) / float64(time.Millisecond), Downs: n.downs.Load()})
	}
	return out
}

// metrics is the store's Prometheus collector: every value is read from the
// counters when scraped.
type metrics struct {
	reg   prometheus.Registerer
	descs map[string]*prometheus.Desc
	s     *Store
}

// The metric names, all prefixed farmem_resilient_.
var metricHelp = map[string]string{
	"failovers_total":            "Remote reads served by the backup instead (deadline, connection, corrupt, missing or stale remote copy).",
	"backup_reads_total":         "Pages read from the backup.",
	"remote_timeouts_total":      "Remote requests that missed their deadline.",
	"remote_conn_errors_total":   "Remote requests that failed in transport.",
	"remote_corrupt_pages_total": "Remote pages that failed their checksum (rewritten from the backup).",
	"remote_lost_pages_total":    "Remote pages missing on a node (rewritten from the backup).",
	"remote_stale_pages_total":   "Remote pages older than the newest write (rewritten from the backup).",
	"outage_pages":               "Pages whose newest copy is in the backup only (the outage set).",
	"resync_pages_total":         "Pages copied from the backup to a node by resync or repair.",
	"resyncs_total":              "Resyncs started (after a node came back).",
	"full_resyncs_total":         "Full resyncs started (a node came back empty with a new boot epoch).",
	"node_state":                 "Health of each node: 0 healthy, 1 suspect, 2 down, 3 resyncing.",
	"node_read_deadline_seconds": "Read deadline in force for each node.",
}

func newMetrics(s *Store, reg prometheus.Registerer, labels prometheus.Labels) (*metrics, error) {
	m := &metrics{reg: reg, s: s, descs: make(map[string]*prometheus.Desc)}
	for name, help := range metricHelp {
		var vars []string
		if name == "node_state" || name == "node_read_deadline_seconds" {
			vars = []string{"node"}
		}
		m.descs[name] = prometheus.NewDesc("farmem_resilient_"+name, help, vars, labels)
	}
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	c := m.s.Counters()
	counter := func(name string, v uint64) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, float64(v))
	}
	counter("failovers_total", c.Failovers)
	counter("backup_reads_total", c.BackupReads)
	counter("remote_timeouts_total", c.Timeouts)
	counter("remote_conn_errors_total", c.ConnErrors)
	counter("remote_corrupt_pages_total", c.RemoteCorrupt)
	counter("remote_lost_pages_total", c.RemoteLost)
	counter("remote_stale_pages_total", c.RemoteStale)
	counter("resync_pages_total", c.ResyncedPages)
	counter("resyncs_total", c.Resyncs)
	counter("full_resyncs_total", c.FullResyncs)
	ch <- prometheus.MustNewConstMetric(m.descs["outage_pages"], prometheus.GaugeValue, float64(c.OutagePages))
	for _, n := range m.s.nodes {
		r := n.routing()
		ch <- prometheus.MustNewConstMetric(m.descs["node_state"], prometheus.GaugeValue, float64(r.state), n.addr)
		ch <- prometheus.MustNewConstMetric(m.descs["node_read_deadline_seconds"], prometheus.GaugeValue, r.deadline.Seconds(), n.addr)
	}
}

func (m *metrics) unregister() { m.reg.Unregister(m) }
