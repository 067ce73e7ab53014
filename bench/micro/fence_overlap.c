/*
 * fence_overlap: what work can run during a round's write-back wait.
 * Each round writes 10 lines of a 4 MiB buffer (cache-resident, as the
 * journals are), makes them durable one way or another, and ends with a
 * locked add (the journals' next step always has one). "work" is K
 * copies of 256 bytes between two small cached buffers (stores);
 * "loads" is K sums of 32 cached words (no stores). Best of 8 runs of
 * 200 000 rounds each, in ns per round.
 *
 *     cc -O2 -mclwb -o fence_overlap fence_overlap.c && ./fence_overlap 8
 *
 * On the 2-vCPU AMD EPYC guest (2026-11-26, ./fence_overlap 8, three runs):
 * nothing durable 48 (work) and 104 (loads); work, CLWB, SFENCE 216-219;
 * CLWB, SFENCE, work 227-231 (the copies wait for the write-back);
 * CLWB, SFENCE, loads 190-193 (the loads run during it); CLWB early,
 * work, SFENCE 190-192 (the work hides in the write-back); CLWB early,
 * work, CLWB again, SFENCE 309-312 (a second CLWB of a line being written
 * back costs a second wait); CLWB, work, no SFENCE 189-191 (the locked
 * add waits as SFENCE does); non-temporal stores 129-143 (they bypass the
 * cache by definition; not tried in the journals). So after SFENCE this
 * CPU runs loads, not 2 KiB of copies (at K=2 the copies cost too little
 * to tell), and a write-back started early overlaps
 * only work without a locked instruction in it: the journals' commit path
 * has one every few dozen instructions. See docs/PMEM.md "Fifth pass".
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static char hot[4096] __attribute__((aligned(64)));
static char dst[8192] __attribute__((aligned(64)));
static volatile long ctr;

static void work(int k)
{
	for (int i = 0; i < k; i++) {
		memcpy(dst + (i & 7) * 256, hot + (i & 7) * 256, 256);
		__asm__ volatile("" ::: "memory");
	}
}

static void loads(int k)
{
	volatile long s = 0;
	for (int i = 0; i < k; i++) {
		long x = 0;
		for (int j = 0; j < 32; j++)
			x += ((long *)hot)[(i * 32 + j) & 511];
		s += x;
	}
}

static void ntcopy(char *d, const char *s, int n)
{
	for (int i = 0; i < n; i += 16)
		_mm_stream_si128((__m128i *)(d + i), _mm_load_si128((const __m128i *)(s + i)));
}

enum { NOTHING, NOTHING_LOADS, LATE, AFTER_STORES, AFTER_LOADS, EARLY, EARLY_AGAIN, LOCK_ONLY, NT, MODES };
static const char *names[] = {
	"nothing durable (work, locked add)",
	"nothing durable (loads, locked add)",
	"work, CLWB, SFENCE",
	"CLWB, SFENCE, work",
	"CLWB, SFENCE, loads",
	"CLWB early, work, SFENCE",
	"CLWB early, work, CLWB again, SFENCE",
	"CLWB, work, no SFENCE (locked add waits)",
	"non-temporal stores, work, SFENCE",
};

int main(int argc, char **argv)
{
	int k = argc > 1 ? atoi(argv[1]) : 16;
	const int n = 10, iters = 200000;
	const size_t span = 4 << 20;
	char *buf = aligned_alloc(4096, span);
	memset(buf, 1, span);
	for (size_t i = 0; i < sizeof hot; i++) /* not a constant the compiler may fold */
		hot[i] = (char)rand();
	double best[MODES];
	for (int m = 0; m < MODES; m++)
		best[m] = 1e18;
	for (int rep = 0; rep < 8; rep++) {
		for (int m = 0; m < MODES; m++) {
			size_t pos = 0;
			double t0 = now();
			for (int it = 0; it < iters; it++) {
				char *p = buf + pos % span;
				pos += 4096;
				if (m == NT)
					ntcopy(p, hot, n * 64);
				else
					memcpy(p, hot, n * 64);
				__asm__ volatile("" ::: "memory");
				if (m == EARLY || m == EARLY_AGAIN || m == LOCK_ONLY)
					for (int i = 0; i < n; i++)
						_mm_clwb(p + i * 64);
				if (m == NOTHING || m == LATE || m == EARLY || m == EARLY_AGAIN || m == LOCK_ONLY || m == NT)
					work(k);
				if (m == LATE || m == AFTER_STORES || m == AFTER_LOADS || m == EARLY_AGAIN)
					for (int i = 0; i < n; i++)
						_mm_clwb(p + i * 64);
				if (m != NOTHING && m != NOTHING_LOADS && m != LOCK_ONLY)
					_mm_sfence();
				if (m == AFTER_STORES)
					work(k);
				if (m == AFTER_LOADS || m == NOTHING_LOADS)
					loads(k);
				__sync_fetch_and_add(&ctr, 1);
			}
			double t = (now() - t0) / iters;
			if (t < best[m])
				best[m] = t;
		}
	}
	for (int m = 0; m < MODES; m++)
		printf("K=%-3d %-42s %6.1f ns/round\n", k, names[m], best[m]);
	return 0;
}
