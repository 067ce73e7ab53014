package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the frame reader and the body decoders:
// they must never panic, must report every failure as a named malformation (or
// a code error for version and size), and what they accept must re-encode to
// the same bytes where an encoder exists.
func FuzzDecode(f *testing.F) {
	hello, _ := AppendHello(nil, Hello{PageSize: ps, Namespace: []byte("a"), Token: []byte("t")})
	f.Add(hello)
	f.Add(AppendWelcome(nil, Welcome{1, 2, 3, 1 << 20, ps}))
	rd := StartFrame(nil, TRead, 1)
	rd = AppendID(AppendCount(rd, 1), 7)
	_ = EndFrame(rd, 0)
	f.Add(rd)
	wr := StartFrame(nil, TWrite, 2)
	wr = AppendWriteEntry(AppendCount(wr, 1), 7, Checksum(page(3)), page(3))
	_ = EndFrame(wr, 0)
	f.Add(wr)
	rr := StartFrame(nil, TReadReply, 3)
	rr = AppendReadEntry(AppendCount(rr, 2), 7, OK, 1, page(4))
	rr = AppendReadEntry(rr, 8, CodeNotFound, 0, nil)
	_ = EndFrame(rr, 0)
	f.Add(rr)
	f.Add(AppendStatReply(nil, 4, Stat{1, 2, 3, 4}))
	f.Add(AppendError(nil, 5, CodeFull, "full"))
	f.Add(AppendFreeReply(nil, 6, 2))
	f.Add([]byte("FM\x01\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var hdr [HeaderSize]byte
		var buf []byte
		for {
			h, body, err := ReadFrame(r, &hdr, buf, 1<<20)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrBadVersion) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("unnamed error %v", err)
				}
				return
			}
			buf = body
			err = ValidateBody(h.Type, body, ps)
			if err != nil {
				if !errors.Is(err, ErrBadFrame) {
					t.Fatalf("unnamed body error %v", err)
				}
				continue
			}
			switch h.Type {
			case TWrite:
				p, _ := ParseWrite(body, ps)
				out := AppendCount(nil, p.Len())
				for i := 0; i < p.Len(); i++ {
					id, sum, d := p.At(i)
					out = AppendWriteEntry(out, id, sum, d)
				}
				if !bytes.Equal(out, body) {
					t.Fatal("write body does not re-encode")
				}
			case TReadReply:
				rr, _ := ParseReadReply(body, ps)
				out := AppendCount(nil, rr.Len())
				for e, ok := rr.Next(); ok; e, ok = rr.Next() {
					out = AppendReadEntry(out, e.ID, e.Status, e.Sum, e.Data)
				}
				if !bytes.Equal(out, body) {
					t.Fatal("read reply does not re-encode")
				}
			case THello:
				hh, _ := ParseHello(body)
				out, err := AppendHello(nil, hh)
				if err != nil || !bytes.Equal(out[HeaderSize:], body) {
					t.Fatalf("hello does not re-encode: %v", err)
				}
			}
		}
	})
}
