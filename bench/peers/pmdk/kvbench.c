/*
 * kvbench: the KV-update workload of `farmem pmem bench`, written against
 * Debian's libpmemobj (PMDK) as the comparison peer.
 *
 * Each of N committer threads owns KEYS value slots of (8 + VALUE) bytes,
 * rounded up to 64, in the root object, and in a loop rewrites a random one
 * of its slots (an 8-byte version and the value) in one PMDK transaction:
 *
 *     TX_BEGIN(pop) { pmemobj_tx_add_range_direct(slot, 8 + V); memcpy(...); } TX_END
 *
 * which is PMDK's undo-logged transaction: the snapshot is flushed and
 * fenced before the store, and the commit flushes the range and fences
 * again. Run it with PMEM_IS_PMEM_FORCE=1 on a tmpfs file so that PMDK
 * flushes with CLWB+SFENCE instead of msync, as farmem's force-pmem mode does.
 *
 * Output: one line of key=value pairs, e.g.
 *     pmdk committers=4 value_bytes=256 txs=123 tx_per_sec=456.7 p50_us=1.2 p99_us=3.4
 *
 * Usage: kvbench POOL COMMITTERS VALUE_BYTES DURATION_MS [KEYS [LATENCY_EVERY]]
 *
 * LATENCY_EVERY (default 1) times one transaction in that many, chosen at
 * random, as `farmem pmem bench --latency-every` does.
 */
#include <libpmemobj.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static PMEMobjpool *pop;
static char *table;
static size_t slot_bytes, value_bytes, keys;
static uint64_t latency_every = 1;
static uint64_t deadline_ns;

/*
 * Latencies go into a log-linear histogram in nanoseconds, the same as
 * farmem's harness (pmem/pmembench/hist.go): exact below 128, then 64
 * buckets per power of two, so a quantile is off by less than 1/128.
 * Recording is one index computation and one increment.
 */
#define HIST_SUB_BITS 6
#define HIST_BUCKETS ((64 - HIST_SUB_BITS - 1) * (1 << HIST_SUB_BITS) + (2 << HIST_SUB_BITS))

static int hist_index(uint64_t v)
{
	if (v < (2u << HIST_SUB_BITS))
		return (int)v;
	int e = (64 - __builtin_clzll(v)) - HIST_SUB_BITS - 1; /* v>>e in [64, 128) */
	return (e << HIST_SUB_BITS) + (int)(v >> e);
}

static uint64_t hist_value(int i)
{
	if (i < (2 << HIST_SUB_BITS))
		return (uint64_t)i;
	int e = (i >> HIST_SUB_BITS) - 1;
	uint64_t m = (uint64_t)(i - (e << HIST_SUB_BITS));
	return (m << e) + ((uint64_t)1 << e) / 2;
}

/* hist_quantile returns the value at rank q*(n-1) of the n recorded values. */
static uint64_t hist_quantile(const uint64_t *h, double q)
{
	uint64_t n = 0, seen = 0;
	for (int i = 0; i < HIST_BUCKETS; i++)
		n += h[i];
	if (n == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)(n - 1));
	for (int i = 0; i < HIST_BUCKETS; i++) {
		seen += h[i];
		if (seen > rank)
			return hist_value(i);
	}
	return hist_value(HIST_BUCKETS - 1);
}

struct worker {
	pthread_t th;
	int id;
	uint64_t txs;
	uint64_t hist[HIST_BUCKETS]; /* latencies, nanoseconds */
	int err;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: a cheap per-thread generator */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* update rewrites one slot in one undo-logged PMDK transaction. */
static int update(char *slot, const char *buf, size_t n)
{
	volatile int failed = 0;
	TX_BEGIN(pop) {
		pmemobj_tx_add_range_direct(slot, n);
		memcpy(slot, buf, n);
	} TX_ONABORT {
		failed = 1;
	} TX_END
	return failed;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
	size_t n = 8 + value_bytes;
	char *buf = malloc(n);
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)next_rand(&rng);
	/* Counted in a local and stored once: neighbouring workers share cache
	 * lines, which every increment would pass between the cores (farmem's
	 * harness does the same). */
	uint64_t txs = 0;
	for (uint64_t it = 1;; it++) {
		if (it % 64 == 0 && now_ns() > deadline_ns)
			break;
		size_t key = (size_t)w->id * keys + next_rand(&rng) % keys;
		char *slot = table + key * slot_bytes;
		buf[0] = (char)it;
		buf[1] = (char)(it >> 8);
		buf[2] = (char)(it >> 16);
		/* Sampled at random, not every Nth, so as not to fall in step
		 * with any periodic pattern. */
		int timed = latency_every <= 1 || next_rand(&rng) % latency_every == 0;
		uint64_t t0 = timed ? now_ns() : 0;
		if (update(slot, buf, n) != 0) {
			w->err = 1;
			break;
		}
		if (timed)
			w->hist[hist_index(now_ns() - t0)]++;
		txs++;
	}
	w->txs = txs;
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s POOL COMMITTERS VALUE_BYTES DURATION_MS [KEYS [LATENCY_EVERY]]\n", argv[0]);
		return 2;
	}
	const char *path = argv[1];
	int committers = atoi(argv[2]);
	value_bytes = (size_t)atol(argv[3]);
	long duration_ms = atol(argv[4]);
	keys = argc > 5 ? (size_t)atol(argv[5]) : 1024;
	long every = argc > 6 ? atol(argv[6]) : 1;
	latency_every = every > 0 ? (uint64_t)every : 0;
	if (committers < 1 || committers > 256 || value_bytes < 1 || value_bytes > (1 << 20) || duration_ms < 1 || keys < 1 || latency_every < 1) {
		fprintf(stderr, "kvbench: bad arguments\n");
		return 2;
	}
	slot_bytes = (8 + value_bytes + 63) & ~(size_t)63;
	size_t table_bytes = slot_bytes * keys * (size_t)committers;
	size_t pool_bytes = table_bytes + table_bytes / 4 + (64u << 20);
	unlink(path);
	pop = pmemobj_create(path, "farmem-pmdk-kv", pool_bytes, 0644);
	if (pop == NULL) {
		fprintf(stderr, "kvbench: pmemobj_create %s: %s\n", path, pmemobj_errormsg());
		return 1;
	}
	PMEMoid root = pmemobj_root(pop, table_bytes);
	if (OID_IS_NULL(root)) {
		fprintf(stderr, "kvbench: pmemobj_root: %s\n", pmemobj_errormsg());
		return 1;
	}
	table = pmemobj_direct(root);

	struct worker *ws = calloc((size_t)committers, sizeof *ws);
	uint64_t start = now_ns();
	deadline_ns = start + (uint64_t)duration_ms * 1000000ull;
	for (int i = 0; i < committers; i++) {
		ws[i].id = i;
		pthread_create(&ws[i].th, NULL, run, &ws[i]);
	}
	uint64_t txs = 0;
	uint64_t *all = calloc(HIST_BUCKETS, sizeof(uint64_t));
	for (int i = 0; i < committers; i++) {
		pthread_join(ws[i].th, NULL);
		if (ws[i].err) {
			fprintf(stderr, "kvbench: a transaction aborted\n");
			return 1;
		}
		txs += ws[i].txs;
		for (int b = 0; b < HIST_BUCKETS; b++)
			all[b] += ws[i].hist[b];
	}
	double secs = (double)(now_ns() - start) / 1e9;
	double p50 = hist_quantile(all, 0.50) / 1e3;
	double p99 = hist_quantile(all, 0.99) / 1e3;
	printf("pmdk committers=%d value_bytes=%zu txs=%llu tx_per_sec=%.0f p50_us=%.2f p99_us=%.2f\n",
	       committers, value_bytes, (unsigned long long)txs, (double)txs / secs, p50, p99);
	pmemobj_close(pop);
	unlink(path);
	return 0;
}
