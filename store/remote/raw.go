package remote

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"

	"net"
	"time"

	"github.com/farmem/farmem/internal/wire"
	"github.com/farmem/farmem/store"
)

// RawPageSize is the page size RawRTT uses.
const RawPageSize = 4096

// RawRTT measures the physical reference of a machine: over one plain TCP
// connection to the memnode at addr, attached to namespace, it writes one
// 4 KiB page and then does n synchronous single-page reads of it, returning
// each read's round-trip time. It has no pool, no pipelining and no reader
// goroutine (only a bufio.Reader, so that a reply costs one read system call
// as in the full client): the caller writes the prebuilt request and reads the reply on
// its own goroutine, the least code a 4 KiB request/response can take, so
// that the fault latency of the full client can be compared against it. It
// frees the page before returning.
func RawRTT(ctx context.Context, addr, namespace string, token []byte, n int) ([]time.Duration, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: RawRTT needs a positive sample count, got %d", ErrConfig, n)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("remote: raw RTT: dialing %s: %w: %w", addr, store.ErrUnavailable, err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	hello, err := wire.AppendHello(nil, wire.Hello{PageSize: RawPageSize, Namespace: []byte(namespace), Token: token})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	// The reply buffer fits the largest frame of this exchange: a read
	// reply of one page, or an error.
	var hdr [wire.HeaderSize]byte
	br := bufio.NewReaderSize(nc, 2*RawPageSize)
	buf := make([]byte, 0, 4+wire.EntryHeaderSize+RawPageSize+wire.MaxErrorMsg)
	roundTrip := func(frame []byte, want wire.Type) ([]byte, error) {
		if _, err := nc.Write(frame); err != nil {
			return nil, err
		}
		h, body, err := wire.ReadFrame(br, &hdr, buf, uint32(cap(buf)))
		if err != nil {
			return nil, err
		}
		if h.Type == wire.TError {
			if re, perr := wire.ParseError(body); perr == nil {
				return nil, re
			}
		}
		if h.Type != want {
			return nil, fmt.Errorf("%w: got %v, want %v", ErrProtocol, h.Type, want)
		}
		return body, nil
	}
	fail := func(what string, err error) error {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("remote: raw RTT to %s: %s: %w", addr, what, err)
	}
	if _, err := roundTrip(hello, wire.TWelcome); err != nil {
		return nil, fail("handshake", err)
	}
	page := make([]byte, RawPageSize)
	for i := range page {
		page[i] = byte(i * 7)
	}
	const id = 1
	w := wire.StartFrame(nil, wire.TWrite, 1)
	w = wire.AppendWriteEntry(wire.AppendCount(w, 1), id, wire.Checksum(page), page)
	wire.EndFrame(w, 0)
	body, err := roundTrip(w, wire.TWriteReply)
	if err != nil {
		return nil, fail("writing the page", err)
	}
	if st, err := wire.ParseWriteReply(body); err != nil || st.Len() != 1 || st.At(0) != wire.OK {
		return nil, fail("writing the page", fmt.Errorf("%w: status %v", ErrProtocol, err))
	}
	r := wire.StartFrame(nil, wire.TRead, 2)
	r = wire.AppendID(wire.AppendCount(r, 1), id)
	wire.EndFrame(r, 0)
	out := make([]time.Duration, n)
	for i := range out {
		binary.LittleEndian.PutUint64(r[8:], uint64(i+2)) // a fresh request id
		t0 := time.Now()
		body, err := roundTrip(r, wire.TReadReply)
		out[i] = time.Since(t0)
		if err != nil {
			return nil, fail("reading the page", err)
		}
		if len(body) != 4+wire.EntryHeaderSize+RawPageSize || body[12] != byte(wire.OK) {
			return nil, fail("reading the page", fmt.Errorf("%w: unexpected read reply", ErrProtocol))
		}
	}
	f := wire.StartFrame(nil, wire.TFree, 3)
	f = wire.AppendID(wire.AppendCount(f, 1), id)
	wire.EndFrame(f, 0)
	if _, err := roundTrip(f, wire.TFreeReply); err != nil && ctx.Err() == nil {
		return nil, fail("freeing the page", err)
	}
	return out, nil
}
