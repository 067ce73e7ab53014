package main

import (
	"fmt"

	"github.com/farmem/farmem/internal/cpuqos"
)

const pmQoSUsage = "hold a 0 µs CPU wake-up latency request (PM QoS, /dev/cpu_dma_latency, root): idle CPUs poll instead of halting, which on a VM whose idle vCPUs halt saves a hypervisor round trip per wake-up, at the cost of CPU time while idle"

// holdPMQoS holds a 0 µs PM QoS CPU latency request when on is set and
// returns the function that drops it (a no-op when off). flag names the
// flag in the error.
func holdPMQoS(flag string, on bool) (release func(), err error) {
	if !on {
		return func() {}, nil
	}
	q, err := cpuqos.Hold(0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return func() { q.Close() }, nil
}
