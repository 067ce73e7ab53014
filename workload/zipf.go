package workload

import (
	"fmt"
	"math"
)

// DefaultTheta is the skew YCSB uses for its zipfian request distribution.
const DefaultTheta = 0.99

// zetaExact is how many terms of the zeta sum are added one by one; the rest
// of a longer sum is taken from the Euler–Maclaurin formula.
const zetaExact = 1 << 16

// Zipf draws ranks in [0, n) with P(rank i) ≈ 1/(i+1)^θ / ζ(n, θ), for
// 0 < θ < 1, with the method of Gray, Sundaresan, Englert, Baclawski and
// Weinberger, "Quickly Generating Billion-Record Synthetic Databases"
// (SIGMOD 1994) — the generator in YCSB's ZipfianGenerator. Rank 0 is the
// most popular. The constants, including ζ(n, θ), are computed once by
// NewZipf; a draw costs one math.Pow.
//
// The standard library's rand.Zipf requires s > 1 and cannot produce the
// θ = 0.99 that YCSB (and every far-memory paper quoting YCSB) uses.
type Zipf struct {
	n            uint64
	theta, alpha float64
	zetan, eta   float64
	half         float64 // 1 + 0.5^θ: the cumulative weight of ranks 0 and 1
}

// NewZipf precomputes a generator of ranks in [0, n) with skew theta. It
// returns ErrBadConfig unless n ≥ 1 and 0 < theta < 1.
func NewZipf(n uint64, theta float64) (*Zipf, error) {
	if n == 0 {
		return nil, fmt.Errorf("%w: zipf over zero items", ErrBadConfig)
	}
	if !(theta > 0 && theta < 1) {
		return nil, fmt.Errorf("%w: zipf theta %v outside (0, 1)", ErrBadConfig, theta)
	}
	z := &Zipf{n: n, theta: theta, alpha: 1 / (1 - theta), zetan: Zeta(n, theta)}
	zeta2 := Zeta(2, theta)
	z.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/z.zetan)
	z.half = 1 + math.Pow(0.5, theta)
	return z, nil
}

// N returns the number of items.
func (z *Zipf) N() uint64 { return z.n }

// Theta returns the skew.
func (z *Zipf) Theta() float64 { return z.theta }

// Rank maps a uniform u in [0, 1) to a rank in [0, N).
func (z *Zipf) Rank(u float64) uint64 {
	uz := u * z.zetan
	if uz < 1 || z.n == 1 {
		return 0
	}
	if uz < z.half {
		return 1
	}
	r := uint64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if r >= z.n {
		r = z.n - 1
	}
	return r
}

// Zeta returns ζ(n, θ) = Σ_{i=1..n} 1/i^θ. The first 65536 terms are summed
// exactly; beyond that the tail is the Euler–Maclaurin approximation
// ∫ x^-θ dx + (f(n) - f(m))/2 + (f'(n) - f'(m))/12, whose error at m = 65536
// is far below float64 precision of the sum. This keeps NewZipf fast for the
// billions of items of a large region (YCSB sums all n terms).
func Zeta(n uint64, theta float64) float64 {
	m := n
	if m > zetaExact {
		m = zetaExact
	}
	var s float64
	for i := m; i >= 1; i-- { // smallest terms first, for accuracy
		s += math.Pow(float64(i), -theta)
	}
	if n <= m {
		return s
	}
	a, b := float64(m), float64(n)
	f := func(x float64) float64 { return math.Pow(x, -theta) }
	fp := func(x float64) float64 { return -theta * math.Pow(x, -theta-1) }
	integral := (math.Pow(b, 1-theta) - math.Pow(a, 1-theta)) / (1 - theta)
	return s + integral + (f(b)-f(a))/2 + (fp(b)-fp(a))/12
}
