package netns

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// Pair is a network namespace joined to the caller's (root) namespace by a
// veth pair, addressed from a private /30 that exists only on these two
// interfaces:
//
//	 root namespace                     namespace Name
//	+----------------------+  veth    +----------------------+
//	| HostIf  HostAddr/30  |----------| NSIf  NSAddr/30       |
//	+----------------------+          | lo up                 |
//	                                  +----------------------+
//
// Traffic between HostAddr and NSAddr never leaves the machine: besides the
// connected route of the /30, the root namespace gets a blackhole route for
// it with a high metric, so that while the link is down packets are dropped
// rather than sent towards the default route.
type Pair struct {
	// Name is the namespace's name (as in `ip netns list`).
	Name string
	// HostIf and NSIf are the veth ends in the root namespace and in Name.
	HostIf, NSIf string
	// HostAddr and NSAddr are the two usable addresses of the /30.
	HostAddr, NSAddr netip.Addr
	// Prefix is the /30.
	Prefix netip.Prefix

	closed bool
}

// New creates a pair for a test and removes it when the test ends, also when
// it fails or panics (t.Cleanup). It skips the test, with the reason, when
// namespaces cannot be made here (not root, no iproute2, `ip netns add`
// refused, not Linux).
func New(t testing.TB) *Pair {
	t.Helper()
	p, err := Create()
	if err != nil {
		t.Skipf("netns: cannot create a network namespace here, skipping: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("netns cleanup: %v", err)
		}
	})
	return p
}

// StartReady runs the test binary inside the namespace as a helper process:
// it re-executes os.Args[0] with -test.run=run (^$ when the helper lives in
// TestMain or an init function) and env added, waits until the helper
// prints a line "READY" on stdout, and fails the test otherwise. The helper should
// serve until its stdin closes; the test's cleanup closes it and waits.
func (p *Pair) StartReady(t testing.TB, ctx context.Context, run string, env ...string) {
	t.Helper()
	helper := p.Command(ctx, os.Args[0], "-test.run="+run)
	helper.Env = append(os.Environ(), env...)
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = helper.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "READY" {
		t.Fatalf("netns: helper in %s did not start: %q, %v", p.Name, line, err)
	}
}
