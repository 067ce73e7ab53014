package resilient

import (
	"errors"
	"fmt"

	"github.com/farmem/farmem/store"
)

// Errors of the resilient store; test with errors.Is. Each also wraps the
// store package's error of its class where one fits, so callers that know
// only package store can still tell them apart.
var (
	// ErrConfig: a Config or BackupFile field is missing or out of range.
	ErrConfig = errors.New("resilient: bad config")
	// ErrBackupFull: the backup device had no room for a page, so the write
	// failed and the page stays in DRAM (it wraps store.ErrFull).
	ErrBackupFull = fmt.Errorf("resilient: backup device full: %w", store.ErrFull)
	// ErrBackupMissing: Open found no backup file and was not asked to
	// create one.
	ErrBackupMissing = errors.New("resilient: backup file missing")
	// ErrOutageFile: the outage-set file is not one (bad magic, version,
	// header checksum or size); it wraps store.ErrBadFile.
	ErrOutageFile = fmt.Errorf("resilient: bad outage-set file: %w", store.ErrBadFile)
	// ErrOutageRecord: a record of the outage-set log is malformed (bad
	// checksum, unknown op, page or node out of range). At Open, a bad
	// record ends the log: it and what follows are a torn tail.
	ErrOutageRecord = errors.New("resilient: bad outage-set record")
	// ErrOutageMissing: the backup file exists but its outage-set file does
	// not, so the pages the remote lacks cannot be known.
	ErrOutageMissing = errors.New("resilient: outage-set file missing beside an existing backup")
)

var (
	errClosed   = fmt.Errorf("resilient: %w", store.ErrClosed)
	errNotFound = fmt.Errorf("resilient: %w", store.ErrNotFound)
)
