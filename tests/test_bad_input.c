/* The malformed-input corpus (tests/bad/cases.txt): every case gets its expected status and a
 * message naming the node or file, and nothing crashes or leaks (run under ASan in CI). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amprt/amprt.h"

#define BAD_DIR AMP_SOURCE_DIR "/tests/bad"

static amp_status load_inputs(amp_context *ctx, char *spec, const char **names, amp_tensor **ts, int *n,
                              const char **msg) {
    *n = 0;
    for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", BAD_DIR, eq + 1);
        amp_status s = amp_tensor_load_pb(ctx, path, &ts[*n], NULL);
        if (s) {
            *msg = amp_context_last_error(ctx);
            return s;
        }
        names[(*n)++] = tok;
    }
    return AMP_OK;
}

static int run_case(char *line, char *report, size_t rn) {
    if (rn < 4096) return -1;
    char *f[6] = {0};
    int nf = 0;
    for (char *p = line; nf < 6; nf++) {
        f[nf] = p;
        char *bar = strchr(p, '|');
        if (!bar) {
            nf++;
            break;
        }
        *bar = 0;
        p = bar + 1;
    }
    if (nf < 5) return 0;
    const char *name = f[0], *file = f[1], *stage = f[2], *want = f[3], *frag = f[4];
    char inputs[512] = "";
    if (nf > 5 && f[5]) snprintf(inputs, sizeof inputs, "%s", f[5]);
    inputs[strcspn(inputs, "\n")] = 0;

    amp_context *ctx;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    amp_model *m = NULL;
    amp_session *s = NULL;
    amp_tensor *ins[8] = {0}, *outs[8] = {0};
    const char *names[8];
    const char *msg = "";
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", BAD_DIR, file);
    amp_status st = amp_model_load(ctx, path, &m);
    const char *reached = "load";
    if (st) msg = amp_context_last_error(ctx);
    if (!st) {
        reached = "session";
        st = amp_session_create(m, NULL, &s);
        if (st) msg = amp_context_last_error(ctx);
    }
    if (!st) {
        reached = "run";
        int n = 0;
        st = load_inputs(ctx, inputs, names, ins, &n, &msg);
        if (!st) {
            amp_value_info vi = {.struct_size = sizeof vi};
            int nout = amp_model_output_count(m);
            const char *onames[8];
            for (int i = 0; i < nout && i < 8; i++) {
                amp_model_output_info(m, i, &vi);
                onames[i] = vi.name;
            }
            st = amp_session_run(s, n, names, (const amp_tensor *const *)ins, nout, onames, outs);
            if (st) msg = amp_session_last_error(s);
            if (!st && amp_model_output_count(m) > 0)
                cr_expect(outs[0] != NULL, "%s: run succeeded without an output", name);
        }
    }
    int ok = strcmp(amp_status_name(st), want) == 0 && strstr(msg, frag) != NULL &&
             (st == AMP_OK || strcmp(reached, stage) == 0);
    snprintf(report, rn, "%s: expected %s at %s with '%s'; got %s at %s: %s", name, want, stage, frag,
             amp_status_name(st), reached, msg);
    for (int i = 0; i < 8; i++) {
        amp_tensor_destroy(ins[i]);
        amp_tensor_destroy(outs[i]);
    }
    amp_session_destroy(s);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    return ok ? 1 : -1;
}

Test(bad_input, corpus) {
    FILE *f = fopen(BAD_DIR "/cases.txt", "r");
    cr_assert(f, "cannot open cases.txt");
    char line[2048];
    int total = 0, good = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char report[4096];
        int r = run_case(line, report, sizeof report);
        if (r == 0) continue;
        total++;
        if (r > 0) good++;
        cr_expect(r > 0, "%s", report);
    }
    fclose(f);
    cr_assert_geq(total, 30, "only %d cases read", total);
    cr_log_info("%d of %d bad-input cases behave", good, total);
}

/* ---- files that are not what they claim, and memory before the bytes exist ---------------- */

#include <sys/stat.h>
#include <unistd.h>

typedef struct peak_alloc {
    size_t largest; /* the largest single request */
} peak_alloc;

static void *pa_alloc(void *u, size_t n) {
    peak_alloc *p = u;
    if (n > p->largest) p->largest = n;
    return malloc(n);
}
static void *pa_realloc(void *u, void *q, size_t n) {
    peak_alloc *p = u;
    if (n > p->largest) p->largest = n;
    return realloc(q, n);
}
static void pa_free(void *u, void *q) {
    (void)u;
    free(q);
}

Test(bad_input, huge_external_declaration_allocates_nothing) {
    const char *files[] = {BAD_DIR "/ext/huge_missing.onnx", BAD_DIR "/ext/huge_short.onnx"};
    const amp_status want[] = {AMP_ERR_IO, AMP_ERR_PARSE};
    const char *frag[] = {"missing_huge.bin", "too short"};
    for (int i = 0; i < 2; i++) {
        peak_alloc p = {0};
        amp_context_desc d = {.struct_size = sizeof d,
                              .allocator = {.alloc = pa_alloc, .realloc = pa_realloc, .free = pa_free, .user_data = &p}};
        amp_context *ctx;
        cr_assert_eq(amp_context_create(&d, &ctx), AMP_OK);
        amp_model *m = NULL;
        cr_expect_eq(amp_model_load(ctx, files[i], &m), want[i], "%s: %s", files[i], amp_context_last_error(ctx));
        cr_expect(strstr(amp_context_last_error(ctx), frag[i]), "%s: %s", files[i], amp_context_last_error(ctx));
        cr_expect_lt(p.largest, (size_t)1 << 20, "%s: allocated %zu bytes for a tensor with no data", files[i],
                     p.largest);
        amp_model_destroy(m);
        amp_context_destroy(ctx);
    }
}

Test(bad_input, fifo_and_directory_refused_without_blocking) {
    char fifo[64];
    snprintf(fifo, sizeof fifo, "/tmp/amprt_fifo_%ld.onnx", (long)getpid());
    unlink(fifo);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    amp_context *ctx;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    amp_model *m = NULL;
    cr_expect_eq(amp_model_load(ctx, fifo, &m), AMP_ERR_IO);
    cr_expect(strstr(amp_context_last_error(ctx), "not a regular file"), "%s", amp_context_last_error(ctx));
    amp_tensor *t = NULL;
    cr_expect_eq(amp_tensor_load_pb(ctx, fifo, &t, NULL), AMP_ERR_IO);
    cr_expect(strstr(amp_context_last_error(ctx), "not a regular file"), "%s", amp_context_last_error(ctx));
    cr_expect_eq(amp_tensor_load_pb(ctx, BAD_DIR "/ext", &t, NULL), AMP_ERR_IO);
    cr_expect(strstr(amp_context_last_error(ctx), "is a directory"), "%s", amp_context_last_error(ctx));
    cr_expect_eq(amp_model_load(ctx, "/dev/null", &m), AMP_ERR_IO);
    cr_expect(strstr(amp_context_last_error(ctx), "not a regular file"), "%s", amp_context_last_error(ctx));
    cr_expect(m == NULL && t == NULL);
    amp_context_destroy(ctx);
    unlink(fifo);
}

Test(bad_input, deep_nesting_from_a_buffer) {
    amp_context *ctx;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    FILE *f = fopen(BAD_DIR "/deep_type.onnx", "rb");
    cr_assert(f);
    static unsigned char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert(n > 0 && n < sizeof buf);
    amp_model *m = NULL;
    cr_expect_eq(amp_model_load_buffer(ctx, buf, n, NULL, &m), AMP_ERR_LIMIT);
    cr_expect(strstr(amp_context_last_error(ctx), "deeper than 64"), "%s", amp_context_last_error(ctx));
    cr_expect(m == NULL);
    amp_context_destroy(ctx);
}

/* A run names each output it wants; asking for more than the model has is refused before
 * anything runs, and the outputs a run makes are as many as it was asked for. */
Test(bad_input, more_outputs_asked_for_than_the_model_has) {
    amp_context *ctx;
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    amp_model *m = NULL;
    cr_assert_eq(amp_model_load(ctx, AMP_SOURCE_DIR "/models/mlp/model.onnx", &m), AMP_OK);
    cr_assert_eq(amp_model_output_count(m), 1);
    amp_value_info in = {.struct_size = sizeof in}, out = {.struct_size = sizeof out};
    cr_assert_eq(amp_model_input_info(m, 0, &in), AMP_OK);
    cr_assert_eq(amp_model_output_info(m, 0, &out), AMP_OK);
    for (int d = 0; d < in.rank; d++)
        if (in.dims[d] < 0) in.dims[d] = 2;
    amp_tensor *x = NULL;
    cr_assert_eq(amp_tensor_create(ctx, in.dtype, in.rank, in.dims, &x), AMP_OK);
    float *xv = amp_tensor_data(x);
    for (int64_t i = 0; i < amp_tensor_numel(x); i++) xv[i] = (float)((i % 7) - 3) * 0.25f;
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    const char *names[2] = {out.name, out.name};
    amp_tensor *ys[2] = {NULL, NULL};
    const amp_tensor *xs[1] = {x};
    cr_expect_eq(amp_session_run(s, 1, &in.name, xs, 2, names, ys), AMP_ERR_INVALID_ARG);
    cr_expect(strstr(amp_session_last_error(s), "2 outputs asked for, the model has 1"), "%s",
              amp_session_last_error(s));
    cr_expect(ys[0] == NULL && ys[1] == NULL);
    cr_assert_eq(amp_session_run(s, 1, &in.name, xs, 1, names, ys), AMP_OK, "%s", amp_session_last_error(s));
    cr_assert_not_null(ys[0]);
    cr_expect(ys[1] == NULL);
    amp_tensor_destroy(ys[0]);
    amp_tensor_destroy(x);
    amp_session_destroy(s);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
}
