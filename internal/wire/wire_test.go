package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

const ps = 64 // a small page size keeps test frames short

func page(fill byte) []byte { return bytes.Repeat([]byte{fill}, ps) }

// readOne reads back one frame and validates its body.
func readOne(t *testing.T, frame []byte) (Header, []byte) {
	t.Helper()
	var hdr [HeaderSize]byte
	h, body, err := ReadFrame(bytes.NewReader(frame), &hdr, nil, 0)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	if err := ValidateBody(h.Type, body, ps); err != nil {
		t.Fatalf("ValidateBody(%v): %v", h.Type, err)
	}
	return h, body
}

func TestRoundTrip(t *testing.T) {
	t.Run("hello", func(t *testing.T) {
		f, err := AppendHello(nil, Hello{PageSize: ps, Namespace: []byte("ns-1"), Token: []byte("s3cret")})
		if err != nil {
			t.Fatal(err)
		}
		h, body := readOne(t, f)
		got, _ := ParseHello(body)
		if h.Type != THello || got.PageSize != ps || string(got.Namespace) != "ns-1" || string(got.Token) != "s3cret" {
			t.Fatalf("got %+v %+v", h, got)
		}
	})
	t.Run("welcome", func(t *testing.T) {
		w := Welcome{Epoch: 0xdeadbeefcafe, Capacity: 100, Used: 7, MaxBody: 1 << 20, PageSize: ps}
		_, body := readOne(t, AppendWelcome(nil, w))
		got, _ := ParseWelcome(body)
		if got != w {
			t.Fatalf("got %+v want %+v", got, w)
		}
	})
	t.Run("read", func(t *testing.T) {
		f := StartFrame(nil, TRead, 42)
		f = AppendCount(f, 3)
		for _, id := range []uint64{1, 1 << 40, 7} {
			f = AppendID(f, id)
		}
		if err := EndFrame(f, 0); err != nil {
			t.Fatal(err)
		}
		h, body := readOne(t, f)
		ids, _ := ParseIDs(body)
		if h.ID != 42 || ids.Len() != 3 || ids.At(1) != 1<<40 || ids.At(2) != 7 {
			t.Fatalf("got %+v len %d", h, ids.Len())
		}
	})
	t.Run("write", func(t *testing.T) {
		f := StartFrame(nil, TWrite, 9)
		f = AppendCount(f, 2)
		f = AppendWriteEntry(f, 5, Checksum(page(1)), page(1))
		f = AppendWriteEntry(f, 6, Checksum(page(2)), page(2))
		_ = EndFrame(f, 0)
		_, body := readOne(t, f)
		p, _ := ParseWrite(body, ps)
		id, sum, data := p.At(1)
		if p.Len() != 2 || id != 6 || sum != Checksum(page(2)) || !bytes.Equal(data, page(2)) {
			t.Fatalf("bad write entry %d %x", id, sum)
		}
	})
	t.Run("read reply", func(t *testing.T) {
		f := StartFrame(nil, TReadReply, 3)
		f = AppendCount(f, 3)
		f = AppendReadEntry(f, 1, OK, Checksum(page(9)), page(9))
		f = AppendReadEntry(f, 2, CodeNotFound, 0, nil)
		f = AppendReadEntry(f, 3, CodeCorrupt, 0, nil)
		_ = EndFrame(f, 0)
		_, body := readOne(t, f)
		r, _ := ParseReadReply(body, ps)
		var got []ReadEntry
		for e, ok := r.Next(); ok; e, ok = r.Next() {
			got = append(got, e)
		}
		if len(got) != 3 || !bytes.Equal(got[0].Data, page(9)) || got[1].Status != CodeNotFound || got[2].Status != CodeCorrupt || got[2].Data != nil {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("write reply", func(t *testing.T) {
		f := StartFrame(nil, TWriteReply, 3)
		f = AppendCount(f, 2)
		f = AppendStatus(f, OK)
		f = AppendStatus(f, CodeFull)
		_ = EndFrame(f, 0)
		_, body := readOne(t, f)
		s, _ := ParseWriteReply(body)
		if s.Len() != 2 || s.At(1) != CodeFull || s.At(1).Err() != ErrFull {
			t.Fatal("bad statuses")
		}
	})
	t.Run("free stat error", func(t *testing.T) {
		_, body := readOne(t, AppendFreeReply(nil, 1, 17))
		if n, _ := ParseFreeReply(body); n != 17 {
			t.Fatal(n)
		}
		st := Stat{Capacity: 1, Used: 2, NamespacePages: 3, Epoch: 4}
		_, body = readOne(t, AppendStatReply(nil, 2, st))
		if got, _ := ParseStatReply(body); got != st {
			t.Fatal(got)
		}
		_, body = readOne(t, AppendError(nil, 3, CodeBadToken, "nope"))
		re, _ := ParseError(body)
		if !errors.Is(re, ErrBadToken) || re.Msg != "nope" {
			t.Fatal(re)
		}
	})
}

func TestMalformed(t *testing.T) {
	good := AppendFreeReply(nil, 1, 1)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadMagic},
		{"bad version", mut(func(b []byte) []byte { b[2] = 9; return b }), ErrBadVersion},
		{"unknown type", mut(func(b []byte) []byte { b[3] = 0x77; return b }), ErrUnknownType},
		{"too large", mut(func(b []byte) []byte { le.PutUint32(b[4:], MaxBodyLimit+1); return b }), ErrTooLarge},
		{"truncated header", good[:10], ErrTruncated},
		{"truncated body", good[:len(good)-1], ErrTruncated},
		{"bad length", mut(func(b []byte) []byte { le.PutUint32(b[4:], 5); return append(b, 0) }), ErrBadLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr [HeaderSize]byte
			h, body, err := ReadFrame(bytes.NewReader(tc.frame), &hdr, nil, 0)
			if err == nil {
				err = ValidateBody(h.Type, body, ps)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, _, err := ReadFrame(bytes.NewReader(nil), new([HeaderSize]byte), nil, 0); err != io.EOF {
		t.Fatalf("empty stream: %v", err)
	}
	bodies := []struct {
		name string
		t    Type
		body []byte
		want error
	}{
		{"hello empty ns", THello, []byte{64, 0, 0, 0, 0, 0, 0, 0}, ErrBadName},
		{"hello space in ns", THello, []byte{64, 0, 0, 0, 1, 0, 0, 0, ' '}, ErrBadName},
		{"hello zero page", THello, []byte{0, 0, 0, 0, 1, 0, 0, 0, 'a'}, ErrBadField},
		{"read odd len", TRead, []byte{1, 0, 0, 0, 1, 2, 3}, ErrBadLength},
		{"write reserved", TWrite, append([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, page(0)...), ErrBadField},
		{"read reply bad status", TReadReply, []byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0}, ErrBadStatus},
		{"read reply short data", TReadReply, []byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, ErrTruncated},
		{"write reply bad status", TWriteReply, []byte{1, 0, 0, 0, 5}, ErrBadStatus},
		{"error ok code", TError, []byte{0, 0, 0, 0}, ErrBadStatus},
		{"stat with body", TStat, []byte{1}, ErrBadLength},
	}
	for _, tc := range bodies {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateBody(tc.t, tc.body, ps)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrBadFrame) {
				t.Fatalf("got %v, want %v (and ErrBadFrame)", err, tc.want)
			}
		})
	}
}

func TestCodes(t *testing.T) {
	for c := OK; c <= maxCode; c++ {
		if got := CodeOf(c.Err()); got != c {
			t.Errorf("CodeOf(%v.Err()) = %v", c, got)
		}
	}
	if CodeOf(ErrTruncated) != CodeBadFrame || CodeOf(io.EOF) != CodeInternal {
		t.Error("malformation or foreign error mapped wrongly")
	}
	if Code(999).Err() != ErrInternal {
		t.Error("unknown code")
	}
}

func TestReadFrameReusesBuffer(t *testing.T) {
	f := AppendFreeReply(nil, 1, 1)
	buf := make([]byte, 0, 128)
	var hdr [HeaderSize]byte
	allocs := testing.AllocsPerRun(100, func() {
		_, body, err := ReadFrame(bytes.NewReader(f), &hdr, buf, 0)
		if err != nil || len(body) != 4 {
			t.Fatal(err)
		}
	})
	if allocs > 1 { // the bytes.Reader itself
		t.Fatalf("ReadFrame allocated %.0f times", allocs)
	}
}

// TestChecksumCheckValue pins the checksum to CRC-32C (Castagnoli) by its
// standard check value, which docs/PROTOCOL.md quotes for other clients.
func TestChecksumCheckValue(t *testing.T) {
	if got := Checksum([]byte("123456789")); got != 0xE3069283 {
		t.Fatalf("Checksum(123456789) = %#x, want 0xe3069283", got)
	}
}
