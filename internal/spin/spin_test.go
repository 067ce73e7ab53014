package spin

import (
	"net"
	"testing"
	"time"
)

func TestReadable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	p := New(server)
	if p == nil {
		t.Fatal("no poller for a TCP connection")
	}
	if p.Readable(time.Millisecond) {
		t.Fatal("readable with nothing sent")
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if !p.Readable(10 * time.Second) {
		t.Fatal("not readable after a byte was sent")
	}
	// Nothing was consumed.
	b := make([]byte, 2)
	if n, err := server.Read(b); n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("read after spinning: %d %q %v", n, b[:n], err)
	}
	client.Close()
	if !p.Readable(10 * time.Second) {
		t.Fatal("end of stream not reported as readable")
	}
	if n := testing.AllocsPerRun(100, func() { p.Readable(time.Microsecond) }); n != 0 {
		t.Errorf("Readable allocates %v objects per call", n)
	}
	a, b2 := net.Pipe()
	defer a.Close()
	defer b2.Close()
	if New(a) != nil {
		t.Fatal("a poller for a pipe, which is not a socket")
	}
	var none *Poller
	if none.Readable(time.Millisecond) {
		t.Fatal("a nil poller reported readable")
	}
}
