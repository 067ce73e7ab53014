//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The eviction measurement needs the application's side in another
// process: the victims are mapped (and registered, and written) there, so
// that the write protection, the punch and the scan act on a foreign page
// table as the pager's do. That process is this binary re-executed with
// HelperEnv=evict-app, dispatched by MaybeRunHelper like the fault
// helpers: a binary that calls MeasureEviction needs nothing more than one
// that calls MeasureDirtyTracking.

const (
	helperEvictApp   = "evict-app"
	envEvictPages    = "FARMEM_UFFD_EVICT_PAGES"
	envEvictFeatures = "FARMEM_UFFD_EVICT_FEATURES"
)

// Descriptors of the eviction application.
const (
	evictFDSock  = 3 // SOCK_SEQPACKET to the measuring process
	evictFDMemfd = 4
)

// evictCmdWrite asks the application to fill pages with a byte value:
// message [op, val, 0, 0, count uint32, count × page uint32]; reply [op].
const evictCmdWrite = 'w'

// evictGuard bounds every wait for the application, so that a broken path
// fails instead of hanging. It is not a timing assertion.
const evictGuard = 20 * time.Second

// runEvictApp is the application: it maps the memfd it was given,
// registers the mapping (missing and write-protect) on a userfaultfd it
// creates with the features asked for, sends the userfaultfd and the
// mapping's address, then fills pages on request with plain stores.
func runEvictApp() error {
	pages, err := strconv.Atoi(os.Getenv(envEvictPages))
	if err != nil || pages <= 0 {
		return fmt.Errorf("%s=%q", envEvictPages, os.Getenv(envEvictPages))
	}
	feat, err := strconv.ParseUint(os.Getenv(envEvictFeatures), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", envEvictFeatures, err)
	}
	ps := os.Getpagesize()
	mem, err := MapShared(evictFDMemfd, pages*ps)
	if err != nil {
		return err
	}
	f, err := Open(Options{Need: Features(feat)})
	if err != nil {
		return err
	}
	if _, err := f.Register(Addr(mem), len(mem), ModeMissing|ModeWP); err != nil {
		return err
	}
	var hello [16]byte
	binary.LittleEndian.PutUint64(hello[0:], uint64(Addr(mem)))
	binary.LittleEndian.PutUint64(hello[8:], uint64(f.Features()))
	if err := unix.Sendmsg(evictFDSock, hello[:], unix.UnixRights(f.Fd()), nil, 0); err != nil {
		return err
	}
	msg := make([]byte, 8+4*pages)
	for {
		n, err := unix.Read(evictFDSock, msg)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if n < 8 || msg[0] != evictCmdWrite {
			return fmt.Errorf("bad command %q (%d bytes)", msg[0], n)
		}
		count := int(binary.LittleEndian.Uint32(msg[4:]))
		if n != 8+4*count {
			return fmt.Errorf("command of %d bytes for %d pages", n, count)
		}
		v := 0x0101010101010101 * uint64(msg[1])
		for k := range count {
			pg := int(binary.LittleEndian.Uint32(msg[8+4*k:]))
			if pg < 0 || pg >= pages {
				return fmt.Errorf("page %d out of %d", pg, pages)
			}
			w := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[pg*ps])), ps/8)
			for i := range w {
				w[i] = v
			}
		}
		if _, err := unix.Write(evictFDSock, msg[:1]); err != nil {
			return err
		}
	}
}

// evictApp is the measuring side's view of a running application.
type evictApp struct {
	cmd    *exec.Cmd
	pid    int
	sock   int
	memfd  int
	view   []byte // the pager's own mapping of the memfd (never registered)
	base   uintptr
	ps     int
	pages  int
	f      *FD
	exited chan error
	stderr bytes.Buffer
	msg    []byte

	// The synchronous write-protect handler, when there is one.
	handlerDone chan struct{}
	handlerErr  error // valid once handlerDone is closed
	wpFaults    atomic.Int64
}

// startEvictApp starts an application of pages pages registered on a
// userfaultfd with the features need. With handleWP, a goroutine of this
// process resolves its write-protect faults one page at a time, as the
// pager does.
func startEvictApp(pages int, need Features, handleWP bool) (a *evictApp, err error) {
	a = &evictApp{sock: -1, memfd: -1, ps: os.Getpagesize(), pages: pages, exited: make(chan error, 1),
		msg: make([]byte, 8+4*pages)}
	defer func() {
		if err != nil {
			a.close()
			a = nil
		}
	}()
	if a.memfd, err = MemfdCreate("farmem-eviction", int64(pages*a.ps)); err != nil {
		return a, err
	}
	if a.view, err = MapShared(a.memfd, pages*a.ps); err != nil {
		return a, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return a, err
	}
	a.sock = pair[0]
	exe, err := os.Executable()
	if err != nil {
		unix.Close(pair[1])
		return a, err
	}
	memfdDup, err := unix.Dup(a.memfd)
	if err != nil {
		unix.Close(pair[1])
		return a, err
	}
	child, childMem := os.NewFile(uintptr(pair[1]), "sock"), os.NewFile(uintptr(memfdDup), "memfd")
	a.cmd = exec.Command(exe)
	a.cmd.Env = append(os.Environ(), HelperEnv+"="+helperEvictApp,
		envEvictPages+"="+strconv.Itoa(pages), envEvictFeatures+"="+strconv.FormatUint(uint64(need), 10))
	a.cmd.ExtraFiles = []*os.File{child, childMem}
	a.cmd.Stderr = &a.stderr
	err = a.cmd.Start()
	child.Close()
	childMem.Close()
	if err != nil {
		a.cmd = nil
		return a, fmt.Errorf("%w: start %s: %w", ErrHelper, exe, err)
	}
	a.pid = a.cmd.Process.Pid
	go func() { a.exited <- a.cmd.Wait() }()

	if err := a.waitReadable("the userfaultfd"); err != nil {
		return a, err
	}
	var hello [16]byte
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(a.sock, hello[:], oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n != len(hello) {
		return a, fmt.Errorf("%w: receive userfaultfd: n=%d: %v", ErrHelper, n, err)
	}
	scms, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(scms) != 1 {
		return a, fmt.Errorf("%w: control message: %v", ErrHelper, err)
	}
	fds, err := unix.ParseUnixRights(&scms[0])
	if err != nil || len(fds) != 1 {
		return a, fmt.Errorf("%w: rights %v: %v", ErrHelper, fds, err)
	}
	a.base = uintptr(binary.LittleEndian.Uint64(hello[0:]))
	if a.f, err = FromFD(fds[0], Features(binary.LittleEndian.Uint64(hello[8:]))); err != nil {
		return a, err
	}
	if handleWP {
		a.handlerDone = make(chan struct{})
		go a.handleWP()
	}
	return a, nil
}

// handleWP resolves write-protect faults until Shutdown. Any other fault
// is an error: it is resolved with a zero page (so that the application
// does not hang) and reported.
func (a *evictApp) handleWP() {
	defer close(a.handlerDone)
	mask := ^uintptr(a.ps - 1)
	var buf [64]Msg
	for {
		n, err := a.f.Read(buf[:])
		if errors.Is(err, ErrClosed) {
			return
		}
		if err != nil {
			a.handlerErr = err
			return
		}
		for i := range buf[:n] {
			m := &buf[i]
			if m.Event != EventPagefault {
				continue
			}
			addr := m.Address() & mask
			if m.Flags()&FlagWP == 0 {
				_, _ = a.f.ZeroPage(addr, a.ps, false)
				a.handlerErr = fmt.Errorf("unexpected missing fault at page %d", (addr-a.base)/uintptr(a.ps))
				return
			}
			// Count before resolving: the ioctl wakes the application,
			// which may report its store, and the measurement read the
			// count, before this goroutine runs again.
			a.wpFaults.Add(1)
			if err := a.f.WriteProtect(addr, a.ps, false, false); err != nil {
				a.handlerErr = err
				return
			}
		}
	}
}

func (a *evictApp) waitReadable(what string) error {
	fds := []unix.PollFd{{Fd: int32(a.sock), Events: unix.POLLIN}}
	deadline := time.Now().Add(evictGuard)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n > 0 {
			return nil
		}
		select {
		case err := <-a.exited:
			a.exited <- err
			return fmt.Errorf("%w: application exited (%v) while waiting for %s: %s", ErrHelper, err, what, bytes.TrimSpace(a.stderr.Bytes()))
		default:
		}
	}
	return fmt.Errorf("%w: no %s from the application within %v", ErrHelper, what, evictGuard)
}

// write has the application fill pages with val, and waits until it has.
func (a *evictApp) write(pages []int, val byte) error {
	m := a.msg[:8+4*len(pages)]
	m[0], m[1] = evictCmdWrite, val
	binary.LittleEndian.PutUint32(m[4:], uint32(len(pages)))
	for k, pg := range pages {
		binary.LittleEndian.PutUint32(m[8+4*k:], uint32(pg))
	}
	if _, err := unix.Write(a.sock, m); err != nil {
		return err
	}
	if err := a.waitReadable("the reply to a write"); err != nil {
		return err
	}
	var r [1]byte
	if n, err := unix.Read(a.sock, r[:]); err != nil || n != 1 {
		return fmt.Errorf("%w: reply n=%d: %v", ErrHelper, n, err)
	}
	return nil
}

func (a *evictApp) addr(pg int) uintptr { return a.base + uintptr(pg*a.ps) }

// close stops the application (asks, then kills) and the handler, and
// releases everything. It returns the handler's error, if any.
func (a *evictApp) close() error {
	if a.sock >= 0 {
		unix.Close(a.sock) // the application exits on EOF
		a.sock = -1
	}
	if a.cmd != nil {
		select {
		case <-a.exited:
		case <-time.After(2 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
		a.cmd = nil
	}
	var err error
	if a.f != nil {
		if a.handlerDone != nil {
			_ = a.f.Shutdown()
			<-a.handlerDone
			err = a.handlerErr
		}
		a.f.Close()
		a.f = nil
	}
	if a.view != nil {
		Unmap(a.view)
		a.view = nil
	}
	if a.memfd >= 0 {
		unix.Close(a.memfd)
		a.memfd = -1
	}
	return err
}

// pagePipe is a pipe sized for a batch of vmspliced pages.
type pagePipe struct {
	r, w  int
	bytes int
}

// newPagePipe makes a pipe that holds at least pages pages: F_SETPIPE_SZ
// rounds up to a power of two pages; past /proc/sys/fs/pipe-max-size it
// needs CAP_SYS_RESOURCE. Each vmspliced page takes one pipe buffer slot.
func newPagePipe(pages int) (*pagePipe, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	pp := &pagePipe{r: p[0], w: p[1]}
	want := pages * os.Getpagesize()
	got, err := unix.FcntlInt(uintptr(pp.w), unix.F_GETPIPE_SZ, 0)
	if err == nil && got < want {
		got, err = unix.FcntlInt(uintptr(pp.w), unix.F_SETPIPE_SZ, want)
	}
	if err != nil {
		pp.close()
		return nil, fmt.Errorf("uffd: pipe of %d bytes: %w", want, err)
	}
	pp.bytes = got
	return pp, nil
}

func (pp *pagePipe) close() {
	unix.Close(pp.r)
	unix.Close(pp.w)
}

// pin vmsplices the pages of iov into the pipe, without blocking: a pipe
// too small is an error, never a wait (nothing reads the pipe before the
// punch). It returns the number of calls.
func (pp *pagePipe) pin(iov []unix.Iovec) (int, error) {
	calls := 0
	for len(iov) > 0 {
		n, err := unix.Vmsplice(pp.w, iov, unix.SPLICE_F_NONBLOCK)
		calls++
		if err != nil {
			return calls, fmt.Errorf("uffd: vmsplice of %d pages: %w", len(iov), err)
		}
		for n > 0 && len(iov) > 0 {
			l := int(iov[0].Len)
			if n < l {
				return calls, fmt.Errorf("uffd: vmsplice took part of a page (%d of %d bytes)", n, l)
			}
			n -= l
			iov = iov[1:]
		}
	}
	return calls, nil
}

// drain reads exactly len(into) bytes out of the pipe and returns the
// number of calls.
func (pp *pagePipe) drain(into []byte) (int, error) {
	calls := 0
	for got := 0; got < len(into); {
		n, err := unix.Read(pp.r, into[got:])
		calls++
		if err != nil || n == 0 {
			return calls, fmt.Errorf("uffd: read of pinned pages: %d of %d bytes: %v", got, len(into), err)
		}
		got += n
	}
	return calls, nil
}

type pageRun struct{ first, n int }

func runsOf(pages []int) []pageRun {
	var runs []pageRun
	for i := 0; i < len(pages); {
		j := i + 1
		for j < len(pages) && pages[j] == pages[j-1]+1 {
			j++
		}
		runs = append(runs, pageRun{pages[i], j - i})
		i = j
	}
	return runs
}

// evictCase is one measured case and its samples.
type evictCase struct {
	way              EvictionWay
	scattered, dirty bool
	app              *evictApp
	victims          []int
	runs             []pageRun
	iov              []unix.Iovec // pinned: one page of the pager's view per victim
	total            []time.Duration
	steps            [][]time.Duration
	stepNames        []string
	syscalls         int
}

// MeasureEviction measures the cost per page of evicting batches of batch
// pages, both ways (EvictSyncFence and EvictPinned), in one run: the
// victims adjacent and scattered (every EvictionStride-th page), all
// written by the application since they were installed or none. The cases
// are interleaved round by round, so that both ways see the same load. It
// evicts pages pages per case (rounded up to whole batches, at least one).
//
// Each way has its application in its own process (this binary
// re-executed, see the comment at the top of evictcost_linux.go), which
// maps a memfd of batch*EvictionStride pages and registers it for missing
// and write-protect faults: with synchronous write protection (its faults
// resolved by a goroutine of this process) for the fence, with WP_ASYNC
// for the pinned way. Every round, this process installs each victim with
// UFFDIO_COPY (write-protected), has the application write them (dirty
// cases), then times the eviction, and afterwards checks that every copy
// out holds what the application wrote or what was installed, that the
// scan reported exactly the written victims, and that the memfd holds no
// page any more. The write-back to the far tier is not part of it (it is
// the same both ways). The pipe of the pinned way is sized for the batch
// (F_SETPIPE_SZ); a batch that does not fit is an error.
func MeasureEviction(pages, batch int) (EvictionResult, error) {
	res := EvictionResult{Pages: pages, Batch: batch}
	if batch <= 0 || pages <= 0 {
		return res, fmt.Errorf("uffd: MeasureEviction: %d pages in batches of %d: need at least one of each", pages, batch)
	}
	res.Rounds = (pages + batch - 1) / batch
	if err := measureEviction(&res); err != nil {
		return res, fmt.Errorf("uffd: MeasureEviction: %w", err)
	}
	return res, nil
}

func measureEviction(res *EvictionResult) (err error) {
	batch, rounds := res.Batch, res.Rounds
	ps := os.Getpagesize()
	regionPages := batch * EvictionStride

	syncApp, err := startEvictApp(regionPages, FeatureMissingShmem|FeaturePagefaultFlagWP|FeatureWPHugetlbfsShmem, true)
	if err != nil {
		return fmt.Errorf("sync application: %w", err)
	}
	defer func() {
		if cerr := syncApp.close(); cerr != nil && err == nil {
			err = fmt.Errorf("%w: write-protect handler: %w", ErrHelper, cerr)
		}
	}()
	asyncApp, err := startEvictApp(regionPages, FeatureMissingShmem|FeatureWPAsync, false)
	if err != nil {
		return fmt.Errorf("WP_ASYNC application: %w", err)
	}
	defer asyncApp.close()
	// Arm the tracking: protect the whole range, holes included (uffd-wp
	// markers), so that a scan reports only pages written since.
	if err := asyncApp.f.WriteProtect(asyncApp.base, regionPages*ps, true, false); err != nil {
		return err
	}
	scanner, err := OpenPagemap(asyncApp.pid, 0)
	if err != nil {
		return err
	}
	defer scanner.Close()
	pipe, err := newPagePipe(batch)
	if err != nil {
		return err
	}
	defer pipe.close()
	res.PipeBytes = pipe.bytes
	if pipe.bytes < batch*ps {
		return fmt.Errorf("pipe holds %d bytes, a batch is %d", pipe.bytes, batch*ps)
	}

	layouts := [2][]int{make([]int, batch), make([]int, batch)}
	for k := range batch {
		layouts[0][k] = k
		layouts[1][k] = k * EvictionStride
	}
	var cases []*evictCase
	for _, scattered := range []bool{false, true} {
		victims := layouts[0]
		if scattered {
			victims = layouts[1]
		}
		for _, dirty := range []bool{false, true} {
			for _, way := range []EvictionWay{EvictSyncFence, EvictPinned} {
				c := &evictCase{way: way, scattered: scattered, dirty: dirty, victims: victims, runs: runsOf(victims),
					total: make([]time.Duration, 0, rounds)}
				if way == EvictSyncFence {
					c.app = syncApp
					c.stepNames = []string{"writeprotect", "copy", "punch"}
				} else {
					c.app = asyncApp
					c.stepNames = []string{"vmsplice", "punch", "read", "scan"}
					c.iov = make([]unix.Iovec, batch)
					for k, pg := range victims {
						c.iov[k].Base = &asyncApp.view[pg*ps]
						c.iov[k].SetLen(ps)
					}
				}
				c.steps = make([][]time.Duration, len(c.stepNames))
				for i := range c.steps {
					c.steps[i] = make([]time.Duration, 0, rounds)
				}
				cases = append(cases, c)
			}
		}
	}

	src := make([]byte, batch*ps)
	buf := make([]byte, batch*ps)
	written := make([]PageRegion, 0, batch)
	wantFaults := int64(0)
	for round := range rounds {
		installed := byte(0x10 + 2*(round%100))
		wrote := installed + 1
		for i := range src {
			src[i] = installed
		}
		for _, c := range cases {
			a := c.app
			for _, r := range c.runs {
				n, err := a.f.Copy(a.addr(r.first), src[:r.n*ps], CopyWP)
				if err != nil {
					return fmt.Errorf("install pages %d+%d: %w", r.first, r.n, err)
				}
				if n != r.n*ps {
					return fmt.Errorf("install pages %d+%d: %d bytes installed (a page was still there)", r.first, r.n, n)
				}
			}
			if c.dirty {
				if err := a.write(c.victims, wrote); err != nil {
					return err
				}
				if c.way == EvictSyncFence {
					wantFaults += int64(batch)
				}
			}

			var t [5]time.Time
			calls := 0
			written = written[:0]
			switch c.way {
			case EvictSyncFence:
				t[0] = time.Now()
				if c.dirty {
					for _, r := range c.runs {
						if err := a.f.WriteProtect(a.addr(r.first), r.n*ps, true, false); err != nil {
							return err
						}
						calls++
					}
				}
				t[1] = time.Now()
				if c.dirty {
					for k, pg := range c.victims {
						copy(buf[k*ps:(k+1)*ps], a.view[pg*ps:(pg+1)*ps])
					}
				}
				t[2] = time.Now()
				for _, r := range c.runs {
					if err := PunchHole(a.memfd, int64(r.first*ps), int64(r.n*ps)); err != nil {
						return err
					}
					calls++
				}
				t[3] = time.Now()
			case EvictPinned:
				t[0] = time.Now()
				n, err := pipe.pin(c.iov)
				calls += n
				if err != nil {
					return err
				}
				t[1] = time.Now()
				for _, r := range c.runs {
					if err := PunchHole(a.memfd, int64(r.first*ps), int64(r.n*ps)); err != nil {
						return err
					}
					calls++
				}
				t[2] = time.Now()
				n, err = pipe.drain(buf)
				calls += n
				if err != nil {
					return err
				}
				t[3] = time.Now()
				start, end := a.addr(c.victims[0]), a.addr(c.victims[batch-1]+1)
				for start < end {
					rs, walkEnd, err := scanner.Scan(start, end, ScanWrittenAndProtect)
					calls++
					if err != nil {
						return err
					}
					written = append(written, rs...)
					if walkEnd <= start && len(rs) == 0 {
						return fmt.Errorf("PAGEMAP_SCAN made no progress at %#x", start)
					}
					start = walkEnd
				}
				t[4] = time.Now()
			}
			steps := len(c.stepNames)
			c.total = append(c.total, t[steps].Sub(t[0]))
			for i := range steps {
				c.steps[i] = append(c.steps[i], t[i+1].Sub(t[i]))
			}
			c.syscalls = calls
			if err := checkEviction(c, buf, written, installed, wrote); err != nil {
				return fmt.Errorf("round %d, %s: %w", round, c.name(), err)
			}
		}
	}
	if got := syncApp.wpFaults.Load(); got != wantFaults {
		return fmt.Errorf("%w: %d write-protect faults resolved, want %d (one per first write)", ErrHelper, got, wantFaults)
	}
	for _, c := range cases {
		cost := EvictionCost{Way: c.way, Scattered: c.scattered, Dirty: c.dirty, Batch: batch, Syscalls: c.syscalls,
			PerBatch: latencyOf(append([]time.Duration(nil), c.total...)), PerPage: perPage(c.total, batch)}
		for i, name := range c.stepNames {
			cost.Steps = append(cost.Steps, EvictionStep{Name: name, PerPage: perPage(c.steps[i], batch)})
		}
		res.Costs = append(res.Costs, cost)
	}
	return nil
}

func perPage(d []time.Duration, pages int) Latency {
	per := make([]time.Duration, len(d))
	for i, x := range d {
		per[i] = x / time.Duration(pages)
	}
	return latencyOf(per)
}

func (c *evictCase) name() string {
	layout, state := "adjacent", "clean"
	if c.scattered {
		layout = "scattered"
	}
	if c.dirty {
		state = "dirty"
	}
	return string(c.way) + " " + layout + " " + state
}

// checkEviction checks one eviction: the copies out, what the scan
// reported, and that the memfd holds no page any more.
func checkEviction(c *evictCase, buf []byte, written []PageRegion, installed, wrote byte) error {
	ps := c.app.ps
	want := installed
	if c.dirty {
		want = wrote
	}
	if c.way == EvictPinned || c.dirty {
		for k, pg := range c.victims {
			p := buf[k*ps : (k+1)*ps]
			if bytes.Count(p, []byte{want}) != ps {
				return fmt.Errorf("page %d copied out as %#x..., want all %#x", pg, p[0], want)
			}
		}
	}
	if c.way == EvictPinned {
		isVictim := make(map[int]bool, len(c.victims))
		for _, pg := range c.victims {
			isVictim[pg] = true
		}
		n := 0
		for _, r := range written {
			for a := uintptr(r.Start); a < uintptr(r.End); a += uintptr(ps) {
				pg := int((a - c.app.base) / uintptr(ps))
				if !isVictim[pg] {
					return fmt.Errorf("scan reports page %d written, not a victim", pg)
				}
				n++
			}
		}
		if wantN := map[bool]int{false: 0, true: len(c.victims)}[c.dirty]; n != wantN {
			return fmt.Errorf("scan reports %d written victims, want %d", n, wantN)
		}
	}
	if off, err := unix.Seek(c.app.memfd, 0, unix.SEEK_DATA); !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("memfd still holds data at %d after the punch (%v)", off, err)
	}
	return nil
}
