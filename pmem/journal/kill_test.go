package journal

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/farmem/farmem/pmem"
)

// The kill test re-executes the test binary as the writer process.
const writerEnv = "FARMEM_PMEM_KILL_WRITER"

const (
	killAccounts = 32
	killInitial  = 1000
	killWorkers  = 2
)

func TestMain(m *testing.M) {
	if path := os.Getenv(writerEnv); path != "" {
		if err := killWriter(path); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// killWriter opens the pool (recovering it), then runs bank transfers from
// two goroutines on disjoint halves of the accounts until it is killed.
func killWriter(path string) error {
	p, err := pmem.Open(path, pmem.OpenOptions{Layout: "killtest", Mode: pmem.ModeMsync})
	if err != nil {
		return err
	}
	// A short BeginTimeout: a writer that stops recycling journals after a
	// recovery fails (and exits) well before it is killed.
	j, _, err := Open(p, Options{Coalesce: true, BeginTimeout: 10 * time.Millisecond})
	if err != nil {
		return err
	}
	r, err := p.Root()
	if err != nil {
		return err
	}
	fmt.Println("ready")
	var wg sync.WaitGroup
	for w := 0; w < killWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			half := killAccounts / killWorkers
			for {
				a := w*half + rng.IntN(half)
				b := w*half + rng.IntN(half)
				if a == b {
					continue
				}
				mode := Redo
				if rng.IntN(4) == 0 {
					mode = Undo
				}
				tx, err := j.Begin(mode)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				ao, bo := r.Off+uint64(a)*8, r.Off+uint64(b)*8
				av, bv := le.Uint64(p.Mem()[ao:]), le.Uint64(p.Mem()[bo:])
				amt := rng.Uint64N(av + 1)
				tx.Write(ao, le.AppendUint64(nil, av-amt))
				tx.Write(bo, le.AppendUint64(nil, bv+amt))
				if err := tx.Commit(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
			}
		}(w)
	}
	wg.Wait()
	return nil
}

// TestKillRecover kills a real writer process with SIGKILL at random
// moments, repeatedly, then reopens the pool, recovers and checks the bank
// invariant each time. The seed only chooses the kill delays.
func TestKillRecover(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("FARMEM_KILL_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (FARMEM_KILL_SEED)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "pool")
	p, err := pmem.Create(path, pmem.CreateOptions{Size: 1 << 20, Layout: "killtest", Journals: 16, JournalSize: 1024, Mode: pmem.ModeMsync})
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := j.Begin(Redo)
	off, err := j.Allocator().Alloc(tx, killAccounts*8)
	if err != nil {
		t.Fatal(err)
	}
	var init []byte
	for i := 0; i < killAccounts; i++ {
		init = le.AppendUint64(init, killInitial)
	}
	tx.Write(off, init)
	if err := p.SetRoot(tx, "bank", off, killAccounts*8); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	j.Close()
	p.Close()

	rounds := 8
	var replayed, rolled, torn int
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), writerEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: writer did not start: %v", round, err)
		}
		time.Sleep(time.Duration(30+rng.IntN(60)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		// The writer must have been alive and well when it was killed: an
		// exit of its own means it failed (e.g. ran out of journals).
		if st := cmd.ProcessState; st.Exited() {
			t.Fatalf("round %d: writer exited by itself with status %d", round, st.ExitCode())
		}

		p, err := pmem.Open(path, pmem.OpenOptions{Layout: "killtest", Mode: pmem.ModeMsync})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		j, rec, err := Open(p, Options{})
		if err != nil {
			p.Close()
			t.Fatalf("round %d: recovery: %v", round, err)
		}
		replayed += rec.Replayed
		rolled += rec.RolledBack
		torn += rec.Torn
		sum := uint64(0)
		for i := 0; i < killAccounts; i++ {
			sum += le.Uint64(p.Mem()[off+uint64(i)*8:])
		}
		if len(j.Allocator().Blocks()) != 1 {
			t.Errorf("round %d: %d blocks allocated, want 1", round, len(j.Allocator().Blocks()))
		}
		j.Close()
		p.Close()
		if sum != killAccounts*killInitial {
			t.Fatalf("round %d: balances sum to %d, want %d (recovery %+v)", round, sum, killAccounts*killInitial, rec)
		}
	}
	t.Logf("%d kills: recovery replayed %d redo, rolled back %d undo, discarded %d torn journals", rounds, replayed, rolled, torn)
}
