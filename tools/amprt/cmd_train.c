/* amprt train and amprt evaluate: image classifiers on IDX datasets (Fashion-MNIST). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
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
    "usage: amprt train MODEL --data DIR [--epochs N] [--batch B] [--precision fp16|bf16|fp32|fp16-pure]\n"
    "                   [--optimizer sgd|adamw] [--lr X] [--momentum X] [--nesterov] [--weight-decay X]\n"
    "                   [--beta1 X] [--beta2 X] [--epsilon X]\n"
    "                   [--schedule constant|step|cosine] [--warmup N] [--step-size N] [--gamma X]\n"
    "                   [--total-steps N] [--min-lr X]\n"
    "                   [--max-grad-norm X] [--freeze PATTERN]... [--seed N] [--threads N]\n"
    "                   [--backend cpu|cuda|auto] [--fusion auto|on|off]\n"
    "                   [--out FILE.onnx] [--out-dtype fp32|fp16|bf16] [--plot FILE.svg] [--json-log FILE]\n"
    "                   [--checkpoint FILE [--checkpoint-every N]] [--resume FILE]\n"
    "                   [--max-steps N] [--limit-train N] [--limit-test N] [--progress auto|tty|plain]\n"
    "                   [--json] [--quiet]\n"
    "  Trains MODEL (an image classifier taking [B,1,H,W]) on the IDX data set in DIR\n"
    "  (train-*/t10k-* files, as Debian's /usr/share/datasets/fashion-mnist) with softmax cross\n"
    "  entropy. --precision (alias --amp) fp16 (default): autocast FP16, FP32 master weights,\n"
    "  dynamic loss scaling; bf16: autocast BF16; fp32 (or off): FP32; fp16-pure: weights,\n"
    "  gradients and updates all FP16 (the naive scheme, for comparison). --out-dtype is the\n"
    "  precision of the written model (default fp32).\n"
    "  --threads N: CPU threads (default: all cores). Prints progress, the test accuracy per\n"
    "  epoch, and writes the trained model (--out), a chart (--plot), one JSON object per epoch\n"
    "  (--json-log) and checkpoints (every N steps and at each epoch end) that --resume\n"
    "  continues exactly.\n"
    "  --freeze keeps initializers whose names match the pattern (fnmatch) fixed. A value given\n"
    "  is used as given, 0 included (--weight-decay 0: AdamW without decay); the defaults are\n"
    "  torch's: lr 0.01 (SGD) or 0.001 (AdamW), weight decay 0 (SGD) or 0.01 (AdamW), betas\n"
    "  0.9 and 0.999, epsilon 1e-8, gamma 0.1.\n"
    "  --quiet (-q) leaves out the backend line, the progress within an epoch and the notes\n"
    "  (resumed, stopped, wrote); each epoch's summary line, warnings and errors stay.\n"
    "  Progress and the epochs go to stderr; stdout gets one summary line at the end (epochs,\n"
    "  steps, final loss and accuracy, the best accuracy, time, the model written), or with\n"
    "  --json the same as one JSON object.\n";

/* After the training options are peeled, cli_parse takes these. */
static const cli_command train_cmd = {"train", usage_train,
                                      CLI_THREADS | CLI_BACKEND | CLI_FUSION | CLI_QUIET | CLI_JSON};

static const char *const usage_eval =
    "usage: amprt evaluate MODEL --data DIR [--batch B] [--precision fp16|bf16] [--limit-test N] [--threads N]\n"
    "                      [--backend cpu|cuda|auto] [--fusion auto|on|off] [--json] [--quiet]\n"
    "  Runs MODEL on the test split of DIR and prints the accuracy (argmax of the first output);\n"
    "  --json prints it as one JSON object (model, backend, precision, accuracy, images, ms).\n"
    "  --threads N: CPU threads (default: all cores). --batch: images per run (default 256).\n" CLI_PRECISION_HELP
        CLI_QUIET_HELP;

static const cli_command eval_cmd = {"evaluate", usage_eval,
                                     CLI_AUTOCAST | CLI_CONVERT | CLI_THREADS | CLI_BACKEND | CLI_FUSION | CLI_QUIET | CLI_JSON};

/* The training options evaluate reads; it refuses the others. */
static const char *const eval_opts[] = {"--data", "--batch", "--limit-test"};

typedef struct train_opts {
    const char *data, *out, *plot, *json_log, *checkpoint, *resume, *progress;
    const char *amp, *amp_opt; /* --precision (or --amp) and the spelling given */
    amp_dtype out_dtype;
    int epochs, batch, checkpoint_every;
    int64_t max_steps, limit_train, limit_test;
    uint64_t seed;
    amp_trainer_options to;
    const char **freeze; /* --freeze patterns, to.n_freeze of them */
    double mean, std;
} train_opts;

/* Options that take a value: the text ones, then the numbers with their ranges. An integer
 * option takes decimal digits only ("3e9" and "0.5" are refused, not truncated); a number
 * option any finite value in its range. The ranges keep every value representable where the
 * library stores it (the learning rate is a float on the device). */
static const char *const text_opts[] = {"--data",     "--out",      "--plot",     "--json-log",  "--checkpoint",
                                        "--resume",   "--amp",      "--progress", "--out-dtype", "--optimizer",
                                        "--schedule", "--freeze",   "--precision"};

typedef enum { NUM_LR, NUM_MOMENTUM, NUM_WD, NUM_BETA1, NUM_BETA2, NUM_EPS, NUM_GAMMA, NUM_CLIP, NUM_MIN_LR,
               NUM_EPOCHS, NUM_BATCH, NUM_WARMUP, NUM_STEP_SIZE, NUM_CKPT_EVERY, NUM_MAX_STEPS, NUM_LIMIT_TRAIN,
               NUM_LIMIT_TEST, NUM_SEED, NUM_TOTAL_STEPS } num_id;

static const struct {
    const char *opt;
    num_id id;
    bool integer;
    double lo, hi;
    unsigned given; /* set bit: the value is used as given, 0 included */
} num_opts[] = {
    {"--lr", NUM_LR, false, 0, 1e6, AMP_TRAIN_SET_LR},
    {"--momentum", NUM_MOMENTUM, false, 0, 1, 0},
    {"--weight-decay", NUM_WD, false, 0, 1e6, AMP_TRAIN_SET_WEIGHT_DECAY},
    {"--beta1", NUM_BETA1, false, 0, 1, AMP_TRAIN_SET_BETA1},
    {"--beta2", NUM_BETA2, false, 0, 1, AMP_TRAIN_SET_BETA2},
    {"--epsilon", NUM_EPS, false, 0, 1, AMP_TRAIN_SET_EPSILON},
    {"--gamma", NUM_GAMMA, false, 0, 1e6, AMP_TRAIN_SET_GAMMA},
    {"--max-grad-norm", NUM_CLIP, false, 0, 1e30, 0},
    {"--min-lr", NUM_MIN_LR, false, 0, 1e6, 0},
    {"--epochs", NUM_EPOCHS, true, 1, 1e6, 0},
    {"--batch", NUM_BATCH, true, 1, 1 << 24, 0},
    {"--warmup", NUM_WARMUP, true, 0, 1e15, 0},
    {"--step-size", NUM_STEP_SIZE, true, 0, 1e15, 0},
    {"--checkpoint-every", NUM_CKPT_EVERY, true, 0, 1e9, 0},
    {"--max-steps", NUM_MAX_STEPS, true, 0, 1e15, 0},
    {"--limit-train", NUM_LIMIT_TRAIN, true, 0, 1e15, 0},
    {"--limit-test", NUM_LIMIT_TEST, true, 0, 1e15, 0},
    {"--seed", NUM_SEED, true, 0, 9007199254740992.0, 0},
    {"--total-steps", NUM_TOTAL_STEPS, true, 0, 1e15, 0},
};

/* Parse s as option opt's value into *v; 0 after printing why. */
static int num(const char *s, const char *opt, bool integer, double lo, double hi, double *v) {
    char *end;
    errno = 0;
    if (integer) {
        long long x = strtoll(s, &end, 10);
        *v = (double)x;
        if (!*s || *end || errno || *v < lo || *v > hi) {
            fprintf(stderr, "amprt: %s expects an integer from %.0f to %.0f, got '%s'\n", opt, lo, hi, s);
            return 0;
        }
        return 1;
    }
    *v = strtod(s, &end);
    if (!*s || *end || !isfinite(*v) || !(*v >= lo) || !(*v <= hi)) {
        fprintf(stderr, "amprt: %s expects a number from %g to %g, got '%s'\n", opt, lo, hi, s);
        return 0;
    }
    return 1;
}

static void set_num(train_opts *t, num_id id, double v) {
    switch (id) {
    case NUM_LR: t->to.lr = v; break;
    case NUM_MOMENTUM: t->to.momentum = v; break;
    case NUM_WD: t->to.weight_decay = v; break;
    case NUM_BETA1: t->to.beta1 = v; break;
    case NUM_BETA2: t->to.beta2 = v; break;
    case NUM_EPS: t->to.epsilon = v; break;
    case NUM_GAMMA: t->to.gamma = v; break;
    case NUM_CLIP: t->to.max_grad_norm = v; break;
    case NUM_MIN_LR: t->to.min_lr = v; break;
    case NUM_EPOCHS: t->epochs = (int)v; break;
    case NUM_BATCH: t->batch = (int)v; break;
    case NUM_WARMUP: t->to.warmup_steps = (int64_t)v; break;
    case NUM_STEP_SIZE: t->to.step_size = (int64_t)v; break;
    case NUM_CKPT_EVERY: t->checkpoint_every = (int)v; break;
    case NUM_MAX_STEPS: t->max_steps = (int64_t)v; break;
    case NUM_LIMIT_TRAIN: t->limit_train = (int64_t)v; break;
    case NUM_LIMIT_TEST: t->limit_test = (int64_t)v; break;
    case NUM_SEED: t->seed = (uint64_t)v; break;
    case NUM_TOTAL_STEPS: t->to.total_steps = (int64_t)v; break;
    }
}

static void train_opts_free(train_opts *t) {
    free(t->freeze);
    t->freeze = NULL;
}

/* Peel the training options cmd takes (evaluate: eval_opts; its --precision is cli_parse's);
 * the rest (as many slots as argc) goes to cli_parse. Returns 0, or 2 after printing why (t
 * freed). */
static int parse_train(int argc, char **argv, train_opts *t, char **rest, int *nrest, const cli_command *cmd) {
    const bool eval = cmd == &eval_cmd;
    memset(t, 0, sizeof *t);
    t->epochs = 2;
    t->batch = 64;
    t->checkpoint_every = 200;
    t->seed = 1;
    t->amp = "fp16";
    t->amp_opt = "--precision";
    t->out_dtype = AMP_F32;
    t->mean = 0.2860;
    t->std = 0.3530;
    t->to.struct_size = sizeof t->to;
    *nrest = 0;
    t->freeze = calloc((size_t)argc + 1, sizeof *t->freeze);
    if (!t->freeze) {
        fprintf(stderr, "amprt: out of memory parsing the command line\n");
        return 2;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int k = -1;
        for (size_t j = 0; j < sizeof num_opts / sizeof num_opts[0] && k < 0; j++)
            if (strcmp(a, num_opts[j].opt) == 0) k = (int)j;
        bool text = false;
        for (size_t j = 0; j < sizeof text_opts / sizeof text_opts[0]; j++) text |= strcmp(a, text_opts[j]) == 0;
        if (eval && strcmp(a, "--precision") == 0) {
            k = -1;
            text = false;
        } else if (eval && (k >= 0 || text || strcmp(a, "--nesterov") == 0)) {
            bool read = false;
            for (size_t j = 0; j < sizeof eval_opts / sizeof eval_opts[0]; j++) read |= strcmp(a, eval_opts[j]) == 0;
            if (!read) {
                cli_refuse(cmd->name, a);
                goto bad;
            }
        }
        if ((k >= 0 || text) && i + 1 >= argc) {
            fprintf(stderr, "amprt: %s needs a value\n", a);
            goto bad;
        }
        if (k >= 0) {
            double v;
            if (!num(argv[++i], a, num_opts[k].integer, num_opts[k].lo, num_opts[k].hi, &v)) goto bad;
            set_num(t, num_opts[k].id, v);
            t->to.set |= num_opts[k].given;
            continue;
        }
        if (!text) {
            if (strcmp(a, "--nesterov") == 0) {
                t->to.nesterov = 1;
            } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                fputs(cmd->usage, stdout);
                train_opts_free(t);
                exit(0);
            } else {
                rest[(*nrest)++] = argv[i];
            }
            continue;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--data") == 0) t->data = v;
        else if (strcmp(a, "--out") == 0) t->out = v;
        else if (strcmp(a, "--plot") == 0) t->plot = v;
        else if (strcmp(a, "--json-log") == 0) t->json_log = v;
        else if (strcmp(a, "--checkpoint") == 0) t->checkpoint = v;
        else if (strcmp(a, "--resume") == 0) t->resume = v;
        else if (strcmp(a, "--amp") == 0 || strcmp(a, "--precision") == 0) t->amp = v, t->amp_opt = a;
        else if (strcmp(a, "--progress") == 0) {
            if (strcmp(v, "auto") != 0 && strcmp(v, "tty") != 0 && strcmp(v, "plain") != 0) {
                fprintf(stderr, "amprt: --progress expects auto, tty or plain, got '%s'\n", v);
                goto bad;
            }
            t->progress = v;
        } else if (strcmp(a, "--out-dtype") == 0) {
            t->out_dtype = cli_parse_dtype(v, "--out-dtype");
            if (!t->out_dtype) goto bad;
        } else if (strcmp(a, "--optimizer") == 0) {
            if (strcmp(v, "sgd") == 0) t->to.optimizer = AMP_OPTIM_SGD;
            else if (strcmp(v, "adamw") == 0) t->to.optimizer = AMP_OPTIM_ADAMW;
            else {
                fprintf(stderr, "amprt: --optimizer expects sgd or adamw, got '%s'\n", v);
                goto bad;
            }
        } else if (strcmp(a, "--schedule") == 0) {
            if (strcmp(v, "constant") == 0) t->to.schedule = AMP_LR_CONSTANT;
            else if (strcmp(v, "step") == 0) t->to.schedule = AMP_LR_STEP;
            else if (strcmp(v, "cosine") == 0) t->to.schedule = AMP_LR_COSINE;
            else {
                fprintf(stderr, "amprt: --schedule expects constant, step or cosine, got '%s'\n", v);
                goto bad;
            }
        } else {
            t->freeze[t->to.n_freeze++] = v;
        }
    }
    t->to.freeze = t->freeze;
    if (strcmp(t->amp, "fp16") == 0) t->to.precision = AMP_TRAIN_FP16;
    else if (strcmp(t->amp, "bf16") == 0) t->to.precision = AMP_TRAIN_BF16;
    else if (strcmp(t->amp, "off") == 0 || strcmp(t->amp, "fp32") == 0) t->to.precision = AMP_TRAIN_FP32;
    else if (strcmp(t->amp, "fp16-pure") == 0) t->to.precision = AMP_TRAIN_FP16_PURE;
    else {
        fprintf(stderr, "amprt: %s expects fp16, bf16, fp32 (or off) or fp16-pure, got '%s'\n", t->amp_opt, t->amp);
        goto bad;
    }
    return 0;
bad:
    train_opts_free(t);
    return 2;
}

/* A view of rows [from, from + n) of a tensor whose first dim is the batch. */
static void rows(amp_tensor *dst, const amp_tensor *src, int64_t from, int64_t n) {
    int64_t dims[AMP_MAX_RANK];
    memcpy(dims, src->dims, sizeof dims);
    int64_t row = src->numel / (src->dims[0] ? src->dims[0] : 1);
    dims[0] = n;
    amp_tensor_view(dst, src->dtype, src->rank, dims, (char *)src->data + (size_t)(from * row) * amp_dtype_size(src->dtype));
}

static void print_shape(FILE *f, int rank, const int64_t *dims) {
    fputc('[', f);
    for (int d = 0; d < rank; d++) fprintf(f, "%s%lld", d ? "," : "", (long long)dims[d]);
    fputc(']', f);
}

/* y must be [b, classes] with every label of the batch below classes; 0, or 1 after a message. */
static int check_scores(const amp_tensor *y, const char *name, int64_t b, const int64_t *labels, int64_t from) {
    if (y->rank != 2 || y->dims[0] != b || y->dims[1] < 1 || !amp_dtype_is_float(y->dtype)) {
        fprintf(stderr, "amprt: the model's output '%s' is %s ", name, amp_dtype_name(y->dtype));
        print_shape(stderr, y->rank, y->dims);
        fprintf(stderr, "; a classifier gives float scores [batch, classes], here [%lld, classes]\n", (long long)b);
        return 1;
    }
    for (int64_t r = 0; r < b; r++)
        if (labels[from + r] >= y->dims[1]) {
            fprintf(stderr, "amprt: test sample %lld has label %lld, but the model's output '%s' has %lld classes\n",
                    (long long)(from + r), (long long)labels[from + r], name, (long long)y->dims[1]);
            return 1;
        }
    return 0;
}

static int64_t argmax_row(const amp_tensor *y, int64_t r) {
    int64_t c = y->dims[1], best = 0;
    for (int64_t k = 1; k < c; k++)
        if (amp_ld(y->dtype, y->data, r * c + k) > amp_ld(y->dtype, y->data, r * c + best)) best = k;
    return best;
}

/* Accuracy of the trainer's model (or of a session) on the test set, in batches; NAN after a
 * message. */
static double accuracy(amp_trainer *tr, amp_session *s, const char *in_name, const char *out_name,
                       const amp_image_dataset *d, int64_t limit, int batch) {
    int64_t n = limit > 0 && limit < d->n ? limit : d->n, right = 0;
    const int64_t *labels = d->labels->data;
    if (n == 0) {
        fprintf(stderr, "amprt: the test set is empty\n");
        return NAN;
    }
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
        if (check_scores(y, out_name, b, labels, from)) {
            amp_tensor_destroy(y);
            return NAN;
        }
        for (int64_t r = 0; r < b; r++) right += argmax_row(y, r) == labels[from + r];
        amp_tensor_destroy(y);
    }
    return (double)right / (double)n;
}

/* The model's interface for train and evaluate: one input [B,1,H,W] (dims may be symbolic)
 * and a first output [B, classes] where declared. *classes is the declared class count, or 0
 * when the file leaves it open (checked on the first output then). 0, or 1 after a message. */
static int classifier_io(amp_model *m, amp_value_info *in0, amp_value_info *out0, int64_t *classes) {
    *classes = 0;
    if (amp_model_input_count(m) != 1 || amp_model_input_info(m, 0, in0)) {
        fprintf(stderr, "amprt: the model has %d inputs; an image classifier takes one, [batch,1,H,W]\n",
                amp_model_input_count(m));
        return 1;
    }
    if (in0->rank >= 0 && (in0->rank != 4 || (in0->dims[1] >= 0 && in0->dims[1] != 1))) {
        fprintf(stderr, "amprt: the model's input '%s' is ", in0->name);
        print_shape(stderr, in0->rank, in0->dims);
        fprintf(stderr, "; an image classifier takes [batch,1,H,W]\n");
        return 1;
    }
    if (amp_model_output_count(m) < 1 || amp_model_output_info(m, 0, out0)) {
        fprintf(stderr, "amprt: the model has no outputs\n");
        return 1;
    }
    if (out0->rank >= 0 && out0->rank != 2) {
        fprintf(stderr, "amprt: the model's output '%s' is ", out0->name);
        print_shape(stderr, out0->rank, out0->dims);
        fprintf(stderr, "; a classifier gives scores [batch, classes]\n");
        return 1;
    }
    if (out0->rank == 2 && out0->dims[1] >= 0) {
        if (out0->dims[1] < 1 || out0->dims[1] > INT_MAX) {
            fprintf(stderr, "amprt: the model's output '%s' declares %lld classes\n", out0->name, (long long)out0->dims[1]);
            return 1;
        }
        *classes = out0->dims[1];
    }
    return 0;
}

/* Labels are checked against the model's classes as the files are read. */
static int load_data(amp_context *ctx, const train_opts *t, amp_data_split split, int64_t classes,
                     amp_image_dataset **d) {
    amp_dataset_options dopt = {.struct_size = sizeof dopt, .mean = t->mean, .std = t->std,
                                .n_classes = classes > 0 ? (int)classes : INT_MAX};
    amp_status s = amp_image_dataset_load_dir(ctx, t->data, split, &dopt, d);
    if (s) {
        fprintf(stderr, "amprt: %s data: %s: %s\n", split == AMP_SPLIT_TRAIN ? "training" : "test", amp_status_name(s),
                amp_context_last_error(ctx));
        return 1;
    }
    return 0;
}

/* The data's images fit the model's declared input; 0, or 1 after a message. */
static int check_images(const amp_value_info *in0, const amp_image_dataset *d, const char *what) {
    if (in0->rank == 4 && ((in0->dims[2] >= 0 && in0->dims[2] != d->h) || (in0->dims[3] >= 0 && in0->dims[3] != d->w))) {
        fprintf(stderr, "amprt: the %s images are %lldx%lld, but the model's input '%s' is ", what, (long long)d->h,
                (long long)d->w, in0->name);
        print_shape(stderr, in0->rank, in0->dims);
        fputc('\n', stderr);
        return 1;
    }
    return 0;
}

/* Checkpoints carry (epoch, position): the batch index in the low 32 bits, the batch size in
 * the high bits (0 in checkpoints of older versions), so a mid-epoch resume knows where the
 * epoch's samples stand. */
static int64_t ckpt_pos(int64_t batch_index, int batch) { return batch_index | ((int64_t)batch << 32); }

/* A weight that is not finite after the epoch's last step (its loss was still finite) ends the
 * run as a divergence; the library refuses to write such a model or checkpoint anyway. */
static int check_finite_params(amp_trainer *tr, int64_t step) {
    for (int i = 0; i < amp_trainer_param_count(tr); i++) {
        const char *name;
        amp_tensor *w;
        if (amp_trainer_param(tr, i, &name, &w)) continue;
        if (!amp_dtype_is_float(w->dtype)) continue;
        for (int64_t e = 0; e < w->numel; e++)
            if (!isfinite(amp_ld(w->dtype, w->data, e))) {
                fprintf(stderr, "\namprt: training diverged: parameter '%s' holds %g after step %lld (lower --lr?); "
                                "no model or checkpoint written\n",
                        name, amp_ld(w->dtype, w->data, e), (long long)step);
                return 1;
            }
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    train_opts t;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    if (!rest) {
        fprintf(stderr, "amprt: out of memory parsing the command line\n");
        return 2;
    }
    int rc = parse_train(argc, argv, &t, rest, &nrest, &train_cmd);
    if (rc) {
        free(rest);
        return rc;
    }
    cli_opts o;
    rc = cli_parse(nrest, rest, 2, &o, &train_cmd);
    free(rest);
    if (rc) {
        train_opts_free(&t);
        return rc;
    }
    if (o.n_positional != 1 || !t.data) {
        if (!t.data) fprintf(stderr, "amprt: train needs --data DIR\n");
        else fprintf(stderr, "amprt: train takes one model, got %d\n", o.n_positional);
        fputs(usage_train, stderr);
        cli_free(&o);
        train_opts_free(&t);
        return 2;
    }
    /* what is read and written is checked before anything is loaded or trained */
    if (cli_check_data_dir(t.data) || (t.resume && cli_check_regular(t.resume, "--resume")) || (t.out && cli_check_writable(t.out, "--out")) ||
        (t.checkpoint && cli_check_writable(t.checkpoint, "--checkpoint")) ||
        (t.plot && cli_check_writable(t.plot, "--plot")) || (t.json_log && cli_check_writable(t.json_log, "--json-log"))) {
        cli_free(&o);
        train_opts_free(&t);
        return 1;
    }
    t.to.threads = o.threads;
    t.to.backend = o.backend;
    t.to.fusion = o.fusion;
    amp_context *ctx = cli_context(NULL);
    amp_model *m = NULL;
    amp_trainer *tr = NULL;
    amp_image_dataset *train = NULL, *test = NULL;
    amp_batcher *bat = NULL;
    amp_tensor *bx = NULL, *by = NULL;
    double *losses = NULL, *accs = NULL;
    FILE *jl = NULL;
    rc = 1;
    amp_status s;
    if (cli_load_model(ctx, o.positional[0], &m)) goto done;
    amp_value_info in0 = {.struct_size = sizeof in0}, out0 = {.struct_size = sizeof out0};
    int64_t classes = 0;
    if (classifier_io(m, &in0, &out0, &classes)) goto done;
    if (load_data(ctx, &t, AMP_SPLIT_TRAIN, classes, &train) || load_data(ctx, &t, AMP_SPLIT_TEST, classes, &test))
        goto done;
    if (test->h != train->h || test->w != train->w) {
        fprintf(stderr, "amprt: the test images are %lldx%lld, the training images %lldx%lld\n", (long long)test->h,
                (long long)test->w, (long long)train->h, (long long)train->w);
        goto done;
    }
    if (check_images(&in0, train, "training")) goto done;
    if (t.limit_train > 0 && t.limit_train < train->n) {
        /* keep the first limit_train samples: the views stay inside the owned tensors */
        train->n = t.limit_train;
        train->images->dims[0] = train->labels->dims[0] = t.limit_train;
        train->images->numel = t.limit_train * train->h * train->w;
        train->labels->numel = t.limit_train;
    }
    s = amp_trainer_create(m, &t.to, &tr);
    if (s) {
        fprintf(stderr, "amprt: cannot build the training step: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        goto done;
    }
    {
        const char *note = NULL;
        const char *bn = amp_trainer_backend(tr, &note);
        cli_say_backend(&o, bn, note);
    }
    amp_batcher_options bo = {.struct_size = sizeof bo, .batch = t.batch, .seed = t.seed, .drop_last = true};
    if ((s = amp_batcher_create(ctx, train, &bo, &bat))) {
        fprintf(stderr, "amprt: %s\n", amp_context_last_error(ctx));
        goto done;
    }
    int64_t xd[4] = {t.batch, 1, train->h, train->w}, yd[1] = {t.batch};
    if ((s = amp_tensor_create(ctx, AMP_F32, 4, xd, &bx)) || (s = amp_tensor_create(ctx, AMP_I64, 1, yd, &by))) {
        fprintf(stderr, "amprt: batch tensors: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        goto done;
    }
    int64_t per_epoch = amp_batcher_batches_per_epoch(bat), total_steps = 0;
    int64_t start_epoch = 0, start_batch = 0;
    if (t.resume) {
        int64_t pos = 0;
        s = amp_trainer_load_checkpoint(tr, t.resume, &start_epoch, &pos);
        if (s) {
            fprintf(stderr, "amprt: cannot resume: %s: %s\n", amp_status_name(s), amp_trainer_last_error(tr));
            goto done;
        }
        start_batch = pos & 0xffffffff;
        int64_t ck_batch = pos >> 32;
        if (start_batch > 0 && ck_batch > 0 && ck_batch != t.batch) {
            fprintf(stderr, "amprt: cannot resume: '%s' stopped inside epoch %lld after %lld batches of %lld; "
                            "resume with --batch %lld\n",
                    t.resume, (long long)start_epoch + 1, (long long)start_batch, (long long)ck_batch, (long long)ck_batch);
            goto done;
        }
        if (start_epoch < 0 || start_epoch > INT_MAX || start_batch > per_epoch) {
            fprintf(stderr, "amprt: cannot resume: '%s' is at epoch %lld, batch %lld, but an epoch here has %lld batches "
                            "(another --batch or --limit-train?)\n",
                    t.resume, (long long)start_epoch + 1, (long long)start_batch, (long long)per_epoch);
            goto done;
        }
        if (!o.quiet)
            fprintf(stderr, "resumed from %s at epoch %lld, batch %lld\n", t.resume, (long long)start_epoch + 1,
                    (long long)start_batch);
        if (start_epoch >= t.epochs)
            fprintf(stderr, "amprt: the checkpoint has finished all %d epochs; nothing to train\n", t.epochs);
    }
    losses = calloc((size_t)t.epochs + 1, sizeof(double));
    accs = calloc((size_t)t.epochs + 1, sizeof(double));
    if (!losses || !accs) {
        fprintf(stderr, "amprt: out of memory\n");
        goto done;
    }
    if (t.json_log && !(jl = fopen(t.json_log, start_epoch || start_batch ? "a" : "w"))) {
        fprintf(stderr, "amprt: cannot write '%s': %s\n", t.json_log, strerror(errno));
        goto done;
    }
    cli_progress_mode pm = CLI_PROGRESS_AUTO;
    if (t.progress && strcmp(t.progress, "plain") == 0) pm = CLI_PROGRESS_PLAIN;
    if (t.progress && strcmp(t.progress, "tty") == 0) pm = CLI_PROGRESS_TTY;
    cli_progress pr;
    cli_progress_init(&pr, stderr, pm, NULL, NULL);
    const char *in_name = in0.name;
    /* for the summary on stdout: the epochs this run finished or cut short, and their time */
    int64_t last_epoch = -1, best_epoch = -1, steps_before = total_steps;
    double train_t0 = cli_now_ms();
    for (int64_t e = start_epoch; e < t.epochs; e++) {
        int64_t first = e == start_epoch ? start_batch : 0, next = first;
        if ((s = amp_batcher_seek(bat, e, first))) {
            fprintf(stderr, "amprt: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
            goto done;
        }
        cli_progress_epoch_begin(&pr, (int)e, t.epochs, per_epoch, first);
        double sum = 0;
        int64_t nb = 0, skipped_nonfinite = 0;
        double t0 = cli_now_ms();
        bool stop = false;
        for (int64_t b = first; b < per_epoch; b++) {
            int64_t cnt = 0;
            if ((s = amp_batcher_next(bat, bx, by, &cnt))) {
                fprintf(stderr, "\namprt: batch %lld: %s: %s\n", (long long)b, amp_status_name(s), amp_context_last_error(ctx));
                goto done;
            }
            if (cnt == 0) break;
            double loss;
            const amp_tensor *xin = bx;
            s = amp_trainer_step(tr, 1, &in_name, &xin, by, &loss);
            if (s) {
                fprintf(stderr, "\namprt: training step failed: %s: %s\n", amp_status_name(s), amp_trainer_last_error(tr));
                goto done;
            }
            amp_trainer_state st = {.struct_size = sizeof st};
            amp_trainer_get_state(tr, &st);
            next = b + 1;
            total_steps++;
            /* every step's loss is in the mean; a non-finite one stops training, except on a
             * step the loss scaler skipped (its weights did not change) */
            if (isfinite(loss)) {
                sum += loss;
                nb++;
            } else if (st.last_skipped) {
                skipped_nonfinite++;
            } else {
                fprintf(stderr, "\namprt: training diverged: the loss is %g at step %lld (epoch %lld, batch %lld); "
                                "no model or checkpoint written (lower --lr, or --max-grad-norm)\n",
                        loss, (long long)st.steps, (long long)e + 1, (long long)b + 1);
                goto done;
            }
            if (!o.quiet) cli_progress_step(&pr, b + 1, loss, t.to.precision == AMP_TRAIN_FP16 ? st.loss_scale : 0.0);
            if (t.checkpoint && t.checkpoint_every > 0 && (b + 1) % t.checkpoint_every == 0) {
                if ((s = amp_trainer_save_checkpoint(tr, t.checkpoint, e, ckpt_pos(b + 1, t.batch)))) {
                    fprintf(stderr, "\namprt: checkpoint: %s\n", amp_trainer_last_error(tr));
                    goto done;
                }
            }
            if (t.max_steps > 0 && total_steps >= t.max_steps) {
                stop = true;
                break;
            }
        }
        bool finished = next >= per_epoch;
        double secs = (cli_now_ms() - t0) / 1e3;
        amp_trainer_state st = {.struct_size = sizeof st};
        amp_trainer_get_state(tr, &st);
        if (check_finite_params(tr, st.steps)) goto done;
        double acc = accuracy(tr, NULL, in_name, out0.name, test, t.limit_test, 256);
        if (isnan(acc)) goto done;
        losses[e] = nb ? sum / (double)nb : NAN;
        accs[e] = acc;
        last_epoch = e;
        if (best_epoch < 0 || acc > accs[best_epoch]) best_epoch = e;
        cli_progress_epoch_end(&pr, losses[e], acc);
        if (skipped_nonfinite)
            fprintf(stderr, "  (%lld steps skipped by the loss scaler with a non-finite loss are not in the mean)\n",
                    (long long)skipped_nonfinite);
        /* an epoch cut short by --max-steps is not logged as an epoch: the resumed run logs it */
        if (jl && finished) {
            fprintf(jl,
                    "{\"epoch\":%lld,\"train_loss\":%.6g,\"test_accuracy\":%.6g,\"epoch_seconds\":%.3f,"
                    "\"loss_scale\":%.6g,\"steps\":%lld,\"steps_skipped\":%lld,\"lr\":%.6g,\"precision\":\"%s\"}\n",
                    (long long)e + 1, losses[e], acc, secs, st.loss_scale, (long long)st.steps,
                    (long long)st.steps_skipped, st.lr, t.amp);
            fflush(jl);
        }
        if (t.checkpoint) {
            /* where the next run starts: the next epoch, or the next batch of this one */
            s = finished ? amp_trainer_save_checkpoint(tr, t.checkpoint, e + 1, ckpt_pos(0, t.batch))
                         : amp_trainer_save_checkpoint(tr, t.checkpoint, e, ckpt_pos(next, t.batch));
            if (s) {
                fprintf(stderr, "amprt: checkpoint: %s\n", amp_trainer_last_error(tr));
                goto done;
            }
        }
        if (!finished && !o.quiet)
            fprintf(stderr, "stopped after %lld steps at epoch %lld, batch %lld of %lld%s\n", (long long)total_steps,
                    (long long)e + 1, (long long)next, (long long)per_epoch, t.checkpoint ? " (--resume continues there)" : "");
        if (t.plot) {
            char title[512];
            snprintf(title, sizeof title, "%s, %s", o.positional[0], t.amp);
            cli_plot_series ser = {.name = t.amp, .loss = losses, .acc = accs, .n = (int)(e + 1)};
            if ((s = cli_plot_write(ctx, t.plot, title, &ser, 1))) {
                fprintf(stderr, "amprt: %s\n", amp_context_last_error(ctx));
                goto done;
            }
        }
        if (stop) break;
    }
    if (t.out) {
        s = amp_trainer_export(tr, t.out, t.out_dtype);
        if (s) {
            fprintf(stderr, "amprt: cannot write '%s': %s\n", t.out, amp_trainer_last_error(tr));
            goto done;
        }
        if (!o.quiet) fprintf(stderr, "wrote %s\n", t.out);
    }
    if (last_epoch >= 0) {
        amp_trainer_state st = {.struct_size = sizeof st};
        amp_trainer_get_state(tr, &st);
        double secs = (cli_now_ms() - train_t0) / 1e3;
        int64_t steps = total_steps - steps_before;
        if (o.json) {
            printf("{\"model\": ");
            cli_json_str(stdout, o.positional[0]);
            printf(", \"backend\": ");
            cli_json_str(stdout, amp_trainer_backend(tr, NULL));
            printf(", \"precision\": \"%s\", \"epochs\": %lld, \"steps\": %lld, \"steps_total\": %lld, "
                   "\"steps_skipped\": %lld, \"train_loss\": %.6g, \"test_accuracy\": %.6g, \"best_accuracy\": %.6g, "
                   "\"best_epoch\": %lld, \"loss_scale\": %.6g, \"seconds\": %.3f, \"out\": ",
                   t.amp, (long long)last_epoch + 1, (long long)steps, (long long)st.steps, (long long)st.steps_skipped,
                   losses[last_epoch], accs[last_epoch], accs[best_epoch], (long long)best_epoch + 1, st.loss_scale, secs);
            if (t.out) cli_json_str(stdout, t.out);
            else printf("null");
            printf("}\n");
        } else {
            printf("%s: %s, epoch %lld of %d, %lld steps in %.1f s (%lld in all, %lld skipped for non-finite gradients): "
                   "train loss %.4f, test accuracy %.4f (best %.4f at epoch %lld)%s%s\n",
                   o.positional[0], t.amp, (long long)last_epoch + 1, t.epochs, (long long)steps, secs,
                   (long long)st.steps, (long long)st.steps_skipped, losses[last_epoch], accs[last_epoch],
                   accs[best_epoch], (long long)best_epoch + 1, t.out ? "; wrote " : "", t.out ? t.out : "");
        }
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
    train_opts_free(&t);
    return rc;
}

int cmd_evaluate(int argc, char **argv) {
    train_opts t;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    if (!rest) {
        fprintf(stderr, "amprt: out of memory parsing the command line\n");
        return 2;
    }
    int rc = parse_train(argc, argv, &t, rest, &nrest, &eval_cmd);
    if (rc) {
        free(rest);
        return rc;
    }
    cli_opts o;
    rc = cli_parse(nrest, rest, 2, &o, &eval_cmd);
    free(rest);
    if (rc) {
        train_opts_free(&t);
        return rc;
    }
    if (o.n_positional != 1 || !t.data) {
        if (!t.data) fprintf(stderr, "amprt: evaluate needs --data DIR\n");
        else fprintf(stderr, "amprt: evaluate takes one model, got %d\n", o.n_positional);
        fputs(usage_eval, stderr);
        cli_free(&o);
        train_opts_free(&t);
        return 2;
    }
    if (cli_check_data_dir(t.data)) {
        cli_free(&o);
        train_opts_free(&t);
        return 1;
    }
    amp_context *ctx = cli_context(NULL);
    amp_model *m = NULL;
    amp_session *s = NULL;
    amp_image_dataset *test = NULL;
    cli_autocast ca;
    memset(&ca, 0, sizeof ca);
    rc = 1;
    amp_status st;
    if (cli_load_model(ctx, o.positional[0], &m)) goto done;
    amp_dtype lo = cli_autocast_dtype(&o);
    if (lo && cli_autocast_model(ctx, &o, lo, true, &m, &ca)) goto done;
    amp_value_info in0 = {.struct_size = sizeof in0}, out0 = {.struct_size = sizeof out0};
    int64_t classes = 0;
    if (classifier_io(m, &in0, &out0, &classes)) goto done;
    if (load_data(ctx, &t, AMP_SPLIT_TEST, classes, &test) || check_images(&in0, test, "test")) goto done;
    amp_session_options so = {.struct_size = sizeof so, .backend = o.backend, .threads = o.threads, .fusion = o.fusion};
    if ((st = amp_session_create(m, &so, &s))) {
        fprintf(stderr, "amprt: cannot create a session: %s: %s\n", amp_status_name(st), amp_context_last_error(ctx));
        goto done;
    }
    cli_say_backend(&o, amp_session_backend(s), amp_session_backend_note(s));
    double t0 = cli_now_ms();
    double acc = accuracy(NULL, s, in0.name, out0.name, test, t.limit_test, t.batch > 0 ? t.batch : 256);
    if (isnan(acc)) goto done;
    int64_t n = t.limit_test > 0 && t.limit_test < test->n ? t.limit_test : test->n;
    double ms = cli_now_ms() - t0;
    if (o.json) {
        printf("{\"model\": ");
        cli_json_str(stdout, o.positional[0]);
        printf(", \"backend\": ");
        cli_json_str(stdout, amp_session_backend(s));
        printf(", \"precision\": %s, \"accuracy\": %.6f, \"images\": %lld, \"ms\": %.1f}\n", cli_precision_json(lo), acc,
               (long long)n, ms);
    } else {
        printf("%s: accuracy %.4f on %lld test images (%.1f ms)\n", o.positional[0], acc, (long long)n, ms);
    }
    rc = 0;
done:
    amp_session_destroy(s);
    amp_image_dataset_destroy(test);
    cli_autocast_free(&ca);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    cli_free(&o);
    train_opts_free(&t);
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
        } else if (strcmp(argv[i], "--title") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "amprt: option --title needs a value\n");
                return 2;
            }
            title = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_refuse("plot", argv[i]);
        } else if (!out) {
            out = argv[i];
        } else if (nf < 16) {
            files[nf++] = argv[i];
        } else {
            fprintf(stderr, "amprt: plot draws at most 16 logs\n");
            return 2;
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
    amp_context *ctx = cli_context(NULL);
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
