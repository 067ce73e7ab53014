package resilient

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
	"github.com/farmem/farmem/store/storetest"
)

const (
	testPS    = 4096
	testPages = 256
)

var testRegion = [16]byte{'t', 'e', 's', 't'}

// testHealth gives quick failure detection: a fixed 20 ms deadline, a probe
// every 10 ms.
var testHealth = health.Config{Fixed: 20 * time.Millisecond, ProbeInterval: 10 * time.Millisecond, SuspectTimeout: 100 * time.Millisecond}

func openTest(t *testing.T, prim store.Store, path string, create bool) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Primary: prim, Pages: testPages, Health: testHealth, Tick: 5 * time.Millisecond},
		BackupFile{Path: path, Create: create, RegionID: testRegion})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, nodes := range []int{1, 3} {
		t.Run(map[int]string{1: "OneNode", 3: "ThreeNodes"}[nodes], func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				return openTest(t, newFakePrimary(testPS, nodes), filepath.Join(t.TempDir(), "backup"), true)
			})
		})
	}
}

// page makes version v of page id.
func page(id store.PageID, v uint64) store.Page {
	d := make([]byte, testPS)
	storetest.Fill(d, uint64(id), v)
	return store.Page{ID: id, Data: d, Sum: store.Checksum(d)}
}

func writePages(t *testing.T, s store.Store, v uint64, ids ...store.PageID) {
	t.Helper()
	c := &store.Call{Op: store.OpWrite}
	for _, id := range ids {
		c.Pages = append(c.Pages, page(id, v))
	}
	if err := store.Do(context.Background(), s, c); err != nil {
		t.Fatalf("write v%d: %v", v, err)
	}
}

func checkPages(t *testing.T, s store.Store, v uint64, ids ...store.PageID) {
	t.Helper()
	for _, id := range ids {
		c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: id, Data: make([]byte, testPS)}}}
		if err := store.Do(context.Background(), s, c); err != nil {
			t.Fatalf("read page %d: %v", id, err)
		}
		if err := storetest.Check(c.Pages[0].Data, uint64(id), v); err != nil {
			t.Fatalf("page %d: %v", id, err)
		}
	}
}

// eventually polls cond until it holds; the bound is a liveness check, not a
// performance assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("timed out waiting until %s; goroutines:\n%s", what, buf[:runtime.Stack(buf, true)])
}

func state(s *Store, node int) health.State { return s.nodes[node].routing().state }

func ids(n int) []store.PageID {
	out := make([]store.PageID, n)
	for i := range out {
		out[i] = store.PageID(i)
	}
	return out
}

func TestSilentNodeFailsOverAndStopsWaiting(t *testing.T) {
	prim := newFakePrimary(testPS, 2)
	s := openTest(t, prim, filepath.Join(t.TempDir(), "backup"), true)
	defer s.Close()
	all := ids(16)
	writePages(t, s, 1, all...)
	prim.set(0, fakeSilent)
	// Node 0's pages come from the backup after a deadline, node 1's from
	// node 1.
	checkPages(t, s, 1, all...)
	c := s.Counters()
	if c.Failovers == 0 || c.Timeouts == 0 {
		t.Fatalf("no failover counted: %+v", c)
	}
	if st := state(s, 0); st == health.Healthy {
		t.Fatalf("node 0 still healthy after a missed deadline")
	}
	eventually(t, "node 0 is down", func() bool { return state(s, 0) == health.Down })
	// Down: reads of its pages no longer go to it at all, so none waits.
	before := s.Counters().Timeouts
	checkPages(t, s, 1, 0, 2, 4, 6)
	if got := s.Counters().Timeouts; got != before {
		t.Fatalf("reads of a down node's pages still time out: %d -> %d", before, got)
	}
	if state(s, 1) != health.Healthy {
		t.Fatalf("node 1 is %v", state(s, 1))
	}
}

func TestOutageSetAndResync(t *testing.T) {
	prim := newFakePrimary(testPS, 2)
	s := openTest(t, prim, filepath.Join(t.TempDir(), "backup"), true)
	defer s.Close()
	all := ids(32)
	writePages(t, s, 1, all...)
	prim.set(1, fakeDown)
	writePages(t, s, 2, all...) // connection error: node 1 down at once
	eventually(t, "node 1 is down", func() bool { return state(s, 1) == health.Down })
	writePages(t, s, 3, all...)
	if n := s.Counters().OutagePages; n != 16 {
		t.Fatalf("outage set holds %d pages, want node 1's 16", n)
	}
	for _, id := range all {
		if id%2 == 1 && prim.has(id, page(id, 3).Sum, testPS) {
			t.Fatalf("page %d reached a down node", id)
		}
	}
	checkPages(t, s, 3, all...)
	prim.set(1, fakeOK)
	eventually(t, "node 1 is healthy again", func() bool { return state(s, 1) == health.Healthy })
	if n := s.Counters().OutagePages; n != 0 {
		t.Fatalf("outage set holds %d pages after resync", n)
	}
	for _, id := range all {
		if !prim.has(id, page(id, 3).Sum, testPS) {
			t.Fatalf("page %d not resynced to its node", id)
		}
	}
	if c := s.Counters(); c.ResyncedPages < 16 || c.Resyncs == 0 {
		t.Fatalf("resync not counted: %+v", c)
	}
	checkPages(t, s, 3, all...)
}

func TestOutageSetSurvivesRestart(t *testing.T) {
	prim := newFakePrimary(testPS, 2)
	path := filepath.Join(t.TempDir(), "backup")
	s := openTest(t, prim, path, true)
	all := ids(20)
	writePages(t, s, 1, all...)
	prim.set(0, fakeDown)
	writePages(t, s, 2, all...)
	if n := s.Counters().OutagePages; n != 10 {
		t.Fatalf("outage set holds %d pages, want 10", n)
	}
	s.Close()
	// The client restarts while node 0 is still unreachable.
	s = openTest(t, prim, path, false)
	defer s.Close()
	if n := s.Counters().OutagePages; n != 10 {
		t.Fatalf("reopened outage set holds %d pages, want 10", n)
	}
	checkPages(t, s, 2, all...)
	prim.set(0, fakeOK)
	eventually(t, "node 0 is healthy", func() bool { return state(s, 0) == health.Healthy && s.Counters().OutagePages == 0 })
	for _, id := range all {
		if !prim.has(id, page(id, 2).Sum, testPS) {
			t.Fatalf("page %d not resynced after the restart", id)
		}
	}
}

func TestNewEpochRepopulates(t *testing.T) {
	prim := newFakePrimary(testPS, 2)
	s := openTest(t, prim, filepath.Join(t.TempDir(), "backup"), true)
	defer s.Close()
	all := ids(40)
	writePages(t, s, 1, all...)
	prim.restart(1, testPages)
	s.EpochChanged(1, prim.Epochs()[1])
	// Reads are right throughout: a page missing on the node is served by
	// the backup.
	checkPages(t, s, 1, all...)
	eventually(t, "node 1 repopulated", func() bool {
		if state(s, 1) != health.Healthy {
			return false
		}
		for _, id := range all {
			if !prim.has(id, page(id, 1).Sum, testPS) {
				return false
			}
		}
		return true
	})
	if c := s.Counters(); c.FullResyncs == 0 {
		t.Fatalf("no full resync: %+v", c)
	}
	if got := s.out.epoch(1); got != prim.Epochs()[1] {
		t.Fatalf("recorded epoch %d, node has %d", got, prim.Epochs()[1])
	}
}

// TestFullResyncResumes: a full resync cut short by the node failing again
// resumes where it stopped, rather than copying everything again.
func TestFullResyncResumes(t *testing.T) {
	prim := newFakePrimary(testPS, 1)
	s, err := Open(context.Background(), Config{Primary: prim, Pages: testPages, Health: testHealth, Tick: 5 * time.Millisecond,
		ResyncBatch: 8, ResyncDepth: 1}, BackupFile{Path: filepath.Join(t.TempDir(), "backup"), Create: true, RegionID: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all := ids(testPages)
	writePages(t, s, 1, all...)
	prim.restart(0, testPages)
	prim.downAfterWrites.Store(10) // fail on the 10th batch of the first attempt
	s.EpochChanged(0, prim.Epochs()[0])
	eventually(t, "the first attempt failed", func() bool { return state(s, 0) == health.Down })
	first := s.Counters().ResyncedPages
	prim.set(0, fakeOK)
	eventually(t, "repopulated", func() bool { return state(s, 0) == health.Healthy })
	c := s.Counters()
	if c.FullResyncs < 2 {
		t.Fatalf("expected a second full resync: %+v", c)
	}
	if first == 0 || first >= testPages || c.ResyncedPages > testPages+8 {
		t.Fatalf("first attempt copied %d pages, both %d, for %d pages: not resumed", first, c.ResyncedPages, testPages)
	}
	for _, id := range all {
		if !prim.has(id, page(id, 1).Sum, testPS) {
			t.Fatalf("page %d missing after the resumed resync", id)
		}
	}
}

func TestRestartFindsNodeRestarted(t *testing.T) {
	prim := newFakePrimary(testPS, 1)
	path := filepath.Join(t.TempDir(), "backup")
	s := openTest(t, prim, path, true)
	all := ids(10)
	writePages(t, s, 1, all...)
	s.Close()
	prim.restart(0, testPages) // while the client was away
	s = openTest(t, prim, path, false)
	defer s.Close()
	eventually(t, "node repopulated at open", func() bool {
		for _, id := range all {
			if !prim.has(id, page(id, 1).Sum, testPS) {
				return false
			}
		}
		return state(s, 0) == health.Healthy
	})
}

func TestCorruptRemotePageRewritten(t *testing.T) {
	prim := newFakePrimary(testPS, 1)
	s := openTest(t, prim, filepath.Join(t.TempDir(), "backup"), true)
	defer s.Close()
	writePages(t, s, 1, 7)
	prim.Corrupt(7)
	checkPages(t, s, 1, 7)
	if c := s.Counters(); c.RemoteCorrupt != 1 || c.Failovers != 1 {
		t.Fatalf("corruption not counted: %+v", c)
	}
	eventually(t, "the remote copy is rewritten", func() bool { return prim.has(7, page(7, 1).Sum, testPS) })
	checkPages(t, s, 1, 7)
}

func TestStaleRemotePageNotServed(t *testing.T) {
	prim := newFakePrimary(testPS, 1)
	s := openTest(t, prim, filepath.Join(t.TempDir(), "backup"), true)
	defer s.Close()
	writePages(t, s, 2, 5)
	// A late remote write of an older version lands after the newer one.
	old := page(5, 1)
	if err := store.Do(context.Background(), prim.Mem, &store.Call{Op: store.OpWrite, Pages: []store.Page{old}}); err != nil {
		t.Fatal(err)
	}
	checkPages(t, s, 2, 5)
	if c := s.Counters(); c.RemoteStale != 1 {
		t.Fatalf("stale copy not counted: %+v", c)
	}
	eventually(t, "the stale copy is rewritten", func() bool { return prim.has(5, page(5, 2).Sum, testPS) })
}

func TestBackupFullFailsWrite(t *testing.T) {
	prim := newFakePrimary(testPS, 1)
	backup := store.NewMem(testPS, 4)
	o := newMemOutage(t, &memFile{}, 1)
	s, err := newStore(Config{Primary: prim, Backup: backup, Pages: testPages, Health: testHealth}, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writePages(t, s, 1, 0, 1, 2, 3)
	c := &store.Call{Op: store.OpWrite, Pages: []store.Page{page(4, 1)}}
	err = store.Do(context.Background(), s, c)
	if !errors.Is(err, ErrBackupFull) || !errors.Is(err, store.ErrFull) {
		t.Fatalf("write past the backup's capacity: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	prim := newFakePrimary(testPS, 1)
	open := func(path string, o BackupFile) error {
		o.Path = path
		s, err := Open(context.Background(), Config{Primary: prim, Pages: testPages}, o)
		if err == nil {
			s.Close()
		}
		return err
	}
	missing := filepath.Join(dir, "missing")
	if err := open(missing, BackupFile{RegionID: testRegion}); !errors.Is(err, ErrBackupMissing) {
		t.Fatalf("missing backup: %v", err)
	}
	good := filepath.Join(dir, "good")
	if err := open(good, BackupFile{RegionID: testRegion, Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := open(good, BackupFile{RegionID: [16]byte{'o', 't', 'h', 'e', 'r'}}); !errors.Is(err, store.ErrWrongRegion) {
		t.Fatalf("backup of another region: %v", err)
	}
	s, err := Open(context.Background(), Config{Primary: prim, Pages: testPages * 2}, BackupFile{Path: good, RegionID: testRegion})
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, store.ErrWrongRegion) {
		t.Fatalf("backup of another size: %v", err)
	}
	small := filepath.Join(dir, "small")
	copyFile(t, good, small)
	copyFile(t, good+".outage", small+".outage")
	if err := os.Truncate(small, 3*testPS); err != nil {
		t.Fatal(err)
	}
	if err := open(small, BackupFile{RegionID: testRegion}); !errors.Is(err, store.ErrBadFile) {
		t.Fatalf("backup too small: %v", err)
	}
	noside := filepath.Join(dir, "noside")
	copyFile(t, good, noside)
	if err := open(noside, BackupFile{RegionID: testRegion}); !errors.Is(err, ErrOutageMissing) {
		t.Fatalf("backup without its outage set: %v", err)
	}
	badside := filepath.Join(dir, "badside")
	copyFile(t, good, badside)
	os.WriteFile(badside+".outage", []byte(strings.Repeat("x", 100)), 0o600)
	if err := open(badside, BackupFile{RegionID: testRegion}); !errors.Is(err, ErrOutageFile) || !errors.Is(err, store.ErrBadFile) {
		t.Fatalf("garbage outage set: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMetrics(t *testing.T) {
	prim := newFakePrimary(testPS, 2)
	reg := prometheus.NewRegistry()
	s, err := Open(context.Background(), Config{Primary: prim, Pages: testPages, Health: testHealth, Registerer: reg},
		BackupFile{Path: filepath.Join(t.TempDir(), "b"), Create: true, RegionID: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writePages(t, s, 1, 0, 1)
	prim.set(0, fakeSilent)
	checkPages(t, s, 1, 0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[mf.GetName()] += v
		}
	}
	for name := range metricHelp {
		if _, ok := got["farmem_resilient_"+name]; !ok {
			t.Errorf("metric %s not exported", name)
		}
	}
	if got["farmem_resilient_failovers_total"] != 1 || got["farmem_resilient_backup_reads_total"] != 1 {
		t.Fatalf("failover metrics: %v", got)
	}
}

// newMemOutage makes an empty outage set on f.
func newMemOutage(t testing.TB, f *memFile, nodes int) *outageSet {
	t.Helper()
	h := outageHeader{Version: outageVersion, PageSize: testPS, Pages: testPages, RegionID: testRegion, Nodes: uint32(nodes)}
	b := make([]byte, outageHeaderSize)
	h.encode(b)
	f.WriteAt(b, 0)
	f.Sync()
	o, err := loadOutage(f, f.size(), "", h)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestOutageCrash crashes the outage log after every acknowledged write
// made while the node is down, and at random points in between: the set
// recovered from what reached the media always holds every page whose write
// was acknowledged and has not been resynced since, and a torn tail is cut.
func TestOutageCrash(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	f := &memFile{}
	prim := newFakePrimary(testPS, 1)
	o := newMemOutage(t, f, 1)
	s, err := newStore(Config{Primary: prim, Backup: store.NewMem(testPS, 0), Pages: testPages, Health: testHealth}, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	prim.set(0, fakeDown)
	acked := map[store.PageID]bool{}
	h := outageHeader{Version: outageVersion, PageSize: testPS, Pages: testPages, RegionID: testRegion, Nodes: 1}
	for step := range 200 {
		batch := []store.PageID{store.PageID(rng.IntN(testPages)), store.PageID(rng.IntN(testPages))}
		writePages(t, s, uint64(step), batch...)
		for _, id := range batch {
			acked[id] = true
		}
		// Unsynced noise after the acknowledged state: a done record of a
		// page not in the set is never written, so append a torn record
		// by hand, as a crash in the middle of the next append would.
		if rng.IntN(4) == 0 {
			var rb [recordSize]byte
			record{Op: opAdd, Arg: uint64(rng.IntN(testPages))}.encode(rb[:])
			f.WriteAt(rb[:rng.IntN(recordSize)], f.size())
		}
		img := f.crash(rng)
		got, err := loadOutage(img, img.size(), "", h)
		if err != nil {
			t.Fatalf("step %d: recovering the outage set: %v", step, err)
		}
		for id := range acked {
			if !got.has(id) {
				t.Fatalf("step %d: acknowledged page %d forgotten by the crash", step, id)
			}
		}
		if (img.size()-outageHeaderSize)%recordSize != 0 {
			t.Fatalf("step %d: torn tail of %d bytes not truncated", step, (img.size()-outageHeaderSize)%recordSize)
		}
		// Recovery is idempotent.
		again, err := loadOutage(img, img.size(), "", h)
		if err != nil || again.Len() != got.Len() {
			t.Fatalf("step %d: second recovery: %v, %d pages vs %d", step, err, again.Len(), got.Len())
		}
		// Leave the log clean for the next step (the torn bytes were
		// never acknowledged).
		o.mu.Lock()
		f.Truncate(outageHeaderSize + (f.size()-outageHeaderSize)/recordSize*recordSize)
		o.tail = f.size()
		o.mu.Unlock()
	}
	// Heal: everything is resynced and leaves the set.
	prim.set(0, fakeOK)
	eventually(t, "healthy", func() bool {
		return state(s, 0) == health.Healthy && s.Counters().OutagePages == 0
	})
	for id := range acked {
		c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: id, Data: make([]byte, testPS)}}}
		if err := store.Do(context.Background(), prim.Mem, c); err != nil {
			t.Fatalf("page %d not on the node after resync: %v", id, err)
		}
	}
}

func TestOutageRecordRoundTrip(t *testing.T) {
	h := outageHeader{Version: outageVersion, PageSize: testPS, Pages: testPages, RegionID: testRegion, Nodes: 3}
	var hb [outageHeaderSize]byte
	h.encode(hb[:])
	got, err := decodeOutageHeader(hb[:])
	if err != nil || got != h {
		t.Fatalf("header round trip: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		r    record
		err  error
	}{
		{"add", record{Op: opAdd, Arg: 5}, nil},
		{"done", record{Op: opDone, Arg: testPages - 1}, nil},
		{"epoch", record{Op: opEpoch, Node: 2, Arg: 1 << 60}, nil},
		{"page out of range", record{Op: opAdd, Arg: testPages}, ErrOutageRecord},
		{"node out of range", record{Op: opEpoch, Node: 3}, ErrOutageRecord},
		{"unknown op", record{Op: 9}, ErrOutageRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b [recordSize]byte
			tc.r.encode(b[:])
			got, err := decodeRecord(b[:], h)
			if !errors.Is(err, tc.err) || (err == nil && got != tc.r) {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
	var b [recordSize]byte
	record{Op: opAdd, Arg: 1}.encode(b[:])
	b[5] ^= 1
	if _, err := decodeRecord(b[:], h); !errors.Is(err, ErrOutageRecord) {
		t.Fatalf("flipped bit: %v", err)
	}
	if !bytes.Equal(hb[:8], []byte(outageMagic)) {
		t.Fatal("magic")
	}
}

func TestSync(t *testing.T) {
	prim := newFakePrimary(testPS, 1)
	s := openTest(t, prim, filepath.Join(t.TempDir(), "backup"), true)
	writePages(t, s, 1, 1, 2)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Sync(); err == nil {
		t.Fatal("Sync after Close succeeded")
	}
}
