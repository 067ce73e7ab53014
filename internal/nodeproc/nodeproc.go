// Package nodeproc runs a memnode in a child process on a loopback port, for
// farmem bench's embedded memnode and for tests that kill and restart one.
//
// The child is the current executable re-executed with an environment flag:
// a binary (or TestMain) that wants to host such children calls MaybeRun
// first thing. The parent owns the listening socket and hands it to each
// child as file descriptor 3, so the address stays the same across a kill
// and a restart, exactly as a memnode restarted by its supervisor would keep
// its address (and, having restarted, comes back empty with a new epoch).
package nodeproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/farmem/farmem/memnode"
)

const (
	envChild    = "FARMEM_NODEPROC_CHILD"
	envCapacity = "FARMEM_NODEPROC_CAPACITY"
	envToken    = "FARMEM_NODEPROC_TOKEN"
	envPageSize = "FARMEM_NODEPROC_PAGESIZE"
	envSpin     = "FARMEM_NODEPROC_SPIN"
)

// ErrChild: the child memnode failed to start or died unexpectedly.
var ErrChild = errors.New("nodeproc: memnode child process failed")

// MaybeRun serves as a memnode child and exits if this process was started
// by Start; otherwise it returns at once.
func MaybeRun() {
	if os.Getenv(envChild) != "1" {
		return
	}
	os.Exit(runChild())
}

func runChild() int {
	capacity, _ := strconv.ParseUint(os.Getenv(envCapacity), 10, 64)
	pageSize, _ := strconv.Atoi(os.Getenv(envPageSize))
	spin, _ := time.ParseDuration(os.Getenv(envSpin))
	srv, err := memnode.New(memnode.Config{Capacity: capacity, PageSize: pageSize, Token: []byte(os.Getenv(envToken)), SpinRead: spin})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	lf := os.NewFile(3, "listener")
	ln, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeproc child:", err)
		return 2
	}
	ready := os.NewFile(4, "ready")
	ready.Write([]byte{1})
	ready.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, memnode.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "nodeproc child:", err)
		return 1
	}
	return 0
}

// Config describes a child memnode.
type Config struct {
	Capacity uint64
	PageSize int
	Token    []byte
	// SpinRead is the memnode's busy-poll time (memnode.Config.SpinRead).
	SpinRead time.Duration
	// Stderr receives the child's error output; nil discards it.
	Stderr io.Writer
}

// Proc is a memnode child process and its listening address.
type Proc struct {
	cfg  Config
	ln   *net.TCPListener
	lf   *os.File
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
}

// Start listens on a loopback port and starts a memnode child on it.
func Start(cfg Config) (*Proc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("nodeproc: listening: %w", err)
	}
	tl := ln.(*net.TCPListener)
	lf, err := tl.File()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("nodeproc: %w", err)
	}
	p := &Proc{cfg: cfg, ln: tl, lf: lf}
	if err := p.start(); err != nil {
		lf.Close()
		ln.Close()
		return nil, err
	}
	return p, nil
}

// Addr is the memnode's address; it survives restarts.
func (p *Proc) Addr() string { return p.ln.Addr().String() }

func (p *Proc) start() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrChild, err)
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrChild, err)
	}
	defer rr.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		envChild+"=1",
		envCapacity+"="+strconv.FormatUint(p.cfg.Capacity, 10),
		envPageSize+"="+strconv.Itoa(p.cfg.PageSize),
		envToken+"="+string(p.cfg.Token),
		envSpin+"="+p.cfg.SpinRead.String(),
	)
	cmd.ExtraFiles = []*os.File{p.lf, rw}
	cmd.Stdout = nil
	cmd.Stderr = p.cfg.Stderr
	// The child dies with its parent, so a crashed bench leaves no memnode.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		rw.Close()
		return fmt.Errorf("%w: %v", ErrChild, err)
	}
	rw.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var b [1]byte
	if _, err := io.ReadFull(rr, b[:]); err != nil {
		cmd.Process.Kill()
		werr := <-done
		return fmt.Errorf("%w: it exited before it was ready (%v)", ErrChild, werr)
	}
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

// Kill ends the child with SIGKILL, as a crash would, and waits for it.
// Connections to the address then queue in the kernel until Restart.
func (p *Proc) Kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Kill()
	<-done
	return nil
}

// Restart starts a fresh, empty memnode on the same address (after Kill).
func (p *Proc) Restart() error {
	p.mu.Lock()
	running := p.cmd != nil
	p.mu.Unlock()
	if running {
		return fmt.Errorf("%w: restart of a running memnode", ErrChild)
	}
	return p.start()
}

// Running reports whether the child is up.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Stop ends the child gracefully (SIGTERM, then SIGKILL after timeout) and
// closes the listener.
func (p *Proc) Stop(timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	var err error
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(timeout):
			cmd.Process.Kill()
			err = <-done
		}
	}
	p.lf.Close()
	p.ln.Close()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && !ee.Exited() {
			return nil // ended by our signal
		}
		return fmt.Errorf("%w: %v", ErrChild, err)
	}
	return nil
}
