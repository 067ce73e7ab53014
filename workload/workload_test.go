package workload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// smallConfigs are one configuration of every workload and pattern over a
// small region, for the integrity tests.
func smallConfigs(seed uint64) []Config {
	const size = 4 << 20
	cs := []Config{
		{Name: Seq, Size: size, Seed: seed},
		{Name: Uniform, Size: size, Seed: seed},
		{Name: ZipfName, Size: size, Seed: seed},
		{Name: ZipfName, Size: size, Seed: seed, NoScramble: true, Mix: "write"},
		{Name: Uniform, Size: size, Seed: seed, PageSize: 512, Mix: "90:10"},
	}
	for _, p := range Patterns[KV] {
		cs = append(cs, Config{Name: KV, Size: size, Seed: seed, Pattern: p})
	}
	cs = append(cs, Config{Name: KV, Size: size, Seed: seed, ValueSize: 40, Records: 60000})
	for _, p := range Patterns[PageWalk] {
		cs = append(cs, Config{Name: PageWalk, Size: size, Seed: seed, Pattern: p, Mix: "70:30"})
	}
	cs = append(cs, Config{Name: PageWalk, Size: size, Seed: seed, PageSize: 64, Pattern: "uniform", Mix: "50:50"})
	return cs
}

func cname(c Config) string {
	return fmt.Sprintf("%s/%s/ps%d/mix%s/vs%d", c.Name, c.Pattern, c.PageSize, c.Mix, c.ValueSize)
}

func setup(t *testing.T, c Config, mem Memory) Workload {
	t.Helper()
	w, err := New(c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	if err := w.Setup(context.Background(), mem); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return w
}

// TestIntegrity runs every workload against a plain slice: nothing may
// mismatch, and reads and writes both happen where the mix says so.
func TestIntegrity(t *testing.T) {
	seed := testSeed(t)
	for _, c := range smallConfigs(seed) {
		t.Run(cname(c), func(t *testing.T) {
			mem := make(SliceMemory, c.Size)
			w := setup(t, c, mem)
			res, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 20000})
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != 20000 || res.Mismatches != 0 || res.Errors != 0 {
				t.Fatalf("ops %d mismatches %d errors %d: %v", res.Ops, res.Mismatches, res.Errors, res.FirstMismatches)
			}
			m := w.Config().ReadMix().Read
			if m > 0 && res.Reads == 0 || m < 1 && res.Writes == 0 {
				t.Fatalf("mix %v but %d reads, %d writes", m, res.Reads, res.Writes)
			}
			if res.Reads+res.Writes != res.Ops {
				t.Fatalf("reads %d + writes %d != ops %d", res.Reads, res.Writes, res.Ops)
			}
		})
	}
}

// TestCorruptionDetected flips a byte on some reads and checks that every
// flip is counted (and that the run carries on).
func TestCorruptionDetected(t *testing.T) {
	seed := testSeed(t)
	for _, c := range smallConfigs(seed) {
		if c.ReadMix().Read == 0 {
			continue
		}
		t.Run(cname(c), func(t *testing.T) {
			slice := make(SliceMemory, c.Size)
			w := setup(t, c, slice)
			mem := &corruptMemory{Memory: slice, every: 7}
			res, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 5000})
			if err != nil {
				t.Fatal(err)
			}
			flips := mem.flips.Load()
			if flips == 0 {
				t.Fatal("no read was corrupted")
			}
			if res.Mismatches < flips || res.MismatchBytes < flips {
				t.Fatalf("%d flips but %d mismatches (%d bytes)", flips, res.Mismatches, res.MismatchBytes)
			}
			if len(res.FirstMismatches) != MaxFirstMismatches {
				t.Fatalf("%d mismatch details, want %d", len(res.FirstMismatches), MaxFirstMismatches)
			}
			if res.Ops != 5000 {
				t.Fatalf("run stopped after %d ops", res.Ops)
			}
			t.Logf("%d flips, %d mismatches, first: %v", flips, res.Mismatches, res.FirstMismatches[0])
		})
	}
}

// TestCorruptionInRegion damages the region itself (as lost or stale pages
// would) and checks that reads see it.
func TestCorruptionInRegion(t *testing.T) {
	seed := testSeed(t)
	for _, c := range smallConfigs(seed) {
		if c.ReadMix().Read == 0 {
			continue
		}
		t.Run(cname(c), func(t *testing.T) {
			mem := make(SliceMemory, c.Size)
			w := setup(t, c, mem)
			for i := int64(0); i < c.Size; i += 4096 + 64 {
				mem[i] ^= 0x81
			}
			res, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 5000})
			if err != nil {
				t.Fatal(err)
			}
			if res.Mismatches == 0 {
				t.Fatal("damage to the region went unnoticed")
			}
		})
	}
}

type failMemory struct {
	Memory
	every, n int
}

var errInjected = errors.New("injected")

func (f *failMemory) ReadAt(p []byte, off int64) (int, error) {
	if f.n++; f.n%f.every == 0 {
		return 0, errInjected
	}
	return f.Memory.ReadAt(p, off)
}

func (f *failMemory) WriteAt(p []byte, off int64) (int, error) {
	if f.n++; f.n%f.every == 0 {
		// A write that fails half way: the shadow must stop trusting it.
		q := p[:len(p)/2]
		f.Memory.WriteAt(q, off)
		return len(q), errInjected
	}
	return f.Memory.WriteAt(p, off)
}

// TestMemoryErrors checks that failed calls are counted, that MaxErrors
// stops the run, and that a failed write is not later reported as a
// mismatch.
func TestMemoryErrors(t *testing.T) {
	seed := testSeed(t)
	for _, c := range smallConfigs(seed) {
		t.Run(cname(c), func(t *testing.T) {
			slice := make(SliceMemory, c.Size)
			w := setup(t, c, slice)
			mem := &failMemory{Memory: slice, every: 13}
			res, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 3000, MaxErrors: -1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors == 0 || len(res.FirstErrors) == 0 || !errors.Is(res.FirstErrors[0], errInjected) {
				t.Fatalf("errors %d %v", res.Errors, res.FirstErrors)
			}
			if res.Mismatches != 0 {
				t.Fatalf("%d mismatches after failed calls: %v", res.Mismatches, res.FirstMismatches)
			}
			res, err = Run(context.Background(), w, mem, RunOptions{MaxOps: 3000, MaxErrors: 2})
			if !errors.Is(err, ErrTooManyErrors) || !errors.Is(err, errInjected) || res.Errors != 3 {
				t.Fatalf("MaxErrors 2: err %v after %d errors", err, res.Errors)
			}
		})
	}
}

// zeroingMemory returns zeros for some reads, as a memory that lost pages.
type zeroingMemory struct {
	Memory
	every, n int
}

func (z *zeroingMemory) ReadAt(p []byte, off int64) (int, error) {
	n, err := z.Memory.ReadAt(p, off)
	if z.n++; z.n%z.every == 0 {
		clear(p)
	}
	return n, err
}

// TestLostPagesCounted: reads that come back all zero where data was
// written count as lost, and nothing else does.
func TestLostPagesCounted(t *testing.T) {
	seed := testSeed(t)
	for _, c := range smallConfigs(seed) {
		if c.ReadMix().Read == 0 {
			continue
		}
		t.Run(cname(c), func(t *testing.T) {
			slice := make(SliceMemory, c.Size)
			w := setup(t, c, slice)
			res, err := Run(context.Background(), w, &zeroingMemory{Memory: slice, every: 5}, RunOptions{MaxOps: 3000})
			if err != nil {
				t.Fatal(err)
			}
			if res.Lost == 0 || res.Lost > res.Mismatches {
				t.Fatalf("lost %d of %d mismatches", res.Lost, res.Mismatches)
			}
			res, _ = Run(context.Background(), w, &corruptMemory{Memory: slice, every: 5}, RunOptions{MaxOps: 3000})
			if res.Mismatches == 0 || res.Lost != 0 {
				t.Fatalf("flips counted as lost: %d of %d", res.Lost, res.Mismatches)
			}
		})
	}
}

// TestVerifySweep: a clean region verifies clean after a run; damage
// anywhere, also where the run never read, is found and lost pages are told
// apart from flipped bytes.
func TestVerifySweep(t *testing.T) {
	seed := testSeed(t)
	cs := append(smallConfigs(seed), Config{Name: Trace, Size: 4 << 20, Seed: seed, Grain: 512,
		Trace: strings.NewReader("W 100 5000\nR 0 9000\nW 3000000 1\n")})
	for _, c := range cs {
		t.Run(cname(c), func(t *testing.T) {
			mem := make(SliceMemory, c.Size)
			w := setup(t, c, mem)
			if _, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 2000}); err != nil {
				t.Fatal(err)
			}
			st, err := w.Verify(context.Background(), mem)
			if err != nil || st.Mismatches != 0 || st.BytesRead == 0 {
				t.Fatalf("clean sweep: %v, %d mismatches %v, %d bytes", err, st.Mismatches, st.FirstMismatches(), st.BytesRead)
			}
			// Flip one byte in a few places, and zero one page as if lost.
			for _, o := range []int64{c.Size / 3, c.Size/2 + 77, c.Size - 1000} {
				mem[checkedAt(w, o)] ^= 0x40
			}
			lost := min(checkedAt(w, c.Size/4), c.Size-4096)
			clear(mem[lost : lost+4096])
			st, err = w.Verify(context.Background(), mem)
			if err != nil || st.Mismatches < 2 {
				t.Fatalf("damaged sweep: %v, %d mismatches", err, st.Mismatches)
			}
			if c.Name != PageWalk && st.Lost == 0 {
				t.Fatalf("zeroed page not counted lost: %v", st.FirstMismatches())
			}
			t.Logf("%d mismatches (%d lost), first %v", st.Mismatches, st.Lost, st.FirstMismatches()[0])
		})
	}
}

// checkedAt returns off, or for a pagewalk the offset at the same place in
// the first page at or after it (wrapping around) that Verify checks: a
// pagewalk layout leaves pages that no table maps, and Verify skips them.
func checkedAt(w Workload, off int64) int64 {
	pw, ok := w.(*pagewalk)
	if !ok {
		return off
	}
	ps := int64(pw.cfg.PageSize)
	pages := int64(pw.pt.RegionPages())
	for i := int64(0); i < pages; i++ {
		page := (off/ps + i) % pages
		if _, _, table := pw.pt.IsTablePage(uint64(page)); table {
			return page*ps + off%ps
		}
		if vpn, data := pw.pt.DataPage(uint64(page)); data && vpn >= pw.first && vpn < pw.first+pw.n && pw.ver[vpn-pw.first] != unknownVersion {
			return page*ps + off%ps
		}
	}
	return off
}
