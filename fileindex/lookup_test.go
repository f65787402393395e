package fileindex

import (
	"math/rand/v2"
	"testing"
)

// TestLookupTable: every key of the older listing is found through the
// bucket table, and keys it does not hold are not, for tables of every
// size around the bucket boundaries and for keys at the ends of uint64.
func TestLookupTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100, 1000, 65537} {
		d := &differ{}
		keys := map[uint64]bool{}
		for len(d.olds) < n {
			k := rng.Uint64()
			switch len(d.olds) {
			case 0:
				k = 0
			case 1:
				k = ^uint64(0)
			}
			if !keys[k] {
				keys[k] = true
				d.olds = append(d.olds, oldEntry{key: k, ino: k})
			}
		}
		bits := bucketBits(n)
		if n >= 2 && (1<<bits > n/2 || 1<<bits <= n/4) {
			t.Fatalf("%d entries: %d buckets", n, 1<<bits)
		}
		d.index(bits)
		for k := range keys {
			if o := d.findKey(k); o == nil || o.ino != k {
				t.Fatalf("%d entries: key %#x not found", n, k)
			}
		}
		for range 1000 {
			if k := rng.Uint64(); !keys[k] && d.findKey(k) != nil {
				t.Fatalf("%d entries: key %#x found, but it is not there", n, k)
			}
		}
	}
}
