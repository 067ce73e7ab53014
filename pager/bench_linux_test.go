//go:build linux

package pager_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/pager"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
	"github.com/farmem/farmem/uffd"
)

// envProbeNoFill, when set, makes the probe child skip writing every page
// before "ready".
const envProbeNoFill = "FARMEM_PAGER_TEST_PROBE_NOFILL"

// childProbe maps a region, writes every page, prints "ready", and for each
// line "go N" on stdin times N first touches of pages mincore reports not
// resident and prints "p50 <µs>".
func childProbe() error {
	pages, _ := strconv.Atoi(os.Getenv(envPages))
	ps := os.Getpagesize()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	m, err := farmem.Map(ctx, os.Getenv(envSocket), pages*ps)
	cancel()
	if err != nil {
		return err
	}
	defer m.Close()
	b := m.Bytes()
	buf := make([]byte, ps)
	for pg := range pages {
		if os.Getenv(envProbeNoFill) != "" {
			break
		}
		copyVersion(buf, uint64(pg), 1)
		copy(b[pg*ps:], buf)
	}
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(1, 2))
	in := bufio.NewScanner(os.Stdin)
	var vec [1]byte
	var sink byte
	next := 0
	for in.Scan() {
		if v, ok := strings.CutPrefix(in.Text(), "write "); ok {
			// Whole-page writes, to the next pages in order ("write seq
			// N") or to random pages among those the seq writes reached
			// ("write random N"): most fault the page in and dirty it, so
			// the pager evicts dirty pages all along.
			seq := false
			if v, seq = strings.CutPrefix(v, "seq "); !seq {
				v = strings.TrimPrefix(v, "random ")
			}
			n, _ := strconv.Atoi(v)
			t := time.Now()
			for range n {
				pg := rng.IntN(max(next, 1))
				if seq {
					pg, next = next, (next+1)%pages
				}
				copyVersion(buf, uint64(pg), 2)
				copy(b[pg*ps:], buf)
			}
			fmt.Printf("ns %d\n", time.Since(t).Nanoseconds()/int64(n))
			continue
		}
		if v, ok := strings.CutPrefix(in.Text(), "wp "); ok {
			// First writes to clean resident pages: read a page (which
			// installs it clean if it was not resident), then time one
			// store to it, which raises the write-protect fault.
			n, _ := strconv.Atoi(v)
			d := make([]time.Duration, 0, n)
			for range n {
				pg := rng.IntN(pages)
				sink += b[pg*ps+8]
				t := time.Now()
				b[pg*ps+1] = byte(pg)
				d = append(d, time.Since(t))
			}
			slices.Sort(d)
			fmt.Printf("p50 %.2f %d\n", float64(d[len(d)/2])/1e3, sink)
			continue
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(in.Text(), "go "))
		d := make([]time.Duration, 0, n)
		for tries := 0; len(d) < n && tries < 100*n; tries++ {
			pg := rng.IntN(pages)
			p := unsafe.Pointer(&b[pg*ps])
			if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(p), uintptr(ps), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
				return errno
			}
			if vec[0]&1 != 0 {
				continue
			}
			t := time.Now()
			sink += b[pg*ps]
			d = append(d, time.Since(t))
		}
		slices.Sort(d)
		fmt.Printf("p50 %.2f %d\n", float64(d[len(d)/2])/1e3, sink)
	}
	return nil
}

func p50us(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2]) / 1e3
}

// BenchmarkFault times the application's first touch of an evicted page
// (served by an in-process pager from a memnode child) and reports it with
// the pager's own service time for those faults (event read to UFFDIO_COPY
// done), the bare userfaultfd fault and the raw TCP round trip, measured in
// the same rounds, and the memnode client's synchronous read in a tight
// loop; without and with the spin-polling reader:
//
//	go test -run '^$' -bench Fault -benchtime 2000x ./pager
func BenchmarkFault(b *testing.B) {
	for _, spin := range []time.Duration{0, 50 * time.Microsecond} {
		b.Run("spin="+spin.String(), func(b *testing.B) { benchmarkFault(b, spin) })
	}
}

func benchmarkFault(b *testing.B, spin time.Duration) {
	node, err := nodeproc.Start(nodeproc.Config{Capacity: 64 << 20, PageSize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Stop(5 * time.Second)
	p, err := pager.New(pager.Config{Local: 256 * 4096, SpinPoll: spin,
		NewStore: pager.RemoteStores([]string{node.Addr()}, nil, "pagerbench", os.Getpagesize())})
	if err != nil {
		b.Fatal(err)
	}
	sock := b.TempDir() + "/pager.sock"
	l, err := listen(sock, p)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, l) }()
	defer func() { cancel(); <-served; l.Close(); p.Close() }()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=probe", envSocket+"="+sock, envPages+"=4096")
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "ready" {
		b.Fatalf("probe child: %q", out.Text())
	}
	// The memnode client's synchronous read in this process, in a tight
	// loop and after 100 µs idle (a fault's fetch follows idle time: the
	// difference is the cost of waking idle threads on both sides).
	var serialDo, idleDo float64
	{
		st, err := remote.New(context.Background(), remote.Config{Nodes: []string{node.Addr()}, Namespace: "pagerbench-do", PageSize: 4096})
		if err != nil {
			b.Fatal(err)
		}
		page := make([]byte, 4096)
		call := store.Call{Op: store.OpWrite, Pages: []store.Page{{ID: 1, Data: page, Sum: store.Checksum(page)}}, Done: make(chan *store.Call, 1)}
		if err := st.Do(context.Background(), &call); err != nil {
			b.Fatal(err)
		}
		call.Op = store.OpRead
		var d []time.Duration
		for range 2000 {
			call.Reset()
			t := time.Now()
			if err := st.Do(context.Background(), &call); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
		}
		serialDo = p50us(d)
		d = d[:0]
		for range 1000 {
			time.Sleep(100 * time.Microsecond)
			call.Reset()
			t := time.Now()
			if err := st.Do(context.Background(), &call); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
		}
		idleDo = p50us(d)
		st.Close()
	}
	const rounds = 4
	var app, bare, rtt []float64
	p.ResetServiceLatency()
	b.ResetTimer()
	for i := range rounds {
		n := max(b.N/rounds, 10)
		bd, err := uffd.BareFaultSamples(n)
		if err != nil {
			b.Fatal(err)
		}
		bare = append(bare, p50us(bd))
		rd, err := remote.RawRTT(context.Background(), node.Addr(), "pagerbench-rtt-"+strconv.Itoa(i), nil, n)
		if err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, p50us(rd))
		fmt.Fprintf(stdin, "go %d\n", n)
		if !out.Scan() {
			b.Fatal("probe child ended")
		}
		var v float64
		var sink int
		fmt.Sscanf(out.Text(), "p50 %f %d", &v, &sink)
		app = append(app, v)
	}
	// The cost of dirty tracking by write-protect faults: a first write to
	// a clean page (what UFFD_FEATURE_WP_ASYNC would save per page).
	fmt.Fprintf(stdin, "wp %d\n", max(b.N/rounds, 10))
	if !out.Scan() {
		b.Fatal("probe child ended")
	}
	var wp float64
	var sink int
	fmt.Sscanf(out.Text(), "p50 %f %d", &wp, &sink)
	b.StopTimer()
	med := func(x []float64) float64 { slices.Sort(x); return x[len(x)/2] }
	b.ReportMetric(wp, "wp-fault-p50-µs")
	s := p.Stats()
	b.ReportMetric(med(app), "fault-p50-µs")
	b.ReportMetric(s.ServiceP50US, "pager-service-p50-µs")
	b.ReportMetric(med(bare), "bare-p50-µs")
	b.ReportMetric(med(rtt), "rtt-p50-µs")
	b.ReportMetric(med(app)/(med(bare)+med(rtt)), "ratio")
	b.ReportMetric(serialDo, "serial-do-p50-µs")
	b.ReportMetric(idleDo, "idle-do-p50-µs")
}

// BenchmarkEvict measures the eviction path without and with a metadata
// pool (Config.Meta, farmem pager --meta): three in-process pagers over one
// memnode child — no pool, a pool on /dev/shm (tmpfs), a pool in the test's
// temporary directory (the disk's file system) — each serving its own
// application child that writes whole pages of a region 64 times the
// budget, so that nearly every write faults a page in and the pager evicts
// dirty pages all along. Two phases per round: "first", writes in address
// order to pages never written before, so every eviction batch sets new
// bits (one transaction per batch: the worst case); "rewrite", writes to
// random pages already written back once, whose bits are set (no
// transaction). The pagers take turns within each round, so a change of the
// machine's load weighs on all alike. Per pager and phase it reports the
// mean time of an eviction batch (victim selection to the end of the
// punch) and, with a pool, of its bit transaction, transactions per batch,
// and the batch-time ratio against the pager without a pool; and the
// application's median time per page written:
//
//	go test -run '^$' -bench Evict -benchtime 16000x ./pager
func BenchmarkEvict(b *testing.B) {
	const pages, rounds = 16384, 8
	if b.N > pages {
		b.Fatalf("-benchtime %dx: at most %d (the first phase writes each page once)", b.N, pages)
	}
	node, err := nodeproc.Start(nodeproc.Config{Capacity: 256 << 20, PageSize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Stop(5 * time.Second)
	type phase struct {
		batches, batchNS, txs, txNS uint64
		appUS                       []float64
	}
	type setup struct {
		name string
		meta string // pool path; "" for none
		p    *pager.Pager
		in   io.WriteCloser
		out  *bufio.Scanner
		ph   [2]phase // first, rewrite
	}
	shm, err := os.MkdirTemp("/dev/shm", "farmem-bench-meta-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(shm)
	setups := []*setup{
		{name: "none"},
		{name: "tmpfs", meta: filepath.Join(shm, "meta")},
		{name: "disk", meta: filepath.Join(b.TempDir(), "meta")},
	}
	for i, s := range setups {
		prefix := fmt.Sprintf("pagerbench-evict-%d-%d", os.Getpid(), i)
		cfg := pager.Config{Local: 256 * 4096, Recoverable: true,
			NewStore: pager.RemoteStores([]string{node.Addr()}, nil, prefix, os.Getpagesize())}
		if s.meta != "" {
			m, err := pager.OpenMeta(s.meta, pager.MetaOptions{Namespace: prefix})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			cfg.Meta = m
		}
		if s.p, err = pager.New(cfg); err != nil {
			b.Fatal(err)
		}
		sock := filepath.Join(b.TempDir(), "pager.sock")
		l, err := listen(sock, s.p)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- s.p.Serve(ctx, l) }()
		defer func() { cancel(); <-served; l.Close(); s.p.Close() }()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envRole+"=probe", envSocket+"="+sock, envPages+"="+strconv.Itoa(pages),
			envProbeNoFill+"=1")
		cmd.Stderr = os.Stderr
		s.in, _ = cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { s.in.Close(); cmd.Wait() }()
		s.out = bufio.NewScanner(stdout)
		if !s.out.Scan() || s.out.Text() != "ready" {
			b.Fatalf("probe child: %q", s.out.Text())
		}
	}
	b.ResetTimer()
	for range rounds {
		for k, mode := range []string{"seq", "random"} {
			for _, s := range setups {
				before := s.p.Stats()
				fmt.Fprintf(s.in, "write %s %d\n", mode, max(b.N/rounds, 1))
				if !s.out.Scan() {
					b.Fatal("probe child ended")
				}
				var ns float64
				fmt.Sscanf(s.out.Text(), "ns %f", &ns)
				after := s.p.Stats()
				ph := &s.ph[k]
				ph.appUS = append(ph.appUS, ns/1e3)
				ph.batches += after.EvictBatches - before.EvictBatches
				ph.batchNS += after.EvictNS - before.EvictNS
				ph.txs += after.MetaTxs - before.MetaTxs
				ph.txNS += after.MetaNS - before.MetaNS
			}
		}
	}
	b.StopTimer()
	med := func(x []float64) float64 { slices.Sort(x); return x[len(x)/2] }
	per := func(ns, n uint64) float64 { return float64(ns) / float64(max(n, 1)) / 1e3 }
	for k, name := range []string{"first", "rewrite"} {
		base := per(setups[0].ph[k].batchNS, setups[0].ph[k].batches)
		for _, s := range setups {
			ph := &s.ph[k]
			batch := per(ph.batchNS, ph.batches)
			pfx := name + "-" + s.name + "-"
			b.ReportMetric(batch, pfx+"batch-µs")
			b.ReportMetric(med(ph.appUS), pfx+"app-µs/page")
			if s.meta != "" {
				b.ReportMetric(per(ph.txNS, ph.txs), pfx+"tx-µs")
				b.ReportMetric(float64(ph.txs)/float64(max(ph.batches, 1)), pfx+"tx/batch")
				b.ReportMetric(batch/base, pfx+"batch-ratio")
			}
		}
	}
}
