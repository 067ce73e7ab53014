package workload_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/farmem/farmem/workload"
	"github.com/farmem/farmem/workload/hist"
)

// timed is a Memory that records the latency of every call, as farmem bench
// does around a Region.
type timed struct {
	workload.Memory
	h *hist.Histogram
}

func (t timed) ReadAt(p []byte, off int64) (int, error) {
	start := time.Now()
	n, err := t.Memory.ReadAt(p, off)
	t.h.RecordDuration(time.Since(start))
	return n, err
}

// A zipf workload over a plain slice, the way a transparent mapping is used,
// with the read latencies collected by a wrapper.
func Example() {
	ctx := context.Background()
	w, err := workload.New(workload.Config{Name: "zipf", Size: 8 << 20, Seed: 42})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer w.Close()
	mem := make(workload.SliceMemory, 8<<20) // e.g. mapping.Bytes()
	if err := w.Setup(ctx, mem); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	var h hist.Histogram
	res, err := workload.Run(ctx, w, timed{mem, &h}, workload.RunOptions{MaxOps: 10000})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	sweep, _ := w.Verify(ctx, mem)
	fmt.Println("ops:", res.Ops, "reads+writes:", res.Reads+res.Writes)
	fmt.Println("timed reads:", h.Count() == res.Reads)
	fmt.Println("mismatches:", res.Mismatches, "after sweep:", sweep.Mismatches)
	// Output:
	// ops: 10000 reads+writes: 10000
	// timed reads: true
	// mismatches: 0 after sweep: 0
}

// A trace can be written by hand in the text form and replayed.
func Example_trace() {
	const trace = `# two writes and a read back
W 0 8192
W 4096 100
R 0 12288
`
	w, err := workload.New(workload.Config{Name: "trace", Size: 1 << 20, Trace: strings.NewReader(trace)})
	if err != nil {
		fmt.Println(err)
		return
	}
	mem := make(workload.SliceMemory, 1<<20)
	if err := w.Setup(context.Background(), mem); err != nil {
		fmt.Println(err)
		return
	}
	res, err := workload.Run(context.Background(), w, mem, workload.RunOptions{MaxOps: 100})
	fmt.Println(res.Ops, res.Ended, res.Mismatches, err)
	// Output: 3 true 0 <nil>
}
