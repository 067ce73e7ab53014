/*
 * xcore: the round trip of one cache line between CPU 0 and CPU 1 (two
 * threads pinned there pass a counter back and forth), in nanoseconds.
 *
 * On this guest the figure moves between ~70 and ~360 ns from one run to
 * the next, as the host places the two vCPUs near or far from each other.
 * farmem's commit path passes a few lines between the cores per group (the
 * global commit id, above all), PMDK's independent lanes none, so run.sh
 * prints it before and after the comparison to tell such runs apart.
 *
 * Usage: xcore [ROUNDS]   (default 1000000)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t line[8] __attribute__((aligned(64)));
static uint64_t rounds = 1000000;

static int pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *pong(void *arg)
{
	(void)arg;
	if (pin(1) != 0)
		return (void *)1;
	for (uint64_t i = 1; i < 2 * rounds; i += 2) {
		while (line[0] != i)
			;
		line[0] = i + 1;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (rounds = strtoull(argv[1], NULL, 10)) == 0) {
		fprintf(stderr, "usage: %s [ROUNDS]\n", argv[0]);
		return 2;
	}
	if (pin(0) != 0) {
		fprintf(stderr, "xcore: cannot pin to CPU 0\n");
		return 1;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, pong, NULL) != 0) {
		fprintf(stderr, "xcore: pthread_create failed\n");
		return 1;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint64_t i = 0; i < 2 * rounds; i += 2) {
		line[0] = i + 1;
		while (line[0] != i + 2)
			;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	void *rc;
	pthread_join(t, &rc);
	if (rc != NULL) {
		fprintf(stderr, "xcore: cannot pin to CPU 1\n");
		return 1;
	}
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("%.0f\n", ns / (double)rounds);
	return 0;
}
