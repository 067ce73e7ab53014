package pmem

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Mode chooses the persistence domain of a file-backed pool.
type Mode int

const (
	// ModeAuto uses DAX cache-line flushing when the file system accepts
	// MAP_SYNC, and msync otherwise.
	ModeAuto Mode = iota
	// ModeMsync always uses msync, even on DAX.
	ModeMsync
	// ModeForcePmem treats the file as persistent memory whatever it lives
	// on (typically tmpfs) and flushes with CLWB (else CLFLUSHOPT, CLFLUSH)
	// and SFENCE, as PMDK does under PMEM_IS_PMEM_FORCE=1. Data is then NOT
	// durable across power loss unless the file really is on pmem; the mode
	// exists to measure the flush-and-fence protocol itself.
	ModeForcePmem
)

// ParseMode parses "auto", "msync" or "force-pmem".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return ModeAuto, nil
	case "msync":
		return ModeMsync, nil
	case "force-pmem", "clwb":
		return ModeForcePmem, nil
	}
	return 0, fmt.Errorf("%w: mode %q (want auto, msync or force-pmem)", ErrBadOptions, s)
}

// TxWriter is the slice of a journal transaction that the allocator and the
// root update need: a logged write, and callbacks run once the transaction's
// fate is known. Package journal's *Tx implements it.
type TxWriter interface {
	// Write makes b the content of the pool at off when the transaction commits.
	Write(off uint64, b []byte) error
	// OnCommit runs fn after the transaction is durable.
	OnCommit(fn func())
	// OnAbort runs fn if the transaction aborts.
	OnAbort(fn func())
}

// Pool is a mapped persistent pool: a header page, the journal area, the
// allocation map and the heap (see Header). Persistent references are
// offsets from the start of the pool, never Go pointers.
//
// The byte slice returned by Mem may be read and written by any goroutine;
// callers coordinate their own accesses. Flush/Fence follow the Domain
// contract.
type Pool struct {
	mem    []byte
	hdr    Header
	dom    *counting
	file   *os.File // nil for memory pools
	rootMu sync.Mutex
	closed bool
}

// CreateOptions configure a new pool.
type CreateOptions struct {
	Size        uint64 // total file size in bytes
	Layout      string // layout id, checked at open (like PMDK's layout)
	Journals    uint32 // K: number of micro-journals
	JournalSize uint32 // S: bytes per journal, multiple of 64
	Mode        Mode
}

// OpenOptions configure opening an existing pool.
type OpenOptions struct {
	Layout string // if not empty, must equal the pool's layout id
	Mode   Mode
}

// Format writes a fresh pool header for the given geometry into mem, whose
// length must be the pool size, and zeroes the rest of the header page. The
// journal area and allocation map are expected to be zero (a new file or a
// fresh buffer); an all-zero journal is a free one.
func Format(mem []byte, layout string, k, s uint32) (Header, error) {
	h, err := Geometry(uint64(len(mem)), layout, k, s)
	if err != nil {
		return h, err
	}
	clear(mem[:HeaderSize])
	h.encode(mem)
	return h, nil
}

// Create creates the pool file at path (which must not exist), formats it and
// maps it.
func Create(path string, o CreateOptions) (*Pool, error) {
	if _, err := Geometry(o.Size, o.Layout, o.Journals, o.JournalSize); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrExists, path)
		}
		return nil, fmt.Errorf("pmem: create: %w", err)
	}
	if err := f.Truncate(int64(o.Size)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("pmem: create: %w", err)
	}
	p, err := mapPool(f, o.Mode)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if _, err := Format(p.mem, o.Layout, o.Journals, o.JournalSize); err != nil {
		p.Close()
		os.Remove(path)
		return nil, err
	}
	p.Flush(0, HeaderSize)
	if err := p.Fence(); err != nil {
		p.Close()
		os.Remove(path)
		return nil, err
	}
	if p.hdr, err = DecodeHeader(p.mem); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Open maps an existing pool file and validates its header. It does not run
// journal recovery; package journal does that when it opens the journals.
func Open(path string, o OpenOptions) (*Pool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("pmem: open: %w", err)
	}
	p, err := mapPool(f, o.Mode)
	if err != nil {
		f.Close()
		return nil, err
	}
	if p.hdr, err = DecodeHeader(p.mem); err != nil {
		p.Close()
		return nil, err
	}
	if o.Layout != "" && o.Layout != p.hdr.Layout {
		p.Close()
		return nil, fmt.Errorf("%w: pool has %q, caller wants %q", ErrLayout, p.hdr.Layout, o.Layout)
	}
	return p, nil
}

func mapPool(f *os.File, mode Mode) (*Pool, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pmem: stat: %w", err)
	}
	size := st.Size()
	if size < HeaderSize || size > 1<<46 {
		return nil, fmt.Errorf("%w: file of %d bytes", ErrBadGeometry, size)
	}
	mem, dax, err := mapFile(f, int(size), mode == ModeAuto)
	if err != nil {
		return nil, fmt.Errorf("pmem: mmap: %w", err)
	}
	var d Domain
	switch {
	case dax:
		d, err = NewLineDomain(mem, "dax")
	case mode == ModeForcePmem:
		d, err = NewLineDomain(mem, "forced")
	default:
		d = newMsyncDomain(mem)
	}
	if err != nil {
		unmap(mem)
		return nil, err
	}
	return &Pool{mem: mem, dom: &counting{d: d}, file: f}, nil
}

// OpenMem opens a pool held in mem (formatted with Format) over domain d,
// typically a *Sim. The pool does not own mem.
func OpenMem(mem []byte, d Domain, layout string) (*Pool, error) {
	h, err := DecodeHeader(mem)
	if err != nil {
		return nil, err
	}
	if layout != "" && layout != h.Layout {
		return nil, fmt.Errorf("%w: pool has %q, caller wants %q", ErrLayout, h.Layout, layout)
	}
	return &Pool{mem: mem, hdr: h, dom: &counting{d: d}}, nil
}

// Mem returns the pool's memory. Index it with pool offsets.
func (p *Pool) Mem() []byte { return p.mem }

// Header returns the pool's decoded header.
func (p *Pool) Header() Header { return p.hdr }

// DomainName names the persistence domain in use.
func (p *Pool) DomainName() string { return p.dom.d.Name() }

// Stats returns the flush and fence counts since the pool was opened.
func (p *Pool) Stats() Stats {
	return Stats{Fences: p.dom.fences.Load(), Flushes: p.dom.flushes.Load()}
}

// Flush starts write-back of [off, off+n); out-of-range parts are ignored.
func (p *Pool) Flush(off, n uint64) {
	if off >= uint64(len(p.mem)) || n == 0 {
		return
	}
	if n > uint64(len(p.mem))-off {
		n = uint64(len(p.mem)) - off
	}
	p.dom.Flush(int(off), int(n))
}

// Range is a byte range of a pool: Off, Len.
type Range struct{ Off, Len uint64 }

// FlushRanges starts write-back of every range in rs, as Flush does for
// each, with one count for the batch (see counting: no locked instruction
// runs between the flushes).
func (p *Pool) FlushRanges(rs []Range) {
	p.dom.flushes.Add(uint64(len(rs)))
	p.flushRanges(rs)
}

// PersistRanges is FlushRanges and then Fence: when it returns nil the
// ranges are durable. The batch is counted (len(rs) flushes and one fence)
// before the first flush. An atomic add is a locked instruction, which on
// x86 waits for the core's outstanding write-backs as the fence does, so
// no count runs between the flushes and the fence, nor right after it.
// Where the caller then waits for the write-backs depends on the CPU: on
// the AMD guest measured (bench/micro/fence_overlap.c) loads after the
// fence run during them, while locked instructions and 2 KiB of copies
// wait.
func (p *Pool) PersistRanges(rs []Range) error {
	p.dom.flushes.Add(uint64(len(rs)))
	p.dom.fences.Add(1)
	p.flushRanges(rs)
	return p.dom.d.Fence()
}

func (p *Pool) flushRanges(rs []Range) {
	for _, r := range rs {
		off, n := r.Off, r.Len
		if off >= uint64(len(p.mem)) || n == 0 {
			continue
		}
		if n > uint64(len(p.mem))-off {
			n = uint64(len(p.mem)) - off
		}
		p.dom.d.Flush(int(off), int(n))
	}
}

// Fence waits until everything flushed before it by the calling goroutine
// is durable (see Domain).
func (p *Pool) Fence() error { return p.dom.Fence() }

// Check returns ErrOutOfRange unless [off, off+n) lies inside the pool.
func (p *Pool) Check(off, n uint64) error {
	if off > uint64(len(p.mem)) || n > uint64(len(p.mem))-off {
		return fmt.Errorf("%w: [%d, +%d) in a pool of %d bytes", ErrOutOfRange, off, n, len(p.mem))
	}
	return nil
}

// Root returns the current root slot, or ErrNoRoot.
func (p *Pool) Root() (RootSlot, error) {
	r, ok, _ := currentRoot(p.mem[:HeaderSize])
	if !ok {
		return r, ErrNoRoot
	}
	return r, nil
}

// SetRoot makes (name, off, size) the pool's root object when tx commits, by
// writing the inactive root slot with the next sequence number through tx.
// Callers must not have two uncommitted SetRoot transactions at once.
func (p *Pool) SetRoot(tx TxWriter, name string, off, size uint64) error {
	if len(name) == 0 || len(name) > RootNameMax {
		return fmt.Errorf("%w: root name must be 1..%d bytes", ErrBadOptions, RootNameMax)
	}
	if err := p.Check(off, size); err != nil {
		return err
	}
	p.rootMu.Lock()
	defer p.rootMu.Unlock()
	cur, _, next := currentRoot(p.mem[:HeaderSize])
	slot := RootSlot{Seq: cur.Seq + 1, Off: off, Size: size, Name: name}
	return tx.Write(uint64(next), slot.encode())
}

// Close unmaps and closes a file-backed pool. It does not flush: whatever
// was not fenced is as durable as a crash would leave it.
func (p *Pool) Close() error {
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	if p.file == nil {
		return nil
	}
	err := unmap(p.mem)
	if cerr := p.file.Close(); err == nil {
		err = cerr
	}
	p.mem = nil
	return err
}
