/* Memory planner tests (PLANNER.md tests 1-4 and 7) and the plan cache of sessions. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/memplan.h"
#include "runtime/runtime.h"
#include "testutil.h"

static void check_no_overlap(const amp_membuf *b, int n, const size_t *off) {
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            bool live = !(b[i].first > b[j].last || b[j].first > b[i].last);
            bool mem = off[i] < off[j] + b[j].size && off[j] < off[i] + b[i].size;
            cr_assert(!(live && mem && b[i].size && b[j].size), "buffers %d and %d overlap in time and memory", i, j);
        }
}

Test(planner, paper_example_reaches_lower_bound) {
    amp_membuf b[] = {{0, 1, 32}, {1, 4, 28}, {2, 5, 36}, {3, 5, 16}, {4, 5, 8}, {5, 7, 64}, {6, 8, 10}, {7, 8, 40}};
    size_t off[8];
    amp_memplan_result r;
    cr_assert_eq(amp_memplan(b, 8, 9, off, &r), 0);
    cr_expect_eq(r.lower_bound, 124);
    cr_expect_eq(r.naive, 234);
    cr_expect_eq(r.arena, 124, "arena %zu (%s)", r.arena, r.strategy);
    check_no_overlap(b, 8, off);
}

Test(planner, chain_of_three) {
    amp_membuf b[] = {{0, 1, 100}, {1, 2, 80}, {2, 3, 60}};
    size_t off[3];
    amp_memplan_result r;
    cr_assert_eq(amp_memplan(b, 3, 4, off, &r), 0);
    cr_expect_eq(r.arena, 180);
    cr_expect_eq(r.lower_bound, 180);
    check_no_overlap(b, 3, off);
}

Test(planner, rejects_bad_intervals) {
    amp_membuf b[] = {{2, 1, 100}};
    size_t off[1];
    amp_memplan_result r;
    cr_expect_eq(amp_memplan(b, 1, 4, off, &r), -1);
    amp_membuf c[] = {{0, 9, 100}};
    cr_expect_eq(amp_memplan(c, 1, 4, off, &r), -1);
}

Test(planner, exact_sizes_per_dtype) {
    int64_t dims[] = {3, 5, 7};
    size_t nb;
    int64_t n;
    cr_assert_eq(amp_shape_numel(3, dims, AMP_F16, &n, &nb), AMP_OK);
    cr_expect_eq(nb, 210);
    amp_shape_numel(3, dims, AMP_BF16, &n, &nb);
    cr_expect_eq(nb, 210);
    amp_shape_numel(3, dims, AMP_I64, &n, &nb);
    cr_expect_eq(nb, 840);
    amp_shape_numel(3, dims, AMP_BOOL, &n, &nb);
    cr_expect_eq(nb, 105);
    amp_shape_numel(3, dims, AMP_F64, &n, &nb);
    cr_expect_eq(nb, 840);
    int64_t big[] = {INT64_MAX / 2, 3};
    cr_expect_eq(amp_shape_numel(2, big, AMP_F32, &n, &nb), AMP_ERR_OVERFLOW);
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(planner, random_instances_never_share_live_bytes) {
    uint64_t seed = 0x1234567;
    double worst = 0, sum = 0;
    int trials = 300;
    for (int t = 0; t < trials; t++) {
        int n = 1 + (int)(rnd(&seed) % 60), steps = 1 + (int)(rnd(&seed) % 40);
        amp_membuf *b = calloc((size_t)n, sizeof *b);
        size_t *off = calloc((size_t)n, sizeof *off);
        for (int i = 0; i < n; i++) {
            int a = (int)(rnd(&seed) % (uint64_t)steps), c = (int)(rnd(&seed) % (uint64_t)steps);
            b[i].first = a < c ? a : c;
            b[i].last = a < c ? c : a;
            b[i].size = 256 * (1 + rnd(&seed) % 64);
        }
        amp_memplan_result r;
        cr_assert_eq(amp_memplan(b, n, steps, off, &r), 0);
        check_no_overlap(b, n, off);
        cr_assert_geq(r.arena, r.lower_bound);
        cr_assert_leq(r.arena, r.naive);
        for (int i = 0; i < n; i++) cr_assert_leq(off[i] + b[i].size, r.arena);
        double ratio = (double)r.arena / (double)r.lower_bound;
        sum += ratio;
        if (ratio > worst) worst = ratio;
        free(b);
        free(off);
    }
    cr_log_info("random instances: mean arena/LB %.3f, worst %.3f", sum / trials, worst);
    cr_expect_leq(sum / trials, 1.10, "mean arena/LB %.3f", sum / trials);
}

/* The quadratic planner the sweep and the overlap index replaced, kept as a reference: every
 * placement scans all buffers for the placed ones that overlap it in time. */
static int ref_cmp_off(const void *a, const void *b) {
    const size_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static size_t ref_place(const amp_membuf *b, int n, const int *order, size_t *off) {
    size_t arena = 0, (*ext)[2] = calloc((size_t)n + 1, sizeof *ext);
    char *placed = calloc((size_t)n + 1, 1);
    for (int oi = 0; oi < n; oi++) {
        int i = order[oi], m = 0;
        for (int j = 0; j < n; j++)
            if (placed[j] && b[j].first <= b[i].last && b[i].first <= b[j].last) {
                ext[m][0] = off[j];
                ext[m++][1] = b[j].size;
            }
        qsort(ext, (size_t)m, sizeof *ext, ref_cmp_off);
        size_t top = 0, fit = SIZE_MAX, fit_gap = SIZE_MAX;
        for (int k = 0; k < m; k++) {
            if (ext[k][0] > top && ext[k][0] - top >= b[i].size && ext[k][0] - top < fit_gap) {
                fit_gap = ext[k][0] - top;
                fit = top;
            }
            if (ext[k][0] + ext[k][1] > top) top = ext[k][0] + ext[k][1];
        }
        off[i] = fit == SIZE_MAX ? top : fit;
        placed[i] = 1;
        if (off[i] + b[i].size > arena) arena = off[i] + b[i].size;
    }
    free(ext);
    free(placed);
    return arena;
}

static const amp_membuf *ref_bufs;
static int ref_by_size(const void *pa, const void *pb) {
    int i = *(const int *)pa, j = *(const int *)pb;
    const amp_membuf *b = ref_bufs;
    if (b[i].size != b[j].size) return b[i].size > b[j].size ? -1 : 1;
    if (b[i].first != b[j].first) return b[i].first < b[j].first ? -1 : 1;
    return i - j;
}
static int ref_by_first(const void *pa, const void *pb) {
    int i = *(const int *)pa, j = *(const int *)pb;
    const amp_membuf *b = ref_bufs;
    if (b[i].first != b[j].first) return b[i].first < b[j].first ? -1 : 1;
    if (b[i].size != b[j].size) return b[i].size > b[j].size ? -1 : 1;
    return i - j;
}

/* arena of the old planner: all three heuristics (or execution order alone), smallest wins */
static size_t ref_plan(const amp_membuf *b, int n, int nsteps, bool all, size_t *best_off, const char **strategy) {
    int *order = malloc(sizeof(int) * (size_t)n), *bysize = malloc(sizeof(int) * (size_t)n);
    size_t *off = malloc(sizeof(size_t) * (size_t)n), best = SIZE_MAX, a;
    ref_bufs = b;
    for (int i = 0; i < n; i++) bysize[i] = i;
    qsort(bysize, (size_t)n, sizeof(int), ref_by_size);
    if (all) {
        best = ref_place(b, n, bysize, best_off);
        *strategy = "greedy-by-size";
        size_t *live = calloc((size_t)nsteps, sizeof(size_t));
        int *steps = malloc(sizeof(int) * (size_t)nsteps), m = 0;
        char *seen = calloc((size_t)n, 1);
        for (int i = 0; i < n; i++)
            for (int s = b[i].first; s <= b[i].last; s++) live[s] += b[i].size;
        for (int s = 0; s < nsteps; s++) steps[s] = s;
        for (int i = 1; i < nsteps; i++)
            for (int j = i; j > 0 && live[steps[j - 1]] < live[steps[j]]; j--) {
                int t = steps[j];
                steps[j] = steps[j - 1];
                steps[j - 1] = t;
            }
        for (int si = 0; si < nsteps; si++)
            for (int k = 0; k < n; k++) {
                int i = bysize[k];
                if (!seen[i] && b[i].first <= steps[si] && steps[si] <= b[i].last) {
                    seen[i] = 1;
                    order[m++] = i;
                }
            }
        if ((a = ref_place(b, n, order, off)) < best) {
            best = a;
            memcpy(best_off, off, sizeof(size_t) * (size_t)n);
            *strategy = "greedy-by-breadth";
        }
        free(live);
        free(steps);
        free(seen);
    }
    for (int i = 0; i < n; i++) order[i] = i;
    qsort(order, (size_t)n, sizeof(int), ref_by_first);
    if ((a = ref_place(b, n, order, off)) < best) {
        best = a;
        memcpy(best_off, off, sizeof(size_t) * (size_t)n);
        *strategy = "execution-order";
    }
    free(order);
    free(bysize);
    free(off);
    return best;
}

/* random lifetimes: short-lived chains, long-lived buffers and bursts of buffers alive at once */
static void random_lifetimes(uint64_t *seed, amp_membuf *b, int n, int steps) {
    for (int i = 0; i < n; i++) {
        int kind = (int)(rnd(seed) % 4), a = (int)(rnd(seed) % (uint64_t)steps), len;
        if (kind == 0) len = (int)(rnd(seed) % 3);
        else if (kind == 1) len = (int)(rnd(seed) % (uint64_t)steps);
        else len = (int)(rnd(seed) % 12);
        b[i].first = a;
        b[i].last = a + len < steps ? a + len : steps - 1;
        b[i].size = 256 * (1 + rnd(seed) % (kind == 3 ? 4 : 64));
    }
}

/* The three heuristics give the old quadratic planner's offsets exactly; where the hill climbing
 * that follows them above 1.02 x the bound finds a smaller arena, it must be smaller, and valid. */
Test(planner, same_plans_as_the_quadratic_planner) {
    uint64_t seed = 0xfeedbeef;
    int improved = 0;
    for (int t = 0; t < 400; t++) {
        int n = 1 + (int)(rnd(&seed) % (t < 380 ? 80 : 1500)), steps = 1 + (int)(rnd(&seed) % (t < 380 ? 50 : 600));
        amp_membuf *b = calloc((size_t)n, sizeof *b);
        size_t *off = calloc((size_t)n, sizeof *off), *ref = calloc((size_t)n, sizeof *ref);
        random_lifetimes(&seed, b, n, steps);
        for (int all = 0; all < 2; all++) {
            amp_memplan_result r;
            const char *ref_strategy = NULL;
            size_t want = ref_plan(b, n, steps, all, ref, &ref_strategy);
            cr_assert_eq(amp_memplan_budget(b, n, steps, all ? AMP_MEMPLAN_PAIR_BUDGET : 0, off, &r), 0);
            if (all && strcmp(r.strategy, "greedy+hill-climbing") == 0) {
                /* the search after the three heuristics keeps only a smaller arena */
                cr_assert_lt(r.arena, want, "instance %d: hill climbing %zu, the old planner %zu", t, r.arena, want);
                cr_assert_geq(r.arena, r.lower_bound, "instance %d: below the lower bound", t);
                check_no_overlap(b, n, off);
                improved++;
                continue;
            }
            cr_assert_eq(r.arena, want, "instance %d (%d buffers, %d steps, %s): arena %zu, the old planner %zu", t, n,
                         steps, all ? "all heuristics" : "execution order", r.arena, want);
            cr_assert_str_eq(r.strategy, ref_strategy, "instance %d (%s): %s, the old planner %s", t, all ? "all" : "sweep", r.strategy, ref_strategy);
            cr_assert_arr_eq(off, ref, sizeof(size_t) * (size_t)n, "instance %d: offsets differ", t);
            check_no_overlap(b, n, off);
        }
        free(b);
        free(off);
        free(ref);
    }
    /* the random instances leave room above the bound: the search must find some of it */
    cr_assert_gt(improved, 10, "hill climbing improved only %d of 400 instances", improved);
}

/* Many buffers alive at once: above the pair budget only the sweep runs; it still reaches the
 * lower bound when everything is alive at one step, and never lets live buffers share bytes. */
Test(planner, many_simultaneous_buffers) {
    int n = 20000, steps = n + 1;
    amp_membuf *b = calloc((size_t)n + 1, sizeof *b);
    size_t *off = calloc((size_t)n + 1, sizeof *off);
    for (int i = 0; i < n; i++) b[i] = (amp_membuf){i, n, 256 * (size_t)(1 + i % 7)};
    amp_memplan_result r;
    cr_assert_eq(amp_memplan(b, n, steps, off, &r), 0);
    cr_expect_eq(r.arena, r.lower_bound, "arena %zu, LB %zu", r.arena, r.lower_bound);
    cr_expect_str_eq(r.strategy, "execution-order");
    for (int i = 1; i < n; i++) cr_assert_geq(off[i], off[i - 1] + b[i - 1].size, "buffer %d overlaps", i);
    /* a random mix above the budget: checked pairwise on a sample */
    uint64_t seed = 99;
    random_lifetimes(&seed, b, 6000, 40);
    cr_assert_eq(amp_memplan(b, 6000, 40, off, &r), 0);
    check_no_overlap(b, 6000, off);
    cr_expect_geq(r.arena, r.lower_bound);
    free(b);
    free(off);
}

Test(planner, zero_byte_buffers_take_no_space) {
    amp_membuf b[] = {{0, 2, 256}, {1, 1, 0}, {1, 3, 512}, {2, 3, 0}, {3, 3, 256}};
    size_t off[5];
    amp_memplan_result r;
    cr_assert_eq(amp_memplan(b, 5, 4, off, &r), 0);
    cr_expect_eq(off[1], 0);
    cr_expect_eq(off[3], 0);
    cr_expect_eq(r.arena, 768, "arena %zu (%s)", r.arena, r.strategy);
    check_no_overlap(b, 5, off);
}

/* Sessions: S1, S2, S1 give the right outputs; inputs never aliased; distinct dim tuples get
 * distinct plans. */
static amp_tensor *run_mlp(amp_session *s, amp_context *ctx, int64_t batch, amp_tensor **in_out) {
    int64_t dims[] = {batch, 64};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, dims, -2, 2, (uint64_t)batch * 77);
    amp_tensor *copy;
    amp_tensor_clone(ctx, x, &copy);
    const char *in = "input", *out = "logits";
    amp_tensor *y = NULL;
    cr_assert_eq(amp_session_run(s, 1, &in, (const amp_tensor *const *)&x, 1, &out, &y), AMP_OK, "%s",
                 amp_session_last_error(s));
    cr_expect(tt_equal(x, copy), "the run wrote into its input");
    amp_tensor_destroy(copy);
    *in_out = x;
    return y;
}

Test(planner, shapes_s1_s2_s1) {
    amp_context *ctx;
    amp_context_create(NULL, &ctx);
    amp_model *m;
    cr_assert_eq(amp_model_load(ctx, AMP_SOURCE_DIR "/models/mlp/model.onnx", &m), AMP_OK, "%s",
                 amp_context_last_error(ctx));
    amp_session *s, *fresh;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    int64_t batches[] = {2, 7, 2, 7, 3};
    for (int i = 0; i < 5; i++) {
        amp_tensor *x, *x2;
        amp_tensor *y = run_mlp(s, ctx, batches[i], &x);
        cr_assert_eq(amp_session_create(m, NULL, &fresh), AMP_OK);
        amp_tensor *ref = run_mlp(fresh, ctx, batches[i], &x2);
        cr_expect(tt_equal(y, ref), "batch %lld after other shapes differs from a fresh session", (long long)batches[i]);
        cr_expect_eq(y->dims[0], batches[i]);
        amp_session_destroy(fresh);
        amp_tensor_destroy(x);
        amp_tensor_destroy(x2);
        amp_tensor_destroy(y);
        amp_tensor_destroy(ref);
    }
    cr_expect_eq(s->n_plans, 3, "one plan per distinct shape, got %d", s->n_plans);
    amp_session_destroy(s);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
}

Test(planner, transposed_shapes_get_their_own_plans) {
    /* a Relu model with a fully symbolic 2-D input: [2,3] and [3,2] must not share a plan */
    amp_context *ctx;
    amp_context_create(NULL, &ctx);
    amp_model *m;
    cr_assert_eq(amp_model_load(ctx, AMP_SOURCE_DIR "/tests/data/relu_sym.onnx", &m), AMP_OK, "%s",
                 amp_context_last_error(ctx));
    amp_session *s;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    int64_t d23[] = {2, 3}, d32[] = {3, 2};
    for (int k = 0; k < 2; k++) {
        amp_tensor *x = tt_rand(ctx, AMP_F32, 2, k ? d32 : d23, -1, 1, 5 + (uint64_t)k), *y = NULL;
        const char *in = "x", *out = "y";
        cr_assert_eq(amp_session_run(s, 1, &in, (const amp_tensor *const *)&x, 1, &out, &y), AMP_OK);
        cr_expect_eq(y->dims[0], x->dims[0]);
        cr_expect_eq(y->dims[1], x->dims[1]);
        for (int64_t i = 0; i < x->numel; i++) cr_expect_eq(tt_get(y, i), fmax(tt_get(x, i), 0.0));
        amp_tensor_destroy(x);
        amp_tensor_destroy(y);
    }
    cr_expect_eq(s->n_plans, 2);
    amp_session_destroy(s);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
}

Test(planner, models_within_five_percent_of_lower_bound) {
    const char *models[] = {"lenet", "mlp", "mlp_decomposed"};
    for (int i = 0; i < 3; i++) {
        amp_context *ctx;
        amp_context_create(NULL, &ctx);
        char path[512];
        snprintf(path, sizeof path, AMP_SOURCE_DIR "/models/%s/model.onnx", models[i]);
        amp_model *m;
        cr_assert_eq(amp_model_load(ctx, path, &m), AMP_OK);
        amp_session *s;
        cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
        int64_t batches[] = {1, 64};
        for (int b = 0; b < 2; b++) {
            amp_dim_binding bind = {"N", batches[b]};
            amp_plan_stats ps = {.struct_size = sizeof ps};
            cr_assert_eq(amp_session_plan(s, 1, &bind, &ps), AMP_OK, "%s", amp_session_last_error(s));
            cr_expect_leq((double)ps.arena_bytes, 1.05 * (double)ps.lower_bound_bytes, "%s batch %lld: arena %zu, LB %zu",
                          models[i], (long long)batches[b], ps.arena_bytes, ps.lower_bound_bytes);
            cr_expect_gt(ps.lower_bound_bytes, 0);
        }
        amp_session_destroy(s);
        amp_model_destroy(m);
        amp_context_destroy(ctx);
    }
}

/* Small integer inputs are planned by value only when they can decide shapes: token ids feeding
 * an embedding Gather must not make a new plan per batch. */
Test(planner, token_ids_share_one_plan) {
    amp_context *ctx;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    amp_model *m = NULL;
    cr_assert_eq(amp_model_load(ctx, AMP_SOURCE_DIR "/models/encoder/model.onnx", &m), AMP_OK);
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    int64_t dims[2] = {2, 16};
    double a[32], b[32];
    for (int i = 0; i < 32; i++) {
        a[i] = (i * 7) % 100;
        b[i] = (i * 13 + 5) % 100;
    }
    amp_tensor *xa = tt_make(ctx, AMP_I64, 2, dims, a), *xb = tt_make(ctx, AMP_I64, 2, dims, b);
    const char *in = "input", *out = "logits";
    amp_tensor *ya = NULL, *yb = NULL;
    const amp_tensor *x1 = xa, *x2 = xb;
    cr_assert_eq(amp_session_run(s, 1, &in, &x1, 1, &out, &ya), AMP_OK);
    cr_assert_eq(amp_session_run(s, 1, &in, &x2, 1, &out, &yb), AMP_OK);
    cr_assert_eq(s->n_plans, 1, "%d plans for two batches of the same shape", s->n_plans);
    cr_assert_gt(tt_nse(ya, yb), 1e-6, "different tokens must give different outputs");
    /* a model whose integer input is Reshape's shape still plans by value */
    amp_tensor_destroy(ya);
    amp_tensor_destroy(yb);
    amp_tensor_destroy(xa);
    amp_tensor_destroy(xb);
    amp_session_destroy(s);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
}
