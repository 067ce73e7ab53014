//go:build !linux

package pmem

import "os"

func mapFile(*os.File, int, bool) ([]byte, bool, error) { return nil, false, ErrNotSupported }

func unmap([]byte) error { return ErrNotSupported }

type msyncDomain struct{}

func newMsyncDomain([]byte) *msyncDomain { return &msyncDomain{} }

func (d *msyncDomain) Flush(int, int) {}
func (d *msyncDomain) Fence() error   { return ErrNotSupported }
func (d *msyncDomain) Name() string   { return "msync" }
