package journal

import (
	"testing"

	"github.com/farmem/farmem/pmem"
)

// BenchmarkCommit measures one committer's 256-byte transaction per mode on
// a tmpfs-backed pool flushed with CLWB+SFENCE (msync if the CPU has no
// flush instruction), and reports fences per transaction.
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []Mode{Redo, Undo} {
		b.Run(mode.String(), func(b *testing.B) {
			m := pmem.ModeForcePmem
			if pmem.DetectFlush() == pmem.FlushNone {
				m = pmem.ModeMsync
			}
			p := createTmpfsPool(b, pmem.CreateOptions{Size: 8 << 20, Layout: "jb", Journals: 64, JournalSize: 4096, Mode: m})
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
