package resilient_test

import (
	"os"
	"testing"

	"github.com/farmem/farmem/internal/nodeproc"
)

// TestMain lets this test binary serve as a memnode child (nodeproc) and as
// the memnode inside a network namespace (see netns_test.go).
func TestMain(m *testing.M) {
	nodeproc.MaybeRun()
	maybeServeInNamespace()
	os.Exit(m.Run())
}
