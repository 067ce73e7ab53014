package resilient

import (
	"testing"
)

// FuzzOutageFile feeds arbitrary bytes to the outage-set file decoder: it
// must never panic, and whatever it accepts must re-encode to a log that
// replays to the same set.
func FuzzOutageFile(f *testing.F) {
	h := outageHeader{Version: outageVersion, PageSize: 4096, Pages: 64, Nodes: 2}
	hb := make([]byte, outageHeaderSize)
	h.encode(hb)
	f.Add(hb)
	var rb [recordSize]byte
	log := append([]byte(nil), hb...)
	for _, r := range []record{{Op: opAdd, Arg: 3}, {Op: opEpoch, Node: 1, Arg: 77}, {Op: opDone, Arg: 3}, {Op: opAdd, Arg: 63}} {
		r.encode(rb[:])
		log = append(log, rb[:]...)
	}
	f.Add(log)
	f.Add(log[:len(log)-3])
	f.Add([]byte("FARMOUT1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := replayOutage(b)
		if err != nil {
			return
		}
		if st.good < outageHeaderSize || st.good > int64(len(b)) || (st.good-outageHeaderSize)%recordSize != 0 {
			t.Fatalf("good prefix %d of %d bytes", st.good, len(b))
		}
		out := make([]byte, outageHeaderSize)
		st.hdr.encode(out)
		for n, e := range st.epochs {
			record{Op: opEpoch, Node: n, Arg: e}.encode(rb[:])
			out = append(out, rb[:]...)
		}
		for p := range st.pages {
			record{Op: opAdd, Arg: p}.encode(rb[:])
			out = append(out, rb[:]...)
		}
		again, err := replayOutage(out)
		if err != nil || again.torn || len(again.pages) != len(st.pages) || len(again.epochs) != len(st.epochs) {
			t.Fatalf("re-encoded log does not replay the same: %v", err)
		}
		for p := range st.pages {
			if !again.pages[p] {
				t.Fatalf("page %d lost in re-encoding", p)
			}
		}
	})
}

// FuzzOutageRecord checks the record decoder alone against any header.
func FuzzOutageRecord(f *testing.F) {
	var rb [recordSize]byte
	record{Op: opAdd, Arg: 1}.encode(rb[:])
	f.Add(rb[:], uint64(64), uint32(1))
	f.Add([]byte{1, 2, 3}, uint64(1), uint32(1))
	f.Fuzz(func(t *testing.T, b []byte, pages uint64, nodes uint32) {
		h := outageHeader{Pages: pages, Nodes: nodes}
		r, err := decodeRecord(b, h)
		if err != nil {
			return
		}
		var out [recordSize]byte
		r.encode(out[:])
		if string(out[:]) != string(b[:recordSize]) {
			t.Fatalf("record %+v re-encodes differently", r)
		}
	})
}

// FuzzOutageHeader checks the header decoder alone: no panic, and what it
// accepts re-encodes to the same bytes.
func FuzzOutageHeader(f *testing.F) {
	h := outageHeader{Version: outageVersion, PageSize: 4096, Pages: 64, Nodes: 2, RegionID: [16]byte{1}}
	b := make([]byte, outageHeaderSize)
	h.encode(b)
	f.Add(b)
	f.Add(b[:20])
	f.Add(append([]byte("FARMOUT1"), make([]byte, 56)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeOutageHeader(b)
		if err != nil {
			return
		}
		out := make([]byte, outageHeaderSize)
		h.encode(out)
		// The reserved bytes 44..60 are covered by the CRC but not read.
		if string(out[:44]) != string(b[:44]) {
			t.Fatalf("header %+v re-encodes differently", h)
		}
	})
}
