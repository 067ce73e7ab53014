package sched

import (
	"os"
	"strings"
	"testing"
)

// TestDetectPrefetchW checks the CPUID test against the flags Linux reports
// for CPU 0 ("3dnowprefetch" is its name for PRFCHW).
func TestDetectPrefetchW(t *testing.T) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo:", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, flags, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "flags" {
			want := strings.Contains(" "+flags+" ", " 3dnowprefetch ")
			if hasPrefetchW != want {
				t.Fatalf("hasPrefetchW = %v, /proc/cpuinfo says %v", hasPrefetchW, want)
			}
			return
		}
	}
	t.Skip("no flags line in /proc/cpuinfo")
}
