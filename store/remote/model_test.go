package remote

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/farmem/farmem/memnode"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/storetest"
)

var seedFlag = flag.Uint64("seed", 0, "seed of TestRandomizedAgainstModel (0: from the clock)")

// TestRandomizedAgainstModel runs random batches of writes, reads and frees
// (several calls in flight on disjoint pages, three nodes, small frames so
// that batches split) and compares every outcome with a map. It prints its
// seed; rerun a failure with -seed N.
func TestRandomizedAgainstModel(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	small := memnode.Config{MaxBody: 8 * (ps + 16)}
	nodes := []*testNode{startNode(t, small), startNode(t, memnode.Config{}), startNode(t, small)}
	s := open(t, Config{Nodes: []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}, ConnsPerNode: 2})
	ctx := context.Background()
	model := map[store.PageID]uint64{} // page -> version
	version := uint64(0)
	const space = 200
	for step := 0; step < 300; step++ {
		// Up to three calls in flight, on disjoint pages so that their
		// order does not matter.
		inflight := 1 + rng.IntN(3)
		used := map[store.PageID]bool{}
		type pending struct {
			c    *store.Call
			vers []uint64
		}
		done := make(chan *store.Call, inflight)
		var calls []pending
		for k := 0; k < inflight; k++ {
			n := 1 + rng.IntN(40)
			var ids []store.PageID
			for len(ids) < n {
				id := store.PageID(rng.IntN(space))
				if !used[id] {
					used[id] = true
					ids = append(ids, id)
				}
			}
			p := pending{c: &store.Call{Done: done}}
			switch rng.IntN(3) {
			case 0:
				version++
				p.c.Op, p.c.Pages = store.OpWrite, pages(ids, version)
				for range ids {
					p.vers = append(p.vers, version)
				}
			case 1:
				p.c.Op, p.c.Pages = store.OpRead, blank(ids)
			default:
				p.c.Op, p.c.Pages = store.OpFree, blank(ids)
			}
			calls = append(calls, p)
			s.Submit(ctx, p.c)
		}
		for range calls {
			<-done
		}
		for _, p := range calls {
			if p.c.Err != nil {
				t.Fatalf("step %d: %v call failed: %v", step, p.c.Op, p.c.Err)
			}
			for i, pg := range p.c.Pages {
				v, ok := model[pg.ID]
				switch p.c.Op {
				case store.OpWrite:
					if pg.Err != nil {
						t.Fatalf("step %d: write of page %d: %v", step, pg.ID, pg.Err)
					}
					model[pg.ID] = p.vers[i]
				case store.OpFree:
					delete(model, pg.ID)
				case store.OpRead:
					if !ok {
						if !errors.Is(pg.Err, store.ErrNotFound) {
							t.Fatalf("step %d: read of absent page %d: %v", step, pg.ID, pg.Err)
						}
						continue
					}
					if pg.Err != nil {
						t.Fatalf("step %d: read of page %d: %v", step, pg.ID, pg.Err)
					}
					want := make([]byte, len(pg.Data))
					storetest.Fill(want, uint64(pg.ID), v)
					if !bytes.Equal(pg.Data, want) || pg.Sum != store.Checksum(want) {
						t.Fatalf("step %d: page %d does not hold version %d", step, pg.ID, v)
					}
				}
			}
		}
	}
	var held uint64
	for _, n := range nodes {
		held += n.srv.Stats().Used
	}
	if held != uint64(len(model)) {
		t.Fatalf("nodes hold %d pages, model %d", held, len(model))
	}
}
