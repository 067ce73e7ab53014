package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// RunOptions bound and observe the measured phase.
type RunOptions struct {
	// Duration ends the run after this long (0: no time limit).
	Duration time.Duration
	// MaxOps ends the run after this many operations (0: no limit); with
	// Workers it is shared out among them.
	MaxOps uint64
	// MaxErrors is how many Memory errors the run tolerates: it counts
	// them, keeps the first few, and stops with ErrTooManyErrors on one
	// more. 0 stops at the first error; a negative value never stops. With
	// Workers the limit applies to each worker.
	MaxErrors int
	// Workers > 1 runs that many goroutines over disjoint partitions of
	// the workload (it must implement Partitioner). The Memory must then be
	// safe for concurrent use.
	Workers int
	// Progress, if set, is called from the run's goroutine about every
	// ProgressInterval (default 500 ms) with the counters so far. With
	// Workers, only Ops, Errors and Elapsed are filled in.
	Progress         func(Result)
	ProgressInterval time.Duration
}

// MaxFirstErrors is how many Memory errors a Result keeps in detail.
const MaxFirstErrors = 4

// Result is the outcome of the measured phase.
type Result struct {
	Workload string
	Stats
	// Mismatch details, at most MaxFirstMismatches.
	FirstMismatches []Mismatch
	// Errors counts operations that failed in the Memory; FirstErrors
	// keeps the first few.
	Errors      uint64
	FirstErrors []error
	Elapsed     time.Duration
	Workers     int
	// Ended is true when the workload ran out of operations (ErrEnd).
	Ended bool
}

// OpsPerSec returns the throughput of the run.
func (r Result) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// fatal reports errors that end a run at once: they are not the Memory's.
func fatal(err error) bool {
	for _, e := range []error{ErrNotSetUp, ErrTraceSyntax, ErrTraceTruncated, ErrTraceOutOfRange, ErrTraceFormat, ErrTraceIO, ErrShortIO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Run performs the measured phase of w, which must be set up, on mem: it
// resets w's counters and calls Step until the duration, the op limit, the
// context or the workload ends, or the Memory fails more than MaxErrors
// times. Each op is allocation-free. The returned error is nil for a run
// that ended by one of its limits (or ErrEnd), the context's error if it was
// cancelled before any limit, or the error that stopped it; the Result is
// valid in every case.
func Run(ctx context.Context, w Workload, mem Memory, opts RunOptions) (Result, error) {
	if opts.Duration <= 0 && opts.MaxOps == 0 && ctx.Done() == nil {
		return Result{Workload: w.Name()}, ErrNoLimit
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 500 * time.Millisecond
	}
	if opts.Workers > 1 {
		return runParallel(ctx, w, mem, opts)
	}
	w.ResetStats()
	start := time.Now()
	var deadline time.Time
	if opts.Duration > 0 {
		deadline = start.Add(opts.Duration)
	}
	nextProgress := start.Add(opts.ProgressInterval)
	res := Result{Workload: w.Name(), Workers: 1}
	var runErr error
	var counter atomic.Uint64
	runErr = loop(ctx, w, mem, &res, opts.MaxOps, opts.MaxErrors, deadline, &counter, func(now time.Time) {
		if opts.Progress != nil && now.After(nextProgress) {
			nextProgress = now.Add(opts.ProgressInterval)
			r := res
			r.Stats = w.Stats()
			r.FirstMismatches = r.Stats.FirstMismatches()
			r.Elapsed = now.Sub(start)
			opts.Progress(r)
		}
	})
	res.Elapsed = time.Since(start)
	res.Stats = w.Stats()
	res.FirstMismatches = res.Stats.FirstMismatches()
	return res, runErr
}

// loop is one worker's measured phase. tick is called every few ops.
func loop(ctx context.Context, w Workload, mem Memory, res *Result, maxOps uint64, maxErrors int,
	deadline time.Time, counter *atomic.Uint64, tick func(time.Time)) error {
	// Limits are checked every 16 ops while ops are fast, and after every
	// op while they average more than 50 µs, so a slow memory
	// (a failover deadline, a blackholed link) does not overrun Duration.
	every := uint64(16)
	var last time.Time
	next := uint64(0)
	for i := uint64(0); ; i++ {
		if i == next {
			if err := ctx.Err(); err != nil {
				return err
			}
			now := time.Now()
			if !deadline.IsZero() && !now.Before(deadline) {
				return nil
			}
			if now.Sub(last) > time.Duration(every)*50*time.Microsecond {
				every = 1
			} else {
				every = 16
			}
			last, next = now, i+every
			counter.Store(i)
			if tick != nil {
				tick(now)
			}
		}
		if maxOps > 0 && i >= maxOps {
			return nil
		}
		err := w.Step(mem)
		if err == nil {
			continue
		}
		if errors.Is(err, ErrEnd) {
			res.Ended = true
			return nil
		}
		if fatal(err) {
			return err
		}
		res.Errors++
		if len(res.FirstErrors) < MaxFirstErrors {
			res.FirstErrors = append(res.FirstErrors, err)
		}
		if maxErrors >= 0 && res.Errors > uint64(maxErrors) {
			return fmt.Errorf("%w (%d): %w", ErrTooManyErrors, res.Errors, err)
		}
	}
}

func runParallel(ctx context.Context, w Workload, mem Memory, opts RunOptions) (Result, error) {
	p, ok := w.(Partitioner)
	if !ok {
		return Result{Workload: w.Name()}, fmt.Errorf("%w: %s", ErrNotPartitionable, w.Name())
	}
	parts, err := p.Partition(opts.Workers)
	if err != nil {
		return Result{Workload: w.Name()}, err
	}
	n := len(parts)
	res := make([]Result, n)
	errs := make([]error, n)
	counters := make([]atomic.Uint64, n)
	start := time.Now()
	var deadline time.Time
	if opts.Duration > 0 {
		deadline = start.Add(opts.Duration)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i, part := range parts {
		part.ResetStats()
		maxOps := uint64(0)
		if opts.MaxOps > 0 {
			maxOps = opts.MaxOps / uint64(n)
			if uint64(i) < opts.MaxOps%uint64(n) {
				maxOps++
			}
			if maxOps == 0 {
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = loop(ctx, part, mem, &res[i], maxOps, opts.MaxErrors, deadline, &counters[i], nil)
		}()
	}
	go func() { wg.Wait(); close(done) }()
	if opts.Progress != nil {
		t := time.NewTicker(opts.ProgressInterval)
	wait:
		for {
			select {
			case <-done:
				break wait
			case now := <-t.C:
				var ops uint64
				for i := range counters {
					ops += counters[i].Load()
				}
				opts.Progress(Result{Workload: w.Name(), Stats: Stats{Ops: ops}, Elapsed: now.Sub(start), Workers: n})
			}
		}
		t.Stop()
	}
	<-done
	total := Result{Workload: w.Name(), Workers: n, Elapsed: time.Since(start), Ended: true}
	var runErr error
	for i, part := range parts {
		st := part.Stats()
		total.Stats.add(&st)
		total.Errors += res[i].Errors
		for _, e := range res[i].FirstErrors {
			if len(total.FirstErrors) < MaxFirstErrors {
				total.FirstErrors = append(total.FirstErrors, e)
			}
		}
		total.Ended = total.Ended && res[i].Ended
		if runErr == nil {
			runErr = errs[i]
		}
	}
	total.FirstMismatches = total.Stats.FirstMismatches()
	return total, runErr
}
