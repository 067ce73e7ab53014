package workload

import "errors"

// Errors of configuration: returned by New, ParseMix and Config.Validate.
var (
	// ErrUnknownWorkload: Config.Name is not one of Names.
	ErrUnknownWorkload = errors.New("workload: unknown workload")
	// ErrUnknownPattern: Config.Pattern is not a pattern of the named workload.
	ErrUnknownPattern = errors.New("workload: unknown pattern")
	// ErrBadMix: Config.Mix does not parse or is out of range.
	ErrBadMix = errors.New("workload: bad read/write mix")
	// ErrBadConfig: a size, page size, theta, stride or other parameter is
	// out of range or does not fit the region.
	ErrBadConfig = errors.New("workload: bad configuration")
)

// Errors of running: returned by Setup, Step and Run.
var (
	// ErrNotSetUp: Step or Run was called before Setup succeeded.
	ErrNotSetUp = errors.New("workload: not set up")
	// ErrEnd: the workload has no more operations (a trace reached its end
	// and Loop is off). Run treats it as a normal end of the run.
	ErrEnd = errors.New("workload: end of workload")
	// ErrShortIO: a Memory returned fewer bytes than asked without an error,
	// which breaks the io.ReaderAt / io.WriterAt contract.
	ErrShortIO = errors.New("workload: short read or write without error")
	// ErrNoLimit: Run was given no duration, no operation limit and a
	// context that can never be cancelled, so it would never return.
	ErrNoLimit = errors.New("workload: run has no duration, op limit or cancellable context")
	// ErrTooManyErrors: Run stopped because the Memory returned more errors
	// than RunOptions.MaxErrors allows. It wraps the last Memory error.
	ErrTooManyErrors = errors.New("workload: too many memory errors")
	// ErrNotPartitionable: RunOptions.Workers > 1 was asked of a workload
	// that cannot be split into disjoint partitions.
	ErrNotPartitionable = errors.New("workload: workload cannot be split over workers")
)

// Errors of trace files: returned by the decoders, Convert and the trace
// workload. Each wraps the place (line or record number) in its message.
var (
	// ErrTraceSyntax: a text line or binary record is malformed (bad op
	// letter, bad number, extra field, zero length, bad varint, data after
	// the end marker).
	ErrTraceSyntax = errors.New("workload: trace syntax error")
	// ErrTraceTruncated: a binary trace ends inside its header, a record or
	// the trailer, or lacks the end marker.
	ErrTraceTruncated = errors.New("workload: trace truncated")
	// ErrTraceOutOfRange: an access lies beyond the region (or beyond the
	// format's limits, MaxTraceOffset and MaxTraceLength).
	ErrTraceOutOfRange = errors.New("workload: trace access out of range")
	// ErrTraceFormat: a binary trace has a bad magic, an unsupported
	// version or flags, or a trailer whose count or checksum does not match.
	ErrTraceFormat = errors.New("workload: bad trace format")
	// ErrTraceIO: reading or rewinding the trace failed in the underlying
	// reader (it wraps that error).
	ErrTraceIO = errors.New("workload: trace read failed")
)
