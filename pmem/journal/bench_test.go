package journal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/farmem/farmem/pmem"
)

// BenchmarkCommit measures one committer's 256-byte transaction per mode on
// a tmpfs-backed pool flushed with CLWB+SFENCE (msync if the CPU has no
// flush instruction), and reports fences per transaction.
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []Mode{Redo, Undo} {
		b.Run(mode.String(), func(b *testing.B) {
			dir := b.TempDir()
			if d, err := os.MkdirTemp("/dev/shm", "jb"); err == nil {
				dir = d
				b.Cleanup(func() { os.RemoveAll(d) })
			}
			m := pmem.ModeForcePmem
			if pmem.DetectFlush() == pmem.FlushNone {
				m = pmem.ModeMsync
			}
			p, err := pmem.Create(filepath.Join(dir, "pool"), pmem.CreateOptions{Size: 8 << 20, Layout: "jb", Journals: 64, JournalSize: 4096, Mode: m})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			j, _, err := Open(p, Options{})
			if err != nil {
				b.Fatal(err)
			}
			val := make([]byte, 256)
			base := p.Header().HeapOff
			start := p.Stats().Fences
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx, err := j.Begin(mode)
				if err != nil {
					b.Fatal(err)
				}
				if err := tx.Write(base+uint64(i%1024)*320, val); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(p.Stats().Fences-start)/float64(b.N), "fences/tx")
		})
	}
}
