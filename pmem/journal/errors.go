package journal

import (
	"errors"

	"github.com/farmem/farmem/pmem"
)

// Transactions.
var (
	// ErrNoFreeJournal is returned by Begin when no journal became free
	// within Options.BeginTimeout.
	ErrNoFreeJournal = errors.New("journal: no free journal within the timeout")
	// ErrTxTooLarge is returned by Tx.Write when the write does not fit in
	// the rest of the transaction's journal. Journals are not chained: the
	// write is not logged (and, for undo, not performed), and the transaction
	// must be aborted; Commit of such a transaction aborts it and returns
	// ErrTxTooLarge again.
	ErrTxTooLarge = errors.New("journal: transaction larger than its journal")
	// ErrTxDone is returned by operations on a committed or aborted transaction.
	ErrTxDone = errors.New("journal: transaction already committed or aborted")
	// ErrTxInUse is returned by BeginInto for a Tx whose transaction has not
	// been committed or aborted yet.
	ErrTxInUse = errors.New("journal: transaction still in use")
	// ErrBadWrite is returned for a write outside the pool, or into the
	// header page (other than the root slots) or the journal area.
	ErrBadWrite = errors.New("journal: write outside the writable part of the pool")
	// ErrFailed is returned once a fence has failed: the journals can no
	// longer promise durability and refuse new work until reopened.
	ErrFailed = errors.New("journal: persistence failed; reopen the pool to recover")
	// ErrBadMode is returned for an unknown transaction mode.
	ErrBadMode = errors.New("journal: unknown transaction mode")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("journal: journals closed")
)

// Corruption found by recovery and Inspect; all are marked pmem.ErrCorrupt.
var (
	// ErrJournalCorrupt is returned when a journal header is neither zero,
	// nor carries the journal magic and a known state, or its counts do not
	// fit the journal.
	ErrJournalCorrupt = pmem.Corrupt(errors.New("journal: journal header is corrupt"))
	// ErrEntryCorrupt is returned by DecodeEntries for an entry that does not
	// fit the journal or lies outside the pool.
	ErrEntryCorrupt = pmem.Corrupt(errors.New("journal: journal entry is corrupt"))
	// ErrTorn reports a journal whose checksum does not match: an
	// unacknowledged commit interrupted by a crash. Recovery discards it.
	ErrTorn = errors.New("journal: journal checksum mismatch (torn commit)")
)
