package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/farmem/farmem/internal/cpuqos"
)

// TestBenchPMQoS runs a short explicit bench with --pm-qos and --spin-read 0
// and checks that the JSON config says so, that the run is healthy, and
// that the request is dropped when the bench exits.
func TestBenchPMQoS(t *testing.T) {
	before, err := cpuqos.Current()
	if errors.Is(err, cpuqos.ErrUnavailable) {
		t.Skipf("no PM QoS here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.json")
	code, stdout, stderr := runFarmem(t, "bench", "--size", "4MiB", "--duration", "1s", "--rtt-samples", "10",
		"--no-progress", "--backup", "none", "--pm-qos", "--spin-read", "0", "--json", out)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res BenchResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Config.PMQoS || res.Config.SpinReadUS != 0 {
		t.Errorf("config pm_qos %v spin_read_us %v, want true and 0", res.Config.PMQoS, res.Config.SpinReadUS)
	}
	if e := res.Errors; e.LostPages+e.ChecksumMismatches+e.Other != 0 || res.Ops == 0 {
		t.Errorf("ops %d, errors %+v", res.Ops, e)
	}
	after, err := cpuqos.Current()
	if err != nil {
		t.Fatal(err)
	}
	if before > 0 && after == 0 && before != after {
		t.Errorf("the request outlived the bench: enforced %v (before %v)", after, before)
	}
}
