/* One model shared by several threads, each with its own session: results equal the
 * single-threaded ones bit for bit. Sessions run with one kernel thread, so the only
 * concurrency is the sessions' own (the case a ThreadSanitizer build checks). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "runtime/runtime.h"
#include "tests/testutil.h"

#define THREADS 4
#define RUNS 6

typedef struct job {
    amp_model *model;
    const amp_tensor *x[RUNS];
    amp_tensor *y[RUNS];
    amp_status status;
    char err[256];
} job;

static void *worker(void *arg) {
    job *j = arg;
    amp_session_options so = {.struct_size = sizeof so, .backend = "cpu", .threads = 1};
    amp_session *s = NULL;
    j->status = amp_session_create(j->model, &so, &s);
    if (j->status) return NULL;
    amp_value_info vi = {.struct_size = sizeof vi}, vo = {.struct_size = sizeof vo};
    amp_model_input_info(j->model, 0, &vi);
    amp_model_output_info(j->model, 0, &vo);
    const char *in = vi.name, *out = vo.name;
    for (int r = 0; r < RUNS && !j->status; r++) {
        j->status = amp_session_run(s, 1, &in, &j->x[r], 1, &out, &j->y[r]);
        if (j->status) snprintf(j->err, sizeof j->err, "%s", amp_session_last_error(s));
    }
    amp_session_destroy(s);
    return NULL;
}

static void shared_model(const char *rel, amp_dtype dt) {
    amp_context *ctx;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", AMP_SOURCE_DIR, rel);
    amp_model *m = NULL;
    cr_assert_eq(amp_model_load(ctx, path, &m), AMP_OK);
    amp_value_info vi = {.struct_size = sizeof vi};
    amp_model_input_info(m, 0, &vi);
    /* inputs of two batch sizes, so threads also plan concurrently */
    amp_tensor *xs[RUNS];
    for (int r = 0; r < RUNS; r++) {
        int64_t dims[AMP_MAX_RANK];
        for (int d = 0; d < vi.rank; d++) dims[d] = vi.dims[d] > 0 ? vi.dims[d] : (r % 2 ? 3 : 5);
        if (dt == AMP_I64) {
            amp_tensor *u = tt_rand(ctx, AMP_F64, vi.rank, dims, 0.0, 100.0, 50 + (uint64_t)r);
            double v[4096];
            for (int64_t i = 0; i < u->numel; i++) v[i] = (double)(int64_t)tt_get(u, i);
            xs[r] = tt_make(ctx, AMP_I64, vi.rank, dims, v);
            amp_tensor_destroy(u);
        } else {
            xs[r] = tt_rand(ctx, AMP_F32, vi.rank, dims, -1.0, 1.0, 50 + (uint64_t)r);
        }
    }
    /* the reference: one thread alone */
    job ref = {.model = m};
    for (int r = 0; r < RUNS; r++) ref.x[r] = xs[r];
    worker(&ref);
    cr_assert_eq(ref.status, AMP_OK, "%s", ref.err);
    job jobs[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&jobs[t], 0, sizeof jobs[t]);
        jobs[t].model = m;
        for (int r = 0; r < RUNS; r++) jobs[t].x[r] = xs[(r + t) % RUNS];
        cr_assert_eq(pthread_create(&th[t], NULL, worker, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++) {
        cr_assert_eq(jobs[t].status, AMP_OK, "thread %d: %s", t, jobs[t].err);
        for (int r = 0; r < RUNS; r++) {
            cr_assert(tt_equal(jobs[t].y[r], ref.y[(r + t) % RUNS]), "%s: thread %d run %d differs", rel, t, r);
            amp_tensor_destroy(jobs[t].y[r]);
        }
    }
    for (int r = 0; r < RUNS; r++) {
        amp_tensor_destroy(ref.y[r]);
        amp_tensor_destroy(xs[r]);
    }
    amp_model_destroy(m);
    amp_context_destroy(ctx);
}

Test(concurrency, lenet_shared_by_threads) { shared_model("models/lenet/model.onnx", AMP_F32); }
Test(concurrency, encoder_shared_by_threads) { shared_model("models/encoder/model.onnx", AMP_I64); }
Test(concurrency, mlp_decomposed_shared_by_threads) { shared_model("models/mlp_decomposed/model.onnx", AMP_F32); }
