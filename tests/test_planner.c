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
