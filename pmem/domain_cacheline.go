package pmem

// lineDomain persists by flushing cache lines (CLWB, else CLFLUSHOPT, else
// CLFLUSH) and fencing with SFENCE. It is right for a DAX mapping made with
// MAP_SYNC, where the page tables and file metadata are already durable, and
// for a tmpfs file that is deliberately treated as persistent memory for
// benchmarks (PMDK's PMEM_IS_PMEM_FORCE).
type lineDomain struct {
	mem   []byte
	instr FlushInstr
	name  string
	_     [16]byte // 64 bytes: a line of its own (read on every flush)
}

// NewLineDomain returns a Domain over mem that flushes with the best CPU
// instruction. It returns ErrNotSupported when the CPU has none.
func NewLineDomain(mem []byte, name string) (Domain, error) {
	instr := DetectFlush()
	if instr == FlushNone {
		return nil, ErrNotSupported
	}
	return &lineDomain{mem: mem, instr: instr, name: name + "-" + instr.String()}, nil
}

func (d *lineDomain) Flush(off, n int) { flushLines(d.instr, d.mem, off, n) }

func (d *lineDomain) Fence() error {
	storeFence()
	return nil
}

func (d *lineDomain) Name() string { return d.name }
