/* Static memory planning: offsets in one arena for buffers with known lifetimes.
 * Three heuristics (greedy by size, greedy by breadth, execution-order best fit), each with
 * best-fit gap search; the smallest arena wins; above 1.02 x the lower bound, hill climbing over
 * the better greedy order follows. See docs/architecture.md and PLANNER.md.
 *
 * Cost. The execution-order heuristic is a sweep over steps: the buffers alive at the current
 * step are disjoint in memory, kept in a list by offset, and the gaps between them in a treap
 * keyed by (gap size, offset), so a best-fit placement or a release is O(log n). The two greedy
 * heuristics place buffers out of time order; the placed buffers that overlap a new one in time
 * are found through an index (a segment tree over steps plus the buffers sorted by first step),
 * so each heuristic costs O(P log P + n log n) for P pairs of buffers alive at a common step.
 * When P exceeds the pair budget (many thousands of tensors alive at once), only the sweep runs:
 * planning stays O(n log n) and the arena is that of the execution-order best fit. */
#include <stdbool.h>
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

typedef int (*idx_cmp)(const void *ctx, int a, int b);

static void insertion_sort(int *idx, int n, idx_cmp cmp, const void *ctx) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i - 1;
        while (j >= 0 && cmp(ctx, idx[j], v) > 0) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = v;
    }
}

/* stable merge sort of indices; tmp holds n ints */
static void merge_sort(int *idx, int *tmp, int n, idx_cmp cmp, const void *ctx) {
    if (n < 32) {
        insertion_sort(idx, n, cmp, ctx);
        return;
    }
    int h = n / 2;
    merge_sort(idx, tmp, h, cmp, ctx);
    merge_sort(idx + h, tmp, n - h, cmp, ctx);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp(ctx, idx[i], idx[j]) <= 0 ? idx[i++] : idx[j++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, sizeof(int) * (size_t)n);
}

static int cmp_size(const void *ctx, int i, int j) {
    const amp_membuf *b = ctx;
    if (b[i].size != b[j].size) return b[i].size > b[j].size ? -1 : 1;
    if (b[i].first != b[j].first) return b[i].first < b[j].first ? -1 : 1;
    return i - j;
}

static int cmp_first(const void *ctx, int i, int j) {
    const amp_membuf *b = ctx;
    if (b[i].first != b[j].first) return b[i].first < b[j].first ? -1 : 1;
    if (b[i].size != b[j].size) return b[i].size > b[j].size ? -1 : 1;
    return i - j;
}

static int cmp_live_desc(const void *ctx, int s, int t) {
    const size_t *live = ctx;
    if (live[s] != live[t]) return live[s] > live[t] ? -1 : 1;
    return s - t;
}

/* live bytes per step, from a difference array; live[nsteps] */
static void live_per_step(const amp_membuf *b, int n, int nsteps, size_t *live) {
    memset(live, 0, sizeof(size_t) * ((size_t)nsteps + 1));
    for (int i = 0; i < n; i++) {
        live[b[i].first] += b[i].size;
        live[b[i].last + 1] -= b[i].size;
    }
    for (int s = 1; s < nsteps; s++) live[s] += live[s - 1];
}

size_t amp_memplan_lower_bound(const amp_membuf *b, int n, int nsteps) {
    if (nsteps <= 0) return 0;
    size_t *live = malloc(sizeof(size_t) * ((size_t)nsteps + 1));
    if (!live) return 0;
    live_per_step(b, n, nsteps, live);
    size_t best = 0;
    for (int s = 0; s < nsteps; s++)
        if (live[s] > best) best = live[s];
    free(live);
    return best;
}

/* Pairs of non-empty buffers that share a step: all pairs less those where one ends before the
 * other starts (a pair can be disjoint in only one direction). */
static uint64_t overlapping_pairs(const amp_membuf *b, int n, int nsteps) {
    uint64_t *ends_before = calloc((size_t)nsteps + 1, sizeof(uint64_t));
    if (!ends_before) return UINT64_MAX;
    uint64_t m = 0, disjoint = 0;
    for (int i = 0; i < n; i++)
        if (b[i].size) {
            ends_before[b[i].last + 1]++;
            m++;
        }
    for (int s = 1; s <= nsteps; s++) ends_before[s] += ends_before[s - 1];
    for (int i = 0; i < n; i++)
        if (b[i].size) disjoint += ends_before[b[i].first];
    free(ends_before);
    return m * (m - 1) / 2 - disjoint;
}

/* ---- execution-order best fit as a sweep ---- */

/* Treap of gaps. Node j is the gap that starts at the end of block j (node n: the arena's
 * start); its key is (size, offset), offsets of distinct gaps differ. */
typedef struct gap_tree {
    int *l, *r;
    uint32_t *pri;
    size_t *gsize, *goff;
    int root;
} gap_tree;

static bool gap_less(const gap_tree *t, int a, int b) {
    if (t->gsize[a] != t->gsize[b]) return t->gsize[a] < t->gsize[b];
    return t->goff[a] < t->goff[b];
}

static void gap_split(gap_tree *t, int root, int x, int *lo, int *hi) {
    if (root < 0) {
        *lo = *hi = -1;
    } else if (gap_less(t, root, x)) {
        gap_split(t, t->r[root], x, &t->r[root], hi);
        *lo = root;
    } else {
        gap_split(t, t->l[root], x, lo, &t->l[root]);
        *hi = root;
    }
}

static int gap_merge(gap_tree *t, int a, int b) {
    if (a < 0) return b;
    if (b < 0) return a;
    if (t->pri[a] > t->pri[b]) {
        t->r[a] = gap_merge(t, t->r[a], b);
        return a;
    }
    t->l[b] = gap_merge(t, a, t->l[b]);
    return b;
}

static int gap_insert(gap_tree *t, int root, int x) {
    if (root < 0) return x;
    if (t->pri[x] > t->pri[root]) {
        gap_split(t, root, x, &t->l[x], &t->r[x]);
        return x;
    }
    if (gap_less(t, x, root))
        t->l[root] = gap_insert(t, t->l[root], x);
    else
        t->r[root] = gap_insert(t, t->r[root], x);
    return root;
}

static int gap_erase(gap_tree *t, int root, int x) {
    if (root == x) return gap_merge(t, t->l[x], t->r[x]);
    if (gap_less(t, x, root))
        t->l[root] = gap_erase(t, t->l[root], x);
    else
        t->r[root] = gap_erase(t, t->r[root], x);
    return root;
}

/* the smallest gap of at least size bytes, the lowest offset among equals; -1 if none */
static int gap_best_fit(const gap_tree *t, size_t size) {
    int x = t->root, best = -1;
    while (x >= 0) {
        if (t->gsize[x] >= size) {
            best = x;
            x = t->l[x];
        } else {
            x = t->r[x];
        }
    }
    return best;
}

typedef struct sweep {
    gap_tree t;
    int *prev, *next; /* blocks alive now, by offset; node n heads the list */
    size_t *end;      /* per node: offset + size */
    int tail;
} sweep;

/* gap j (after block j) is recomputed from its successor; only non-empty gaps are in the tree */
static void sweep_set_gap(sweep *w, int j, const size_t *off) {
    int nx = w->next[j];
    if (nx < 0) return;
    size_t gap = off[nx] - w->end[j];
    if (!gap) return;
    w->t.gsize[j] = gap;
    w->t.goff[j] = w->end[j];
    w->t.l[j] = w->t.r[j] = -1;
    w->t.root = gap_insert(&w->t, w->t.root, j);
}

static void sweep_drop_gap(sweep *w, int j) {
    if (w->next[j] >= 0 && w->t.gsize[j]) w->t.root = gap_erase(&w->t, w->t.root, j);
    w->t.gsize[j] = 0;
}

static int sweep_alloc(sweep *w, int n) {
    size_t nn = (size_t)n + 1;
    w->t.l = malloc(sizeof(int) * nn);
    w->t.r = malloc(sizeof(int) * nn);
    w->t.pri = malloc(sizeof(uint32_t) * nn);
    w->t.gsize = calloc(nn, sizeof(size_t));
    w->t.goff = calloc(nn, sizeof(size_t));
    w->prev = malloc(sizeof(int) * nn);
    w->next = malloc(sizeof(int) * nn);
    w->end = calloc(nn, sizeof(size_t));
    if (!w->t.l || !w->t.r || !w->t.pri || !w->t.gsize || !w->t.goff || !w->prev || !w->next || !w->end) return -1;
    for (size_t i = 0; i < nn; i++) { /* a fixed hash: deterministic plans, no global state */
        uint32_t h = (uint32_t)i * 2654435761u;
        h ^= h >> 15;
        h *= 2246822519u;
        w->t.pri[i] = h ^ (h >> 13);
    }
    w->t.root = -1;
    w->prev[n] = w->next[n] = -1;
    w->tail = n;
    return 0;
}

static void sweep_free(sweep *w) {
    free(w->t.l);
    free(w->t.r);
    free(w->t.pri);
    free(w->t.gsize);
    free(w->t.goff);
    free(w->prev);
    free(w->next);
    free(w->end);
}

/* Buffers in execution order (cmp_first), each at the best-fitting gap among those alive at its
 * first step, else on top. */
static size_t place_sweep(const amp_membuf *b, int n, int nsteps, const int *order, size_t *off) {
    sweep w;
    memset(&w, 0, sizeof w);
    int *bylast = malloc(sizeof(int) * (size_t)n), *cnt = calloc((size_t)nsteps + 1, sizeof(int));
    size_t arena = SIZE_MAX;
    if (!bylast || !cnt || sweep_alloc(&w, n)) goto done;
    for (int i = 0; i < n; i++) cnt[b[i].last + 1]++;
    for (int s = 1; s <= nsteps; s++) cnt[s] += cnt[s - 1];
    for (int i = 0; i < n; i++) bylast[cnt[b[i].last]++] = i;
    arena = 0;
    int ex = 0;
    for (int oi = 0; oi < n; oi++) {
        int i = order[oi];
        off[i] = 0;
        if (!b[i].size) continue;
        for (; ex < n && b[bylast[ex]].last < b[i].first; ex++) { /* release what died */
            int j = bylast[ex];
            if (!b[j].size) continue;
            int p = w.prev[j], nx = w.next[j];
            sweep_drop_gap(&w, p);
            sweep_drop_gap(&w, j);
            w.next[p] = nx;
            if (nx >= 0)
                w.prev[nx] = p;
            else
                w.tail = p;
            sweep_set_gap(&w, p, off);
        }
        int g = gap_best_fit(&w.t, b[i].size);
        int p = g >= 0 ? g : w.tail;
        if (g >= 0) sweep_drop_gap(&w, g);
        off[i] = w.end[p];
        w.end[i] = off[i] + b[i].size;
        w.t.gsize[i] = 0;
        w.prev[i] = p;
        w.next[i] = w.next[p];
        if (w.next[p] >= 0)
            w.prev[w.next[p]] = i;
        else
            w.tail = i;
        w.next[p] = i;
        sweep_set_gap(&w, i, off);
        if (w.end[i] > arena) arena = w.end[i];
    }
done:
    sweep_free(&w);
    free(bylast);
    free(cnt);
    return arena;
}

/* ---- greedy heuristics: buffers placed out of time order ---- */

/* Which buffers share a step with a given one: those alive at its first step (segment tree over
 * steps, each buffer in O(log steps) nodes) plus those that start inside its lifetime. */
typedef struct overlap_index {
    int leaves;
    size_t *node_start;           /* CSR per tree node */
    int *node_items;
    int *byfirst, *first_start;   /* buffers by first step; start of each step */
} overlap_index;

static void overlap_free(overlap_index *x) {
    free(x->node_start);
    free(x->node_items);
    free(x->byfirst);
    free(x->first_start);
}

static int overlap_build(overlap_index *x, const amp_membuf *b, int n, int nsteps) {
    memset(x, 0, sizeof *x);
    x->leaves = 1;
    while (x->leaves < nsteps) x->leaves *= 2;
    size_t nodes = 2 * (size_t)x->leaves;
    x->node_start = calloc(nodes + 1, sizeof(size_t));
    x->byfirst = malloc(sizeof(int) * (size_t)n);
    x->first_start = calloc((size_t)nsteps + 2, sizeof(int));
    if (!x->node_start || !x->byfirst || !x->first_start) return -1;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            if (!b[i].size) continue;
            int lo = b[i].first + x->leaves, hi = b[i].last + x->leaves + 1;
            for (; lo < hi; lo >>= 1, hi >>= 1) {
                if (lo & 1) {
                    if (pass) x->node_items[x->node_start[lo]++] = i;
                    else x->node_start[lo + 1]++;
                    lo++;
                }
                if (hi & 1) {
                    hi--;
                    if (pass) x->node_items[x->node_start[hi]++] = i;
                    else x->node_start[hi + 1]++;
                }
            }
        }
        if (pass) break;
        for (size_t k = 1; k <= nodes; k++) x->node_start[k] += x->node_start[k - 1];
        x->node_items = malloc(sizeof(int) * (x->node_start[nodes] + 1));
        if (!x->node_items) return -1;
    }
    /* the fill pass advanced each start to the next node's: shift back */
    for (size_t k = nodes; k > 0; k--) x->node_start[k] = x->node_start[k - 1];
    x->node_start[0] = 0;
    for (int i = 0; i < n; i++) x->first_start[b[i].first + 1]++;
    for (int s = 1; s <= nsteps + 1; s++) x->first_start[s] += x->first_start[s - 1];
    int *fill = malloc(sizeof(int) * ((size_t)nsteps + 1));
    if (!fill) return -1;
    memcpy(fill, x->first_start, sizeof(int) * ((size_t)nsteps + 1));
    for (int i = 0; i < n; i++) x->byfirst[fill[b[i].first]++] = i;
    free(fill);
    return 0;
}

/* Place buffers in the given order, each at the best-fitting gap among already-placed buffers
 * whose lifetimes overlap it (the gap below the lowest one included); else on top. */
static size_t place_in_order(const amp_membuf *b, int n, const int *order, const overlap_index *x, size_t *off,
                             placed *tmp) {
    size_t arena = 0;
    char *done = calloc((size_t)n + 1, 1);
    if (!done) return SIZE_MAX;
    for (int oi = 0; oi < n; oi++) {
        int i = order[oi];
        off[i] = 0;
        done[i] = 1;
        if (!b[i].size) continue;
        int m = 0;
        for (int node = b[i].first + x->leaves; node >= 1; node >>= 1)
            for (size_t k = x->node_start[node]; k < x->node_start[node + 1]; k++) {
                int j = x->node_items[k];
                if (done[j] && j != i) tmp[m++] = (placed){off[j], b[j].size};
            }
        for (int k = x->first_start[b[i].first + 1]; k < x->first_start[b[i].last + 1]; k++) {
            int j = x->byfirst[k];
            if (done[j] && b[j].size) tmp[m++] = (placed){off[j], b[j].size};
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
        if (off[i] + b[i].size > arena) arena = off[i] + b[i].size;
    }
    free(done);
    return arena;
}

/* Greedy by breadth: steps by decreasing live bytes; at each step, the buffers alive there not
 * taken yet, largest first. A buffer is taken at the step of lowest rank in its lifetime (a
 * range minimum), so the order is a stable bucket sort of the by-size order by that rank. */
static int breadth_order(const amp_membuf *b, int n, int nsteps, const int *bysize, int *order) {
    int rc = -1, leaves = 1;
    while (leaves < nsteps) leaves *= 2;
    size_t *live = malloc(sizeof(size_t) * ((size_t)nsteps + 1));
    int *steps = malloc(sizeof(int) * (size_t)nsteps), *tmp = malloc(sizeof(int) * (size_t)nsteps);
    int *minrank = malloc(sizeof(int) * 2 * (size_t)leaves), *key = malloc(sizeof(int) * (size_t)n);
    int *cnt = calloc((size_t)nsteps + 1, sizeof(int));
    if (!live || !steps || !tmp || !minrank || !key || !cnt) goto done;
    live_per_step(b, n, nsteps, live);
    for (int s = 0; s < nsteps; s++) steps[s] = s;
    merge_sort(steps, tmp, nsteps, cmp_live_desc, live);
    for (int k = 0; k < 2 * leaves; k++) minrank[k] = nsteps;
    for (int r = 0; r < nsteps; r++) minrank[leaves + steps[r]] = r;
    for (int k = leaves - 1; k >= 1; k--)
        minrank[k] = minrank[2 * k] < minrank[2 * k + 1] ? minrank[2 * k] : minrank[2 * k + 1];
    for (int i = 0; i < n; i++) {
        int best = nsteps;
        for (int lo = b[i].first + leaves, hi = b[i].last + leaves + 1; lo < hi; lo >>= 1, hi >>= 1) {
            if ((lo & 1) && minrank[lo] < best) best = minrank[lo];
            if (lo & 1) lo++;
            if ((hi & 1) && minrank[hi - 1] < best) best = minrank[hi - 1];
        }
        key[i] = best;
        cnt[best + 1]++;
    }
    for (int r = 1; r <= nsteps; r++) cnt[r] += cnt[r - 1];
    for (int k = 0; k < n; k++) order[cnt[key[bysize[k]]]++] = bysize[k];
    rc = 0;
done:
    free(live);
    free(steps);
    free(tmp);
    free(minrank);
    free(key);
    free(cnt);
    return rc;
}

/* Reservoir sampling: 0 with probability 1/seen (the seen-th candidate replaces the pick). */
static uint64_t rand_pick(uint64_t *rng, int seen) {
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
    return (*rng >> 11) % (uint64_t)seen;
}

static void keep_if_smaller(size_t a, const size_t *off, int n, const char *strategy, size_t *best, size_t *offsets,
                            amp_memplan_result *r) {
    if (a >= *best) return;
    *best = a;
    memcpy(offsets, off, sizeof(size_t) * (size_t)n);
    r->strategy = strategy;
}

/* Hill climbing over placement orders (TVM's USMP does the like): from a greedy order, move a
 * buffer that reaches the arena's top to an earlier place, or swap two neighbours, place, and
 * keep the order when the arena is no larger; stop at 1.02 x the lower bound or after a number
 * of rounds that keeps the whole search within about 2^24 pair visits. Deterministic (a fixed
 * xorshift sequence). Returns -1 when out of memory. */
static int improve_order(const amp_membuf *b, int n, const int *start, const overlap_index *x, size_t *off,
                         placed *tmp, uint64_t pairs, size_t *best, size_t *offsets, amp_memplan_result *r) {
    int *cur = malloc(sizeof(int) * (size_t)n), *cand = malloc(sizeof(int) * (size_t)n);
    size_t *cur_off = malloc(sizeof(size_t) * (size_t)n);
    if (!cur || !cand || !cur_off) {
        free(cur);
        free(cand);
        free(cur_off);
        return -1;
    }
    memcpy(cur, start, sizeof(int) * (size_t)n);
    uint64_t cost = pairs + (uint64_t)n + 1;
    int rounds = cost >= ((uint64_t)1 << 24) / 8 ? 8 : (int)(((uint64_t)1 << 24) / cost);
    if (rounds > 400) rounds = 400;
    size_t cur_arena = place_in_order(b, n, cur, x, cur_off, tmp);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    size_t goal = r->lower_bound + r->lower_bound / 50;
    for (int round = 0; round < rounds && *best > goal && cur_arena != SIZE_MAX && n > 1; round++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        memcpy(cand, cur, sizeof(int) * (size_t)n);
        if (rng & 1) {
            /* a buffer on the top (its end is the arena), moved earlier */
            int at = -1, seen = 0;
            for (int k = 0; k < n; k++) {
                int i = cur[k];
                if (b[i].size && cur_off[i] + b[i].size == cur_arena && rand_pick(&rng, ++seen) == 0) at = k;
            }
            if (at <= 0) continue;
            int to = (int)((rng >> 8) % (uint64_t)at), moved = cand[at];
            memmove(cand + to + 1, cand + to, sizeof(int) * (size_t)(at - to));
            cand[to] = moved;
        } else {
            int k = (int)((rng >> 8) % (uint64_t)(n - 1)), t = cand[k];
            cand[k] = cand[k + 1];
            cand[k + 1] = t;
        }
        size_t a = place_in_order(b, n, cand, x, off, tmp);
        if (a == SIZE_MAX) break;
        if (a <= cur_arena) {
            memcpy(cur, cand, sizeof(int) * (size_t)n);
            memcpy(cur_off, off, sizeof(size_t) * (size_t)n);
            cur_arena = a;
            keep_if_smaller(a, off, n, "greedy+hill-climbing", best, offsets, r);
        }
    }
    free(cur);
    free(cand);
    free(cur_off);
    return cur_arena == SIZE_MAX ? -1 : 0;
}

int amp_memplan_budget(const amp_membuf *b, int n, int nsteps, uint64_t pair_budget, size_t *offsets,
                       amp_memplan_result *r) {
    memset(r, 0, sizeof *r);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        if (b[i].first < 0 || b[i].last < b[i].first || b[i].last >= nsteps) return -1;
        r->naive += b[i].size;
    }
    r->lower_bound = amp_memplan_lower_bound(b, n, nsteps);
    if (n == 0) {
        r->strategy = "empty";
        return 0;
    }
    int rc = -1;
    size_t best = SIZE_MAX, a;
    int *order = malloc(sizeof(int) * (size_t)n), *bysize = malloc(sizeof(int) * (size_t)n);
    int *tmpi = malloc(sizeof(int) * (size_t)n);
    size_t *off = malloc(sizeof(size_t) * (size_t)n);
    placed *tmp = NULL;
    overlap_index x;
    memset(&x, 0, sizeof x);
    if (!order || !bysize || !tmpi || !off) goto done;
    uint64_t pairs = overlapping_pairs(b, n, nsteps);
    if (pairs == UINT64_MAX) goto done;

    if (pairs < pair_budget) {
        tmp = malloc(sizeof(placed) * (size_t)n);
        if (!tmp || overlap_build(&x, b, n, nsteps)) goto done;
        /* 1. greedy by size */
        for (int i = 0; i < n; i++) bysize[i] = i;
        merge_sort(bysize, tmpi, n, cmp_size, b);
        if ((a = place_in_order(b, n, bysize, &x, off, tmp)) == SIZE_MAX) goto done;
        size_t by_size = a;
        keep_if_smaller(a, off, n, "greedy-by-size", &best, offsets, r);
        /* 2. greedy by breadth */
        if (breadth_order(b, n, nsteps, bysize, order)) goto done;
        if ((a = place_in_order(b, n, order, &x, off, tmp)) == SIZE_MAX) goto done;
        size_t breadth = a;
        keep_if_smaller(a, off, n, "greedy-by-breadth", &best, offsets, r);
        /* 4. above 1.02 x the bound: hill climbing over the greedy order that did better */
        if (best > r->lower_bound + r->lower_bound / 50 &&
            improve_order(b, n, breadth < by_size ? order : bysize, &x, off, tmp, pairs, &best, offsets, r))
            goto done;
        if (best > r->lower_bound + r->lower_bound / 50 &&
            improve_order(b, n, breadth < by_size ? bysize : order, &x, off, tmp, pairs, &best, offsets, r))
            goto done;
    }

    /* 3. execution order, best fit */
    for (int i = 0; i < n; i++) order[i] = i;
    merge_sort(order, tmpi, n, cmp_first, b);
    if ((a = place_sweep(b, n, nsteps, order, off)) == SIZE_MAX) goto done;
    keep_if_smaller(a, off, n, "execution-order", &best, offsets, r);
    r->arena = best;
    rc = 0;
done:
    free(order);
    free(bysize);
    free(tmpi);
    free(off);
    free(tmp);
    overlap_free(&x);
    return rc;
}

int amp_memplan(const amp_membuf *b, int n, int nsteps, size_t *offsets, amp_memplan_result *r) {
    return amp_memplan_budget(b, n, nsteps, AMP_MEMPLAN_PAIR_BUDGET, offsets, r);
}
