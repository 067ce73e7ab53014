//go:build linux

package farmem_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/attach"
	"github.com/farmem/farmem/pager"
)

// envMapPager makes this test binary a pager child (see init). The
// package's TestMain belongs to main_test.go; this role is dispatched from
// an init function instead, before TestMain runs.
const envMapPager = "FARMEM_MAP_TEST_PAGER"

func init() {
	sock := os.Getenv(envMapPager)
	if sock == "" {
		return
	}
	err := func() error {
		p, err := pager.New(pager.Config{Local: 64 * int64(os.Getpagesize()), NewStore: pager.MemStores(os.Getpagesize())})
		if err != nil {
			return err
		}
		l, err := attach.Listen(sock, p.AttachConfig())
		if err != nil {
			return err
		}
		fmt.Println("ready")
		return p.Serve(context.Background(), l)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pager child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startMapPager runs a pager child with a 64-page budget and returns its
// socket. The test process is the application: its faults are served by
// the child, never by itself.
func startMapPager(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "pager.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMapPager+"="+sock)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("pager child: %q, %v", line, err)
	}
	return sock
}

// words is a sort.Interface over little-endian uint32s in a byte slice.
type words []byte

func (w words) Len() int           { return len(w) / 4 }
func (w words) Less(i, j int) bool { return w.at(i) < w.at(j) }
func (w words) at(i int) uint32    { return binary.LittleEndian.Uint32(w[4*i:]) }
func (w words) Swap(i, j int) {
	a, b := w.at(i), w.at(j)
	binary.LittleEndian.PutUint32(w[4*i:], b)
	binary.LittleEndian.PutUint32(w[4*j:], a)
}

// TestMapUnmodifiedCode runs ordinary code on a mapping four times the
// pager's budget: encoding/binary stores, sort.Sort, copy and indexing.
func TestMapUnmodifiedCode(t *testing.T) {
	sock := startMapPager(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	size := 256 * os.Getpagesize()
	m, err := farmem.Map(ctx, sock, size)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Err(); err != nil {
		t.Fatalf("Err while attached: %v", err)
	}
	b := m.Bytes()
	if len(b) != size {
		t.Fatalf("Bytes: %d bytes, want %d", len(b), size)
	}
	for i, v := range b {
		if v != 0 {
			t.Fatalf("fresh mapping: byte %d is %d", i, v)
		}
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	w := words(b)
	var sum uint64
	for i := range w.Len() {
		v := rng.Uint32()
		binary.LittleEndian.PutUint32(b[4*i:], v)
		sum += uint64(v)
	}
	sort.Sort(w)
	var after uint64
	for i := range w.Len() {
		if i > 0 && w.at(i-1) > w.at(i) {
			t.Fatalf("not sorted at %d", i)
		}
		after += uint64(w.at(i))
	}
	if after != sum {
		t.Fatalf("sum of the values changed by sorting: %d, want %d", after, sum)
	}
	// copy() across the whole mapping, overlapping: shift by one page.
	ps := os.Getpagesize()
	first := append([]byte(nil), b[:ps]...)
	copy(b[ps:], b[:size-ps])
	if string(b[ps:2*ps]) != string(first) {
		t.Fatal("copy() across the mapping lost data")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Err(); !errors.Is(err, farmem.ErrMappingClosed) {
		t.Fatalf("Err after Close: %v, want ErrMappingClosed", err)
	}
}

func TestMapNoPager(t *testing.T) {
	_, err := farmem.Map(context.Background(), filepath.Join(t.TempDir(), "none.sock"), 1<<20)
	if err == nil || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Map without a pager: %v, want an error wrapping ENOENT", err)
	}
}
