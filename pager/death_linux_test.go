//go:build linux

package pager_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/attach"
	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/pager"
	"golang.org/x/sys/unix"
)

const (
	envNodes  = "FARMEM_PAGER_TEST_NODES"
	envPrefix = "FARMEM_PAGER_TEST_PREFIX"
	envLocal  = "FARMEM_PAGER_TEST_LOCAL"
	envBackup = "FARMEM_PAGER_TEST_BACKUP"
	envMeta   = "FARMEM_PAGER_TEST_META"
	envDirty  = "FARMEM_PAGER_TEST_DIRTY"
)

// childPager runs a pager over memnodes on the socket named in the
// environment, prints "ready" once it listens, and serves until killed.
func childPager() error {
	ps := os.Getpagesize()
	local, _ := strconv.ParseInt(os.Getenv(envLocal), 10, 64)
	nodes := strings.Split(os.Getenv(envNodes), ",")
	far := pager.RemoteStores(nodes, nil, os.Getenv(envPrefix), ps)
	if b := os.Getenv(envBackup); b != "" {
		far = pager.ResilientStores(nodes, nil, os.Getenv(envPrefix), ps, b)
	}
	var meta *pager.Meta
	if path := os.Getenv(envMeta); path != "" {
		m, err := pager.OpenMeta(path, pager.MetaOptions{Namespace: os.Getenv(envPrefix), Size: 4 << 20})
		if err != nil {
			return err
		}
		defer m.Close()
		meta = m
	}
	p, err := pager.New(pager.Config{
		Local:         local,
		NewStore:      far,
		Recoverable:   true,
		Meta:          meta,
		DirtyTracking: os.Getenv(envDirty),
		Logf:          func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	l, err := attach.Listen(os.Getenv(envSocket), p.AttachConfig())
	if err != nil {
		return err
	}
	fmt.Println("ready")
	return p.Serve(context.Background(), l)
}

// TestPagerDeath kills the pager (SIGKILL) under an application that wrote
// a region eight times its budget, so most pages live on a memnode. The
// application must see ErrPagerLost; a read of an evicted page meanwhile
// must block rather than return zeros; a restarted pager must take the
// region back (the Mapping re-attaches on its own), serve that read with
// the right data, and recover every page.
//
// Here the test process is the application and the pager is a child: the
// test's own faults are served by another process, as they must be.
func TestPagerDeath(t *testing.T) { pagerDeath(t, false) }

// TestPagerDeathMemnodeLost: as TestPagerDeath, with the pager's far tier
// backed up to a local file (--backup), and the memnode killed too and
// restarted empty while no pager runs: the restarted pager recovers every
// evicted page from the backup.
func TestPagerDeathMemnodeLost(t *testing.T) { pagerDeath(t, true) }

func pagerDeath(t *testing.T, loseMemnode bool) {
	const pages, localPages = 1024, 128
	node, sock, _, env := deathRig(t, localPages)
	backupDir := t.TempDir()
	if loseMemnode {
		env = append(env, envBackup+"="+filepath.Join(backupDir, "backup"))
	}
	first, ctx, m := mapOnPager(t, sock, env, pages, hangGuard)
	ps := os.Getpagesize()
	mem := m.Bytes()
	fillVersions(mem, pages, ps, 1)

	killPager(ctx, t, first, m)
	t.Logf("after the kill: %v", m.Err())

	// Find a page that is not resident (mincore on the shared mapping
	// reports the memfd's page cache) and read it while no pager runs.
	vec := residency(t, mem, pages)
	probe := -1
	resident := 0
	for pg, v := range vec {
		if v&1 != 0 {
			resident++
		} else if probe < 0 {
			probe = pg
		}
	}
	if probe < 0 {
		t.Fatalf("all %d pages resident with a budget of %d", pages, localPages)
	}
	t.Logf("%d of %d pages resident at the kill; probing page %d", resident, pages, probe)
	got := make(chan uint64, 1)
	go func() { got <- binary.LittleEndian.Uint64(mem[probe*ps:]) }()
	select {
	case v := <-got:
		t.Fatalf("a read of an evicted page returned %#x with no pager running", v)
	case <-time.After(200 * time.Millisecond):
		// Not a timing assertion: the check that matters is the value the
		// read returns once served (zeros would fail it); this only catches
		// an early return sooner.
	}

	if loseMemnode {
		if err := node.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := node.Restart(); err != nil {
			t.Fatal(err)
		}
		t.Log("memnode killed and restarted empty")
	}
	second := startChild(t, "pager", env...)
	readLine(t, second, "ready")
	for m.Err() != nil {
		if ctx.Err() != nil {
			t.Fatalf("the mapping was not re-attached: %v\n%s", m.Err(), second.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case v := <-got:
		if want := word(uint64(probe), 1, 0); v != want {
			t.Fatalf("the read blocked across the restart returned %#x, want %#x", v, want)
		}
	case <-ctx.Done():
		t.Fatalf("the read blocked across the restart never completed\n%s", second.stderr.String())
	}
	for pg := range pages {
		if err := checkLoads(mem[pg*ps:(pg+1)*ps], uint64(pg), 1, -1); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
	// The recovered region keeps working: a second version everywhere.
	fillVersions(mem, pages, ps, 2)
	for pg := range pages {
		if err := checkLoads(mem[pg*ps:(pg+1)*ps], uint64(pg), 2, -1); err != nil {
			t.Fatalf("after recovery, second version: %v", err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if loseMemnode {
		// The application detached: the pager removes the region's backup.
		deadline := time.Now().Add(hangGuard)
		for {
			left, _ := filepath.Glob(filepath.Join(backupDir, "backup*"))
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("backup files left after the detach: %v", left)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestPagerDeathAsyncNotReattached: a pager with asynchronous dirty tracking
// is killed under an application whose region it evicted; a restarted
// pager (over the same memnode) refuses the re-attach with
// ErrNotRecoverable, because the dead pager may have held written pages
// only in its pin pipe, and the application's mapping stays lost rather
// than being served stale or zero pages.
func TestPagerDeathAsyncNotReattached(t *testing.T) {
	skipWithoutAsync(t)
	const pages, localPages = 1024, 128
	_, sock, _, env := deathRig(t, localPages)
	first, ctx, m := mapOnPager(t, sock, append(env, envDirty+"="+pager.DirtyAsync), pages, hangGuard)
	ps := os.Getpagesize()
	waitStderr(t, ctx, first, "dirty tracking async")
	fillVersions(m.Bytes(), pages, ps, 1)
	killPager(ctx, t, first, m)

	second := startChild(t, "pager", env...)
	readLine(t, second, "ready")
	waitStderr(t, ctx, second, "was served with asynchronous dirty tracking")
	if !strings.Contains(second.stderr.String(), pager.ErrNotRecoverable.Error()) {
		t.Fatalf("the refusal does not name ErrNotRecoverable:\n%s", second.stderr.String())
	}
	if err := m.Err(); !errors.Is(err, farmem.ErrPagerLost) {
		t.Fatalf("Err after the refused re-attach: %v, want ErrPagerLost", err)
	}
}

// TestReattachRefusedWithoutRecovery: a pager whose far tier dies with it
// refuses a re-attach by name instead of serving zeros.
func TestReattachRefusedWithoutRecovery(t *testing.T) {
	p, err := pager.New(pager.Config{Local: 1 << 20, NewStore: pager.MemStores(os.Getpagesize())})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := p.AttachConfig()
	_, err = cfg.Admit(attach.Request{Reattach: true, RegionID: 7, Size: 1 << 20, PageSize: os.Getpagesize()})
	if !errors.Is(err, attach.ErrUnknownRegion) || !errors.Is(err, pager.ErrNotRecoverable) {
		t.Fatalf("Admit of a re-attach: %v, want ErrUnknownRegion and ErrNotRecoverable", err)
	}
	id, err := cfg.Admit(attach.Request{Size: 1 << 20, PageSize: os.Getpagesize()})
	if err != nil || id == 0 {
		t.Fatalf("Admit of a new region: %d, %v", id, err)
	}
}

// killPager SIGKILLs the pager child and waits until the mapping reports
// ErrPagerLost.
func killPager(ctx context.Context, t *testing.T, c *child, m *farmem.Mapping) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for m.Err() == nil {
		if ctx.Err() != nil {
			t.Fatal("the mapping did not notice the pager's death")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.Err(); !errors.Is(err, farmem.ErrPagerLost) {
		t.Fatalf("Err after the pager died: %v, want ErrPagerLost", err)
	}
}

// residency returns mincore's vector for the first pages of mem: on a
// shared mapping it reports the memfd's page cache (bit 0: resident).
func residency(t *testing.T, mem []byte, pages int) []byte {
	t.Helper()
	vec := make([]byte, pages)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	return vec
}

// fillVersions writes version v of each of the first pages pages of mem
// (copyVersion's contents), with plain copies into the mapping.
func fillVersions(mem []byte, pages, ps int, v uint64) {
	buf := make([]byte, ps)
	for pg := range pages {
		copyVersion(buf, uint64(pg), v)
		copy(mem[pg*ps:], buf)
	}
}

// mapOnPager starts a pager child with env, waits until it is ready and
// maps pages pages through sock. The context bounds the test's waits by
// guard; it is cancelled, and the mapping closed, at cleanup (before the
// child is stopped).
func mapOnPager(t *testing.T, sock string, env []string, pages int, guard time.Duration) (*child, context.Context, *farmem.Mapping) {
	t.Helper()
	c := startChild(t, "pager", env...)
	readLine(t, c, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	m, err := farmem.Map(ctx, sock, pages*os.Getpagesize())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return c, ctx, m
}

// deathRig starts what the pager death tests share: a memnode child
// (stopped at cleanup), a socket path in a fresh directory, and the pager
// child's environment — that socket and memnode, a fresh namespace prefix
// (returned), and a budget of localPages pages.
func deathRig(t *testing.T, localPages int) (node *nodeproc.Proc, sock, prefix string, env []string) {
	t.Helper()
	node, err := nodeproc.Start(nodeproc.Config{Capacity: 64 << 20, PageSize: 4096, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Stop(5 * time.Second) })
	var rb [6]byte
	rand.Read(rb[:])
	prefix = "pagertest-" + hex.EncodeToString(rb[:])
	sock = filepath.Join(t.TempDir(), "pager.sock")
	env = []string{envSocket + "=" + sock, envNodes + "=" + node.Addr(),
		envPrefix + "=" + prefix, envLocal + "=" + strconv.Itoa(localPages*4096)}
	return node, sock, prefix, env
}
