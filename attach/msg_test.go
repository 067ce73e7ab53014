package attach

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func sampleMessages() []Message {
	return []Message{
		{Type: TypeHello, MinVersion: 1, MaxVersion: 1, Name: "app"},
		{Type: TypeHello, MinVersion: 1, MaxVersion: 3},
		{Type: TypeWelcome, Version: 1, PageSize: 4096, MaxSize: 1 << 40, Features: 0x1021, Modes: 3},
		{Type: TypeAlloc, Size: 1 << 30, PageSize: 4096},
		{Type: TypeRegion, RegionID: 7, Size: 1 << 20, PageSize: 4096},
		{Type: TypeRegister, Addr: 0x7f0000000000, Size: 1 << 20, Features: 0x1021, Modes: 3},
		{Type: TypeReattach, RegionID: 7, Addr: 0x7f0000000000, Size: 1 << 20, PageSize: 4096, Features: 1, Modes: 1},
		{Type: TypeReady, RegionID: 7},
		{Type: TypeError, Code: CodeTooLarge, Text: "too large"},
		{Type: TypeBye, Code: CodeShutdown},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := Append(nil, &m)
		if err != nil {
			t.Fatalf("%v: %v", m.Type, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%v: decode: %v", m.Type, err)
		}
		if got != m {
			t.Fatalf("%v: round trip %+v, want %+v", m.Type, got, m)
		}
		if len(b) > MaxMessage {
			t.Fatalf("%v: %d bytes exceeds MaxMessage", m.Type, len(b))
		}
	}
	long := Message{Type: TypeError, Text: strings.Repeat("x", MaxText)}
	if b, err := Append(nil, &long); err != nil || len(b) != MaxMessage {
		t.Fatalf("longest message: %d bytes, err %v; MaxMessage %d", len(b), err, MaxMessage)
	}
}

func TestAppendRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		m    Message
		err  error
	}{
		{"long name", Message{Type: TypeHello, Name: strings.Repeat("n", MaxName+1)}, ErrFrame},
		{"long text", Message{Type: TypeBye, Text: strings.Repeat("t", MaxText+1)}, ErrFrame},
		{"unknown type", Message{Type: 99}, ErrUnknownType},
		{"type zero", Message{}, ErrUnknownType},
	} {
		if _, err := Append(nil, &c.m); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	ready, _ := Append(nil, &Message{Type: TypeReady, RegionID: 1})
	hello, _ := Append(nil, &Message{Type: TypeHello, MinVersion: 1, MaxVersion: 1, Name: "ab"})
	alloc, _ := Append(nil, &Message{Type: TypeAlloc, Size: 4096})
	bye, _ := Append(nil, &Message{Type: TypeBye, Text: "abc"})
	mut := func(b []byte, f func([]byte)) []byte {
		c := bytes.Clone(b)
		f(c)
		return c
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrFrame},
		{"short header", ready[:5], ErrFrame},
		{"bad magic", mut(ready, func(b []byte) { b[0] = 'X' }), ErrFrame},
		{"reserved header byte", mut(ready, func(b []byte) { b[5] = 1 }), ErrFrame},
		{"length beyond record", mut(ready, func(b []byte) { b[6] = 9 }), ErrFrame},
		{"truncated payload", ready[:len(ready)-1], ErrFrame},
		{"trailing bytes", append(bytes.Clone(ready), 0), ErrFrame},
		{"unknown type", mut(ready, func(b []byte) { b[4] = 42 }), ErrUnknownType},
		{"wrong fixed size", mut(alloc, func(b []byte) { b[4] = byte(TypeReady) }), ErrFrame},
		{"alloc reserved", mut(alloc, func(b []byte) { b[HeaderSize+12] = 1 }), ErrFrame},
		{"hello name length", mut(hello, func(b []byte) { b[HeaderSize+8] = 5 }), ErrFrame},
		{"hello flags", mut(hello, func(b []byte) { b[HeaderSize+4] = 1 }), ErrFrame},
		{"hello versions reversed", mut(hello, func(b []byte) { b[HeaderSize] = 9 }), ErrFrame},
		{"bye text length", mut(bye, func(b []byte) { b[HeaderSize+2] = 1 }), ErrFrame},
		{"bye short", func() []byte {
			b := mut(bye[:HeaderSize+2], func(b []byte) { b[6] = 2 })
			return b
		}(), ErrFrame},
	} {
		if _, err := Decode(c.b); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}

func TestRemoteErrorMatches(t *testing.T) {
	var err error = &RemoteError{Code: CodeTooLarge, Text: "x"}
	if !errors.Is(err, ErrRejected) || !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrDenied) {
		t.Fatalf("RemoteError matching: %v", err)
	}
	err = &RemoteError{Code: CodeInternal}
	if !errors.Is(err, ErrRejected) || errors.Is(err, ErrBadRequest) {
		t.Fatalf("internal RemoteError matching: %v", err)
	}
	if codeOf(ErrFrame) != CodeBadRequest || codeOf(errors.New("x")) != CodeInternal {
		t.Fatal("codeOf")
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to
// the same bytes (the encoding is canonical).
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := Append(nil, &m)
		f.Add(b)
	}
	f.Add([]byte("FMAT"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrFrame) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		out, err := Append(nil, &m)
		if err != nil {
			t.Fatalf("re-encode of accepted %+v: %v", m, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encode %x != input %x", out, b)
		}
	})
}
