package workload

import "sync"

// Recorder is a Memory that passes every call to another Memory and writes
// it, as an Access, to a TraceWriter: wrapped around the Memory of any
// workload run, it produces a trace that the trace workload replays. It
// records what was asked, also for calls that failed.
//
// Recorder is safe for concurrent use; records are written in the order the
// calls return.
type Recorder struct {
	mem Memory
	w   TraceWriter
	mu  sync.Mutex
	n   uint64
	err error
}

var _ Memory = (*Recorder)(nil)

// NewRecorder returns a Recorder that forwards to mem and records to w. The
// caller closes w after the run.
func NewRecorder(mem Memory, w TraceWriter) *Recorder { return &Recorder{mem: mem, w: w} }

func (r *Recorder) record(write bool, p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	if r.err == nil {
		r.err = r.w.Write(Access{Write: write, Offset: off, Length: int64(len(p))})
		r.n++
	}
	r.mu.Unlock()
}

// ReadAt reads from the underlying Memory and records the read.
func (r *Recorder) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.mem.ReadAt(p, off)
	r.record(false, p, off)
	return n, err
}

// WriteAt writes to the underlying Memory and records the write.
func (r *Recorder) WriteAt(p []byte, off int64) (int, error) {
	n, err := r.mem.WriteAt(p, off)
	r.record(true, p, off)
	return n, err
}

// Count returns the number of accesses recorded.
func (r *Recorder) Count() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Err returns the first error of the TraceWriter; recording stops at it.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
