package memnode

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/internal/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultPageSize = 4096
	DefaultMaxBody  = 4<<20 + 64<<10
)

// Config configures a Server.
type Config struct {
	// Capacity is the RAM lent, in bytes; it is rounded down to whole pages
	// and must hold at least one.
	Capacity uint64
	// PageSize is the size of every page (default 4096); clients must ask
	// for the same in their handshake. A power of two from 512 to 1 MiB.
	PageSize int
	// Token, when not empty, must be presented by every client.
	Token []byte
	// IdleTimeout closes a connection that sends nothing for this long, and
	// bounds how long a reply may wait for a client to read it. 0: none.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the wait for a new connection's Hello
	// (default: IdleTimeout, or one minute without one).
	HandshakeTimeout time.Duration
	// MaxBody is the largest frame body accepted and the largest reply built
	// (default DefaultMaxBody, at most wire.MaxBodyLimit). Clients learn it
	// from the handshake and split their batches to fit.
	MaxBody uint32
	// Epoch is the boot epoch; 0 draws a random one (the normal case).
	Epoch uint64
	// SpinRead, when positive, makes each connection busy-poll for the
	// next request for up to this long after it has answered one, before it
	// sleeps in the network poller. On a virtual machine an idle vCPU
	// halts, and waking it for each request of a client that faults every
	// few microseconds costs more than the round trip (package
	// internal/spin). It spends CPU on a busy memnode to cut latency. 0: off.
	SpinRead time.Duration
	// Logger receives connection errors; nil discards them.
	Logger *slog.Logger
}

// Stats is a snapshot of a server's use.
type Stats struct {
	// Capacity and Used count pages over all namespaces.
	Capacity, Used uint64
	// Namespaces is the number of namespaces ever attached.
	Namespaces int
	// Conns is the number of open connections.
	Conns int
}

// Server is a memnode: it lends its RAM as pages to clients, each attached to
// a namespace. Create it with New, run it with Serve, stop it with Shutdown.
type Server struct {
	cfg   Config
	epoch uint64
	slab  *slab
	m     *metrics
	log   *slog.Logger

	nsMu       sync.Mutex
	namespaces map[string]*namespace

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	connWG    sync.WaitGroup
	closing   atomic.Bool
}

// New checks cfg and returns a server that holds no pages yet.
func New(cfg Config) (*Server, error) {
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.PageSize < 512 || cfg.PageSize > 1<<20 || cfg.PageSize&(cfg.PageSize-1) != 0 {
		return nil, fmt.Errorf("%w: page size %d is not a power of two from 512 to 1MiB", ErrConfig, cfg.PageSize)
	}
	pages := cfg.Capacity / uint64(cfg.PageSize)
	if pages == 0 {
		return nil, fmt.Errorf("%w: capacity %d bytes holds no %d-byte page", ErrConfig, cfg.Capacity, cfg.PageSize)
	}
	if pages > 1<<32-1 {
		return nil, fmt.Errorf("%w: capacity %d bytes is more than 2^32-1 pages", ErrConfig, cfg.Capacity)
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxBody > wire.MaxBodyLimit || int(cfg.MaxBody) < 4+wire.EntryHeaderSize+cfg.PageSize {
		return nil, fmt.Errorf("%w: max body %d must hold one page and be at most %d", ErrConfig, cfg.MaxBody, wire.MaxBodyLimit)
	}
	if len(cfg.Token) > wire.MaxToken {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrConfig, wire.MaxToken)
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = cfg.IdleTimeout
		if cfg.HandshakeTimeout == 0 {
			cfg.HandshakeTimeout = time.Minute
		}
	}
	if cfg.IdleTimeout < 0 || cfg.HandshakeTimeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout", ErrConfig)
	}
	s := &Server{
		cfg:        cfg,
		epoch:      cfg.Epoch,
		slab:       newSlab(cfg.PageSize, uint32(pages)),
		log:        cfg.Logger,
		namespaces: make(map[string]*namespace),
		listeners:  make(map[net.Listener]struct{}),
		conns:      make(map[*conn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for s.epoch == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("memnode: drawing boot epoch: %w", err)
		}
		s.epoch = binary.LittleEndian.Uint64(b[:])
	}
	s.m = newMetrics(s)
	return s, nil
}

// Epoch returns the boot epoch, a random 64-bit number drawn at New. A client
// that sees it change knows the memnode restarted and holds none of its pages.
func (s *Server) Epoch() uint64 { return s.epoch }

// Registry returns the server's own Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.m.reg }

// PageSize returns the page size.
func (s *Server) PageSize() int { return s.cfg.PageSize }

// Stats returns a snapshot of the server's use.
func (s *Server) Stats() Stats {
	s.nsMu.Lock()
	n := len(s.namespaces)
	s.nsMu.Unlock()
	s.mu.Lock()
	c := len(s.conns)
	s.mu.Unlock()
	return Stats{Capacity: uint64(s.slab.capacity), Used: uint64(s.slab.used.Load()), Namespaces: n, Conns: c}
}

// attach returns the namespace called name, creating it on first use.
// Namespaces outlive connections: a client that reconnects finds its pages.
func (s *Server) attach(name []byte) *namespace {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	ns, ok := s.namespaces[string(name)]
	if !ok {
		ns = newNamespace(string(name))
		s.namespaces[ns.name] = ns
	}
	return ns
}

// Serve accepts connections on l and serves each in its own goroutines until
// Shutdown or Close; then it returns ErrServerClosed. Other accept errors are
// returned as they are. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Temporary exhaustion (EMFILE and the like): back off as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("memnode: accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c, err := s.track(nc)
		if err != nil {
			return err
		}
		go c.serve()
	}
}

// track registers a new connection, or closes it if the server is closing.
func (s *Server) track(nc net.Conn) (*conn, error) {
	c := s.newConn(nc)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		nc.Close()
		return nil, ErrServerClosed
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.m.conns.Inc()
	s.m.connsTotal.Inc()
	return c, nil
}

// ServeConn serves one connection accepted elsewhere (any net.Conn: a Unix
// socket, a TLS connection, one end of net.Pipe) until it ends, and closes
// it. It returns ErrServerClosed if the server is shutting down.
func (s *Server) ServeConn(nc net.Conn) error {
	c, err := s.track(nc)
	if err != nil {
		return err
	}
	c.serve()
	return nil
}

// Shutdown stops accepting, lets every connection finish the requests it has
// already read and flush their replies, closes the connections and returns.
// If ctx ends first, the remaining connections are closed at once and ctx's
// error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.stopReading()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, and waits for
// their goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.connWG.Wait()
	return nil
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.m.conns.Dec()
	s.connWG.Done()
}

// CorruptPage flips one stored byte of page id of namespace ns without
// updating its checksum, so that the next read of it answers corrupt. It
// exists for tests of checksum verification (here and in clients) and
// reports whether the page was present.
func (s *Server) CorruptPage(ns string, id uint64) bool {
	s.nsMu.Lock()
	n, ok := s.namespaces[ns]
	s.nsMu.Unlock()
	return ok && s.slab.corrupt(n, id)
}
