package memnode

import (
	"net/http"
	"net/http/pprof"

	"github.com/farmem/farmem/internal/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series, in its own registry. Labelled
// counters are resolved once here so that the hot path only adds.
type metrics struct {
	reg                  *prometheus.Registry
	reqRead, reqWrite    prometheus.Counter
	reqFree, reqStat     prometheus.Counter
	pagesRead, pagesWrit prometheus.Counter
	pagesFreed           prometheus.Counter
	errs                 [wire.CodeInternal + 1]prometheus.Counter
	conns                prometheus.Gauge
	connsTotal           prometheus.Counter
	bytesIn, bytesOut    prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	const ns = "farmem_memnode"
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
		Help: "Requests served, by operation."}, []string{"op"})
	pages := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "page_ops_total",
		Help: "Pages read, written or freed, by operation."}, []string{"op"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "errors_total",
		Help: "Error replies, per-page error statuses and connection failures, by kind."}, []string{"kind"})
	m := &metrics{
		reg:       reg,
		reqRead:   reqs.WithLabelValues("read"),
		reqWrite:  reqs.WithLabelValues("write"),
		reqFree:   reqs.WithLabelValues("free"),
		reqStat:   reqs.WithLabelValues("stat"),
		pagesRead: pages.WithLabelValues("read"), pagesWrit: pages.WithLabelValues("write"),
		pagesFreed: pages.WithLabelValues("free"),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "Open client connections."}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connections_total",
			Help: "Client connections accepted."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "bytes_in_total",
			Help: "Frame bytes received."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "bytes_out_total",
			Help: "Frame bytes sent."}),
	}
	for c := wire.CodeBadFrame; c <= wire.CodeInternal; c++ {
		m.errs[c] = errs.WithLabelValues(c.String())
	}
	used := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "pages_used",
		Help: "Pages stored, over all namespaces."}, func() float64 { return float64(s.slab.used.Load()) })
	capacity := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "pages_capacity",
		Help: "Most pages the memnode holds."}, func() float64 { return float64(s.slab.capacity) })
	reg.MustRegister(reqs, pages, errs, m.conns, m.connsTotal, m.bytesIn, m.bytesOut, used, capacity)
	return m
}

func (m *metrics) err(c wire.Code) {
	if int(c) < len(m.errs) && c != wire.OK {
		m.errs[c].Inc()
	}
}

// AdminHandler serves /metrics from the server's registry and the standard
// /debug/pprof endpoints, for the --admin listener.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{Registry: s.m.reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
