package store

import "testing"

func FuzzDecodeNVMHeader(f *testing.F) {
	good := make([]byte, 4096)
	nvmHeader{Version: nvmVersion, PageSize: 4096, Pages: 10, RegionID: [16]byte{7}}.encode(good)
	f.Add(good[:nvmHeaderSize])
	f.Add([]byte("FARMNVM1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeNVMHeader(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes.
		out := make([]byte, nvmHeaderSize)
		h.encode(out)
		if string(out) != string(b[:nvmHeaderSize]) {
			t.Fatalf("decode/encode mismatch")
		}
	})
}
