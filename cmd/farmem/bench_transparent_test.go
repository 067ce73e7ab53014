package main

import "testing"

// TestBenchTransparentFlags: the transparent-mode flags are added to the
// bench command built by bench.go (this relies on init order by file name).
func TestBenchTransparentFlags(t *testing.T) {
	root := newRootCmd()
	bench, _, err := root.Find([]string{"bench"})
	if err != nil || bench.Name() != "bench" {
		t.Fatalf("no bench command: %v", err)
	}
	for _, name := range []string{"socket", "prefetch", "pager-spin", "fault-samples", "mode"} {
		if bench.Flags().Lookup(name) == nil {
			t.Errorf("farmem bench has no --%s", name)
		}
	}
	pager, _, err := root.Find([]string{"pager"})
	if err != nil || pager.Name() != "pager" {
		t.Fatalf("no pager command: %v", err)
	}
}
