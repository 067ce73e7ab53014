package journal

import (
	"errors"
	"testing"

	"github.com/farmem/farmem/pmem"
)

// FuzzDecodeJournal feeds arbitrary journal bytes to the header and entry
// decoders and to recovery of a pool holding them: nothing may panic, every
// failure must be a named error, and an accepted redo body must decode to
// entries that fill exactly its used bytes.
func FuzzDecodeJournal(f *testing.F) {
	const k, s = 2, 512
	mem := make([]byte, 64<<10)
	h, err := pmem.Format(mem, "fz", k, s)
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: a committed redo journal, an active undo journal, a free one.
	p, _ := pmem.OpenMem(mem, pmem.NewSim(mem), "fz")
	j, _, _ := Open(p, Options{})
	tx, _ := j.Begin(Redo)
	tx.Write(h.HeapOff, []byte("hello, journal"))
	tx.Write(h.HeapOff+100, []byte{1, 2, 3})
	tx.prepareRedo()
	j.seal(tx, j.nextID.Add(1)-1)
	f.Add(append([]byte(nil), tx.jb...))
	u, _ := j.Begin(Undo)
	u.Write(h.HeapOff+200, []byte("undo me"))
	f.Add(append([]byte(nil), u.jb...))
	f.Add(make([]byte, s))
	f.Add([]byte{0x46, 0x4d, 0x4a, 0x31, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		hd, err := DecodeHeader(b)
		if err != nil && !errors.Is(err, ErrTorn) && !errors.Is(err, ErrJournalCorrupt) {
			t.Fatalf("unnamed error %v", err)
		}
		if err == nil && hd.State == StateRedo {
			es, err := DecodeEntries(b[HeaderSize:], hd.Count, hd.Used, 0, uint64(len(mem)))
			if err != nil && !errors.Is(err, ErrEntryCorrupt) {
				t.Fatalf("unnamed entry error %v", err)
			}
			if err == nil && len(es) != int(hd.Count) {
				t.Fatalf("%d entries, header says %d", len(es), hd.Count)
			}
		}
		if len(b) >= HeaderSize {
			DecodeEntries(b[HeaderSize:], 0, 0, hd.ID|1, uint64(len(mem)))
		}
		// Recovery of a pool whose first journal holds b.
		img := make([]byte, len(mem))
		copy(img, mem)
		copy(img[h.JournalOff:h.JournalOff+s], b)
		q, err := pmem.OpenMem(img, pmem.NewSim(img), "fz")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := Open(q, Options{}); err != nil && !errors.Is(err, pmem.ErrCorrupt) {
			t.Fatalf("recovery error %v is not marked corrupt", err)
		}
	})
}
