// Package attach implements the Unix-socket attach protocol of farmem's
// transparent mode, both sides: an application asks the pager for a region
// of memory, maps it, and hands the pager the userfaultfd through which the
// pager serves the region's page faults.
//
// # Shape
//
// The handler of a Go program's page faults must live in another process
// (package uffd explains why). The application and the pager therefore share
// the region as a memfd that both map MAP_SHARED, and the application passes
// its userfaultfd to the pager with SCM_RIGHTS — the shape of Firecracker's
// page-fault handler protocol, where the VMM sends its userfaultfd and guest
// memory layout to an external handler over a Unix socket.
//
//	application                                pager
//	  Hello{versions, name}          ───►
//	                                 ◄───  Welcome{version, page size, limits,
//	                                               uffd features and modes wanted}
//	  Alloc{size}                    ───►
//	                                 ◄───  Region{id, size} + [memfd]
//	  mmap(memfd, MAP_SHARED); userfaultfd(); UFFDIO_API; UFFDIO_REGISTER
//	  Register{addr, len, features,
//	           modes} + [uffd]       ───►   (checks the descriptor, maps its view)
//	                                 ◄───  Ready{id}
//	  ... the connection stays open: it is the liveness channel ...
//	  Bye (detach)                   ───►   or   ◄───  Bye (pager shutting down)
//
// Message framing is in the doc of Message; docs/TRANSPARENT.md specifies the
// protocol for implementations in other languages. The socket is
// SOCK_SEQPACKET, so every message is one record and its descriptors travel
// on that record; one connection carries one region; one pager serves any
// number of connections. The pager identifies the application by SO_PEERCRED,
// not by anything the application says, and bounds every handshake with a
// timeout.
//
// # Pager death and re-attach
//
// The application keeps its own copy of the userfaultfd open. When the pager
// dies, its copy closes, but the userfaultfd stays alive: accesses to pages
// that are not resident block instead of silently reading zeros, and the
// Region reports ErrPagerLost through Done and Err. The memfd also survives
// (the application maps it), so the resident pages are intact. A restarted
// pager gets the region back through Reattach: a new connection whose
// Reattach message names the region id and carries the memfd and the
// userfaultfd. The new pager recovers the other pages from its backup, and
// wakes the whole range once it serves, because faults its predecessor read
// but never resolved will not be delivered again.
//
// # Using it
//
// Application side: Attach, then Region.Bytes; watch Region.Done; Close.
// Pager side: Listen, then Accept in a loop; each Attachment carries the
// peer's credentials, the region id, the memfd, the userfaultfd, the
// application's base address, the pager's own view of the memfd and the
// connection, and Done/Err for the application's departure.
package attach
