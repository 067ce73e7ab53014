//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// HelperEnv is the environment variable that makes MaybeRunHelper turn a
// re-executed binary into a helper process.
const HelperEnv = "FARMEM_UFFD_HELPER"

const helperBareFault = "bare-fault"

// bareFill is the byte the bare-fault helper serves in every page.
const bareFill = 0xA5

// Descriptors the bare-fault helper receives (exec.Cmd.ExtraFiles start at 3).
const (
	helperFDUffd  = 3 // the caller's userfaultfd
	helperFDStop  = 4 // read end of a pipe; EOF means stop
	helperFDReady = 5 // write end of a pipe; one byte means serving
)

// MaybeRunHelper runs a helper process and exits if this process was started
// as one (HelperEnv is set); otherwise it returns at once. A binary that
// calls MeasureBareFault, MeasureDirtyTracking or MeasureEviction must call it first thing in
// main (and a test binary in TestMain), because the helper is the same
// binary re-executed: a userfaultfd handler must live in another process
// than the faulting Go code.
func MaybeRunHelper() {
	var run func() error
	switch v := os.Getenv(HelperEnv); v {
	case "":
		return
	case helperBareFault:
		run = runBareHandler
	case helperWPFault:
		run = runWPHandler
	case helperEvictApp:
		run = runEvictApp
	default:
		fmt.Fprintf(os.Stderr, "uffd helper: unknown %s=%q\n", HelperEnv, v)
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "uffd helper: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runBareHandler is the minimal handler: one goroutine that blocks in Read
// and answers every missing fault with one UFFDIO_COPY of a local page.
func runBareHandler() error {
	f, err := FromFD(helperFDUffd, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	stop := os.NewFile(helperFDStop, "stop")
	go func() {
		_, _ = io.Copy(io.Discard, stop)
		_ = f.Shutdown()
	}()
	page := bytes.Repeat([]byte{bareFill}, f.PageSize())
	mask := ^uintptr(f.PageSize() - 1)
	ready := os.NewFile(helperFDReady, "ready")
	if _, err := ready.Write([]byte{1}); err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	ready.Close()
	var buf [64]Msg
	for {
		n, err := f.Read(buf[:])
		if errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		for i := range buf[:n] {
			if buf[i].Event != EventPagefault {
				continue
			}
			if _, err := f.Copy(buf[i].Address()&mask, page, 0); err != nil {
				return err
			}
		}
	}
}

// MeasureBareFault measures the bare cost of a userfaultfd fault: a minimal
// handler in a separate process (this binary re-executed; see
// MaybeRunHelper) serves local data with UFFDIO_COPY, while the caller
// touches n fresh pages of a memfd mapping and times each first touch. It
// returns the median and the 99th percentile. It takes the region-shaped
// path of the pager (memfd, shared mapping, missing mode on shmem) so that
// the figure is comparable with the pager's fault latency.
func MeasureBareFault(n int) (p50, p99 time.Duration, err error) {
	d, err := BareFaultSamples(n)
	if err != nil {
		return 0, 0, err
	}
	p50, p99 = percentiles(d)
	return p50, p99, nil
}

// percentiles sorts d and returns its median and 99th percentile.
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(d)
	return d[len(d)/2], d[min(len(d)-1, len(d)*99/100)]
}

// BareFaultSamples is MeasureBareFault returning every sample, in touch
// order.
func BareFaultSamples(n int) ([]time.Duration, error) {
	if n <= 0 {
		return nil, fmt.Errorf("uffd: MeasureBareFault: n=%d, need at least one page", n)
	}
	ps := os.Getpagesize()
	size := n * ps
	memfd, err := MemfdCreate("farmem-bare-fault", int64(size))
	if err != nil {
		return nil, err
	}
	defer unix.Close(memfd)
	mem, err := MapShared(memfd, size)
	if err != nil {
		return nil, err
	}
	defer Unmap(mem)
	f, err := Open(Options{Need: FeatureMissingShmem})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Register(Addr(mem), size, ModeMissing); err != nil {
		return nil, err
	}
	// Unregister before the deferred close and unmap, so that nothing can
	// block on the range afterwards.
	defer f.Unregister(Addr(mem), size)

	h, err := startHelper(helperBareFault, f)
	if err != nil {
		return nil, fmt.Errorf("uffd: MeasureBareFault: %w", err)
	}

	// If the helper dies mid-run, our touches would block on the range for
	// good: a watchdog unregisters it, which wakes them (they then read
	// zeros, which the check below reports).
	h.watch(func() { _ = f.Unregister(Addr(mem), size) })

	samples := make([]time.Duration, n)
	bad := 0
	for i := range n {
		t := time.Now()
		v := mem[i*ps]
		samples[i] = time.Since(t)
		if v != bareFill {
			bad++
		}
	}
	_, helperErr := h.stop()
	if helperErr != nil || bad != 0 {
		return nil, fmt.Errorf("%w: %v; %d of %d pages not served", ErrHelper, helperErr, bad, n)
	}
	return samples, nil
}

// helper is a running helper process: this binary re-executed with
// HelperEnv set, handling the faults of f's range.
type helper struct {
	cmd          *exec.Cmd
	stopW        *os.File
	exited       chan error
	stdout       bytes.Buffer
	stderr       bytes.Buffer
	watchdogDone chan struct{}
	done         chan struct{}
	early        bool  // the helper exited before stop
	err          error // its exit status then
}

// startHelper starts the helper kind with a duplicate of f's descriptor and
// waits until it serves.
func startHelper(kind string, f *FD) (*helper, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dup, err := unix.Dup(f.Fd())
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	uf := os.NewFile(uintptr(dup), "uffd")
	defer uf.Close()
	stopR, stopW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer stopR.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		stopW.Close()
		return nil, err
	}
	defer readyR.Close()
	h := &helper{stopW: stopW, exited: make(chan error, 1)}
	h.cmd = exec.Command(exe)
	h.cmd.Env = append(os.Environ(), HelperEnv+"="+kind)
	h.cmd.ExtraFiles = []*os.File{uf, stopR, readyW}
	h.cmd.Stdout = &h.stdout
	h.cmd.Stderr = &h.stderr
	err = h.cmd.Start()
	readyW.Close()
	if err != nil {
		stopW.Close()
		return nil, fmt.Errorf("%w: start %s: %w", ErrHelper, exe, err)
	}
	go func() { h.exited <- h.cmd.Wait() }()
	var one [1]byte
	if _, err := io.ReadFull(readyR, one[:]); err != nil {
		stopW.Close()
		werr := <-h.exited
		return nil, fmt.Errorf("%w: %v before serving (does main call uffd.MaybeRunHelper first?): %s",
			ErrHelper, werr, bytes.TrimSpace(h.stderr.Bytes()))
	}
	return h, nil
}

// watch runs onExit if the helper exits before stop is called. If the
// helper dies mid-run, the caller's accesses would block on the range for
// good: onExit unregisters it, which wakes them.
func (h *helper) watch(onExit func()) {
	h.done = make(chan struct{})
	h.watchdogDone = make(chan struct{})
	go func() {
		defer close(h.watchdogDone)
		select {
		case h.err = <-h.exited:
			h.early = true
			onExit()
		case <-h.done:
		}
	}()
}

// stop tells the helper to finish, waits for it and returns what it printed
// on stdout, and an error if it failed or had exited early.
func (h *helper) stop() (string, error) {
	if h.done != nil {
		close(h.done)
		<-h.watchdogDone
	}
	h.stopW.Close()
	var err error
	if h.early {
		err = fmt.Errorf("exited early (%v)", h.err)
	} else {
		err = <-h.exited
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w: %s", ErrHelper, err, bytes.TrimSpace(h.stderr.Bytes()))
	}
	return h.stdout.String(), nil
}
