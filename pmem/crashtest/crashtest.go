package crashtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/journal"
)

// ErrViolation is wrapped by every invariant violation a check finds.
var ErrViolation = errors.New("crashtest: invariant violated")

// Layout is the layout id of the pools the crash tests build.
const Layout = "farmem-crashtest"

// Config sizes a crash-test run.
type Config struct {
	Seed uint64 // seed of every random choice; the same seed replays exactly
	// Steps is the number of workload steps (transactions or groups).
	Steps int
	// Random is the minimum number of random unflushed-subset images per
	// workload; they are spread evenly over the fences.
	Random int
	// RecoveryCrashEvery, if > 0, also crashes the recovery of every Nth
	// image at each of its fences and recovers again (crash during recovery).
	RecoveryCrashEvery int
	// Workloads selects workloads by name; empty means all.
	Workloads []string
	// Progress, if set, is called after each workload.
	Progress func(Result)
}

// Result is the outcome of one workload.
type Result struct {
	Workload       string   `json:"workload"`
	Steps          int      `json:"steps"`
	Fences         int      `json:"fences"`
	FenceImages    int      `json:"fence_images"`
	RandomImages   int      `json:"random_images"`
	RecoveryImages int      `json:"recovery_images"`
	ImagesChecked  int      `json:"images_checked"`
	Violations     int      `json:"violations"`
	Examples       []string `json:"examples,omitempty"`
	Seconds        float64  `json:"seconds"`
}

// Report is the outcome of a run; its JSON form is what `farmem pmem
// crashtest --json` prints.
type Report struct {
	Seed          uint64   `json:"seed"`
	Workloads     []Result `json:"workloads"`
	ImagesChecked int      `json:"images_checked"`
	Violations    int      `json:"violations"`
}

// Geometry of the simulated pools: small, so that every image is cheap.
const (
	poolSize    = 160 << 10
	journals    = 8
	journalSize = 2048
)

// model is one workload: it builds its state in setup, advances in step,
// and at any crash point returns a checker for a recovered pool that knows
// which transactions were acknowledged and which were in flight.
type model interface {
	setup(j *journal.Journals, rng *rand.Rand) error
	step(j *journal.Journals, rng *rand.Rand) error
	checker() func(j *journal.Journals) error
}

// workload is a model run through one of the two redo commit paths.
type workload struct {
	name string
	new  func() model
	// coalesce opens the journals with commit coalescing, so that each
	// commit goes through the group-commit path (a round of its own when
	// alone on its shard, the pending stack and a leader otherwise)
	// rather than its own persist round.
	coalesce bool
}

// workloads are the three models, each through both commit paths.
var workloads = []workload{
	{"bank", func() model { return &bank{} }, false},
	{"hashmap", func() model { return &hashmap{} }, false},
	{"alloc-churn", func() model { return &churn{} }, false},
	{"bank-coalesced", func() model { return &bank{} }, true},
	{"hashmap-coalesced", func() model { return &hashmap{} }, true},
	{"alloc-churn-coalesced", func() model { return &churn{} }, true},
}

// Workloads returns the names of all workloads.
func Workloads() []string {
	var out []string
	for _, w := range workloads {
		out = append(out, w.name)
	}
	return out
}

// Run runs the selected workloads under the crash simulator and checks every
// image. It returns an error only for a failure of the harness itself, not
// for violations, which are counted in the report.
func Run(cfg Config) (Report, error) {
	rep := Report{Seed: cfg.Seed}
	sel := map[string]bool{}
	for _, n := range cfg.Workloads {
		sel[n] = true
	}
	for _, n := range cfg.Workloads {
		found := false
		for _, w := range workloads {
			found = found || w.name == n
		}
		if !found {
			return rep, fmt.Errorf("crashtest: unknown workload %q (have %v)", n, Workloads())
		}
	}
	for i, w := range workloads {
		if len(sel) > 0 && !sel[w.name] {
			continue
		}
		r, err := runWorkload(w, cfg, cfg.Seed+uint64(i)*0x9e3779b97f4a7c15)
		if err != nil {
			return rep, fmt.Errorf("crashtest: %s: %w", w.name, err)
		}
		rep.Workloads = append(rep.Workloads, r)
		rep.ImagesChecked += r.ImagesChecked
		rep.Violations += r.Violations
		if cfg.Progress != nil {
			cfg.Progress(r)
		}
	}
	return rep, nil
}

// newSimPool formats a fresh simulated pool and opens its journals: two
// commit shards, each transaction's shard (at Begin and again at Commit)
// chosen by a generator seeded with seed, so that the suite exercises
// transactions that change shards, rounds that pop only their own shard
// and watermark advances that pop every shard, and a seed replays the same
// fences whatever processors the goroutine runs on. With coalesce the
// journals commit through the group-commit path.
func newSimPool(seed uint64, coalesce bool) (*pmem.Sim, *journal.Journals, error) {
	mem := make([]byte, poolSize)
	if _, err := pmem.Format(mem, Layout, journals, journalSize); err != nil {
		return nil, nil, err
	}
	sim := pmem.NewSim(mem)
	p, err := pmem.OpenMem(mem, sim, Layout)
	if err != nil {
		return nil, nil, err
	}
	shardRng := rand.New(rand.NewPCG(seed, 3))
	j, _, err := journal.Open(p, journal.Options{Shards: 2, ShardOf: func() int { return shardRng.IntN(2) }, Coalesce: coalesce})
	return sim, j, err
}

// execute runs setup and the steps of a fresh model of w; hook (if not nil) is
// installed after setup. It returns the number of fences after setup.
func execute(w workload, cfg Config, seed uint64, hook func(sim *pmem.Sim, m model, k int)) (int, error) {
	sim, j, err := newSimPool(seed, w.coalesce)
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	m := w.new()
	if err := m.setup(j, rng); err != nil {
		return 0, fmt.Errorf("setup: %w", err)
	}
	if err := j.Sync(); err != nil {
		return 0, err
	}
	base := sim.Fences()
	if hook != nil {
		sim.SetFenceHook(func(k int) { hook(sim, m, k-base) })
	}
	for i := 0; i < cfg.Steps; i++ {
		if err := m.step(j, rng); err != nil {
			return 0, fmt.Errorf("step %d: %w", i, err)
		}
	}
	if hook != nil {
		sim.SetFenceHook(nil)
		hook(sim, m, -1)
	}
	return sim.Fences() - base, nil
}

func runWorkload(w workload, cfg Config, seed uint64) (Result, error) {
	start := time.Now()
	res := Result{Workload: w.name, Steps: cfg.Steps}
	fences, err := execute(w, cfg, seed, nil)
	if err != nil {
		return res, err
	}
	res.Fences = fences
	perFence := 0
	if cfg.Random > 0 && fences > 0 {
		perFence = (cfg.Random + fences - 1) / fences
	}
	crashRng := rand.New(rand.NewPCG(seed, 2))
	violation := func(kind string, k int, err error) {
		res.Violations++
		if len(res.Examples) < 5 {
			res.Examples = append(res.Examples, fmt.Sprintf("%s image at fence %d: %v", kind, k, err))
		}
	}
	n := 0
	_, err = execute(w, cfg, seed, func(sim *pmem.Sim, m model, k int) {
		chk := m.checker()
		img, _ := sim.CrashClone(nil)
		n++
		recCrash := cfg.RecoveryCrashEvery > 0 && n%cfg.RecoveryCrashEvery == 0
		if err := verify(img, chk, recCrash, &res); err != nil {
			violation("fence-boundary", k, err)
		}
		res.FenceImages++
		if k < 0 {
			return // final image: the workload is over
		}
		for i := 0; i < perFence; i++ {
			img, _ := sim.CrashClone(crashRng)
			n++
			recCrash := cfg.RecoveryCrashEvery > 0 && n%cfg.RecoveryCrashEvery == 0
			if err := verify(img, chk, recCrash, &res); err != nil {
				violation("random-subset", k, err)
			}
			res.RandomImages++
		}
	})
	if err != nil {
		return res, err
	}
	res.ImagesChecked = res.FenceImages + res.RandomImages + res.RecoveryImages
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// verify recovers a crash image and checks it. With recCrash it also
// crashes the recovery itself at each of its fences (durable image only)
// and recovers that image again. Afterwards it proves the recovered pool is
// usable by committing one empty-effect transaction and reopening.
func verify(img []byte, chk func(*journal.Journals) error, recCrash bool, res *Result) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: panic during recovery/check: %v", ErrViolation, r)
		}
	}()
	var recImgs [][]byte
	sim := pmem.NewSim(img)
	if recCrash {
		sim.SetFenceHook(func(int) {
			c, _ := sim.CrashClone(nil)
			recImgs = append(recImgs, c)
		})
	}
	p, err := pmem.OpenMem(img, sim, Layout)
	if err != nil {
		return fmt.Errorf("%w: open: %v", ErrViolation, err)
	}
	j, _, err := journal.Open(p, journal.Options{BeginTimeout: 100 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("%w: recovery: %v", ErrViolation, err)
	}
	sim.SetFenceHook(nil)
	if err := chk(j); err != nil {
		return err
	}
	for _, ri := range recImgs {
		res.RecoveryImages++
		if err := verify(ri, chk, false, res); err != nil {
			return fmt.Errorf("after a crash during recovery: %w", err)
		}
	}
	// The recovered pool must keep taking transactions: more of them than
	// there are journals, in both modes, so that journals must be recycled
	// (which needs the watermark to advance past every id seen before).
	r, err := p.Root()
	if err != nil {
		return fmt.Errorf("%w: root after recovery: %v", ErrViolation, err)
	}
	cur := bytes.Clone(p.Mem()[r.Off : r.Off+8])
	for i := 0; i < 3*journals; i++ {
		mode := journal.Redo
		if i%4 == 3 {
			mode = journal.Undo
		}
		tx, err := j.Begin(mode)
		if err != nil {
			return fmt.Errorf("%w: begin %d after recovery: %v", ErrViolation, i, err)
		}
		if err := tx.Write(r.Off, cur); err != nil {
			return fmt.Errorf("%w: write after recovery: %v", ErrViolation, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("%w: commit after recovery: %v", ErrViolation, err)
		}
	}
	return nil
}

var le = binary.LittleEndian

func u64(p *pmem.Pool, off uint64) uint64 { return le.Uint64(p.Mem()[off:]) }

func put64(b []byte, v uint64) []byte { return le.AppendUint64(b, v) }

// rootOf returns the root object's offset, checking its name.
func rootOf(j *journal.Journals, name string) (uint64, error) {
	r, err := j.Pool().Root()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrViolation, err)
	}
	if r.Name != name {
		return 0, fmt.Errorf("%w: root is %q, want %q", ErrViolation, r.Name, name)
	}
	return r.Off, nil
}

// begin starts a transaction in the mode chosen by pct (percent undo).
func begin(j *journal.Journals, rng *rand.Rand, undoPct int) (*journal.Tx, error) {
	mode := journal.Redo
	if rng.IntN(100) < undoPct {
		mode = journal.Undo
	}
	return j.Begin(mode)
}
