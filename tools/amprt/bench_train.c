/* amprt bench --train: the time of one training step (forward, loss, backward, optimizer) on a
 * backend, its device memory as planned, and, where NVML is there (a GPU machine), its energy.
 *
 * Inputs are the seeded ones of `amprt run`; the loss is cross entropy against seeded labels for
 * outputs of rank 2 (N x C) and rank 3 read as N x C x D (labels N x D), MSE toward a seeded
 * target of the output's shape otherwise. SGD with momentum 0.9 at lr 1e-3; --precision fp16 or
 * bf16 trains in that AMP precision (FP32 master weights; FP16 with dynamic loss scaling).
 * The step's wall time is what amp_trainer_step takes, which includes the one wait for the loss:
 * what an application's loop sees. */
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tools/amprt/cli.h"

/* ---- NVML's energy counter, opened at run time (no build dependency) ------------------------- */

typedef int (*nvml_init_fn)(void);
typedef int (*nvml_handle_fn)(unsigned, void **);
typedef int (*nvml_energy_fn)(void *, unsigned long long *);

/* The device's energy counter in millijoules since the driver loaded; false without NVML. */
static bool nvml_energy_mj(unsigned long long *mj) {
    static int state; /* 0: not tried, 1: ready, -1: unavailable */
    static void *dev;
    static nvml_energy_fn energy;
    if (state == 0) {
        state = -1;
        void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        nvml_init_fn init = h ? (nvml_init_fn)dlsym(h, "nvmlInit_v2") : NULL;
        nvml_handle_fn handle = h ? (nvml_handle_fn)dlsym(h, "nvmlDeviceGetHandleByIndex_v2") : NULL;
        energy = h ? (nvml_energy_fn)dlsym(h, "nvmlDeviceGetTotalEnergyConsumption") : NULL;
        if (init && handle && energy && init() == 0 && handle(0, &dev) == 0) state = 1;
    }
    return state == 1 && energy(dev, mj) == 0;
}

/* One timed training step: the trainer, its inputs and labels, and the last loss. */
typedef struct train_step {
    amp_trainer *t;
    int nin;
    const char **names;
    amp_tensor **ins, *labels;
    double loss;
} train_step;

static amp_status train_run(void *user) {
    train_step *s = user;
    return amp_trainer_step(s->t, s->nin, s->names, (const amp_tensor *const *)s->ins, s->labels, &s->loss);
}

/* seeded values in [lo, hi) (floored for integer tensors) */
static amp_tensor *seeded_like(amp_context *ctx, amp_dtype dt, int rank, const int64_t *dims, double lo, double hi) {
    amp_tensor *t = NULL;
    if (amp_tensor_create(ctx, dt, rank, dims, &t)) return NULL;
    uint64_t s = 0x2545F4914F6CDD1Dull;
    void *d = amp_tensor_data(t);
    for (int64_t i = 0; i < amp_tensor_numel(t); i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u = lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0;
        if (dt == AMP_I64) ((int64_t *)d)[i] = (int64_t)u;
        else ((float *)d)[i] = (float)u;
    }
    return t;
}

int cli_train_labels(amp_context *ctx, const cli_opts *o, amp_model *m, int nin, const char **names, amp_tensor **ins,
                     amp_tensor **labels, bool *ce) {
    /* the output's shape decides the loss: one prediction on the CPU */
    amp_tensor *probe = NULL;
    amp_trainer *t = NULL;
    amp_trainer_options po = {.struct_size = sizeof po, .backend = "cpu", .threads = o->threads};
    amp_status st = amp_trainer_create(m, &po, &t);
    if (!st) st = amp_trainer_predict(t, nin, names, (const amp_tensor *const *)ins, NULL, &probe);
    if (st) {
        fprintf(stderr, "amprt: %s\n", t ? amp_trainer_last_error(t) : amp_context_last_error(ctx));
        amp_trainer_destroy(t);
        return 1;
    }
    amp_trainer_destroy(t);
    int prank = amp_tensor_rank(probe);
    const int64_t *pd = amp_tensor_dims(probe);
    *ce = prank == 2 || prank == 3;
    if (*ce) {
        int64_t ld[2] = {pd[0], prank == 3 ? pd[2] : 1};
        *labels = seeded_like(ctx, AMP_I64, prank == 3 ? 2 : 1, ld, 0, (double)pd[1]);
    } else {
        *labels = seeded_like(ctx, AMP_F32, prank, pd, -0.5, 0.5);
    }
    amp_tensor_destroy(probe);
    return *labels ? 0 : 1;
}

int cli_bench_train(amp_context *ctx, const cli_opts *o, amp_model *m) {
    int rc = 1, nin = amp_model_input_count(m);
    const char **names = calloc((size_t)nin + 1, sizeof *names);
    amp_tensor **ins = calloc((size_t)nin + 1, sizeof *ins), *labels = NULL;
    cli_times times = {0};
    amp_trainer *t = NULL;
    amp_status st = AMP_OK;
    if (!names || !ins) {
        fprintf(stderr, "amprt: out of memory\n");
        goto done;
    }
    amp_dtype lo = cli_autocast_dtype(o);
    amp_train_precision prec = lo == AMP_F16 ? AMP_TRAIN_FP16 : lo == AMP_BF16 ? AMP_TRAIN_BF16 : AMP_TRAIN_FP32;
    if (cli_random_inputs(ctx, m, o, names, ins)) goto done;
    bool ce = false;
    if (cli_train_labels(ctx, o, m, nin, names, ins, &labels, &ce)) goto done;
    amp_trainer_options to = {.struct_size = sizeof to, .backend = o->backend, .fusion = o->fusion, .threads = o->threads, .precision = prec,
                              .optimizer = AMP_OPTIM_SGD, .lr = 1e-3, .momentum = 0.9,
                              .loss = ce ? AMP_LOSS_CROSS_ENTROPY : AMP_LOSS_MSE};
    if ((st = amp_trainer_create(m, &to, &t))) {
        fprintf(stderr, "amprt: %s\n", amp_context_last_error(ctx));
        goto done;
    }
    const char *note = NULL, *be = amp_trainer_backend(t, &note);
    cli_say_backend(o, be, note);
    train_step step = {t, nin, names, ins, labels, 0};
    /* the first step plans (and records the graph on CUDA); warm-up steps follow */
    for (int w = 0; !st && w <= o->warmup; w++) st = train_run(&step);
    unsigned long long e0 = 0, e1 = 0;
    bool energy = !st && nvml_energy_mj(&e0);
    if (!st && cli_time_runs(o, train_run, &step, &times)) st = times.status;
    energy = energy && times.ms && nvml_energy_mj(&e1) && e1 >= e0;
    if (st) fprintf(stderr, "amprt: training step failed: %s: %s\n", amp_status_name(st), amp_trainer_last_error(t));
    if (!times.ms) goto done;
    double loss = step.loss;
    amp_plan_stats ps = {.struct_size = sizeof ps};
    amp_trainer_last_plan(t, &ps);
    int64_t batch = ins[0] && amp_tensor_rank(ins[0]) > 0 ? amp_tensor_dims(ins[0])[0] : 1;
    const char *pname = prec == AMP_TRAIN_FP16 ? "fp16" : prec == AMP_TRAIN_BF16 ? "bf16" : "fp32";
    double mj = energy ? (double)(e1 - e0) / times.n : -1;
    if (o->json) {
        printf("{\"model\":");
        cli_json_str(stdout, o->positional[0]);
        printf(",\"what\":\"train_step\",\"backend\":\"%s\",\"precision\":\"%s\",\"loss\":\"%s\",\"batch\":%lld,"
               "\"warmup\":%d,",
               be, pname, ce ? "cross_entropy" : "mse", (long long)batch, o->warmup);
        cli_times_json(stdout, &times);
        printf(",\"arena_bytes\":%zu,\"workspace_bytes\":%zu,\"persistent_bytes\":%zu,\"device_bytes\":%zu,"
               "\"lower_bound_bytes\":%zu,\"nodes_run\":%d,\"last_loss\":",
               ps.arena_bytes, ps.workspace_bytes, ps.persistent_bytes, ps.arena_bytes + ps.persistent_bytes,
               ps.lower_bound_bytes, ps.nodes_run);
        /* a skipped FP16 step's loss is NaN, which JSON cannot hold */
        if (isfinite(loss)) printf("%.6g", loss);
        else printf("null");
        printf(",\"energy_mj_per_step\":");
        if (energy) printf("%.3f}\n", mj);
        else printf("null}\n");
    } else {
        printf("%s: training step, %s on %s, batch %lld, %d steps: ", o->positional[0], pname, be, (long long)batch,
               times.n);
        cli_times_text(stdout, &times);
        printf("\n");
        printf("device memory: arena %zu bytes (lower bound %zu), persistent %zu, %zu in all; the steps' workspaces, "
               "each in the arena for its step alone, sum to %zu\n",
               ps.arena_bytes, ps.lower_bound_bytes, ps.persistent_bytes, ps.arena_bytes + ps.persistent_bytes,
               ps.workspace_bytes);
        if (energy) printf("energy: %.1f mJ per step (NVML)\n", mj);
    }
    rc = 0;
done:
    for (int i = 0; ins && i < nin; i++) amp_tensor_destroy(ins[i]);
    free(names);
    free(ins);
    cli_times_free(&times);
    amp_tensor_destroy(labels);
    amp_trainer_destroy(t);
    return rc;
}
