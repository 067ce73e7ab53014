package crashtest

import (
	"flag"
	"os"
	"strconv"
	"testing"
	"time"
)

var (
	seedFlag = flag.Uint64("crash.seed", 0, "seed for the crash tests (0: time-based; env FARMEM_CRASH_SEED also works)")
	longFlag = flag.Bool("long", false, "run the full crash enumeration (as `farmem pmem crashtest` does)")
)

func testSeed(t *testing.T) uint64 {
	s := *seedFlag
	if v := os.Getenv("FARMEM_CRASH_SEED"); s == 0 && v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FARMEM_CRASH_SEED=%q: %v", v, err)
		}
		s = n
	}
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash.seed=%d or FARMEM_CRASH_SEED=%d)", s, s, s)
	return s
}

// TestCrashWorkloads enumerates every fence boundary and a few hundred
// random unflushed subsets per workload (thousands with -long) and checks
// each recovered image; it fails on any violation.
func TestCrashWorkloads(t *testing.T) {
	cfg := Config{Seed: testSeed(t), Steps: 60, Random: 300, RecoveryCrashEvery: 25}
	if *longFlag {
		cfg = Config{Seed: cfg.Seed, Steps: 400, Random: 2000, RecoveryCrashEvery: 10}
	}
	for _, w := range Workloads() {
		t.Run(w, func(t *testing.T) {
			c := cfg
			c.Workloads = []string{w}
			rep, err := Run(c)
			if err != nil {
				t.Fatal(err)
			}
			r := rep.Workloads[0]
			t.Logf("%s: %d steps, %d fences, %d fence-boundary + %d random-subset + %d crash-in-recovery images, %d violations",
				w, r.Steps, r.Fences, r.FenceImages, r.RandomImages, r.RecoveryImages, r.Violations)
			if r.Fences < r.Steps/2 {
				t.Errorf("only %d fences for %d steps: the workload did not run", r.Fences, r.Steps)
			}
			if r.RandomImages < c.Random {
				t.Errorf("%d random images, want >= %d", r.RandomImages, c.Random)
			}
			if r.Violations != 0 {
				t.Errorf("%d violations, e.g. %v", r.Violations, r.Examples)
			}
		})
	}
}
