package workload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t testing.TB, r TraceReader) ([]Access, error) {
	t.Helper()
	var out []Access
	for {
		a, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
}

func TestTextTrace(t *testing.T) {
	in := "# a comment\n\nR 0\nW 4096 512   # trailing comment\n  r\t0x2000 0x10\r\nw 12288\n\n"
	got, err := readAll(t, NewTextReader(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{{false, 0, 4096}, {true, 4096, 512}, {false, 0x2000, 16}, {true, 12288, 4096}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d: got %v want %v", i, got[i], want[i])
		}
	}
	// No newline at the end is fine.
	if got, err := readAll(t, NewTextReader(strings.NewReader("R 5 1"))); err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
}

func TestTextTraceErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
		line string
	}{
		{"X 5\n", ErrTraceSyntax, "line 1"},
		{"R 0\nR\n", ErrTraceSyntax, "line 2"},
		{"R 0\n\n# c\nRW 5\n", ErrTraceSyntax, "line 4"},
		{"R -1\n", ErrTraceSyntax, "line 1"},
		{"R 1 0\n", ErrTraceSyntax, "line 1"},
		{"R 1 2 3\n", ErrTraceSyntax, "line 1"},
		{"R 0x\n", ErrTraceSyntax, "line 1"},
		{"R 12a\n", ErrTraceSyntax, "line 1"},
		{"R 99999999999999999999999\n", ErrTraceSyntax, "line 1"},
		{"R 1125899906842623 2\n", ErrTraceOutOfRange, "line 1"},
		{"W 0 2000000000\n", ErrTraceOutOfRange, "line 1"},
		{"R " + strings.Repeat("1", MaxTextLine) + "\n", ErrTraceSyntax, "line 1"},
	} {
		_, err := readAll(t, NewTextReader(strings.NewReader(tc.in)))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.line) {
			t.Errorf("%.40q: got %v, want %v at %s", tc.in, err, tc.want, tc.line)
		}
	}
}

func randomAccesses(seed uint64, n int) []Access {
	r := splitmix{seed}
	out := make([]Access, n)
	var off int64
	for i := range out {
		a := Access{Write: r.next()%3 == 0, Length: DefaultTraceLength}
		switch r.next() % 4 {
		case 0: // sequential
		case 1:
			off = int64(r.below(1 << 40))
		case 2:
			off -= int64(r.below(1 << 20))
			off = max(off, 0)
		case 3:
			a.Length = int64(1 + r.below(1<<16))
		}
		a.Offset = off
		out[i] = a
		off += a.Length
	}
	return out
}

func encode(t testing.TB, f Format, as []Access) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := NewTraceWriter(&b, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if err := w.Write(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decode(t testing.TB, b []byte) ([]Access, Format, error) {
	t.Helper()
	r, f, err := NewTraceReader(bytes.NewReader(b))
	if err != nil {
		return nil, 0, err
	}
	as, err := readAll(t, r)
	return as, f, err
}

func equalAccesses(a, b []Access) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTraceRoundTrip converts random traces text → binary → text and checks
// both decode to the accesses written.
func TestTraceRoundTrip(t *testing.T) {
	seed := testSeed(t)
	for _, n := range []int{0, 1, 2, 1000} {
		as := randomAccesses(seed+uint64(n), n)
		text := encode(t, Text, as)
		var bin, text2 bytes.Buffer
		if c, err := Convert(&bin, bytes.NewReader(text), Binary); err != nil || c != int64(n) {
			t.Fatalf("to binary: %d %v", c, err)
		}
		if c, err := Convert(&text2, bytes.NewReader(bin.Bytes()), Text); err != nil || c != int64(n) {
			t.Fatalf("to text: %d %v", c, err)
		}
		for _, b := range [][]byte{text, bin.Bytes(), text2.Bytes()} {
			got, _, err := decode(t, b)
			if err != nil || !equalAccesses(got, as) {
				t.Fatalf("n=%d: decoded %d accesses, err %v", n, len(got), err)
			}
		}
		if !bytes.Equal(text, text2.Bytes()) {
			t.Fatal("text → binary → text is not the same text")
		}
		if n == 1000 {
			t.Logf("1000 accesses: text %d bytes, binary %d bytes", len(text), bin.Len())
		}
	}
}

func TestBinaryTraceErrors(t *testing.T) {
	as := randomAccesses(1, 50)
	bin := encode(t, Binary, as)
	// Every proper prefix that keeps the magic is truncated.
	for n := len(binaryMagic); n < len(bin); n++ {
		_, f, err := decode(t, bin[:n])
		if f != Binary || !errors.Is(err, ErrTraceTruncated) {
			t.Fatalf("prefix %d of %d: format %v err %v", n, len(bin), f, err)
		}
	}
	mutate := func(i int, x byte) []byte {
		b := bytes.Clone(bin)
		b[i] ^= x
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"version", mutate(4, 1), ErrTraceFormat},
		{"flags", mutate(6, 1), ErrTraceFormat},
		{"reserved", mutate(13, 1), ErrTraceFormat},
		{"checksum", mutate(len(bin)-1, 1), ErrTraceFormat},
		{"trailing", append(bytes.Clone(bin), 0), ErrTraceSyntax},
		{"zero length", append(append(bytes.Clone(bin[:16]), 0x03, 0x00), bin[16:]...), ErrTraceSyntax},
		{"varint overflow", append(append(bytes.Clone(bin[:16]), bytes.Repeat([]byte{0xff}, 11)...), 0), ErrTraceSyntax},
		{"huge length", append(bytes.Clone(bin[:16]), 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f), ErrTraceOutOfRange},
		{"negative offset", append(bytes.Clone(bin[:16]), 0x04), ErrTraceOutOfRange},
	} {
		_, _, err := decode(t, tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// A record flipped in the middle fails somewhere (syntax, range or
	// checksum) and never decodes silently to other accesses.
	for i := binaryHeaderSize; i < len(bin)-4; i++ {
		got, _, err := decode(t, mutate(i, 0x10))
		if err == nil {
			t.Fatalf("flip at %d decoded to %d accesses without error", i, len(got))
		}
	}
}

// TestRecordReplay records a zipf run into a binary trace, replays it with
// the trace workload (recording again), and checks that the replay makes the
// same calls and verifies clean.
func TestRecordReplay(t *testing.T) {
	seed := testSeed(t)
	c := Config{Name: ZipfName, Size: 2 << 20, Seed: seed, Mix: "60:40"}
	mem := make(SliceMemory, c.Size)
	w := setup(t, c, mem)
	var trace bytes.Buffer
	bw := NewBinaryWriter(&trace, DefaultTraceLength)
	rec := NewRecorder(mem, bw)
	res, err := Run(context.Background(), w, rec, RunOptions{MaxOps: 3000})
	if err != nil || res.Mismatches != 0 {
		t.Fatal(err, res.Mismatches)
	}
	if err := bw.Close(); err != nil || rec.Err() != nil || rec.Count() != 3000 {
		t.Fatal(err, rec.Err(), rec.Count())
	}
	path := filepath.Join(t.TempDir(), "zipf.fmtr")
	if err := os.WriteFile(path, trace.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := Config{Name: Trace, Size: c.Size, Seed: seed + 1, TracePath: path}
	mem2 := make(SliceMemory, c.Size)
	tw := setup(t, rc, mem2)
	defer tw.Close()
	var again bytes.Buffer
	bw2 := NewBinaryWriter(&again, DefaultTraceLength)
	res2, err := Run(context.Background(), tw, NewRecorder(mem2, bw2), RunOptions{MaxOps: 1 << 20})
	if err != nil || !res2.Ended || res2.Ops != 3000 || res2.Mismatches != 0 {
		t.Fatalf("replay: %v ended %v ops %d mismatches %d %v", err, res2.Ended, res2.Ops, res2.Mismatches, res2.FirstMismatches)
	}
	if res2.Reads != res.Reads || res2.Writes != res.Writes || res2.BytesRead != res.BytesRead || res2.BytesWritten != res.BytesWritten {
		t.Fatalf("replay %+v differs from run %+v", res2.Stats, res.Stats)
	}
	bw2.Close()
	if !bytes.Equal(trace.Bytes(), again.Bytes()) {
		t.Fatal("the replay's own trace differs from the trace it replayed")
	}
}

// TestTraceReplaySubPage replays sub-page writes and reads at a fine and a
// coarse grain: both verify clean, and the coarse one widens writes.
func TestTraceReplaySubPage(t *testing.T) {
	seed := testSeed(t)
	r := splitmix{seed}
	var b strings.Builder
	for i := 0; i < 2000; i++ {
		op := "R"
		if r.next()%2 == 0 {
			op = "W"
		}
		off := r.below(1<<20 - 300)
		b.WriteString(op + " " + itoa(int64(off)) + " " + itoa(int64(1+r.below(300))) + "\n")
	}
	for _, grain := range []int{64, 4096} {
		c := Config{Name: Trace, Size: 1 << 20, Seed: seed, Grain: grain, Trace: strings.NewReader(b.String()), Loop: true}
		mem := make(SliceMemory, c.Size)
		w := setup(t, c, mem)
		res, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 5000})
		if err != nil || res.Ops != 5000 || res.Mismatches != 0 || res.Ended {
			t.Fatalf("grain %d: %v ops %d mismatches %d %v", grain, err, res.Ops, res.Mismatches, res.FirstMismatches)
		}
		if res.BytesWritten%uint64(grain) != 0 {
			t.Fatalf("grain %d: %d bytes written, not whole grains", grain, res.BytesWritten)
		}
		for i := 100; i < len(mem); i += 512 {
			mem[i] ^= 1
		}
		res, _ = Run(context.Background(), w, mem, RunOptions{MaxOps: 20000})
		if res.Mismatches == 0 {
			t.Fatalf("grain %d: damage not seen", grain)
		}
	}
}

func itoa(v int64) string { return string(appendInt(nil, v)) }

func appendInt(b []byte, v int64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

func TestTraceWorkloadBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bin := encode(t, Binary, []Access{{false, 0, 4096}, {true, 8192, 100}})
	for _, tc := range []struct {
		name string
		c    Config
		want error
	}{
		{"out of range", Config{TracePath: write("oor.txt", []byte("R 0\nW 1048576 1\n"))}, ErrTraceOutOfRange},
		{"truncated", Config{TracePath: write("trunc.fmtr", bin[:len(bin)-3])}, ErrTraceTruncated},
		{"syntax", Config{TracePath: write("bad.txt", []byte("R 0\nQ 1\n"))}, ErrTraceSyntax},
	} {
		c := tc.c
		c.Name, c.Size = Trace, 1<<20
		w, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Setup(context.Background(), make(SliceMemory, c.Size))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Setup: got %v, want %v", tc.name, err, tc.want)
		}
		w.Close()
	}
	// A reader that cannot seek is checked as it goes: the run stops at the
	// bad record with the trace error.
	c := Config{Name: Trace, Size: 1 << 20, Trace: io.MultiReader(strings.NewReader("R 0\nW 0 1\nR 2000000\n"))}
	mem := make(SliceMemory, c.Size)
	w := setup(t, c, mem)
	res, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 100})
	if !errors.Is(err, ErrTraceOutOfRange) || res.Ops != 2 {
		t.Fatalf("streamed: %v after %d ops", err, res.Ops)
	}
	// A reader that fails stops the run at once with ErrTraceIO.
	c = Config{Name: Trace, Size: 1 << 20, Trace: io.MultiReader(strings.NewReader("R 0\nW 0 1\n"), iotest.ErrReader(errInjected))}
	w = setup(t, c, mem)
	res, err = Run(context.Background(), w, mem, RunOptions{MaxOps: 100, MaxErrors: -1})
	if !errors.Is(err, ErrTraceIO) || !errors.Is(err, errInjected) || res.Ops != 2 {
		t.Fatalf("failing reader: %v after %d ops", err, res.Ops)
	}
	if _, err := New(Config{Name: Trace, Size: 1 << 20}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("no trace: %v", err)
	}
	if _, err := New(Config{Name: Trace, Size: 1 << 20, TracePath: filepath.Join(dir, "missing")}); !errors.Is(err, ErrBadConfig) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzTextTrace(f *testing.F) {
	f.Add([]byte("R 0\nW 4096 512\n# c\n\nr 0x10 7\n"))
	f.Add([]byte("W 1125899906842623 1"))
	f.Add([]byte("R 1 2 3\n"))
	f.Add(encode(f, Text, randomAccesses(7, 20)))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip(t, NewTextReader(bytes.NewReader(b))) })
}

func FuzzBinaryTrace(f *testing.F) {
	f.Add(encode(f, Binary, nil))
	f.Add(encode(f, Binary, randomAccesses(3, 10)))
	b := encode(f, Binary, randomAccesses(4, 5))
	f.Add(b[:len(b)-2])
	f.Add([]byte("FMTR\x01\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip(t, NewBinaryReader(bytes.NewReader(b))) })
}

// fuzzRoundTrip decodes; whatever decodes must survive both encodings.
func fuzzRoundTrip(t *testing.T, r TraceReader) {
	as, err := readAll(t, r)
	if err != nil {
		for _, e := range []error{ErrTraceSyntax, ErrTraceTruncated, ErrTraceOutOfRange, ErrTraceFormat, ErrTraceIO} {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("unnamed error %v", err)
	}
	for _, f := range []Format{Text, Binary} {
		got, gf, err := decode(t, encode(t, f, as))
		if err != nil || gf != f || !equalAccesses(got, as) {
			t.Fatalf("%v round trip: %v, %d of %d accesses", f, err, len(got), len(as))
		}
	}
}
