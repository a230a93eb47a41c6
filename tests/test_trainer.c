#define _POSIX_C_SOURCE 200809L
/* The trainer end to end: losses fall in every precision, FP16 AMP follows FP32, the loss
 * scaler's rules (AUTOCAST.md case 13), checkpoints resume bit-identically, exports reload, bad
 * options and files fail cleanly. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "tests/testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(trainer, .init = setup, .fini = teardown, .timeout = 600);

static amp_model *load(const char *rel) { return tt_load(ctx, rel); }

/* A fixed batch: inputs of the model's shape with batch n, labels in 0..9. */
static void batch(amp_model *m, int64_t n, uint64_t seed, amp_tensor **x, amp_tensor **y) {
    amp_value_info vi = {.struct_size = sizeof vi};
    amp_model_input_info(m, 0, &vi);
    int64_t dims[AMP_MAX_RANK];
    for (int d = 0; d < vi.rank; d++) dims[d] = vi.dims[d] > 0 ? vi.dims[d] : n;
    dims[0] = n;
    if (vi.dtype == AMP_I64) {
        /* token ids in 0..99 */
        amp_tensor *u = tt_rand(ctx, AMP_F64, vi.rank, dims, 0.0, 100.0, seed);
        double v[4096];
        for (int64_t i = 0; i < u->numel && i < 4096; i++) v[i] = floor(tt_get(u, i));
        *x = tt_make(ctx, AMP_I64, vi.rank, dims, v);
        amp_tensor_destroy(u);
    } else {
        *x = tt_rand(ctx, AMP_F32, vi.rank, dims, -1.0, 1.0, seed);
    }
    int64_t ld[1] = {n};
    double lab[256];
    for (int64_t i = 0; i < n; i++) lab[i] = (double)((i * 7 + (int64_t)seed) % 10);
    *y = tt_make(ctx, AMP_I64, 1, ld, lab);
}

static amp_trainer *make(amp_model *m, amp_train_precision p, amp_optimizer opt, double lr) {
    amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .precision = p, .optimizer = opt, .lr = lr, .momentum = 0.9,
                             .threads = 2};
    if (opt == AMP_OPTIM_ADAMW) o.momentum = 0;
    amp_trainer *t = NULL;
    amp_status s = amp_trainer_create(m, &o, &t);
    cr_assert_eq(s, AMP_OK, "trainer: %s", amp_context_last_error(ctx));
    return t;
}

static double step(amp_trainer *t, amp_model *m, const amp_tensor *x, const amp_tensor *y) {
    amp_value_info vi = {.struct_size = sizeof vi};
    amp_model_input_info(m, 0, &vi);
    const char *name = vi.name;
    double loss = NAN;
    amp_status s = amp_trainer_step(t, 1, &name, &x, y, &loss);
    cr_assert_eq(s, AMP_OK, "step: %s", amp_trainer_last_error(t));
    return loss;
}

/* Outputs of rank > 2 (per pixel, per position) train with MSE toward a fixed target of the
 * output's shape: the input itself when the shapes match (image to image), else seeded noise. */
static amp_tensor *mse_target(amp_model *m, const amp_tensor *x) {
    amp_value_info vo = {.struct_size = sizeof vo};
    amp_model_output_info(m, 0, &vo);
    int64_t dims[AMP_MAX_RANK];
    bool same = vo.rank == x->rank;
    for (int d = 0; d < vo.rank; d++) {
        dims[d] = d == 0 ? x->dims[0] : vo.dims[d];
        same = same && dims[d] == x->dims[d];
    }
    if (!same || x->dtype != AMP_F32) return tt_rand(ctx, AMP_F32, vo.rank, dims, -0.5, 0.5, 4);
    amp_tensor *y = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, x->rank, x->dims, &y), AMP_OK);
    memcpy(y->data, x->data, (size_t)x->numel * sizeof(float));
    return y;
}

/* Overfitting one batch: the loss must fall well below its start. */
static void loss_falls(const char *model, amp_train_precision p, amp_optimizer opt, double lr, int steps) {
    amp_model *m = load(model);
    amp_tensor *x, *y;
    batch(m, 8, 3, &x, &y);
    amp_value_info vo = {.struct_size = sizeof vo};
    amp_model_output_info(m, 0, &vo);
    amp_trainer *t;
    if (vo.rank > 2) {
        amp_tensor_destroy(y);
        y = mse_target(m, x);
        amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .precision = p, .optimizer = opt, .lr = lr,
                                 .loss = AMP_LOSS_MSE, .threads = 2};
        cr_assert_eq(amp_trainer_create(m, &o, &t), AMP_OK, "trainer: %s", amp_context_last_error(ctx));
    } else {
        t = make(m, p, opt, lr);
    }
    double first = step(t, m, x, y), last = first;
    for (int i = 1; i < steps; i++) last = step(t, m, x, y);
    cr_assert(isfinite(first) && isfinite(last));
    cr_assert_lt(last, 0.5 * first, "%s precision %d: loss %g -> %g", model, (int)p, first, last);
    amp_trainer_destroy(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

Test(trainer, lenet_loss_falls_fp32_fp16_bf16) {
    loss_falls("models/lenet/model.onnx", AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.05, 30);
    loss_falls("models/lenet/model.onnx", AMP_TRAIN_FP16, AMP_OPTIM_SGD, 0.05, 30);
    loss_falls("models/lenet/model.onnx", AMP_TRAIN_BF16, AMP_OPTIM_SGD, 0.05, 30);
}

Test(trainer, mlp_loss_falls_adamw) {
    loss_falls("models/mlp/model.onnx", AMP_TRAIN_FP32, AMP_OPTIM_ADAMW, 3e-3, 40);
    loss_falls("models/mlp_decomposed/model.onnx", AMP_TRAIN_FP16, AMP_OPTIM_ADAMW, 3e-3, 40);
}

/* FP16 AMP and FP32 take nearly the same path over the first steps. */
Test(trainer, fp16_amp_follows_fp32) {
    amp_model *m = load("models/lenet/model.onnx");
    amp_tensor *x, *y;
    batch(m, 16, 5, &x, &y);
    amp_trainer *a = make(m, AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.02), *b = make(m, AMP_TRAIN_FP16, AMP_OPTIM_SGD, 0.02);
    for (int i = 0; i < 15; i++) {
        double la = step(a, m, x, y), lb = step(b, m, x, y);
        cr_assert_lt(fabs(la - lb), 1e-2 * fabs(la) + 1e-3, "step %d: FP32 %g, FP16 AMP %g", i, la, lb);
    }
    amp_trainer_state st = {.struct_size = sizeof st};
    amp_trainer_get_state(b, &st);
    cr_assert_eq(st.steps_skipped, 0);
    cr_assert_eq(st.loss_scale, 65536.0);
    amp_trainer_destroy(a);
    amp_trainer_destroy(b);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

/* AUTOCAST.md case 13: an inf gradient skips the step, halves the scale and leaves the
 * parameters unchanged; growth_interval clean steps double the scale. */
Test(trainer, loss_scaler_rules) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_tensor *x, *y;
    batch(m, 4, 9, &x, &y);
    amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .precision = AMP_TRAIN_FP16, .lr = 0.01, .threads = 2,
                             .init_loss_scale = 1e38, .growth_interval = 2000};
    amp_trainer *t = NULL;
    cr_assert_eq(amp_trainer_create(m, &o, &t), AMP_OK, "%s", amp_context_last_error(ctx));
    int np = amp_trainer_param_count(t);
    cr_assert_gt(np, 0);
    /* a copy of every parameter */
    amp_tensor *before[64];
    for (int i = 0; i < np && i < 64; i++) {
        amp_tensor *p;
        amp_trainer_param(t, i, NULL, &p);
        cr_assert_eq(amp_tensor_clone(ctx, p, &before[i]), AMP_OK);
    }
    step(t, m, x, y); /* loss * 1e38 overflows FP16: skipped */
    amp_trainer_state st = {.struct_size = sizeof st};
    amp_trainer_get_state(t, &st);
    cr_assert_eq(st.last_skipped, 1);
    cr_assert_eq(st.steps_skipped, 1);
    cr_assert_eq(st.loss_scale, (double)(float)5e37, "scale %g", st.loss_scale);
    for (int i = 0; i < np && i < 64; i++) {
        amp_tensor *p;
        amp_trainer_param(t, i, NULL, &p);
        cr_assert(tt_equal(p, before[i]), "parameter %d changed on a skipped step", i);
        amp_tensor_destroy(before[i]);
    }
    /* keep halving until the steps are clean; the scale stays finite and positive */
    for (int i = 0; i < 200 && st.last_skipped; i++) {
        step(t, m, x, y);
        amp_trainer_get_state(t, &st);
        cr_assert(isfinite(st.loss_scale) && st.loss_scale > 0);
    }
    cr_assert_eq(st.last_skipped, 0, "the scale never came down far enough");
    double s0 = st.loss_scale;
    /* 1999 more clean steps: the 2000th clean step doubles the scale */
    int clean = 1;
    for (; clean < 2000; clean++) {
        step(t, m, x, y);
        amp_trainer_get_state(t, &st);
        if (st.last_skipped) break;
    }
    if (clean == 2000) cr_assert_eq(st.loss_scale, 2 * s0, "after 2000 clean steps: %g, expected %g", st.loss_scale, 2 * s0);
    else cr_assert_eq(st.loss_scale, s0 / 2, "a skip must halve the scale");
    amp_trainer_destroy(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

/* Save at step 5, run to 10; a new trainer resumed from the checkpoint reaches the same bits. */
Test(trainer, checkpoint_resume_is_bit_identical) {
    amp_model *m = load("models/lenet/model.onnx");
    amp_tensor *x[10], *y[10];
    for (int i = 0; i < 10; i++) batch(m, 4, 100 + (uint64_t)i, &x[i], &y[i]);
    char path[] = "/tmp/amprt_ckpt_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    for (int p = 0; p < 2; p++) {
        amp_train_precision prec = p ? AMP_TRAIN_FP16 : AMP_TRAIN_FP32;
        amp_trainer *a = make(m, prec, AMP_OPTIM_ADAMW, 1e-3);
        for (int i = 0; i < 5; i++) step(a, m, x[i], y[i]);
        cr_assert_eq(amp_trainer_save_checkpoint(a, path, 7, 5), AMP_OK, "%s", amp_trainer_last_error(a));
        for (int i = 5; i < 10; i++) step(a, m, x[i], y[i]);
        amp_trainer *b = make(m, prec, AMP_OPTIM_ADAMW, 1e-3);
        int64_t ua = 0, ub = 0;
        cr_assert_eq(amp_trainer_load_checkpoint(b, path, &ua, &ub), AMP_OK, "%s", amp_trainer_last_error(b));
        cr_assert(ua == 7 && ub == 5);
        for (int i = 5; i < 10; i++) step(b, m, x[i], y[i]);
        for (int i = 0; i < amp_trainer_param_count(a); i++) {
            amp_tensor *pa, *pb;
            amp_trainer_param(a, i, NULL, &pa);
            amp_trainer_param(b, i, NULL, &pb);
            cr_assert(tt_equal(pa, pb), "parameter %d differs after resume", i);
        }
        amp_trainer_state sa = {.struct_size = sizeof sa}, sb = {.struct_size = sizeof sb};
        amp_trainer_get_state(a, &sa);
        amp_trainer_get_state(b, &sb);
        cr_assert_eq(sa.steps, sb.steps);
        cr_assert_eq(sa.loss_scale, sb.loss_scale);
        amp_trainer_destroy(a);
        amp_trainer_destroy(b);
    }
    unlink(path);
    for (int i = 0; i < 10; i++) {
        amp_tensor_destroy(x[i]);
        amp_tensor_destroy(y[i]);
    }
    amp_model_destroy(m);
}

Test(trainer, bad_checkpoints_change_nothing) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_trainer *t = make(m, AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.01);
    char path[] = "/tmp/amprt_ckpt_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(amp_trainer_save_checkpoint(t, path, 1, 2), AMP_OK);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    amp_tensor *p0, *copy;
    amp_trainer_param(t, 0, NULL, &p0);
    amp_tensor_clone(ctx, p0, &copy);
    /* truncated, one flipped byte, not a checkpoint */
    long sizes[3] = {size / 2, size, 7};
    for (int k = 0; k < 3; k++) {
        f = fopen(path, "wb");
        if (k == 1) buf[size / 3] ^= 0x40;
        fwrite(buf, 1, (size_t)sizes[k], f);
        fclose(f);
        cr_assert_eq(amp_trainer_load_checkpoint(t, path, NULL, NULL), AMP_ERR_PARSE, "case %d", k);
        cr_assert(strlen(amp_trainer_last_error(t)) > 0);
        cr_assert(tt_equal(p0, copy), "a failed load changed a parameter");
    }
    /* a checkpoint of another model */
    amp_model *m2 = load("models/lenet/model.onnx");
    amp_trainer *t2 = make(m2, AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.01);
    cr_assert_eq(amp_trainer_save_checkpoint(t2, path, 0, 0), AMP_OK);
    cr_assert_eq(amp_trainer_load_checkpoint(t, path, NULL, NULL), AMP_ERR_SHAPE);
    cr_assert(tt_equal(p0, copy));
    unlink(path);
    free(buf);
    amp_tensor_destroy(copy);
    amp_trainer_destroy(t2);
    amp_model_destroy(m2);
    amp_trainer_destroy(t);
    amp_model_destroy(m);
}

/* The exported model loads and computes what the trainer predicts. */
Test(trainer, export_reloads_with_trained_weights) {
    amp_model *m = load("models/lenet/model.onnx");
    amp_tensor *x, *y;
    batch(m, 4, 11, &x, &y);
    amp_trainer *t = make(m, AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.05);
    for (int i = 0; i < 5; i++) step(t, m, x, y);
    char path[] = "/tmp/amprt_export_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(amp_trainer_export(t, path, AMP_F32), AMP_OK, "%s", amp_trainer_last_error(t));
    amp_model *e = NULL;
    cr_assert_eq(amp_model_load(ctx, path, &e), AMP_OK);
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(e, NULL, &s), AMP_OK);
    amp_value_info vi = {.struct_size = sizeof vi}, vo = {.struct_size = sizeof vo};
    amp_model_input_info(e, 0, &vi);
    amp_model_output_info(e, 0, &vo);
    const char *in = vi.name, *out = vo.name;
    amp_tensor *ye = NULL, *yt = NULL;
    const amp_tensor *xin = x;
    cr_assert_eq(amp_session_run(s, 1, &in, &xin, 1, &out, &ye), AMP_OK);
    cr_assert_eq(amp_trainer_predict(t, 1, &in, &xin, out, &yt), AMP_OK, "%s", amp_trainer_last_error(t));
    cr_assert_lt(tt_nse(ye, yt), 1e-10, "exported model differs from the trainer's predictions");
    /* and it is not the untrained model */
    amp_session *s0 = NULL;
    amp_tensor *y0 = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s0), AMP_OK);
    cr_assert_eq(amp_session_run(s0, 1, &in, &xin, 1, &out, &y0), AMP_OK);
    cr_assert_gt(tt_nse(y0, yt), 1e-6, "training changed nothing");
    /* converted export */
    cr_assert_eq(amp_trainer_export(t, path, AMP_F16), AMP_OK, "%s", amp_trainer_last_error(t));
    amp_tensor_destroy(ye);
    amp_tensor_destroy(yt);
    amp_tensor_destroy(y0);
    amp_session_destroy(s0);
    amp_session_destroy(s);
    amp_model_destroy(e);
    unlink(path);
    amp_trainer_destroy(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

Test(trainer, freeze_keeps_parameters_fixed) {
    amp_model *m = load("models/lenet/model.onnx");
    const char *pat[] = {"conv*"};
    amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .lr = 0.05, .freeze = pat, .n_freeze = 1, .threads = 2};
    amp_trainer *t = NULL;
    cr_assert_eq(amp_trainer_create(m, &o, &t), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int i = 0; i < amp_trainer_param_count(t); i++) {
        const char *name;
        amp_trainer_param(t, i, &name, NULL);
        cr_assert_neq(strncmp(name, "conv", 4), 0, "%s should be frozen", name);
    }
    cr_assert_gt(amp_trainer_param_count(t), 0);
    amp_trainer_destroy(t);
    amp_model_destroy(m);
}

Test(trainer, bad_options_and_inputs) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_trainer *t = (amp_trainer *)0x1;
    amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .precision = (amp_train_precision)9};
    cr_assert_eq(amp_trainer_create(m, &o, &t), AMP_ERR_INVALID_ARG);
    cr_assert_eq(t, (amp_trainer *)0x1);
    amp_trainer_options o2 = {.struct_size = sizeof o2, .output = "nope"};
    cr_assert_eq(amp_trainer_create(m, &o2, &t), AMP_ERR_NOT_FOUND);
    const char *all[] = {"*"};
    amp_trainer_options o3 = {.struct_size = sizeof o3, .freeze = all, .n_freeze = 1};
    cr_assert_eq(amp_trainer_create(m, &o3, &t), AMP_ERR_INVALID_ARG);
    amp_trainer_options o4 = {.struct_size = sizeof o4, .schedule = AMP_LR_COSINE};
    cr_assert_eq(amp_trainer_create(m, &o4, &t), AMP_ERR_INVALID_ARG);
    t = make(m, AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.01);
    amp_tensor *x, *y;
    batch(m, 4, 1, &x, &y);
    const char *wrong = "not_an_input";
    const amp_tensor *xin = x;
    cr_assert_eq(amp_trainer_step(t, 1, &wrong, &xin, y, NULL), AMP_ERR_INVALID_ARG);
    amp_value_info vi = {.struct_size = sizeof vi};
    amp_model_input_info(m, 0, &vi);
    cr_assert_eq(amp_trainer_step(t, 1, &vi.name, &xin, NULL, NULL), AMP_ERR_INVALID_ARG);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_trainer_destroy(t);
    amp_model_destroy(m);
}

/* BatchNormalization trains with batch statistics and keeps running statistics as state: they
 * move with momentum 0.9 towards the batch's, predictions use them, export writes them. */
Test(trainer, batchnorm_batch_and_running_statistics) {
    amp_model *m = load("tests/data/bn_net/model.onnx");
    amp_tensor *x, *y;
    batch(m, 8, 21, &x, &y);
    amp_trainer *t = make(m, AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.05);
    /* the running statistics are not parameters */
    for (int i = 0; i < amp_trainer_param_count(t); i++) {
        const char *name;
        amp_trainer_param(t, i, &name, NULL);
        cr_assert_null(strstr(name, "running"), "%s is trained", name);
    }
    double first = step(t, m, x, y), last = first;
    for (int i = 1; i < 25; i++) last = step(t, m, x, y);
    cr_assert_lt(last, 0.5 * first, "loss %g -> %g", first, last);
    char path[] = "/tmp/amprt_bn_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(amp_trainer_export(t, path, AMP_F32), AMP_OK, "%s", amp_trainer_last_error(t));
    amp_model *e = NULL;
    cr_assert_eq(amp_model_load(ctx, path, &e), AMP_OK);
    int v0 = amp_graph_find_value(m->g, "1.running_mean"), v1 = amp_graph_find_value(e->g, "1.running_mean");
    cr_assert(v0 >= 0 && v1 >= 0);
    const amp_tensor *r0 = m->g->values[v0].init, *r1 = e->g->values[v1].init;
    double moved = 0;
    for (int64_t i = 0; i < r0->numel; i++) moved += fabs(tt_get(r1, i) - tt_get(r0, i));
    cr_assert_gt(moved, 1e-3, "running mean did not move");
    /* predictions (inference mode, running statistics) equal the exported model's outputs */
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(e, NULL, &s), AMP_OK);
    const char *in = "input", *out = "logits";
    const amp_tensor *xin = x;
    amp_tensor *ye = NULL, *yt = NULL;
    cr_assert_eq(amp_session_run(s, 1, &in, &xin, 1, &out, &ye), AMP_OK);
    cr_assert_eq(amp_trainer_predict(t, 1, &in, &xin, out, &yt), AMP_OK, "%s", amp_trainer_last_error(t));
    cr_assert_lt(tt_nse(ye, yt), 1e-10);
    amp_tensor_destroy(ye);
    amp_tensor_destroy(yt);
    amp_session_destroy(s);
    amp_model_destroy(e);
    unlink(path);
    amp_trainer_destroy(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

/* Dropout runs in training mode inside the step (its mask changes the loss) and as the
 * identity in predictions. */
Test(trainer, dropout_trains_in_training_mode) {
    amp_model *m = load("tests/data/dropout_net/model.onnx");
    amp_tensor *x, *y;
    batch(m, 16, 4, &x, &y);
    amp_trainer *t = make(m, AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.05);
    /* the first step's loss differs from the loss without dropout (the inference model's) */
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, NULL, &s), AMP_OK);
    const char *in = "input", *out = "logits";
    const amp_tensor *xin = x;
    amp_tensor *y0 = NULL, *yp = NULL;
    cr_assert_eq(amp_session_run(s, 1, &in, &xin, 1, &out, &y0), AMP_OK);
    cr_assert_eq(amp_trainer_predict(t, 1, &in, &xin, out, &yp), AMP_OK);
    cr_assert(tt_equal(y0, yp), "predictions must not drop units");
    /* cross entropy of the undropped outputs */
    double ce = 0;
    for (int64_t r = 0; r < 16; r++) {
        double mx = -INFINITY, z = 0;
        for (int c = 0; c < 10; c++) mx = fmax(mx, tt_get(y0, r * 10 + c));
        for (int c = 0; c < 10; c++) z += exp(tt_get(y0, r * 10 + c) - mx);
        ce += -(tt_get(y0, r * 10 + (int64_t)tt_get(y, r)) - mx - log(z)) / 16.0;
    }
    double first = step(t, m, x, y), last = first;
    cr_assert_gt(fabs(first - ce), 1e-3, "the step's loss %g equals the undropped %g: dropout is off", first, ce);
    for (int i = 1; i < 40; i++) last = step(t, m, x, y);
    cr_assert_lt(last, 0.7 * first, "loss %g -> %g", first, last);
    amp_tensor_destroy(y0);
    amp_tensor_destroy(yp);
    amp_session_destroy(s);
    amp_trainer_destroy(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

/* Without loss scaling or clipping each parameter is updated right after its gradient is
 * complete, so gradients die early: the step's arena is smaller than with one update at the end
 * (which clipping needs), and both plans stay within 5% of their lower bounds. */
Test(trainer, per_parameter_updates_shorten_gradient_lives) {
    amp_model *m = load("models/lenet/model.onnx");
    amp_tensor *x, *y;
    batch(m, 32, 2, &x, &y);
    amp_plan_stats ps[2] = {{.struct_size = sizeof ps[0]}, {.struct_size = sizeof ps[1]}};
    for (int k = 0; k < 2; k++) {
        amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .lr = 0.01, .momentum = 0.9, .threads = 2,
                                 .max_grad_norm = k ? 1e9 : 0};
        amp_trainer *t = NULL;
        cr_assert_eq(amp_trainer_create(m, &o, &t), AMP_OK);
        step(t, m, x, y);
        cr_assert_eq(amp_trainer_last_plan(t, &ps[k]), AMP_OK);
        cr_assert_leq((double)ps[k].arena_bytes, 1.05 * (double)ps[k].lower_bound_bytes);
        amp_trainer_destroy(t);
    }
    cr_assert_lt(ps[0].arena_bytes, ps[1].arena_bytes, "per-parameter %zu, fused %zu", ps[0].arena_bytes, ps[1].arena_bytes);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

/* The other losses: mean squared error attached to an output, and a model computing its own
 * loss (SoftmaxCrossEntropyLoss inside the graph, labels as a model input). */
Test(trainer, mse_and_model_losses) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_tensor *x, *y;
    batch(m, 8, 6, &x, &y);
    int64_t td[2] = {8, 10};
    amp_tensor *target = tt_rand(ctx, AMP_F32, 2, td, -1.0, 1.0, 77);
    amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .loss = AMP_LOSS_MSE, .optimizer = AMP_OPTIM_ADAMW, .lr = 3e-3,
                             .threads = 2};
    amp_trainer *t = NULL;
    cr_assert_eq(amp_trainer_create(m, &o, &t), AMP_OK, "%s", amp_context_last_error(ctx));
    double first = step(t, m, x, target), last = first;
    for (int i = 1; i < 60; i++) last = step(t, m, x, target);
    cr_assert_lt(last, 0.5 * first, "MSE %g -> %g", first, last);
    amp_trainer_destroy(t);
    amp_tensor_destroy(target);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);

    m = load("tests/data/loss_net/model.onnx");
    int64_t xd[2] = {8, 16}, ld[1] = {8};
    double lab[8] = {1, 3, 5, 7, 9, 0, 2, 4};
    x = tt_rand(ctx, AMP_F32, 2, xd, -1.0, 1.0, 5);
    y = tt_make(ctx, AMP_I64, 1, ld, lab);
    amp_trainer_options o2 = {.struct_size = sizeof o2, .loss = AMP_LOSS_MODEL, .output = "loss", .lr = 0.1,
                              .threads = 2, .precision = AMP_TRAIN_FP16};
    cr_assert_eq(amp_trainer_create(m, &o2, &t), AMP_OK, "%s", amp_context_last_error(ctx));
    const char *names[2] = {"input", "target"};
    const amp_tensor *ins[2] = {x, y};
    double l0 = 0, l1 = 0;
    cr_assert_eq(amp_trainer_step(t, 2, names, ins, NULL, &l0), AMP_OK, "%s", amp_trainer_last_error(t));
    for (int i = 1; i < 40; i++) cr_assert_eq(amp_trainer_step(t, 2, names, ins, NULL, &l1), AMP_OK);
    cr_assert_lt(l1, 0.5 * l0, "model loss %g -> %g", l0, l1);
    amp_trainer_destroy(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

/* The CNNs and the transformer of models/ train: loss falls in FP32 and FP16 AMP; the U-Net and
 * the LSTM tagger (outputs of rank > 2) with MSE, see mse_target. */
Test(trainer, resnet_trains) {
    loss_falls("models/resnet/model.onnx", AMP_TRAIN_FP16, AMP_OPTIM_ADAMW, 3e-3, 60);
}
Test(trainer, mobilenetv2_trains) {
    loss_falls("models/mobilenetv2/model.onnx", AMP_TRAIN_FP32, AMP_OPTIM_ADAMW, 1e-2, 60);
}
Test(trainer, encoder_trains) {
    loss_falls("models/encoder/model.onnx", AMP_TRAIN_FP16, AMP_OPTIM_ADAMW, 3e-3, 25);
}
Test(trainer, unet_trains) {
    loss_falls("models/unet/model.onnx", AMP_TRAIN_FP16, AMP_OPTIM_ADAMW, 3e-3, 40);
}
Test(trainer, lstm_tagger_trains) {
    loss_falls("models/lstm_tagger/model.onnx", AMP_TRAIN_BF16, AMP_OPTIM_ADAMW, 1e-2, 40);
}

Test(trainer, gpt_block_trains_with_mse) {
    amp_model *m = load("models/gpt_block/model.onnx");
    amp_tensor *x, *y;
    batch(m, 2, 8, &x, &y);
    int64_t td[3] = {2, 16, 100};
    amp_tensor *target = tt_rand(ctx, AMP_F32, 3, td, -0.5, 0.5, 9);
    amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .loss = AMP_LOSS_MSE, .optimizer = AMP_OPTIM_ADAMW, .lr = 3e-3,
                             .precision = AMP_TRAIN_BF16, .threads = 2};
    amp_trainer *t = NULL;
    cr_assert_eq(amp_trainer_create(m, &o, &t), AMP_OK, "%s", amp_context_last_error(ctx));
    double first = step(t, m, x, target), last = first;
    for (int i = 1; i < 30; i++) last = step(t, m, x, target);
    cr_assert_lt(last, 0.5 * first, "gpt block MSE %g -> %g", first, last);
    amp_trainer_destroy(t);
    amp_tensor_destroy(target);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_model_destroy(m);
}

/* ---- options whose 0 is a valid value other than the default ----------------------------- */

/* tests/data/linear_loss: loss = sum(x * w), so the gradient of w at each step is that step's x */
static const double lin_w0[4] = {0.5, -0.25, 1.0, -2.0};
static const double lin_x[3][4] = {{1, -2, 0.5, 3}, {-1, 0.5, 2, 1}, {0.25, 1, -1.5, -0.5}};

/* torch.optim.AdamW by hand, in double: decoupled decay, then bias-corrected moments. */
static void adamw_by_hand(double lr, double wd, double b1, double b2, double eps, int steps, double w[4]) {
    double m[4] = {0}, v[4] = {0};
    for (int i = 0; i < 4; i++) w[i] = lin_w0[i];
    for (int t = 1; t <= steps; t++)
        for (int i = 0; i < 4; i++) {
            const double g = lin_x[t - 1][i];
            w[i] *= 1.0 - lr * wd;
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            const double mh = m[i] / (1.0 - pow(b1, t)), vh = v[i] / (1.0 - pow(b2, t));
            w[i] -= lr * mh / (sqrt(vh) + eps);
        }
}

/* w of linear_loss after `steps` trainer steps with o; *lr: the last step's rate. */
static void linear_steps(const amp_trainer_options *o, int steps, double w[4], double *lr) {
    amp_model *m = load("tests/data/linear_loss/model.onnx");
    amp_trainer *t = NULL;
    cr_assert_eq(amp_trainer_create(m, o, &t), AMP_OK, "%s", amp_context_last_error(ctx));
    const int64_t d[1] = {4};
    const char *name = "x";
    for (int s = 0; s < steps; s++) {
        amp_tensor *x = tt_make(ctx, AMP_F32, 1, d, lin_x[s]);
        const amp_tensor *xin = x;
        cr_assert_eq(amp_trainer_step(t, 1, &name, &xin, NULL, NULL), AMP_OK, "%s", amp_trainer_last_error(t));
        amp_tensor_destroy(x);
    }
    const char *pn = NULL;
    amp_tensor *pv = NULL;
    cr_assert_eq(amp_trainer_param_count(t), 1);
    cr_assert_eq(amp_trainer_param(t, 0, &pn, &pv), AMP_OK);
    cr_assert_str_eq(pn, "w");
    for (int i = 0; i < 4; i++) w[i] = tt_get(pv, i);
    amp_trainer_state st = {.struct_size = sizeof st};
    cr_assert_eq(amp_trainer_get_state(t, &st), AMP_OK);
    if (lr) *lr = st.lr;
    amp_trainer_destroy(t);
    amp_model_destroy(m);
}

/* got matches the hand-computed want; and, when other is given, want differs from other by far
 * more than the tolerance (so an option read as its default cannot pass) */
static void same_w(const double got[4], const double want[4], const double *other, const char *what) {
    double far = 0;
    for (int i = 0; i < 4; i++) {
        cr_assert_lt(fabs(got[i] - want[i]), 1e-5, "%s: w[%d] = %.8f, by hand %.8f", what, i, got[i], want[i]);
        if (other) far = fmax(far, fabs(want[i] - other[i]));
    }
    if (other) cr_assert_gt(far, 1e-4, "%s: the case does not tell the value from the default", what);
}

Test(trainer, adamw_zeros_given_explicitly_are_used) {
    const int steps = 3;
    double got[4], dflt[4], want[4];
    /* zero-initialised: all defaults (weight decay 0.01, betas 0.9 and 0.999, epsilon 1e-8) */
    amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .optimizer = AMP_OPTIM_ADAMW, .lr = 0.1, .loss = AMP_LOSS_MODEL};
    adamw_by_hand(0.1, 0.01, 0.9, 0.999, 1e-8, steps, dflt);
    linear_steps(&o, steps, got, NULL);
    same_w(got, dflt, NULL, "defaults");
    /* a zero with its bit clear still means the default */
    o.weight_decay = 0;
    o.beta1 = 0;
    linear_steps(&o, steps, got, NULL);
    same_w(got, dflt, NULL, "zeros without set bits");

    o.set = AMP_TRAIN_SET_WEIGHT_DECAY;
    adamw_by_hand(0.1, 0.0, 0.9, 0.999, 1e-8, steps, want);
    linear_steps(&o, steps, got, NULL);
    same_w(got, want, dflt, "weight_decay 0");

    o.set = AMP_TRAIN_SET_BETA1;
    adamw_by_hand(0.1, 0.01, 0.0, 0.999, 1e-8, steps, want);
    linear_steps(&o, steps, got, NULL);
    same_w(got, want, dflt, "beta1 0");

    o.set = AMP_TRAIN_SET_BETA2 | AMP_TRAIN_SET_EPSILON;
    adamw_by_hand(0.1, 0.01, 0.9, 0.0, 0.0, steps, want);
    linear_steps(&o, steps, got, NULL);
    same_w(got, want, dflt, "beta2 0, epsilon 0");

    /* lr 0: nothing moves, not even by weight decay */
    o.set = AMP_TRAIN_SET_LR;
    o.lr = 0;
    linear_steps(&o, steps, got, NULL);
    same_w(got, lin_w0, dflt, "lr 0");
}

/* gamma 0 with the step schedule: the first step at lr, every later one at 0 */
Test(trainer, step_schedule_gamma_zero) {
    amp_trainer_options o = {.struct_size = sizeof o, .backend = tu_backend(), .lr = 0.1, .loss = AMP_LOSS_MODEL, .schedule = AMP_LR_STEP,
                             .step_size = 1, .set = AMP_TRAIN_SET_GAMMA};
    double got[4], want[4], lr = -1, dflt[4];
    for (int i = 0; i < 4; i++) {
        want[i] = lin_w0[i] - 0.1 * lin_x[0][i];
        /* the default gamma 0.1: lr 0.1, 0.01, 0.001 */
        dflt[i] = want[i] - 0.01 * lin_x[1][i] - 0.001 * lin_x[2][i];
    }
    linear_steps(&o, 3, got, &lr);
    same_w(got, want, dflt, "gamma 0");
    cr_assert_eq(lr, 0.0);
    o.set = 0;
    linear_steps(&o, 3, got, &lr);
    same_w(got, dflt, NULL, "gamma default");
}

/* values outside what the optimizers accept, and set bits this library does not know */
Test(trainer, optimizer_values_checked) {
    amp_model *m = load("tests/data/linear_loss/model.onnx");
    amp_trainer *t = NULL;
    amp_trainer_options bad[] = {
        {.struct_size = sizeof bad[0], .optimizer = AMP_OPTIM_ADAMW, .beta1 = 1.0},
        {.struct_size = sizeof bad[0], .optimizer = AMP_OPTIM_ADAMW, .beta2 = -0.5},
        {.struct_size = sizeof bad[0], .optimizer = AMP_OPTIM_ADAMW, .weight_decay = -0.01},
        {.struct_size = sizeof bad[0], .optimizer = AMP_OPTIM_ADAMW, .epsilon = -1e-8},
        {.struct_size = sizeof bad[0], .momentum = -0.9},
        {.struct_size = sizeof bad[0], .schedule = AMP_LR_STEP, .step_size = 1, .gamma = -0.1},
        {.struct_size = sizeof bad[0], .set = 1u << 30},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        bad[k].loss = AMP_LOSS_MODEL;
        cr_assert_eq(amp_trainer_create(m, &bad[k], &t), AMP_ERR_INVALID_ARG, "case %zu accepted", k);
        cr_assert_null(t);
    }
    amp_model_destroy(m);
}

/* `amprt train` passes an explicit --weight-decay 0 and --beta1 0 through (they are not read as
 * "the default"): one AdamW step with decay 0 differs from the default decay 0.01 by exactly
 * lr * 0.01 * w0; two steps with --beta1 0 differ from the default, --beta1 0.9 does not. */
static void cli_train(const char *extra, const char *out) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s/amprt train %s/models/lenet/model.onnx --data /usr/share/datasets/fashion-mnist --epochs 1 "
             "--batch 16 --limit-train 64 --limit-test 16 --amp off --optimizer adamw --lr 0.1 --threads 2 "
             "--progress plain %s --out %s >/dev/null 2>&1",
             AMP_BINARY_DIR, AMP_SOURCE_DIR, extra, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* max |a - b - (expect_scale * w0)| over the FP32 initializers of two trained copies of m0 */
static double init_gap(const amp_model *m0, const char *pa, const char *pb, double expect_scale, double *largest) {
    amp_model *a = NULL, *b = NULL;
    cr_assert_eq(amp_model_load(ctx, pa, &a), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(amp_model_load(ctx, pb, &b), AMP_OK, "%s", amp_context_last_error(ctx));
    double worst = 0, big = 0;
    for (int i = 0; i < m0->g->n_inits; i++) {
        const amp_value *v0 = &m0->g->values[m0->g->inits[i]];
        if (v0->init->dtype != AMP_F32) continue;
        int ia = amp_graph_find_value(a->g, v0->name), ib = amp_graph_find_value(b->g, v0->name);
        cr_assert(ia >= 0 && ib >= 0 && a->g->values[ia].init && b->g->values[ib].init, "%s", v0->name);
        const amp_tensor *ta = a->g->values[ia].init, *tb = b->g->values[ib].init;
        for (int64_t k = 0; k < v0->init->numel; k++) {
            const double d = tt_get(ta, k) - tt_get(tb, k);
            worst = fmax(worst, fabs(d - expect_scale * tt_get(v0->init, k)));
            big = fmax(big, fabs(d));
        }
    }
    if (largest) *largest = big;
    amp_model_destroy(a);
    amp_model_destroy(b);
    return worst;
}

Test(trainer, cli_explicit_zeros_pass_through) {
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0) {
        cr_log_warn("SKIP: /usr/share/datasets/fashion-mnist not installed (Debian package dataset-fashion-mnist)");
        return;
    }
    char dir[] = "/tmp/amprt_cli_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char p[5][600];
    const char *names[5] = {"wd0", "dflt", "b0", "b09", "dflt2"};
    for (int k = 0; k < 5; k++) snprintf(p[k], sizeof p[k], "%s/%s.onnx", dir, names[k]);
    cli_train("--max-steps 1 --weight-decay 0", p[0]);
    cli_train("--max-steps 1", p[1]);
    cli_train("--max-steps 2 --beta1 0", p[2]);
    cli_train("--max-steps 2 --beta1 0.9", p[3]);
    cli_train("--max-steps 2", p[4]);
    amp_model *m0 = load("models/lenet/model.onnx");
    double big = 0;
    cr_assert_lt(init_gap(m0, p[0], p[1], 0.1 * 0.01, NULL), 1e-6, "--weight-decay 0 was not decay 0");
    cr_assert_eq(init_gap(m0, p[3], p[4], 0.0, NULL), 0.0, "--beta1 0.9 differs from the default");
    init_gap(m0, p[2], p[4], 0.0, &big);
    cr_assert_gt(big, 1e-3, "--beta1 0 trained like the default beta1");
    amp_model_destroy(m0);
    for (int k = 0; k < 5; k++) unlink(p[k]);
    rmdir(dir);
}

/* A diverged trainer writes nothing: a NaN or inf weight makes export and checkpoint fail,
 * naming the parameter, and leaves no file behind. */
Test(trainer, nonfinite_weights_are_never_written) {
    amp_model *m = load("models/mlp/model.onnx");
    amp_trainer *t = make(m, AMP_TRAIN_FP32, AMP_OPTIM_SGD, 0.01);
    char dir[] = "/tmp/amprt_nan_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char model[600], ckpt[600];
    snprintf(model, sizeof model, "%s/m.onnx", dir);
    snprintf(ckpt, sizeof ckpt, "%s/c.ckpt", dir);
    const char *name;
    amp_tensor *p0;
    cr_assert_eq(amp_trainer_param(t, 0, &name, &p0), AMP_OK);
    const float bad[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++) {
        ((float *)p0->data)[p0->numel - 1] = bad[k];
        cr_assert_eq(amp_trainer_export(t, model, AMP_F32), AMP_ERR_INVALID_ARG, "case %d", k);
        cr_assert(strstr(amp_trainer_last_error(t), "training diverged") && strstr(amp_trainer_last_error(t), name),
                  "%s", amp_trainer_last_error(t));
        cr_assert_eq(amp_trainer_save_checkpoint(t, ckpt, 0, 0), AMP_ERR_INVALID_ARG, "case %d", k);
        cr_assert(strstr(amp_trainer_last_error(t), "no checkpoint written"), "%s", amp_trainer_last_error(t));
        cr_assert_neq(access(model, F_OK), 0, "a model was written");
        cr_assert_neq(access(ckpt, F_OK), 0, "a checkpoint was written");
    }
    ((float *)p0->data)[p0->numel - 1] = 0.5f;
    cr_assert_eq(amp_trainer_export(t, model, AMP_F32), AMP_OK, "%s", amp_trainer_last_error(t));
    unlink(model);
    rmdir(dir);
    amp_trainer_destroy(t);
    amp_model_destroy(m);
}

/* Cross entropy per position: an N x C x D output trains against N x D labels (the GPT block's
 * logits [N, 16, 100] read as 16 classes at 100 positions); a label tensor of rank 1 is refused
 * with the shape the trainer expects. */
Test(trainer, cross_entropy_per_position) {
    amp_model *m = load("models/gpt_block/model.onnx");
    amp_tensor *x, *y1;
    batch(m, 4, 3, &x, &y1);
    int64_t ld[2] = {4, 100};
    double lab[400];
    for (int i = 0; i < 400; i++) lab[i] = (double)((i * 7 + 3) % 16);
    amp_tensor *y = tt_make(ctx, AMP_I64, 2, ld, lab);
    amp_trainer *t = make(m, AMP_TRAIN_FP32, AMP_OPTIM_ADAMW, 3e-3);
    double first = step(t, m, x, y), last = first;
    for (int i = 1; i < 25; i++) last = step(t, m, x, y);
    cr_assert(isfinite(first) && first > 1.0, "first loss %g (about ln 16 expected)", first);
    cr_assert_lt(last, 0.8 * first, "per-position cross entropy: loss %g -> %g", first, last);
    amp_value_info vi = {.struct_size = sizeof vi};
    amp_model_input_info(m, 0, &vi);
    const char *name = vi.name;
    double loss = 0;
    cr_assert_eq(amp_trainer_step(t, 1, &name, (const amp_tensor *const *)&x, y1, &loss), AMP_ERR_SHAPE);
    cr_assert(strstr(amp_trainer_last_error(t), "labels"), "%s", amp_trainer_last_error(t));
    amp_trainer_destroy(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_tensor_destroy(y1);
    amp_model_destroy(m);
}

