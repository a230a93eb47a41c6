/* Static memory planning over buffer lifetimes (steps of an execution order). */
#ifndef AMP_PASSES_MEMPLAN_H
#define AMP_PASSES_MEMPLAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct amp_membuf {
    int first, last; /* steps, inclusive */
    size_t size;     /* bytes (already aligned by the caller) */
} amp_membuf;

typedef struct amp_memplan_result {
    size_t arena;        /* bytes the offsets need */
    size_t lower_bound;  /* max over steps of live bytes */
    size_t naive;        /* sum of sizes */
    const char *strategy;
} amp_memplan_result;

/* Pairs of buffers alive at a common step below which the two greedy heuristics run; above it
 * only the O(n log n) execution-order sweep does (their cost grows with the pairs). */
#define AMP_MEMPLAN_PAIR_BUDGET ((uint64_t)1 << 22)

/* Fill offsets[n]; returns 0, or -1 on bad intervals or out of memory. No two buffers whose
 * lifetimes overlap share a byte; zero-byte buffers get offset 0. */
int amp_memplan(const amp_membuf *b, int n, int nsteps, size_t *offsets, amp_memplan_result *r);
/* amp_memplan with another pair budget (0: the execution-order sweep alone). */
int amp_memplan_budget(const amp_membuf *b, int n, int nsteps, uint64_t pair_budget, size_t *offsets,
                       amp_memplan_result *r);
size_t amp_memplan_lower_bound(const amp_membuf *b, int n, int nsteps);

#endif
