package encoder

import (
	"math/rand/v2"
	"testing"
)

func TestExactDivider(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		g := rng.Uint64() >> uint(rng.IntN(64))
		if g == 0 {
			continue
		}
		dv := newExactDivider(g)
		q := rng.Uint64() >> uint(rng.IntN(64))
		x := q * g
		if x/g == q { // no overflow
			if !dv.divides(x) || dv.div(x) != q {
				t.Fatalf("g=%d x=%d", g, x)
			}
		}
		y := rng.Uint64()
		if dv.divides(y) != (y%g == 0) {
			t.Fatalf("divides(%d) by %d", y, g)
		}
	}
	for _, c := range [][3]uint64{{12, 18, 6}, {0, 5, 5}, {7, 0, 7}, {1 << 40, 1 << 20, 1 << 20}, {300000, 600000, 300000}} {
		if got := gcd(c[0], c[1]); got != c[2] {
			t.Fatalf("gcd(%d,%d)=%d", c[0], c[1], got)
		}
	}
}
