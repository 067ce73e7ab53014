package pmembench

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/farmem/farmem/pmem"
)

// TestRunSmall runs a tiny configuration end to end (msync domain so that
// it works anywhere) and checks the rows are complete; it asserts nothing
// about speed.
func TestRunSmall(t *testing.T) {
	c := Default(filepath.Join(t.TempDir(), "pool"))
	c.Mode = pmem.ModeMsync
	c.Committers, c.ValueBytes = []int{1, 2}, []int{64}
	c.Duration, c.KeysPerWorker = 20*time.Millisecond, 16
	rows, err := Run(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	for _, r := range rows {
		if r.Txs == 0 || r.FencesPerTx <= 0 || r.P99us < r.P50us {
			t.Fatalf("implausible row %+v", r)
		}
		if r.LatencyEvery != 1 || r.TimedTxs != r.Txs {
			t.Fatalf("default: every transaction timed, got %d of %d (every %d)", r.TimedTxs, r.Txs, r.LatencyEvery)
		}
		if !r.Coalescing && r.FencesPerTx < 1 {
			t.Fatalf("uncoalesced commits share fences: %+v", r)
		}
	}
	c.ValueBytes = []int{1 << 20}
	if _, err := Run(c); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("oversized value: %v", err)
	}
	c.ValueBytes, c.LatencyEvery = []int{64}, -1
	if _, err := Run(c); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("negative latency sampling: %v", err)
	}
}

// TestLatencySampling times one transaction in 8: every transaction still
// counts, the row says how latency was sampled, and the quantiles come
// from roughly an eighth of the transactions.
func TestLatencySampling(t *testing.T) {
	c := Default(filepath.Join(t.TempDir(), "pool"))
	c.Mode = pmem.ModeMsync
	c.Committers, c.ValueBytes, c.Coalescing = []int{2}, []int{64}, []bool{true}
	c.Duration, c.KeysPerWorker, c.Journals, c.LatencyEvery = 30*time.Millisecond, 16, 16, 8
	rows, err := Run(c)
	if err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	if r.LatencyEvery != 8 || r.Txs == 0 || r.P50us <= 0 || r.P99us < r.P50us {
		t.Fatalf("implausible row %+v", r)
	}
	if n, lo, hi := r.TimedTxs, r.Txs/16, r.Txs/4+8; n < lo || n > hi {
		t.Fatalf("%d of %d transactions timed, want about an eighth (%d..%d)", r.TimedTxs, r.Txs, r.Txs/16, r.Txs/4+8)
	}
}

// BenchmarkKVUpdate measures one committer's redo KV update on a
// tmpfs-backed pool flushed with CLWB+SFENCE.
func BenchmarkKVUpdate(b *testing.B) {
	for _, co := range []bool{false, true} {
		b.Run(map[bool]string{false: "alone", true: "coalesced"}[co], func(b *testing.B) {
			c := Default(filepath.Join("/dev/shm", "farmem-bench-pool"))
			if pmem.DetectFlush() == pmem.FlushNone {
				c.Mode = pmem.ModeMsync
			}
			c.Committers, c.ValueBytes, c.Coalescing = []int{4}, []int{256}, []bool{co}
			c.Duration = time.Duration(b.N) * time.Microsecond
			b.ResetTimer()
			rows, err := Run(c)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(rows[0].TxPerSec, "tx/s")
			b.ReportMetric(rows[0].FencesPerTx, "fences/tx")
		})
	}
}
