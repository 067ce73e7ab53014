package pager

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/farmem/farmem/internal/size"
)

// Errors of ParsePolicy. Each error of ParsePolicy wraps exactly one of
// them, and names the line.
var (
	// ErrPolicySyntax: a line is not "key value" or "key = value".
	ErrPolicySyntax = errors.New("pager: policy: syntax error")
	// ErrPolicyKey: an unknown key, or a key given twice.
	ErrPolicyKey = errors.New("pager: policy: unknown or repeated key")
	// ErrPolicyValue: a value that does not parse or is out of range.
	ErrPolicyValue = errors.New("pager: policy: bad value")
	// ErrPolicyTooLarge: the file is larger than MaxPolicySize.
	ErrPolicyTooLarge = errors.New("pager: policy: file too large")
)

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 64 << 10

// Policy is the tunable part of a Config, read from a policy file
// (farmem pager --policy FILE). A field is set when its Has bit is.
//
// The file is UTF-8 text, one setting per line, "key value" or
// "key = value"; '#' starts a comment; blank lines are ignored; each key at
// most once:
//
//	# farmem pager policy
//	prefetch      = 7      # pages read ahead after a faulting page (0..63)
//	workers       = 4      # fault workers shared by all regions (1..1024)
//	reclaim_batch = 32     # pages per eviction write-back (1..1024)
//	local         = 1GiB   # DRAM budget (a size; overrides --local)
//	max_region    = 64GiB  # largest region accepted (a size)
type Policy struct {
	Prefetch, Workers, ReclaimBatch int
	Local, MaxRegion                int64
	Has                             PolicyKeys
}

// PolicyKeys is the set of keys a Policy sets.
type PolicyKeys uint8

// Policy keys.
const (
	KeyPrefetch PolicyKeys = 1 << iota
	KeyWorkers
	KeyReclaimBatch
	KeyLocal
	KeyMaxRegion
)

var policyKeys = map[string]PolicyKeys{
	"prefetch": KeyPrefetch, "workers": KeyWorkers, "reclaim_batch": KeyReclaimBatch,
	"local": KeyLocal, "max_region": KeyMaxRegion,
}

// ParsePolicy reads a policy file.
func ParsePolicy(r io.Reader) (Policy, error) {
	var p Policy
	data, err := io.ReadAll(io.LimitReader(r, MaxPolicySize+1))
	if err != nil {
		return p, err
	}
	if len(data) > MaxPolicySize {
		return p, fmt.Errorf("%w: more than %d bytes", ErrPolicyTooLarge, MaxPolicySize)
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 0, 4096), MaxPolicySize+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			f := strings.Fields(line)
			if len(f) != 2 {
				return p, fmt.Errorf("%w: line %d: want \"key value\" or \"key = value\"", ErrPolicySyntax, n)
			}
			key, val = f[0], f[1]
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if key == "" || val == "" || strings.ContainsAny(key, " \t") || strings.ContainsAny(val, " \t=") {
			return p, fmt.Errorf("%w: line %d: want \"key value\" or \"key = value\"", ErrPolicySyntax, n)
		}
		k, known := policyKeys[key]
		if !known {
			return p, fmt.Errorf("%w: line %d: unknown key %q", ErrPolicyKey, n, key)
		}
		if p.Has&k != 0 {
			return p, fmt.Errorf("%w: line %d: %q given twice", ErrPolicyKey, n, key)
		}
		p.Has |= k
		if err := p.set(k, val); err != nil {
			return p, fmt.Errorf("%w: line %d: %s %q: %v", ErrPolicyValue, n, key, val, err)
		}
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("%w: %v", ErrPolicySyntax, err)
	}
	return p, nil
}

func (p *Policy) set(k PolicyKeys, val string) error {
	intIn := func(lo, hi int) (int, error) {
		v, err := strconv.Atoi(val)
		if err != nil {
			return 0, errors.New("not an integer")
		}
		if v < lo || v > hi {
			return 0, fmt.Errorf("not in %d..%d", lo, hi)
		}
		return v, nil
	}
	bytes := func() (int64, error) {
		v, err := size.Parse(val)
		if err != nil {
			return 0, err
		}
		if v == 0 || v > 1<<50 {
			return 0, errors.New("not in 1 B..1 PiB")
		}
		return int64(v), nil
	}
	var err error
	switch k {
	case KeyPrefetch:
		p.Prefetch, err = intIn(0, MaxPrefetch)
	case KeyWorkers:
		p.Workers, err = intIn(1, 1024)
	case KeyReclaimBatch:
		p.ReclaimBatch, err = intIn(1, 1024)
	case KeyLocal:
		p.Local, err = bytes()
	case KeyMaxRegion:
		p.MaxRegion, err = bytes()
	}
	return err
}

// Apply sets the fields of c that the policy sets.
func (p Policy) Apply(c *Config) {
	if p.Has&KeyPrefetch != 0 {
		c.Prefetch = p.Prefetch
	}
	if p.Has&KeyWorkers != 0 {
		c.Workers = p.Workers
	}
	if p.Has&KeyReclaimBatch != 0 {
		c.ReclaimBatch = p.ReclaimBatch
	}
	if p.Has&KeyLocal != 0 {
		c.Local = p.Local
	}
	if p.Has&KeyMaxRegion != 0 {
		c.MaxRegion = p.MaxRegion
	}
}

// String encodes the policy in the file format; ParsePolicy reads it back
// to an equal Policy.
func (p Policy) String() string {
	var b strings.Builder
	if p.Has&KeyPrefetch != 0 {
		fmt.Fprintf(&b, "prefetch = %d\n", p.Prefetch)
	}
	if p.Has&KeyWorkers != 0 {
		fmt.Fprintf(&b, "workers = %d\n", p.Workers)
	}
	if p.Has&KeyReclaimBatch != 0 {
		fmt.Fprintf(&b, "reclaim_batch = %d\n", p.ReclaimBatch)
	}
	if p.Has&KeyLocal != 0 {
		fmt.Fprintf(&b, "local = %d\n", p.Local)
	}
	if p.Has&KeyMaxRegion != 0 {
		fmt.Fprintf(&b, "max_region = %d\n", p.MaxRegion)
	}
	return b.String()
}
