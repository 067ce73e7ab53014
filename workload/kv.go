package workload

import (
	"context"
	"encoding/binary"
	"fmt"
)

// KeySize is the size of a kv key: an 8-byte key id (plus one, so an empty
// slot is all zeros) and an 8-byte keyed hash of the id.
const KeySize = 16

// YCSB core workload read proportions of the kv patterns.
var kvReadRatio = map[string]float64{"a": 0.5, "b": 0.95, "c": 1}

const (
	kvSalt         = 0x6b76_5f76_616c_7565 // "kv_value"
	kvUnknown      = 255                   // version of a key whose write failed
	kvBitmapSlots  = 1 << 16               // slots tracked at the start for wrap-around keys
	kvLoadChunkMax = 256 << 10
	// kvWindow is how many key positions a home may be ahead of its
	// position's share of the table: wide enough that homes collide as with
	// a random hash, narrow enough that the load stays one sequential pass
	// with a few hundred KiB of chunks in flight.
	kvWindow = 4096
)

// kv is a hash table of fixed-size slots in the region, open addressing
// with linear probing, loaded in Setup and then read and updated with the
// YCSB A, B or C mix and zipf-chosen keys.
//
// Slot layout (KeySize + ValueSize bytes, slot s at byte s·slotSize):
//
//	0         8          16                         16+ValueSize
//	+---------+----------+---------------------------+
//	| id + 1  | keyhash  | value                     |
//	+---------+----------+---------------------------+
//	  uint64 LE, 0 = empty slot; value = pattern(key, version) at its
//	  absolute offset, so a slot copied elsewhere does not verify.
//
// A key's home slot comes from a keyed permutation of the keys, j = π(k),
// and home(j) = ⌊(j + W·u_j) · slots / (records + W)⌋ with u_j uniform in
// [0, 1) and W = kvWindow: homes are random within a window that slides with
// j, so they collide as under a random hash (measured: 2.49 probes per
// lookup at 75% load, the 2.5 that linear probing theory gives), yet a key
// can only land at or after position j's share of the table. So Setup loads
// the table in one sequential pass — insert in j order, each key in the
// first free slot from its home, and write out each chunk of slots once no
// later key can reach it — while lookups probe as in any linear-probing
// table. Keys pushed past the last slot wrap to the first free slots at the
// start, where a wrapping probe finds them.
type kv struct {
	ioCounter
	cfg      Config
	slotSize int
	slots    uint64
	records  uint64
	keys     Perm
	zipf     *Zipf
	read     float64
	rng      splitmix
	ver      []uint8 // shadow: version of each key, 1..254
	maxProbe uint64
	scale    float64 // slots / (records + kvWindow)
	buf      []byte
	ready    bool
}

func newKV(c Config) (*kv, error) {
	if c.ValueSize == 0 {
		c.ValueSize = DefaultValueSize
	}
	if c.ValueSize < 1 || c.ValueSize > 1<<20 {
		return nil, fmt.Errorf("%w: kv value size %d (want 1 B to 1 MiB)", ErrBadConfig, c.ValueSize)
	}
	w := &kv{cfg: c, slotSize: KeySize + c.ValueSize, rng: splitmix{c.Seed}}
	w.slots = uint64(c.Size) / uint64(w.slotSize)
	if w.slots < 2 {
		return nil, fmt.Errorf("%w: region of %d bytes holds fewer than two %d-byte kv slots", ErrBadConfig, c.Size, w.slotSize)
	}
	if c.Records == 0 {
		c.Records = int64(float64(w.slots) * DefaultLoad)
		w.cfg.Records = c.Records
	}
	if c.Records < 1 || float64(c.Records) > 0.95*float64(w.slots) {
		return nil, fmt.Errorf("%w: %d kv records for %d slots (want 1 to 95%% of the slots)", ErrBadConfig, c.Records, w.slots)
	}
	w.records = uint64(c.Records)
	w.scale = float64(w.slots) / float64(w.records+kvWindow)
	w.read = c.mix(kvReadRatio[c.Pattern]).Read
	w.keys = newPerm(w.records, c.Seed^0x4b45_5953)
	z, err := NewZipf(w.records, c.Theta)
	if err != nil {
		return nil, err
	}
	w.zipf = z
	w.buf = make([]byte, w.slotSize)
	return w, nil
}

func (w *kv) Name() string   { return KV }
func (w *kv) Config() Config { return w.cfg }
func (w *kv) Close() error   { return nil }

// ShadowBytes returns the memory of the shadow model: one byte per key.
func (w *kv) ShadowBytes() int64 { return int64(len(w.ver)) }

// Slots returns the number of slots; SlotSize the size of one.
func (w *kv) Slots() uint64 { return w.slots }

func (w *kv) keyHash(k uint64) uint64 { return hash2(w.cfg.Seed, 0x6b65_7968, k) | 1 }

// home returns the home slot of the key at permuted position j: uniform
// over a window of kvWindow positions' worth of slots that slides with j,
// ⌊(j + kvWindow·u_j) · slots / (records + kvWindow)⌋.
func (w *kv) home(j uint64) uint64 {
	u := float64(hash2(w.cfg.Seed, 0x686f_6d65, j)>>11) / (1 << 53)
	return min(uint64((float64(j)+kvWindow*u)*w.scale), w.slots-1)
}

// low returns the lowest home any key at position ≥ j can have.
func (w *kv) low(j uint64) uint64 { return min(uint64(float64(j)*w.scale), w.slots-1) }

// fillSlot writes key k at version v into b, the bytes of slot s.
func (w *kv) fillSlot(b []byte, s, k uint64, v uint8) {
	binary.LittleEndian.PutUint64(b[0:], k+1)
	binary.LittleEndian.PutUint64(b[8:], w.keyHash(k))
	off := int64(s)*int64(w.slotSize) + KeySize
	newPattern(w.cfg.Seed^kvSalt, k, uint32(v)).fill(b[KeySize:], off)
}

func (w *kv) Setup(ctx context.Context, mem Memory) error {
	ss := uint64(w.slotSize)
	per := max(uint64(1), kvLoadChunkMax/ss)
	w.ver = make([]uint8, w.records)
	var bitmap [kvBitmapSlots / 64]uint64
	var overflow []uint64
	// The chunks of slots not yet written: a deque covering slots
	// [cs, cs + len(pending)·per), each chunk written once no later key can
	// probe into it.
	var pending, spare [][]byte
	var dirty []bool
	cs := uint64(0)
	flush := func() error {
		if dirty[0] || !w.cfg.NoPopulate {
			n := min(per, w.slots-cs)
			if err := w.writeAt(mem, pending[0][:n*ss], int64(cs*ss)); err != nil {
				return fmt.Errorf("workload: loading kv slots from %d: %w", cs, err)
			}
		}
		clear(pending[0])
		spare = append(spare, pending[0])
		pending, dirty = pending[1:], dirty[1:]
		cs += per
		return nil
	}
	// slot returns the bytes of slot s, which must be ≥ cs.
	slot := func(s uint64) ([]byte, int) {
		for s >= cs+uint64(len(pending))*per {
			if n := len(spare); n > 0 {
				pending, spare = append(pending, spare[n-1]), spare[:n-1]
			} else {
				pending = append(pending, make([]byte, per*ss))
			}
			dirty = append(dirty, false)
		}
		i := (s - cs) / per
		o := (s - cs) % per * ss
		return pending[i][o : o+ss], int(i)
	}
	var maxDisp uint64
	for j := uint64(0); j < w.records; j++ {
		if j%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		for low := w.low(j); len(pending) > 0 && cs+per <= low; {
			if err := flush(); err != nil {
				return err
			}
		}
		h := w.home(j)
		k := w.keys.Inverse(j)
		s := h
		for ; s < w.slots; s++ {
			b, ci := slot(s)
			if binary.LittleEndian.Uint64(b) == 0 {
				w.fillSlot(b, s, k, 1)
				dirty[ci] = true
				break
			}
		}
		if s == w.slots {
			overflow = append(overflow, j)
			continue
		}
		w.ver[k] = 1
		if s < kvBitmapSlots {
			bitmap[s/64] |= 1 << (s % 64)
		}
		maxDisp = max(maxDisp, s-h)
	}
	for cs < w.slots {
		if len(pending) == 0 {
			slot(cs)
		}
		if err := flush(); err != nil {
			return err
		}
	}
	// Keys pushed past the end wrap around to the first free slots, which is
	// where a linear probe that wraps finds them.
	free := uint64(0)
	for _, j := range overflow {
		for free < min(w.slots, kvBitmapSlots) && bitmap[free/64]&(1<<(free%64)) != 0 {
			free++
		}
		if free >= min(w.slots, kvBitmapSlots) {
			return fmt.Errorf("%w: kv table too full to place %d wrapped keys", ErrBadConfig, len(overflow))
		}
		k := w.keys.Inverse(j)
		w.fillSlot(w.buf, free, k, 1)
		if err := w.writeAt(mem, w.buf, int64(free*ss)); err != nil {
			return fmt.Errorf("workload: loading kv slot %d: %w", free, err)
		}
		w.ver[k] = 1
		bitmap[free/64] |= 1 << (free % 64)
		maxDisp = max(maxDisp, free+w.slots-w.home(j))
		free++
	}
	w.maxProbe = maxDisp + 1
	w.ready = true
	w.ResetStats()
	return nil
}

// Step reads or updates one zipf-chosen key (rank r is key r; keys are
// scattered over the table by the key permutation, as a hash would).
func (w *kv) Step(mem Memory) error {
	if !w.ready {
		return ErrNotSetUp
	}
	k := w.zipf.Rank(w.rng.float())
	isRead := w.rng.float() < w.read
	ss := int64(w.slotSize)
	s := w.home(w.keys.At(k))
	found := false
	for probe := uint64(0); probe < w.maxProbe; probe++ {
		off := int64(s) * ss
		if err := w.readAt(mem, w.buf, off); err != nil {
			return err
		}
		id := binary.LittleEndian.Uint64(w.buf[0:])
		switch {
		case id == 0:
			// An empty slot ends the probe: the key is missing.
			bad, first := zeroPattern.check(w.buf, off)
			m := Mismatch{What: "kv key missing", Offset: off, Length: len(w.buf), BadOffset: off, BadBytes: bad, Zero: bad == 0}
			if first >= 0 {
				m.BadOffset, m.Got = off+int64(first), w.buf[first]
			}
			w.st.mismatch(m)
			w.st.Ops++
			return nil
		case id-1 < w.records && binary.LittleEndian.Uint64(w.buf[8:]) == w.keyHash(id-1):
			kid := id - 1
			if v := w.ver[kid]; v != kvUnknown {
				w.st.verify("kv slot", newPattern(w.cfg.Seed^kvSalt, kid, uint32(v)), w.buf[KeySize:], off+KeySize, off, len(w.buf))
			}
			found = kid == k
		default:
			// The key field itself is damaged; the slot cannot be trusted.
			w.st.mismatch(Mismatch{What: "kv slot", Offset: off, Length: len(w.buf), BadOffset: off,
				Got: w.buf[0], BadBytes: KeySize})
		}
		if found {
			break
		}
		s++
		if s == w.slots {
			s = 0
		}
	}
	if !found {
		w.st.mismatch(Mismatch{What: "kv probe limit", Offset: int64(s) * ss, Length: len(w.buf), BadOffset: int64(s) * ss})
		w.st.Ops++
		return nil
	}
	if isRead {
		w.st.Reads++
	} else {
		v := w.ver[k]%254 + 1
		if w.ver[k] == kvUnknown {
			v = 1
		}
		w.fillSlot(w.buf, s, k, v)
		if err := w.writeAt(mem, w.buf, int64(s)*ss); err != nil {
			w.ver[k] = kvUnknown
			return err
		}
		w.ver[k] = v
		w.st.Writes++
	}
	w.st.Ops++
	return nil
}
