package remote

// jump is Lamping and Veach's jump consistent hash ("A Fast, Minimal Memory,
// Consistent Hash Algorithm", 2014): it maps key to a bucket in [0, n) such
// that growing n to n+1 moves only 1/(n+1) of the keys, with no table.
func jump(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// nodeOf returns the node that holds page id. The id is mixed first
// (splitmix64's finalizer) so that runs of pages spread evenly.
func nodeOf(id uint64, n int) int {
	if n == 1 {
		return 0
	}
	id ^= id >> 30
	id *= 0xbf58476d1ce4e5b9
	id ^= id >> 27
	id *= 0x94d049bb133111eb
	id ^= id >> 31
	return jump(id, n)
}
