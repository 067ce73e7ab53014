// Package farmem makes memory on other machines usable as memory by a Go
// process, over TCP on a stock Linux kernel.
//
// # Explicit mode
//
// Open returns a Region: a byte-addressed range of far memory whose pages
// live on memory nodes (farmem memnode) and are cached in a local DRAM budget.
// Region implements io.ReaderAt and io.WriterAt; Pin gives a zero-copy view
// of one page. Every access goes through the engine (package engine), which
// fetches missing pages in batches, evicts with CLOCK, and writes dirty pages
// back before their frames are reused.
//
//	r, err := farmem.Open(ctx, farmem.Config{
//		Size:  1 << 30,             // 1 GiB region
//		Local: 256 << 20,           // 256 MiB of local DRAM
//		Nodes: []string{"10.0.0.2:7070"},
//	})
//
// # Transparent mode
//
// Map attaches to a pager (farmem pager --socket PATH) and returns a Mapping
// whose Bytes is a plain []byte: unmodified code indexes, copies and sorts
// it, and its page faults are served by the pager process through
// userfaultfd (the pager must be another process: see Mapping). The pager
// runs the far tier (memnodes, with a local backup when given one) and the
// DRAM budget of every application on the host.
//
//	m, err := farmem.Map(ctx, "/run/farmem/pager.sock", 1<<30)
//	b := m.Bytes() // len(b) == 1 GiB
//
// # Failures of the memnodes
//
// With Config.Backup, every page that leaves DRAM for a memnode also has a
// copy in a local backup file; a read the memnode does not answer within a
// deadline is served from the backup, and a node that comes back is
// resynced in the background (package store/resilient, docs/FAULTS.md).
//
// # Errors
//
// Errors wrap the named errors of this package and of packages store and
// engine (store.ErrFull, store.ErrUnavailable, engine.ErrOutOfRange, ...);
// test them with errors.Is.
package farmem
