package pager

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/farmem/farmem/pmem"
)

var metaSeed = flag.Uint64("meta.seed", 0, "seed of TestMetaCrash (0: from the clock)")

// Geometry of the simulated metadata pools: the pager's journals, and a
// heap small enough that freed bitset blocks are handed out again.
const simMetaSize = 512 << 10

// newSimMeta formats a metadata pool in memory over a strict crash
// simulator (a fence persists only the lines its own goroutine flushed).
func newSimMeta(t testing.TB) (*pmem.Sim, *Meta) {
	t.Helper()
	mem := make([]byte, simMetaSize)
	if _, err := pmem.Format(mem, MetaLayout, metaJournals, metaJournalSize); err != nil {
		t.Fatal(err)
	}
	sim := pmem.NewStrictSim(mem)
	p, err := pmem.OpenMem(mem, sim, MetaLayout)
	if err != nil {
		t.Fatal(err)
	}
	m, err := openMeta(p, "ns")
	if err != nil {
		t.Fatal(err)
	}
	return sim, m
}

// metaModel is what the crash test's driver has done: the regions whose
// creation returned (with the bits of every acknowledged batch), the far
// tier's writes, and the operation in flight.
type metaModel struct {
	acked map[uint64]*modelRegion
	far   map[uint64]map[int]bool // region id -> pages written to the far tier
	op    modelOp                 // in flight; kind "" when none
}

type modelRegion struct {
	size  uint64
	bits  map[int]bool
	bytes uint64
}

type modelOp struct {
	kind  string // "create", "bits", "remove"
	id    uint64
	size  uint64
	pages []int
}

// check recovers a crash image and checks the invariants of the table
// against the model:
//   - every region present was created by an acknowledged or the in-flight
//     creation, with its exact fields; every acknowledged region not being
//     removed is present; a region whose removal returned is absent;
//   - every bit set was written to the far tier before its transaction
//     began; every acknowledged batch's bits are set; the in-flight batch
//     is there entirely or not at all; no other bit is set;
//   - the allocator holds exactly the table, and the record and bitset of
//     each present region (no leak, no double use);
//   - the recovered table takes new transactions.
func (mm *metaModel) check(img []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	sim := pmem.NewSim(img)
	p, err := pmem.OpenMem(img, sim, MetaLayout)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	m, err := openMeta(p, "ns")
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	defer m.j.Close()
	return mm.compare(m)
}

func (mm *metaModel) compare(m *Meta) error {
	got := map[uint64]*metaRegion{}
	for id, mr := range m.regions {
		got[id] = mr
	}
	op := mm.op
	for id, mr := range got {
		want, ok := mm.acked[id]
		if !ok && op.kind == "create" && op.id == id {
			want, ok = &modelRegion{size: op.size, bits: map[int]bool{}}, true
		}
		if !ok {
			return fmt.Errorf("region %d is recorded but was never created (or its removal returned)", id)
		}
		if mr.size != want.size || mr.ps != 4096 || mr.prefix != "ns" || mr.bitBytes != bitsetBytes(int(want.size/4096)) {
			return fmt.Errorf("region %d: record %+v, want size %d", id, *mr, want.size)
		}
		var inflight []int
		if op.kind == "bits" && op.id == id {
			for _, pg := range op.pages {
				if !want.bits[pg] {
					inflight = append(inflight, pg)
				}
			}
		}
		newSet := 0
		mem := m.pool.Mem()
		for w := 0; w < mr.pages; w += 64 {
			word := le.Uint64(mem[mr.bits+uint64(w/8):])
			for ; word != 0; word &= word - 1 {
				pg := w + bits.TrailingZeros64(word)
				switch {
				case pg >= mr.pages:
					return fmt.Errorf("region %d: bit %d is set beyond its %d pages", id, pg, mr.pages)
				case !mm.far[id][pg]:
					return fmt.Errorf("region %d: page %d's bit is set but the page was never written back", id, pg)
				case want.bits[pg]:
				case slices.Contains(inflight, pg):
					newSet++
				default:
					return fmt.Errorf("region %d: page %d's bit is set by no batch", id, pg)
				}
			}
		}
		for pg := range want.bits {
			if !mr.written(m, pg) {
				return fmt.Errorf("region %d: page %d's bit of an acknowledged batch is clear", id, pg)
			}
		}
		if newSet != 0 && newSet != len(inflight) {
			return fmt.Errorf("region %d: %d of the %d new bits of the batch in flight are set", id, newSet, len(inflight))
		}
	}
	for id := range mm.acked {
		if _, ok := got[id]; !ok && (op.kind != "remove" || op.id != id) {
			return fmt.Errorf("acknowledged region %d is missing", id)
		}
	}
	want := []uint64{m.tbl}
	for _, mr := range got {
		want = append(want, mr.rec, mr.bits)
	}
	slices.Sort(want)
	if blocks := m.a.Blocks(); !slices.Equal(blocks, want) {
		return fmt.Errorf("allocated blocks %v, want the table and the regions' %v", blocks, want)
	}
	// Usable: a region can be created, written and removed.
	mr, err := m.create(1<<62, 64*4096, 4096)
	if err != nil {
		return fmt.Errorf("create after recovery: %w", err)
	}
	if _, err := m.setBits(mr, []int{0, 63}); err != nil {
		return fmt.Errorf("bits after recovery: %w", err)
	}
	if err := m.remove(mr); err != nil {
		return fmt.Errorf("remove after recovery: %w", err)
	}
	return nil
}

// TestMetaCrash drives region creations, eviction-batch bit sets and
// removals through a metadata pool on the strict crash simulator and, at
// every fence, recovers the image a crash there leaves (plus random
// subsets of the lines written but not yet durable, and every 10th image
// with its recovery crashed at each of its fences) and checks it against
// the model (metaModel.check). A failure prints the seed; -meta.seed
// replays it.
func TestMetaCrash(t *testing.T) {
	seed := *metaSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -meta.seed %d)", seed, seed)
	steps, random := 120, 3
	if testing.Short() {
		steps, random = 50, 2
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	crashRng := rand.New(rand.NewPCG(seed, 2))
	sim, m := newSimMeta(t)
	mm := &metaModel{acked: map[uint64]*modelRegion{}, far: map[uint64]map[int]bool{}}
	var images, recImages, violations int
	var examples []string
	fail := func(kind string, k int, err error) {
		violations++
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf("%s image at fence %d (op %+v): %v", kind, k, mm.op, err))
		}
	}
	// checkImage recovers img and checks it; every 10th image also has its
	// recovery crashed at each of its fences, and those images recovered.
	checkImage := func(kind string, k int, img []byte) {
		images++
		live := bytes.Clone(img) // check recovers its image in place
		if err := mm.check(img); err != nil {
			fail(kind, k, err)
		}
		if images%10 != 0 {
			return
		}
		rs := pmem.NewSim(live)
		var recImgs [][]byte
		rs.SetFenceHook(func(int) { c, _ := rs.CrashClone(nil); recImgs = append(recImgs, c) })
		if p, err := pmem.OpenMem(live, rs, MetaLayout); err == nil {
			if m2, err := openMeta(p, "ns"); err == nil {
				m2.j.Close()
			}
		}
		for _, ri := range recImgs {
			recImages++
			if err := mm.check(ri); err != nil {
				fail(kind+", recovery crashed", k, err)
			}
		}
	}
	sim.SetFenceHook(func(k int) {
		img, _ := sim.CrashClone(nil)
		checkImage("fence-boundary", k, img)
		for range random {
			img, _ := sim.CrashClone(crashRng)
			checkImage("random-subset", k, img)
		}
	})
	reused, creates, full := 0, 0, 0
	seenBits := map[uint64]bool{}
	step := 0
	create := func(size uint64) {
		id := rng.Uint64N(1<<40) + 1
		mm.op = modelOp{kind: "create", id: id, size: size}
		mr, err := m.create(id, int(size), 4096)
		mm.op = modelOp{}
		if errors.Is(err, ErrMetaFull) {
			full++
			return
		}
		if err != nil {
			t.Fatalf("seed %d step %d: create: %v", seed, step, err)
		}
		creates++
		if seenBits[mr.bits] {
			reused++
		}
		seenBits[mr.bits] = true
		mm.acked[id] = &modelRegion{size: size, bits: map[int]bool{}}
		mm.far[id] = map[int]bool{}
	}
	setBits := func(id uint64) {
		mr := m.regions[id]
		pages := map[int]bool{}
		n := 1 + rng.IntN(64)
		if rng.IntN(8) == 0 {
			n = 1024 // the largest reclaim batch
		}
		for range n {
			pg := rng.IntN(mr.pages)
			if rng.IntN(2) == 0 && mr.pages > 64 {
				pg = rng.IntN(64) // overlap with earlier batches
			}
			pages[pg] = true
		}
		list := make([]int, 0, len(pages))
		for pg := range pages {
			list = append(list, pg)
			mm.far[id][pg] = true // the write-back completes first
		}
		slices.Sort(list)
		mm.op = modelOp{kind: "bits", id: id, pages: list}
		if _, err := m.setBits(mr, list); err != nil {
			t.Fatalf("seed %d step %d: setBits: %v", seed, step, err)
		}
		mm.op = modelOp{}
		for _, pg := range list {
			mm.acked[id].bits[pg] = true
		}
	}
	remove := func(id uint64) {
		mm.op = modelOp{kind: "remove", id: id}
		if err := m.remove(m.regions[id]); err != nil {
			t.Fatalf("seed %d step %d: remove: %v", seed, step, err)
		}
		mm.op = modelOp{}
		delete(mm.acked, id)
	}
	for ; step < steps; step++ {
		var live []uint64
		for id := range mm.acked {
			live = append(live, id)
		}
		slices.Sort(live)
		var id uint64
		if len(live) > 0 {
			id = live[rng.IntN(len(live))]
		}
		switch c := rng.IntN(20); {
		case len(live) == 0 || c < 6:
			create((rng.Uint64N(400000) + 1) * 4096)
		case c < 15:
			setBits(id)
		case c < 17:
			remove(id)
		default:
			// A region's last batch, its detach, and at once a new region
			// of the same size, which may get the freed bitset block while
			// the journals of that batch and detach can still be replayed.
			size := mm.acked[id].size
			setBits(id)
			remove(id)
			create(size)
		}
	}
	sim.SetFenceHook(nil)
	img, _ := sim.CrashClone(nil)
	checkImage("final", -1, img)
	t.Logf("%d steps, %d fences, %d images checked (%d from crashed recoveries); %d regions created (%d refused: pool full), %d of them on a freed bitset block",
		steps, sim.Fences(), images+recImages, recImages, creates, full, reused)
	if violations > 0 {
		t.Fatalf("seed %d: %d violations, e.g.\n%s", seed, violations, strings.Join(examples, "\n"))
	}
	if reused == 0 {
		t.Errorf("seed %d: no freed bitset block was reused: the test did not exercise the zeroing of a reused block", seed)
	}
}
