package pmem

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// shmDir returns a directory on tmpfs if there is one, else a temp dir.
func shmDir(t *testing.T) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "pmemtest")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func TestFilePoolModes(t *testing.T) {
	for _, mode := range []Mode{ModeAuto, ModeMsync, ModeForcePmem} {
		t.Run(map[Mode]string{ModeAuto: "auto", ModeMsync: "msync", ModeForcePmem: "force"}[mode], func(t *testing.T) {
			if mode == ModeForcePmem && DetectFlush() == FlushNone {
				t.Skip("no cache-line flush instruction")
			}
			path := filepath.Join(shmDir(t), "pool")
			p, err := Create(path, CreateOptions{Size: 1 << 20, Layout: "lay", Journals: 4, JournalSize: 1024, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("domain %s", p.DomainName())
			off := p.Header().HeapOff
			copy(p.Mem()[off:], "hello")
			p.Flush(off, 5)
			if err := p.Fence(); err != nil {
				t.Fatal(err)
			}
			if st := p.Stats(); st.Fences != 2 || st.Flushes != 2 {
				t.Fatalf("stats %+v", st)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second close: %v", err)
			}
			if _, err := Create(path, CreateOptions{Size: 1 << 20, Layout: "lay", Journals: 4, JournalSize: 1024}); !errors.Is(err, ErrExists) {
				t.Fatalf("create over existing: %v", err)
			}
			if _, err := Open(path, OpenOptions{Layout: "other"}); !errors.Is(err, ErrLayout) {
				t.Fatalf("wrong layout: %v", err)
			}
			q, err := Open(path, OpenOptions{Layout: "lay", Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if string(q.Mem()[off:off+5]) != "hello" {
				t.Fatal("data lost across reopen")
			}
		})
	}
}

func TestOpenRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(path, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, OpenOptions{}); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("err = %v, want ErrBadMagic", err)
	}
	if _, err := ParseMode("fast"); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("ParseMode: %v", err)
	}
}
