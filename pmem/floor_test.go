package pmem

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/farmem/farmem/pmem/internal/crc32c"
)

// BenchmarkRedoFloor measures the floor under a redo KV update of 256 B on
// this machine: the work every transaction of pmembench's workload must do
// — copy the entry into a journal, checksum it, write a header, copy the
// value to its home, flush the journal and the home, fence, read the clock
// twice — with none of the journals' bookkeeping: no commit ids, free
// lists, groups, watermark or Tx. Each committer owns its journals and
// slots and fences every transaction alone. It is the reference for
// docs/PMEM.md's "how far from the floor" figures, not a usable commit
// path (nothing here is recoverable). On a file in /dev/shm with CLWB, as
// the PMDK comparison runs.
func BenchmarkRedoFloor(b *testing.B) {
	if DetectFlush() == FlushNone {
		b.Skip("no cache-line flush instruction")
	}
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("committers=%d", workers), func(b *testing.B) {
			path := filepath.Join("/dev/shm", fmt.Sprintf("farmem-floor-%d", os.Getpid()))
			p, err := Create(path, CreateOptions{Size: 64 << 20, Layout: "floor", Journals: 64, JournalSize: 4096, Mode: ModeForcePmem})
			if err != nil {
				b.Fatal(err)
			}
			defer os.Remove(path)
			defer p.Close()
			mem := p.Mem()
			const slot, keys, value, entry = 320, 1024, 264, 16 + 264
			base := uint64(8 << 20)
			per := b.N / workers
			start := time.Now()
			var wg sync.WaitGroup
			var sink [4]int64
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(1, uint64(w)))
					jbase := base + uint64(w)*64*4096
					homes := base + 4<<20 + uint64(w)*keys*slot
					val := make([]byte, value)
					rs := make([]Range, 0, 2)
					var lat int64
					for i := 0; i < per; i++ {
						t0 := time.Since(start)
						home := homes + uint64(rng.IntN(keys))*slot
						jo := jbase + uint64(i%32)*4096
						body := mem[jo+32:]
						binary.LittleEndian.PutUint64(body, home)
						binary.LittleEndian.PutUint64(body[8:], value)
						copy(body[16:], val)
						binary.LittleEndian.PutUint64(mem[jo:], uint64(i))
						binary.LittleEndian.PutUint32(mem[jo+8:], crc32c.Checksum(body[:entry]))
						binary.LittleEndian.PutUint32(mem[jo+12:], crc32c.Checksum(mem[jo:jo+12]))
						copy(mem[home:], body[16:entry])
						rs = append(rs[:0], Range{jo, 32 + entry}, Range{home, value})
						if err := p.PersistRanges(rs); err != nil {
							b.Error(err)
							return
						}
						lat += int64(time.Since(start) - t0)
					}
					sink[w%len(sink)] += lat
				}(w)
			}
			wg.Wait()
			b.ReportMetric(float64(per*workers)/time.Since(start).Seconds(), "tx/s")
		})
	}
}
