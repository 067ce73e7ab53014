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
// Map (in the transparent-mode issue) gives a plain []byte whose page faults
// are served by an out-of-process pager through userfaultfd.
//
// # Errors
//
// Errors wrap the named errors of this package and of packages store and
// engine (store.ErrFull, store.ErrUnavailable, engine.ErrOutOfRange, ...);
// test them with errors.Is.
package farmem
