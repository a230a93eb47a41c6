/* The public API's promises about growth and ownership: output structs filled up to the size
 * the caller set (a caller built against an older header has a shorter struct, and nothing past
 * it may be written), sizes too small for the size field refused with a message; destructors
 * and getters that accept NULL; amp_tensor_save_pb's name. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "amprt/amprt.h"
#include "tests/testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(abi, .init = setup, .fini = teardown, .timeout = 300);

#define CANARY 0xA5

/* A caller's struct of `prefix` bytes (an older header's version) followed by canary bytes. */
typedef struct prefixed {
    _Alignas(max_align_t) unsigned char bytes[512];
} prefixed;

static void *prefix_init(prefixed *p, size_t prefix) {
    memset(p, CANARY, sizeof *p);
    memcpy(p->bytes, &prefix, sizeof prefix);
    return p->bytes;
}

/* The size field as the caller set it, nothing written past it or past `prefix`. */
static void prefix_check(const prefixed *p, size_t prefix, const char *what) {
    size_t n;
    memcpy(&n, p->bytes, sizeof n);
    cr_assert_eq(n, prefix, "%s: struct_size changed to %zu", what, n);
    for (size_t i = prefix > sizeof n ? prefix : sizeof n; i < sizeof p->bytes; i++)
        cr_assert_eq(p->bytes[i], CANARY, "%s: byte %zu past the caller's %zu bytes was written", what, i, prefix);
}

/* Sizes smaller than the size field fail with a message and leave the struct as it was. */
static void small_sizes_refused(amp_status (*call)(void *user, void *out), void *user, const char *(*err)(void *),
                                const char *what) {
    size_t bad[2] = {0, sizeof(size_t) - 1};
    for (int k = 0; k < 2; k++) {
        prefixed p;
        void *out = prefix_init(&p, bad[k]);
        cr_assert_eq(call(user, out), AMP_ERR_INVALID_ARG, "%s accepted struct_size %zu", what, bad[k]);
        cr_assert(strstr(err(user), "struct_size") != NULL, "%s: message '%s'", what, err(user));
        prefix_check(&p, bad[k], what);
    }
    /* exactly the size field: accepted, nothing else written */
    prefixed p;
    void *out = prefix_init(&p, sizeof(size_t));
    cr_assert_eq(call(user, out), AMP_OK, "%s refused struct_size %zu", what, sizeof(size_t));
    prefix_check(&p, sizeof(size_t), what);
}

static amp_model *load(const char *rel) { return tt_load(ctx, rel); }

static const char *ctx_err(void *user) {
    (void)user;
    return amp_context_last_error(ctx);
}

/* ---- amp_value_info ---------------------------------------------------------------------- */

typedef struct old_value_info {
    size_t struct_size;
    const char *name;
    amp_dtype dtype;
    int rank;
} old_value_info;

static amp_status input_info(void *user, void *out) { return amp_model_input_info(user, 0, out); }

Test(abi, value_info_fills_only_the_callers_fields) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_value_info full = {.struct_size = sizeof full};
    cr_assert_eq(amp_model_input_info(m, 0, &full), AMP_OK);
    cr_assert_str_eq(full.name, "input");
    cr_assert_eq(full.rank, 2);
    cr_assert_eq(full.dims[1], 64);
    cr_assert_str_eq(full.dim_names[0], "N");

    prefixed p;
    old_value_info *old = prefix_init(&p, sizeof(old_value_info));
    cr_assert_eq(amp_model_output_info(m, 0, (amp_value_info *)old), AMP_OK);
    cr_assert_str_eq(old->name, "logits");
    cr_assert_eq(old->dtype, AMP_F32);
    cr_assert_eq(old->rank, 2);
    prefix_check(&p, sizeof(old_value_info), "amp_model_output_info");
    small_sizes_refused(input_info, m, ctx_err, "amp_model_input_info");
    amp_model_destroy(m);
}

/* A caller built against a newer header: its extra fields are left as it set them. */
Test(abi, newer_callers_keep_their_extra_fields) {
    amp_model *m = load("models/mlp/model.onnx");
    struct {
        amp_value_info v;
        int64_t later_field;
    } newer;
    memset(&newer, 0, sizeof newer);
    newer.v.struct_size = sizeof newer;
    newer.later_field = 12345;
    cr_assert_eq(amp_model_input_info(m, 0, &newer.v), AMP_OK);
    cr_assert_eq(newer.v.struct_size, sizeof newer);
    cr_assert_str_eq(newer.v.name, "input");
    cr_assert_eq(newer.later_field, 12345);
    amp_model_destroy(m);
}

/* ---- amp_plan_stats ---------------------------------------------------------------------- */

typedef struct old_plan_stats {
    size_t struct_size;
    size_t arena_bytes;
    size_t lower_bound_bytes;
} old_plan_stats;

static amp_status session_plan(void *user, void *out) {
    amp_dim_binding bind = {"N", 4};
    return amp_session_plan(user, 1, &bind, out);
}
static amp_status session_last_plan(void *user, void *out) { return amp_session_last_plan(user, out); }
static const char *session_err(void *user) { return amp_session_last_error(user); }

Test(abi, plan_stats_fill_only_the_callers_fields) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    amp_dim_binding bind = {"N", 4};
    amp_plan_stats full = {.struct_size = sizeof full};
    cr_assert_eq(amp_session_plan(s, 1, &bind, &full), AMP_OK, "%s", amp_session_last_error(s));
    cr_assert_gt(full.arena_bytes, 0);
    cr_assert_not_null(full.strategy);

    prefixed p;
    old_plan_stats *old = prefix_init(&p, sizeof(old_plan_stats));
    cr_assert_eq(amp_session_plan(s, 1, &bind, (amp_plan_stats *)old), AMP_OK);
    cr_assert_eq(old->arena_bytes, full.arena_bytes);
    cr_assert_eq(old->lower_bound_bytes, full.lower_bound_bytes);
    prefix_check(&p, sizeof(old_plan_stats), "amp_session_plan");

    old = prefix_init(&p, sizeof(old_plan_stats));
    cr_assert_eq(amp_session_last_plan(s, (amp_plan_stats *)old), AMP_OK);
    cr_assert_eq(old->arena_bytes, full.arena_bytes);
    prefix_check(&p, sizeof(old_plan_stats), "amp_session_last_plan");

    small_sizes_refused(session_plan, s, session_err, "amp_session_plan");
    small_sizes_refused(session_last_plan, s, session_err, "amp_session_last_plan");
    amp_session_destroy(s);
    amp_model_destroy(m);
}

/* ---- amp_autocast_report ----------------------------------------------------------------- */

typedef struct old_autocast_report {
    size_t struct_size;
    int nodes_16bit;
    int nodes_fp32;
} old_autocast_report;

typedef struct autocast_call {
    amp_model *m, *out;
} autocast_call;

static amp_status autocast(void *user, void *out) {
    autocast_call *c = user;
    amp_model_destroy(c->out);
    c->out = NULL;
    return amp_model_autocast(c->m, NULL, &c->out, out);
}

Test(abi, autocast_report_fills_only_the_callers_fields) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_model *c = NULL;
    amp_autocast_report full = {.struct_size = sizeof full};
    cr_assert_eq(amp_model_autocast(m, NULL, &c, &full), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_gt(full.nodes_16bit, 0);
    amp_model_destroy(c);

    prefixed p;
    old_autocast_report *old = prefix_init(&p, sizeof(old_autocast_report));
    c = NULL;
    cr_assert_eq(amp_model_autocast(m, NULL, &c, (amp_autocast_report *)old), AMP_OK);
    cr_assert_eq(old->nodes_16bit, full.nodes_16bit);
    cr_assert_eq(old->nodes_fp32, full.nodes_fp32);
    prefix_check(&p, sizeof(old_autocast_report), "amp_model_autocast");
    amp_model_destroy(c);

    /* a refused report size makes no model: *out stays untouched */
    amp_model *untouched = (amp_model *)&p;
    void *bad = prefix_init(&p, 0);
    cr_assert_eq(amp_model_autocast(m, NULL, &untouched, bad), AMP_ERR_INVALID_ARG);
    cr_assert_eq(untouched, (amp_model *)&p);

    autocast_call call = {m, NULL};
    small_sizes_refused(autocast, &call, ctx_err, "amp_model_autocast");
    amp_model_destroy(call.out);
    amp_model_destroy(m);
}

/* ---- amp_trainer_state ------------------------------------------------------------------- */

typedef struct old_trainer_state {
    size_t struct_size;
    int64_t steps;
    int64_t steps_skipped;
} old_trainer_state;

static amp_status trainer_state(void *user, void *out) { return amp_trainer_get_state(user, out); }
static amp_status trainer_last_plan(void *user, void *out) { return amp_trainer_last_plan(user, out); }
static const char *trainer_err(void *user) { return amp_trainer_last_error(user); }

Test(abi, trainer_state_fills_only_the_callers_fields) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_trainer_options o = {.struct_size = sizeof o, .threads = 2};
    amp_trainer *t = NULL;
    cr_assert_eq(amp_trainer_create(m, &o, &t), AMP_OK, "%s", amp_context_last_error(ctx));
    int64_t xd[2] = {4, 64}, ld[1] = {4};
    double lab[4] = {1, 2, 3, 4};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, xd, -1, 1, 3), *y = tt_make(ctx, AMP_I64, 1, ld, lab);
    const char *name = "input";
    const amp_tensor *xin = x;
    cr_assert_eq(amp_trainer_step(t, 1, &name, &xin, y, NULL), AMP_OK, "%s", amp_trainer_last_error(t));
    cr_assert_eq(amp_trainer_step(t, 1, &name, &xin, y, NULL), AMP_OK, "%s", amp_trainer_last_error(t));

    amp_trainer_state full = {.struct_size = sizeof full};
    cr_assert_eq(amp_trainer_get_state(t, &full), AMP_OK);
    cr_assert_eq(full.steps, 2);
    cr_assert(isfinite(full.last_loss));

    prefixed p;
    old_trainer_state *old = prefix_init(&p, sizeof(old_trainer_state));
    cr_assert_eq(amp_trainer_get_state(t, (amp_trainer_state *)old), AMP_OK);
    cr_assert_eq(old->steps, 2);
    cr_assert_eq(old->steps_skipped, 0);
    prefix_check(&p, sizeof(old_trainer_state), "amp_trainer_get_state");

    old_plan_stats *ps = prefix_init(&p, sizeof(old_plan_stats));
    cr_assert_eq(amp_trainer_last_plan(t, (amp_plan_stats *)ps), AMP_OK);
    cr_assert_gt(ps->arena_bytes, 0);
    prefix_check(&p, sizeof(old_plan_stats), "amp_trainer_last_plan");

    small_sizes_refused(trainer_state, t, trainer_err, "amp_trainer_get_state");
    small_sizes_refused(trainer_last_plan, t, trainer_err, "amp_trainer_last_plan");
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_trainer_destroy(t);
    amp_model_destroy(m);
}

/* ---- what the header promises for NULL ------------------------------------------------------ */

/* Every destructor accepts NULL, amp_free either NULL, and the message getters give "" */
Test(abi, destructors_accept_null) {
    amp_tensor_destroy(NULL);
    amp_model_destroy(NULL);
    amp_session_destroy(NULL);
    amp_trainer_destroy(NULL);
    amp_free(ctx, NULL);
    amp_free(NULL, NULL);
    amp_context_destroy(NULL);
    cr_assert_str_eq(amp_context_last_error(NULL), "");
    cr_assert_str_eq(amp_session_last_error(NULL), "");
    cr_assert_str_eq(amp_trainer_last_error(NULL), "");
    cr_assert_eq(amp_tensor_dtype(NULL), AMP_UNDEFINED);
    cr_assert_eq(amp_tensor_numel(NULL), 0);
    cr_assert_null(amp_tensor_data(NULL));
    cr_assert_eq(amp_model_input_count(NULL), 0);
    cr_assert_eq(amp_trainer_param_count(NULL), 0);
    /* the context given to the NULL calls still works */
    amp_tensor *t = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 0, NULL, &t), AMP_OK);
    cr_assert_eq(amp_tensor_numel(t), 1);
    amp_tensor_destroy(t);
}

/* amp_tensor_save_pb's name is the TensorProto's name (NULL: empty), read back by load_pb */
Test(abi, tensor_save_pb_writes_its_name) {
    const int64_t d[1] = {3};
    const double v[3] = {1, 2, 3};
    amp_tensor *t = tt_make(ctx, AMP_F32, 1, d, v), *back = NULL;
    char path[] = "/tmp/amprt_abi_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    const char *names[2] = {"input_0", NULL};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(amp_tensor_save_pb(ctx, t, names[k], path), AMP_OK, "%s", amp_context_last_error(ctx));
        char *name = NULL;
        cr_assert_eq(amp_tensor_load_pb(ctx, path, &back, &name), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert_str_eq(name, names[k] ? names[k] : "");
        cr_assert(tt_equal(back, t));
        amp_free(ctx, name);
        amp_tensor_destroy(back);
    }
    unlink(path);
    amp_tensor_destroy(t);
}

/* The library's version is the header's, in both forms, and it says how it was built. */
Test(abi, version_matches_header) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", AMP_VERSION_MAJOR, AMP_VERSION_MINOR, AMP_VERSION_PATCH);
    cr_assert_str_eq(amp_version(), want);
    cr_assert_eq(amp_version_number(), AMP_VERSION_NUMBER);
    cr_assert_eq(AMP_VERSION_NUMBER, AMP_VERSION_MAJOR * 10000 + AMP_VERSION_MINOR * 100 + AMP_VERSION_PATCH);
    const char *b = amp_build_info();
    cr_assert(strstr(b, "compiler: ") && strstr(b, "build type: ") && strstr(b, "BLAS: OpenBLAS") && strstr(b, "CUDA: "),
              "%s", b);
    cr_assert(!strstr(b, "unknown"), "a build item was not filled in:\n%s", b);
}
