//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

// The separate-process test shape. A goroutine that faults on a range its own
// process handles can deadlock the Go runtime (shared/notes/userfaultfd.md),
// so every test that faults re-executes the test binary as the faulting
// "application" (testApp below) and handles its faults here, in the test
// process, which never touches the registered range itself: it reads and
// writes the region only through its own, unregistered mapping of the memfd.
//
// The application receives a SOCK_SEQPACKET socket (fd 3) and the memfd
// (fd 4), maps the memfd shared, creates a userfaultfd, registers the
// mapping and sends the userfaultfd back with SCM_RIGHTS, then executes
// commands: each command is one access, and its reply arrives only once the
// access completed. A reply therefore proves that the access did not fault,
// or that the test resolved its fault: the handler goroutine below only
// forwards events and never resolves anything itself.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	envTestApp      = "FARMEM_UFFD_TEST_APP"
	envTestPages    = "FARMEM_UFFD_TEST_PAGES"
	envTestMode     = "FARMEM_UFFD_TEST_MODE"
	envTestFeatures = "FARMEM_UFFD_TEST_FEATURES"
)

// Commands the application executes.
const (
	cmdRead   = 'r' // read the page; reply: first byte, and whether all bytes equal it
	cmdWrite  = 'w' // fill the page with val using copy()
	cmdRemove = 'R' // madvise(MADV_REMOVE) the page
	cmdUnmap  = 'M' // munmap the whole region
	cmdCrowd  = 'C' // val goroutines load the page's first byte at once; reply: that byte
	// cmdCounter runs val*100000 steps of "load the page's first word, check
	// it is the value stored last, store it plus one" (plain loads and
	// stores, no copy()); reply: whether every load matched, and the
	// number of mismatches (capped at 255). A lost write shows up as a
	// mismatch.
	cmdCounter = 'N'
)

// hangGuard bounds every wait for the application: a broken fault path shows
// up as a failure naming the step, never as a hung test. It is not a timing
// assertion.
const hangGuard = 20 * time.Second

func TestMain(m *testing.M) {
	MaybeRunHelper()
	if os.Getenv(envTestApp) != "" {
		if err := testApp(); err != nil {
			fmt.Fprintf(os.Stderr, "test app: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func envUint(name string) uint64 {
	v, _ := strconv.ParseUint(os.Getenv(name), 10, 64)
	return v
}

// testApp is the faulting application, run in a child process.
func testApp() error {
	const sock, memfd = 3, 4
	pages := int(envUint(envTestPages))
	ps := os.Getpagesize()
	mem, err := MapShared(memfd, pages*ps)
	if err != nil {
		return err
	}
	f, err := Open(Options{Want: Features(envUint(envTestFeatures))})
	if err != nil {
		return err
	}
	if _, err := f.Register(Addr(mem), len(mem), Mode(envUint(envTestMode))); err != nil {
		return err
	}
	var hello [16]byte
	binary.LittleEndian.PutUint64(hello[0:], uint64(Addr(mem)))
	binary.LittleEndian.PutUint64(hello[8:], uint64(f.Features()))
	if err := unix.Sendmsg(sock, hello[:], unix.UnixRights(f.Fd()), nil, 0); err != nil {
		return err
	}
	var cmd, reply [8]byte
	for {
		n, err := unix.Read(sock, cmd[:])
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		op, val, page := cmd[0], cmd[1], int(binary.LittleEndian.Uint32(cmd[4:]))
		reply = [8]byte{op}
		switch op {
		case cmdRead:
			p := mem[page*ps : (page+1)*ps]
			reply[1] = p[0]
			if bytes.Count(p, p[:1]) == ps {
				reply[2] = 1
			}
		case cmdWrite:
			copy(mem[page*ps:(page+1)*ps], bytes.Repeat([]byte{val}, ps))
		case cmdRemove:
			if err := unix.Madvise(mem[page*ps:(page+1)*ps], unix.MADV_REMOVE); err != nil {
				return err
			}
		case cmdCrowd:
			p := mem[page*ps : (page+1)*ps]
			got := make([]byte, val)
			var wg sync.WaitGroup
			for g := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[g] = p[0]
				}()
			}
			wg.Wait()
			reply[1], reply[2] = got[0], 1
			for _, v := range got {
				if v != got[0] {
					reply[2] = 0
				}
			}
		case cmdCounter:
			w := (*uint64)(unsafe.Pointer(&mem[page*ps]))
			// Atomic loads and stores are plain moves on these
			// architectures; they keep the compiler from forwarding
			// the stored value to the next load.
			last, bad := atomic.LoadUint64(w), 0
			for range int(val) * 100000 {
				if v := atomic.LoadUint64(w); v != last {
					bad++
					last = v
				}
				last++
				atomic.StoreUint64(w, last)
			}
			reply[1], reply[2] = byte(min(bad, 255)), 0
			if bad == 0 {
				reply[2] = 1
			}
		case cmdUnmap:
			if err := unix.Munmap(mem); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown command %q", op)
		}
		if _, err := unix.Write(sock, reply[:]); err != nil {
			return err
		}
	}
}

// app is the test's view of a running application.
type app struct {
	t      *testing.T
	cmd    *exec.Cmd
	sock   int
	memfd  int
	view   []byte  // the test's own mapping of the memfd (never registered)
	base   uintptr // the application's mapping
	ps     int
	uffd   *FD
	events chan Msg
	done   chan error
	exited bool
	stderr bytes.Buffer
}

// startApp starts an application with pages pages, registered with mode,
// asking for the features want.
func startApp(t *testing.T, pages int, mode Mode, want Features, env ...string) *app {
	t.Helper()
	a := &app{t: t, ps: os.Getpagesize(), events: make(chan Msg, 64), done: make(chan error, 1)}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.sock = pair[0]
	t.Cleanup(func() { unix.Close(a.sock) })
	a.memfd, err = MemfdCreate("uffd-test", int64(pages*a.ps))
	if err != nil {
		unix.Close(pair[1])
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(a.memfd) })
	if a.view, err = MapShared(a.memfd, pages*a.ps); err != nil {
		unix.Close(pair[1])
		t.Fatal(err)
	}
	t.Cleanup(func() { Unmap(a.view) })

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	memfdDup, err := unix.Dup(a.memfd)
	if err != nil {
		t.Fatal(err)
	}
	child, childMem := os.NewFile(uintptr(pair[1]), "sock"), os.NewFile(uintptr(memfdDup), "memfd")
	a.cmd = exec.Command(exe, "-test.run=^$")
	a.cmd.Env = append(os.Environ(), envTestApp+"=1",
		fmt.Sprintf("%s=%d", envTestPages, pages),
		fmt.Sprintf("%s=%d", envTestMode, mode),
		fmt.Sprintf("%s=%d", envTestFeatures, want))
	a.cmd.Env = append(a.cmd.Env, env...)
	a.cmd.ExtraFiles = []*os.File{child, childMem}
	a.cmd.Stderr = &a.stderr
	err = a.cmd.Start()
	child.Close()
	childMem.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.stop)
	go func() { a.done <- a.cmd.Wait() }()

	a.waitReadable("the userfaultfd")
	var hello [16]byte
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(a.sock, hello[:], oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n != len(hello) {
		t.Fatalf("receive userfaultfd: n=%d err=%v; app stderr: %s", n, err, a.stderr.String())
	}
	scms, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(scms) != 1 {
		t.Fatalf("control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&scms[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v %v", fds, err)
	}
	a.base = uintptr(binary.LittleEndian.Uint64(hello[0:]))
	if a.uffd, err = FromFD(fds[0], Features(binary.LittleEndian.Uint64(hello[8:]))); err != nil {
		t.Fatal(err)
	}
	handlerDone := make(chan struct{})
	go func() {
		defer close(handlerDone)
		var buf [16]Msg
		for {
			n, err := a.uffd.Read(buf[:])
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("handler read: %v", err)
				}
				return
			}
			for _, m := range buf[:n] {
				a.events <- m
			}
		}
	}()
	t.Cleanup(func() {
		a.uffd.Shutdown()
		<-handlerDone
		a.uffd.Close()
	})
	return a
}

// stop kills the application (a kill ends a thread blocked in a fault too).
func (a *app) stop() {
	if !a.exited {
		_ = a.cmd.Process.Kill()
		<-a.done
		a.exited = true
	}
}

func (a *app) waitReadable(what string) {
	a.t.Helper()
	fds := []unix.PollFd{{Fd: int32(a.sock), Events: unix.POLLIN}}
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			a.t.Fatal(err)
		}
		if n > 0 {
			return
		}
		select {
		case err := <-a.done:
			a.done <- err
			a.t.Fatalf("app exited (%v) while waiting for %s: %s", err, what, a.stderr.String())
		default:
		}
	}
	a.t.Fatalf("no %s from the app within %v", what, hangGuard)
}

// send starts a command; the reply is collected with reply.
func (a *app) send(op byte, page int, val byte) {
	a.t.Helper()
	var cmd [8]byte
	cmd[0], cmd[1] = op, val
	binary.LittleEndian.PutUint32(cmd[4:], uint32(page))
	if _, err := unix.Write(a.sock, cmd[:]); err != nil {
		a.t.Fatal(err)
	}
}

// reply waits for the reply to the last command: the first byte of the page
// and whether the whole page holds that byte (for reads).
func (a *app) reply(what string) (first byte, uniform bool) {
	a.t.Helper()
	a.waitReadable(what)
	var r [8]byte
	if n, err := unix.Read(a.sock, r[:]); err != nil || n != 8 {
		a.t.Fatalf("%s: reply n=%d err=%v", what, n, err)
	}
	return r[1], r[2] == 1
}

// read reads a page that must not fault (or whose fault was resolved).
func (a *app) read(page int) byte {
	a.t.Helper()
	a.send(cmdRead, page, 0)
	v, uniform := a.reply(fmt.Sprintf("read of page %d", page))
	if !uniform {
		a.t.Fatalf("page %d is not uniform (first byte %d)", page, v)
	}
	return v
}

// event waits for the next event.
func (a *app) event(what string) Msg {
	a.t.Helper()
	select {
	case m := <-a.events:
		return m
	case <-time.After(hangGuard):
		a.t.Fatalf("no event for %s within %v", what, hangGuard)
	case err := <-a.done:
		a.done <- err
		a.t.Fatalf("app exited (%v) while waiting for %s: %s", err, what, a.stderr.String())
	}
	return Msg{}
}

// fault waits for a page fault on page and checks its flags.
func (a *app) fault(page int, flags uint64) {
	a.t.Helper()
	m := a.event(fmt.Sprintf("fault on page %d", page))
	if m.Event != EventPagefault {
		a.t.Fatalf("event %v, want pagefault", m.Event)
	}
	if got := m.Address(); got != a.addr(page) {
		a.t.Fatalf("fault at %#x, want page %d at %#x", got, page, a.addr(page))
	}
	if m.Flags() != flags {
		a.t.Fatalf("fault on page %d: flags %#x, want %#x", page, m.Flags(), flags)
	}
}

// noEvent checks that no event is queued (all earlier accesses have replied,
// so any fault they raised would already be here).
//
// A missing fault on a page that is present by now is not unexpected: a thread
// blocked in a userfaultfd fault wakes for a signal (Go's preemption sends
// SIGURG), returns to user space and faults again, so the kernel may queue a
// second event for a fault the test has already served (the duplicate that
// UFFDIO_COPY answers with EEXIST). Such events are skipped.
func (a *app) noEvent() {
	a.t.Helper()
	for {
		select {
		case m := <-a.events:
			if m.Event == EventPagefault && m.Flags()&FlagWP == 0 && a.present(m.Address()) {
				continue
			}
			a.t.Fatalf("unexpected event %v at %#x flags %#x", m.Event, m.Address(), m.Flags())
		default:
			return
		}
	}
}

// present reports whether the page at addr (in the application's mapping)
// is in the memfd, as the test's own view of it says (mincore).
func (a *app) present(addr uintptr) bool {
	a.t.Helper()
	off := int(addr-a.base) &^ (a.ps - 1)
	if addr < a.base || off >= len(a.view) {
		return false
	}
	var vec [1]byte
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&a.view[off])), uintptr(a.ps), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		a.t.Fatalf("mincore: %v", errno)
	}
	return vec[0]&1 != 0
}

func (a *app) addr(page int) uintptr { return a.base + uintptr(page*a.ps) }

func (a *app) pageOf(v byte, n int) []byte { return bytes.Repeat([]byte{v}, n*a.ps) }

func (a *app) viewPage(page int) []byte { return a.view[page*a.ps : (page+1)*a.ps] }
