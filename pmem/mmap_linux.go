//go:build linux

package pmem

import (
	"errors"
	"os"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// mapFile maps size bytes of f shared and writable. With trySync it first
// asks for MAP_SHARED_VALIDATE|MAP_SYNC, which only a DAX file system
// accepts; dax reports whether that worked.
func mapFile(f *os.File, size int, trySync bool) (mem []byte, dax bool, err error) {
	prot := unix.PROT_READ | unix.PROT_WRITE
	if trySync {
		mem, err = unix.Mmap(int(f.Fd()), 0, size, prot, unix.MAP_SHARED_VALIDATE|unix.MAP_SYNC)
		if err == nil {
			return mem, true, nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
			return nil, false, err
		}
	}
	mem, err = unix.Mmap(int(f.Fd()), 0, size, prot, unix.MAP_SHARED)
	return mem, false, err
}

func unmap(mem []byte) error { return unix.Munmap(mem) }

// msyncDomain persists by msync(MS_SYNC) of the touched pages. Flush only
// records the page range; Fence merges the recorded ranges and syncs each
// contiguous run once, so a group commit's many small flushes cost one pass.
type msyncDomain struct {
	mem    []byte
	mu     sync.Mutex // serializes Fence so no fence returns before an earlier caller's sync
	ranges [][2]int
}

func newMsyncDomain(mem []byte) *msyncDomain { return &msyncDomain{mem: mem} }

func (d *msyncDomain) Flush(off, n int) {
	if n <= 0 {
		return
	}
	ps := os.Getpagesize()
	start := off &^ (ps - 1)
	end := (off + n + ps - 1) &^ (ps - 1)
	if end > len(d.mem) {
		end = len(d.mem)
	}
	d.mu.Lock()
	d.ranges = append(d.ranges, [2]int{start, end})
	d.mu.Unlock()
}

func (d *msyncDomain) Fence() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	rs := d.ranges
	d.ranges = d.ranges[:0]
	sort.Slice(rs, func(i, j int) bool { return rs[i][0] < rs[j][0] })
	for i := 0; i < len(rs); {
		s, e := rs[i][0], rs[i][1]
		j := i + 1
		for j < len(rs) && rs[j][0] <= e {
			if rs[j][1] > e {
				e = rs[j][1]
			}
			j++
		}
		if err := unix.Msync(d.mem[s:e], unix.MS_SYNC); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func (d *msyncDomain) Name() string { return "msync" }
