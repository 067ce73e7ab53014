package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/journal"
	"github.com/farmem/farmem/pmem/pmembench"
)

// noRaceExitSleep keeps the race runtime of the subprocesses (under go test
// -race) from sleeping 1 s in every successful exit (GORACE atexit_sleep_ms,
// default 1000); races are still reported. GORACE options already set are
// kept.
func noRaceExitSleep(t *testing.T) {
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// mustSucceed fails the test unless the run exited 0 with nothing on stderr.
func mustSucceed(t *testing.T, args []string, code int, stdout, stderr string) {
	t.Helper()
	if code != 0 || stderr != "" {
		t.Fatalf("farmem %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
}

// TestPmemCreateCheck creates a pool with a non-default geometry, checks that
// `pmem check` reports that geometry and a clean pool, and then that damaged
// copies of it (header, journal area, allocation map, truncation) and a
// missing file are refused with one line that names the problem.
func TestPmemCreateCheck(t *testing.T) {
	noRaceExitSleep(t)
	dir := t.TempDir()
	pool := filepath.Join(dir, "pool")
	const (
		size     = 8 << 20
		layout   = "clitest"
		journals = 16
		jsize    = 1024
	)
	args := []string{"pmem", "create", pool, "--size", "8M", "--journals", "16", "--journal-size", "1024", "--layout", layout, "--mode", "msync"}
	code, stdout, stderr := runFarmem(t, args...)
	mustSucceed(t, args, code, stdout, stderr)
	for _, want := range []string{pool, "8388608 bytes", `"clitest"`, "16 journals of 1024 bytes", "msync"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("create output does not report %q:\n%s", want, stdout)
		}
	}
	if fi, err := os.Stat(pool); err != nil || fi.Size() != size {
		t.Fatalf("pool file after create: %v, %v; want %d bytes", fi, err, size)
	}
	geo, err := pmem.Geometry(size, layout, journals, jsize)
	if err != nil {
		t.Fatal(err)
	}

	args = []string{"pmem", "check", pool}
	code, stdout, stderr = runFarmem(t, args...)
	mustSucceed(t, args, code, stdout, stderr)
	for _, want := range []string{
		"header: ok",
		`"clitest"`,
		"8388608 bytes",
		"16 journals of 1024 bytes",
		fmt.Sprintf("heap of %d units at %d", geo.HeapUnits, geo.HeapOff),
		"16 unused", // a fresh pool: every journal all-zero
		fmt.Sprintf("0 of %d units in use", geo.HeapUnits),
		"root: none",
		"status: clean",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check output does not report %q:\n%s", want, stdout)
		}
	}

	orig, err := os.ReadFile(pool)
	if err != nil {
		t.Fatal(err)
	}
	// damaged writes a copy of the pool changed by damage and returns its path.
	damaged := func(t *testing.T, damage func(b []byte) []byte) string {
		b := damage(slices.Clone(orig))
		p := filepath.Join(t.TempDir(), "damaged")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte // nil: the file does not exist
		want   []string
	}{
		{"bad magic", func(b []byte) []byte { copy(b, "NOTAPOOL"); return b },
			[]string{pmem.ErrBadMagic.Error()}},
		{"header checksum", func(b []byte) []byte { copy(b[16:], "xxxx"); return b }, // in the layout id
			[]string{pmem.ErrHeaderChecksum.Error()}},
		{"truncated", func(b []byte) []byte { return b[:100000] },
			[]string{pmem.ErrBadGeometry.Error(), "100000"}},
		{"shorter than the header page", func(b []byte) []byte { return b[:1000] },
			[]string{pmem.ErrBadGeometry.Error(), "1000"}},
		{"corrupt journal header", func(b []byte) []byte { copy(b[geo.JournalOff:], "garbage-garbage"); return b },
			[]string{journal.ErrJournalCorrupt.Error(), "journal 0"}},
		{"corrupt allocation map", func(b []byte) []byte { b[geo.MapOff] = 7; return b },
			[]string{pmem.ErrBadAllocMap.Error()}},
		{"corrupt journal and allocation map", func(b []byte) []byte {
			copy(b[geo.JournalOff:], "garbage-garbage")
			b[geo.MapOff] = 7
			return b
		}, []string{journal.ErrJournalCorrupt.Error(), pmem.ErrBadAllocMap.Error()}},
		{"missing file", nil, []string{"no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "absent")
			if tc.damage != nil {
				p = damaged(t, tc.damage)
			}
			code, stdout, stderr := runFarmem(t, "pmem", "check", p)
			t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
			wantErrorLine(t, code, stderr, append([]string{p}, tc.want...)...)
			if strings.Contains(stdout, "status: clean") {
				t.Errorf("a damaged pool was reported clean:\n%s", stdout)
			}
		})
	}
}

// TestPmemCrashtestJSON runs a short crash-simulation suite and checks the
// JSON report that --json writes: every workload ran with the given seed and
// steps, every image was counted, and no image violated an invariant.
func TestPmemCrashtestJSON(t *testing.T) {
	noRaceExitSleep(t)
	out := filepath.Join(t.TempDir(), "crash.json")
	args := []string{"pmem", "crashtest", "--seed", "7", "--steps", "20", "--random", "30", "--json", out}
	code, stdout, stderr := runFarmem(t, args...)
	mustSucceed(t, args, code, stdout, stderr)
	if !strings.Contains(stdout, "seed 7") {
		t.Errorf("the human report (stdout with --json FILE) does not print the seed:\n%s", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Seed      *uint64 `json:"seed"`
		Workloads []struct {
			Workload       string `json:"workload"`
			Steps          int    `json:"steps"`
			Fences         int    `json:"fences"`
			FenceImages    int    `json:"fence_images"`
			RandomImages   int    `json:"random_images"`
			RecoveryImages int    `json:"recovery_images"`
			ImagesChecked  int    `json:"images_checked"`
			Violations     *int   `json:"violations"`
		} `json:"workloads"`
		ImagesChecked int  `json:"images_checked"`
		Violations    *int `json:"violations"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s is not the documented JSON: %v\n%s", out, err, b)
	}
	if rep.Seed == nil || *rep.Seed != 7 {
		t.Errorf("seed = %v, want 7", rep.Seed)
	}
	if rep.Violations == nil || *rep.Violations != 0 {
		t.Errorf("violations = %v, want 0", rep.Violations)
	}
	if rep.ImagesChecked <= 0 {
		t.Errorf("images_checked = %d, want > 0", rep.ImagesChecked)
	}
	var names []string
	sum := 0
	for _, w := range rep.Workloads {
		names = append(names, w.Workload)
		sum += w.ImagesChecked
		if w.Steps != 20 {
			t.Errorf("%s: steps = %d, want 20 (--steps)", w.Workload, w.Steps)
		}
		if w.Violations == nil || *w.Violations != 0 {
			t.Errorf("%s: violations = %v, want 0", w.Workload, w.Violations)
		}
		if w.Fences <= 0 || w.FenceImages <= 0 {
			t.Errorf("%s: %d fences, %d fence images; want both > 0", w.Workload, w.Fences, w.FenceImages)
		}
		// fences comes from the counting run and fence_images from the
		// checking run: one image per fence boundary plus the final one.
		// The suite chooses its commit shards from the seed, so both runs
		// fence alike (they did not while the shard followed the
		// processor: 1 run in ~30 differed).
		if w.FenceImages != w.Fences+1 {
			t.Errorf("%s: %d fences but %d fence-boundary images, want fences+1", w.Workload, w.Fences, w.FenceImages)
		}
		if w.RandomImages < 30 {
			t.Errorf("%s: random_images = %d, want >= 30 (--random)", w.Workload, w.RandomImages)
		}
		if got := w.FenceImages + w.RandomImages + w.RecoveryImages; w.ImagesChecked != got {
			t.Errorf("%s: images_checked = %d, want fence + random + recovery images = %d", w.Workload, w.ImagesChecked, got)
		}
	}
	if want := []string{"bank", "hashmap", "alloc-churn", "bank-coalesced", "hashmap-coalesced", "alloc-churn-coalesced"}; !slices.Equal(names, want) {
		t.Errorf("workloads = %q, want %q", names, want)
	}
	if sum != rep.ImagesChecked {
		t.Errorf("images_checked = %d, but the workloads sum to %d", rep.ImagesChecked, sum)
	}
}

// TestPmemBenchJSON runs the KV benchmark for 2 committer counts with and
// without coalescing through msync (any file system) and checks the rows of
// the JSON on stdout, and that the benchmark removes its pool.
func TestPmemBenchJSON(t *testing.T) {
	noRaceExitSleep(t)
	pool := filepath.Join(t.TempDir(), "bench.pool")
	args := []string{"pmem", "bench", "--mode", "msync", "--committers", "1,2", "--value-bytes", "64", "--coalescing", "both",
		"--duration", "30ms", "--keys", "16", "--journals", "16", "--pool", pool, "--json", "-"}
	code, stdout, stderr := runFarmem(t, args...)
	if code != 0 {
		t.Fatalf("farmem %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	// With --json - the human table goes to stderr, so stdout is JSON only.
	var out struct {
		Pmem []pmembench.Row `json:"pmem"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("stdout is not {\"pmem\": [rows]}: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Errorf("stdout has more than one JSON value:\n%s", stdout)
	}
	// The JSON names the docs promise, independent of the Row struct tags.
	var raw map[string][]map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	for _, r := range raw["pmem"] {
		for _, k := range []string{"committers", "coalescing", "value_bytes", "tx_per_sec", "fences_per_tx", "p50_us", "p99_us", "txs", "tx_mode", "domain", "latency_every", "timed_txs"} {
			if _, ok := r[k]; !ok {
				t.Errorf("row %v has no %q", r, k)
			}
		}
	}
	type config struct {
		committers int
		coalescing bool
	}
	seen := map[config]int{}
	for _, r := range out.Pmem {
		seen[config{r.Committers, r.Coalescing}]++
		if r.ValueBytes != 64 {
			t.Errorf("row %+v: value_bytes %d, want 64", r, r.ValueBytes)
		}
		if r.Txs == 0 || r.TxPerSec <= 0 {
			t.Errorf("row %+v: no transactions measured", r)
		}
		if r.FencesPerTx <= 0 {
			t.Errorf("row %+v: fences_per_tx %v, want > 0", r, r.FencesPerTx)
		}
		if !r.Coalescing && r.FencesPerTx < 1 {
			t.Errorf("row %+v: uncoalesced commits need at least one fence each, got fences_per_tx %v", r, r.FencesPerTx)
		}
		if r.P50us <= 0 || r.P50us > r.P99us {
			t.Errorf("row %+v: want 0 < p50_us <= p99_us", r)
		}
		if r.Domain != "msync" || r.TxMode != "redo" {
			t.Errorf("row %+v: domain %q, tx_mode %q; want msync and redo", r, r.Domain, r.TxMode)
		}
	}
	for _, n := range []int{1, 2} {
		for _, co := range []bool{false, true} {
			if seen[config{n, co}] != 1 {
				t.Errorf("%d rows for %d committers, coalescing %v; want 1", seen[config{n, co}], n, co)
			}
		}
	}
	if len(out.Pmem) != 4 {
		t.Errorf("%d rows, want 4 (committers 1,2 x coalescing off,on)", len(out.Pmem))
	}
	if !strings.Contains(stderr, "domain msync") {
		t.Errorf("the human report (stderr with --json -) does not name the domain:\n%s", stderr)
	}
	if _, err := os.Stat(pool); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the --pool file %s was not removed: stat error %v", pool, err)
	}
}

// TestPmemBadInput: the pmem commands refuse bad flags and files with one
// line that names the flag or the problem, a non-zero exit, never a panic.
func TestPmemBadInput(t *testing.T) {
	noRaceExitSleep(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("not a pool"), 0o600); err != nil {
		t.Fatal(err)
	}
	absentDir := filepath.Join(dir, "no-such-dir")
	// bench runs a quick, file-system independent benchmark in dir if the
	// flags it is given are (wrongly) accepted.
	bench := func(flags ...string) []string {
		return append([]string{"pmem", "bench", "--mode", "msync", "--duration", "10ms", "--keys", "16", "--journals", "16",
			"--value-bytes", "64", "--committers", "1", "--pool", filepath.Join(dir, "bench.pool")}, flags...)
	}
	// crashtest runs a tiny suite if the flags it is given are accepted.
	crashtest := func(flags ...string) []string {
		return append([]string{"pmem", "crashtest", "--seed", "1", "--steps", "3", "--random", "3"}, flags...)
	}
	create := func(path string, flags ...string) []string {
		return append([]string{"pmem", "create", path, "--mode", "msync"}, flags...)
	}
	newPool := func(name string) string { return filepath.Join(dir, name) }
	longLayout := strings.Repeat("l", pmem.LayoutMax+1)

	for _, tc := range []struct {
		name string
		args []string
		want []string // all in the error line, case-insensitive
	}{
		// bench
		{"bench committers zero", bench("--committers", "0"), []string{"--committers", `"0"`}},
		{"bench committers not a number", bench("--committers", "x"), []string{"--committers", `"x"`}},
		{"bench committers empty", bench("--committers", ""), []string{"--committers", `""`}},
		{"bench committers empty item", bench("--committers", "1,,2"), []string{"--committers", `"1,,2"`}},
		{"bench committers too many", bench("--committers", "257"), []string{"--committers", `"257"`}},
		{"bench value-bytes zero", bench("--value-bytes", "0"), []string{"--value-bytes", `"0"`}},
		{"bench value-bytes not a number", bench("--value-bytes", "abc"), []string{"--value-bytes", `"abc"`}},
		{"bench value larger than a journal", bench("--value-bytes", "100000"), []string{pmembench.ErrBadConfig.Error(), "100000"}},
		{"bench bad coalescing", bench("--coalescing", "maybe"), []string{"--coalescing", `"maybe"`}},
		{"bench bad mode", bench("--mode", "nope"), []string{"--mode", `"nope"`}},
		{"bench bad tx", bench("--tx", "nope"), []string{"--tx", `"nope"`}},
		{"bench negative rounds", bench("--rounds", "-1"), []string{"--rounds", "-1"}},
		{"bench duration does not parse", bench("--duration", "nope"), []string{"--duration", `"nope"`}},
		{"bench zero duration", bench("--duration", "0"), []string{"--duration", `"0"`}},
		{"bench negative duration", bench("--duration", "-1s"), []string{"--duration", `"-1s"`}},
		{"bench negative max-wait", bench("--max-wait", "-1ms"), []string{"--max-wait", `"-1ms"`}},
		{"bench zero keys", bench("--keys", "0"), []string{"--keys", "0"}},
		{"bench zero latency-every", bench("--latency-every", "0"), []string{"--latency-every", "0"}},
		{"bench zero journals", bench("--journals", "0"), []string{"--journals", "0"}},
		{"bench pool exists", bench("--pool", existing), []string{"--pool", existing, "exists"}},
		{"bench json in a missing directory", bench("--json", filepath.Join(absentDir, "b.json")), []string{"--json", absentDir}},
		{"bench pool in a missing directory", bench("--pool", filepath.Join(absentDir, "p")), []string{absentDir}},
		{"bench positional argument", bench("extra"), []string{"unknown command", "extra"}},

		// crashtest
		{"crashtest unknown workload", crashtest("--workload", "nope"), []string{"unknown workload", `"nope"`}},
		{"crashtest empty workload in list", crashtest("--workload", "bank,"), []string{"unknown workload", `""`}},
		{"crashtest zero steps", crashtest("--steps", "0"), []string{"--steps"}},
		{"crashtest negative random", crashtest("--random", "-1"), []string{"--random"}},
		{"crashtest negative recovery-crash-every", crashtest("--recovery-crash-every", "-1"), []string{"--recovery-crash-every"}},
		{"crashtest seed does not parse", crashtest("--seed", "x"), []string{"--seed"}},
		{"crashtest json in a missing directory", crashtest("--json", filepath.Join(absentDir, "c.json")), []string{"--json", absentDir}},
		{"crashtest json is a directory", crashtest("--json", dir), []string{"--json", dir, "is a directory"}},

		// create
		{"create size does not parse", create(newPool("c1"), "--size", "12XB"), []string{"--size", `"12XB"`}},
		{"create zero size", create(newPool("c2"), "--size", "0"), []string{"--size", `"0"`}},
		{"create size too small", create(newPool("c3"), "--size", "4K"), []string{pmem.ErrBadOptions.Error(), "too small"}},
		{"create zero journals", create(newPool("c4"), "--journals", "0"), []string{pmem.ErrBadOptions.Error(), "journal count 0"}},
		{"create negative journals", create(newPool("c5"), "--journals", "-1"), []string{"--journals"}},
		{"create bad journal size", create(newPool("c6"), "--journal-size", "100"), []string{pmem.ErrBadOptions.Error(), "journal size 100"}},
		{"create layout too long", create(newPool("c7"), "--layout", longLayout), []string{pmem.ErrBadOptions.Error(), "layout"}},
		{"create bad mode", create(newPool("c8"), "--mode", "nope"), []string{"--mode", `"nope"`}},
		{"create on an existing file", create(existing), []string{pmem.ErrExists.Error(), existing}},
		{"create in a missing directory", create(filepath.Join(absentDir, "p")), []string{absentDir}},
		{"create without a pool", []string{"pmem", "create"}, []string{"accepts 1 arg"}},

		// check and recover
		{"check a directory", []string{"pmem", "check", dir}, []string{dir, "not a regular file"}},
		{"check a device", []string{"pmem", "check", os.DevNull}, []string{os.DevNull, "not a regular file"}},
		{"check a file that is not a pool", []string{"pmem", "check", existing}, []string{existing, pmem.ErrBadMagic.Error()}},
		{"check without a pool", []string{"pmem", "check"}, []string{"accepts 1 arg"}},
		{"recover a missing file", []string{"pmem", "recover", newPool("absent")}, []string{newPool("absent"), "no such file"}},
		{"recover bad mode", []string{"pmem", "recover", existing, "--mode", "nope"}, []string{"--mode", `"nope"`}},
		{"recover a file that is not a pool", []string{"pmem", "recover", existing}, []string{existing, pmem.ErrBadGeometry.Error()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runFarmem(t, tc.args...)
			t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
			wantErrorLine(t, code, stderr, tc.want...)
		})
	}

	// Nothing refused may have left a pool behind, nor touched the existing file.
	if b, err := os.ReadFile(existing); err != nil || string(b) != "not a pool" {
		t.Errorf("the existing file was changed: %q, %v", b, err)
	}
	for _, name := range []string{"bench.pool", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"} {
		if _, err := os.Stat(newPool(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused command left %s behind (stat: %v)", name, err)
		}
	}
}
