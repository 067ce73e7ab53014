// Command swapwork runs one of farmem's workloads (package workload) on
// plain anonymous memory, for the Linux swap peer of transparent mode
// (bench/peers/swap/run.sh): run inside a memory-limited cgroup with swap
// available, the kernel pages the region out and in. It prints one JSON
// object: {"workload", "size_bytes", "ops", "ops_per_sec", "setup_s",
// "mismatches", "lost"}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/farmem/farmem/internal/size"
	"github.com/farmem/farmem/workload"
)

func main() {
	name := flag.String("workload", "zipf", "workload name")
	sz := flag.String("size", "256MiB", "region size")
	dur := flag.Duration("duration", 10*time.Second, "measured phase")
	seed := flag.Uint64("seed", 1, "seed")
	pattern := flag.String("pattern", "", "workload pattern")
	mix := flag.String("mix", "", "read:write mix")
	flag.Parse()
	if err := run(*name, *sz, *dur, *seed, *pattern, *mix); err != nil {
		fmt.Fprintln(os.Stderr, "swapwork:", err)
		os.Exit(1)
	}
}

func run(name, sz string, dur time.Duration, seed uint64, pattern, mix string) error {
	n, err := size.Parse(sz)
	if err != nil {
		return err
	}
	ps := os.Getpagesize()
	regionSize := int64(n) / int64(ps) * int64(ps)
	w, err := workload.New(workload.Config{Name: name, Size: regionSize, PageSize: ps, Pattern: pattern, Seed: seed, Mix: mix})
	if err != nil {
		return err
	}
	defer w.Close()
	mem := workload.SliceMemory(make([]byte, regionSize))
	ctx := context.Background()
	t0 := time.Now()
	if err := w.Setup(ctx, mem); err != nil {
		return err
	}
	setup := time.Since(t0)
	res, err := workload.Run(ctx, w, mem, workload.RunOptions{Duration: dur, MaxErrors: 1000})
	if err != nil {
		return err
	}
	vs, err := w.Verify(ctx, mem)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"workload": name, "size_bytes": regionSize, "ops": res.Stats.Ops,
		"ops_per_sec": float64(res.Stats.Ops) / res.Elapsed.Seconds(), "setup_s": setup.Seconds(),
		"mismatches": res.Stats.Mismatches + vs.Mismatches, "lost": res.Stats.Lost + vs.Lost,
	})
}
