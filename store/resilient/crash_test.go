package resilient

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/storetest"
)

// crashChildEnv, when set, makes TestCrashChild the client that the crash
// test kills; its value is the backup path.
const crashChildEnv = "FARMEM_RESILIENT_CRASH_CHILD"

// TestCrashChild is not a test on its own: run by TestClientKilledDuringOutage
// with crashChildEnv set, it opens the backup over a fake remote whose node
// is down, writes pages with rising versions, and prints "ACK page version"
// after each write returns, until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process for TestClientKilledDuringOutage")
	}
	// The node is down throughout, in every child: what a resync would
	// copy to this process's fake would die with it.
	prim := newFakePrimary(testPS, 1)
	prim.set(0, fakeDown)
	s, err := Open(context.Background(), Config{Primary: prim, Pages: testPages, Health: testHealth},
		BackupFile{Path: path, Create: true, RegionID: testRegion})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	versions := make([]uint64, testPages)
	for {
		id := store.PageID(rng.IntN(testPages))
		versions[id]++
		pg := page(id, versions[id])
		fmt.Fprintf(w, "WRITE %d %d\n", id, versions[id])
		w.Flush()
		if err := store.Do(context.Background(), s, &store.Call{Op: store.OpWrite, Pages: []store.Page{pg}}); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
		fmt.Fprintf(w, "ACK %d %d\n", id, versions[id])
		w.Flush()
	}
}

// TestClientKilledDuringOutage kills (SIGKILL) a client in the middle of
// writing while its memnode is down, at a random moment, several times, and
// reopens its backup each time: every page whose write was acknowledged is
// in the outage set, and the backup holds the acknowledged version or a
// newer one.
func TestClientKilledDuringOutage(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	path := filepath.Join(t.TempDir(), "backup")
	acked := map[store.PageID]uint64{}
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The kill comes at a random moment after the first acknowledged
		// write (a child that never gets there is killed after a minute).
		kill := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
		delay := time.Duration(10+rng.IntN(150)) * time.Millisecond
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || (f[0] != "ACK" && f[0] != "WRITE") {
				t.Fatalf("child said %q", sc.Text())
			}
			id, _ := strconv.ParseUint(f[1], 10, 64)
			v, _ := strconv.ParseUint(f[2], 10, 64)
			if f[0] == "WRITE" {
				continue
			}
			if n == 0 {
				kill.Reset(delay)
			}
			// Versions restart at 1 in each child; a page's number for
			// this round is what the check below compares against.
			acked[store.PageID(id)] = v + uint64(round)<<32
			n++
		}
		kill.Stop()
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("round %d: child killed after %d acknowledged writes", round, n)

		// Reopen as the restarted client would, node still down.
		prim := newFakePrimary(testPS, 1)
		prim.set(0, fakeDown)
		s, err := Open(context.Background(), Config{Primary: prim, Pages: testPages, Health: testHealth},
			BackupFile{Path: path, RegionID: testRegion})
		if err != nil {
			t.Fatalf("round %d: reopening after the kill: %v", round, err)
		}
		for id, v := range acked {
			if !s.out.has(id) {
				t.Fatalf("round %d: page %d, acknowledged, forgotten by the outage set", round, id)
			}
			if v>>32 != uint64(round) {
				continue // written in an earlier round: its version there was checked then
			}
			c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: id, Data: make([]byte, testPS)}}}
			err := store.Do(context.Background(), s.backup, c)
			if err != nil {
				t.Fatalf("round %d: page %d not in the backup: %v", round, id, err)
			}
			want := v & (1<<32 - 1)
			if storetest.Check(c.Pages[0].Data, uint64(id), want) != nil && storetest.Check(c.Pages[0].Data, uint64(id), want+1) != nil {
				t.Fatalf("round %d: page %d holds neither the acknowledged version %d nor the next", round, id, want)
			}
		}
		s.Close()
	}
}
