/* Every model of models/ on the CUDA backend beside the CPU backend, through the public API
 * (the trainer and the session open $AMPRT_CUDA_MODULE: the emulated module in this build, the
 * real one on a GPU machine):
 *
 *   - inference: the model's first output on CUDA against the CPU's, relative L2;
 *   - training: a few SGD steps on one fixed batch in FP32, FP16 AMP and BF16 AMP, on both
 *     backends; the losses agree step by step, and the parameters at the end, within each
 *     precision's tolerance; steps skipped for overflow and the loss scale agree exactly;
 *   - on the emulator, the last CUDA step is counted: no allocation, at most one wait for the
 *     device (its loss), and the kernels, library calls, copies and memsets it enqueued are
 *     printed (docs/benchmarks.md keeps them, the launches per step before fusion).
 *
 * Each backend must run what it was asked for: a trainer or session that "auto" would have put
 * on the CPU fails the case (the note says which op is missing).
 *
 * Inputs: seeded uniform values in [-1, 1) (token ids in [0, 100) for the models that take
 * them), batch 4; classifiers train on fixed labels with their cross-entropy loss, the models
 * whose output has rank > 2 with MSE toward a fixed target of the output's shape, as
 * tests/test_trainer.c does.
 *
 * Tolerances. The two backends compute the same formulas in other orders (cuBLASLt's and
 * cuDNN's accumulation against OpenBLAS and im2col, double sums in blocks against sums in
 * order), so they start a rounding apart; three SGD steps at lr 0.01 grow that little. The
 * bounds are per precision, for a GPU's other engines as well: losses 1e-4 (fp32), 2e-3 (fp16),
 * 1e-2 (bf16); parameters the same. What the emulator measured is printed per case and kept in
 * docs/benchmarks.md's CUDA section. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amprt/amprt.h"
#include "tests/cuda/cuda_test.h"
#include "tests/cuda/cuda_train.h"

#define BATCH 4
#define STEPS 3

static amp_context *g_ctx;
/* the first "fused for ..." note since the last reset (a session's log; a trainer's step session
 * writes it before its prediction session), "" when none */
static char g_fused[256];

static void fused_log(void *user, amp_log_level level, const char *msg) {
    (void)user;
    (void)level;
    if (!g_fused[0] && strncmp(msg, "fused for ", 10) == 0) snprintf(g_fused, sizeof g_fused, "%s", msg);
}
static void fused_log_reset(void) { g_fused[0] = 0; }

static const char *src_dir(void) {
    const char *s = getenv("AMP_SOURCE_DIR");
    return s && s[0] ? s : ".";
}

static amp_model *load(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s/model.onnx", src_dir(), name);
    amp_context_desc cd = {.struct_size = sizeof cd, .log = fused_log, .log_level = AMP_LOG_INFO};
    if (!g_ctx && amp_context_create(&cd, &g_ctx)) return NULL;
    amp_model *m = NULL;
    if (amp_model_load(g_ctx, path, &m)) {
        fprintf(stderr, "  load %s: %s\n", path, amp_context_last_error(g_ctx));
        return NULL;
    }
    return m;
}

/* seeded values: uniform in [lo, hi), floored for integer tensors */
static amp_tensor *seeded(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi, uint64_t seed) {
    amp_tensor *t = NULL;
    if (amp_tensor_create(g_ctx, dt, rank, dims, &t)) return NULL;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    void *d = amp_tensor_data(t);
    for (int64_t i = 0; i < amp_tensor_numel(t); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0;
        if (dt == AMP_I64) ((int64_t *)d)[i] = (int64_t)floor(u);
        else ((float *)d)[i] = (float)u;
    }
    return t;
}

typedef struct batch {
    const char *in_name;
    amp_tensor *x, *y;
    bool mse;
} batch;

static void batch_free(batch *b) {
    amp_tensor_destroy(b->x);
    amp_tensor_destroy(b->y);
    memset(b, 0, sizeof *b);
}

/* The model's input with batch BATCH (other free dims 4 as well), and the loss target. */
static bool batch_make(amp_model *m, batch *b) {
    memset(b, 0, sizeof *b);
    amp_value_info vi = {.struct_size = sizeof vi}, vo = {.struct_size = sizeof vo};
    if (amp_model_input_info(m, 0, &vi) || amp_model_output_info(m, 0, &vo)) return false;
    b->in_name = vi.name;
    int64_t d[AMP_MAX_RANK];
    for (int i = 0; i < vi.rank; i++) d[i] = vi.dims[i] > 0 ? vi.dims[i] : BATCH;
    d[0] = BATCH;
    b->x = vi.dtype == AMP_I64 ? seeded(AMP_I64, vi.rank, d, 0, 100, 3) : seeded(AMP_F32, vi.rank, d, -1, 1, 3);
    b->mse = vo.rank > 2;
    if (b->mse) {
        int64_t od[AMP_MAX_RANK];
        for (int i = 0; i < vo.rank; i++) od[i] = vo.dims[i] > 0 ? vo.dims[i] : i < vi.rank ? d[i] : BATCH;
        od[0] = BATCH;
        b->y = seeded(AMP_F32, vo.rank, od, -0.5, 0.5, 4);
    } else {
        int64_t n = BATCH;
        b->y = seeded(AMP_I64, 1, &n, 0, 10, 5);
    }
    return b->x && b->y;
}

/* ---- inference ------------------------------------------------------------------------------ */

/* fusion: as amp_session_options.fusion (0 the backend's choice, -1 none, 1 all) */
static amp_session *session_on(amp_model *m, const char *backend, int fusion) {
    amp_session_options o = {.struct_size = sizeof o, .backend = backend, .threads = 2, .fusion = fusion};
    amp_session *s = NULL;
    if (amp_session_create(m, &o, &s)) {
        fprintf(stderr, "  session on %s: %s\n", backend, amp_context_last_error(g_ctx));
        return NULL;
    }
    if (strcmp(amp_session_backend(s), backend) != 0) {
        fprintf(stderr, "  session asked for %s runs on %s (%s)\n", backend, amp_session_backend(s),
                amp_session_backend_note(s));
        amp_session_destroy(s);
        return NULL;
    }
    return s;
}

static amp_tensor *run_on(amp_session *s, amp_model *m, const batch *b) {
    amp_value_info vo = {.struct_size = sizeof vo};
    amp_model_output_info(m, 0, &vo);
    const char *on = vo.name;
    amp_tensor *out = NULL;
    if (amp_session_run(s, 1, &b->in_name, (const amp_tensor *const *)&b->x, 1, &on, &out)) {
        fprintf(stderr, "  run: %s\n", amp_session_last_error(s));
        return NULL;
    }
    return out;
}

/* relative L2 of a against ref (f32 outputs), +inf on a NaN or an infinity */
static double out_rel_l2(amp_tensor *a, amp_tensor *ref) {
    if (amp_tensor_dtype(a) != AMP_F32 || amp_tensor_nbytes(a) != amp_tensor_nbytes(ref)) return INFINITY;
    const float *x = amp_tensor_data(a), *y = amp_tensor_data(ref);
    double num = 0, den = 0;
    for (int64_t i = 0; i < amp_tensor_numel(a); i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) return INFINITY;
        num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        den += (double)y[i] * y[i];
    }
    return den > 0 ? sqrt(num / den) : INFINITY; /* an all-zero reference proves nothing */
}

/* ---- training ------------------------------------------------------------------------------- */

static amp_trainer *trainer_on(amp_model *m, const char *backend, amp_train_precision p, bool mse, int fusion) {
    amp_trainer_options o = {.struct_size = sizeof o, .backend = backend, .precision = p, .optimizer = AMP_OPTIM_SGD,
                             .lr = 0.01, .threads = 2, .loss = mse ? AMP_LOSS_MSE : AMP_LOSS_CROSS_ENTROPY,
                             .fusion = fusion};
    amp_trainer *t = NULL;
    if (amp_trainer_create(m, &o, &t)) {
        fprintf(stderr, "  trainer on %s: %s\n", backend, amp_context_last_error(g_ctx));
        return NULL;
    }
    const char *note = NULL;
    const char *on = amp_trainer_backend(t, &note);
    if (!on || strcmp(on, backend) != 0) {
        fprintf(stderr, "  trainer asked for %s runs on %s (%s)\n", backend, on ? on : "?", note ? note : "?");
        amp_trainer_destroy(t);
        return NULL;
    }
    return t;
}

static const char *prec_name(amp_train_precision p) {
    return p == AMP_TRAIN_FP32 ? "fp32" : p == AMP_TRAIN_FP16 ? "fp16" : "bf16";
}
static double prec_tol(amp_train_precision p) { return p == AMP_TRAIN_FP32 ? 1e-4 : p == AMP_TRAIN_FP16 ? 2e-3 : 1e-2; }

/* Both losses NaN (a skipped FP16 step of the overflow model reports its NaN loss) counts as
 * agreeing; the skip counts are compared separately. */
static double loss_diff(double a, double ref) {
    if (isnan(a) && isnan(ref)) return 0;
    if (!isfinite(a) || !isfinite(ref)) return INFINITY;
    return fabs(a - ref) / fmax(fabs(ref), 1e-30);
}

static void model_case(const char *name) {
    amp_model *m = load(name);
    CT_CHECK(m, "%s: load", name);
    batch b;
    bool ok = batch_make(m, &b);
    if (!ok) amp_model_destroy(m);
    CT_CHECK(ok, "%s: inputs", name);

    /* inference: the CPU unfused is the reference for the CPU with every fusion (the fused ops'
     * reference kernels), CUDA as it runs by default (fused) and CUDA unfused */
    static const struct {
        const char *backend;
        int fusion;
        const char *what;
    } runs[] = {{"cpu", 1, "CPU fused"}, {"cuda", 0, "CUDA"}, {"cuda", -1, "CUDA unfused"}};
    amp_session *sc = session_on(m, "cpu", -1);
    amp_tensor *oc = sc ? run_on(sc, m, &b) : NULL;
    amp_session_destroy(sc);
    double e = 0;
    for (int r = 0; r < 3; r++) {
        fused_log_reset();
        amp_session *so = session_on(m, runs[r].backend, runs[r].fusion);
        amp_tensor *oo = so && oc ? run_on(so, m, &b) : NULL;
        double er = oo ? out_rel_l2(oo, oc) : INFINITY;
        printf("  %s inference, %s: output rel L2 %.3g%s%s\n", name, runs[r].what, er, g_fused[0] ? "; " : "", g_fused);
        amp_tensor_destroy(oo);
        amp_session_destroy(so);
        if (!(er <= e)) e = er;
    }
    amp_tensor_destroy(oc);
    if (!(e <= 1e-5)) {
        batch_free(&b);
        amp_model_destroy(m);
    }
    CT_CHECK(e <= 1e-5, "%s: inference is %g from the CPU's (tolerance 1e-5)", name, e);

    /* training */
    const amp_train_precision precs[] = {AMP_TRAIN_FP32, AMP_TRAIN_FP16, AMP_TRAIN_BF16};
    for (int pi = 0; pi < 3; pi++) {
        amp_train_precision p = precs[pi];
        /* the CPU unfused, the CPU with every fusion, CUDA as it runs (fused) */
        fused_log_reset();
        amp_trainer *tc = trainer_on(m, "cpu", p, b.mse, -1), *tf = trainer_on(m, "cpu", p, b.mse, 1);
        char fused_cpu[256];
        snprintf(fused_cpu, sizeof fused_cpu, "%s", g_fused);
        fused_log_reset();
        amp_trainer *tg = trainer_on(m, "cuda", p, b.mse, 0);
        double worst = 0, worst_f = 0, first = NAN, last = NAN;
        int worst_at = 0, failed = !(tc && tg && tf);
        for (int i = 0; i < STEPS && !failed; i++) {
            double lc = NAN, lg = NAN, lf = NAN;
            if (amp_trainer_step(tc, 1, &b.in_name, (const amp_tensor *const *)&b.x, b.y, &lc)) {
                fprintf(stderr, "  cpu step %d: %s\n", i, amp_trainer_last_error(tc));
                failed = i + 1;
            } else if (amp_trainer_step(tg, 1, &b.in_name, (const amp_tensor *const *)&b.x, b.y, &lg)) {
                fprintf(stderr, "  cuda step %d: %s\n", i, amp_trainer_last_error(tg));
                failed = i + 1;
            } else if (amp_trainer_step(tf, 1, &b.in_name, (const amp_tensor *const *)&b.x, b.y, &lf)) {
                fprintf(stderr, "  cpu fused step %d: %s\n", i, amp_trainer_last_error(tf));
                failed = i + 1;
            }
            double d = loss_diff(lg, lc), df = loss_diff(lf, lc);
            if (!(d <= worst)) {
                worst = d;
                worst_at = i;
            }
            if (!(df <= worst_f)) worst_f = df;
            if (i == 0) first = lc;
            last = lc;
        }
        /* one more step on each, the CUDA one counted: a steady step allocates nothing, waits for
         * the device once (its loss), and enqueues this much work (emulator only) */
        unsigned long long a0 = 0, s0 = 0, a1 = 0, s1 = 0, r0[4] = {0}, r1[4] = {0};
        int counted = 0;
        if (!failed) {
            double lc = NAN, lg = NAN;
            counted = call_counts(&a0, &s0) && ran_counts(r0);
            if (amp_trainer_step(tg, 1, &b.in_name, (const amp_tensor *const *)&b.x, b.y, &lg) ||
                amp_trainer_step(tc, 1, &b.in_name, (const amp_tensor *const *)&b.x, b.y, &lc))
                failed = STEPS + 1;
            call_counts(&a1, &s1);
            ran_counts(r1);
            double d = loss_diff(lg, lc);
            if (!(d <= worst)) {
                worst = d;
                worst_at = STEPS;
            }
            last = lc;
        }
        if (counted)
            printf("  %s %s: a steady step: %llu allocations, %llu waits; %llu kernels, %llu library calls, %llu "
                   "copies, %llu memsets\n",
                   name, prec_name(p), a1 - a0, s1 - s0, r1[0] - r0[0], r1[1] - r0[1], r1[2] - r0[2], r1[3] - r0[3]);
        /* the same step on CUDA unfused, counted the same way: the launches fusion saves */
        if (counted && !failed) {
            amp_trainer *tu = trainer_on(m, "cuda", p, b.mse, -1);
            double lu = NAN;
            unsigned long long u0[4] = {0}, u1[4] = {0};
            bool stepped = tu && !amp_trainer_step(tu, 1, &b.in_name, (const amp_tensor *const *)&b.x, b.y, &lu) &&
                      ran_counts(u0) && !amp_trainer_step(tu, 1, &b.in_name, (const amp_tensor *const *)&b.x, b.y, &lu);
            if (stepped && ran_counts(u1))
                printf("  %s %s: unfused, a steady step enqueues %llu kernels, %llu library calls, %llu copies, %llu "
                       "memsets\n",
                       name, prec_name(p), u1[0] - u0[0], u1[1] - u0[1], u1[2] - u0[2], u1[3] - u0[3]);
            amp_trainer_destroy(tu);
        }
        printf("  %s %s: CPU fused worst loss difference %.3g; CPU: %s; CUDA: %s\n", name, prec_name(p), worst_f,
               fused_cpu[0] ? fused_cpu : "nothing fused", g_fused[0] ? g_fused : "nothing fused");
        amp_trainer_destroy(tf);
        if (!(worst_f <= prec_tol(p))) {
            amp_trainer_destroy(tc);
            amp_trainer_destroy(tg);
            batch_free(&b);
            amp_model_destroy(m);
        }
        CT_CHECK(worst_f <= prec_tol(p), "%s %s: the fused CPU step's losses differ by %.3g (tolerance %.3g)", name,
                 prec_name(p), worst_f, prec_tol(p));
        amp_trainer_state stc = {.struct_size = sizeof stc}, stg = {.struct_size = sizeof stg};
        int identical = 0;
        double pd = -1;
        if (!failed) {
            amp_trainer_get_state(tc, &stc);
            amp_trainer_get_state(tg, &stg);
            pd = param_distance(tg, tc, &identical);
        }
        amp_trainer_destroy(tc);
        amp_trainer_destroy(tg);
        double tol = prec_tol(p);
        bool steady = !counted || (a1 == a0 && s1 - s0 <= 1);
        bool good = !failed && worst <= tol && pd >= 0 && pd <= tol && stc.steps_skipped == stg.steps_skipped &&
                    stc.loss_scale == stg.loss_scale && steady;
        printf("  %s %s: worst loss difference %.3g (step %d), parameters rel L2 %.3g, %lld of %d steps skipped; "
               "loss %.5g -> %.5g\n",
               name, prec_name(p), worst, worst_at, pd, (long long)stg.steps_skipped, STEPS + 1, first, last);
        if (!good) {
            batch_free(&b);
            amp_model_destroy(m);
        }
        CT_CHECK(!failed, "%s %s: trainers or step %d failed", name, prec_name(p), failed - 1);
        CT_CHECK(worst <= tol, "%s %s: losses differ by %.3g at step %d (tolerance %.3g)", name, prec_name(p), worst,
                 worst_at, tol);
        CT_CHECK(pd >= 0 && pd <= tol, "%s %s: parameters differ by %.3g (tolerance %.3g)", name, prec_name(p), pd,
                 tol);
        CT_CHECK(stc.steps_skipped == stg.steps_skipped && stc.loss_scale == stg.loss_scale,
                 "%s %s: skipped %lld vs %lld, loss scale %g vs %g", name, prec_name(p), (long long)stg.steps_skipped,
                 (long long)stc.steps_skipped, stg.loss_scale, stc.loss_scale);
        CT_CHECK(steady, "%s %s: a steady step made %llu allocations and waited %llu times", name, prec_name(p),
                 a1 - a0, s1 - s0);
    }
    batch_free(&b);
    amp_model_destroy(m);
}

static void t_lenet(void) { model_case("lenet"); }
static void t_mlp(void) { model_case("mlp"); }
static void t_mlp_decomposed(void) { model_case("mlp_decomposed"); }
static void t_overflow(void) { model_case("overflow"); }
static void t_resnet(void) { model_case("resnet"); }
static void t_mobilenetv2(void) { model_case("mobilenetv2"); }
static void t_unet(void) { model_case("unet"); }
static void t_encoder(void) { model_case("encoder"); }
static void t_gpt_block(void) { model_case("gpt_block"); }
static void t_lstm_tagger(void) { model_case("lstm_tagger"); }
static void t_detector(void) { model_case("detector"); }

static const ct_case cases[] = {
    {"lenet", t_lenet},         {"mlp", t_mlp},         {"mlp_decomposed", t_mlp_decomposed},
    {"overflow", t_overflow},   {"resnet", t_resnet},   {"mobilenetv2", t_mobilenetv2},
    {"unet", t_unet},           {"encoder", t_encoder}, {"gpt_block", t_gpt_block},
    {"lstm_tagger", t_lstm_tagger}, {"detector", t_detector}, {NULL, NULL},
};

int main(int argc, char **argv) {
    int rc = ct_main(argc, argv, cases);
    amp_context_destroy(g_ctx);
    return rc;
}
