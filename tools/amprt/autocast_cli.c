/* Autocast on the command line: options, calibration sets, FLOP shares and the DOT drawing. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "runtime/internal.h"
#include "tools/amprt/cli.h"

amp_dtype cli_parse_dtype(const char *s, const char *opt) {
    if (strcmp(s, "fp16") == 0 || strcmp(s, "float16") == 0) return AMP_F16;
    if (strcmp(s, "bf16") == 0 || strcmp(s, "bfloat16") == 0) return AMP_BF16;
    if (strcmp(s, "fp32") == 0 || strcmp(s, "float32") == 0) return AMP_F32;
    fprintf(stderr, "amprt: %s expects fp16, bf16 or fp32, got '%s'\n", opt, s);
    return AMP_UNDEFINED;
}

const char *cli_precision_json(amp_dtype lo) { return lo == AMP_F16 ? "\"fp16\"" : lo == AMP_BF16 ? "\"bf16\"" : "null"; }

amp_dtype cli_autocast_dtype(const cli_opts *o) {
    if (!o->precision) return AMP_UNDEFINED;
    amp_dtype d = cli_parse_dtype(o->precision, "--precision"); /* checked by cli_parse */
    return d == AMP_F32 ? AMP_UNDEFINED : d;
}

/* Split a comma list into out[] (pointers into buf). */
static int split_list(char *buf, const char **out, int cap) {
    int n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!*tok) continue;
        if (n >= cap) return -1;
        out[n++] = tok;
    }
    return n;
}

static bool has_inputs(const char *dir) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/input_0.pb", dir) >= (int)sizeof path) return false;
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Load the sets of DIR (DIR/input_K.pb, or DIR/<set>/input_K.pb in name order). */
/* Calibration progress on stderr: a line redrawn in place on a terminal, else a line at every
 * tenth of the runs (and the last). */
static void calib_progress(void *user, int done, int total) {
    (void)user;
    if (isatty(fileno(stderr))) {
        fprintf(stderr, "\ramprt: calibrating: %d of %d runs", done, total);
        if (done == total) fputc('\n', stderr);
    } else if (done == total || (long long)done * 10 / total != (long long)(done - 1) * 10 / total) {
        fprintf(stderr, "amprt: calibrating: %d of %d runs\n", done, total);
    }
}

static int load_calibration(amp_context *ctx, amp_model *m, const char *dir, cli_autocast *ca) {
    char **sets = NULL;
    int nsets = 0, cap = 0, rc = 1;
    if (has_inputs(dir)) {
        sets = malloc(sizeof *sets);
        if (!sets || !(sets[0] = strdup(dir))) goto oom;
        nsets = 1;
    } else {
        DIR *d = opendir(dir);
        if (!d) {
            fprintf(stderr, "amprt: --calibrate: cannot open the folder '%s'\n", dir);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
            if (!has_inputs(path)) continue;
            if (nsets == cap) {
                cap = cap ? 2 * cap : 64;
                char **ns = realloc(sets, sizeof *sets * (size_t)cap);
                if (!ns) {
                    closedir(d);
                    goto oom;
                }
                sets = ns;
            }
            if (!(sets[nsets] = strdup(path))) {
                closedir(d);
                goto oom;
            }
            nsets++;
        }
        closedir(d);
        if (nsets) qsort(sets, (size_t)nsets, sizeof(char *), cmp_str);
    }
    if (nsets == 0) {
        fprintf(stderr, "amprt: --calibrate: '%s' holds no input_0.pb, directly or one folder down\n", dir);
        goto done;
    }
    int nin = amp_model_input_count(m);
    ca->calib_names = calloc((size_t)nin + 1, sizeof *ca->calib_names);
    if (!ca->calib_names) goto oom;
    ca->n_names = nin;
    for (int i = 0; i < nin; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        amp_model_input_info(m, i, &vi);
        ca->calib_names[i] = vi.name;
    }
    ca->calib = calloc((size_t)nsets * (size_t)nin + 1, sizeof(amp_tensor *));
    if (!ca->calib) goto oom;
    ca->n_cells = nsets * nin;
    for (int s = 0; s < nsets; s++) {
        for (int i = 0; i < nin; i++) {
            char path[4096];
            if (snprintf(path, sizeof path, "%s/input_%d.pb", sets[s], i) >= (int)sizeof path) {
                fprintf(stderr, "amprt: --calibrate: the path of '%s' is too long\n", sets[s]);
                goto done;
            }
            char *name = NULL;
            amp_tensor *t = NULL;
            amp_status st = amp_tensor_load_pb(ctx, path, &t, &name);
            if (st) {
                fprintf(stderr, "amprt: --calibrate: %s: %s\n", amp_status_name(st), amp_context_last_error(ctx));
                goto done;
            }
            /* a named tensor goes to the input of that name */
            int slot = i;
            for (int k = 0; name && name[0] && k < nin; k++)
                if (strcmp(ca->calib_names[k], name) == 0) slot = k;
            amp_free(ctx, name);
            amp_tensor **cell = &ca->calib[(size_t)s * (size_t)nin + (size_t)slot];
            amp_tensor_destroy(*cell);
            *cell = t;
        }
        ca->n_calib++;
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "amprt: --calibrate: out of memory\n");
done:
    for (int s = 0; s < nsets; s++) free(sets[s]);
    free(sets);
    return rc;
}

/* The explain callback: keep each decision, its strings copied (they live for the call only). */
static void keep_decision(void *user, const amp_autocast_decision *d) {
    cli_autocast *ca = user;
    if (ca->why_oom) return;
    if (ca->n_why == ca->cap_why) {
        int cap = ca->cap_why ? 2 * ca->cap_why : 16;
        cli_decision *w = realloc(ca->why, sizeof *w * (size_t)cap);
        if (!w) {
            ca->why_oom = true;
            return;
        }
        ca->why = w;
        ca->cap_why = cap;
    }
    cli_decision *c = &ca->why[ca->n_why];
    c->node = strdup(d->node ? d->node : "");
    c->op = strdup(d->op_type ? d->op_type : "");
    if (!c->node || !c->op) {
        free(c->node);
        free(c->op);
        ca->why_oom = true;
        return;
    }
    c->reason = d->reason;
    c->value = d->value;
    c->limit = d->limit;
    c->drawn = false;
    ca->n_why++;
}

const char *cli_reason_name(amp_autocast_reason r) {
    switch (r) {
    case AMP_REASON_DENY_CLASS: return "deny-class";
    case AMP_REASON_RANGE: return "range";
    case AMP_REASON_UNDERFLOW: return "underflow";
    case AMP_REASON_BLOCKED: return "blocked";
    case AMP_REASON_OPSET: return "opset";
    case AMP_REASON_ERROR_TARGET: return "error-target";
    case AMP_REASON_NEIGHBOURS: return "neighbours";
    case AMP_REASON_NOT_AUTOCAST: return "not-autocast";
    }
    return "unknown";
}

bool cli_reason_measured(const cli_decision *d) {
    return (d->reason == AMP_REASON_DENY_CLASS || d->reason == AMP_REASON_NEIGHBOURS) && d->limit > 0;
}

/* ", in 16 bits the output error would be V (target L)" for such a node, else "". */
static const char *measured_text(char *buf, size_t len, const cli_decision *d) {
    buf[0] = 0;
    if (cli_reason_measured(d) && d->value >= 0)
        snprintf(buf, len, "; in 16 bits the output error would be %.4g (target %.4g)", d->value, d->limit);
    return buf;
}

void cli_reason_text(char *buf, size_t len, const cli_decision *d) {
    const char *name = cli_reason_name(d->reason);
    char more[128];
    switch (d->reason) {
    case AMP_REASON_DENY_CLASS:
        snprintf(buf, len, "%s: %s is numerically sensitive and computes in FP32%s", name, d->op,
                 measured_text(more, sizeof more, d));
        break;
    case AMP_REASON_RANGE:
        snprintf(buf, len, "%s: max |x| %.4g above the limit %.4g", name, d->value, d->limit);
        break;
    case AMP_REASON_UNDERFLOW:
        snprintf(buf, len, "%s: max |x| %.4g below the limit %.4g (subnormal in 16 bits)", name, d->value, d->limit);
        break;
    case AMP_REASON_BLOCKED: snprintf(buf, len, "%s: by --block or --block-nodes", name); break;
    case AMP_REASON_OPSET:
        snprintf(buf, len, "%s: the 16-bit type is not valid ONNX for %s at the model's opset", name, d->op);
        break;
    case AMP_REASON_ERROR_TARGET:
        snprintf(buf, len, "%s: in 16 bits the output error would be %.4g", name, d->value);
        break;
    case AMP_REASON_NEIGHBOURS:
        snprintf(buf, len, "%s: follows its FP32 producers or consumers%s", name, measured_text(more, sizeof more, d));
        break;
    case AMP_REASON_NOT_AUTOCAST:
        snprintf(buf, len, "%s: %s is left as the file has it (FP32 output)", name, d->op);
        break;
    default: snprintf(buf, len, "%s", name); break;
    }
}

int cli_autocast_model(amp_context *ctx, const cli_opts *o, amp_dtype lo, bool in_memory, amp_model **m,
                       cli_autocast *ca) {
    memset(ca, 0, sizeof *ca);
    ca->report.struct_size = sizeof ca->report;
    amp_autocast_options ao;
    memset(&ao, 0, sizeof ao);
    ao.struct_size = sizeof ao;
    ao.dtype = lo;
    /* FP32 inputs and outputs unless convert is asked for 16-bit ones (--io-16bit) */
    ao.io_16bit = !in_memory && o->io_16bit;
    /* run, check, inspect and bench (in_memory) convert for amprt's own kernels, which hold
     * every op in 16 bits; convert writes files for any runtime and stays within ONNX's types */
    ao.allow_nonstandard_types = in_memory;
    ao.range_limit = o->range_limit;
    ao.underflow_limit = o->underflow_limit;
    ao.target_opset = o->target_opset;
    ao.explain = keep_decision;
    ao.explain_user_data = ca;
    if (o->round) {
        if (strcmp(o->round, "nearest") == 0) ao.round = AMP_ROUND_NEAREST_EVEN;
        else if (strcmp(o->round, "zero") == 0) ao.round = AMP_ROUND_TOWARD_ZERO;
        else {
            fprintf(stderr, "amprt: --round expects nearest or zero, got '%s'\n", o->round);
            return 1;
        }
    }
    size_t len = (o->block ? strlen(o->block) : 0) + (o->block_nodes ? strlen(o->block_nodes) : 0) + 2;
    ca->lists = malloc(len);
    if (!ca->lists) {
        fprintf(stderr, "amprt: out of memory\n");
        return 1;
    }
    char *p = ca->lists;
    if (o->block) {
        strcpy(p, o->block);
        ao.n_block_ops = split_list(p, ca->block_ops, 64);
        p += strlen(o->block) + 1;
    }
    if (o->block_nodes) {
        strcpy(p, o->block_nodes);
        ao.n_block_nodes = split_list(p, ca->block_nodes, 64);
    }
    if (ao.n_block_ops < 0 || ao.n_block_nodes < 0) {
        fprintf(stderr, "amprt: at most 64 names per block list\n");
        return 1;
    }
    ao.block_ops = ca->block_ops;
    ao.block_nodes = ca->block_nodes;
    if (o->calibrate) {
        if (load_calibration(ctx, *m, o->calibrate, ca)) return 1;
        ao.n_calib = ca->n_calib;
        ao.n_calib_names = ca->n_names;
        ao.calib_names = ca->calib_names;
        ao.calib_inputs = (const amp_tensor *const *)ca->calib;
        if (!o->quiet) ao.progress = calib_progress;
    }
    if (o->max_error > 0) {
        if (!o->calibrate) {
            fprintf(stderr, "amprt: --max-error needs --calibrate DIR (the sets the error is measured on)\n");
            return 1;
        }
        ao.max_error = o->max_error; /* the nodes it keeps arrive through keep_decision */
        ao.keep_op_classes = o->keep_op_classes;
    } else if (o->keep_op_classes) {
        fprintf(stderr, "amprt: --keep-op-classes tells --max-error what to leave alone; it needs --max-error E\n");
        return 1;
    }
    amp_model *conv = NULL;
    amp_status st = amp_model_autocast(*m, &ao, &conv, &ca->report);
    if (st) {
        fprintf(stderr, "amprt: autocast failed: %s: %s\n", amp_status_name(st), amp_context_last_error(ctx));
        return 1;
    }
    if (ca->why_oom) {
        amp_model_destroy(conv);
        fprintf(stderr, "amprt: out of memory keeping the reasons of the conversion\n");
        return 1;
    }
    ca->fp32 = *m;
    *m = conv;
    return 0;
}

void cli_autocast_free(cli_autocast *ca) {
    if (ca->calib)
        for (int i = 0; i < ca->n_cells; i++) amp_tensor_destroy(ca->calib[i]);
    free(ca->calib);
    free(ca->calib_names);
    free(ca->lists);
    for (int i = 0; i < ca->n_why; i++) {
        free(ca->why[i].node);
        free(ca->why[i].op);
    }
    free(ca->why);
    amp_model_destroy(ca->fp32);
    memset(ca, 0, sizeof *ca);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A number, or null where the reason has none; an infinite max |x| (calibration saw inf or
 * NaN) has no JSON number and is written as the string "inf". */
static void json_num(FILE *f, double v, bool has) {
    if (!has) fputs("null", f);
    else if (isfinite(v)) fprintf(f, "%.17g", v); /* reads back as the same double */
    else fputs(v > 0 ? "\"inf\"" : "\"-inf\"", f);
}

void cli_report_json(FILE *f, const cli_autocast *ca) {
    const amp_autocast_report *r = &ca->report;
    fprintf(f,
            "{\"nodes_16bit\":%d,\"nodes_fp32\":%d,\"nodes_other\":%d,\"casts_inserted\":%d,\"casts_removed\":%d,"
            "\"inits_converted\":%d,\"inits_duplicated\":%d,\"values_clamped\":%d,\"nodes_range_kept\":%d,"
            "\"nodes_underflow_kept\":%d,\"nodes_blocked\":%d,\"nodes_opset_kept\":%d,\"opset_from\":%d,\"opset_to\":%d,"
            "\"nodes_opset_rewritten\":%d,\"already_16bit\":%s,\"nodes_error_kept\":%d,\"nodes_relaxed\":%d,"
            "\"error_passes\":%d,\"error\":",
            r->nodes_16bit, r->nodes_fp32, r->nodes_other, r->casts_inserted, r->casts_removed, r->inits_converted,
            r->inits_duplicated, r->values_clamped, r->nodes_range_kept, r->nodes_underflow_kept, r->nodes_blocked,
            r->nodes_opset_kept, r->opset_from, r->opset_to, r->nodes_opset_rewritten, r->already_16bit ? "true" : "false",
            r->nodes_error_kept, r->nodes_relaxed, r->error_passes);
    /* the error search's measures; null where it did not run (max_error not given) */
    json_num(f, r->error, r->error >= 0);
    fputs(",\"flops16_share\":", f);
    json_num(f, r->flops16_share, r->flops16_share >= 0);
    fputs(",\"fp32_nodes\":[", f);
    for (int i = 0; i < ca->n_why; i++) {
        const cli_decision *d = &ca->why[i];
        bool numbers = d->reason == AMP_REASON_RANGE || d->reason == AMP_REASON_UNDERFLOW || cli_reason_measured(d);
        fputs(i ? ",{\"node\":" : "{\"node\":", f);
        json_str(f, d->node);
        fputs(",\"op\":", f);
        json_str(f, d->op);
        fputs(",\"reason\":", f);
        json_str(f, cli_reason_name(d->reason));
        fputs(",\"value\":", f);
        json_num(f, d->value, numbers || d->reason == AMP_REASON_ERROR_TARGET);
        fputs(",\"limit\":", f);
        json_num(f, d->limit, numbers);
        fputc('}', f);
    }
    fputs("]}", f);
}

void cli_plan_flops(const amp_session *s, double *total, double *in16) {
    amp_plan_flops(s->last, s->model->g, total, in16);
}

/* ---- DOT ------------------------------------------------------------------------------------ */

static void dot_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
}

/* The recorded decision of converted node n: the first not yet drawn with its name and op type
 * (both lists are in node order, so nodes without a name match in turn); NULL when none. */
static cli_decision *decision_of(cli_autocast *ca, const amp_node *n) {
    for (int i = 0; ca && i < ca->n_why; i++) {
        cli_decision *d = &ca->why[i];
        if (!d->drawn && strcmp(d->node, n->name ? n->name : "") == 0 && strcmp(d->op, n->op_type) == 0) {
            d->drawn = true;
            return d;
        }
    }
    return NULL;
}

int cli_write_dot(amp_context *ctx, const amp_model *m, const char *path, cli_autocast *ca, const amp_session *s) {
    const amp_graph *g = m->g;
    /* the nodes s's last plan runs; the others were folded at plan time (shape arithmetic,
     * constant subgraphs) and are left out, like the initializers they amount to */
    bool *run = NULL;
    int hidden = 0;
    if (s && s->last && s->model->g == g) {
        run = calloc((size_t)g->n_nodes + 1, sizeof *run);
        if (!run) {
            fprintf(stderr, "amprt: out of memory\n");
            return 1;
        }
        for (int i = 0; i < s->last->nsteps; i++) run[s->last->steps[i].node] = true;
        for (int ni = 0; ni < g->n_nodes; ni++) hidden += !run[ni];
    }
#define DRAWN(ni) (!run || run[ni])
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fprintf(stderr, "amprt: path too long: '%s'\n", path);
        return 1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "amprt: cannot write '%s'\n", path);
        free(run);
        return 1;
    }
    (void)ctx;
    for (int i = 0; ca && i < ca->n_why; i++) ca->why[i].drawn = false;
    fprintf(f, "digraph amprt {\n  rankdir=TB;\n  node [style=filled, fontname=\"Helvetica\", fontsize=10];\n");
    fprintf(f, "  subgraph cluster_legend { label=\"precision\"; fontsize=10;\n"
               "    l16 [label=\"16-bit\", fillcolor=\"#8fd694\", shape=box];\n"
               "    l32 [label=\"FP32\", fillcolor=\"#f4a582\", shape=box];\n"
               "    lother [label=\"int/bool/shape\", fillcolor=\"#d9d9d9\", shape=box];\n"
               "    lcast [label=\"Cast\", fillcolor=\"#ffe680\", shape=diamond];\n");
    if (hidden)
        fprintf(f, "    lfolded [label=\"%d nodes folded at plan time\\nnot drawn (--dot-all)\", shape=plaintext, "
                   "style=\"\"];\n", hidden);
    fprintf(f, "  }\n");
    for (int i = 0; i < g->n_inputs + g->n_outputs; i++) {
        bool is_in = i < g->n_inputs;
        int vid = is_in ? g->inputs[i] : g->outputs[i - g->n_inputs];
        const amp_value *v = &g->values[vid];
        if (is_in && v->init) continue;
        fprintf(f, "  %c%d [shape=ellipse, fillcolor=white, label=", is_in ? 'v' : 'o', vid);
        char lab[512];
        snprintf(lab, sizeof lab, "%s\n%s", v->name, amp_dtype_name(v->dtype));
        dot_str(f, lab);
        fprintf(f, "];\n");
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const amp_node *n = &g->nodes[ni];
        amp_dtype t = amp_node_precision(g, n);
        if (!DRAWN(ni)) {
            /* a folded node's decision is used up all the same: decisions match nodes in order */
            if (t == AMP_F32 && !(n->flags & AMP_NODE_INSERTED)) decision_of(ca, n);
            continue;
        }
        bool cast = n->op == AMP_OP_CAST;
        const char *color = cast ? "#ffe680" : (t == AMP_F16 || t == AMP_BF16) ? "#8fd694" : t == AMP_F32 ? "#f4a582" : "#d9d9d9";
        char lab[512];
        if (cast)
            snprintf(lab, sizeof lab, "Cast%s\nto %s", (n->flags & AMP_NODE_INSERTED) ? " (autocast)" : "",
                     amp_dtype_name((amp_dtype)amp_attr_int(n, "to", 0)));
        else
            snprintf(lab, sizeof lab, "%s\n%s\n%s", n->op_type, n->name ? n->name : "", t ? amp_dtype_name(t) : "");
        fprintf(f, "  n%d [shape=%s, fillcolor=\"%s\", label=", ni, cast ? "diamond" : "box", color);
        dot_str(f, lab);
        const cli_decision *d = t == AMP_F32 && !(n->flags & AMP_NODE_INSERTED) ? decision_of(ca, n) : NULL;
        if (d) {
            char why[512];
            cli_reason_text(why, sizeof why, d);
            fprintf(f, ", tooltip=");
            dot_str(f, why);
        }
        fprintf(f, "];\n");
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0) continue;
            const amp_value *val = &g->values[v];
            if (val->producer >= 0 && DRAWN(val->producer)) fprintf(f, "  n%d -> n%d", val->producer, ni);
            else if (val->is_input && !val->init) fprintf(f, "  v%d -> n%d", v, ni);
            else continue; /* initializers are not drawn */
            fprintf(f, " [label=\"%s\", fontsize=8];\n", amp_dtype_name(val->dtype));
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const amp_value *v = &g->values[g->outputs[i]];
        if (v->producer >= 0 && DRAWN(v->producer)) fprintf(f, "  n%d -> o%d;\n", v->producer, g->outputs[i]);
    }
#undef DRAWN
    free(run);
    fprintf(f, "}\n");
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0) bad = true;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        fprintf(stderr, "amprt: cannot write '%s'\n", path);
        return 1;
    }
    return 0;
}
