/* Static memory planning: offsets in one arena for buffers with known lifetimes.
 * Three heuristics (greedy by size, greedy by breadth, execution-order best fit), each with
 * best-fit gap search; the smallest arena wins. See docs/architecture.md and PLANNER.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "passes/memplan.h"

typedef struct placed {
    size_t off, size;
} placed;

static int cmp_placed(const void *a, const void *b) {
    const placed *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Place buffers in the given order, each at the best-fitting gap among already-placed buffers
 * whose lifetimes overlap it (the gap below the lowest one included); else on top. */
static size_t place_in_order(const amp_membuf *b, int n, const int *order, size_t *off, placed *tmp) {
    size_t arena = 0;
    char *done = calloc((size_t)n + 1, 1);
    if (!done) return SIZE_MAX;
    for (int oi = 0; oi < n; oi++) {
        int i = order[oi];
        int m = 0;
        for (int j = 0; j < n; j++) {
            if (!done[j]) continue;
            if (b[j].first > b[i].last || b[i].first > b[j].last) continue;
            tmp[m].off = off[j];
            tmp[m].size = b[j].size;
            m++;
        }
        qsort(tmp, (size_t)m, sizeof *tmp, cmp_placed);
        size_t best = SIZE_MAX, best_gap = SIZE_MAX, cur = 0;
        for (int k = 0; k < m; k++) {
            if (tmp[k].off > cur) {
                size_t gap = tmp[k].off - cur;
                if (gap >= b[i].size && gap < best_gap) {
                    best_gap = gap;
                    best = cur;
                }
            }
            size_t end = tmp[k].off + tmp[k].size;
            if (end > cur) cur = end;
        }
        off[i] = best != SIZE_MAX ? best : cur;
        done[i] = 1;
        if (off[i] + b[i].size > arena) arena = off[i] + b[i].size;
    }
    free(done);
    return arena;
}

/* insertion sort (stable, no global state): n is the number of buffers of one plan */
static void sort_idx(int *idx, int n, const amp_membuf *b, int (*cmp)(const amp_membuf *, int, const amp_membuf *, int)) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i - 1;
        while (j >= 0 && cmp(b, idx[j], b, v) > 0) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = v;
    }
}

static int cmp_size(const amp_membuf *b, int i, const amp_membuf *c, int j) {
    (void)c;
    if (b[i].size != b[j].size) return b[i].size > b[j].size ? -1 : 1;
    if (b[i].first != b[j].first) return b[i].first < b[j].first ? -1 : 1;
    return i - j;
}

static int cmp_first(const amp_membuf *b, int i, const amp_membuf *c, int j) {
    (void)c;
    if (b[i].first != b[j].first) return b[i].first < b[j].first ? -1 : 1;
    if (b[i].size != b[j].size) return b[i].size > b[j].size ? -1 : 1;
    return i - j;
}

static void merge_sort(int *idx, int *tmp, int n, const amp_membuf *b,
                       int (*cmp)(const amp_membuf *, int, const amp_membuf *, int)) {
    if (n < 32) {
        sort_idx(idx, n, b, cmp);
        return;
    }
    int h = n / 2;
    merge_sort(idx, tmp, h, b, cmp);
    merge_sort(idx + h, tmp, n - h, b, cmp);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp(b, idx[i], b, idx[j]) <= 0 ? idx[i++] : idx[j++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, sizeof(int) * (size_t)n);
}

size_t amp_memplan_lower_bound(const amp_membuf *b, int n, int nsteps) {
    if (nsteps <= 0) return 0;
    size_t *live = calloc((size_t)nsteps + 1, sizeof(size_t));
    if (!live) return 0;
    /* difference array over steps */
    for (int i = 0; i < n; i++) {
        live[b[i].first] += b[i].size;
        if (b[i].last + 1 <= nsteps) live[b[i].last + 1] -= b[i].size;
    }
    size_t cur = 0, best = 0;
    for (int s = 0; s < nsteps; s++) {
        cur += live[s];
        if (cur > best) best = cur;
    }
    free(live);
    return best;
}

int amp_memplan(const amp_membuf *b, int n, int nsteps, size_t *offsets, amp_memplan_result *r) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < n; i++) {
        if (b[i].first < 0 || b[i].last < b[i].first || b[i].last >= nsteps) return -1;
        r->naive += b[i].size;
    }
    r->lower_bound = amp_memplan_lower_bound(b, n, nsteps);
    if (n == 0) {
        r->strategy = "empty";
        return 0;
    }
    int *order = malloc(sizeof(int) * (size_t)n);
    int *tmpi = malloc(sizeof(int) * (size_t)n);
    size_t *off = malloc(sizeof(size_t) * (size_t)n);
    placed *tmp = malloc(sizeof(placed) * (size_t)n);
    size_t *step_live = calloc((size_t)nsteps, sizeof(size_t));
    int *step_order = malloc(sizeof(int) * (size_t)nsteps);
    int rc = -1;
    if (!order || !tmpi || !off || !tmp || !step_live || !step_order) goto done;
    size_t best = SIZE_MAX;

    /* 1. greedy by size */
    for (int i = 0; i < n; i++) order[i] = i;
    merge_sort(order, tmpi, n, b, cmp_size);
    size_t a = place_in_order(b, n, order, off, tmp);
    if (a == SIZE_MAX) goto done;
    best = a;
    memcpy(offsets, off, sizeof(size_t) * (size_t)n);
    r->strategy = "greedy-by-size";

    /* 2. greedy by breadth: steps by decreasing live bytes; within a step, its buffers by size */
    for (int i = 0; i < n; i++)
        for (int s = b[i].first; s <= b[i].last; s++) step_live[s] += b[i].size;
    for (int s = 0; s < nsteps; s++) step_order[s] = s;
    for (int i = 1; i < nsteps; i++) { /* insertion sort by live desc, stable */
        int v = step_order[i], j = i - 1;
        while (j >= 0 && step_live[step_order[j]] < step_live[v]) {
            step_order[j + 1] = step_order[j];
            j--;
        }
        step_order[j + 1] = v;
    }
    {
        char *seen = calloc((size_t)n, 1);
        if (!seen) goto done;
        int m = 0;
        /* buffers sorted by size once; per step pick the unseen ones alive there */
        for (int i = 0; i < n; i++) tmpi[i] = i;
        int *bysize = malloc(sizeof(int) * (size_t)n), *scratch = malloc(sizeof(int) * (size_t)n);
        if (!bysize || !scratch) {
            free(seen);
            free(bysize);
            free(scratch);
            goto done;
        }
        for (int i = 0; i < n; i++) bysize[i] = i;
        merge_sort(bysize, scratch, n, b, cmp_size);
        for (int si = 0; si < nsteps && m < n; si++) {
            int s = step_order[si];
            for (int k = 0; k < n; k++) {
                int i = bysize[k];
                if (!seen[i] && b[i].first <= s && s <= b[i].last) {
                    seen[i] = 1;
                    order[m++] = i;
                }
            }
        }
        free(seen);
        free(bysize);
        free(scratch);
        a = place_in_order(b, n, order, off, tmp);
        if (a == SIZE_MAX) goto done;
        if (a < best) {
            best = a;
            memcpy(offsets, off, sizeof(size_t) * (size_t)n);
            r->strategy = "greedy-by-breadth";
        }
    }

    /* 3. execution order, best fit */
    for (int i = 0; i < n; i++) order[i] = i;
    merge_sort(order, tmpi, n, b, cmp_first);
    a = place_in_order(b, n, order, off, tmp);
    if (a == SIZE_MAX) goto done;
    if (a < best) {
        best = a;
        memcpy(offsets, off, sizeof(size_t) * (size_t)n);
        r->strategy = "execution-order";
    }
    r->arena = best;
    rc = 0;
done:
    free(order);
    free(tmpi);
    free(off);
    free(tmp);
    free(step_live);
    free(step_order);
    return rc;
}
