package pmembench

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/farmem/farmem/pmem/journal"
)

func TestProf(t *testing.T) {
	if os.Getenv("PROF") == "" {
		t.Skip()
	}
	c := Default("/dev/shm/profpool")
	w, _ := strconv.Atoi(os.Getenv("W"))
	c.Committers, c.ValueBytes = []int{w}, []int{256}
	c.Coalescing = []bool{os.Getenv("CO") != ""}
	c.MaxWait, _ = time.ParseDuration(os.Getenv("MW"))
	c.Duration = 2 * time.Second
	c.TxMode = journal.Redo
	c.Progress = func(r Row) { fmt.Printf("%+v\n", r) }
	Run(c)
}
