/* LeNet training on the CUDA backend beside the CPU backend, through the public API: the
 * trainer opens the CUDA module ($AMPRT_CUDA_MODULE: the emulated one in this build, the real
 * one on a GPU machine).
 *
 *   - 200 steps of real Fashion-MNIST batches in FP32, FP16 AMP and BF16 AMP: the losses agree
 *     step by step and the parameters at the end, within each precision's tolerance;
 *   - a forced overflow (a loss scale no FP16 gradient survives) skips the step on the device
 *     and halves the scale exactly as on the CPU, leaving every parameter as it was;
 *   - CUDA graphs on and off give bit-identical parameters;
 *   - checkpoint and resume on CUDA continue bit-identically;
 *   - in steady state a step allocates nothing and waits for the device once (to read its
 *     loss), every async copy through pinned staging;
 *   - out of device memory is AMP_ERR_NO_MEMORY naming cudaMalloc, leaks no device memory, and
 *     the trainer steps once memory is there.
 *
 * Tolerances. The CUDA side computes the same formulas in another order (cuDNN's and cuBLASLt's
 * accumulation against the CPU's im2col and OpenBLAS), so the runs start a rounding apart and
 * SGD lets that grow. Measured on the emulator over 200 steps (plain SGD at lr 0.01): worst
 * relative loss difference 1.0e-4 (fp32), 1.1e-4 (fp16), 5.6e-4 (bf16); parameters 1.2e-4,
 * 2.4e-4, 7.3e-4 relative L2. The bounds are about ten times that, for a GPU's other engines:
 * 1e-3 (fp32), 2e-3 (fp16), 5e-3 (bf16), for both. */
#define _POSIX_C_SOURCE 200809L /* setenv, mkstemp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(AMP_CUDA_EMULATED)
#include <dlfcn.h>
#endif

#include "amprt/amprt.h"
#include "runtime/data.h"
#include "tests/cuda/cuda_test.h"
#include "tests/cuda/cuda_train.h"

#define BATCH 64
static int STEPS = 200; /* AMP_LENET_STEPS overrides (diagnosis) */

static amp_context *g_ctx;
static amp_model *g_model;
static amp_image_dataset *g_data;
/* the parity runs' SGD: plain, at a rate where training learns steadily; with momentum 0.9 at
 * 0.05 the two runs' rounding differences grow by 1e3 within ten steps around step 25 (a ReLU or
 * max-pool choice flips), which measures the optimizer's chaos rather than the backend
 * (AMP_LENET_LR and AMP_LENET_MOMENTUM override, for such measurements) */
static double g_lr = 0.01, g_momentum = 0;

static const char *data_dir(void) {
    const char *d = getenv("AMP_FASHION_MNIST");
    return d && d[0] ? d : "/usr/share/datasets/fashion-mnist";
}

/* batch i of the training set (wrapped views, no copy) */
static void batch(int i, amp_tensor **x, amp_tensor **y) {
    int64_t n = g_data->images->dims[0];
    int64_t first = ((int64_t)i * BATCH) % (n - BATCH);
    int64_t xd[4] = {BATCH, 1, g_data->images->dims[2], g_data->images->dims[3]}, yd[1] = {BATCH};
    size_t img = (size_t)(xd[2] * xd[3]);
    amp_tensor_wrap(g_ctx, AMP_F32, 4, xd, (float *)g_data->images->data + (size_t)first * img,
                    sizeof(float) * img * BATCH, x);
    amp_tensor_wrap(g_ctx, AMP_I64, 1, yd, (int64_t *)g_data->labels->data + first, sizeof(int64_t) * BATCH, y);
}

static amp_trainer *make_with(const char *backend, amp_train_precision p, double init_scale, double lr,
                              double momentum) {
    amp_trainer_options o = {.struct_size = sizeof o, .backend = backend, .precision = p, .lr = lr,
                             .momentum = momentum, .threads = 2, .init_loss_scale = init_scale};
    amp_trainer *t = NULL;
    if (amp_trainer_create(g_model, &o, &t)) {
        fprintf(stderr, "  trainer on %s: %s\n", backend, amp_context_last_error(g_ctx));
        return NULL;
    }
    const char *note = NULL;
    const char *on = amp_trainer_backend(t, &note);
    if (!on || strcmp(on, backend) != 0 || strcmp(note, "as asked") != 0) {
        fprintf(stderr, "  trainer asked for %s runs on %s (%s)\n", backend, on ? on : "?", note ? note : "?");
        amp_trainer_destroy(t);
        return NULL;
    }
    return t;
}

/* the trainers of the overflow, graph and resume cases: SGD with momentum */
static amp_trainer *make(const char *backend, amp_train_precision p, double init_scale) {
    return make_with(backend, p, init_scale, 0.05, 0.9);
}

/* one step on batch i; the loss, or NaN on failure (with the message printed) */
static double step(amp_trainer *t, int i) {
    amp_tensor *x, *y;
    batch(i, &x, &y);
    const char *in = "input";
    amp_value_info vi = {.struct_size = sizeof vi};
    if (amp_model_input_info(g_model, 0, &vi) == AMP_OK) in = vi.name;
    double loss = NAN;
    amp_status s = amp_trainer_step(t, 1, &in, (const amp_tensor *const *)&x, y, &loss);
    if (s) {
        fprintf(stderr, "  step %d: %s\n", i, amp_trainer_last_error(t));
        loss = NAN;
    }
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    return loss;
}

/* steps from..to-1 on t, all finite */
static int steps_ok(amp_trainer *t, int from, int to) {
    for (int i = from; i < to; i++) {
        double l = step(t, i);
        if (!(l == l)) return 0;
    }
    return 1;
}

static void parity(amp_train_precision p, const char *name, double loss_tol, double param_tol) {
    amp_trainer *cpu = make_with("cpu", p, 0, g_lr, g_momentum), *cu = make_with("cuda", p, 0, g_lr, g_momentum);
    int ok = cpu && cu;
    if (!ok) {
        amp_trainer_destroy(cpu);
        amp_trainer_destroy(cu);
    }
    CT_CHECK(ok, "%s: trainers", name);
    double worst = 0, first_loss = 0, last_loss = 0;
    int worst_at = -1, failed = 0;
    for (int i = 0; i < STEPS && !failed; i++) {
        double lc = step(cpu, i), lg = step(cu, i);
        if (!(lc == lc) || !(lg == lg)) {
            failed = i + 1;
            break;
        }
        double rel = fabs(lg - lc) / fabs(lc);
        if (getenv("AMP_LENET_VERBOSE")) printf("  %s step %d: cpu %.9g cuda %.9g rel %.3g\n", name, i, lc, lg, rel);
        if (rel > worst) {
            worst = rel;
            worst_at = i;
        }
        if (i == 0) first_loss = lc;
        last_loss = lc;
    }
    int identical = 0;
    double pd = failed ? -1 : param_distance(cu, cpu, &identical);
    amp_trainer_destroy(cpu);
    amp_trainer_destroy(cu);
    printf("  %s: worst loss difference %.3g (step %d), parameters rel L2 %.3g; loss %.4f -> %.4f\n", name, worst,
           worst_at, pd, first_loss, last_loss);
    CT_CHECK(!failed, "%s: step %d failed or gave NaN", name, failed - 1);
    /* 200 steps at lr 0.01 take the loss from 2.30 to about 1.2; the 30 of a sanitizer build to
     * about 2.27 */
    double learn = STEPS >= 200 ? 0.8 : 0.995;
    CT_CHECK(last_loss < learn * first_loss, "%s: training did not learn in %d steps (%.4f -> %.4f)", name, STEPS,
             first_loss, last_loss);
    CT_CHECK(worst <= loss_tol, "%s: losses differ by %.3g at step %d (tolerance %.3g)", name, worst, worst_at,
             loss_tol);
    CT_CHECK(pd >= 0 && pd <= param_tol, "%s: parameters differ by %.3g (tolerance %.3g)", name, pd, param_tol);
}

static void t_fp32(void) { parity(AMP_TRAIN_FP32, "fp32", 1e-3, 1e-3); }
static void t_fp16(void) { parity(AMP_TRAIN_FP16, "fp16", 2e-3, 2e-3); }
static void t_bf16(void) { parity(AMP_TRAIN_BF16, "bf16", 5e-3, 5e-3); }

/* A loss scale of 2^100: every FP16 gradient overflows, so the first steps are skipped on both
 * backends, each halving the scale; the parameters stay as they were. */
static void t_overflow(void) {
    const double scale0 = 1267650600228229401496703205376.0; /* 2^100 */
    amp_trainer *cpu = make("cpu", AMP_TRAIN_FP16, scale0), *cu = make("cuda", AMP_TRAIN_FP16, scale0);
    amp_trainer *fresh = make("cpu", AMP_TRAIN_FP16, scale0);
    int ok = cpu && cu && fresh;
    /* every loss is finite (the unscaled loss is computed in FP32); the gradients are not */
    if (ok) ok = steps_ok(cpu, 0, 3) && steps_ok(cu, 0, 3);
    amp_trainer_state sc = {.struct_size = sizeof sc}, sg = {.struct_size = sizeof sg};
    if (ok) ok = !amp_trainer_get_state(cpu, &sc) && !amp_trainer_get_state(cu, &sg);
    int same_params = 0;
    if (ok) param_distance(cu, fresh, &same_params);
    amp_trainer_destroy(cpu);
    amp_trainer_destroy(cu);
    amp_trainer_destroy(fresh);
    CT_CHECK(ok, "overflow: trainers and steps");
    printf("  overflow: cpu skipped %lld, scale %g; cuda skipped %lld, scale %g\n", (long long)sc.steps_skipped,
           sc.loss_scale, (long long)sg.steps_skipped, sg.loss_scale);
    CT_CHECK(sc.steps_skipped == 3 && sg.steps_skipped == 3, "every step skipped (cpu %lld, cuda %lld)",
             (long long)sc.steps_skipped, (long long)sg.steps_skipped);
    CT_CHECK(sg.loss_scale == scale0 / 8 && sc.loss_scale == sg.loss_scale, "the scale halves each time (%g, %g)",
             sc.loss_scale, sg.loss_scale);
    CT_CHECK(same_params, "a skipped step leaves the parameters as they were");
}

/* the emulated device's memory limit (returns the old one; 0 where it cannot be set) */
static size_t set_device_limit(size_t bytes) {
    size_t (*fn)(size_t);
    void *sym = emu_fn("amp_emu_set_device_limit");
    memcpy(&fn, &sym, sizeof fn);
    return fn ? fn(bytes) : 0;
}

/* live device regions; -1 where that cannot be asked */
static long long device_regions(void) {
    size_t (*fn)(void);
    void *sym = emu_fn("amp_emu_device_regions");
    memcpy(&fn, &sym, sizeof fn);
    return fn ? (long long)fn() : -1;
}

/* device bytes in use; 0 where that cannot be asked */
static size_t device_bytes(void) {
    size_t (*fn)(void);
    void *sym = emu_fn("amp_emu_device_bytes");
    memcpy(&fn, &sym, sizeof fn);
    return fn ? fn() : 0;
}

/* async copies must have pinned host memory (returns the old setting) */
static bool set_pinned_only(bool on) {
    bool (*fn)(bool);
    void *sym = emu_fn("amp_emu_set_pinned_only");
    memcpy(&fn, &sym, sizeof fn);
    return fn ? fn(on) : false;
}

/* In steady state a step allocates nothing and waits for the device only to read its loss:
 * graphs on and off, FP16 AMP (loss scaling and the on-device skip included) */
static void t_steady(void) {
    unsigned long long work[2][4] = {{0}};
    for (int graphs = 1; graphs >= 0; graphs--) {
        setenv("AMPRT_CUDA_GRAPHS", graphs ? "1" : "0", 1);
        amp_trainer *t = make("cuda", AMP_TRAIN_FP16, 0);
        unsetenv("AMPRT_CUDA_GRAPHS");
        CT_CHECK(t != NULL, "a trainer");
        /* every async copy of a step goes through pinned staging (the emulator refuses others) */
        bool was = set_pinned_only(true);
        int ok = steps_ok(t, 0, 3); /* eager, captured, replayed */
        unsigned long long a0 = 0, s0 = 0, a1 = 0, s1 = 0, r0[4] = {0}, r1[4] = {0};
        int counted = call_counts(&a0, &s0);
        ran_counts(r0);
        if (ok) ok = steps_ok(t, 3, 13);
        call_counts(&a1, &s1);
        ran_counts(r1);
        for (int j = 0; j < 4; j++) work[graphs][j] = r1[j] - r0[j];
        set_pinned_only(was);
        amp_trainer_destroy(t);
        CT_CHECK(ok, "steady: 13 steps");
        if (!counted) CT_SKIP("the runtime's calls cannot be counted here (a real GPU)");
        printf("  steady, graphs %s: %llu allocations and %llu waits in 10 steps\n", graphs ? "on" : "off", a1 - a0,
               s1 - s0);
        CT_CHECK(a1 == a0, "steady: %llu allocations in 10 steps", a1 - a0);
        CT_CHECK(s1 - s0 <= 10, "steady: %llu waits for the device in 10 steps (one each to read the loss)",
                 s1 - s0);
        printf("  steady, graphs %s: per step %.1f kernels, %.1f cuBLASLt/cuDNN calls, %.1f copies, %.1f memsets "
               "(the emulator's workspace poison)\n",
               graphs ? "on" : "off", (double)work[graphs][0] / 10.0, (double)work[graphs][1] / 10.0,
               (double)work[graphs][2] / 10.0, (double)work[graphs][3] / 10.0);
    }
    /* a replayed graph does the work an eager step does, no more and no less */
    CT_CHECK(memcmp(work[0], work[1], sizeof work[0]) == 0 && work[0][0] > 0,
             "steady: graphs on ran %llu/%llu/%llu/%llu, off %llu/%llu/%llu/%llu (kernels/library/copies/memsets in 10 "
             "steps)",
             work[1][0], work[1][1], work[1][2], work[1][3], work[0][0], work[0][1], work[0][2], work[0][3]);
}

/* Out of device memory: AMP_ERR_NO_MEMORY with a message, nothing leaked, and the same trainer
 * trains once memory is there */
static void t_out_of_memory(void) {
    amp_trainer_destroy(make("cuda", AMP_TRAIN_FP16, 0)); /* the module loaded, to be asked */
    long long regions = device_regions();
    if (regions < 0) CT_SKIP("the device memory cannot be limited here (a real GPU)");
    /* the weights and optimizer state (3.4 MB) go up when the trainer is created */
    size_t old = set_device_limit(1u << 20);
    amp_trainer_options o = {.struct_size = sizeof o, .backend = "cuda", .precision = AMP_TRAIN_FP16};
    amp_trainer *t = NULL;
    amp_status sc = amp_trainer_create(g_model, &o, &t);
    char cmsg[512];
    snprintf(cmsg, sizeof cmsg, "%s", amp_context_last_error(g_ctx));
    long long after_create = device_regions();
    set_device_limit(old);
    if (t) amp_trainer_destroy(t);
    CT_CHECK(sc == AMP_ERR_NO_MEMORY && t == NULL, "a trainer too big for the device: %s (%s)", amp_status_name(sc),
             cmsg);
    CT_CHECK(strstr(cmsg, "cudaMalloc") && strstr(cmsg, "weights and state"), "the message says what: %s", cmsg);
    CT_CHECK(after_create == regions, "device regions: %lld before, %lld after the failed creation", regions,
             after_create);
    /* the arena goes up at the first step: a step that does not fit fails, and the next runs */
    t = make("cuda", AMP_TRAIN_FP16, 0);
    CT_CHECK(t != NULL, "a trainer");
    old = set_device_limit(device_bytes() + (64u << 10)); /* the arena is ~3 MB */
    amp_tensor *x, *y;
    batch(0, &x, &y);
    amp_value_info vi = {.struct_size = sizeof vi};
    amp_model_input_info(g_model, 0, &vi);
    const char *in = vi.name;
    double loss = 0;
    amp_status s = amp_trainer_step(t, 1, &in, (const amp_tensor *const *)&x, y, &loss);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", amp_trainer_last_error(t));
    set_device_limit(old);
    amp_status s2 = amp_trainer_step(t, 1, &in, (const amp_tensor *const *)&x, y, &loss);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_trainer_destroy(t);
    CT_CHECK(s == AMP_ERR_NO_MEMORY, "out of device memory: %s (%s)", amp_status_name(s), msg);
    CT_CHECK(strstr(msg, "cudaMalloc") != NULL, "the message names the call: %s", msg);
    CT_CHECK(s2 == AMP_OK && loss > 0 && loss < 10, "with memory again the step runs: %s, loss %g",
             amp_status_name(s2), loss);
    CT_CHECK(device_regions() == regions, "device regions: %lld before the trainer, %lld after", regions,
             device_regions());
}

/* the same 30 steps with CUDA graphs and without: the same bits */
static void t_graphs(void) {
    setenv("AMPRT_CUDA_GRAPHS", "1", 1);
    amp_trainer *g = make("cuda", AMP_TRAIN_FP16, 0);
    setenv("AMPRT_CUDA_GRAPHS", "0", 1);
    amp_trainer *e = make("cuda", AMP_TRAIN_FP16, 0);
    unsetenv("AMPRT_CUDA_GRAPHS");
    int ok = g && e;
    long long launched = 0, eager = 0;
    for (int i = 0; ok && i < 30; i++) {
        long long l0 = graph_launches();
        double a = step(g, i);
        long long l1 = graph_launches();
        double b = step(e, i);
        long long l2 = graph_launches();
        launched += l1 - l0;
        eager += l2 - l1;
        ok = a == b;
        if (!ok) fprintf(stderr, "  step %d: loss %.9g with graphs, %.9g without\n", i, a, b);
    }
    printf("  graphs: %lld graph launches in the 30 steps with graphs, %lld without\n", launched, eager);
    int identical = 0;
    if (ok) ok = param_distance(g, e, &identical) >= 0;
    amp_trainer_destroy(g);
    amp_trainer_destroy(e);
    CT_CHECK(ok, "graphs: every loss the same");
    /* the first step is eager, the second captured and launched, the rest replayed */
    CT_CHECK(graph_launches() < 0 || (launched == 29 && eager == 0), "graphs: %lld launches with graphs, %lld without",
             launched, eager);
    CT_CHECK(identical, "graphs: the parameters are bit-identical");
}

/* 20 steps, a checkpoint, 20 more; against a trainer resumed from the checkpoint */
static void t_resume(void) {
    char path[] = "/tmp/amp_lenet_ckpt_XXXXXX";
    int fd = mkstemp(path);
    CT_CHECK(fd >= 0, "a temporary file");
    close(fd);
    amp_trainer *a = make("cuda", AMP_TRAIN_FP16, 0), *b = make("cuda", AMP_TRAIN_FP16, 0);
    int ok = a && b;
    if (ok) ok = steps_ok(a, 0, 20) && amp_trainer_save_checkpoint(a, path, 20, 0) == AMP_OK && steps_ok(a, 20, 40);
    int64_t ua = 0, ub = 0;
    if (ok) ok = amp_trainer_load_checkpoint(b, path, &ua, &ub) == AMP_OK && ua == 20 && steps_ok(b, 20, 40);
    int identical = 0;
    if (ok) ok = param_distance(a, b, &identical) >= 0;
    amp_trainer_state sa = {.struct_size = sizeof sa}, sb = {.struct_size = sizeof sb};
    if (ok) ok = !amp_trainer_get_state(a, &sa) && !amp_trainer_get_state(b, &sb);
    amp_trainer_destroy(a);
    amp_trainer_destroy(b);
    remove(path);
    CT_CHECK(ok, "resume: steps, checkpoint and load");
    CT_CHECK(identical, "resume: the parameters are bit-identical");
    CT_CHECK(sa.loss_scale == sb.loss_scale && sa.last_loss == sb.last_loss, "resume: the same state");
}

static const ct_case cases[] = {{"fp32", t_fp32},       {"fp16", t_fp16},     {"bf16", t_bf16},
                                {"overflow", t_overflow}, {"graphs", t_graphs}, {"resume", t_resume},
                                {"steady", t_steady},     {"out_of_memory", t_out_of_memory},
                                {NULL, NULL}};

int main(int argc, char **argv) {
    if (!ct_have_device()) return ct_main(argc, argv, cases);
    if (getenv("AMP_LENET_STEPS")) STEPS = atoi(getenv("AMP_LENET_STEPS"));
    if (getenv("AMP_LENET_LR")) g_lr = atof(getenv("AMP_LENET_LR"));
    if (getenv("AMP_LENET_MOMENTUM")) g_momentum = atof(getenv("AMP_LENET_MOMENTUM"));
    if (amp_context_create(NULL, &g_ctx)) return 1;
    const char *src = getenv("AMP_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/lenet/model.onnx", src ? src : ".");
    amp_dataset_options dopt = {.struct_size = sizeof dopt};
    if (amp_model_load(g_ctx, path, &g_model) ||
        amp_image_dataset_load_dir(g_ctx, data_dir(), AMP_SPLIT_TRAIN, &dopt, &g_data)) {
        fprintf(stderr, "setup: %s\n", amp_context_last_error(g_ctx));
        return 1;
    }
    int rc = ct_main(argc, argv, cases);
    amp_image_dataset_destroy(g_data);
    amp_model_destroy(g_model);
    amp_context_destroy(g_ctx);
    return rc;
}
