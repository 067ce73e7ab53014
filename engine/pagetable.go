package engine

// A page table entry packs a page's state into its low 8 bits and, for the
// states that own a frame (loading, resident, evicting), the frame index in
// the bits above:
//
//	 63                            8 7        0
//	+-------------------------------+----------+
//	|        frame index            |  state   |
//	+-------------------------------+----------+
type pte uint64

type pageState uint8

const (
	stZero pageState = iota
	stStored
	stLoading
	stResident
	stEvicting
)

var stateNames = [...]string{"zero", "stored", "loading", "resident", "evicting"}

func (s pageState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state?"
}

func makePTE(s pageState, frame uint32) pte { return pte(uint64(frame)<<8 | uint64(s)) }

func (p pte) state() pageState { return pageState(p & 0xff) }
func (p pte) frame() uint32    { return uint32(p >> 8) }

// frameMeta is the DRAM bookkeeping of one frame.
type frameMeta struct {
	page uint64 // the page held (valid while not free)
	pins int32  // active users; a pinned frame is never evicted
	ref  bool   // CLOCK reference bit
	// dirty: the frame differs from the store's copy (or from zeros).
	dirty bool
	// inStore: the store holds a copy of this page (possibly stale if dirty).
	inStore bool
	used    bool
}
