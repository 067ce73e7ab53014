package workload

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// The names of the workloads, for Config.Name.
const (
	Seq      = "seq"
	Uniform  = "uniform"
	ZipfName = "zipf"
	KV       = "kv"
	PageWalk = "pagewalk"
	Trace    = "trace"
)

// Names lists every workload name New accepts.
var Names = []string{Seq, Uniform, ZipfName, KV, PageWalk, Trace}

// Patterns lists the patterns of each workload; the first is the default.
// Workloads not listed take no pattern.
var Patterns = map[string][]string{
	KV:       {"a", "b", "c"},
	PageWalk: {"sequential", "strided", "zipf", "uniform"},
}

// Defaults applied by New to zero fields of Config.
const (
	DefaultPageSize  = 4096
	DefaultValueSize = 112
	DefaultLoad      = 0.75
	DefaultStride    = 8
)

// Config selects and parameterizes a workload. The zero value of every field
// but Name and Size means "the default".
type Config struct {
	// Name is one of Names.
	Name string
	// Size is the region size in bytes; at least two pages.
	Size int64
	// PageSize is the unit of the page workloads and of pagewalk's tables;
	// a power of two from 64 to 1 MiB, DefaultPageSize when zero. The
	// region size is rounded down to whole pages.
	PageSize int
	// Pattern selects a variant: kv "a" (default), "b", "c"; pagewalk
	// "sequential" (default), "strided", "zipf", "uniform". Workloads
	// without patterns accept only "".
	Pattern string
	// Seed fixes every random choice: the operation sequence, the layout
	// and the written contents.
	Seed uint64
	// Mix is the read/write mix, parsed by ParseMix ("50:50", "95:5",
	// "0.95", "read", "write"). Empty means the workload's default: 50:50
	// for seq, uniform, zipf; the YCSB mix of the pattern for kv; 100:0 for
	// pagewalk. Trace ignores it (the trace says R or W).
	Mix string
	// Theta is the zipf skew in (0, 1); DefaultTheta (0.99) when zero.
	Theta float64
	// NoScramble turns off YCSB-style scrambling of zipf ranks: without it
	// (the default, as in YCSB) the hot ranks are spread over the region by
	// a keyed permutation; with it rank i is item i, so the hot items are
	// the first pages (or virtual pages) of the region.
	NoScramble bool
	// Stride is pagewalk's stride in virtual pages for pattern "strided";
	// DefaultStride when zero.
	Stride int
	// ValueSize is kv's value size in bytes (the key takes 16 more);
	// DefaultValueSize when zero, so a slot is 128 bytes.
	ValueSize int
	// Records is kv's number of keys; DefaultLoad of the slots when zero.
	// At most 95% of the slots.
	Records int64
	// TracePath names the trace file to replay; Trace, if set, is used
	// instead. A trace given as an io.ReadSeeker (a file) is validated
	// in full by Setup and can Loop; a plain reader is checked as it goes.
	TracePath string
	Trace     io.Reader
	// Loop makes trace replay start over at the end instead of ending.
	Loop bool
	// Grain is the trace workload's shadow granularity, a power of two from
	// 64 to PageSize (PageSize when zero). Trace writes are widened to whole
	// grains; the shadow costs 4 bytes per grain.
	Grain int
	// NoPopulate skips writing every page once (version 1) in Setup. By
	// default the region is populated so that reads fetch real data: a far
	// memory need not fetch a page that was never written.
	NoPopulate bool
}

// Workload is one generator of operations over a Memory, with a compact
// shadow model that verifies every byte it reads.
//
// Setup prepares the region (populates it, loads the kv table, builds the
// page table) and is not measured; Step performs one operation and is
// allocation-free. A Workload is not safe for concurrent use; see
// Partitioner for several workers.
type Workload interface {
	// Name returns the workload's name (Config.Name).
	Name() string
	// Config returns the configuration with defaults filled in.
	Config() Config
	// Setup prepares mem, which must be zeroed, for the measured phase.
	Setup(ctx context.Context, mem Memory) error
	// Step performs one operation. Errors of mem are returned as they are;
	// mismatches are counted in Stats, not returned. ErrEnd means no more
	// operations.
	Step(mem Memory) error
	// Stats returns a copy of the counters since the last ResetStats.
	Stats() Stats
	// ResetStats zeroes the counters.
	ResetStats()
	// Close releases files the workload opened (a trace).
	Close() error
	// ShadowBytes returns the memory held by the shadow model, for the
	// report of the client's memory use.
	ShadowBytes() int64
	// Verify sweeps the whole region (a partition: its part) in large
	// reads and checks every byte against the shadow — the end-of-test
	// check that no page was lost or damaged, including pages the run never
	// read. It returns the sweep's own counters and leaves the run's alone.
	Verify(ctx context.Context, mem Memory) (Stats, error)
}

// Partitioner is an optional interface of a set-up Workload that can be
// split into n workloads over disjoint parts of the region, run by n
// goroutines (RunOptions.Workers). The parts share the parent's shadow model
// and must not be used together with the parent.
type Partitioner interface {
	Partition(n int) ([]Workload, error)
}

// Mix is a read/write mix: the fraction of operations that read.
type Mix struct{ Read float64 }

// String formats the mix as R:W percentages.
func (m Mix) String() string {
	r := int(math.Round(m.Read * 100))
	return fmt.Sprintf("%d:%d", r, 100-r)
}

// ParseMix parses a read/write mix: "R:W" percentages summing to 100
// ("50:50", "95:5"), a read fraction in [0, 1] ("0.95"), or the words
// "read" (100:0) and "write" (0:100). It returns ErrBadMix otherwise.
func ParseMix(s string) (Mix, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	switch t {
	case "read", "readonly", "read-only":
		return Mix{1}, nil
	case "write", "writeonly", "write-only":
		return Mix{0}, nil
	}
	if r, w, ok := strings.Cut(t, ":"); ok {
		rp, err1 := strconv.ParseFloat(strings.TrimSpace(r), 64)
		wp, err2 := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err1 != nil || err2 != nil || rp < 0 || wp < 0 || math.Abs(rp+wp-100) > 1e-9 {
			return Mix{}, fmt.Errorf("%w: %q (want R:W percentages summing to 100)", ErrBadMix, s)
		}
		return Mix{rp / 100}, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return Mix{}, fmt.Errorf("%w: %q (want R:W, a read fraction in [0,1], read or write)", ErrBadMix, s)
	}
	return Mix{f}, nil
}

// withDefaults fills zero fields and validates the fields every workload
// shares.
func (c Config) withDefaults() (Config, error) {
	known := false
	for _, n := range Names {
		known = known || c.Name == n
	}
	if !known {
		return c, fmt.Errorf("%w: %q (want one of %s)", ErrUnknownWorkload, c.Name, strings.Join(Names, ", "))
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.PageSize < 64 || c.PageSize > 1<<20 || c.PageSize&(c.PageSize-1) != 0 {
		return c, fmt.Errorf("%w: page size %d (want a power of two from 64 to 1 MiB)", ErrBadConfig, c.PageSize)
	}
	if c.Size < 2*int64(c.PageSize) {
		return c, fmt.Errorf("%w: region size %d is less than two %d-byte pages", ErrBadConfig, c.Size, c.PageSize)
	}
	if c.Size > 1<<50 {
		return c, fmt.Errorf("%w: region size %d beyond 1 PiB", ErrBadConfig, c.Size)
	}
	c.Size -= c.Size % int64(c.PageSize)
	if c.Theta == 0 {
		c.Theta = DefaultTheta
	}
	if !(c.Theta > 0 && c.Theta < 1) {
		return c, fmt.Errorf("%w: zipf theta %v outside (0, 1)", ErrBadConfig, c.Theta)
	}
	pats := Patterns[c.Name]
	if len(pats) == 0 {
		if c.Pattern != "" {
			return c, fmt.Errorf("%w: %q (workload %s takes no pattern)", ErrUnknownPattern, c.Pattern, c.Name)
		}
	} else {
		if c.Pattern == "" {
			c.Pattern = pats[0]
		}
		ok := false
		for _, p := range pats {
			ok = ok || c.Pattern == p
		}
		if !ok {
			return c, fmt.Errorf("%w: %q for %s (want one of %s)", ErrUnknownPattern, c.Pattern, c.Name, strings.Join(pats, ", "))
		}
	}
	if c.Mix != "" {
		if _, err := ParseMix(c.Mix); err != nil {
			return c, err
		}
	}
	return c, nil
}

// mix returns the configured mix, or def when Mix is empty.
func (c Config) mix(def float64) Mix {
	if c.Mix == "" {
		return Mix{def}
	}
	m, _ := ParseMix(c.Mix) // validated by withDefaults
	return m
}

// ReadMix returns the mix the workload named by c runs: Mix if set, else
// the workload's default. For trace, whose accesses say R or W, it returns
// a negative Read.
func (c Config) ReadMix() Mix {
	switch c.Name {
	case KV:
		p := c.Pattern
		if p == "" {
			p = Patterns[KV][0]
		}
		return c.mix(kvReadRatio[p])
	case PageWalk:
		return c.mix(1)
	case Trace:
		return Mix{-1}
	}
	return c.mix(0.5)
}

// New returns the workload c names, with defaults filled in and every field
// validated. Errors wrap ErrUnknownWorkload, ErrUnknownPattern, ErrBadMix or
// ErrBadConfig and name the offending value.
func New(c Config) (Workload, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	switch c.Name {
	case Seq, Uniform, ZipfName:
		return newPages(c)
	case KV:
		return newKV(c)
	case PageWalk:
		return newPageWalk(c)
	case Trace:
		return newTraceWorkload(c)
	}
	panic("workload: invariant broken: name validated but not constructed")
}
