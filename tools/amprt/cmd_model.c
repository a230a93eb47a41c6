/* amprt inspect, run and bench. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "base/elem.h"
#include "runtime/internal.h"
#include "tools/amprt/cli.h"

static const char *const usage_inspect =
    "usage: amprt inspect MODEL [--json] [--dim NAME=VALUE]... [--batch B] [--verbose]\n"
    "                     [--precision fp16|bf16] [--dot FILE.dot [--dot-all]] [--train] [--threads N]\n"
    "                     [--backend ...] [--max-memory BYTES]\n"
    "  Prints the opset, inputs and outputs (symbolic dims by name), op counts, parameters and\n"
    "  the memory plan (arena, lower bound, persistent bytes) for the declared shapes; unbound\n"
    "  symbolic dims take --dim values, the first dim of each input takes --batch, others 1.\n"
    "  The plan is the CPU's with --threads N (default: all cores; workspaces grow with threads).\n"
    "  The autocast section gives nodes per precision, casts, and the share of MatMul/Gemm/Conv\n"
    "  FLOPs in 16 bits; with --precision the model is converted first and the FP32 and converted\n"
    "  parameter and arena bytes are shown side by side. --dot draws the graph (converted with\n"
    "  --precision), nodes coloured by precision, casts as diamonds; nodes the plan folds (shape\n"
    "  arithmetic, constant subgraphs) are left out unless --dot-all.\n"
    "  --train plans one training step on --backend (default cpu; cross entropy on the first\n"
    "  output, SGD; FP16 AMP with --precision fp16) and reports its arena and lower bound beside\n"
    "  the inference plan.\n" CLI_PRECISION_HELP;

static const cli_command inspect_cmd = {
    "inspect", usage_inspect,
    CLI_JSON | CLI_DIM | CLI_BATCH | CLI_VERBOSE | CLI_AUTOCAST | CLI_CONVERT | CLI_DOT | CLI_TRAIN | CLI_THREADS |
        CLI_BACKEND | CLI_MAX_MEMORY};

static const char *const usage_run =
    "usage: amprt run MODEL [--input NAME=FILE.pb|.npy|.raw]... [--output-dir DIR] [--threads N] [--batch B]\n"
    "                 [--dim NAME=VALUE]... [--shapes NAME:D0xD1x...[,...]] [--seed N]\n"
    "                 [--backend cpu|cuda|auto] [--fusion auto|on|off] [--precision fp16|bf16]\n"
    "                 [--max-memory BYTES] [--json] [--quiet]\n"
    "  Runs the model once (MODEL - reads it from stdin). --input reads a TensorProto (.pb); by\n"
    "  the extension, a NumPy array (.npy: format 1.0 or 2.0, C order; <f4, <f2, <i8, <i4, |u1 or\n"
    "  |b1) or raw little-endian bytes (.raw or .bin, trtexec's --loadInputs: the input's dtype,\n"
    "  the shape --shapes/--dim/--batch give it, one free dim taken from the file's size).\n"
    "  Inputs not given are random values seeded by --seed N (default 42) of the declared shape\n"
    "  (symbolic dims from --dim, the first from --batch, others 1), or of the shape --shapes\n"
    "  gives the input (trtexec's spelling: input:1x3x224x224; its rank and fixed dims must be\n"
    "  the model's, and its symbolic dims bind those names for every input).\n"
    "  --threads N: CPU threads (default: all cores).\n"
    "  Prints each output's shape, its first values and, for 2-D float outputs, the argmax of\n"
    "  each row; --output-dir writes output_K.pb files. --json prints one JSON object instead:\n"
    "  per output its name, dtype, shape, values (NaN and infinities as null, counted in \"nan\"\n"
    "  and \"inf\"; at most 2^20 of them, \"truncated\" beyond), min, max and argmax per row; then\n"
    "  the two run times and the arena.\n" CLI_PRECISION_HELP CLI_QUIET_HELP;

static const cli_command run_cmd = {"run", usage_run,
                                    CLI_INPUT | CLI_OUTPUT_DIR | CLI_THREADS | CLI_BATCH | CLI_DIM | CLI_SHAPES |
                                        CLI_SEED | CLI_QUIET | CLI_BACKEND | CLI_FUSION | CLI_AUTOCAST | CLI_CONVERT |
                                        CLI_MAX_MEMORY | CLI_JSON};

static const char *const usage_bench =
    "usage: amprt bench MODEL [--batch B] [--threads N] [--iterations R] [--duration S] [--warmup W]\n"
    "                   [--input NAME=FILE.pb|.npy|.raw]... [--dim NAME=V]... [--shapes NAME:D0xD1x...[,...]]\n"
    "                   [--backend ...] [--fusion auto|on|off] [--json] [--verbose] [--precision fp16|bf16]\n"
    "                   [--train] [--seed N] [--max-memory BYTES] [--quiet]\n"
    "  Inputs are those of 'amprt run' (--input, --shapes and --seed as there). Times R runs\n"
    "  (--iterations, alias --runs; default 50) after W warm-up runs (default 5), and with\n"
    "  --duration S as many more as fill S seconds (at most 10 million runs), on --threads N\n"
    "  CPU threads (default: all cores, as every command; --threads 1 times single-thread work),\n"
    "  and prints the median, min, max, p50, p90 and p99 milliseconds (percentiles interpolated\n"
    "  between ranks), throughput and the memory plan; --verbose adds the time of each node.\n"
    "  With --precision the converted model is timed, and the FP32 model's parameter and arena\n"
    "  bytes are reported beside the converted one's.\n"
    "  --train times training steps instead (SGD, cross entropy for N x C and N x C x D outputs,\n"
    "  MSE otherwise; --precision fp16|bf16 trains in that AMP precision): the step times as\n"
    "  above, the step's device memory (arena with its workspaces, persistent state) and, where\n"
    "  NVML is present, energy per step.\n" CLI_PRECISION_HELP CLI_QUIET_HELP;

static const cli_command bench_cmd = {"bench", usage_bench,
                                      CLI_BATCH | CLI_THREADS | CLI_RUNS | CLI_INPUT | CLI_DIM | CLI_SHAPES | CLI_SEED |
                                          CLI_QUIET | CLI_BACKEND | CLI_FUSION | CLI_JSON | CLI_VERBOSE | CLI_AUTOCAST |
                                          CLI_CONVERT | CLI_TRAIN | CLI_MAX_MEMORY};

static int fail(amp_context *ctx, amp_status s, const char *what) {
    fprintf(stderr, "amprt: %s: %s: %s\n", what, amp_status_name(s), amp_context_last_error(ctx));
    return 1;
}

static void print_dims_json(FILE *f, const amp_value_info *vi) {
    fputc('[', f);
    for (int d = 0; d < vi->rank; d++) {
        if (d) fputc(',', f);
        if (vi->dims[d] >= 0) fprintf(f, "%lld", (long long)vi->dims[d]);
        else if (vi->dim_names[d]) cli_json_str(f, vi->dim_names[d]);
        else fputs("null", f);
    }
    fputc(']', f);
}

static void print_dims_text(FILE *f, const amp_value_info *vi) {
    fputc('[', f);
    for (int d = 0; d < vi->rank; d++) {
        if (d) fputc(',', f);
        if (vi->dims[d] >= 0) fprintf(f, "%lld", (long long)vi->dims[d]);
        else fputs(vi->dim_names[d] ? vi->dim_names[d] : "?", f);
    }
    fputc(']', f);
}

/* Bindings: --shapes values, then --dim values, then --batch for the first dim of inputs, then
 * 1. b holds one entry per symbol of the graph; the names are the graph's. */
static void bind_all(amp_model *m, const cli_opts *o, amp_dim_binding *b, int *nb) {
    const amp_graph *g = m->g;
    *nb = 0;
    for (int si = 0; si < g->n_syms; si++) {
        int64_t v = -1;
        if (!cli_shapes_bind(m, o, g->syms[si], &v))
            for (int k = 0; k < o->n_dims; k++)
                if (strcmp(o->dims[k].name, g->syms[si]) == 0) v = o->dims[k].value;
        if (v < 0) {
            /* the first dim of some input? */
            for (int i = 0; i < amp_model_input_count(m) && v < 0; i++) {
                amp_value_info vi = {.struct_size = sizeof vi};
                amp_model_input_info(m, i, &vi);
                if (vi.rank > 0 && vi.dim_names[0] && strcmp(vi.dim_names[0], g->syms[si]) == 0 && o->batch)
                    v = o->batch;
            }
        }
        if (v < 0) v = 1;
        b[*nb].name = g->syms[si];
        b[*nb].value = v;
        (*nb)++;
    }
}

int cmd_inspect(int argc, char **argv) {
    cli_opts o;
    int rc = cli_parse(argc, argv, 2, &o, &inspect_cmd);
    if (rc) return rc;
    if (o.backend && !o.train) fprintf(stderr, "amprt: inspect: --backend applies only to the training step, with --train\n");
    if (o.n_positional != 1 || (o.backend && !o.train)) {
        if (o.n_positional != 1) fputs(usage_inspect, stderr);
        cli_free(&o);
        return 2;
    }
    amp_context *ctx = cli_context(&o);
    amp_model *m = NULL;
    amp_session *s = NULL, *s32 = NULL, *sd = NULL;
    const char **ops = NULL;
    int *counts = NULL;
    amp_dim_binding *b = NULL;
    cli_autocast ca;
    memset(&ca, 0, sizeof ca);
    amp_dtype lo = cli_autocast_dtype(&o);
    amp_status st = AMP_OK;
    if (cli_load_model(ctx, o.positional[0], &m)) {
        rc = 1;
        goto done;
    }
    if (lo && cli_autocast_model(ctx, &o, lo, true, &m, &ca)) {
        rc = 1;
        goto done;
    }
    /* dtypes of values the file does not declare (for the precision census and the drawing) */
    amp_pass_typecheck(m->g, false);
    const amp_graph *g = m->g;
    /* op counts in first-seen order */
    ops = malloc(sizeof *ops * ((size_t)g->n_nodes + 1));
    counts = malloc(sizeof *counts * ((size_t)g->n_nodes + 1));
    b = malloc(sizeof *b * ((size_t)g->n_syms + 1));
    if (!ops || !counts || !b) {
        fprintf(stderr, "amprt: out of memory\n");
        rc = 1;
        goto done;
    }
    int nops = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int k;
        for (k = 0; k < nops; k++)
            if (strcmp(ops[k], g->nodes[i].op_type) == 0) break;
        if (k == nops) {
            ops[nops] = g->nodes[i].op_type;
            counts[nops++] = 0;
        }
        counts[k]++;
    }
    int64_t params = 0, param_bytes = 0;
    for (int i = 0; i < g->n_inits; i++) {
        params += g->values[g->inits[i]].init->numel;
        param_bytes += (int64_t)g->values[g->inits[i]].init->nbytes;
    }
    int nb = 0;
    bind_all(m, &o, b, &nb);
    amp_plan_stats ps = {.struct_size = sizeof ps};
    char plan_err[1024] = "";
    amp_session_options so = {.struct_size = sizeof so, .backend = "cpu", .threads = o.threads};
    st = amp_session_create(m, &so, &s);
    if (!st) st = amp_session_plan(s, nb, b, &ps);
    if (st) snprintf(plan_err, sizeof plan_err, "%s: %s", amp_status_name(st), s ? amp_session_last_error(s) : amp_context_last_error(ctx));
    /* drawn after planning, so the nodes the plan folds can be left out; the drawing is of the
     * file's graph, so where the backend fused a copy the folds come from an unfused plan */
    const amp_session *fold = st || o.dot_all ? NULL : s;
    if (fold && o.dot && s->model->g != m->g) {
        amp_session_options su = so;
        su.fusion = -1;
        amp_plan_stats pu = {.struct_size = sizeof pu};
        fold = !amp_session_create(m, &su, &sd) && !amp_session_plan(sd, nb, b, &pu) ? sd : NULL;
    }
    if (o.dot && cli_write_dot(ctx, m, o.dot, &ca, fold)) {
        rc = 1;
        goto done;
    }
    /* precision census and the 16-bit share of matmul/conv FLOPs */
    amp_autocast_report census = {.struct_size = sizeof census};
    memset(&census, 0, sizeof census);
    amp_dtype census_lo = lo;
    if (!census_lo) {
        census_lo = AMP_F16;
        for (int v = 0; v < g->n_values; v++)
            if (g->values[v].dtype == AMP_BF16) census_lo = AMP_BF16;
    }
    amp_autocast_census(g, census_lo, &census);
    int casts = 0;
    for (int i = 0; i < g->n_nodes; i++) casts += g->nodes[i].op == AMP_OP_CAST;
    double flops = 0, flops16 = 0;
    if (!plan_err[0]) cli_plan_flops(s, &flops, &flops16);
    /* the FP32 model beside the converted one */
    amp_plan_stats ps32 = {.struct_size = sizeof ps32};
    int64_t param_bytes32 = 0;
    bool have32 = false;
    if (ca.fp32) {
        for (int i = 0; i < ca.fp32->g->n_inits; i++) param_bytes32 += (int64_t)ca.fp32->g->values[ca.fp32->g->inits[i]].init->nbytes;
        if (!amp_session_create(ca.fp32, &so, &s32) && !amp_session_plan(s32, nb, b, &ps32)) have32 = true;
    }

    /* the training step's plan (forward, loss, backward, optimizer in one arena) */
    amp_plan_stats pst = {.struct_size = sizeof pst};
    char train_err[1024] = "", train_backend[32] = "";
    bool have_train = false;
    if (o.train) {
        amp_model *src = ca.fp32 ? ca.fp32 : m;
        amp_trainer_options to = {.struct_size = sizeof to, .threads = o.threads, .backend = o.backend ? o.backend : "cpu",
                                  .precision = lo == AMP_F16 ? AMP_TRAIN_FP16 : lo == AMP_BF16 ? AMP_TRAIN_BF16 : AMP_TRAIN_FP32};
        amp_trainer *tr = NULL;
        int ntin = amp_model_input_count(src);
        const char **tn = calloc((size_t)ntin + 1, sizeof *tn);
        amp_tensor **ti = calloc((size_t)ntin + 1, sizeof *ti), *lab = NULL;
        bool ce = true;
        amp_status ts = !tn || !ti ? amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory") : AMP_OK;
        if (!ts && (cli_random_inputs(ctx, src, &o, tn, ti) || cli_train_labels(ctx, &o, src, ntin, tn, ti, &lab, &ce)))
            ts = amp_seterr(ctx, AMP_ERR_INVALID_ARG, "no inputs or labels for the training step (said above)");
        to.loss = ce ? AMP_LOSS_CROSS_ENTROPY : AMP_LOSS_MSE;
        if (!ts) ts = amp_trainer_create(src, &to, &tr);
        if (!ts) {
            ts = amp_trainer_step(tr, amp_model_input_count(src), tn, (const amp_tensor *const *)ti, lab, NULL);
            if (!ts) ts = amp_trainer_last_plan(tr, &pst);
            if (!ts) snprintf(train_backend, sizeof train_backend, "%s", amp_trainer_backend(tr, NULL));
            have_train = !ts;
        }
        if (ts) snprintf(train_err, sizeof train_err, "%s: %s", amp_status_name(ts), tr ? amp_trainer_last_error(tr) : amp_context_last_error(ctx));
        for (int i = 0; ti && i < ntin; i++) amp_tensor_destroy(ti[i]);
        free(tn);
        free(ti);
        amp_tensor_destroy(lab);
        amp_trainer_destroy(tr);
    }
    FILE *f = stdout;
    int nin = amp_model_input_count(m), nout = amp_model_output_count(m);
    if (o.json) {
        fprintf(f, "{\"model\":");
        cli_json_str(f, o.positional[0]);
        fprintf(f, ",\"ir_version\":%lld,\"opset\":%lld,\"producer\":", (long long)g->ir_version, (long long)g->opset);
        cli_json_str(f, g->producer_name ? g->producer_name : "");
        fprintf(f, ",\"inputs\":[");
        for (int i = 0; i < nin; i++) {
            amp_value_info vi = {.struct_size = sizeof vi};
            amp_model_input_info(m, i, &vi);
            fprintf(f, "%s{\"name\":", i ? "," : "");
            cli_json_str(f, vi.name);
            fprintf(f, ",\"dtype\":\"%s\",\"shape\":", amp_dtype_name(vi.dtype));
            if (vi.rank >= 0) print_dims_json(f, &vi);
            else fputs("null", f);
            fputc('}', f);
        }
        fprintf(f, "],\"outputs\":[");
        for (int i = 0; i < nout; i++) {
            amp_value_info vi = {.struct_size = sizeof vi};
            amp_model_output_info(m, i, &vi);
            fprintf(f, "%s{\"name\":", i ? "," : "");
            cli_json_str(f, vi.name);
            fprintf(f, ",\"dtype\":\"%s\",\"shape\":", amp_dtype_name(vi.dtype));
            if (vi.rank >= 0) print_dims_json(f, &vi);
            else fputs("null", f);
            fputc('}', f);
        }
        fprintf(f, "],\"nodes\":%d,\"ops\":{", g->n_nodes);
        for (int k = 0; k < nops; k++) {
            if (k) fputc(',', f);
            cli_json_str(f, ops[k]);
            fprintf(f, ":%d", counts[k]);
        }
        fprintf(f, "},\"parameters\":%lld,\"parameter_bytes\":%lld,\"dims\":{", (long long)params, (long long)param_bytes);
        for (int i = 0; i < nb; i++) {
            if (i) fputc(',', f);
            cli_json_str(f, b[i].name);
            fprintf(f, ":%lld", (long long)b[i].value);
        }
        fprintf(f, "},\"plan\":");
        if (plan_err[0]) {
            fprintf(f, "null,\"plan_error\":");
            cli_json_str(f, plan_err);
        } else {
            fprintf(f,
                    "{\"arena_bytes\":%zu,\"lower_bound_bytes\":%zu,\"persistent_bytes\":%zu,\"naive_bytes\":%zu,"
                    "\"arena_over_lower_bound\":%.4f,\"strategy\":\"%s\",\"nodes_run\":%d,\"nodes_folded\":%d,"
                    "\"in_place\":%d}",
                    ps.arena_bytes, ps.lower_bound_bytes, ps.persistent_bytes, ps.naive_bytes,
                    ps.lower_bound_bytes ? (double)ps.arena_bytes / (double)ps.lower_bound_bytes : 1.0, ps.strategy,
                    ps.nodes_run, ps.nodes_folded, ps.inplace);
        }
        fprintf(f, ",\"autocast\":{\"dtype\":\"%s\",\"nodes_16bit\":%d,\"nodes_fp32\":%d,\"nodes_other\":%d,\"casts\":%d",
                amp_dtype_name(census_lo), census.nodes_16bit, census.nodes_fp32, census.nodes_other, casts);
        if (ca.fp32) fprintf(f, ",\"casts_inserted\":%d,\"report\":", ca.report.casts_inserted);
        if (ca.fp32) cli_report_json(f, &ca);
        fprintf(f, ",\"matmul_conv_flops\":%.0f,\"flops_16bit_share\":", flops);
        if (flops > 0) fprintf(f, "%.4f", flops16 / flops);
        else fputs("null", f);
        fputc('}', f);
        if (ca.fp32) {
            fprintf(f, ",\"memory\":{\"fp32\":{\"parameter_bytes\":%lld,\"arena_bytes\":", (long long)param_bytes32);
            if (have32) fprintf(f, "%zu}", ps32.arena_bytes);
            else fputs("null}", f);
            fprintf(f, ",\"converted\":{\"parameter_bytes\":%lld,\"arena_bytes\":", (long long)param_bytes);
            if (!plan_err[0]) fprintf(f, "%zu}}", ps.arena_bytes);
            else fputs("null}}", f);
        }
        if (o.train) {
            fprintf(f, ",\"train_plan\":");
            if (have_train)
                fprintf(f,
                        "{\"backend\":\"%s\",\"arena_bytes\":%zu,\"lower_bound_bytes\":%zu,\"arena_over_lower_bound\":%.4f,"
                        "\"workspace_bytes\":%zu,\"persistent_bytes\":%zu,\"device_bytes\":%zu,\"nodes_run\":%d,"
                        "\"naive_bytes\":%zu}",
                        train_backend, pst.arena_bytes, pst.lower_bound_bytes,
                        pst.lower_bound_bytes ? (double)pst.arena_bytes / (double)pst.lower_bound_bytes : 1.0,
                        pst.workspace_bytes, pst.persistent_bytes, pst.arena_bytes + pst.persistent_bytes, pst.nodes_run,
                        pst.naive_bytes);
            else {
                fprintf(f, "null,\"train_error\":");
                cli_json_str(f, train_err);
            }
        }
        fprintf(f, "}\n");
    } else {
        fprintf(f, "model      %s\nopset      %lld (ir %lld, producer %s)\n", o.positional[0], (long long)g->opset,
                (long long)g->ir_version, g->producer_name ? g->producer_name : "-");
        for (int i = 0; i < nin; i++) {
            amp_value_info vi = {.struct_size = sizeof vi};
            amp_model_input_info(m, i, &vi);
            fprintf(f, "input      %s %s ", vi.name, amp_dtype_name(vi.dtype));
            print_dims_text(f, &vi);
            fputc('\n', f);
        }
        for (int i = 0; i < nout; i++) {
            amp_value_info vi = {.struct_size = sizeof vi};
            amp_model_output_info(m, i, &vi);
            fprintf(f, "output     %s %s ", vi.name, amp_dtype_name(vi.dtype));
            print_dims_text(f, &vi);
            fputc('\n', f);
        }
        fprintf(f, "nodes      %d:", g->n_nodes);
        for (int k = 0; k < nops; k++) fprintf(f, " %s×%d", ops[k], counts[k]);
        fprintf(f, "\nparameters %lld (%lld bytes)\n", (long long)params, (long long)param_bytes);
        if (nb) {
            fprintf(f, "dims      ");
            for (int i = 0; i < nb; i++) fprintf(f, " %s=%lld", b[i].name, (long long)b[i].value);
            fputc('\n', f);
        }
        if (plan_err[0]) fprintf(f, "plan       not possible: %s\n", plan_err);
        else {
            fprintf(f, "plan       arena %zu bytes, lower bound %zu (%.3fx), naive %zu, persistent %zu\n",
                    ps.arena_bytes, ps.lower_bound_bytes,
                    ps.lower_bound_bytes ? (double)ps.arena_bytes / (double)ps.lower_bound_bytes : 1.0, ps.naive_bytes,
                    ps.persistent_bytes);
            fprintf(f, "           %s; %d nodes run, %d folded, %d in place\n", ps.strategy, ps.nodes_run,
                    ps.nodes_folded, ps.inplace);
            if (o.verbose) amp_plan_dump(s, s->last, f);
        }
        fprintf(f, "precision  %d nodes in %s, %d in FP32, %d other; %d casts", census.nodes_16bit,
                amp_dtype_name(census_lo), census.nodes_fp32, census.nodes_other, casts);
        if (flops > 0) fprintf(f, "; %.1f%% of %.3g matmul/conv FLOPs in 16 bits", 100.0 * flops16 / flops, flops);
        fputc('\n', f);
        if (o.train) {
            if (have_train)
                fprintf(f,
                        "train step on %s: arena %zu bytes, lower bound %zu (%.3fx), persistent %zu, %zu in all; "
                        "%d nodes run; their workspaces, each in the arena for its step alone, sum to %zu\n",
                        train_backend, pst.arena_bytes, pst.lower_bound_bytes,
                        pst.lower_bound_bytes ? (double)pst.arena_bytes / (double)pst.lower_bound_bytes : 1.0,
                        pst.persistent_bytes, pst.arena_bytes + pst.persistent_bytes, pst.nodes_run,
                        pst.workspace_bytes);
            else
                fprintf(f, "train step not possible: %s\n", train_err);
        }
        if (ca.fp32) {
            fprintf(f, "memory     FP32: parameters %lld bytes, arena ", (long long)param_bytes32);
            if (have32) fprintf(f, "%zu", ps32.arena_bytes);
            else fputs("-", f);
            fprintf(f, "; converted: parameters %lld bytes, arena ", (long long)param_bytes);
            if (!plan_err[0]) fprintf(f, "%zu\n", ps.arena_bytes);
            else fputs("-\n", f);
        }
    }
    rc = plan_err[0] && !o.json ? 1 : 0;
done:
    free(ops);
    free(counts);
    free(b);
    amp_session_destroy(sd);
    amp_session_destroy(s);
    amp_session_destroy(s32);
    amp_model_destroy(m);
    cli_autocast_free(&ca);
    amp_context_destroy(ctx);
    cli_free(&o);
    return rc;
}

/* The inputs and outputs of run and bench, sized by the model. */
typedef struct run_io {
    const char **names, **onames;
    amp_tensor **ins, **outs;
    int nin, nout;
} run_io;

static void run_io_free(run_io *io) {
    for (int i = 0; io->ins && i < io->nin; i++) amp_tensor_destroy(io->ins[i]);
    for (int i = 0; io->outs && i < io->nout; i++) amp_tensor_destroy(io->outs[i]);
    free(io->names);
    free(io->onames);
    free(io->ins);
    free(io->outs);
    memset(io, 0, sizeof *io);
}

/* Inputs from --input files, random values for the others. */
static int gather_inputs(amp_context *ctx, amp_model *m, const cli_opts *o, run_io *io) {
    int nin = amp_model_input_count(m);
    io->names = calloc((size_t)nin + 1, sizeof *io->names);
    io->ins = calloc((size_t)nin + 1, sizeof *io->ins);
    if (!io->names || !io->ins) {
        fprintf(stderr, "amprt: out of memory\n");
        return 1;
    }
    if (cli_load_inputs(ctx, m, o, io->names, io->ins)) return 1;
    io->nin = o->n_inputs; /* every --input name is one of the model's, none twice */
    if (io->nin == nin) return 0;
    const char **rn = calloc((size_t)nin, sizeof *rn);
    amp_tensor **rt = calloc((size_t)nin, sizeof *rt);
    int rc = 1;
    if (!rn || !rt) {
        fprintf(stderr, "amprt: out of memory\n");
        goto done;
    }
    if (cli_random_inputs(ctx, m, o, rn, rt)) goto done;
    for (int i = 0; i < nin; i++) {
        bool have = false;
        for (int k = 0; k < o->n_inputs; k++)
            if (strcmp(io->names[k], rn[i]) == 0) have = true;
        if (!have) {
            io->names[io->nin] = rn[i];
            io->ins[io->nin++] = rt[i];
            rt[i] = NULL;
        }
    }
    rc = 0;
done:
    for (int i = 0; rt && i < nin; i++) amp_tensor_destroy(rt[i]);
    free(rn);
    free(rt);
    return rc;
}

/* Load the model, open a session, gather inputs and output names: the common start of run
 * and bench. Returns 0, or 1 after printing a message, or 2 for --shapes that do not fit the
 * model (what was made is left for the caller to free). */
static int prepare_run(amp_context *ctx, const cli_opts *o, amp_model **m, amp_session **s, run_io *io,
                       cli_autocast *ca) {
    if (cli_load_model(ctx, o->positional[0], m)) return 1;
    amp_status st;
    if (cli_check_shapes(*m, o)) return 2;
    amp_dtype lo = cli_autocast_dtype(o);
    if (lo && cli_autocast_model(ctx, o, lo, true, m, ca)) return 1;
    amp_session_options so = {.struct_size = sizeof so, .backend = o->backend, .threads = o->threads, .fusion = o->fusion};
    st = amp_session_create(*m, &so, s);
    if (st) return fail(ctx, st, "cannot create a session");
    cli_say_backend(o, amp_session_backend(*s), amp_session_backend_note(*s));
    /* plan for the shapes the inputs will have before making any of them, so a declared size
     * over the memory limit (--max-memory) is refused before a byte of it is allocated; a plan
     * cannot be made for an input without a declared shape (one --input or --shapes gives, or
     * none: cli_random_inputs says so), whose size the context's tensor limit bounds instead */
    bool declared = true;
    for (int i = 0; i < amp_model_input_count(*m); i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        if (amp_model_input_info(*m, i, &vi) == AMP_OK && vi.rank < 0) declared = false;
    }
    if (declared && o->n_inputs < amp_model_input_count(*m)) {
        amp_dim_binding *b = calloc((size_t)(*m)->g->n_syms + 1, sizeof *b);
        if (!b) {
            fprintf(stderr, "amprt: out of memory\n");
            return 1;
        }
        int nb = 0;
        bind_all(*m, o, b, &nb);
        st = amp_session_plan(*s, nb, b, NULL);
        free(b);
        if (st) {
            fprintf(stderr, "amprt: cannot plan the model: %s: %s\n", amp_status_name(st), amp_session_last_error(*s));
            return 1;
        }
    }
    if (gather_inputs(ctx, *m, o, io)) return 1;
    for (int i = 0; i < o->n_inputs; i++) {
        const cli_shape *sh = cli_shape_of(o, io->names[i]);
        bool same = !sh || (sh->rank == io->ins[i]->rank &&
                            memcmp(sh->dims, io->ins[i]->dims, sizeof(int64_t) * (size_t)sh->rank) == 0);
        if (!same) {
            fprintf(stderr, "amprt: --shapes '%s' differs from the shape of its --input file\n", sh->name);
            return 2;
        }
    }
    int nout = amp_model_output_count(*m);
    if (nout == 0) {
        fprintf(stderr, "amprt: the model has no outputs\n");
        return 1;
    }
    io->onames = calloc((size_t)nout, sizeof *io->onames);
    io->outs = calloc((size_t)nout, sizeof *io->outs);
    if (!io->onames || !io->outs) {
        fprintf(stderr, "amprt: out of memory\n");
        return 1;
    }
    io->nout = nout;
    for (int i = 0; i < nout; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        amp_model_output_info(*m, i, &vi);
        io->onames[i] = vi.name;
    }
    return 0;
}

/* The column of row r's largest value in a 2-D tensor (the first of equal ones). */
static int64_t row_argmax(const amp_tensor *t, int64_t r) {
    int64_t best = 0;
    for (int64_t c = 1; c < t->dims[1]; c++)
        if (amp_ld(t->dtype, t->data, r * t->dims[1] + c) > amp_ld(t->dtype, t->data, r * t->dims[1] + best)) best = c;
    return best;
}

/* The most elements of one output that run --json writes out in full ("truncated" beyond). */
#define RUN_JSON_MAX_VALUES (1 << 20)

/* One output as a JSON object: name, dtype, shape, its values (non-finite ones as null, counted
 * in "nan" and "inf"), min and max of the finite ones, and the argmax per row of 2-D floats. */
static void output_json(FILE *f, const char *name, const amp_tensor *t) {
    fputs("{\"name\": ", f);
    cli_json_str(f, name);
    fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", amp_dtype_name(t->dtype));
    for (int d = 0; d < t->rank; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
    fputs("], \"values\": [", f);
    bool fl = amp_dtype_is_float(t->dtype);
    int64_t nan = 0, inf = 0, n = t->numel < RUN_JSON_MAX_VALUES ? t->numel : RUN_JSON_MAX_VALUES;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t e = 0; e < t->numel; e++) {
        double v = amp_ld(t->dtype, t->data, e);
        nan += isnan(v) != 0;
        inf += isinf(v) != 0;
        if (isfinite(v)) {
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (e >= n) continue;
        if (e) fputs(", ", f);
        if (!isfinite(v)) fputs("null", f);
        else if (fl) fprintf(f, "%.9g", v);
        else fprintf(f, "%.17g", v);
    }
    fprintf(f, "], \"truncated\": %s, \"nan\": %lld, \"inf\": %lld", n < t->numel ? "true" : "false",
            (long long)nan, (long long)inf);
    if (hi >= lo) fprintf(f, ", \"min\": %.9g, \"max\": %.9g", lo, hi);
    if (t->rank == 2 && fl) {
        fputs(", \"argmax\": [", f);
        for (int64_t r = 0; r < t->dims[0]; r++) fprintf(f, "%s%lld", r ? ", " : "", (long long)row_argmax(t, r));
        fputc(']', f);
    }
    fputc('}', f);
}

int cmd_run(int argc, char **argv) {
    cli_opts o;
    int rc = cli_parse(argc, argv, 2, &o, &run_cmd);
    if (rc) return rc;
    if (o.n_positional != 1) {
        fputs(usage_run, stderr);
        cli_free(&o);
        return 2;
    }
    amp_context *ctx = cli_context(&o);
    amp_model *m = NULL;
    amp_session *s = NULL;
    run_io io;
    memset(&io, 0, sizeof io);
    cli_autocast ca;
    memset(&ca, 0, sizeof ca);
    amp_status st;
    rc = 1;
    if ((rc = prepare_run(ctx, &o, &m, &s, &io, &ca))) goto done;
    rc = 1;
    double t0 = cli_now_ms();
    st = amp_session_run(s, io.nin, io.names, (const amp_tensor *const *)io.ins, io.nout, io.onames, io.outs);
    double t1 = cli_now_ms();
    if (st) {
        fprintf(stderr, "amprt: run failed: %s: %s\n", amp_status_name(st), amp_session_last_error(s));
        goto done;
    }
    /* a second run shows the time without planning */
    for (int i = 0; i < io.nout; i++) {
        amp_tensor_destroy(io.outs[i]);
        io.outs[i] = NULL;
    }
    double t2 = cli_now_ms();
    st = amp_session_run(s, io.nin, io.names, (const amp_tensor *const *)io.ins, io.nout, io.onames, io.outs);
    double t3 = cli_now_ms();
    if (st) {
        fprintf(stderr, "amprt: run failed: %s: %s\n", amp_status_name(st), amp_session_last_error(s));
        goto done;
    }
    if (o.json) {
        printf("{\"model\": ");
        cli_json_str(stdout, o.positional[0]);
        printf(", \"backend\": ");
        cli_json_str(stdout, amp_session_backend(s));
        /* the in-memory conversion run asked for (--precision), null when the model ran as stored */
        printf(", \"precision\": %s, \"outputs\": [", cli_precision_json(ca.fp32 ? cli_autocast_dtype(&o) : AMP_UNDEFINED));
    }
    for (int i = 0; i < io.nout; i++) {
        amp_tensor *t = io.outs[i];
        if (o.json) {
            printf("%s\n  ", i ? "," : "");
            output_json(stdout, io.onames[i], t);
        }
        if (!o.json) printf("output %s %s [", io.onames[i], amp_dtype_name(t->dtype));
        for (int d = 0; d < t->rank && !o.json; d++) printf("%s%lld", d ? "," : "", (long long)t->dims[d]);
        if (!o.json) {
            printf("]:");
            for (int64_t e = 0; e < t->numel && e < 8; e++) printf(" %.6g", amp_ld(t->dtype, t->data, e));
            if (t->numel > 8) printf(" ...");
            printf("\n");
        }
        /* a NaN or an infinity anywhere is worth a warning: the 8 values shown may hide it */
        if (t->dtype == AMP_F32 || t->dtype == AMP_F16 || t->dtype == AMP_BF16 || t->dtype == AMP_F64) {
            int64_t nan = 0, inf = 0, first = -1;
            for (int64_t e = 0; e < t->numel; e++) {
                double v = amp_ld(t->dtype, t->data, e);
                if (isnan(v) || isinf(v)) {
                    if (first < 0) first = e;
                    nan += isnan(v) != 0;
                    inf += isinf(v) != 0;
                }
            }
            if (first >= 0)
                fprintf(stderr,
                        "amprt: warning: output %s has %lld NaN and %lld infinite values of %lld (the first at "
                        "element %lld)%s\n",
                        io.onames[i], (long long)nan, (long long)inf, (long long)t->numel, (long long)first,
                        ca.fp32 ? " (16-bit values overflow above 65504 in FP16: try bf16, or convert with --calibrate)" : "");
        }
        if (!o.json && t->rank == 2 && amp_dtype_is_float(t->dtype)) {
            printf("argmax per row:");
            for (int64_t r = 0; r < t->dims[0] && r < 64; r++) printf(" %lld", (long long)row_argmax(t, r));
            printf("%s\n", t->dims[0] > 64 ? " ..." : "");
        }
        if (o.output_dir) {
            if (i == 0 && mkdir(o.output_dir, 0777) != 0 && errno != EEXIST) {
                fprintf(stderr, "amprt: cannot create the folder '%s': %s\n", o.output_dir, strerror(errno));
                goto done;
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/output_%d.pb", o.output_dir, i);
            st = amp_tensor_save_pb(ctx, t, io.onames[i], path);
            if (st) {
                fail(ctx, st, "cannot write the output");
                goto done;
            }
        }
    }
    amp_plan_stats ps = {.struct_size = sizeof ps};
    amp_session_last_plan(s, &ps);
    if (o.json)
        printf("\n], \"first_run_ms\": %.3f, \"second_run_ms\": %.3f, \"arena_bytes\": %zu, \"lower_bound_bytes\": %zu}\n",
               t1 - t0, t3 - t2, ps.arena_bytes, ps.lower_bound_bytes);
    else
        printf("time: first run %.3f ms (with planning), second run %.3f ms; arena %zu bytes (lower bound %zu)\n",
               t1 - t0, t3 - t2, ps.arena_bytes, ps.lower_bound_bytes);
    rc = 0;
done:
    run_io_free(&io);
    amp_session_destroy(s);
    amp_model_destroy(m);
    cli_autocast_free(&ca);
    amp_context_destroy(ctx);
    cli_free(&o);
    return rc;
}

/* One timed run of bench: the session and its inputs and outputs. */
typedef struct bench_step {
    amp_session *s;
    run_io *io;
} bench_step;

static amp_status bench_run(void *user) {
    bench_step *b = user;
    return amp_session_run(b->s, b->io->nin, b->io->names, (const amp_tensor *const *)b->io->ins, b->io->nout,
                           b->io->onames, b->io->outs);
}

int cmd_bench(int argc, char **argv) {
    cli_opts o;
    int rc = cli_parse(argc, argv, 2, &o, &bench_cmd);
    if (rc) return rc;
    if (o.n_positional != 1) {
        fputs(usage_bench, stderr);
        cli_free(&o);
        return 2;
    }
    amp_context *ctx = cli_context(&o);
    amp_model *m = NULL;
    amp_session *s = NULL;
    run_io io;
    memset(&io, 0, sizeof io);
    cli_autocast ca;
    memset(&ca, 0, sizeof ca);
    cli_times times = {0};
    amp_status st;
    rc = 1;
    if (o.threads == 0) o.threads = cli_cores(); /* the library's default, named in the report */
    if (o.train) {
        /* the training step (tools/amprt/bench_train.c) */
        if (!cli_load_model(ctx, o.positional[0], &m))
            rc = cli_check_shapes(m, &o) ? 2 : cli_bench_train(ctx, &o, m);
        goto done;
    }
    if ((rc = prepare_run(ctx, &o, &m, &s, &io, &ca))) goto done;
    rc = 1;
    bench_step step = {s, &io};
    /* first run plans and creates the output tensors; later runs reuse them */
    st = bench_run(&step);
    for (int w = 0; !st && w < o.warmup; w++) st = bench_run(&step);
    if (o.verbose && !st) amp_session_profile(s, true);
    if (!st && cli_time_runs(&o, bench_run, &step, &times)) st = times.status;
    if (st) fprintf(stderr, "amprt: run failed: %s: %s\n", amp_status_name(st), amp_session_last_error(s));
    if (!times.ms) goto done;
    double med = times.median;
    int64_t batch = io.ins[0] && io.ins[0]->rank > 0 ? io.ins[0]->dims[0] : 1;
    amp_plan_stats ps = {.struct_size = sizeof ps};
    amp_session_last_plan(s, &ps);
    /* with --autocast: the FP32 model's memory for the same inputs */
    int64_t pbytes = 0, pbytes32 = 0;
    for (int i = 0; i < m->g->n_inits; i++) pbytes += (int64_t)m->g->values[m->g->inits[i]].init->nbytes;
    amp_plan_stats ps32 = {.struct_size = sizeof ps32};
    bool have32 = false;
    if (ca.fp32) {
        for (int i = 0; i < ca.fp32->g->n_inits; i++) pbytes32 += (int64_t)ca.fp32->g->values[ca.fp32->g->inits[i]].init->nbytes;
        amp_session *s32 = NULL;
        amp_session_options so32 = {.struct_size = sizeof so32, .backend = "cpu", .threads = o.threads};
        amp_tensor **o32 = calloc((size_t)io.nout, sizeof *o32);
        if (o32 && !amp_session_create(ca.fp32, &so32, &s32) &&
            !amp_session_run(s32, io.nin, io.names, (const amp_tensor *const *)io.ins, io.nout, io.onames, o32) &&
            !amp_session_last_plan(s32, &ps32))
            have32 = true;
        for (int i = 0; o32 && i < io.nout; i++) amp_tensor_destroy(o32[i]);
        free(o32);
        amp_session_destroy(s32);
    }
    if (o.json) {
        printf("{\"model\":");
        cli_json_str(stdout, o.positional[0]);
        printf(",\"backend\":\"%s\",\"threads\":%d,\"batch\":%lld,\"warmup\":%d,", amp_session_backend(s), o.threads,
               (long long)batch, o.warmup);
        cli_times_json(stdout, &times);
        printf(",\"throughput_per_s\":%.2f,\"arena_bytes\":%zu,\"lower_bound_bytes\":%zu,\"persistent_bytes\":%zu,"
               "\"strategy\":\"%s\",\"parameter_bytes\":%lld",
               med > 0 ? 1000.0 * (double)batch / med : 0.0, ps.arena_bytes, ps.lower_bound_bytes, ps.persistent_bytes,
               ps.strategy, (long long)pbytes);
        if (ca.fp32)
            printf(",\"autocast\":\"%s\",\"memory\":{\"fp32\":{\"parameter_bytes\":%lld,\"arena_bytes\":%zu},"
                   "\"converted\":{\"parameter_bytes\":%lld,\"arena_bytes\":%zu}}",
                   o.precision, (long long)pbytes32, have32 ? ps32.arena_bytes : 0, (long long)pbytes, ps.arena_bytes);
        printf("}\n");
    } else {
        printf("%s: batch %lld, %d threads, %d runs: ", o.positional[0], (long long)batch, o.threads, times.n);
        cli_times_text(stdout, &times);
        printf(", %.1f samples/s\n", med > 0 ? 1000.0 * (double)batch / med : 0.0);
        printf("arena %zu bytes, lower bound %zu (%.3fx), persistent %zu\n", ps.arena_bytes, ps.lower_bound_bytes,
               ps.lower_bound_bytes ? (double)ps.arena_bytes / (double)ps.lower_bound_bytes : 1.0, ps.persistent_bytes);
        if (ca.fp32 && have32)
            printf("memory: FP32 parameters %lld bytes, arena %zu; %s parameters %lld bytes, arena %zu\n",
                   (long long)pbytes32, ps32.arena_bytes, o.precision, (long long)pbytes, ps.arena_bytes);
    }
    if (o.verbose && s->profile_ms) {
        const amp_graph *g = m->g;
        fprintf(stderr, "per-node time (ms per run):\n");
        for (int i = 0; i < g->n_nodes; i++)
            if (s->profile_ms[i] > 0)
                fprintf(stderr, "  %-22s %-30s %8.4f\n", g->nodes[i].op_type, g->nodes[i].name, s->profile_ms[i] / times.n);
    }
    rc = 0;
done:
    cli_times_free(&times);
    run_io_free(&io);
    amp_session_destroy(s);
    amp_model_destroy(m);
    cli_autocast_free(&ca);
    amp_context_destroy(ctx);
    cli_free(&o);
    return rc;
}
