package workload

import (
	"context"
	"fmt"
	"io"
	"os"
)

// replayChunk bounds the buffer of trace replay: a longer access is made as
// several Memory calls of at most this many bytes.
const replayChunk = 1 << 20

// traceWork replays a trace. Reads are verified against a shadow of one
// uint32 version per grain; writes are widened to whole grains (the content
// of a grain is a function of its version, so a write must cover it).
type traceWork struct {
	ioCounter
	cfg    Config
	grain  int64
	ver    []uint32
	src    io.Reader
	file   *os.File
	seeker io.Seeker
	tr     TraceReader
	n      uint64 // records, when prescanned
	buf    []byte
	ready  bool
}

func newTraceWorkload(c Config) (*traceWork, error) {
	if c.Grain == 0 {
		c.Grain = c.PageSize
	}
	if c.Grain < 64 || c.Grain > c.PageSize || c.Grain&(c.Grain-1) != 0 {
		return nil, fmt.Errorf("%w: trace grain %d (want a power of two from 64 to the page size %d)", ErrBadConfig, c.Grain, c.PageSize)
	}
	w := &traceWork{cfg: c, grain: int64(c.Grain)}
	switch {
	case c.Trace != nil:
		w.src = c.Trace
	case c.TracePath != "":
		f, err := os.Open(c.TracePath)
		if err != nil {
			return nil, fmt.Errorf("%w: trace file: %w", ErrBadConfig, err)
		}
		w.file, w.src = f, f
	default:
		return nil, fmt.Errorf("%w: the trace workload needs a trace file", ErrBadConfig)
	}
	if s, ok := w.src.(io.Seeker); ok {
		w.seeker = s
	}
	return w, nil
}

func (w *traceWork) Name() string   { return Trace }
func (w *traceWork) Config() Config { return w.cfg }

// ShadowBytes returns the memory of the shadow model: 4 bytes per grain.
func (w *traceWork) ShadowBytes() int64 { return int64(len(w.ver)) * 4 }

// Close closes the trace file if the workload opened it.
func (w *traceWork) Close() error {
	if w.file != nil {
		err := w.file.Close()
		w.file = nil
		return err
	}
	return nil
}

func (w *traceWork) rewind() error {
	if _, err := w.seeker.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%w: rewinding: %w", ErrTraceIO, err)
	}
	tr, _, err := NewTraceReader(w.src)
	if err != nil {
		return err
	}
	w.tr = tr
	return nil
}

func (w *traceWork) inRegion(a Access, rec uint64) error {
	if a.Offset+a.Length > w.cfg.Size {
		return fmt.Errorf("%w: record %d: %v beyond the region of %d bytes", ErrTraceOutOfRange, rec, a, w.cfg.Size)
	}
	return nil
}

// Setup validates a seekable trace in full (so a damaged or out-of-range
// trace fails before the measured phase), then populates the region.
func (w *traceWork) Setup(ctx context.Context, mem Memory) error {
	longest := int64(0)
	if w.seeker != nil {
		tr, _, err := NewTraceReader(w.src)
		if err != nil {
			return err
		}
		for w.n = 0; ; w.n++ {
			if w.n%65536 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			a, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if err := w.inRegion(a, w.n); err != nil {
				return err
			}
			longest = max(longest, a.Length+2*w.grain)
		}
		if err := w.rewind(); err != nil {
			return err
		}
	} else {
		tr, _, err := NewTraceReader(w.src)
		if err != nil {
			return err
		}
		w.tr = tr
		longest = replayChunk
	}
	w.buf = make([]byte, min(longest, replayChunk, w.cfg.Size))
	w.ver = make([]uint32, w.cfg.Size/w.grain)
	if !w.cfg.NoPopulate {
		chunk := make([]byte, populateChunk)
		for off := int64(0); off < w.cfg.Size; off += populateChunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			b := chunk[:min(populateChunk, w.cfg.Size-off)]
			for g := int64(0); g < int64(len(b)); g += w.grain {
				gi := (off + g) / w.grain
				w.ver[gi] = 1
				newPattern(w.cfg.Seed, uint64(gi), 1).fill(b[g:g+w.grain], off+g)
			}
			if err := w.writeAt(mem, b, off); err != nil {
				return fmt.Errorf("workload: populating at %d: %w", off, err)
			}
		}
	}
	w.ready = true
	w.ResetStats()
	return nil
}

func (w *traceWork) Step(mem Memory) error {
	if !w.ready {
		return ErrNotSetUp
	}
	a, err := w.tr.Next()
	if err == io.EOF {
		if !w.cfg.Loop || w.seeker == nil || w.n == 0 {
			return ErrEnd
		}
		if err := w.rewind(); err != nil {
			return err
		}
		a, err = w.tr.Next()
	}
	if err == io.EOF {
		return ErrEnd
	}
	if err != nil {
		return err
	}
	if err := w.inRegion(a, w.st.Ops); err != nil {
		return err
	}
	if len(w.buf) == 0 {
		w.buf = make([]byte, replayChunk)
	}
	if a.Write {
		err = w.replayWrite(mem, a)
	} else {
		err = w.replayRead(mem, a)
	}
	if err != nil {
		return err
	}
	w.st.Ops++
	return nil
}

func (w *traceWork) grow(n int64) {
	if int64(len(w.buf)) < n && len(w.buf) < replayChunk {
		w.buf = make([]byte, min(max(n, 2*int64(len(w.buf))), replayChunk))
	}
}

func (w *traceWork) replayRead(mem Memory, a Access) error {
	w.grow(a.Length)
	for off, end := a.Offset, a.Offset+a.Length; off < end; {
		b := w.buf[:min(int64(len(w.buf)), end-off)]
		if err := w.readAt(mem, b, off); err != nil {
			return err
		}
		m := Mismatch{What: "grain", Offset: off, Length: len(b)}
		for p := int64(0); p < int64(len(b)); {
			gi := (off + p) / w.grain
			seg := min((gi+1)*w.grain-(off+p), int64(len(b))-p)
			if v := w.ver[gi]; v != unknownVersion {
				pat := newPattern(w.cfg.Seed, uint64(gi), v)
				bad, first := pat.check(b[p:p+seg], off+p)
				if bad > 0 && m.BadBytes == 0 {
					o := off + p + int64(first)
					m.BadOffset, m.Got, m.Want = o, b[p+int64(first)], pat.byteAt(o)
				}
				m.BadBytes += bad
			}
			p += seg
		}
		if m.BadBytes > 0 {
			m.Zero = isZero(b)
			w.st.mismatch(m)
		}
		off += int64(len(b))
	}
	w.st.Reads++
	return nil
}

func (w *traceWork) replayWrite(mem Memory, a Access) error {
	start := a.Offset &^ (w.grain - 1)
	end := (a.Offset + a.Length + w.grain - 1) &^ (w.grain - 1)
	w.grow(end - start)
	chunk := int64(len(w.buf)) &^ (w.grain - 1)
	for off := start; off < end; {
		b := w.buf[:min(chunk, end-off)]
		for p := int64(0); p < int64(len(b)); p += w.grain {
			gi := (off + p) / w.grain
			newPattern(w.cfg.Seed, uint64(gi), nextVersion(w.ver[gi])).fill(b[p:p+w.grain], off+p)
		}
		err := w.writeAt(mem, b, off)
		for p := int64(0); p < int64(len(b)); p += w.grain {
			gi := (off + p) / w.grain
			if err != nil {
				w.ver[gi] = unknownVersion
			} else {
				w.ver[gi] = nextVersion(w.ver[gi])
			}
		}
		if err != nil {
			return err
		}
		off += int64(len(b))
	}
	w.st.Writes++
	return nil
}
