//go:build linux

package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// namePrefix starts the name of every namespace this package makes; the
// creating process's pid follows, so Sweep can tell stale ones.
const namePrefix = "farmem-t"

// blackholeMetric is the metric of the safety route for a pair's /30: worse
// than the connected route, better than nothing.
const blackholeMetric = 4000

var seq atomic.Uint32

// ip runs the ip command of iproute2 and returns its output, or an error
// wrapping ErrCommand with the output.
func ip(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w: ip %s: %v: %s", ErrCommand, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Create makes a namespace and a veth pair with a free /30 of
// 10.231.0.0/16, brings both ends (and the namespace's loopback) up, and
// returns it. On any failure it removes what it made. Stale pairs left by
// dead processes (kill -9 of a test binary) are swept first.
func Create() (p *Pair, err error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, ErrNoIP
	}
	_ = Sweep()
	pid := os.Getpid()
	n := seq.Add(1)
	id := strconv.FormatInt(int64(pid), 36) + "x" + strconv.FormatUint(uint64(n), 36)
	p = &Pair{
		Name:   fmt.Sprintf("%s%d-%d", namePrefix, pid, n),
		HostIf: "fmh" + id, // interface names are at most 15 bytes
		NSIf:   "fmn" + id,
	}
	if p.Prefix, err = freeSubnet(uint32(pid)*64 + n); err != nil {
		return nil, err
	}
	p.HostAddr = p.Prefix.Addr().Next()
	p.NSAddr = p.HostAddr.Next()
	if _, err := ip("netns", "add", p.Name); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
			p = nil
		}
	}()
	hostCIDR := fmt.Sprintf("%s/%d", p.HostAddr, p.Prefix.Bits())
	nsCIDR := fmt.Sprintf("%s/%d", p.NSAddr, p.Prefix.Bits())
	for _, args := range [][]string{
		{"link", "add", p.HostIf, "type", "veth", "peer", "name", p.NSIf, "netns", p.Name},
		{"route", "add", "blackhole", p.Prefix.String(), "metric", strconv.Itoa(blackholeMetric)},
		{"addr", "add", hostCIDR, "dev", p.HostIf},
		{"link", "set", p.HostIf, "up"},
		{"-n", p.Name, "addr", "add", nsCIDR, "dev", p.NSIf},
		{"-n", p.Name, "link", "set", p.NSIf, "up"},
		{"-n", p.Name, "link", "set", "lo", "up"},
	} {
		if _, err := ip(args...); err != nil {
			return p, err
		}
	}
	return p, nil
}

// freeSubnet picks a /30 of 10.231.0.0/16 that no interface of the root
// namespace uses, starting from a slot derived from hint so that parallel
// test processes rarely even look at the same one.
func freeSubnet(hint uint32) (netip.Prefix, error) {
	out, err := ip("-4", "-o", "addr", "show")
	if err != nil {
		return netip.Prefix{}, err
	}
	routes, err := ip("-4", "route", "show", "10.231.0.0/16", "root", "10.231.0.0/16")
	if err != nil {
		return netip.Prefix{}, err
	}
	used := out + routes
	const slots = 1 << 14 // /30s in a /16
	for i := range uint32(slots) {
		s := (hint + i) % slots
		base := netip.AddrFrom4([4]byte{10, 231, byte(s >> 6), byte(s&63) << 2})
		pfx := netip.PrefixFrom(base, 30)
		if !strings.Contains(used, pfx.String()) && !strings.Contains(used, base.Next().String()+"/") {
			return pfx, nil
		}
	}
	return netip.Prefix{}, ErrNoSubnet
}

// Partition cuts the link: the namespace's end of the veth goes down. The
// root end loses its carrier and drops what it is given; the namespace has
// no route out. TCP connections across the pair stay open and nothing
// crosses, as in a real partition (writes are buffered, reads wait).
//
// Why link-down and not tc netem or iptables: this kernel has no sch_netem
// and the image has no iptables, and link state needs nothing but iproute2.
func (p *Pair) Partition() error {
	if p.closed {
		return ErrClosed
	}
	_, err := ip("-n", p.Name, "link", "set", p.NSIf, "down")
	return err
}

// Heal brings the namespace's end back up; its address and connected route
// come back with it, and TCP retransmission resumes open connections.
func (p *Pair) Heal() error {
	if p.closed {
		return ErrClosed
	}
	_, err := ip("-n", p.Name, "link", "set", p.NSIf, "up")
	return err
}

// Command returns a command that runs name inside the namespace (through
// `ip netns exec`).
func (p *Pair) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.Name, name}, args...)...)
}

// Close kills every process still in the namespace, deletes the veth pair
// (deleting one end deletes the other), the safety route and the
// namespace. It is safe to call on a partly made pair; it returns the
// errors of the steps that failed for something that existed, and
// ErrClosed when called again.
func (p *Pair) Close() error {
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	var errs []error
	if out, err := ip("netns", "pids", p.Name); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if p.Prefix.IsValid() {
		if out, err := ip("route", "show", "table", "main", "type", "blackhole", p.Prefix.String()); err == nil && out != "" {
			if _, err := ip("route", "del", "blackhole", p.Prefix.String(), "metric", strconv.Itoa(blackholeMetric)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if p.HostIf != "" && linkExists(p.HostIf) {
		if _, err := ip("link", "del", p.HostIf); err != nil {
			errs = append(errs, err)
		}
	}
	if nsExists(p.Name) {
		if _, err := ip("netns", "del", p.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// Sweep removes the namespaces (and with them their veth pairs and the
// root-side safety routes) that this package made in processes that are no
// longer running, such as a test binary killed by a timeout.
func Sweep() error {
	out, err := ip("netns", "list")
	if err != nil {
		return err
	}
	var errs []error
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], namePrefix) {
			continue
		}
		pidStr, nStr, ok := strings.Cut(strings.TrimPrefix(f[0], namePrefix), "-")
		pid, err1 := strconv.Atoi(pidStr)
		n, err2 := strconv.ParseUint(nStr, 10, 32)
		if !ok || err1 != nil || err2 != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) || pid == os.Getpid() {
			continue // alive
		}
		id := strconv.FormatInt(int64(pid), 36) + "x" + strconv.FormatUint(n, 36)
		stale := &Pair{Name: f[0], HostIf: "fmh" + id, NSIf: "fmn" + id}
		// The /30 is not in the name; find it from the host end's address,
		// or from a blackhole route left without it.
		if a, err := ip("-4", "-o", "addr", "show", "dev", stale.HostIf); err == nil {
			for _, w := range strings.Fields(a) {
				if pfx, err := netip.ParsePrefix(w); err == nil {
					stale.Prefix = pfx.Masked()
				}
			}
		}
		if err := stale.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
