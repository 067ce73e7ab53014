package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if any namespace made by this process is left
// behind, whatever the tests reported.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv(helperEnv) == "" && os.Getenv("FARMEM_NETNS_PANIC") == "" {
		if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
			mine := fmt.Sprintf("%s%d-", namePrefix, os.Getpid())
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, mine) {
					fmt.Fprintf(os.Stderr, "netns: namespace left behind: %s\n", line)
					code = 1
				}
			}
		}
	}
	os.Exit(code)
}

// helperEnv, when set, turns the test binary into the echo server that runs
// inside the namespace; its value is the address to listen on.
const helperEnv = "FARMEM_NETNS_ECHO_ADDR"

// TestHelperEcho is not a test: re-executed inside a namespace with
// helperEnv set, it serves TCP echo on that address, prints READY once
// listening, and exits when its stdin closes.
func TestHelperEcho(t *testing.T) {
	addr := os.Getenv(helperEnv)
	if addr == "" {
		t.Skip("helper process for TestPartitionHeal")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	fmt.Println("READY")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func echo(c net.Conn, msg string, wait time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(wait))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// TestPartitionHeal runs an echo server in its own namespace, talks to it
// from the root namespace, partitions the link (the connection stays open
// and nothing answers), heals it, and checks that the same connection and a
// new one work again. Everything is removed afterwards.
func TestPartitionHeal(t *testing.T) {
	p := New(t)
	addr := net.JoinHostPort(p.NSAddr.String(), "7777")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.StartReady(t, ctx, "^TestHelperEcho$", helperEnv+"="+addr)

	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echo(c, "before", 10*time.Second); err != nil {
		t.Fatalf("before the partition: %v", err)
	}

	if err := p.Partition(); err != nil {
		t.Fatal(err)
	}
	// The connection is open (the write is buffered) but nothing answers.
	err = echo(c, "during", 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("during the partition: %v, want a timeout", err)
	}
	if c2, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c2.Close()
		t.Fatal("a new connection got through the partition")
	}

	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	// TCP retransmits the held bytes; the echo of "during" arrives first.
	// The generous deadline covers retransmission backoff, it is no timing
	// assertion.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len("during"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "during" {
		t.Fatalf("after healing: %q, %v", got, err)
	}
	if err := echo(c, "after", 30*time.Second); err != nil {
		t.Fatalf("same connection after healing: %v", err)
	}
	c3, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		t.Fatalf("new connection after healing: %v", err)
	}
	defer c3.Close()
	if err := echo(c3, "new", 30*time.Second); err != nil {
		t.Fatalf("new connection after healing: %v", err)
	}
}

// TestCloseLeavesNothing checks that Close removes the namespace, both veth
// ends and the safety route, and kills what ran inside.
func TestCloseLeavesNothing(t *testing.T) {
	p, err := Create()
	if err != nil {
		t.Skipf("netns: cannot create a network namespace here, skipping: %v", err)
	}
	sleeper := p.Command(context.Background(), "sleep", "600")
	if err := sleeper.Start(); err != nil {
		_ = p.Close()
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	// `ip netns exec` enters the namespace some time after Start returns;
	// a Close before that cannot see the process (a loaded machine made
	// this test fail that way). Wait until the namespace lists it.
	inside := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if out, err := exec.Command("ip", "netns", "pids", p.Name).Output(); err == nil && strings.TrimSpace(string(out)) != "" {
			inside = true
			break
		}
	}
	if !inside {
		_ = sleeper.Process.Kill()
		_ = p.Close()
		t.Fatal("the process never showed up in the namespace")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		_ = sleeper.Process.Kill()
		t.Fatal("process in the namespace survived Close")
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
	assertGone(t, p)
}

func assertGone(t *testing.T, p *Pair) {
	t.Helper()
	if nsExists(p.Name) {
		t.Errorf("namespace %s left behind", p.Name)
	}
	for _, l := range []string{p.HostIf, p.NSIf} {
		if linkExists(l) {
			t.Errorf("link %s left behind", l)
		}
	}
	out, _ := exec.Command("ip", "route", "show", "type", "blackhole").CombinedOutput()
	if strings.Contains(string(out), p.Prefix.String()) {
		t.Errorf("route for %s left behind: %s", p.Prefix, out)
	}
}

// TestSweepRemovesStale makes a pair named after a pid that no longer runs,
// as a killed test binary would leave it, and checks that Sweep removes it.
func TestSweepRemovesStale(t *testing.T) {
	p := New(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	id := fmt.Sprintf("%s%d-%d", namePrefix, pid, 1)
	if _, err := ip("netns", "add", id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if nsExists(id) {
			_, _ = ip("netns", "del", id)
		}
	})
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if nsExists(id) {
		t.Fatalf("stale namespace %s survived Sweep", id)
	}
	if !nsExists(p.Name) {
		t.Fatalf("Sweep removed the live namespace %s", p.Name)
	}
}

// TestCleanupOnPanic runs a subprocess test that creates a pair and panics,
// and checks that the pair is gone afterwards.
func TestCleanupOnPanic(t *testing.T) {
	if os.Getenv("FARMEM_NETNS_PANIC") == "1" {
		p := New(t)
		fmt.Println("PAIR", p.Name, p.HostIf, p.NSIf, p.Prefix)
		panic("deliberate panic inside a test holding a pair")
	}
	New(t) // skips where namespaces cannot be made
	cmd := exec.Command(os.Args[0], "-test.run=^TestCleanupOnPanic$", "-test.v")
	cmd.Env = append(os.Environ(), "FARMEM_NETNS_PANIC=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("panicking subprocess passed:\n%s", out)
	}
	var name, host, nsif, prefix string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "PAIR ") {
			fmt.Sscan(strings.TrimPrefix(line, "PAIR "), &name, &host, &nsif, &prefix)
		}
	}
	if name == "" {
		t.Fatalf("subprocess made no pair:\n%s", out)
	}
	if nsExists(name) || linkExists(host) {
		t.Fatalf("pair %s left behind after a panic:\n%s", name, out)
	}
	out2, _ := exec.Command("ip", "route", "show", "type", "blackhole").CombinedOutput()
	if strings.Contains(string(out2), prefix) {
		t.Fatalf("route %s left behind after a panic", prefix)
	}
}
