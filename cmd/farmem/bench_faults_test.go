package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchFaultsBadInput: the C1 flags refuse bad input with one line that
// names the flag.
func TestBenchFaultsBadInput(t *testing.T) {
	dir := t.TempDir()
	notBackup := filepath.Join(dir, "precious")
	if err := os.WriteFile(notBackup, []byte("not a backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	quick := []string{"--duration", "1s", "--size", "4MiB", "--rtt-samples", "10", "--no-progress"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"spec does not parse", append([]string{"bench", "--faults", "blackhole@"}, quick...), "--faults"},
		{"unknown fault", append([]string{"bench", "--faults", "flood@1s"}, quick...), "--faults"},
		{"kill without the embedded memnode", append([]string{"bench", "--nodes", "127.0.0.1:1", "--faults", "kill@1s"}, quick...), "kill"},
		{"backup over another file", append([]string{"bench", "--backup", notBackup}, quick...), "--backup"},
		{"negative deadline", append([]string{"bench", "--deadline", "-1ms"}, quick...), "--deadline"},
		{"faults in transparent mode", append([]string{"bench", "--mode", "transparent", "--faults", "reset@1s"}, quick...), "--faults"},
		{"negative spin-read", append([]string{"bench", "--spin-read", "-1us"}, quick...), "--spin-read"},
		{"spin-read in transparent mode", append([]string{"bench", "--mode", "transparent", "--spin-read", "0"}, quick...), "--spin-read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runFarmem(t, tc.args...)
			line := strings.TrimSuffix(stderr, "\n")
			if code == 0 || line == "" || strings.Contains(line, "\n") || !strings.Contains(line, tc.want) {
				t.Fatalf("exit %d, stderr %q: want one line naming %q", code, stderr, tc.want)
			}
		})
	}
	if b, err := os.ReadFile(notBackup); err != nil || string(b) != "not a backup" {
		t.Fatalf("the refused --backup file was touched: %q, %v", b, err)
	}
}

// TestBenchFaults runs a short bench with one fault of every kind against
// the embedded memnode and checks the C1 fields of its JSON: the faults were
// injected, the backup served reads, nothing was lost.
func TestBenchFaults(t *testing.T) {
	dir := t.TempDir()
	backup := filepath.Join(dir, "backup")
	spec := "blackhole@200ms+300ms,reset@700ms,kill@900ms+300ms,cut@1400ms+200ms,delay@1700ms+200ms:5ms"
	code, stdout, stderr := runFarmem(t, "bench", "--size", "8MiB", "--duration", "2500ms", "--rtt-samples", "10",
		"--no-progress", "--backup", backup, "--faults", spec, "--json", filepath.Join(dir, "out.json"))
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	for _, want := range []string{"failover ", "during faults µs", "faults injected"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table has no %q line:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res BenchResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Failover == nil || res.FaultLatencyDuringUS == nil || res.Resilience == nil {
		t.Fatalf("C1 fields missing: %s", b)
	}
	for _, k := range []string{"blackhole", "delay", "reset", "cut", "kill"} {
		if res.Resilience.FaultsInjected[k] != 1 {
			t.Errorf("%s injected %d times, want 1", k, res.Resilience.FaultsInjected[k])
		}
	}
	if res.Failover.BackupReads == 0 || res.FaultLatencyDuringUS.Count == 0 {
		t.Errorf("the faults were not felt: %+v, %+v", res.Failover, res.FaultLatencyDuringUS)
	}
	if e := res.Errors; e.LostPages+e.ChecksumMismatches+e.Other != 0 {
		t.Errorf("errors: %+v", e)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal(b, &raw)
	var fo map[string]json.RawMessage
	json.Unmarshal(raw["failover"], &fo)
	for _, k := range []string{"count", "backup_reads", "outage_pages", "resynced_pages"} {
		if _, ok := fo[k]; !ok {
			t.Errorf("failover has no %q", k)
		}
	}
	var during map[string]json.RawMessage
	json.Unmarshal(raw["fault_latency_us_during_faults"], &during)
	for _, k := range []string{"p50", "p99", "max"} {
		if _, ok := during[k]; !ok {
			t.Errorf("fault_latency_us_during_faults has no %q", k)
		}
	}
	if _, err := os.Stat(backup); err != nil {
		t.Errorf("the named backup is gone: %v", err)
	}
}
