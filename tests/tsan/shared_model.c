/* ThreadSanitizer check (built with -DAMP_TSAN=ON; Criterion cannot run under TSan): several
 * threads share one model, each with its own session, planning and running concurrently; the
 * outputs must equal one thread's, and TSan must report no race. Exit status 0 on success. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amprt/amprt.h"

#define THREADS 4
#define RUNS 4

typedef struct job {
    amp_model *model;
    amp_tensor *x[RUNS];
    amp_tensor *y[RUNS];
    amp_status status;
} job;

static void *worker(void *arg) {
    job *j = arg;
    amp_session_options so = {.struct_size = sizeof so, .backend = "cpu", .threads = 1};
    amp_session *s = NULL;
    if ((j->status = amp_session_create(j->model, &so, &s))) return NULL;
    amp_value_info vi = {.struct_size = sizeof vi}, vo = {.struct_size = sizeof vo};
    amp_model_input_info(j->model, 0, &vi);
    amp_model_output_info(j->model, 0, &vo);
    const char *in = vi.name, *out = vo.name;
    for (int r = 0; r < RUNS && !j->status; r++) {
        const amp_tensor *x = j->x[r];
        j->status = amp_session_run(s, 1, &in, &x, 1, &out, &j->y[r]);
    }
    amp_session_destroy(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.onnx (float input)\n", argv[0]);
        return 2;
    }
    amp_context *ctx;
    amp_model *m;
    if (amp_context_create(NULL, &ctx) || amp_model_load(ctx, argv[1], &m)) return 1;
    amp_value_info vi = {.struct_size = sizeof vi};
    amp_model_input_info(m, 0, &vi);
    job ref = {.model = m}, jobs[THREADS];
    for (int r = 0; r < RUNS; r++) {
        int64_t dims[AMP_MAX_RANK];
        for (int d = 0; d < vi.rank; d++) dims[d] = vi.dims[d] > 0 ? vi.dims[d] : (r % 2 ? 3 : 2);
        if (amp_tensor_create(ctx, AMP_F32, vi.rank, dims, &ref.x[r])) return 1;
        float *p = amp_tensor_data(ref.x[r]);
        for (int64_t i = 0; i < amp_tensor_numel(ref.x[r]); i++) p[i] = (float)((i * 37 + r * 11) % 19) / 9.5f - 1.0f;
    }
    worker(&ref);
    if (ref.status) return 1;
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&jobs[t], 0, sizeof jobs[t]);
        jobs[t].model = m;
        memcpy(jobs[t].x, ref.x, sizeof ref.x);
        pthread_create(&th[t], NULL, worker, &jobs[t]);
    }
    int bad = 0;
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++) {
        if (jobs[t].status) bad = 1;
        for (int r = 0; r < RUNS && !jobs[t].status; r++) {
            if (amp_tensor_nbytes(jobs[t].y[r]) != amp_tensor_nbytes(ref.y[r]) ||
                memcmp(amp_tensor_data(jobs[t].y[r]), amp_tensor_data(ref.y[r]), amp_tensor_nbytes(ref.y[r])) != 0)
                bad = 1;
            amp_tensor_destroy(jobs[t].y[r]);
        }
    }
    for (int r = 0; r < RUNS; r++) {
        amp_tensor_destroy(ref.y[r]);
        amp_tensor_destroy(ref.x[r]);
    }
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    printf("%s: %d threads x %d runs %s\n", argv[1], THREADS, RUNS, bad ? "DIFFER" : "equal to one thread's");
    return bad;
}
