// Package pmem maps persistent pools and makes stores to them durable.
//
// # Pool
//
// A pool is one file mapped shared: a 4 KiB header page, K micro-journals of
// S bytes (package journal), an allocation map and a heap. Everything that
// refers to something else in the pool does so by offset, never by Go
// pointer, so a pool can be mapped anywhere. The header carries a magic,
// version, layout id (checked at open, like PMDK's layout string), the
// geometry and a CRC32C; see Header for the diagram. Two root slots alternate
// the way bbolt keeps two meta pages: the valid slot with the higher
// sequence number names the root object, so a torn slot never loses the
// previous root, and SetRoot writes the other slot through a journal
// transaction so that publishing a root is atomic with allocating it.
//
// # Persistence domains
//
// A Domain says when a store becomes durable: Flush starts write-back of a
// range, Fence waits for it. Three implement it.
//   - DAX: when the file system accepts MAP_SHARED_VALIDATE|MAP_SYNC, lines
//     are written back with CLWB (else CLFLUSHOPT, else CLFLUSH, found with
//     CPUID because golang.org/x/sys/cpu does not report them) and ordered
//     with SFENCE, all from Go assembly. ModeForcePmem uses the same path on
//     any file (a tmpfs file, typically), as PMDK's PMEM_IS_PMEM_FORCE=1
//     does for benchmarks; that is not durable across power loss.
//   - msync: otherwise. Flush records the page range; Fence merges the
//     ranges and calls msync(MS_SYNC) once per contiguous run.
//   - Sim, the crash simulator: it keeps a durable image beside the live
//     memory, snapshots lines at Flush, persists them at Fence, and produces
//     post-crash images with CrashClone in the spirit of pebble's
//     vfs.CrashClone — the image at a fence boundary, or that image plus a
//     random subset of the lines written but not yet durable, each torn at
//     cache-line granularity. NewStrictSim's fence persists only the lines
//     flushed by the goroutine that fences, as SFENCE orders only its own
//     core's CLWBs: the goroutine that fences must flush what it fences.
//
// # Allocator
//
// The heap is allocated in 64-byte units recorded in the allocation map, one
// byte per unit (free, block start, continuation). Alloc and Free write the
// map through a journal transaction (the TxWriter interface), so they are
// atomic with the transaction that uses the block; one byte per unit keeps
// concurrent transactions' redo entries on disjoint bytes. The DRAM mirror
// of the map, with reservations of open transactions, is rebuilt at open
// after recovery.
package pmem
