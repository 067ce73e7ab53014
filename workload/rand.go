package workload

import (
	"fmt"
	"math/bits"
)

// mix64 is the splitmix64 finalizer: a fast bijective 64-bit hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hash2 hashes two words with a seed.
func hash2(seed, a, b uint64) uint64 {
	return mix64(seed ^ mix64(a+0x9e3779b97f4a7c15) ^ mix64(b^0x632be59bd9b4e019))
}

// splitmix is a tiny deterministic generator: one word of state, no
// allocation. It is what every workload draws its operations from, so a seed
// fixes the operation sequence.
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// float returns a uniform float64 in [0, 1).
func (r *splitmix) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// below returns a uniform integer in [0, n), n > 0 (Lemire's method).
func (r *splitmix) below(n uint64) uint64 {
	hi, lo := bits.Mul64(r.next(), n)
	if lo < n {
		t := -n % n
		for lo < t {
			hi, lo = bits.Mul64(r.next(), n)
		}
	}
	return hi
}

// Perm is a keyed pseudo-random permutation of [0, N): a four-round Feistel
// network over the smallest power of two ≥ N, with cycle walking to stay
// inside [0, N) (Black and Rogaway, "Ciphers with Arbitrary Finite Domains",
// 2002). The two halves may differ by one bit (an unbalanced Feistel network
// whose rounds xor a keyed hash of one half into the other), so the walk
// takes fewer than two steps on average. It needs no table, so it scatters
// billions of pages with a few words of state, and it can be inverted, which
// is how a prefetcher or a test tells what lives at a region page.
type Perm struct {
	n            uint64
	rbits        uint // bits of the right half; the left half has the rest
	lmask, rmask uint64
	keys         [4]uint64
}

// NewPerm returns the permutation of [0, n) selected by seed. n must be ≥ 1;
// n == 0 returns ErrBadConfig.
func NewPerm(n, seed uint64) (Perm, error) {
	if n == 0 {
		return Perm{}, fmt.Errorf("%w: permutation of an empty domain", ErrBadConfig)
	}
	return newPerm(n, seed), nil
}

// newPerm is NewPerm for callers that have checked n ≥ 1.
func newPerm(n, seed uint64) Perm {
	if n == 0 {
		panic("workload: invariant broken: permutation of an empty domain")
	}
	b := max(uint(bits.Len64(n-1)), 2)
	r := b / 2
	p := Perm{n: n, rbits: r, rmask: 1<<r - 1, lmask: 1<<(b-r) - 1}
	for i := range p.keys {
		p.keys[i] = hash2(seed, 0xfe15_7e1, uint64(i))
	}
	return p
}

// N returns the size of the domain.
func (p *Perm) N() uint64 { return p.n }

func (p *Perm) enc(x uint64) uint64 {
	l, r := x>>p.rbits, x&p.rmask
	l ^= mix64(r^p.keys[0]) & p.lmask
	r ^= mix64(l^p.keys[1]) & p.rmask
	l ^= mix64(r^p.keys[2]) & p.lmask
	r ^= mix64(l^p.keys[3]) & p.rmask
	return l<<p.rbits | r
}

func (p *Perm) dec(x uint64) uint64 {
	l, r := x>>p.rbits, x&p.rmask
	r ^= mix64(l^p.keys[3]) & p.rmask
	l ^= mix64(r^p.keys[2]) & p.lmask
	r ^= mix64(l^p.keys[1]) & p.rmask
	l ^= mix64(r^p.keys[0]) & p.lmask
	return l<<p.rbits | r
}

// At returns the image of x, which must be < N.
func (p *Perm) At(x uint64) uint64 {
	if p.n == 1 {
		return 0
	}
	y := p.enc(x)
	for y >= p.n {
		y = p.enc(y)
	}
	return y
}

// Inverse returns the x with At(x) == y, for y < N.
func (p *Perm) Inverse(y uint64) uint64 {
	if p.n == 1 {
		return 0
	}
	x := p.dec(y)
	for x >= p.n {
		x = p.dec(x)
	}
	return x
}
