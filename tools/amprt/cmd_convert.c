/* amprt convert: FP32 ONNX in, mixed-precision ONNX out (or an import/export round trip). */
#include <string.h>

#include "tools/amprt/cli.h"

static const char *const usage =
    "usage: amprt convert IN.onnx OUT.onnx [--precision fp16|bf16|fp32] [--io-16bit]\n"
    "                     [--block OP,OP...] [--block-nodes NAME,NAME...] [--calibrate DIR]\n"
    "                     [--range-limit X] [--underflow-limit X] [--round nearest|zero] [--json]\n"
    "                     [--verbose] [--dot FILE.dot] [--max-error E] [--max-memory BYTES] [--quiet]\n"
    "                     [--target-opset N] [--keep-op-classes]\n"
    "  Converts IN to mixed precision (default fp16): MatMul/Gemm/Conv and what lies between them\n"
    "  in 16 bits, numerically sensitive ops (Exp, Log, Pow, Softmax, reductions, norms, losses)\n"
    "  in FP32, one Cast per tensor and dtype. OUT is written to a temporary name, then renamed.\n"
    "  IN - reads the model from stdin, OUT - writes it to stdout (the report then goes to stderr).\n"
    "  --io-16bit           graph inputs and outputs become 16-bit too (by default they stay FP32,\n"
    "                       so the converted model takes and gives what the original did;\n"
    "                       --keep-io-types says the default out loud)\n"
    "  --block OP,...       keep these op types in FP32; --block-nodes NAME,... these nodes\n"
    "  --calibrate DIR      run the FP32 model on DIR's input sets (DIR/input_K.pb or\n"
    "                       DIR/*/input_K.pb) and keep FP32 every node whose inputs or outputs\n"
    "                       exceed --range-limit (default: largest finite 16-bit value / 16),\n"
    "                       or whose computed values are nonzero but all below --underflow-limit\n"
    "                       (default: the smallest normal 16-bit value, 6.1e-5 for fp16; a\n"
    "                       negative X turns this guard off)\n"
    "  --max-error E        with --calibrate: keep FP32 the fewest nodes (by MatMul/Gemm/Conv\n"
    "                       FLOPs) that hold every float output within relative L2 error E of\n"
    "                       FP32 on the calibration sets (max over outputs of\n"
    "                       sqrt(sum (y - y32)^2 / sum y32^2) over all sets), found by running\n"
    "                       candidate conversions (at most 100 passes over the sets); fails and\n"
    "                       writes nothing when even the all-FP32 compute misses E. Nodes FP32\n"
    "                       by their op class alone (Softmax, LayerNormalization, Reduce*, ...,\n"
    "                       not those kept by ranges, the opset or --block) are tried in 16 bits\n"
    "                       too, all at once then by halves, and go where E still holds: the\n"
    "                       error target on your own data is the contract, the classes a prior\n"
    "  --keep-op-classes    with --max-error: leave the op classes' FP32 nodes in FP32 (the\n"
    "                       search then only returns 16-bit nodes to FP32)\n"
    "  --round zero         truncate when converting constants and in inserted casts (amprt's\n"
    "                       own runs; ONNX Cast always rounds to nearest even)\n"
    "  --precision fp32     no conversion: an import/export round trip (--dtype is an alias)\n"
    "  --target-opset N     first raise the model's opset to N, rewriting the nodes whose form\n"
    "                       changed on the way (Split/Squeeze/Unsqueeze/Reduce* axes, Pad, Clip,\n"
    "                       Slice, TopK, Dropout, Upsample -> Resize, ...) with the same meaning;\n"
    "                       refused, nothing written, for a node that cannot be carried. BF16 has\n"
    "                       few ONNX kernels before opset 13 and none for Conv/pooling before 22;\n"
    "                       with --precision fp32 it is an opset upgrade alone\n"
    "  --json               print the conversion report as one JSON object, with \"fp32_nodes\": one\n"
    "                       {node, op, reason, value, limit} per node left in FP32; with --max-error\n"
    "                       also \"error\", \"flops16_share\" (null without it), \"error_passes\",\n"
    "                       \"nodes_error_kept\" (each such node's value: its measured\n"
    "                       contribution) and \"nodes_relaxed\" (deny-class nodes moved to 16\n"
    "                       bits; a deny-class node tried and kept carries the error measured\n"
    "                       with it in 16 bits as value, E as limit)\n"
    "  --verbose            after the counts, one line per node left in FP32 and why: deny-class,\n"
    "                       range or underflow (with max |x| and the limit), blocked, opset (no\n"
    "                       16-bit type in ONNX at the model's opset), neighbours\n"
    "  --dot FILE           draw the converted graph for Graphviz, the reason as FP32 nodes' tooltip\n"
    "  --max-memory BYTES   most one calibration plan may hold (default 8G)\n"
    "  Calibration runs on all cores; convert takes no --threads.\n" CLI_QUIET_HELP;

static const cli_command convert_cmd = {"convert", usage,
                                        CLI_DTYPE | CLI_KEEP_IO | CLI_CONVERT | CLI_JSON | CLI_MAX_MEMORY | CLI_QUIET |
                                            CLI_VERBOSE | CLI_DOT | CLI_MAX_ERROR | CLI_TARGET_OPSET};

/* A node the max_error search measured in 16 bits and kept FP32 (its value: that error). */
static bool measured_kept(const cli_decision *d) {
    return d->reason == AMP_REASON_ERROR_TARGET || (cli_reason_measured(d) && d->value >= 0);
}

int cmd_convert(int argc, char **argv) {
    cli_opts o;
    int rc = cli_parse(argc, argv, 2, &o, &convert_cmd);
    if (rc) return rc;
    if (o.n_positional != 2) {
        fputs(usage, stderr);
        cli_free(&o);
        return 2;
    }
    amp_dtype lo = cli_parse_dtype(o.precision ? o.precision : "fp16", "--precision");
    if (!lo) {
        cli_free(&o);
        return 2;
    }
    if (o.dot && lo == AMP_F32) {
        fprintf(stderr, "amprt: convert: --dot draws a conversion; give --precision fp16 or bf16\n");
        cli_free(&o);
        return 2;
    }
    /* the output's folder before the work; stale temporaries of a killed conversion go */
    if (strcmp(o.positional[1], "-") != 0 && cli_check_writable(o.positional[1], "the output")) {
        cli_free(&o);
        return 1;
    }
    amp_context *ctx = cli_context(&o);
    amp_model *m = NULL;
    cli_autocast ca;
    memset(&ca, 0, sizeof ca);
    rc = 1;
    if (cli_load_model(ctx, o.positional[0], &m)) goto done;
    int64_t opset_in = amp_model_opset(m);
    int upgraded = 0;
    if (lo == AMP_F32 && o.target_opset > 0) {
        amp_model *u = NULL;
        amp_status st = amp_model_convert_opset(m, o.target_opset, &u, &upgraded);
        if (st) {
            fprintf(stderr, "amprt: convert: %s: %s\n", amp_status_name(st), amp_context_last_error(ctx));
            goto done;
        }
        amp_model_destroy(m);
        m = u;
    }
    if (lo != AMP_F32 && cli_autocast_model(ctx, &o, lo, false, &m, &ca)) goto done;
    if (cli_save_model(ctx, m, o.positional[1])) goto done;
    if (lo == AMP_F32 && o.target_opset > 0 && !o.quiet)
        fprintf(strcmp(o.positional[1], "-") == 0 ? stderr : stdout, "%s -> %s: opset %lld -> %d, %d nodes rewritten\n",
                o.positional[0], o.positional[1], (long long)opset_in, o.target_opset, upgraded);
    if (lo == AMP_BF16 && o.target_opset == 0 && opset_in < 13 && !ca.report.already_16bit && !o.quiet)
        fprintf(stderr,
                "amprt: warning: %s is at opset %lld, where ONNX gives few ops a bfloat16 type: %d nodes stay FP32 "
                "because of the opset alone. --target-opset 13 gives most ops (MatMul, Gemm, Relu, Add, ...) a "
                "bfloat16 type, --target-opset 22 Conv and the pools too; the conversion rewrites the nodes whose "
                "form changed and refuses, writing nothing, where it cannot keep their meaning.\n",
                o.positional[0], (long long)opset_in, ca.report.nodes_opset_kept);
    if (lo != AMP_F32) {
        /* the report goes where the model does not: stderr when the model is on stdout */
        FILE *out = strcmp(o.positional[1], "-") == 0 ? stderr : stdout;
        const amp_autocast_report *r = &ca.report;
        if (o.json) {
            cli_report_json(out, &ca);
            fputc('\n', out);
        } else if (r->already_16bit) {
            fprintf(out, "%s: already in 16-bit precision (or converted by amprt before); written unchanged\n",
                   o.positional[0]);
        } else {
            fprintf(out, "%s -> %s (%s): %d nodes in 16 bits, %d in FP32, %d other; %d casts inserted, %d removed; "
                   "%d initializers converted, %d duplicated, %d values clamped; %d nodes kept FP32 by ranges, %d "
                   "by underflow, %d blocked, %d by the opset (%d -> %d, %d nodes rewritten)\n",
                   o.positional[0], o.positional[1], amp_dtype_name(lo), r->nodes_16bit, r->nodes_fp32, r->nodes_other,
                   r->casts_inserted, r->casts_removed, r->inits_converted, r->inits_duplicated, r->values_clamped,
                   r->nodes_range_kept, r->nodes_underflow_kept, r->nodes_blocked, r->nodes_opset_kept, r->opset_from,
                   r->opset_to, r->nodes_opset_rewritten);
            for (int i = 0; o.verbose && i < ca.n_why; i++) {
                char why[512];
                cli_reason_text(why, sizeof why, &ca.why[i]);
                fprintf(out, "  FP32 %s (%s): %s\n", ca.why[i].node[0] ? ca.why[i].node : "(unnamed)", ca.why[i].op, why);
            }
        }
        /* the nodes the search measured and kept FP32: its own, and the op classes' it tried */
        int listed = 0;
        for (int i = 0; i < ca.n_why; i++) listed += measured_kept(&ca.why[i]);
        if (o.max_error > 0 && !o.quiet)
            fprintf(stderr,
                    "amprt: --max-error %g: error %.3g, %.1f%% of MatMul/Gemm/Conv FLOPs in 16 bits, %d passes over the "
                    "calibration sets; %d nodes kept FP32 for the error, %d FP32 by their op class or its neighbours "
                    "moved to 16 bits by measurement%s\n",
                    o.max_error, r->error, 100.0 * r->flops16_share, r->error_passes, r->nodes_error_kept,
                    r->nodes_relaxed, listed ? "; kept (error with each in 16 bits):" : "");
        for (int i = 0; o.max_error > 0 && !o.quiet && i < ca.n_why; i++)
            if (measured_kept(&ca.why[i]))
                fprintf(stderr, "  %s (%s): error %.3g in 16 bits\n", ca.why[i].node[0] ? ca.why[i].node : "(unnamed)",
                        ca.why[i].op, ca.why[i].value);
    }
    if (o.dot && cli_write_dot(ctx, m, o.dot, &ca, NULL)) goto done;
    rc = 0;
done:
    cli_autocast_free(&ca);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    cli_free(&o);
    return rc;
}
