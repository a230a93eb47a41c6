/* Allocation-failure injection: the allocator hook fails the k-th allocation, for every k from
 * the first allocation of a model load, through a copy of its graph (amp_graph_clone), to the
 * last of a session's compile (plan) and first run, and of an autocast conversion. Each failure must come back as AMP_ERR_NO_MEMORY (no abort, no
 * crash), and once everything is destroyed no block may be left allocated. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amprt/amprt.h"
#include "runtime/runtime.h"

typedef struct counting {
    long calls;   /* allocations attempted */
    long fail_at; /* the call that fails (1-based); 0: none */
    long live;    /* blocks currently allocated */
    long failed;  /* allocations refused */
} counting;

static void *c_alloc(void *u, size_t n) {
    counting *c = u;
    if (++c->calls == c->fail_at) {
        c->failed++;
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (p) c->live++;
    return p;
}

static void *c_realloc(void *u, void *p, size_t n) {
    counting *c = u;
    if (++c->calls == c->fail_at) {
        c->failed++;
        return NULL;
    }
    void *q = realloc(p, n ? n : 1);
    if (q && !p) c->live++;
    return q;
}

static void c_free(void *u, void *p) {
    counting *c = u;
    if (p) c->live--;
    free(p);
}

typedef enum {
    STAGE_DONE = 0,
    STAGE_CTX,
    STAGE_LOAD,
    STAGE_SESSION,
    STAGE_PLAN,
    STAGE_RUN,
    STAGE_AUTOCAST,
    STAGE_CLONE
} stage;

static void count_explained(void *user, const amp_autocast_decision *d) {
    (void)d;
    (*(int *)user)++;
}

/* One attempt with the fail_at-th allocation refused; returns the stage that failed. */
static stage attempt(const char *model, long fail_at, counting *c, amp_status *st, char *msg, size_t cap, bool full) {
    memset(c, 0, sizeof *c);
    c->fail_at = fail_at;
    amp_context_desc d = {.struct_size = sizeof d,
                          .allocator = {.alloc = c_alloc, .realloc = c_realloc, .free = c_free, .user_data = c}};
    amp_context *ctx = NULL;
    amp_model *m = NULL, *conv = NULL;
    amp_session *s = NULL;
    amp_tensor *x = NULL, *y = NULL;
    amp_graph *copy = NULL;
    stage failed = STAGE_DONE;
    *st = amp_context_create(&d, &ctx);
    if (*st) return STAGE_CTX;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", AMP_SOURCE_DIR, model);
    if ((*st = amp_model_load(ctx, path, &m))) {
        failed = STAGE_LOAD;
        goto done;
    }
    if ((*st = amp_graph_clone(m->g, &copy))) {
        failed = STAGE_CLONE;
        goto done;
    }
    if ((*st = amp_session_create(m, NULL, &s))) {
        failed = STAGE_SESSION;
        goto done;
    }
    amp_dim_binding b = {.name = "N", .value = 2};
    amp_plan_stats ps = {.struct_size = sizeof ps};
    if ((*st = amp_session_plan(s, 1, &b, &ps))) {
        failed = STAGE_PLAN;
        goto done;
    }
    if (!full) goto done; /* load, session and plan only */
    amp_value_info vi = {.struct_size = sizeof vi}, vo = {.struct_size = sizeof vo};
    amp_model_input_info(m, 0, &vi);
    amp_model_output_info(m, 0, &vo);
    int64_t dims[AMP_MAX_RANK];
    for (int i = 0; i < vi.rank; i++) dims[i] = vi.dims[i] >= 0 ? vi.dims[i] : 2;
    if ((*st = amp_tensor_create(ctx, vi.dtype, vi.rank, dims, &x))) {
        failed = STAGE_RUN;
        goto done;
    }
    const char *in = vi.name, *out = vo.name;
    const amp_tensor *xin = x;
    if ((*st = amp_session_run(s, 1, &in, &xin, 1, &out, &y))) {
        failed = STAGE_RUN;
        goto done;
    }
    /* with the explain callback, so the reasons' own allocations fail too */
    int explained = 0;
    amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16, .explain = count_explained,
                              .explain_user_data = &explained};
    if ((*st = amp_model_autocast(m, &o, &conv, NULL))) failed = STAGE_AUTOCAST;
done:
    if (failed) snprintf(msg, cap, "%s", amp_context_last_error(ctx));
    amp_graph_destroy(copy);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_session_destroy(s);
    amp_model_destroy(conv);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    return failed;
}

/* full: also the first run and an autocast conversion (the large encoder stops after the plan,
 * so the suite stays quick under the sanitizers) */
static void inject_everywhere(const char *model, bool full) {
    counting c;
    amp_status st;
    char msg[1024] = "";
    /* a clean run counts the allocations */
    cr_assert_eq(attempt(model, 0, &c, &st, msg, sizeof msg, full), STAGE_DONE, "%s: %s", model, msg);
    cr_assert_eq(c.live, 0, "%s: %ld blocks left after a clean run", model, c.live);
    long total = c.calls;
    cr_assert_gt(total, 10);
    long by_stage[9] = {0};
    for (long k = 1; k <= total; k++) {
        msg[0] = 0;
        stage s = attempt(model, k, &c, &st, msg, sizeof msg, full);
        cr_assert_eq(c.failed, 1, "%s: allocation %ld was not reached", model, k);
        cr_assert_neq(s, STAGE_DONE, "%s: allocation %ld failed but every call succeeded", model, k);
        cr_assert_eq(st, AMP_ERR_NO_MEMORY, "%s: allocation %ld: status %s (%s)", model, k, amp_status_name(st), msg);
        cr_assert_eq(c.live, 0, "%s: allocation %ld failed at stage %d: %ld blocks leaked", model, k, (int)s, c.live);
        by_stage[s]++;
    }
    printf("%s: %ld allocation points injected (context %ld, load %ld, clone %ld, session %ld, plan %ld, run %ld, "
           "autocast %ld)\n",
           model, total, by_stage[STAGE_CTX], by_stage[STAGE_LOAD], by_stage[STAGE_CLONE], by_stage[STAGE_SESSION],
           by_stage[STAGE_PLAN], by_stage[STAGE_RUN], by_stage[STAGE_AUTOCAST]);
}

TestSuite(alloc_failure, .timeout = 1200);

Test(alloc_failure, lenet) { inject_everywhere("models/lenet/model.onnx", true); }
Test(alloc_failure, mlp_decomposed) { inject_everywhere("models/mlp_decomposed/model.onnx", true); }
Test(alloc_failure, encoder) { inject_everywhere("models/encoder/model.onnx", false); }
Test(alloc_failure, lstm_tagger) { inject_everywhere("models/lstm_tagger/model.onnx", true); }
Test(alloc_failure, unet) { inject_everywhere("models/unet/model.onnx", true); }
