package nodeproc

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
)

func TestMain(m *testing.M) {
	MaybeRun()
	os.Exit(m.Run())
}

func dialOK(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func TestKillRestartKeepsAddress(t *testing.T) {
	p, err := Start(Config{Capacity: 1 << 20, PageSize: 4096, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	addr := p.Addr()
	if err := dialOK(addr); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if p.Addr() != addr {
		t.Fatal("address changed across a restart")
	}
	if err := dialOK(addr); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(); err == nil {
		t.Fatal("restart of a running child succeeded")
	}
}

// handshake does what a client does: the protocol handshake, one write and
// one read, and returns the node's boot epoch.
func handshake(t *testing.T, addr string, write bool) (epoch uint64, readErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := remote.New(ctx, remote.Config{Nodes: []string{addr}, Namespace: "nodeproc-test"})
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer s.Close()
	page := make([]byte, 4096)
	copy(page, "hello")
	if write {
		c := store.Call{Op: store.OpWrite, Pages: []store.Page{{ID: 7, Data: page, Sum: store.Checksum(page)}}}
		if err := s.Do(ctx, &c); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 4096)
	c := store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 7, Data: got}}}
	readErr = s.Do(ctx, &c)
	if readErr == nil && string(got[:5]) != "hello" {
		t.Fatalf("read back %q", got[:5])
	}
	return s.Epochs()[0], readErr
}

// TestRestartServesTheProtocol checks more than an open port: the parent
// holds the listening socket across a kill, so a dial succeeds even with no
// child; the protocol must work after a restart, and the restarted node must
// be empty with a new boot epoch.
func TestRestartServesTheProtocol(t *testing.T) {
	p, err := Start(Config{Capacity: 1 << 20, PageSize: 4096, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	e1, err := handshake(t, p.Addr(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	e2, err := handshake(t, p.Addr(), false)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read after restart: %v, want store.ErrNotFound (a restarted memnode is empty)", err)
	}
	if e1 == e2 {
		t.Fatalf("boot epoch %d did not change across a restart", e1)
	}
}

func TestBadConfigFailsToStart(t *testing.T) {
	if _, err := Start(Config{Capacity: 10, PageSize: 4096}); err == nil {
		t.Fatal("a child with a capacity below one page started")
	}
}
