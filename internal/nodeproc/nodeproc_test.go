package nodeproc

import (
	"net"
	"os"
	"testing"
	"time"
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

func TestBadConfigFailsToStart(t *testing.T) {
	if _, err := Start(Config{Capacity: 10, PageSize: 4096}); err == nil {
		t.Fatal("a child with a capacity below one page started")
	}
}
