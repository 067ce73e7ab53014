package farmem_test

import (
	"os"
	"testing"

	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/uffd"
)

// TestMain lets this test binary serve as its own memnode child process
// (nodeproc) and as the userfaultfd helper (uffd), the way cmd/farmem does.
// It is the package's only TestMain: add set-up here, not in a second one.
func TestMain(m *testing.M) {
	nodeproc.MaybeRun()
	uffd.MaybeRunHelper()
	os.Exit(m.Run())
}
