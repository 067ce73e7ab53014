//go:build linux

package pager_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmem/farmem/pager"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
)

// TestPagerDeathMetaLost is TestPagerDeathMemnodeLost without --backup: the
// pager child is SIGKILLed, and the memnode killed and restarted empty while
// no pager runs, so the far tier has lost every evicted page.
//
// With a metadata pool (subtest "meta") the restarted pager knows which
// absent pages it had written to the far tier: a read of such a page is
// reported as ErrLostPage and blocks (never zeros), pages that were
// resident in the memfd all read back, and pages never written read as
// zero. Once the test puts the lost pages back on the memnode, the blocked
// read completes with the right data. At detach the region's record goes.
//
// Without it (subtest "no-meta") the restarted pager cannot tell a lost
// page from one never written and serves zeros: the old behaviour, checked
// so that the test is known to see the difference.
func TestPagerDeathMetaLost(t *testing.T) {
	t.Run("meta", func(t *testing.T) { pagerDeathMetaLost(t, true) })
	t.Run("no-meta", func(t *testing.T) { pagerDeathMetaLost(t, false) })
}

func pagerDeathMetaLost(t *testing.T, withMeta bool) {
	// The last pages are never written: they must read as zero.
	const pages, written, localPages = 1024, 960, 128
	node, sock, prefix, env := deathRig(t, localPages)
	metaPath := filepath.Join(t.TempDir(), "meta")
	if withMeta {
		env = append(env, envMeta+"="+metaPath)
	}
	first, ctx, m := mapOnPager(t, sock, env, pages, 2*hangGuard)
	ps := os.Getpagesize()
	mem := m.Bytes()
	fillVersions(mem, written, ps, 1)

	killPager(ctx, t, first, m)
	// mincore on the shared mapping reports the memfd's page cache.
	vec := residency(t, mem, pages)
	var resident, lost []int
	for pg := range written {
		if vec[pg]&1 != 0 {
			resident = append(resident, pg)
		} else {
			lost = append(lost, pg)
		}
	}
	if len(lost) == 0 {
		t.Fatalf("all %d written pages resident with a budget of %d", written, localPages)
	}
	for pg := written; pg < pages; pg++ {
		if vec[pg]&1 != 0 {
			t.Fatalf("page %d was never touched but is resident", pg)
		}
	}
	probe := lost[len(lost)/2]
	t.Logf("%d of %d written pages resident at the kill; probing lost page %d", len(resident), written, probe)
	got := make(chan uint64, 1)
	go func() { got <- binary.LittleEndian.Uint64(mem[probe*ps:]) }()

	if err := node.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := node.Restart(); err != nil {
		t.Fatal(err)
	}
	second := startChild(t, "pager", env...)
	readLine(t, second, "ready")
	for m.Err() != nil {
		if ctx.Err() != nil {
			t.Fatalf("the mapping was not re-attached: %v\n%s", m.Err(), second.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	if !withMeta {
		select {
		case v := <-got:
			if v != 0 {
				t.Fatalf("without --meta a lost page read %#x; the old behaviour serves zeros", v)
			}
			t.Logf("without --meta the lost page %d read as zero (the case --meta closes)", probe)
		case <-ctx.Done():
			t.Fatalf("without --meta the read of a lost page never completed\n%s", second.stderr.String())
		}
		return
	}

	// The restarted pager reports the lost page by name, and does not serve
	// it (zeros would complete the read).
	for !strings.Contains(second.stderr.String(), pager.ErrLostPage.Error()) {
		select {
		case v := <-got:
			t.Fatalf("the read of lost page %d returned %#x while the far tier lacks it\n%s", probe, v, second.stderr.String())
		case <-ctx.Done():
			t.Fatalf("the pager did not report the lost page %d:\n%s", probe, second.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case v := <-got:
		t.Fatalf("the read of lost page %d returned %#x while the far tier lacks it\n%s", probe, v, second.stderr.String())
	default:
	}
	// Every page that was resident in the memfd is recovered, and pages
	// never written are zero.
	for _, pg := range resident {
		if err := checkLoads(mem[pg*ps:(pg+1)*ps], uint64(pg), 1, -1); err != nil {
			t.Fatalf("resident page after the restart: %v", err)
		}
	}
	for pg := written; pg < pages; pg++ {
		for i := 0; i < ps; i += 8 {
			if v := binary.LittleEndian.Uint64(mem[pg*ps+i:]); v != 0 {
				t.Fatalf("never-written page %d reads %#x at byte %d", pg, v, i)
			}
		}
	}
	// Put the lost pages back where the pager looks: the blocked read and
	// every other lost page then read back their data.
	st, err := remote.New(ctx, remote.Config{Nodes: []string{node.Addr()}, PageSize: ps,
		Namespace: fmt.Sprintf("%s-%016x", prefix, m.ID())})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64*ps)
	for i := 0; i < len(lost); i += 64 {
		call := store.Call{Op: store.OpWrite, Done: make(chan *store.Call, 1)}
		for k, pg := range lost[i:min(i+64, len(lost))] {
			d := data[k*ps : (k+1)*ps]
			copyVersion(d, uint64(pg), 1)
			call.Pages = append(call.Pages, store.Page{ID: store.PageID(pg), Data: d, Sum: store.Checksum(d)})
		}
		if err := store.Do(ctx, st, &call); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	select {
	case v := <-got:
		if want := word(uint64(probe), 1, 0); v != want {
			t.Fatalf("the blocked read of lost page %d returned %#x, want %#x", probe, v, want)
		}
	case <-ctx.Done():
		t.Fatalf("the blocked read of lost page %d never completed after the page came back\n%s", probe, second.stderr.String())
	}
	for pg := range written {
		if err := checkLoads(mem[pg*ps:(pg+1)*ps], uint64(pg), 1, -1); err != nil {
			t.Fatalf("after the lost pages came back: %v", err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The application detached: the pager removes the region's record.
	waitStderr(t, ctx, second, "detached (application gone)")
	if err := second.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-second.done
	second.done <- nil
	meta, err := pager.OpenMeta(metaPath, pager.MetaOptions{Namespace: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	if rs := meta.Regions(); len(rs) != 0 {
		t.Fatalf("records left after the detach: %+v", rs)
	}
}

// waitStderr waits until c's standard error contains s.
func waitStderr(t *testing.T, ctx context.Context, c *child, s string) {
	t.Helper()
	for !strings.Contains(c.stderr.String(), s) {
		if ctx.Err() != nil {
			t.Fatalf("no %q from the pager:\n%s", s, c.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetaRoundTrip: a mixed run under an in-process pager with a metadata
// pool: evictions set bits in at most one transaction per batch, the run
// checks every byte, and the region's record is gone once the application
// has detached.
func TestMetaRoundTrip(t *testing.T) {
	meta, err := pager.OpenMeta(filepath.Join(t.TempDir(), "meta"), pager.MetaOptions{Namespace: "t", Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	tp := startPager(t, pager.Config{Local: 64 * 4096 * 2, Prefetch: 3, SampleInterval: 5 * time.Millisecond, SamplePages: 16,
		Recoverable: true, Meta: meta})
	final := runApp(t, tp.Socket, appRun{pages: 1024, workers: 3, duration: time.Second, mode: "mixed"})
	waitRegions(t, tp.P, 0)
	s := tp.P.Stats()
	t.Logf("%s; %d eviction batches, %d write-back calls, %d bit transactions (%.1f µs each)",
		final, s.EvictBatches, s.WriteBackCalls, s.MetaTxs, float64(s.MetaNS)/float64(max(s.MetaTxs, 1))/1e3)
	if s.MetaTxs == 0 || s.MetaTxs > s.EvictBatches || s.MetaTxs > s.WriteBackCalls {
		t.Fatalf("%d bit transactions for %d eviction batches and %d write-back calls: want at least one, at most one per batch",
			s.MetaTxs, s.EvictBatches, s.WriteBackCalls)
	}
	if rs := meta.Regions(); len(rs) != 0 {
		t.Fatalf("records left after the application detached: %+v", rs)
	}
}
