package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmem/farmem/uffd"
)

// TestBenchTransparentFlags: the transparent-mode flags are added to the
// bench command built by bench.go (this relies on init order by file name).
func TestBenchTransparentFlags(t *testing.T) {
	root := newRootCmd()
	bench, _, err := root.Find([]string{"bench"})
	if err != nil || bench.Name() != "bench" {
		t.Fatalf("no bench command: %v", err)
	}
	for _, name := range []string{"socket", "prefetch", "pager-spin", "fault-samples", "mode"} {
		if bench.Flags().Lookup(name) == nil {
			t.Errorf("farmem bench has no --%s", name)
		}
	}
	pager, _, err := root.Find([]string{"pager"})
	if err != nil || pager.Name() != "pager" {
		t.Fatalf("no pager command: %v", err)
	}
}

// TestBenchTransparentJSON runs a short transparent-mode bench (its own
// pager child and embedded memnode) through the real main and checks the
// transparent block of its JSON: the three reference measurements, the
// ratio computed from them, and the dirty-tracking comparison.
func TestBenchTransparentJSON(t *testing.T) {
	if _, err := uffd.Probe(); err != nil {
		t.Skipf("userfaultfd not available: %v", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.json")
	code, stdout, stderr := runFarmem(t, "bench", "--mode", "transparent", "--size", "4MiB", "--local", "25%",
		"--duration", "1s", "--rtt-samples", "50", "--fault-samples", "50", "--no-progress", "--json", out)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	if !strings.Contains(stdout, "dirty tracking") {
		t.Errorf("table has no dirty tracking line:\n%s", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res transparentResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	tr := res.Transparent
	if tr.FaultSamples == 0 || tr.FaultP50US <= 0 || tr.BareUffdP50US <= 0 || tr.RawRTTP50US <= 0 {
		t.Fatalf("reference measurements missing: %+v", tr)
	}
	if want := tr.FaultP50US / (tr.BareUffdP50US + tr.RawRTTP50US); math.Abs(tr.Ratio-want) > 1e-9*want {
		t.Errorf("ratio %v, want fault_p50/(bare+rtt) = %v", tr.Ratio, want)
	}
	if e := res.Errors; e.LostPages+e.ChecksumMismatches+e.Other != 0 {
		t.Errorf("errors: %+v", e)
	}
	dt := tr.DirtyTracking
	if dt == nil {
		t.Fatalf("no dirty_tracking block (error %q)", tr.DirtyTrackingError)
	}
	if dt.Pages != dirtyTrackingPages || dt.SyncWPStoreP50US <= 0 || dt.AsyncWPStoreP50US <= 0 || len(dt.Scan) == 0 {
		t.Errorf("dirty_tracking incomplete: %+v", dt)
	}
	for _, c := range dt.Scan {
		if c.PerCallP50US <= 0 || (c.WrittenPages > 0) != (c.PerWrittenPage > 0) {
			t.Errorf("scan row %+v", c)
		}
	}
}

// TestBenchTransparentPagerLost: when the pager serving the bench's mapping
// dies for good, bench does not hang in a page fault that nothing serves:
// after --pager-lost-timeout it exits non-zero with a line naming the pager.
func TestBenchTransparentPagerLost(t *testing.T) {
	if _, err := uffd.Probe(); err != nil {
		t.Skipf("userfaultfd not available: %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "pager.sock")
	pg := exec.Command(os.Args[0], "pager", "--socket", sock, "--local", "1MiB")
	pg.Env = append(os.Environ(), envRunMain+"=1")
	var pgOut bytes.Buffer
	pg.Stdout, pg.Stderr = &pgOut, &pgOut
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	pgDone := make(chan struct{})
	go func() { pg.Wait(); close(pgDone) }()
	defer func() { pg.Process.Kill(); <-pgDone }()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("pager did not listen; output:\n%s", pgOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	go func() {
		time.Sleep(1500 * time.Millisecond) // the workload is running
		pg.Process.Kill()
	}()
	code, stdout, stderr := runFarmem(t, "bench", "--mode", "transparent", "--socket", sock, "--size", "8MiB",
		"--duration", "60s", "--no-progress", "--pager-lost-timeout", "1s")
	if code == 0 || !strings.Contains(stderr, "pager on "+sock+" has been gone") {
		t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
}
