// Package cpuqos holds a CPU wake-up latency request with the kernel's PM
// QoS interface (/dev/cpu_dma_latency) for as long as a process needs it.
//
// On a virtual machine whose idle vCPUs halt at once (the haltpoll cpuidle
// driver with guest_halt_poll_ns = 0, as on the machines farmem is tested
// on), every wake-up of a thread on an idle vCPU is an exit to the
// hypervisor and an interrupt back: 20–40 µs, more than a loopback round
// trip. A request of 0 µs makes the cpuidle governor keep idle CPUs in
// their polling state instead, so a wake-up costs what it costs on a busy
// machine. The request is the kernel's documented per-process mechanism
// (Documentation/power/pm_qos_interface.rst; tuned's latency-performance
// profile and cyclictest use it): it lasts while the file stays open and is
// dropped when the process closes it or exits, so it changes no setting of
// the machine. While held, idle CPUs spin, which costs the host CPU time.
package cpuqos

import (
	"errors"
	"time"
)

// Path is the PM QoS CPU latency device.
const Path = "/dev/cpu_dma_latency"

// ErrUnavailable means the request could not be made: no PM QoS device (a
// kernel without CONFIG_CPU_IDLE, a container without /dev) or no
// permission to open it (it is root-only).
var ErrUnavailable = errors.New("cpuqos: PM QoS CPU latency request unavailable")

// ErrLatency means a requested latency is out of range (negative, or more
// than the interface's int32 microseconds).
var ErrLatency = errors.New("cpuqos: latency out of range")

// maxLatency is the largest value the interface takes (S32_MAX µs).
const maxLatency = time.Duration(1<<31-1) * time.Microsecond
