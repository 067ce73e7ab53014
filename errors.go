package farmem

import "errors"

// Errors returned by Open; test with errors.Is.
var (
	// ErrConfig: the Config is invalid; the message names the field.
	ErrConfig = errors.New("farmem: invalid config")
	// ErrCapacity: the memory nodes do not have room for the region.
	ErrCapacity = errors.New("farmem: region larger than the memory nodes' free capacity")
)
