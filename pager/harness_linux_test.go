//go:build linux

package pager_test

// Tests that fault follow the separate-process shape: the application that
// touches a mapping is this test binary re-executed (a child role chosen by
// an environment variable), and the pager runs in the test process, or in
// another child when the test kills it. The test process never touches a
// mapping served by itself.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/farmem/farmem/attach"
	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/pager"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/uffd"
)

const envRole = "FARMEM_PAGER_TEST_ROLE"

// hangGuard bounds waits so that a broken path fails with a message instead
// of hanging; it is not a timing assertion.
const hangGuard = 60 * time.Second

// stallLimit is the watchdog's limit: no progress reported by an
// application child for this long is a stall (the 5 s).
const stallLimit = 5 * time.Second

func TestMain(m *testing.M) {
	nodeproc.MaybeRun()
	uffd.MaybeRunHelper()
	switch os.Getenv(envRole) {
	case "":
		os.Exit(m.Run())
	case "app":
		exitOn(childApp())
	case "pager":
		exitOn(childPager())
	case "probe":
		exitOn(childProbe())
	}
	fmt.Fprintln(os.Stderr, "unknown role", os.Getenv(envRole))
	os.Exit(2)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// memStores is a StoreFactory over in-memory stores kept per region id, so
// that a pager restarted in the same process can recover a region.
type memStores struct {
	mu sync.Mutex
	m  map[uint64]*store.Mem
}

func (s *memStores) factory(ctx context.Context, id uint64, size int64, recover bool) (store.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uint64]*store.Mem{}
	}
	if st, ok := s.m[id]; ok {
		return nopClose{st}, nil
	}
	if recover {
		return nil, fmt.Errorf("%w: region %d", pager.ErrNotRecoverable, id)
	}
	st := store.NewMem(os.Getpagesize(), 0)
	s.m[id] = st
	return nopClose{st}, nil
}

// nopClose keeps a Mem store alive across pager restarts.
type nopClose struct{ *store.Mem }

func (nopClose) Close() error { return nil }

// testPager is an in-process pager serving a socket in a temporary
// directory.
type testPager struct {
	P      *pager.Pager
	Socket string
	l      *attach.Listener
	cancel context.CancelFunc
	done   chan error
}

func startPager(t *testing.T, cfg pager.Config) *testPager {
	t.Helper()
	if cfg.NewStore == nil {
		cfg.NewStore = (&memStores{}).factory
	}
	if cfg.Logf == nil {
		cfg.Logf = func(format string, args ...any) { t.Logf(format, args...) }
	}
	p, err := pager.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "pager.sock")
	l, err := attach.Listen(sock, p.AttachConfig())
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tp := &testPager{P: p, Socket: sock, l: l, cancel: cancel, done: make(chan error, 1)}
	go func() { tp.done <- p.Serve(ctx, l) }()
	t.Cleanup(tp.stop)
	return tp
}

func listen(sock string, p *pager.Pager) (*attach.Listener, error) {
	return attach.Listen(sock, p.AttachConfig())
}

func (tp *testPager) stop() {
	tp.cancel()
	<-tp.done
	tp.l.Close()
	tp.P.Close()
}

// child is a running child process of this test binary.
type child struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	lines  chan string
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startChild runs this test binary in a role, with extra environment. Its
// stdout lines arrive on lines; it is killed at the end of the test.
func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, "GOTRACEBACK=all")
	cmd.Env = append(cmd.Env, env...)
	c := &child{cmd: cmd, stderr: &syncBuffer{}, lines: make(chan string, 1024), done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody listens; drop
			}
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		c.done <- nil
	})
	return c
}

// wait waits for the child to exit and fails the test on a non-zero exit.
func (c *child) wait(t *testing.T) {
	t.Helper()
	for range c.lines {
	}
	err := <-c.done
	c.done <- err
	if err != nil {
		t.Fatalf("child %v: %v\n%s", c.cmd.Env[len(c.cmd.Env)-1], err, c.stderr.String())
	}
}

// watch reads progress lines ("progress N") from an application child and
// returns its final line ("ok ...") when it exits. If N does not advance
// for stallLimit, it dumps the stacks of the child (SIGQUIT) and of this
// process, and fails.
func (c *child) watch(t *testing.T) string {
	t.Helper()
	last, lastAt := int64(-1), time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var final string
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				err := <-c.done
				c.done <- err
				if err != nil {
					t.Fatalf("application child: %v\n%s", err, c.stderr.String())
				}
				return final
			}
			if v, ok := strings.CutPrefix(line, "progress "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				if n != last {
					last, lastAt = n, time.Now()
				}
				continue
			}
			final = line
		case <-tick.C:
			if time.Since(lastAt) > stallLimit {
				_ = c.cmd.Process.Signal(syscall.SIGQUIT)
				time.Sleep(time.Second)
				var pb bytes.Buffer
				_ = pprof.Lookup("goroutine").WriteTo(&pb, 2)
				t.Fatalf("stall: no progress from the application for %v (last count %d)\n--- application stacks ---\n%s\n--- pager (test process) stacks ---\n%s",
					time.Since(lastAt).Round(time.Millisecond), last, c.stderr.String(), pb.String())
			}
		}
	}
}

func readLine(t *testing.T, c *child, prefix string) string {
	t.Helper()
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before %q:\n%s", prefix, c.stderr.String())
			}
			if v, ok := strings.CutPrefix(line, prefix); ok {
				return v
			}
		case <-timer.C:
			t.Fatalf("no %q from child in %v:\n%s", prefix, hangGuard, c.stderr.String())
		}
	}
}

var _ = io.EOF

// childPager is defined in death_linux_test.go.
