/* amprt train and amprt evaluate: image classifiers on IDX datasets (Fashion-MNIST). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/elem.h"
#include "runtime/internal.h"
#include "tools/amprt/cli.h"
#include "tools/amprt/plot.h"
#include "tools/amprt/progress.h"

static const char *const usage_train =
    "usage: amprt train MODEL --data DIR [--epochs N] [--batch B] [--amp fp16|bf16|off|fp16-pure]\n"
    "                   [--optimizer sgd|adamw] [--lr X] [--momentum X] [--nesterov] [--weight-decay X]\n"
    "                   [--beta1 X] [--beta2 X] [--epsilon X]\n"
    "                   [--schedule constant|step|cosine] [--warmup N] [--step-size N] [--gamma X]\n"
    "                   [--total-steps N] [--min-lr X]\n"
    "                   [--max-grad-norm X] [--freeze PATTERN]... [--seed N] [--threads N]\n"
    "                   [--out FILE.onnx] [--out-dtype fp32|fp16|bf16] [--plot FILE.svg] [--json-log FILE]\n"
    "                   [--checkpoint FILE [--checkpoint-every N]] [--resume FILE]\n"
    "                   [--max-steps N] [--limit-train N] [--limit-test N] [--progress auto|tty|plain]\n"
    "  Trains MODEL (an image classifier taking [B,1,H,W]) on the IDX data set in DIR\n"
    "  (train-*/t10k-* files, as Debian's /usr/share/datasets/fashion-mnist) with softmax cross\n"
    "  entropy. --amp fp16 (default): autocast FP16, FP32 master weights, dynamic loss scaling;\n"
    "  bf16: autocast BF16; off: FP32; fp16-pure: weights, gradients and updates all FP16 (the\n"
    "  naive scheme, for comparison). Prints progress, the test accuracy per epoch, and writes\n"
    "  the trained model (--out), a chart (--plot), one JSON object per epoch (--json-log) and\n"
    "  checkpoints (every N steps and at each epoch end) that --resume continues exactly.\n"
    "  --freeze keeps initializers whose names match the pattern (fnmatch) fixed. A value given\n"
    "  is used as given, 0 included (--weight-decay 0: AdamW without decay); the defaults are\n"
    "  torch's: lr 0.01 (SGD) or 0.001 (AdamW), weight decay 0 (SGD) or 0.01 (AdamW), betas\n"
    "  0.9 and 0.999, epsilon 1e-8, gamma 0.1.\n";

static const char *const usage_eval =
    "usage: amprt evaluate MODEL --data DIR [--batch B] [--autocast fp16|bf16] [--limit-test N] [--threads N]\n"
    "  Runs MODEL on the test split of DIR and prints the accuracy (argmax of the first output).\n";

typedef struct train_opts {
    const char *data, *out, *plot, *json_log, *checkpoint, *resume, *amp, *progress;
    amp_dtype out_dtype;
    int epochs, batch, checkpoint_every;
    int64_t max_steps, limit_train, limit_test;
    uint64_t seed;
    amp_trainer_options to;
    const char *freeze[32];
    double mean, std;
} train_opts;

static int need(int i, int argc, const char *opt) {
    if (i + 1 >= argc) {
        fprintf(stderr, "amprt: %s needs a value\n", opt);
        return 0;
    }
    return 1;
}

static int num(const char *s, const char *opt, double lo, double *v) {
    char *end;
    *v = strtod(s, &end);
    if (!*s || *end || !(*v >= lo) || !isfinite(*v)) {
        fprintf(stderr, "amprt: %s expects a number >= %g, got '%s'\n", opt, lo, s);
        return 0;
    }
    return 1;
}

/* Options whose value is used as given, 0 included: without their set bit the library would
 * read an explicit 0 as "the default" (--weight-decay 0 would decay AdamW by 0.01). */
static const struct {
    const char *opt;
    unsigned bit;
} given[] = {{"--lr", AMP_TRAIN_SET_LR},       {"--weight-decay", AMP_TRAIN_SET_WEIGHT_DECAY},
             {"--beta1", AMP_TRAIN_SET_BETA1}, {"--beta2", AMP_TRAIN_SET_BETA2},
             {"--epsilon", AMP_TRAIN_SET_EPSILON}, {"--gamma", AMP_TRAIN_SET_GAMMA}};

/* Peel the training options; the rest goes to cli_parse. Returns 0 or 2. */
static int parse_train(int argc, char **argv, train_opts *t, char **rest, int *nrest, const char *usage) {
    memset(t, 0, sizeof *t);
    t->epochs = 2;
    t->batch = 64;
    t->checkpoint_every = 200;
    t->seed = 1;
    t->amp = "fp16";
    t->out_dtype = AMP_F32;
    t->mean = 0.2860;
    t->std = 0.3530;
    t->to.struct_size = sizeof t->to;
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        double v;
#define VAL(opt) (strcmp(a, opt) == 0 && need(i, argc, opt))
        if (VAL("--data")) t->data = argv[++i];
        else if (VAL("--out")) t->out = argv[++i];
        else if (VAL("--plot")) t->plot = argv[++i];
        else if (VAL("--json-log")) t->json_log = argv[++i];
        else if (VAL("--checkpoint")) t->checkpoint = argv[++i];
        else if (VAL("--resume")) t->resume = argv[++i];
        else if (VAL("--amp")) t->amp = argv[++i];
        else if (VAL("--progress")) t->progress = argv[++i];
        else if (VAL("--out-dtype")) {
            t->out_dtype = cli_parse_dtype(argv[++i], "--out-dtype");
            if (!t->out_dtype) return 2;
        } else if (VAL("--optimizer")) {
            const char *o = argv[++i];
            if (strcmp(o, "sgd") == 0) t->to.optimizer = AMP_OPTIM_SGD;
            else if (strcmp(o, "adamw") == 0) t->to.optimizer = AMP_OPTIM_ADAMW;
            else {
                fprintf(stderr, "amprt: --optimizer expects sgd or adamw\n");
                return 2;
            }
        } else if (VAL("--schedule")) {
            const char *o = argv[++i];
            if (strcmp(o, "constant") == 0) t->to.schedule = AMP_LR_CONSTANT;
            else if (strcmp(o, "step") == 0) t->to.schedule = AMP_LR_STEP;
            else if (strcmp(o, "cosine") == 0) t->to.schedule = AMP_LR_COSINE;
            else {
                fprintf(stderr, "amprt: --schedule expects constant, step or cosine\n");
                return 2;
            }
        } else if (VAL("--freeze")) {
            if (t->to.n_freeze >= 32) {
                fprintf(stderr, "amprt: at most 32 --freeze patterns\n");
                return 2;
            }
            t->freeze[t->to.n_freeze++] = argv[++i];
        } else if (strcmp(a, "--nesterov") == 0) {
            t->to.nesterov = 1;
        } else if (strcmp(a, "--lr") == 0 || strcmp(a, "--momentum") == 0 || strcmp(a, "--weight-decay") == 0 ||
                   strcmp(a, "--beta1") == 0 || strcmp(a, "--beta2") == 0 || strcmp(a, "--epsilon") == 0 ||
                   strcmp(a, "--gamma") == 0 || strcmp(a, "--max-grad-norm") == 0 || strcmp(a, "--epochs") == 0 ||
                   strcmp(a, "--batch") == 0 || strcmp(a, "--warmup") == 0 || strcmp(a, "--step-size") == 0 ||
                   strcmp(a, "--checkpoint-every") == 0 || strcmp(a, "--max-steps") == 0 ||
                   strcmp(a, "--limit-train") == 0 || strcmp(a, "--limit-test") == 0 || strcmp(a, "--seed") == 0 ||
                   strcmp(a, "--total-steps") == 0 || strcmp(a, "--min-lr") == 0) {
            if (!need(i, argc, a) || !num(argv[++i], a, 0, &v)) return 2;
            if (strcmp(a, "--lr") == 0) t->to.lr = v;
            else if (strcmp(a, "--momentum") == 0) t->to.momentum = v;
            else if (strcmp(a, "--weight-decay") == 0) t->to.weight_decay = v;
            else if (strcmp(a, "--beta1") == 0) t->to.beta1 = v;
            else if (strcmp(a, "--beta2") == 0) t->to.beta2 = v;
            else if (strcmp(a, "--epsilon") == 0) t->to.epsilon = v;
            else if (strcmp(a, "--gamma") == 0) t->to.gamma = v;
            else if (strcmp(a, "--max-grad-norm") == 0) t->to.max_grad_norm = v;
            else if (strcmp(a, "--epochs") == 0) t->epochs = (int)v;
            else if (strcmp(a, "--batch") == 0) t->batch = (int)v;
            else if (strcmp(a, "--warmup") == 0) t->to.warmup_steps = (int64_t)v;
            else if (strcmp(a, "--step-size") == 0) t->to.step_size = (int64_t)v;
            else if (strcmp(a, "--checkpoint-every") == 0) t->checkpoint_every = (int)v;
            else if (strcmp(a, "--max-steps") == 0) t->max_steps = (int64_t)v;
            else if (strcmp(a, "--limit-train") == 0) t->limit_train = (int64_t)v;
            else if (strcmp(a, "--limit-test") == 0) t->limit_test = (int64_t)v;
            else if (strcmp(a, "--total-steps") == 0) t->to.total_steps = (int64_t)v;
            else if (strcmp(a, "--min-lr") == 0) t->to.min_lr = v;
            else t->seed = (uint64_t)v;
            for (size_t k = 0; k < sizeof given / sizeof given[0]; k++)
                if (strcmp(a, given[k].opt) == 0) t->to.set |= given[k].bit;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else {
            rest[(*nrest)++] = argv[i];
        }
#undef VAL
        if (i >= argc) return 2;
    }
    t->to.freeze = t->freeze;
    if (strcmp(t->amp, "fp16") == 0) t->to.precision = AMP_TRAIN_FP16;
    else if (strcmp(t->amp, "bf16") == 0) t->to.precision = AMP_TRAIN_BF16;
    else if (strcmp(t->amp, "off") == 0 || strcmp(t->amp, "fp32") == 0) t->to.precision = AMP_TRAIN_FP32;
    else if (strcmp(t->amp, "fp16-pure") == 0) t->to.precision = AMP_TRAIN_FP16_PURE;
    else {
        fprintf(stderr, "amprt: --amp expects fp16, bf16, off or fp16-pure, got '%s'\n", t->amp);
        return 2;
    }
    if (t->batch < 1) {
        fprintf(stderr, "amprt: --batch must be at least 1\n");
        return 2;
    }
    return 0;
}

/* A view of rows [from, from + n) of a tensor whose first dim is the batch. */
static void rows(amp_tensor *dst, const amp_tensor *src, int64_t from, int64_t n) {
    int64_t dims[AMP_MAX_RANK];
    memcpy(dims, src->dims, sizeof dims);
    int64_t row = src->numel / (src->dims[0] ? src->dims[0] : 1);
    dims[0] = n;
    amp_tensor_view(dst, src->dtype, src->rank, dims, (char *)src->data + (size_t)(from * row) * amp_dtype_size(src->dtype));
}

static int64_t argmax_row(const amp_tensor *y, int64_t r) {
    int64_t c = y->dims[y->rank - 1], best = 0;
    for (int64_t k = 1; k < c; k++)
        if (amp_ld(y->dtype, y->data, r * c + k) > amp_ld(y->dtype, y->data, r * c + best)) best = k;
    return best;
}

/* Accuracy of the trainer's model (or of a session) on the test set, in batches. */
static double accuracy(amp_trainer *tr, amp_session *s, const char *in_name, const char *out_name,
                       const amp_image_dataset *d, int64_t limit, int batch) {
    int64_t n = limit > 0 && limit < d->n ? limit : d->n, right = 0;
    for (int64_t from = 0; from < n; from += batch) {
        int64_t b = n - from < batch ? n - from : batch;
        amp_tensor x, *y = NULL;
        rows(&x, d->images, from, b);
        const amp_tensor *xin = &x;
        amp_status st = tr ? amp_trainer_predict(tr, 1, &in_name, &xin, out_name, &y)
                           : amp_session_run(s, 1, &in_name, &xin, 1, &out_name, &y);
        if (st) {
            fprintf(stderr, "amprt: evaluation failed: %s: %s\n", amp_status_name(st),
                    tr ? amp_trainer_last_error(tr) : amp_session_last_error(s));
            return NAN;
        }
        for (int64_t r = 0; r < b; r++) right += argmax_row(y, r) == ((const int64_t *)d->labels->data)[from + r];
        amp_tensor_destroy(y);
    }
    return n ? (double)right / (double)n : NAN;
}

static int load_data(amp_context *ctx, const train_opts *t, amp_data_split split, amp_image_dataset **d) {
    amp_dataset_options dopt = {.struct_size = sizeof dopt, .mean = t->mean, .std = t->std};
    amp_status s = amp_image_dataset_load_dir(ctx, t->data, split, &dopt, d);
    if (s) {
        fprintf(stderr, "amprt: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        return 1;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    train_opts t;
    char *rest[128];
    int nrest = 0;
    if (argc > 130) return 2;
    int rc = parse_train(argc, argv, &t, rest, &nrest, usage_train);
    if (rc) return rc;
    cli_opts o;
    rc = cli_parse(nrest, rest, 2, &o, usage_train);
    if (rc) return rc;
    if (o.n_positional != 1 || !t.data) {
        fputs(usage_train, stderr);
        cli_free(&o);
        return 2;
    }
    t.to.threads = o.threads;
    t.to.backend = o.backend;
    amp_context *ctx = cli_context();
    amp_model *m = NULL;
    amp_trainer *tr = NULL;
    amp_image_dataset *train = NULL, *test = NULL;
    amp_batcher *bat = NULL;
    amp_tensor *bx = NULL, *by = NULL;
    double *losses = NULL, *accs = NULL;
    FILE *jl = NULL;
    rc = 1;
    amp_status s = amp_model_load(ctx, o.positional[0], &m);
    if (s) {
        fprintf(stderr, "amprt: cannot load the model: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        goto done;
    }
    if (load_data(ctx, &t, AMP_SPLIT_TRAIN, &train) || load_data(ctx, &t, AMP_SPLIT_TEST, &test)) goto done;
    if (t.limit_train > 0 && t.limit_train < train->n) {
        /* keep the first limit_train samples: the views stay inside the owned tensors */
        train->n = t.limit_train;
        train->images->dims[0] = train->labels->dims[0] = t.limit_train;
        train->images->numel = t.limit_train * train->h * train->w;
        train->labels->numel = t.limit_train;
    }
    amp_value_info in0 = {.struct_size = sizeof in0}, out0 = {.struct_size = sizeof out0};
    if (amp_model_input_count(m) != 1 || amp_model_input_info(m, 0, &in0) || amp_model_output_info(m, 0, &out0)) {
        fprintf(stderr, "amprt: train needs a model with one image input\n");
        goto done;
    }
    s = amp_trainer_create(m, &t.to, &tr);
    if (s) {
        fprintf(stderr, "amprt: cannot build the training step: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        goto done;
    }
    amp_batcher_options bo = {.struct_size = sizeof bo, .batch = t.batch, .seed = t.seed, .drop_last = true};
    if ((s = amp_batcher_create(ctx, train, &bo, &bat))) {
        fprintf(stderr, "amprt: %s\n", amp_context_last_error(ctx));
        goto done;
    }
    int64_t xd[4] = {t.batch, 1, train->h, train->w}, yd[1] = {t.batch};
    if (amp_tensor_create(ctx, AMP_F32, 4, xd, &bx) || amp_tensor_create(ctx, AMP_I64, 1, yd, &by)) goto done;
    int64_t start_epoch = 0, start_batch = 0;
    if (t.resume) {
        s = amp_trainer_load_checkpoint(tr, t.resume, &start_epoch, &start_batch);
        if (s) {
            fprintf(stderr, "amprt: cannot resume: %s: %s\n", amp_status_name(s), amp_trainer_last_error(tr));
            goto done;
        }
        fprintf(stderr, "resumed from %s at epoch %lld, batch %lld\n", t.resume, (long long)start_epoch + 1,
                (long long)start_batch);
    }
    losses = calloc((size_t)t.epochs + 1, sizeof(double));
    accs = calloc((size_t)t.epochs + 1, sizeof(double));
    if (!losses || !accs) goto done;
    if (t.json_log && !(jl = fopen(t.json_log, start_epoch || start_batch ? "a" : "w"))) {
        fprintf(stderr, "amprt: cannot write '%s'\n", t.json_log);
        goto done;
    }
    cli_progress_mode pm = CLI_PROGRESS_AUTO;
    if (t.progress && strcmp(t.progress, "plain") == 0) pm = CLI_PROGRESS_PLAIN;
    if (t.progress && strcmp(t.progress, "tty") == 0) pm = CLI_PROGRESS_TTY;
    cli_progress pr;
    cli_progress_init(&pr, stderr, pm, NULL, NULL);
    int64_t per_epoch = amp_batcher_batches_per_epoch(bat), total_steps = 0;
    const char *in_name = in0.name;
    for (int64_t e = start_epoch; e < t.epochs; e++) {
        int64_t first = e == start_epoch ? start_batch : 0;
        if ((s = amp_batcher_seek(bat, e, first))) goto done;
        cli_progress_epoch_begin(&pr, (int)e, t.epochs, per_epoch, first);
        double sum = 0;
        int64_t nb = 0;
        double t0 = cli_now_ms();
        for (int64_t b = first; b < per_epoch; b++) {
            int64_t cnt = 0;
            if ((s = amp_batcher_next(bat, bx, by, &cnt)) || cnt == 0) break;
            double loss;
            const amp_tensor *xin = bx;
            s = amp_trainer_step(tr, 1, &in_name, &xin, by, &loss);
            if (s) {
                fprintf(stderr, "\namprt: training step failed: %s: %s\n", amp_status_name(s), amp_trainer_last_error(tr));
                goto done;
            }
            amp_trainer_state st = {.struct_size = sizeof st};
            amp_trainer_get_state(tr, &st);
            if (isfinite(loss)) {
                sum += loss;
                nb++;
            }
            cli_progress_step(&pr, b + 1, loss, t.to.precision == AMP_TRAIN_FP16 ? st.loss_scale : 0.0);
            total_steps++;
            if (t.checkpoint && t.checkpoint_every > 0 && (b + 1) % t.checkpoint_every == 0) {
                if ((s = amp_trainer_save_checkpoint(tr, t.checkpoint, e, b + 1))) {
                    fprintf(stderr, "\namprt: checkpoint: %s\n", amp_trainer_last_error(tr));
                    goto done;
                }
            }
            if (t.max_steps > 0 && total_steps >= t.max_steps) break;
        }
        double secs = (cli_now_ms() - t0) / 1e3;
        double acc = accuracy(tr, NULL, in_name, out0.name, test, t.limit_test, 256);
        losses[e] = nb ? sum / (double)nb : NAN;
        accs[e] = acc;
        cli_progress_epoch_end(&pr, losses[e], acc);
        amp_trainer_state st = {.struct_size = sizeof st};
        amp_trainer_get_state(tr, &st);
        if (jl) {
            fprintf(jl,
                    "{\"epoch\":%lld,\"train_loss\":%.6g,\"test_accuracy\":%.6g,\"epoch_seconds\":%.3f,"
                    "\"loss_scale\":%.6g,\"steps\":%lld,\"steps_skipped\":%lld,\"lr\":%.6g,\"precision\":\"%s\"}\n",
                    (long long)e + 1, losses[e], acc, secs, st.loss_scale, (long long)st.steps,
                    (long long)st.steps_skipped, st.lr, t.amp);
            fflush(jl);
        }
        if (t.checkpoint && (s = amp_trainer_save_checkpoint(tr, t.checkpoint, e + 1, 0))) {
            fprintf(stderr, "amprt: checkpoint: %s\n", amp_trainer_last_error(tr));
            goto done;
        }
        if (t.plot) {
            char title[512];
            snprintf(title, sizeof title, "%s, %s", o.positional[0], t.amp);
            cli_plot_series ser = {.name = t.amp, .loss = losses, .acc = accs, .n = (int)(e + 1)};
            if ((s = cli_plot_write(ctx, t.plot, title, &ser, 1))) {
                fprintf(stderr, "amprt: %s\n", amp_context_last_error(ctx));
                goto done;
            }
        }
        if (t.max_steps > 0 && total_steps >= t.max_steps) break;
    }
    if (t.out) {
        s = amp_trainer_export(tr, t.out, t.out_dtype);
        if (s) {
            fprintf(stderr, "amprt: cannot write '%s': %s\n", t.out, amp_trainer_last_error(tr));
            goto done;
        }
        fprintf(stderr, "wrote %s\n", t.out);
    }
    rc = 0;
done:
    if (jl) fclose(jl);
    free(losses);
    free(accs);
    amp_tensor_destroy(bx);
    amp_tensor_destroy(by);
    amp_batcher_destroy(bat);
    amp_image_dataset_destroy(train);
    amp_image_dataset_destroy(test);
    amp_trainer_destroy(tr);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    cli_free(&o);
    return rc;
}

int cmd_evaluate(int argc, char **argv) {
    train_opts t;
    char *rest[128];
    int nrest = 0;
    if (argc > 130) return 2;
    int rc = parse_train(argc, argv, &t, rest, &nrest, usage_eval);
    if (rc) return rc;
    cli_opts o;
    rc = cli_parse(nrest, rest, 2, &o, usage_eval);
    if (rc) return rc;
    if (o.n_positional != 1 || !t.data) {
        fputs(usage_eval, stderr);
        cli_free(&o);
        return 2;
    }
    amp_context *ctx = cli_context();
    amp_model *m = NULL;
    amp_session *s = NULL;
    amp_image_dataset *test = NULL;
    cli_autocast ca;
    memset(&ca, 0, sizeof ca);
    rc = 1;
    amp_status st = amp_model_load(ctx, o.positional[0], &m);
    if (st) {
        fprintf(stderr, "amprt: cannot load the model: %s: %s\n", amp_status_name(st), amp_context_last_error(ctx));
        goto done;
    }
    if (o.autocast) {
        amp_dtype lo = cli_parse_dtype(o.autocast, "--autocast");
        if (lo != AMP_F16 && lo != AMP_BF16) goto done;
        if (cli_autocast_model(ctx, &o, lo, true, &m, &ca)) goto done;
    }
    if (load_data(ctx, &t, AMP_SPLIT_TEST, &test)) goto done;
    amp_session_options so = {.struct_size = sizeof so, .backend = o.backend, .threads = o.threads};
    if ((st = amp_session_create(m, &so, &s))) {
        fprintf(stderr, "amprt: %s\n", amp_context_last_error(ctx));
        goto done;
    }
    amp_value_info in0 = {.struct_size = sizeof in0}, out0 = {.struct_size = sizeof out0};
    amp_model_input_info(m, 0, &in0);
    amp_model_output_info(m, 0, &out0);
    double t0 = cli_now_ms();
    double acc = accuracy(NULL, s, in0.name, out0.name, test, t.limit_test, t.batch > 0 ? t.batch : 256);
    if (isnan(acc)) goto done;
    int64_t n = t.limit_test > 0 && t.limit_test < test->n ? t.limit_test : test->n;
    printf("%s: accuracy %.4f on %lld test images (%.1f ms)\n", o.positional[0], acc, (long long)n, cli_now_ms() - t0);
    rc = 0;
done:
    amp_session_destroy(s);
    amp_image_dataset_destroy(test);
    cli_autocast_free(&ca);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    cli_free(&o);
    return rc;
}

/* amprt plot OUT.svg LOG.jsonl...: one chart from several --json-log files (FP16 AMP beside
 * FP32, say). Each file is a series named after the file's "precision" field. */
static const char *const usage_plot =
    "usage: amprt plot OUT.svg LOG.jsonl... [--title TEXT]\n"
    "  Draws train loss and test accuracy per epoch of several `amprt train --json-log` files.\n";

static bool json_num(const char *line, const char *key, double *v) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return false;
    char *end;
    *v = strtod(p + strlen(pat), &end);
    return end != p + strlen(pat);
}

int cmd_plot(int argc, char **argv) {
    const char *title = NULL, *files[16];
    int nf = 0;
    const char *out = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_plot, stdout);
            return 0;
        } else if (strcmp(argv[i], "--title") == 0 && i + 1 < argc) {
            title = argv[++i];
        } else if (!out) {
            out = argv[i];
        } else if (nf < 16) {
            files[nf++] = argv[i];
        }
    }
    if (!out || nf == 0) {
        fputs(usage_plot, stderr);
        return 2;
    }
    cli_plot_series ser[16];
    double *loss[16] = {0}, *acc[16] = {0};
    char names[16][64];
    int rc = 1;
    for (int f = 0; f < nf; f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp) {
            fprintf(stderr, "amprt: cannot read '%s'\n", files[f]);
            goto done;
        }
        loss[f] = calloc(4096, sizeof(double));
        acc[f] = calloc(4096, sizeof(double));
        snprintf(names[f], sizeof names[f], "%s", files[f]);
        int n = 0;
        char line[4096];
        while (loss[f] && acc[f] && fgets(line, sizeof line, fp) && n < 4096) {
            double e, l, a;
            if (!json_num(line, "epoch", &e) || !json_num(line, "train_loss", &l) || !json_num(line, "test_accuracy", &a))
                continue;
            const char *pr = strstr(line, "\"precision\":\"");
            if (pr) {
                pr += 13;
                size_t k = 0;
                while (pr[k] && pr[k] != '"' && k + 1 < sizeof names[f]) k++;
                memcpy(names[f], pr, k);
                names[f][k] = 0;
            }
            loss[f][n] = l;
            acc[f][n] = a;
            n++;
        }
        fclose(fp);
        if (n == 0) {
            fprintf(stderr, "amprt: '%s' holds no epoch lines\n", files[f]);
            goto done;
        }
        ser[f] = (cli_plot_series){.name = names[f], .loss = loss[f], .acc = acc[f], .n = n};
    }
    amp_context *ctx = cli_context();
    amp_status s = cli_plot_write(ctx, out, title, ser, nf);
    if (s) fprintf(stderr, "amprt: %s\n", amp_context_last_error(ctx));
    else rc = 0;
    amp_context_destroy(ctx);
done:
    for (int f = 0; f < nf; f++) {
        free(loss[f]);
        free(acc[f]);
    }
    return rc;
}
