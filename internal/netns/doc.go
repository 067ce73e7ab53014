// Package netns lets tests partition a real network link: it puts one end
// of a veth pair in a fresh network namespace, so that a server started in
// that namespace (a memnode, an echo server) is reached over an interface
// that a test can take down and bring back, while every TCP connection
// stays open. It is the partition half of capability C1's fault injection;
// package faultproxy covers the rest in process.
//
// # Setup
//
// Create (or New, in a test) runs iproute2's ip: `ip netns add`, a veth pair
// with one end moved into the namespace, a /30 out of 10.231.0.0/16 on the
// two ends only, both ends and the namespace's loopback up. Names carry the
// pid of the creating process and a counter, so parallel test binaries do
// not collide and Sweep can remove what a killed one left. The root
// namespace also gets a blackhole route for the /30 with a high metric:
// should the connected route ever disappear, packets to the test addresses
// are dropped instead of following the default route off the machine.
//
// # Partition and heal
//
// Partition sets the namespace's end of the veth down: the root end loses
// its carrier and drops what it is sent, the namespace loses its route back.
// Nothing is refused or reset, so a client sees exactly the failure a
// deadline must catch: an open connection that never answers. Heal sets
// the end up again; the address and route return and TCP retransmission
// delivers what was held. (tc netem loss would also do, but this kernel
// has no sch_netem, and the image has no iptables.)
//
// # Cleanup
//
// Close kills the processes left in the namespace (`ip netns pids`), deletes
// the veth pair, the safety route and the namespace; New registers it with
// t.Cleanup, which the testing package runs also when the test fails or
// panics, and Create undoes a half-made pair itself. Tests that need a
// server inside the namespace re-execute the test binary through
// Pair.Command (`ip netns exec NAME`), with an environment variable that
// turns it into the server.
//
// Everything needs root and Linux; elsewhere Create returns ErrNotRoot,
// ErrNoIP or ErrNotSupported and New skips the test saying why.
package netns
