package workload

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPermIsBijection(t *testing.T) {
	seed := testSeed(t)
	for _, n := range []uint64{1, 2, 3, 5, 16, 17, 1000, 4097} {
		p, err := NewPerm(n, seed)
		if err != nil {
			t.Fatal(err)
		}
		seen := make([]bool, n)
		identity := true
		for x := uint64(0); x < n; x++ {
			y := p.At(x)
			if y >= n || seen[y] {
				t.Fatalf("n=%d: At(%d)=%d repeats or leaves the domain", n, x, y)
			}
			seen[y] = true
			if p.Inverse(y) != x {
				t.Fatalf("n=%d: Inverse(At(%d)) = %d", n, x, p.Inverse(y))
			}
			identity = identity && y == x
		}
		if n >= 16 && identity {
			t.Fatalf("n=%d: permutation is the identity", n)
		}
	}
	if _, err := NewPerm(0, 1); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("empty domain: %v", err)
	}
}

func TestZeta(t *testing.T) {
	for _, n := range []uint64{1, 2, 10, zetaExact, zetaExact + 1, 3 * zetaExact, 1 << 20} {
		exact := 0.0
		for i := n; i >= 1; i-- {
			exact += math.Pow(float64(i), -0.99)
		}
		if got := Zeta(n, 0.99); math.Abs(got-exact) > 1e-9*exact {
			t.Errorf("Zeta(%d) = %.12g, exact %.12g", n, got, exact)
		}
	}
}

// TestZipfSlope draws a large sample and fits log(frequency) against
// log(rank) over the head ranks: the slope must be close to -θ. The check is
// loose (±0.08) because Gray's generator is itself an approximation beyond
// the first two ranks.
func TestZipfSlope(t *testing.T) {
	seed := testSeed(t)
	for _, theta := range []float64{0.5, 0.8, 0.99} {
		z, err := NewZipf(100000, theta)
		if err != nil {
			t.Fatal(err)
		}
		const draws = 1 << 21
		counts := make([]float64, 1000)
		r := splitmix{seed}
		for i := 0; i < draws; i++ {
			if k := z.Rank(r.float()); k < uint64(len(counts)) {
				counts[k]++
			}
		}
		// Least squares over ranks 1..1000 (rank i+1 for index i), skipping
		// the two exact head ranks.
		var sx, sy, sxx, sxy, n float64
		for i := 2; i < len(counts); i++ {
			if counts[i] == 0 {
				continue
			}
			x, y := math.Log(float64(i+1)), math.Log(counts[i])
			sx, sy, sxx, sxy, n = sx+x, sy+y, sxx+x*x, sxy+x*y, n+1
		}
		slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
		t.Logf("theta %.2f: fitted slope %.3f; P(rank 0) %.4f", theta, slope, counts[0]/draws)
		if math.Abs(-slope-theta) > 0.08 {
			t.Errorf("theta %.2f: slope %.3f", theta, slope)
		}
		// Rank 0's share is 1/ζ(n, θ) exactly.
		if p := counts[0] / draws; math.Abs(p-1/z.zetan) > 0.01 {
			t.Errorf("theta %.2f: P(rank 0) = %.4f, want %.4f", theta, p, 1/z.zetan)
		}
	}
	for _, bad := range []float64{0, 1, -0.5, 1.5, math.NaN()} {
		if _, err := NewZipf(10, bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("theta %v: %v", bad, err)
		}
	}
	if _, err := NewZipf(0, 0.99); !errors.Is(err, ErrBadConfig) {
		t.Error("zero items accepted")
	}
}

// TestScrambleSpreadsHotPages checks that with scrambling the hottest
// pages are spread over the region, and without it they are the first ones.
func TestScrambleSpreadsHotPages(t *testing.T) {
	seed := testSeed(t)
	for _, noScramble := range []bool{false, true} {
		c := Config{Name: ZipfName, Size: 64 << 20, Seed: seed, NoScramble: noScramble, Mix: "read", NoPopulate: true}
		w, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		pw := w.(*pages)
		var firstTenth int
		for i := 0; i < 100000; i++ {
			if pw.pick() < pw.n/10 {
				firstTenth++
			}
		}
		share := float64(firstTenth) / 100000
		t.Logf("noScramble=%v: %.2f of accesses in the first tenth of the region", noScramble, share)
		if noScramble && share < 0.6 || !noScramble && share > 0.3 {
			t.Errorf("noScramble=%v: share %.2f", noScramble, share)
		}
	}
}

// opTrace returns the calls of n ops of the workload c, as a text trace.
func opTrace(t *testing.T, c Config, n uint64) []byte {
	t.Helper()
	mem := make(SliceMemory, c.Size)
	w := setup(t, c, mem)
	var b bytes.Buffer
	tw := NewTextWriter(&b)
	if _, err := Run(context.Background(), w, NewRecorder(mem, tw), RunOptions{MaxOps: n}); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return b.Bytes()
}

// TestDeterminism: the same seed gives the same calls, another seed others.
func TestDeterminism(t *testing.T) {
	seed := testSeed(t)
	for _, c := range smallConfigs(seed) {
		a, b := opTrace(t, c, 500), opTrace(t, c, 500)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: same seed, different operations", cname(c))
		}
		if c.Name == Seq || c.Pattern == "sequential" || c.Pattern == "strided" {
			continue // the order does not depend on the seed
		}
		c.Seed++
		if bytes.Equal(a, opTrace(t, c, 500)) {
			t.Fatalf("%s: seeds %d and %d give the same operations", cname(c), seed, c.Seed)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want error
	}{
		{Config{Name: "nope", Size: 1 << 20}, ErrUnknownWorkload},
		{Config{Name: "", Size: 1 << 20}, ErrUnknownWorkload},
		{Config{Name: Seq, Size: 1 << 20, Pattern: "a"}, ErrUnknownPattern},
		{Config{Name: KV, Size: 1 << 20, Pattern: "d"}, ErrUnknownPattern},
		{Config{Name: PageWalk, Size: 1 << 20, Pattern: "random"}, ErrUnknownPattern},
		{Config{Name: Seq, Size: 1 << 20, Mix: "60:30"}, ErrBadMix},
		{Config{Name: Seq, Size: 1 << 20, Mix: "1.5"}, ErrBadMix},
		{Config{Name: Seq, Size: 1 << 20, Mix: "lots"}, ErrBadMix},
		{Config{Name: Seq, Size: 100}, ErrBadConfig},
		{Config{Name: Seq, Size: -1}, ErrBadConfig},
		{Config{Name: Seq, Size: 1 << 20, PageSize: 1000}, ErrBadConfig},
		{Config{Name: Seq, Size: 1 << 20, PageSize: 32}, ErrBadConfig},
		{Config{Name: ZipfName, Size: 1 << 20, Theta: 1}, ErrBadConfig},
		{Config{Name: ZipfName, Size: 1 << 20, Theta: -0.2}, ErrBadConfig},
		{Config{Name: KV, Size: 1 << 20, Records: 1 << 20}, ErrBadConfig},
		{Config{Name: KV, Size: 1 << 20, Records: -3}, ErrBadConfig},
		{Config{Name: KV, Size: 1 << 20, ValueSize: -1}, ErrBadConfig},
		{Config{Name: KV, Size: 8192, ValueSize: 5000}, ErrBadConfig},
		{Config{Name: PageWalk, Size: 4 * 4096}, ErrBadConfig},
		{Config{Name: PageWalk, Size: 1 << 20, Stride: -1}, ErrBadConfig},
		{Config{Name: Trace, Size: 1 << 20, Trace: strings.NewReader(""), Grain: 100}, ErrBadConfig},
		{Config{Name: Trace, Size: 1 << 20, Trace: strings.NewReader(""), Grain: 8192}, ErrBadConfig},
	} {
		if _, err := New(tc.c); !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "workload: ") {
			t.Errorf("%+v: got %v, want %v", tc.c, err, tc.want)
		}
	}
	for in, want := range map[string]float64{"50:50": 0.5, "95:5": 0.95, "100:0": 1, "0:100": 0, "0.25": 0.25, "read": 1, "write": 0, " 1 ": 1} {
		if m, err := ParseMix(in); err != nil || m.Read != want {
			t.Errorf("ParseMix(%q) = %v, %v", in, m, err)
		}
	}
}

func TestStepBeforeSetup(t *testing.T) {
	for _, c := range smallConfigs(1) {
		w, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Step(make(SliceMemory, c.Size)); !errors.Is(err, ErrNotSetUp) {
			t.Fatalf("%s: %v", cname(c), err)
		}
		if _, err := Run(context.Background(), w, make(SliceMemory, c.Size), RunOptions{MaxOps: 1}); !errors.Is(err, ErrNotSetUp) {
			t.Fatalf("%s: Run: %v", cname(c), err)
		}
	}
	w, _ := New(Config{Name: Seq, Size: 1 << 20})
	if _, err := Run(context.Background(), w, nil, RunOptions{}); !errors.Is(err, ErrNoLimit) {
		t.Fatalf("no limit: %v", err)
	}
}

// TestStepAllocFree: steady-state operations do not allocate.
func TestStepAllocFree(t *testing.T) {
	for _, c := range smallConfigs(testSeed(t)) {
		slice := make(SliceMemory, c.Size)
		var mem Memory = slice // the conversion would allocate in the loop
		w := setup(t, c, mem)
		w.Step(mem)
		if n := testing.AllocsPerRun(2000, func() {
			if err := w.Step(mem); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per op", cname(c), n)
		}
	}
	r := splitmix{1}
	as := make([]Access, 1000)
	for i := range as {
		as[i] = Access{Write: i%3 == 0, Offset: int64(r.below(1<<20 - 9000)), Length: int64(1 + r.below(9000))}
	}
	c := Config{Name: Trace, Size: 1 << 20, Trace: bytes.NewReader(encode(t, Binary, as))}
	var mem Memory = make(SliceMemory, c.Size)
	w := setup(t, c, mem)
	if n := testing.AllocsPerRun(500, func() {
		if err := w.Step(mem); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("trace: %v allocations per op", n)
	}
}

// TestShadowBudget: every shadow model stays within 1% of the region.
func TestShadowBudget(t *testing.T) {
	for _, c := range []Config{
		{Name: Seq, Size: 64 << 20, NoPopulate: true},
		{Name: ZipfName, Size: 64 << 20, NoPopulate: true},
		{Name: KV, Size: 64 << 20, NoPopulate: true},
		{Name: KV, Size: 64 << 20, Records: 95 * (64 << 20) / 128 / 100, NoPopulate: true},
		{Name: PageWalk, Size: 64 << 20, NoPopulate: true},
		{Name: Trace, Size: 64 << 20, Trace: strings.NewReader(""), NoPopulate: true},
		{Name: Trace, Size: 64 << 20, Grain: 512, Trace: strings.NewReader(""), NoPopulate: true},
	} {
		w := setup(t, c, make(SliceMemory, c.Size))
		sb := w.(interface{ ShadowBytes() int64 }).ShadowBytes()
		t.Logf("%s grain %d: shadow %d bytes = %.3f%% of the region", c.Name, c.Grain, sb, 100*float64(sb)/float64(c.Size))
		if sb > c.Size/100 {
			t.Errorf("%s: shadow %d bytes is more than 1%% of %d", c.Name, sb, c.Size)
		}
	}
}

func TestParallelWorkers(t *testing.T) {
	seed := testSeed(t)
	for _, c := range []Config{
		{Name: Uniform, Size: 4 << 20, Seed: seed},
		{Name: ZipfName, Size: 4 << 20, Seed: seed},
		{Name: PageWalk, Size: 4 << 20, Seed: seed, Pattern: "uniform", Mix: "50:50"},
	} {
		mem := make(SliceMemory, c.Size)
		w := setup(t, c, mem)
		res, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 9001, Workers: 3, Progress: func(Result) {}})
		if err != nil || res.Ops != 9001 || res.Mismatches != 0 || res.Workers != 3 {
			t.Fatalf("%s: %v ops %d mismatches %d", c.Name, err, res.Ops, res.Mismatches)
		}
	}
	mem := make(SliceMemory, 4<<20)
	w := setup(t, Config{Name: KV, Size: 4 << 20}, mem)
	if _, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 10, Workers: 2}); !errors.Is(err, ErrNotPartitionable) {
		t.Fatalf("kv workers: %v", err)
	}
}

func TestRunDurationAndProgress(t *testing.T) {
	c := Config{Name: Uniform, Size: 1 << 20}
	mem := make(SliceMemory, c.Size)
	w := setup(t, c, mem)
	calls := 0
	res, err := Run(context.Background(), w, mem, RunOptions{Duration: 30e6, ProgressInterval: 1e6, Progress: func(r Result) { calls++ }})
	if err != nil || res.Ops == 0 || res.Elapsed < 30e6 || calls == 0 {
		t.Fatalf("%v ops %d elapsed %v progress calls %d", err, res.Ops, res.Elapsed, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, w, mem, RunOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestPatternFillCheck(t *testing.T) {
	r := splitmix{testSeed(t)}
	buf := make([]byte, 300)
	for i := 0; i < 2000; i++ {
		off := int64(r.below(1 << 40))
		b := buf[:r.below(uint64(len(buf)))+1]
		p := newPattern(r.next(), r.next(), uint32(r.below(3)))
		p.fill(b, off)
		for j := range b {
			if b[j] != p.byteAt(off+int64(j)) {
				t.Fatalf("fill disagrees with byteAt at %d", j)
			}
		}
		if bad, _ := p.check(b, off); bad != 0 {
			t.Fatalf("fresh fill has %d bad bytes", bad)
		}
		j := int(r.below(uint64(len(b))))
		b[j] ^= byte(1 + r.below(255))
		if bad, first := p.check(b, off); bad != 1 || first != j {
			t.Fatalf("one flip at %d: %d bad, first %d", j, bad, first)
		}
		// Another version or another place does not verify.
		if !p.zero && len(b) >= 8 {
			p.fill(b, off)
			if bad, _ := p.check(b, off+8); bad == 0 {
				t.Fatal("a shifted copy verifies")
			}
			q := newPattern(0, 0, 1)
			q.base = p.base + 1
			if bad, _ := q.check(b, off); bad == 0 {
				t.Fatal("another version verifies")
			}
		}
	}
}

type slowMemory struct {
	Memory
	d time.Duration
}

func (s slowMemory) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(s.d)
	return s.Memory.ReadAt(p, off)
}

// TestRunStopsOnTimeWithSlowMemory: with ≥ 20 ms per op (five reads of
// ≥ 4 ms), a 100 ms run makes at most five ops, not 16 (checking only every
// 16 ops would). Sleeps only get longer on a loaded machine, so the bound
// holds however slow it is.
func TestRunStopsOnTimeWithSlowMemory(t *testing.T) {
	c := Config{Name: PageWalk, Size: 1 << 20}
	slice := make(SliceMemory, c.Size)
	w := setup(t, c, slice)
	res, err := Run(context.Background(), w, slowMemory{slice, 4 * time.Millisecond}, RunOptions{Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops > 6 {
		t.Fatalf("%d ops in a 100 ms run of ≥ 20 ms ops", res.Ops)
	}
}
