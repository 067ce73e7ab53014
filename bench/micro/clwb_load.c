/*
 * clwb_load: does CLWB evict the line on this CPU? Writes 4096 lines
 * (4 KiB apart, a random pointer chase), optionally writes them back with
 * CLWB or CLFLUSHOPT and SFENCE, then times a dependent load of each.
 * If CLWB kept the line cached, its loads cost what cached loads cost;
 * CLFLUSHOPT evicts, so its loads go to memory.
 *
 *     cc -O2 -mclwb -mclflushopt -o clwb_load clwb_load.c && ./clwb_load
 *
 * On the 2-vCPU AMD EPYC guest (2026-11-26): cached 26-52 ns/load, CLWB
 * 29-30, CLFLUSHOPT 162-168 (the 16 MiB span costs TLB misses in every
 * mode). CLWB does not evict here; see docs/PMEM.md "Fourth pass".
 */
#include <immintrin.h>
#include <stdint.h>
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

int main(void)
{
	const int n = 4096;
	char *buf = aligned_alloc(4096, (size_t)n * 4096);
	memset(buf, 1, (size_t)n * 4096);
	int *perm = malloc(n * sizeof(int));
	for (int i = 0; i < n; i++)
		perm[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int i = 0; i < n; i++)
		*(char **)(buf + (size_t)perm[i] * 4096) = buf + (size_t)perm[(i + 1) % n] * 4096;
	const char *names[] = {"cached", "clwb", "clflushopt"};
	for (int mode = 0; mode < 3; mode++) {
		for (int rep = 0; rep < 3; rep++) {
			for (int i = 0; i < n; i++)
				buf[(size_t)i * 4096 + 8]++;
			if (mode == 1) {
				for (int i = 0; i < n; i++)
					_mm_clwb(buf + (size_t)i * 4096);
				_mm_sfence();
			} else if (mode == 2) {
				for (int i = 0; i < n; i++)
					_mm_clflushopt(buf + (size_t)i * 4096);
				_mm_sfence();
			}
			double t0 = now();
			char *p = buf + (size_t)perm[0] * 4096;
			for (int i = 0; i < n; i++)
				p = *(char **)p;
			double t1 = now();
			printf("%-10s %.1f ns/load (%p)\n", names[mode], (t1 - t0) / n, (void *)p);
		}
	}
	return 0;
}
