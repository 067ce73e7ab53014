package farmem_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/resilient"
)

// TestRegionWithBackup opens regions over a memnode with Config.Backup: the
// named errors of a missing or foreign backup, a region's data surviving a
// memnode killed and restarted empty (repopulated from the backup), and the
// counters of Region.Resilience.
func TestRegionWithBackup(t *testing.T) {
	node, err := nodeproc.Start(nodeproc.Config{Capacity: 32 << 20, PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Stop(5 * time.Second)
	ctx := context.Background()
	dir := t.TempDir()
	backup := filepath.Join(dir, "backup")
	cfg := farmem.Config{Size: 1 << 20, Local: 64 << 10, Nodes: []string{node.Addr()}, Namespace: "backup-test", Backup: backup}

	if _, err := farmem.Open(ctx, cfg); !errors.Is(err, resilient.ErrBackupMissing) {
		t.Fatalf("open without the backup file: %v", err)
	}
	cfg.CreateBackup = true
	r, err := farmem.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, cfg.Size)
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}
	if _, err := r.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The memnode dies and comes back empty: every page must still read
	// back (from the backup, then from the repopulated node).
	if err := node.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := node.Restart(); err != nil {
		t.Fatal(err)
	}
	// Read past the local budget so that pages are fetched.
	got := make([]byte, cfg.Size)
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("region contents changed across a memnode restart")
	}
	c, ok := r.Resilience()
	if !ok || c.BackupReads == 0 {
		t.Fatalf("resilience counters: %v, %+v", ok, c)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// The backup belongs to namespace backup-test: another region is refused.
	other := cfg
	other.Namespace = "another"
	if _, err := farmem.Open(ctx, other); !errors.Is(err, store.ErrWrongRegion) {
		t.Fatalf("open of another region's backup: %v", err)
	}
	// Backup is for memnodes; with a Store it is a config error.
	withStore := farmem.Config{Size: 1 << 20, Local: 64 << 10, Store: store.NewMem(4096, 0), Backup: backup}
	if _, err := farmem.Open(ctx, withStore); !errors.Is(err, farmem.ErrConfig) {
		t.Fatalf("Backup with a Store: %v", err)
	}
}
