package pmem

import (
	"errors"
	"testing"
)

func TestGeometry(t *testing.T) {
	tests := []struct {
		name    string
		size    uint64
		layout  string
		k, s    uint32
		wantErr bool
	}{
		{"ok", 1 << 20, "app", 8, 4096, false},
		{"small-journal", 1 << 20, "app", 8, 128, true},
		{"unaligned-journal", 1 << 20, "app", 8, 1000, true},
		{"no-journals", 1 << 20, "app", 0, 4096, true},
		{"too-small", 8192, "app", 8, 4096, true},
		{"long-layout", 1 << 20, "0123456789012345678901234567890123", 8, 4096, true},
		{"nul-layout", 1 << 20, "a\x00b", 8, 4096, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Geometry(tc.size, tc.layout, tc.k, tc.s)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrBadOptions) {
					t.Fatalf("err %v is not ErrBadOptions", err)
				}
				return
			}
			if h.HeapOff+h.HeapUnits*Unit > tc.size || h.MapOff+h.HeapUnits > h.HeapOff || h.HeapOff%CacheLine != 0 {
				t.Fatalf("bad geometry %+v", h)
			}
		})
	}
}

func TestHeaderRoundTripAndCorruption(t *testing.T) {
	mem := make([]byte, 1<<20)
	h, err := Format(mem, "layout-x", 4, 1024)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHeader(mem)
	if err != nil || got != h {
		t.Fatalf("DecodeHeader = %+v, %v; want %+v", got, err, h)
	}
	cases := []struct {
		name string
		mut  func(b []byte) []byte
		want error
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, ErrBadMagic},
		{"checksum", func(b []byte) []byte { b[50]++; return b }, ErrHeaderChecksum},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, ErrBadGeometry},
		{"short", func(b []byte) []byte { return b[:100] }, ErrBadGeometry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mut(append([]byte(nil), mem...))
			_, err := DecodeHeader(b)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want %v marked ErrCorrupt", err, tc.want)
			}
		})
	}
	// A version bump with a fixed checksum is a version error.
	b := append([]byte(nil), mem...)
	b[8] = 9
	le.PutUint32(b[124:], Checksum(b[:124]))
	if _, err := DecodeHeader(b); !errors.Is(err, ErrBadVersion) {
		t.Fatalf("err = %v, want ErrBadVersion", err)
	}
}

func TestRootSlotsAlternate(t *testing.T) {
	page := make([]byte, HeaderSize)
	if _, ok, next := currentRoot(page); ok || next != rootSlotA {
		t.Fatalf("empty page has a root")
	}
	copy(page[rootSlotA:], RootSlot{Seq: 1, Off: 100, Size: 8, Name: "a"}.encode())
	cur, ok, next := currentRoot(page)
	if !ok || cur.Name != "a" || next != rootSlotB {
		t.Fatalf("after A: %+v %v %d", cur, ok, next)
	}
	copy(page[rootSlotB:], RootSlot{Seq: 2, Off: 200, Size: 8, Name: "b"}.encode())
	if cur, _, next = currentRoot(page); cur.Name != "b" || next != rootSlotA {
		t.Fatalf("after B: %+v %d", cur, next)
	}
	// A torn write of the newer slot falls back to the older one.
	page[rootSlotB+3] ^= 0xff
	if cur, ok, _ = currentRoot(page); !ok || cur.Name != "a" {
		t.Fatalf("torn B: %+v %v", cur, ok)
	}
}

// FuzzDecodeHeader feeds arbitrary bytes to the pool header decoder: it must
// never panic, and whatever it accepts must re-encode to the same bytes.
func FuzzDecodeHeader(f *testing.F) {
	mem := make([]byte, 64<<10)
	if _, err := Format(mem, "seed", 2, 512); err != nil {
		f.Fatal(err)
	}
	f.Add(mem)
	f.Add(mem[:HeaderSize])
	f.Add([]byte(Magic))
	f.Add([]byte{})
	bad := append([]byte(nil), mem...)
	bad[60] = 0xff
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v not marked ErrCorrupt", err)
			}
			return
		}
		var out [128]byte
		h.encode(out[:])
		if string(out[:]) != string(b[:128]) {
			t.Fatalf("accepted header does not re-encode identically")
		}
		currentRoot(b[:HeaderSize])
	})
}
