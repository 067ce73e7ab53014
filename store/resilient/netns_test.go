package resilient_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/farmem/farmem/internal/netns"
	"github.com/farmem/farmem/memnode"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
	"github.com/farmem/farmem/store/remote"
	"github.com/farmem/farmem/store/resilient"
	"github.com/farmem/farmem/store/storetest"
)

// netnsEnv, when set, turns the test binary into a memnode listening on the
// address it holds (inside a network namespace); it prints READY once
// listening and exits when its stdin closes.
const netnsEnv = "FARMEM_RESILIENT_NETNS_MEMNODE"

func maybeServeInNamespace() {
	addr := os.Getenv(netnsEnv)
	if addr == "" {
		return
	}
	srv, err := memnode.New(memnode.Config{Capacity: 16 << 20, PageSize: 4096})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	fmt.Println("READY")
	go srv.Serve(ln)
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// TestNamespacePartition puts a memnode in its own network namespace,
// joined by a veth pair, and partitions it for real (the namespace's end of
// the link down: connections stay open, nothing answers). Reads fail over
// to the backup, the node is marked down, writes go to the outage set; when
// the link comes back the node is resynced and holds every page, current.
// It skips, saying why, where namespaces cannot be made (not root, no
// iproute2).
func TestNamespacePartition(t *testing.T) {
	p := netns.New(t)
	addr := net.JoinHostPort(p.NSAddr.String(), "7788")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.StartReady(t, ctx, "^$", netnsEnv+"="+addr)

	const pageSize, pages = 4096, 64
	prim, err := remote.New(ctx, remote.Config{Nodes: []string{addr}, Namespace: "netns", PageSize: pageSize,
		DialTimeout: 300 * time.Millisecond, IOTimeout: time.Second, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := resilient.Open(ctx, resilient.Config{
		Primary: prim, Pages: pages, OwnPrimary: true,
		Health: health.Config{Fixed: 20 * time.Millisecond, ProbeInterval: 20 * time.Millisecond, SuspectTimeout: 100 * time.Millisecond},
		Tick:   5 * time.Millisecond,
	}, resilient.BackupFile{Path: filepath.Join(t.TempDir(), "backup"), Create: true, RegionID: [16]byte{'n', 's'}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()

	write := func(v uint64) {
		t.Helper()
		c := &store.Call{Op: store.OpWrite}
		for id := range pages {
			d := make([]byte, pageSize)
			storetest.Fill(d, uint64(id), v)
			c.Pages = append(c.Pages, store.Page{ID: store.PageID(id), Data: d, Sum: store.Checksum(d)})
		}
		if err := store.Do(ctx, rs, c); err != nil {
			t.Fatalf("write v%d: %v", v, err)
		}
	}
	check := func(s store.Store, v uint64) {
		t.Helper()
		for id := range pages {
			c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: store.PageID(id), Data: make([]byte, pageSize)}}}
			if err := store.Do(ctx, s, c); err != nil {
				t.Fatalf("read page %d: %v", id, err)
			}
			if err := storetest.Check(c.Pages[0].Data, uint64(id), v); err != nil {
				t.Fatalf("page %d: %v", id, err)
			}
		}
	}
	write(1)
	check(rs, 1)
	// (A read may miss its deadline before the partition too: the first
	// one dials a connection, and CI machines are slow under -race.)
	waitState(t, rs, "healthy")
	before := rs.Counters()

	if err := p.Partition(); err != nil {
		t.Fatal(err)
	}
	check(rs, 1) // served by the backup after a deadline, then at once
	if c := rs.Counters(); c.Failovers == before.Failovers || c.Timeouts == before.Timeouts {
		t.Fatalf("no failover during the partition: %+v", c)
	}
	waitState(t, rs, "down")
	write(2)
	if c := rs.Counters(); c.OutagePages != pages {
		t.Fatalf("outage set holds %d pages during the partition, want %d", c.OutagePages, pages)
	}
	check(rs, 2)

	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	waitState(t, rs, "healthy")
	if c := rs.Counters(); c.OutagePages != 0 || c.ResyncedPages < pages {
		t.Fatalf("after healing: %+v", c)
	}
	check(prim, 2) // the memnode itself holds the pages written during the partition
	check(rs, 2)
}

func waitState(t *testing.T, rs *resilient.Store, state string) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		c := rs.Counters()
		if c.Nodes[0].State == state && (state != "healthy" || c.OutagePages == 0) {
			return
		}
	}
	t.Fatalf("node never %s: %+v", state, rs.Counters())
}
