package memnode

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/farmem/farmem/internal/wire"
)

// FuzzServe attaches a connection (over net.Pipe) and sends it arbitrary
// bytes after the handshake. The memnode must not panic, must answer or
// close, and must keep serving a well-behaved connection afterwards.
func FuzzServe(f *testing.F) {
	s, err := New(Config{Capacity: 64 * ps})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Add(writeFrame(1, []uint64{1, 2}, 0))
	f.Add(idsFrame(wire.TRead, 2, []uint64{1, 3}))
	f.Add(idsFrame(wire.TFree, 3, []uint64{2}))
	f.Add(append(idsFrame(wire.TRead, 2, make([]uint64, 1000)), wire.StartFrame(nil, wire.TStat, 4)...))
	f.Add(wire.AppendHeader(nil, wire.Header{Version: 1, Type: wire.TWrite, Len: 20}))
	f.Add([]byte("FM\x01\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	hello, _ := wire.AppendHello(nil, wire.Hello{PageSize: ps, Namespace: []byte("fuzz")})
	session := func(t *testing.T, input []byte) []byte {
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() { defer close(done); s.ServeConn(b) }()
		out := make(chan []byte, 1)
		go func() { got, _ := io.ReadAll(a); out <- got }()
		a.Write(hello)
		a.Write(input)
		// Half-close is not available on a pipe: closing ends the session
		// once the server has consumed what it wanted.
		a.Close()
		<-done
		return <-out
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		session(t, data)
		// A good session still works.
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() { defer close(done); s.ServeConn(b) }()
		defer func() { a.Close(); <-done }()
		go func() { a.Write(append(append([]byte(nil), hello...), wire.StartFrame(nil, wire.TStat, 9)...)) }()
		br := bufio.NewReader(a)
		var hdr [wire.HeaderSize]byte
		if h, _, err := wire.ReadFrame(br, &hdr, nil, 0); err != nil || h.Type != wire.TWelcome {
			t.Fatalf("handshake after fuzz input: %v %v", h.Type, err)
		}
		if h, _, err := wire.ReadFrame(br, &hdr, nil, 0); err != nil || h.Type != wire.TStatReply || h.ID != 9 {
			t.Fatalf("stat after fuzz input: %v %v", h.Type, err)
		}
	})
}
