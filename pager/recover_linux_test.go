//go:build linux

package pager

import (
	"os"
	"testing"

	"github.com/farmem/farmem/attach"
	"github.com/farmem/farmem/uffd"
	"golang.org/x/sys/unix"
)

// TestRecoverResidency: the residency map of a re-attached region is
// rebuilt from the memfd's data and holes (SEEK_DATA/SEEK_HOLE), without
// touching a hole.
func TestRecoverResidency(t *testing.T) {
	ps := os.Getpagesize()
	const pages = 64
	for _, tc := range []struct {
		name    string
		written []int
	}{
		{"none", nil},
		{"first and last", []int{0, pages - 1}},
		{"runs", []int{3, 4, 5, 10, 11, 40}},
		{"all", func() []int {
			var a []int
			for i := range pages {
				a = append(a, i)
			}
			return a
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd, err := uffd.MemfdCreate("recover-test", int64(pages*ps))
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			for _, pg := range tc.written {
				if _, err := unix.Pwrite(fd, []byte{1}, int64(pg*ps+17)); err != nil {
					t.Fatal(err)
				}
			}
			r := &region{a: &attach.Attachment{Memfd: fd, Size: pages * ps, PageSize: ps}, ps: ps, n: pages,
				pages: make([]uint8, pages)}
			if err := r.recoverResidency(); err != nil {
				t.Fatal(err)
			}
			want := map[int]bool{}
			for _, pg := range tc.written {
				want[pg] = true
			}
			for pg, v := range r.pages {
				if want[pg] {
					if v&stateMask != stDirty || v&fUnknown == 0 {
						t.Errorf("page %d written: entry %#x, want dirty and unknown", pg, v)
					}
				} else if v != stAbsent|fUnknown {
					t.Errorf("page %d a hole: entry %#x, want absent and unknown", pg, v)
				}
			}
			if r.resident != len(tc.written) {
				t.Errorf("resident %d, want %d", r.resident, len(tc.written))
			}
			// Recovery must not have filled any hole.
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				t.Fatal(err)
			}
			if got, max := st.Blocks*512, int64(len(tc.written)*ps); got > max {
				t.Errorf("memfd holds %d bytes after recovery, at most %d written", got, max)
			}
		})
	}
}
