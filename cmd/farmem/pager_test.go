package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farmem/farmem/pager"
)

// TestPagerFlagErrors: farmem pager refuses bad flags and policy files by
// name, before it listens.
func TestPagerFlagErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.policy")
	if err := os.WriteFile(bad, []byte("workers = 2\nprefetsh = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "p.sock")
	for _, tc := range []struct {
		name string
		f    pagerFlags
		want error  // nil: check the message
		text string // a substring of the message
	}{
		{"no socket", pagerFlags{local: "1MiB", maxRegion: "1TiB"}, nil, "--socket is required"},
		{"no budget", pagerFlags{socket: sock, maxRegion: "1TiB"}, nil, "--local is required"},
		{"bad budget", pagerFlags{socket: sock, local: "lots", maxRegion: "1TiB"}, nil, "--local"},
		{"bad policy", pagerFlags{socket: sock, local: "1MiB", maxRegion: "1TiB", policy: bad}, pager.ErrPolicyKey, "line 2"},
		{"backup without nodes", pagerFlags{socket: sock, local: "1MiB", maxRegion: "1TiB", backup: filepath.Join(dir, "b")}, nil, "needs --nodes"},
		{"bad dirty tracking", pagerFlags{socket: sock, local: "1MiB", maxRegion: "1TiB", dirtyTracking: "sync"}, nil, `--dirty-tracking "sync": want wp or async`},
		{"async with meta", pagerFlags{socket: sock, local: "1MiB", maxRegion: "1TiB", dirtyTracking: "async", meta: filepath.Join(dir, "m")}, nil, "--dirty-tracking async cannot keep --meta"},
		{"budget too small", pagerFlags{socket: sock, local: "64KiB", maxRegion: "1TiB", workers: 4}, pager.ErrConfig, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runPager(context.Background(), tc.f, io.Discard)
			if err == nil {
				t.Fatal("runPager succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("runPager: %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("runPager: a multi-line error: %q", err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("runPager: %v, want a message with %q", err, tc.text)
			}
			if _, err := os.Stat(sock); err == nil {
				t.Fatal("the socket was created")
			}
		})
	}
}
