package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/crashtest"
	"github.com/farmem/farmem/pmem/journal"
	"github.com/farmem/farmem/pmem/pmembench"
)

func init() { register(newPmemCmd) }

func newPmemCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pmem",
		Short: "persistent-memory pools: create, check, recover, crash-test and benchmark (C6, C7)",
	}
	cmd.AddCommand(newPmemCreateCmd(), newPmemCheckCmd(), newPmemRecoverCmd(), newPmemCrashtestCmd(), newPmemBenchCmd())
	return cmd
}

// parseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024, optionally followed by "iB" or "B").
func parseSize(s string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := uint64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil || v == 0 || v > (1<<46)/mult {
		return 0, fmt.Errorf("invalid size %q (want e.g. 4096, 64M, 1G)", s)
	}
	return v * mult, nil
}

func parseInts(flag, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < lo || v > hi {
			return nil, fmt.Errorf("--%s: %q is not a list of integers in [%d, %d]", flag, s, lo, hi)
		}
		out = append(out, v)
	}
	return out, nil
}

// writeJSON writes v to the --json destination ("-" is stdout).
func writeJSON(dest string, v any) error { return writeJSONTo(dest, os.Stdout, v) }

// checkJSONDest fails early, before a long run, when the --json
// destination cannot be written: its directory is missing or it is a
// directory.
func checkJSONDest(dest string) error {
	if dest == "" || dest == "-" {
		return nil
	}
	if st, err := os.Stat(filepath.Dir(dest)); err != nil {
		return fmt.Errorf("--json: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("--json: %s is not a directory", filepath.Dir(dest))
	}
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		return fmt.Errorf("--json: %s is a directory", dest)
	}
	return nil
}

func newPmemCreateCmd() *cobra.Command {
	var size, layout, mode string
	var k, s uint32
	cmd := &cobra.Command{
		Use:   "create POOL",
		Short: "create and format a pool file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseSize(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			m, err := pmem.ParseMode(mode)
			if err != nil {
				return fmt.Errorf("--mode: %w", err)
			}
			p, err := pmem.Create(args[0], pmem.CreateOptions{Size: n, Layout: layout, Journals: k, JournalSize: s, Mode: m})
			if err != nil {
				return err
			}
			h := p.Header()
			fmt.Printf("created %s: %d bytes, layout %q, %d journals of %d bytes, heap %d bytes at %d, domain %s\n",
				args[0], h.Size, h.Layout, h.Journals, h.JournalSize, h.HeapUnits*pmem.Unit, h.HeapOff, p.DomainName())
			return p.Close()
		},
	}
	cmd.Flags().StringVar(&size, "size", "64M", "pool size (bytes, or with K/M/G suffix)")
	cmd.Flags().StringVar(&layout, "layout", "farmem", "layout id (checked when the pool is opened)")
	cmd.Flags().Uint32Var(&k, "journals", 64, "number of micro-journals K")
	cmd.Flags().Uint32Var(&s, "journal-size", 4096, "bytes per journal S (multiple of 64)")
	cmd.Flags().StringVar(&mode, "mode", "auto", "persistence domain: auto, msync or force-pmem")
	return cmd
}

func newPmemCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check POOL",
		Short: "verify a pool read-only: header, root slots, journals, allocation map",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Only a regular file: a device or a FIFO would be read for
			// ever (the whole pool is read into memory).
			if st, err := os.Stat(args[0]); err != nil {
				return err
			} else if !st.Mode().IsRegular() {
				return fmt.Errorf("%s: not a regular file (%v)", args[0], st.Mode().Type())
			}
			mem, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			h, err := pmem.DecodeHeader(mem)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Printf("header: ok, version %d, layout %q, %d bytes, %d journals of %d bytes, heap of %d units at %d\n",
				h.Version, h.Layout, h.Size, h.Journals, h.JournalSize, h.HeapUnits, h.HeapOff)
			p, err := pmem.OpenMem(mem, pmem.NewSim(nil), "")
			if err != nil {
				return err
			}
			if r, err := p.Root(); err != nil {
				fmt.Println("root: none")
			} else {
				fmt.Printf("root: %q at %d, %d bytes (slot seq %d)\n", r.Name, r.Off, r.Size, r.Seq)
			}
			w, infos, jerr := journal.Inspect(mem, h)
			counts := map[string]int{}
			for _, inf := range infos {
				counts[inf.Status]++
				if inf.Status != "free" && inf.Status != "unused" && inf.Status != "redo-applied" {
					fmt.Printf("journal %d: %s, id %d, %d entries%s\n", inf.Index, inf.Status, inf.Header.ID, inf.Entries, errSuffix(inf.Err))
				}
			}
			var parts []string
			for _, st := range []string{"unused", "free", "redo-applied", "redo-pending", "undo-active", "torn", "corrupt"} {
				if counts[st] > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
				}
			}
			fmt.Printf("journals: watermark %d; %s\n", w, strings.Join(parts, ", "))
			blocks, units, aerr := pmem.CheckAllocMap(mem[h.MapOff : h.MapOff+h.HeapUnits])
			if aerr == nil {
				fmt.Printf("allocator: %d blocks, %d of %d units in use\n", blocks, units, h.HeapUnits)
			}
			// One line per error, as every farmem error is: a pool can have
			// a corrupt journal and a corrupt allocation map at once.
			switch {
			case jerr != nil && aerr != nil:
				return fmt.Errorf("%s: %w; and %w", args[0], jerr, aerr)
			case jerr != nil:
				return fmt.Errorf("%s: %w", args[0], jerr)
			case aerr != nil:
				return fmt.Errorf("%s: %w", args[0], aerr)
			}
			if counts["redo-pending"]+counts["undo-active"]+counts["torn"] > 0 {
				fmt.Println("status: consistent, needs recovery (run `farmem pmem recover`)")
			} else {
				fmt.Println("status: clean")
			}
			return nil
		},
	}
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func newPmemRecoverCmd() *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "recover POOL",
		Short: "open a pool, run journal recovery and report what it did",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := pmem.ParseMode(mode)
			if err != nil {
				return fmt.Errorf("--mode: %w", err)
			}
			p, err := pmem.Open(args[0], pmem.OpenOptions{Mode: m})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			defer p.Close()
			j, rec, err := journal.Open(p, journal.Options{})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Printf("recovered %s: watermark was %d; replayed %d redo, rolled back %d undo, discarded %d torn, ignored %d applied; next commit id %d; %d fences\n",
				args[0], rec.Watermark, rec.Replayed, rec.RolledBack, rec.Torn, rec.Stale, rec.NextID, p.Stats().Fences)
			return j.Close()
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "msync", "persistence domain: auto, msync or force-pmem")
	return cmd
}

func newPmemCrashtestCmd() *cobra.Command {
	var jsonDest, workloads string
	var seed uint64
	var steps, random, recEvery int
	cmd := &cobra.Command{
		Use:   "crashtest",
		Short: "run the crash-simulation suite: every fence boundary plus random unflushed subsets, recovered and checked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if steps < 1 || random < 0 || recEvery < 0 {
				return fmt.Errorf("--steps must be >= 1, --random and --recovery-crash-every >= 0")
			}
			if err := checkJSONDest(jsonDest); err != nil {
				return err
			}
			if seed == 0 {
				seed = uint64(time.Now().UnixNano())
			}
			cfg := crashtest.Config{Seed: seed, Steps: steps, Random: random, RecoveryCrashEvery: recEvery}
			if workloads != "" {
				cfg.Workloads = strings.Split(workloads, ",")
			}
			log := os.Stdout
			if jsonDest == "-" {
				log = os.Stderr
			}
			fmt.Fprintf(log, "seed %d (rerun with --seed %d)\n", seed, seed)
			cfg.Progress = func(r crashtest.Result) {
				fmt.Fprintf(log, "%-21s %4d steps %5d fences: %5d fence-boundary + %5d random-subset + %5d crash-in-recovery images, %d violations (%.1fs)\n",
					r.Workload, r.Steps, r.Fences, r.FenceImages, r.RandomImages, r.RecoveryImages, r.Violations, r.Seconds)
				for _, e := range r.Examples {
					fmt.Fprintf(log, "  %s\n", e)
				}
			}
			rep, err := crashtest.Run(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(log, "total: %d workloads, %d images checked, %d violations\n", len(rep.Workloads), rep.ImagesChecked, rep.Violations)
			if jsonDest != "" {
				if err := writeJSON(jsonDest, rep); err != nil {
					return err
				}
			}
			if rep.Violations > 0 {
				return fmt.Errorf("pmem crashtest: %d violations (seed %d)", rep.Violations, seed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&jsonDest, "json", "", "also write the report as JSON to FILE (- for stdout)")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "random seed (0: from the clock; printed)")
	cmd.Flags().IntVar(&steps, "steps", 400, "transactions (or groups) per workload")
	cmd.Flags().IntVar(&random, "random", 2000, "minimum random unflushed-subset images per workload")
	cmd.Flags().IntVar(&recEvery, "recovery-crash-every", 10, "also crash the recovery of every Nth image at each of its fences (0: never)")
	cmd.Flags().StringVar(&workloads, "workload", "", "comma-separated workloads (default all: "+strings.Join(crashtest.Workloads(), ",")+")")
	return cmd
}

func newPmemBenchCmd() *cobra.Command {
	var jsonDest, path, mode, txMode, committers, values, coalescing, duration, maxWait string
	var keys, rounds, latencyEvery int
	var k, s uint32
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "KV-update transactions at 1..8 committers, with and without commit coalescing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := pmembench.Default(path)
			var err error
			if c.Mode, err = pmem.ParseMode(mode); err != nil {
				return fmt.Errorf("--mode: %w", err)
			}
			switch txMode {
			case "redo":
				c.TxMode = journal.Redo
			case "undo":
				c.TxMode = journal.Undo
			default:
				return fmt.Errorf("--tx: %q (want redo or undo)", txMode)
			}
			if c.Committers, err = parseInts("committers", committers, 1, 256); err != nil {
				return err
			}
			if c.ValueBytes, err = parseInts("value-bytes", values, 1, 1<<20); err != nil {
				return err
			}
			switch coalescing {
			case "both":
				c.Coalescing = []bool{false, true}
			case "on", "true":
				c.Coalescing = []bool{true}
			case "off", "false":
				c.Coalescing = []bool{false}
			default:
				return fmt.Errorf("--coalescing: %q (want both, on or off)", coalescing)
			}
			if c.Duration, err = time.ParseDuration(duration); err != nil || c.Duration <= 0 {
				return fmt.Errorf("--duration: %q is not a positive duration", duration)
			}
			if c.MaxWait, err = time.ParseDuration(maxWait); err != nil || c.MaxWait < 0 {
				return fmt.Errorf("--max-wait: %q is not a duration >= 0", maxWait)
			}
			if rounds < 0 {
				return fmt.Errorf("--rounds: %d is negative", rounds)
			}
			if keys < 1 {
				return fmt.Errorf("--keys: %d is not positive", keys)
			}
			if latencyEvery < 1 {
				return fmt.Errorf("--latency-every: %d is not positive", latencyEvery)
			}
			c.LatencyEvery = latencyEvery
			if k < 1 || k > 65536 {
				return fmt.Errorf("--journals: %d not in [1, 65536]", k)
			}
			c.KeysPerWorker, c.Journals, c.JournalSize, c.Rounds = keys, k, s, rounds
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("--pool %s exists; the benchmark creates (and removes) its own pool", path)
			}
			if err := checkJSONDest(jsonDest); err != nil {
				return err
			}
			log := os.Stdout
			if jsonDest == "-" {
				log = os.Stderr
			}
			fmt.Fprintf(log, "%10s %10s %11s %12s %13s %8s %8s\n", "committers", "coalescing", "value_bytes", "tx_per_sec", "fences_per_tx", "p50_us", "p99_us")
			c.Progress = func(r pmembench.Row) {
				fmt.Fprintf(log, "%10d %10v %11d %12.0f %13.3f %8.2f %8.2f\n", r.Committers, r.Coalescing, r.ValueBytes, r.TxPerSec, r.FencesPerTx, r.P50us, r.P99us)
			}
			rows, err := pmembench.Run(c)
			if err != nil {
				return err
			}
			if len(rows) > 0 {
				fmt.Fprintf(log, "domain %s, %s transactions, %s per row\n", rows[0].Domain, rows[0].TxMode, c.Duration)
			}
			if jsonDest != "" {
				return writeJSON(jsonDest, map[string]any{"pmem": rows})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&jsonDest, "json", "", "also write {\"pmem\": [rows]} as JSON to FILE (- for stdout)")
	cmd.Flags().StringVar(&path, "pool", fmt.Sprintf("/dev/shm/farmem-pmem-bench-%d", os.Getpid()), "pool file to create for the run (removed afterwards)")
	cmd.Flags().StringVar(&mode, "mode", "force-pmem", "persistence domain: force-pmem (CLWB+SFENCE, like PMEM_IS_PMEM_FORCE=1), msync or auto")
	cmd.Flags().StringVar(&txMode, "tx", "redo", "transaction mode: redo or undo")
	cmd.Flags().StringVar(&committers, "committers", "1,2,4,8", "comma-separated committer counts")
	cmd.Flags().StringVar(&values, "value-bytes", "64,256,1024", "comma-separated value sizes in bytes")
	cmd.Flags().StringVar(&coalescing, "coalescing", "both", "commit coalescing: both, on or off")
	cmd.Flags().StringVar(&duration, "duration", "1s", "measuring time per row")
	cmd.Flags().StringVar(&maxWait, "max-wait", "0s", "longest time a group leader waits for more committers")
	cmd.Flags().IntVar(&keys, "keys", 1024, "value slots per committer")
	cmd.Flags().IntVar(&rounds, "rounds", 0, "coalesced persist rounds in flight at once (0: the journal default)")
	cmd.Flags().IntVar(&latencyEvery, "latency-every", 1, "time one transaction in N, chosen at random (1: every one; the clock reads cost ~65 ns per timed transaction on this guest)")
	cmd.Flags().Uint32Var(&k, "journals", 1024, "journals K in the benchmark pool (PMDK pools have 1024 lanes)")
	cmd.Flags().Uint32Var(&s, "journal-size", 4096, "journal size S in bytes")
	return cmd
}
