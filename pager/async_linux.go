//go:build linux

package pager

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/uffd"
	"golang.org/x/sys/unix"
)

// Asynchronous dirty tracking (Config.DirtyTracking "async").
//
// The application's userfaultfd has UFFD_FEATURE_WP_ASYNC: pages are still
// installed write-protected (UFFDIO_COPY MODE_WP), but the kernel itself
// resolves the first write to each, clearing the page's uffd-wp bit, and no
// write-protect fault reaches the pager. So the pager cannot stop a writer
// while it copies a victim out; the fence is pin-punch-copy instead
// (uffd/evictpin_linux_test.go, uffd/wpasync_linux_test.go):
//
//  1. vmsplice the victims from the pager's view of the memfd into a pipe
//     (SPLICE_F_NONBLOCK): the pipe holds a reference to each page itself,
//     so every write the application makes until step 2 lands in what the
//     pipe holds. Victims are resident pages the pager installed, never a
//     hole (a vmsplice of a hole would allocate a zero page);
//  2. punch them out of the memfd: the application's next access to a
//     victim is a synchronous missing fault, which waits while the page is
//     evicting (missingFault) — no write can land after this;
//  3. read the pages out of the pipe;
//  4. PAGEMAP_SCAN the victims' runs in the application's address space:
//     the punch turns the page-table entry of a page that is still
//     write-protected (installed with MODE_WP and never written since)
//     into a uffd-wp marker (reported SWAPPED and not WRITTEN); a page
//     written at any time since its install has lost its uffd-wp bit and
//     leaves no marker. The rule is one-sided on purpose: a victim is
//     clean only when its marker is seen; anything else (written, no page
//     table, an unexpected category) is dirty and written back. Nothing
//     re-protects a page between its install and its eviction (the pager
//     never scans with PM_SCAN_WP_MATCHING), so "marker" means "not
//     written since the content the far tier or zero-fill gave it";
//  5. write the dirty ones to the far tier in one store call;
//  6. mark all absent and wake the faults waiting on them.
//
// If the write-back fails, the dirty victims are installed again from the
// copies (UFFDIO_COPY without MODE_WP: resident and dirty) and stay; clean
// ones go. Between steps 2 and 5 the only copy of a dirty victim's content
// is in the pager's memory (the pipe, then its buffer): a pager crash there
// loses it. That cannot be fenced without a synchronous write-protect
// fault, so async mode keeps no metadata pool (Config.Meta is refused), and
// a re-attach of a region that had WP_ASYNC enabled is refused
// (ErrNotRecoverable) rather than served with pages that may be stale or
// zero. A backup (--backup) is allowed: it guards the far tier against a
// memnode restart while the pager lives, not the pager's own crash.

// asyncState is an async region's eviction state: the application's
// pagemap and the pipe the victims are pinned in. Only the reclaimer uses
// it (mu makes that explicit).
type asyncState struct {
	mu     sync.Mutex
	scan   *uffd.PagemapScanner
	pr, pw int
	cap    int // pages the pipe holds
	iov    []unix.Iovec
}

// maxPipePages bounds a pin round (one pipe buffer slot per page).
const maxPipePages = 256

func newAsyncState(pid int32, batch int) (*asyncState, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("no peer pid (%d) for /proc/<pid>/pagemap", pid)
	}
	s, err := uffd.OpenPagemap(int(pid), 0)
	if err != nil {
		return nil, err
	}
	// An empty walk checks PAGEMAP_SCAN and its struct size.
	if _, _, err := s.Scan(0, 0, uffd.ScanRequest{Return: uffd.PageWritten}); err != nil {
		s.Close()
		return nil, err
	}
	as := &asyncState{scan: s, pr: -1, pw: -1}
	if err := as.openPipe(batch); err != nil {
		as.close()
		return nil, err
	}
	as.iov = make([]unix.Iovec, 0, as.cap)
	return as, nil
}

// openPipe (re)creates the pin pipe, sized for batch pages.
func (as *asyncState) openPipe(batch int) error {
	if as.pr >= 0 {
		unix.Close(as.pr)
		unix.Close(as.pw)
		as.pr, as.pw = -1, -1
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	as.pr, as.pw = p[0], p[1]
	ps := os.Getpagesize()
	want := min(batch, maxPipePages) * ps
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if m, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && m >= ps {
			want = min(want, m)
		}
	}
	got, err := unix.FcntlInt(uintptr(as.pw), unix.F_GETPIPE_SZ, 0)
	if err == nil && got < want {
		got, err = unix.FcntlInt(uintptr(as.pw), unix.F_SETPIPE_SZ, want)
	}
	if err != nil {
		return fmt.Errorf("sizing the pin pipe to %d bytes: %w", want, err)
	}
	if got/ps < 1 {
		return fmt.Errorf("pin pipe of %d bytes holds no page", got)
	}
	if as.cap == 0 {
		as.cap = min(got/ps, maxPipePages)
	}
	if got/ps < as.cap {
		return fmt.Errorf("new pin pipe holds %d pages, the old %d", got/ps, as.cap)
	}
	return nil
}

// resetPipe replaces a pipe whose content is unknown after a failure, so
// that no later round reads stale pages out of it.
func (r *region) resetPipe(as *asyncState) {
	if err := as.openPipe(as.cap); err != nil {
		r.p.logf("pager: region %d: replacing the pin pipe: %v; evictions of the region will fail", r.id, err)
		as.cap = -1
	}
}

func (as *asyncState) close() {
	if as == nil {
		return
	}
	as.scan.Close()
	if as.pr >= 0 {
		unix.Close(as.pr)
		unix.Close(as.pw)
	}
}

// checkShmemHuge returns ErrShmemHuge unless shmem is kept to base pages:
// the global shmem_enabled is never or deny, and every per-size one is
// never (or inherit, from a global never/deny). No THP support at all
// (no such file) is fine.
func checkShmemHuge() error {
	const dir = "/sys/kernel/mm/transparent_hugepage"
	global, err := selected(filepath.Join(dir, "shmem_enabled"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrShmemHuge, err)
	}
	if global != "never" && global != "deny" {
		return fmt.Errorf("%w: %s/shmem_enabled is %q (want never or deny)", ErrShmemHuge, dir, global)
	}
	sizes, _ := filepath.Glob(filepath.Join(dir, "hugepages-*", "shmem_enabled"))
	for _, f := range sizes {
		v, err := selected(f)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrShmemHuge, err)
		}
		if v != "never" && v != "inherit" {
			return fmt.Errorf("%w: %s is %q (want never or inherit)", ErrShmemHuge, f, v)
		}
	}
	return nil
}

// selected returns the [bracketed] value of a sysfs choice file.
func selected(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := string(b)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return strings.TrimSpace(s), nil
	}
	return s[i+1 : j], nil
}

// markerScan finds the uffd-wp markers: SWAPPED and not WRITTEN.
var markerScan = uffd.ScanRequest{
	Require:  uffd.PageSwapped | uffd.PageWritten,
	Inverted: uffd.PageWritten,
	Return:   uffd.PageSwapped,
}

// evictPinned evicts the victims of an async region (chosen and marked
// evicting by evictBatch) with the pin-punch-copy fence, in rounds of at
// most the pipe's capacity. It returns the pages freed.
func (r *region) evictPinned(ev *evictor, t0 time.Time) (int, error) {
	as := r.async
	as.mu.Lock()
	defer as.mu.Unlock()
	// Runs of adjacent victims: one punch and one scan each.
	if as.cap <= 0 {
		r.restoreVictims(ev.victims)
		return 0, errors.New("no pin pipe")
	}
	slices.SortFunc(ev.victims, func(a, b victim) int { return a.pg - b.pg })
	freed := 0
	var firstErr error
	for i := 0; i < len(ev.victims); i += as.cap {
		chunk := ev.victims[i:min(i+as.cap, len(ev.victims))]
		n, err := r.pinPunchCopy(as, ev, chunk)
		freed += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	c := &r.p.stats
	if freed > 0 {
		c.evictions.Add(uint64(freed))
		c.evictBatches.Add(1)
		c.evictNS.Add(uint64(time.Since(t0)))
	}
	return freed, firstErr
}

// pinPunchCopy evicts one round of victims (sorted, at most as.cap): see
// the comment at the top of the file. It returns the pages freed; every
// victim leaves the evicting state, absent or (after a failure) resident.
func (r *region) pinPunchCopy(as *asyncState, ev *evictor, vs []victim) (int, error) {
	ps := r.ps
	buf := ev.buf[:len(vs)*ps]
	as.iov = as.iov[:0]
	for _, vc := range vs {
		iv := unix.Iovec{Base: &r.view[vc.pg*ps]}
		iv.SetLen(ps)
		as.iov = append(as.iov, iv)
	}
	// 1. Pin.
	pinned := 0
	for iov := as.iov; len(iov) > 0; {
		n, err := unix.Vmsplice(as.pw, iov, unix.SPLICE_F_NONBLOCK)
		if n > 0 {
			pinned += n
		}
		if err != nil || n <= 0 || n%ps != 0 {
			// Nothing is punched yet: empty the pipe, keep the victims.
			if drain(as.pr, buf[:pinned]) != nil {
				r.resetPipe(as)
			}
			r.restoreVictims(vs)
			if err == nil {
				err = fmt.Errorf("vmsplice took %d bytes", n)
			}
			return 0, fmt.Errorf("pinning %d victims: %w", len(vs), err)
		}
		iov = iov[n/ps:]
	}
	// 2. Punch.
	var punchErr error
	for i := 0; i < len(vs); {
		j := runEnd(vs, i)
		if err := uffd.PunchHole(r.a.Memfd, int64(vs[i].pg)*int64(ps), int64(j-i)*int64(ps)); err != nil {
			punchErr = err
			break
		}
		i = j
	}
	// 3. Copy out.
	if err := drain(as.pr, buf); err != nil {
		// The pipe held the only copy of punched pages; this cannot
		// happen short of a broken pipe, and the pages are lost.
		r.p.logf("pager: region %d: reading %d pinned victims: %v", r.id, len(vs), err)
		r.resetPipe(as)
		r.markAbsentLost(vs)
		return len(vs), err
	}
	if punchErr != nil {
		// Some may be punched: put every one back from its copy
		// (UFFDIO_COPY skips pages still there), as dirty.
		for k := range vs {
			vs[k].dirty = true
		}
		r.reinstall(vs, buf, true)
		return 0, fmt.Errorf("punching victims: %w", punchErr)
	}
	// 4. Which were written: all but those with a uffd-wp marker.
	for k := range vs {
		vs[k].dirty = true
	}
	for i := 0; i < len(vs); {
		j := runEnd(vs, i)
		first := vs[i].pg
		_, err := as.scan.ScanAll(r.addr(first), r.addr(vs[j-1].pg+1), markerScan, func(rs []uffd.PageRegion) error {
			for _, reg := range rs {
				lo := int((uintptr(reg.Start) - r.base) / uintptr(ps))
				hi := int((uintptr(reg.End) - r.base) / uintptr(ps))
				for pg := max(lo, first); pg < hi && pg-first < j-i; pg++ {
					vs[i+pg-first].dirty = false
				}
			}
			return nil
		})
		if err != nil {
			// Keep the run dirty (written back): safe, only dearer.
			for k := i; k < j; k++ {
				vs[k].dirty = true
			}
			if n := r.lostLogged.Add(1); n == 1 || n%100 == 0 {
				r.p.logf("pager: region %d: PAGEMAP_SCAN of evicted pages: %v (written back as dirty)", r.id, err)
			}
		}
		i = j
	}
	// 5. Write back the dirty ones.
	ev.call.Pages = ev.call.Pages[:0]
	clean := 0
	for k, vc := range vs {
		if !vc.dirty {
			clean++
			continue
		}
		data := buf[k*ps : (k+1)*ps]
		ev.call.Pages = append(ev.call.Pages, store.Page{ID: store.PageID(vc.pg), Data: data, Sum: store.Checksum(data)})
	}
	if err := r.storePages(ev); err != nil {
		r.reinstall(vs, buf, false)
		r.p.stats.cleanEvictions.Add(uint64(clean))
		return clean, err
	}
	r.p.stats.cleanEvictions.Add(uint64(clean))
	// 6. Absent; the waiting faults fetch them.
	r.mu.Lock()
	for _, vc := range vs {
		v := vc.v &^ (stateMask | fRef)
		if vc.dirty {
			v = v&^fUnknown | fStored
		}
		r.pages[vc.pg] = v | stAbsent
	}
	r.resident -= len(vs)
	r.cond.Broadcast()
	r.mu.Unlock()
	return len(vs), nil
}

// runEnd returns the end of the run of adjacent victims starting at i.
func runEnd(vs []victim, i int) int {
	j := i + 1
	for j < len(vs) && vs[j].pg == vs[j-1].pg+1 {
		j++
	}
	return j
}

// drain reads exactly len(into) bytes out of the pipe.
func drain(fd int, into []byte) error {
	for got := 0; got < len(into); {
		n, err := unix.Read(fd, into[got:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			return fmt.Errorf("read of pinned pages: %d of %d bytes: %v", got, len(into), err)
		}
		got += n
	}
	return nil
}

// restoreVictims puts unpunched victims back as they were.
func (r *region) restoreVictims(vs []victim) {
	r.mu.Lock()
	for _, vc := range vs {
		r.pages[vc.pg] = vc.v | fRef
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// reinstall puts the dirty victims (all, with all set) back into the
// application's mapping from their copies, writable and dirty (no uffd-wp
// bit: the next eviction writes them back); the clean ones become absent
// (the far tier or zero-fill has their content). It returns nothing: a
// failure means the application is gone.
func (r *region) reinstall(vs []victim, buf []byte, all bool) {
	ps := r.ps
	back, gone := 0, 0
	for k, vc := range vs {
		if !vc.dirty && !all {
			continue
		}
		if _, err := r.a.Uffd.Copy(r.addr(vc.pg), buf[k*ps:(k+1)*ps], 0); err != nil {
			gone++
			continue
		}
		back++
	}
	if gone > 0 && !r.stopping.Load() {
		r.p.logf("pager: region %d: %d evicted dirty pages could not be installed again", r.id, gone)
	}
	r.mu.Lock()
	for _, vc := range vs {
		if vc.dirty || all {
			r.pages[vc.pg] = vc.v&^stateMask | stDirty | fRef
			continue
		}
		r.pages[vc.pg] = vc.v&^(stateMask|fRef) | stAbsent
		r.resident--
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// markAbsentLost is for the impossible: punched pages whose copies could not
// be read. Their faults then read the far tier's older copy (or zero).
func (r *region) markAbsentLost(vs []victim) {
	r.mu.Lock()
	for _, vc := range vs {
		r.pages[vc.pg] = vc.v&^(stateMask|fRef) | stAbsent
	}
	r.resident -= len(vs)
	r.cond.Broadcast()
	r.mu.Unlock()
}
