package farmem

import "context"

// Discard frees every page of the region on the memnodes (or the store) and
// drops the local copies; the region then reads as zeros. Close keeps the
// pages, so that a later Open of the same namespace finds them; a region
// that is not coming back should be discarded first, or its pages hold the
// memnodes' capacity until they restart. Discard waits for reads and writes
// in progress and fails with engine.ErrPinned while views are pinned.
func (r *Region) Discard(ctx context.Context) error { return r.eng.Discard(ctx) }
