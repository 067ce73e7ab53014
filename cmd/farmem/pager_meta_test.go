package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farmem/farmem/pager"
	"github.com/farmem/farmem/pmem"
)

// TestPagerMetaErrors: farmem pager refuses a --meta file that is not a
// whole pager metadata pool with a one-line named error, before it listens,
// and never panics.
func TestPagerMetaErrors(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "p.sock")
	good := filepath.Join(dir, "good")
	m, err := pager.OpenMeta(good, pager.MetaOptions{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	whole, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	foreign := filepath.Join(dir, "foreign")
	p, err := pmem.Create(foreign, pmem.CreateOptions{Size: 1 << 20, Layout: "farmem", Journals: 4, JournalSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"garbage", write("garbage", bytes.Repeat([]byte("garbage!"), 4096)), pager.ErrMetaCorrupt},
		{"truncated", write("truncated", whole[:len(whole)/3]), pager.ErrMetaCorrupt},
		{"empty", write("empty", nil), pager.ErrMetaCorrupt},
		{"wrong layout", foreign, pager.ErrMetaLayout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := pagerFlags{socket: sock, local: "1MiB", maxRegion: "1TiB", workers: 1, nodes: []string{"127.0.0.1:1"},
				namespace: "ns", meta: tc.path, metaSize: "64MiB"}
			err := runPager(context.Background(), f, io.Discard)
			if !errors.Is(err, tc.want) {
				t.Fatalf("runPager: %v, want %v", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "--meta") || !strings.Contains(msg, tc.path) {
				t.Fatalf("runPager: %q: want one line naming --meta and the file", msg)
			}
			if _, err := os.Stat(sock); err == nil {
				t.Fatal("the socket was created")
			}
			t.Log(err)
		})
	}
	t.Run("without nodes", func(t *testing.T) {
		err := runPager(context.Background(), pagerFlags{socket: sock, local: "1MiB", maxRegion: "1TiB", meta: good}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "needs --nodes") {
			t.Fatalf("runPager: %v, want a refusal naming --nodes", err)
		}
	})
}
