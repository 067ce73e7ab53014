// Package size parses and prints byte sizes such as 4096, 64KiB, 512MiB, 2GiB
// or 1G, as the command-line flags of farmem take them.
//
// # Units
//
// Suffixes are case-insensitive. K, M, G, T, P and E with or without "iB" or
// "B" are binary multiples (1G = 1GiB = 1 GB = 2^30 bytes), the convention of
// memory sizes (dd, free, Linux's memparse). A bare number is bytes; "B" is
// accepted as a byte suffix. Spaces between number and unit are allowed.
// Fractions and signs are not: a size is a whole number of units.
package size

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// ErrSyntax is returned (wrapped with the input) for a size that does not
// parse; ErrRange for one that does not fit in 64 bits.
var (
	ErrSyntax = errors.New("size: invalid size")
	ErrRange  = errors.New("size: size out of range")
)

var units = map[string]uint{
	"": 0, "b": 0,
	"k": 10, "kb": 10, "kib": 10,
	"m": 20, "mb": 20, "mib": 20,
	"g": 30, "gb": 30, "gib": 30,
	"t": 40, "tb": 40, "tib": 40,
	"p": 50, "pb": 50, "pib": 50,
	"e": 60, "eb": 60, "eib": 60,
}

// Parse returns the number of bytes s names.
func Parse(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%w %q: want a number with an optional unit such as 64KiB, 512MiB, 2G", ErrSyntax, s)
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrRange, s)
	}
	shift, ok := units[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("%w %q: unknown unit %q (use B, KiB, MiB, GiB, TiB)", ErrSyntax, s, strings.TrimSpace(t[i:]))
	}
	if shift > 0 && bits.LeadingZeros64(n) < int(shift) {
		return 0, fmt.Errorf("%w: %q", ErrRange, s)
	}
	return n << shift, nil
}

// Format prints n with the largest binary unit that divides it exactly
// (4096 -> "4KiB", 1536 -> "1536B"), so that Parse(Format(n)) == n.
func Format(n uint64) string {
	names := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := 0
	for n != 0 && n%1024 == 0 && u < len(names)-1 {
		n /= 1024
		u++
	}
	return strconv.FormatUint(n, 10) + names[u]
}
