//go:build linux

package attach

// Tests that fault follow the separate-process shape (uffd/doc.go): the
// application that touches an attached region is this test binary
// re-executed (childApp), and the test process serves its faults as the
// pager. Tests in which the test process itself is the application never
// touch Region.Bytes: they check the protocol only.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmem/farmem/uffd"
	"golang.org/x/sys/unix"
)

const (
	envChild  = "FARMEM_ATTACH_TEST_CHILD"
	envSocket = "FARMEM_ATTACH_TEST_SOCKET"
	envPages  = "FARMEM_ATTACH_TEST_PAGES"
)

// hangGuard bounds waits so that a broken path fails with a message instead
// of hanging; it is not a timing assertion.
const hangGuard = 20 * time.Second

func TestMain(m *testing.M) {
	uffd.MaybeRunHelper()
	switch os.Getenv(envChild) {
	case "":
		os.Exit(m.Run())
	case "app":
		exitOn(childApp())
	case "pager":
		exitOn(childPager())
	}
	fmt.Fprintln(os.Stderr, "unknown child kind")
	os.Exit(2)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// pageValue is what the test pager serves in page i of region id.
func pageValue(id uint64, i int) byte { return byte(int(id)*31 + i*7 + 1) }

// childApp attaches a region, reads every page (each read faults and is
// served by the test), writes the even pages with copy() while the garbage
// collector runs in a loop, and exits.
func childApp() error {
	pages, _ := strconv.Atoi(os.Getenv(envPages))
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	r, err := Attach(ctx, os.Getenv(envSocket), pages*os.Getpagesize(), Options{Name: "child-app"})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	ps, mem := r.PageSize(), r.Bytes()
	for i := range pages {
		p := mem[i*ps : (i+1)*ps]
		if want := pageValue(r.ID(), i); bytes.Count(p, []byte{want}) != ps {
			return fmt.Errorf("page %d: first byte %d, want all %d", i, p[0], want)
		}
	}
	fill := make([]byte, ps)
	for i := 0; i < pages; i += 2 {
		for j := range fill {
			fill[j] = byte(i + 100)
		}
		copy(mem[i*ps:], fill)
	}
	close(stop)
	wg.Wait()
	return r.Close()
}

// childPager serves one region without faults: it writes page 0 through
// its view, prints the region id, and waits to be killed.
func childPager() error {
	l, err := Listen(os.Getenv(envSocket), Config{})
	if err != nil {
		return err
	}
	fmt.Println("listening")
	a, err := l.Accept(context.Background())
	if err != nil {
		return err
	}
	for i := range a.PageSize {
		a.PagerView[i] = 0x5A
	}
	fmt.Println(a.RegionID)
	select {}
}

func socketPath(t *testing.T) string {
	// Unix socket paths are short: keep it under /tmp.
	dir, err := os.MkdirTemp("", "attach")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "pager.sock")
}

func listen(t *testing.T, cfg Config) *Listener {
	t.Helper()
	l, err := Listen(socketPath(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func ctxGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

func startChild(t *testing.T, kind, sock string, pages int) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+kind, envSocket+"="+sock, fmt.Sprintf("%s=%d", envPages, pages))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// serve is a minimal pager for one attachment: missing faults get the
// region's pattern, installed write-protected when the mapping has WP
// mode; write-protect faults mark the page dirty and unprotect it.
func serve(t *testing.T, a *Attachment, dirty []bool) error {
	ps := a.PageSize
	page := make([]byte, ps)
	var buf [32]uffd.Msg
	for {
		n, err := a.Uffd.Read(buf[:])
		if errors.Is(err, uffd.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range buf[:n] {
			if m.Event != uffd.EventPagefault {
				continue
			}
			addr := m.Address() &^ uintptr(ps-1)
			i := int(addr-a.AppBase) / ps
			if m.Flags()&uffd.FlagWP != 0 {
				dirty[i] = true
				if err := a.Uffd.WriteProtect(addr, ps, false, false); err != nil {
					return err
				}
				continue
			}
			for j := range page {
				page[j] = pageValue(a.RegionID, i)
			}
			var mode uffd.CopyMode
			if a.Modes&uffd.ModeWP != 0 {
				mode = uffd.CopyWP
			}
			if _, err := a.Uffd.Copy(addr, page, mode); err != nil {
				return err
			}
		}
	}
}

// TestEndToEnd: one pager, three applications attached at once, each in its
// own process, reading and writing its region while its GC runs; the
// pager sees every write through its view and, with write protection, marks
// exactly the written pages dirty.
func TestEndToEnd(t *testing.T) {
	const apps, pages = 3, 16
	var mu sync.Mutex
	var rejects []error
	l := listen(t, Config{OnReject: func(_ Cred, err error) { mu.Lock(); rejects = append(rejects, err); mu.Unlock() }})
	cmds := make([]*exec.Cmd, apps)
	stderrs := make([]*bytes.Buffer, apps)
	exited := make(chan error, apps)
	for k := range apps {
		cmds[k], stderrs[k] = startChild(t, "app", l.Path(), pages)
		if err := cmds[k].Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmds[k].Process.Kill() })
		go func() { exited <- cmds[k].Wait() }()
	}
	var wg sync.WaitGroup
	errs := make(chan error, apps)
	pids := map[int32]bool{}
	for range apps {
		a, err := l.Accept(ctxGuard(t))
		if err != nil {
			t.Fatal(err)
		}
		pids[a.Cred.PID] = true
		if avail, _ := uffd.Probe(); avail&uffd.FeatureWPHugetlbfsShmem != 0 && a.Modes&uffd.ModeWP == 0 {
			t.Errorf("kernel offers write protection on shmem, but the mapping has modes %#x", a.Modes)
		}
		if a.Name != "child-app" || a.Size != pages*a.PageSize || a.Cred.UID != uint32(os.Getuid()) {
			t.Errorf("attachment %+v", a)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirty := make([]bool, pages)
			done := make(chan error, 1)
			go func() { done <- serve(t, a, dirty) }()
			select {
			case <-a.Done():
			case <-time.After(hangGuard):
				errs <- fmt.Errorf("region %d: application did not finish", a.RegionID)
			}
			a.Uffd.Shutdown()
			if err := <-done; err != nil {
				errs <- fmt.Errorf("region %d: serve: %w", a.RegionID, err)
			}
			if !errors.Is(a.Err(), ErrAppGone) {
				errs <- fmt.Errorf("region %d: Err %v, want ErrAppGone", a.RegionID, a.Err())
			}
			for i := range pages {
				want := pageValue(a.RegionID, i)
				if i%2 == 0 {
					want = byte(i + 100)
				}
				p := a.PagerView[i*a.PageSize : (i+1)*a.PageSize]
				if bytes.Count(p, []byte{want}) != len(p) {
					errs <- fmt.Errorf("region %d page %d: pager sees %d, want %d", a.RegionID, i, p[0], want)
				}
				if a.Modes&uffd.ModeWP != 0 && dirty[i] != (i%2 == 0) {
					errs <- fmt.Errorf("region %d page %d: dirty %v", a.RegionID, i, dirty[i])
				}
			}
			if err := a.Close(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for k := range apps {
		if err := <-exited; err != nil {
			t.Errorf("application: %v\n%s", err, stderrs[k])
		}
	}
	if len(pids) != apps {
		t.Errorf("SO_PEERCRED pids %v, want %d distinct", pids, apps)
	}
	if len(rejects) != 0 {
		t.Errorf("rejected handshakes: %v", rejects)
	}
}

// acceptAsync runs Accept in the background.
func acceptAsync(t *testing.T, l *Listener) <-chan *Attachment {
	ch := make(chan *Attachment, 1)
	go func() {
		a, err := l.Accept(ctxGuard(t))
		if err != nil {
			if !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
				t.Errorf("accept: %v", err)
			}
			close(ch)
			return
		}
		ch <- a
	}()
	return ch
}

// TestPagerDeathAndReattach: the pager process dies; the application learns
// it from Err (its faults would block, not read zeros), and re-attaches to a
// restarted pager, which gets the region back with the pages resident in
// the memfd. The test process is the application but never touches Bytes.
func TestPagerDeathAndReattach(t *testing.T) {
	sock := socketPath(t)
	cmd, stderr := startChild(t, "pager", sock, 0)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var reap sync.Once
	killPager := func() { reap.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(killPager)
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("pager child did not start: %s", stderr)
	}
	r, err := Attach(ctxGuard(t), sock, 4*os.Getpagesize(), Options{Name: "parent"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !lines.Scan() || lines.Text() != strconv.FormatUint(r.ID(), 10) {
		t.Fatalf("pager child served region %q, want %d: %s", lines.Text(), r.ID(), stderr)
	}
	if r.Err() != nil {
		t.Fatalf("Err while attached: %v", r.Err())
	}
	if err := r.Reattach(ctxGuard(t), sock, Options{}); !errors.Is(err, ErrStillAttached) {
		t.Fatalf("Reattach while attached: %v", err)
	}
	killPager()
	select {
	case <-r.Done():
	case <-time.After(hangGuard):
		t.Fatal("pager death not noticed")
	}
	if !errors.Is(r.Err(), ErrPagerLost) {
		t.Fatalf("Err after pager death: %v, want ErrPagerLost", r.Err())
	}

	// The dead pager's socket file is stale: Listen replaces it.
	l, err := Listen(sock, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := acceptAsync(t, l)
	if err := r.Reattach(ctxGuard(t), sock, Options{}); err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a == nil {
		t.Fatal("no attachment")
	}
	if !a.Reattached || a.RegionID != r.ID() || a.Size != len(r.Bytes()) || a.AppBase != uffd.Addr(r.Bytes()) {
		t.Fatalf("re-attachment %+v", a)
	}
	// Page 0 was written by the dead pager; it survived in the memfd.
	if p := a.PagerView[:a.PageSize]; bytes.Count(p, []byte{0x5A}) != len(p) {
		t.Fatalf("resident page lost across the pager restart: first byte %#x", p[0])
	}
	if err := a.Uffd.Wake(a.AppBase, a.Size); err != nil {
		t.Fatalf("wake after re-attach: %v", err)
	}
	if r.Err() != nil {
		t.Fatalf("Err after Reattach: %v", r.Err())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	case <-time.After(hangGuard):
		t.Fatal("pager did not see the application detach")
	}
	if !errors.Is(a.Err(), ErrAppGone) {
		t.Fatalf("attachment Err %v", a.Err())
	}
	a.Close()
	if !errors.Is(r.Err(), ErrClosed) {
		t.Fatalf("region Err after Close: %v", r.Err())
	}
}

func TestPagerShutdownSaysBye(t *testing.T) {
	l := listen(t, Config{})
	got := acceptAsync(t, l)
	r, err := Attach(ctxGuard(t), l.Path(), os.Getpagesize(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a := <-got
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	<-r.Done()
	if !errors.Is(r.Err(), ErrPagerShutdown) {
		t.Fatalf("Err %v, want ErrPagerShutdown", r.Err())
	}
	if !errors.Is(a.Err(), ErrClosed) {
		t.Fatalf("attachment Err %v, want ErrClosed", a.Err())
	}
}

func TestHandshakeRejections(t *testing.T) {
	ps := os.Getpagesize()
	var mu sync.Mutex
	var creds []Cred
	l := listen(t, Config{
		MaxSize: 16 * int64(ps),
		Admit: func(r Request) (uint64, error) {
			if r.Name == "intruder" {
				return 0, fmt.Errorf("%w: go away", ErrDenied)
			}
			if r.Reattach {
				return 0, fmt.Errorf("%w: %d", ErrUnknownRegion, r.RegionID)
			}
			return 42, nil
		},
		OnReject: func(c Cred, _ error) { mu.Lock(); creds = append(creds, c); mu.Unlock() },
	})
	acceptAsync(t, l) // one region is accepted, below
	for _, c := range []struct {
		name string
		size int
		opts Options
		err  error
	}{
		{"too large", 17 * ps, Options{}, ErrTooLarge},
		{"not a page multiple", ps + 1, Options{}, ErrBadRequest},
		{"denied", ps, Options{Name: "intruder"}, ErrDenied},
		{"page size", ps, Options{PageSize: 2 * ps}, ErrBadRequest},
		{"zero size", 0, Options{}, ErrBadRequest},
		{"long name", ps, Options{Name: strings.Repeat("x", MaxName+1)}, ErrBadRequest},
	} {
		r, err := Attach(ctxGuard(t), l.Path(), c.size, c.opts)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
		if r != nil {
			r.Close()
		}
	}
	r, err := Attach(ctxGuard(t), l.Path(), ps, Options{})
	if err != nil || r.ID() != 42 {
		t.Fatalf("admitted attach: %v", err)
	}
	r.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(creds) < 3 {
		t.Fatalf("OnReject saw %d rejections, want at least 3", len(creds))
	}
	for _, c := range creds {
		if c.PID != int32(os.Getpid()) {
			t.Errorf("SO_PEERCRED pid %d, want ours %d", c.PID, os.Getpid())
		}
	}
}

// rawClient speaks the protocol by hand, to send what a well-behaved client
// would not.
func rawClient(t *testing.T, path string) *transport {
	t.Helper()
	c, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(hangGuard))
	return newTransport(c.(*net.UnixConn))
}

func TestPagerRejectsBadClients(t *testing.T) {
	rejected := make(chan error, 8)
	l := listen(t, Config{HandshakeTimeout: 300 * time.Millisecond, OnReject: func(_ Cred, err error) { rejected <- err }})
	next := func(name string, want error) {
		t.Helper()
		select {
		case err := <-rejected:
			if !errors.Is(err, want) {
				t.Errorf("%s: pager rejected with %v, want %v", name, err, want)
			}
		case <-time.After(hangGuard):
			t.Fatalf("%s: no rejection", name)
		}
	}

	// Garbage instead of Hello: the pager answers Error and hangs up.
	c := rawClient(t, l.Path())
	if _, err := c.c.Write([]byte("GET / HTTP/1.0\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := expect(c, TypeWelcome); !errors.Is(err, ErrBadRequest) {
		t.Errorf("answer to garbage: %v", err)
	}
	next("garbage", ErrFrame)

	// Silence: the handshake times out.
	rawClient(t, l.Path())
	next("silence", ErrTimeout)

	// A version the pager does not speak.
	c = rawClient(t, l.Path())
	c.send(&Message{Type: TypeHello, MinVersion: 2, MaxVersion: 5})
	if _, _, err := expect(c, TypeWelcome); !errors.Is(err, ErrVersion) {
		t.Errorf("answer to version 2..5: %v", err)
	}
	next("version", ErrVersion)

	// A pipe where the userfaultfd should be.
	c = rawClient(t, l.Path())
	c.send(&Message{Type: TypeHello, MinVersion: 1, MaxVersion: 1})
	if _, _, err := expect(c, TypeWelcome); err != nil {
		t.Fatal(err)
	}
	c.send(&Message{Type: TypeAlloc, Size: uint64(os.Getpagesize())})
	_, fds, err := expect(c, TypeRegion)
	if err != nil {
		t.Fatal(err)
	}
	closeAll(fds)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer closeAll(p[:])
	c.send(&Message{Type: TypeRegister, Addr: 0x10000, Size: uint64(os.Getpagesize()), Modes: 1}, p[0])
	if _, _, err := expect(c, TypeReady); !errors.Is(err, ErrBadRequest) {
		t.Errorf("answer to a pipe as userfaultfd: %v", err)
	}
	next("pipe as uffd", ErrFDs)

	// A Register without its descriptor.
	c = rawClient(t, l.Path())
	c.send(&Message{Type: TypeHello, MinVersion: 1, MaxVersion: 1})
	expect(c, TypeWelcome)
	c.send(&Message{Type: TypeAlloc, Size: uint64(os.Getpagesize())})
	if _, fds, err = expect(c, TypeRegion); err != nil {
		t.Fatal(err)
	}
	closeAll(fds)
	b, _ := Append(nil, &Message{Type: TypeRegister, Addr: 0x10000, Size: uint64(os.Getpagesize()), Modes: 1})
	c.c.Write(b)
	next("register without descriptor", ErrFDs)
}

func TestAttachTimesOut(t *testing.T) {
	// A "pager" that accepts and never answers.
	path := socketPath(t)
	ln, err := net.Listen("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	_, err = Attach(context.Background(), path, os.Getpagesize(), Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Attach to a mute pager: %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = Attach(ctx, path, os.Getpagesize(), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Attach with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := Attach(context.Background(), filepath.Join(t.TempDir(), "none"), os.Getpagesize(), Options{}); err == nil {
		t.Fatal("Attach to a missing socket succeeded")
	}
}

func TestListenerClose(t *testing.T) {
	l, err := Listen(socketPath(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(l.Path(), Config{}); err == nil {
		t.Fatal("second Listen on a live socket succeeded")
	}
	got := acceptAsync(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a != nil {
		t.Fatal("Accept returned an attachment after Close")
	}
	if _, err := l.Accept(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, err := os.Stat(l.Path()); !os.IsNotExist(err) {
		t.Fatalf("socket file left behind: %v", err)
	}
}

// TestListenerCloseAbortsHandshakes: Close does not wait for a silent
// client's handshake timeout.
func TestListenerCloseAbortsHandshakes(t *testing.T) {
	rejected := make(chan error, 1)
	l, err := Listen(socketPath(t), Config{HandshakeTimeout: time.Hour, OnReject: func(_ Cred, err error) { rejected <- err }})
	if err != nil {
		t.Fatal(err)
	}
	c := rawClient(t, l.Path())
	c.send(&Message{Type: TypeHello, MinVersion: 1, MaxVersion: 1})
	if _, _, err := expect(c, TypeWelcome); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Close waited for a handshake")
	}
	if err := <-rejected; !errors.Is(err, ErrTimeout) {
		t.Fatalf("aborted handshake reported %v", err)
	}
}
