package engine

import (
	"fmt"
	"time"

	"github.com/farmem/farmem/store"
)

// DefaultPageSize is the page size when Config.PageSize is zero.
const DefaultPageSize = 4096

// MaxBatch is the most pages one store Call of the fault path carries.
const MaxBatch = 64

// MinFrames is the smallest DRAM budget, in frames, that the engine accepts.
const MinFrames = 16

// Config describes a region and its DRAM budget.
type Config struct {
	// Size is the region's size in bytes, a multiple of PageSize.
	Size int64
	// PageSize is a power of two of at least 4096; 0 means DefaultPageSize.
	PageSize int
	// Budget is the DRAM given to frames, in bytes; it is rounded down to
	// whole pages and must hold at least MinFrames pages. A budget larger than
	// the region is cut to the region.
	Budget int64
	// Store holds the pages that are not resident. It must have the same page
	// size.
	Store store.Store
	// ReclaimBatch is how many pages one eviction round writes back; 0 means
	// 32.
	ReclaimBatch int
	// LowWater and HighWater bound the free frames that the background
	// reclaimer keeps (it starts below LowWater and stops at HighWater). 0
	// means defaults derived from the budget: HighWater is 1/32 of the frames
	// (at least 2 × ReclaimBatch when the budget allows), LowWater half of it.
	LowWater, HighWater int
	// FaultObserver, when set, is called after each fetch from the store with
	// the number of pages fetched and the time from the miss to the
	// installation of the pages. It runs on the fault path: keep it cheap and
	// allocation-free.
	FaultObserver func(pages int, d time.Duration)
}

func (c *Config) normalize() error {
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.PageSize < 4096 || c.PageSize&(c.PageSize-1) != 0 {
		return fmt.Errorf("%w: page size %d is not a power of two >= 4096", ErrConfig, c.PageSize)
	}
	if c.Size <= 0 || c.Size%int64(c.PageSize) != 0 {
		return fmt.Errorf("%w: region size %d is not a positive multiple of the page size %d", ErrConfig, c.Size, c.PageSize)
	}
	if c.Store == nil {
		return fmt.Errorf("%w: no store", ErrConfig)
	}
	if c.Store.PageSize() != c.PageSize {
		return fmt.Errorf("%w: store page size %d differs from region page size %d", ErrConfig, c.Store.PageSize(), c.PageSize)
	}
	if c.Budget > c.Size {
		c.Budget = c.Size
	}
	frames := c.Budget / int64(c.PageSize)
	if frames < MinFrames {
		return fmt.Errorf("%w: DRAM budget %d bytes holds %d pages; at least %d are needed", ErrConfig, c.Budget, frames, MinFrames)
	}
	if frames > 1<<31 {
		return fmt.Errorf("%w: DRAM budget of %d pages is too large", ErrConfig, frames)
	}
	if c.ReclaimBatch <= 0 {
		c.ReclaimBatch = 32
	}
	if c.ReclaimBatch > MaxBatch {
		c.ReclaimBatch = MaxBatch
	}
	if c.ReclaimBatch > int(frames)/2 {
		c.ReclaimBatch = int(frames) / 2
	}
	if c.HighWater <= 0 {
		c.HighWater = int(frames / 32)
		if c.HighWater < 2*c.ReclaimBatch && 2*c.ReclaimBatch <= int(frames)/4 {
			c.HighWater = 2 * c.ReclaimBatch
		}
		if c.HighWater < 1 {
			c.HighWater = 1
		}
	}
	if c.LowWater <= 0 {
		c.LowWater = c.HighWater / 2
	}
	if c.LowWater > c.HighWater || int64(c.HighWater) > frames {
		return fmt.Errorf("%w: watermarks low=%d high=%d do not fit %d frames", ErrConfig, c.LowWater, c.HighWater, frames)
	}
	return nil
}
