/* amprt: inspect, run, check and bench ONNX models. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/elem.h"
#include "tools/amprt/cli.h"

#define AMP_VSTR2(x) #x
#define AMP_VSTR(x) AMP_VSTR2(x)
#define AMP_VERSION_STRING_OF_TOOL AMP_VSTR(AMP_VERSION_MAJOR) "." AMP_VSTR(AMP_VERSION_MINOR) "." AMP_VSTR(AMP_VERSION_PATCH)

static const char *const usage_main =
    "usage: amprt COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  inspect MODEL [--json] [--dim NAME=V]...   opset, inputs/outputs, ops, parameters, memory plan\n"
    "  run MODEL [--input NAME=FILE.pb|.npy]... [--shapes NAME:1x3x224x224] [--seed N] [--threads N] ...\n"
    "                                             run once, print outputs and time\n"
    "  check DIR... [--rtol X] [--atol X] [--threads N] [--list-passing FILE] [--verbose]\n"
    "                                             run ONNX backend-test cases, compare outputs\n"
    "  bench MODEL [--batch B] [--threads N] [--iterations R] [--duration S] [--warmup W] [--json] ...\n"
    "                                             median, min, max, p50, p90, p99 run time and arena size\n"
    "  convert IN OUT [--precision fp16|bf16|fp32] [--io-16bit] [--calibrate DIR] ...\n"
    "                                             mixed-precision conversion (or a round trip)\n"
    "  train MODEL --data DIR [--epochs N] [--precision fp16|bf16|fp32|fp16-pure] [--out FILE] ...\n"
    "                                             train or fine-tune, write the trained model\n"
    "  evaluate MODEL --data DIR [--precision fp16|bf16]\n"
    "                                             test-set accuracy of an image classifier\n"
    "  plot OUT.svg LOG.jsonl...                  training curves of several --json-log files\n"
    "  ops [--json|--markdown]                    every op: domain, opsets, autocast class, gradient, backends\n"
    "\n"
    "Each command takes only the options its help lists and refuses any other. Shared ones:\n"
    "  --threads N (inspect, run, check, bench, train, evaluate; default: all cores, everywhere),\n"
    "  --precision fp32|fp16|bf16 (inspect, run, check, bench, evaluate: convert in memory first; convert:\n"
    "    the output's precision; train: the AMP precision, fp16-pure too; the older spellings --autocast,\n"
    "    --dtype (convert) and --amp (train) are aliases),\n"
    "  --backend cpu|cuda|auto|cpu-check|cpu-device (inspect --train, run, check, bench, train, evaluate),\n"
    "  --fusion auto|on|off (run, bench, check, train, evaluate: fused kernels as the backend asks,\n"
    "    everywhere, or none),\n"
    "  --max-memory BYTES[K|M|G] (inspect, run, bench, check, convert: most one plan may hold; default 8G),\n"
    "  --quiet, -q (run, bench, check, train, convert, evaluate: no informational lines on stderr)\n"
    "Run 'amprt COMMAND --help' for details; 'amprt --version' (-V) prints the version and how it was built.\n";

double cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void cli_say_backend(const cli_opts *o, const char *name, const char *note) {
    if (o->quiet) return;
    fprintf(stderr, "amprt: backend %s (%s)\n", name ? name : "?", note && note[0] ? note : "as asked");
}

amp_context *cli_context(const cli_opts *o) {
    amp_context *ctx = NULL;
    amp_context_desc d = {.struct_size = sizeof d, .max_memory_bytes = o ? o->max_memory : 0};
    if (amp_context_create(&d, &ctx) != AMP_OK) {
        fprintf(stderr, "amprt: cannot create a context\n");
        exit(1);
    }
    return ctx;
}

void cli_free(cli_opts *o) {
    for (int i = 0; i < o->n_dims; i++) free((char *)o->dims[i].name);
    for (int i = 0; i < o->n_inputs; i++) free(o->input_names[i]);
    for (int i = 0; i < o->n_shapes; i++) free(o->shapes[i].name);
    free(o->shapes);
    o->shapes = NULL;
    o->n_shapes = 0;
    free(o->dims);
    free(o->input_names);
    free(o->input_files);
    free(o->positional);
    o->dims = NULL;
    o->input_names = NULL;
    o->input_files = NULL;
    o->positional = NULL;
    o->n_dims = o->n_inputs = o->n_positional = 0;
}

int cli_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 1024 ? (int)n : n > 0 ? 1024 : 1;
}

int cli_max_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    long m = n > 0 ? 4 * n : 64;
    if (m < 64) m = 64;
    return m > 1024 ? 1024 : (int)m;
}

static int want_arg(int i, int argc, const char *opt) {
    if (i + 1 >= argc) {
        fprintf(stderr, "amprt: option %s needs a value\n", opt);
        return 0;
    }
    return 1;
}

static int parse_int(const char *s, const char *opt, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "amprt: %s expects an integer from %d to %d, got '%s'\n", opt, lo, hi, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

/* BYTES with an optional K, M or G (binary) suffix, from 1 MiB to 1 TiB. */
static int parse_bytes(const char *s, const char *opt, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    const long long lo = 1LL << 20, hi = 1LL << 40;
    if (!*s || *end || errno || v < 1 || v > (hi >> shift) || (v << shift) < lo) {
        fprintf(stderr, "amprt: %s expects bytes from 1M to 1024G (suffix K, M or G), got '%s'\n", opt, s);
        return 0;
    }
    *out = (int64_t)v << shift;
    return 1;
}

static int parse_opts(int argc, char **argv, int first, cli_opts *o, const cli_command *cmd);

int cli_refuse(const char *cmd, const char *opt) {
    fprintf(stderr, "amprt: %s does not take %s; 'amprt %s --help' lists its options\n", cmd, opt, cmd);
    return 2;
}

/* Every option of cli_parse and the CLI_* bits of which a command must hold one to take it. */
static const struct {
    const char *name;
    unsigned bits;
} cli_options[] = {
    {"--json", CLI_JSON},
    {"--markdown", CLI_MARKDOWN},
    {"--verbose", CLI_VERBOSE},
    {"-v", CLI_VERBOSE},
    {"--quiet", CLI_QUIET},
    {"-q", CLI_QUIET},
    {"--input", CLI_INPUT},
    {"--dim", CLI_DIM},
    {"--shapes", CLI_SHAPES},
    {"--seed", CLI_SEED},
    {"--max-memory", CLI_MAX_MEMORY},
    {"--threads", CLI_THREADS},
    {"--batch", CLI_BATCH},
    {"--runs", CLI_RUNS},
    {"--iterations", CLI_RUNS},
    {"--duration", CLI_RUNS},
    {"--warmup", CLI_RUNS},
    {"--backend", CLI_BACKEND},
    {"--fusion", CLI_FUSION},
    {"--output-dir", CLI_OUTPUT_DIR},
    {"--list-passing", CLI_LIST_PASSING},
    {"--rtol", CLI_TOLERANCE},
    {"--atol", CLI_TOLERANCE},
    {"--keep-io-types", CLI_KEEP_IO},
    {"--io-16bit", CLI_KEEP_IO},
    {"--train", CLI_TRAIN},
    {"--precision", CLI_AUTOCAST | CLI_DTYPE},
    {"--autocast", CLI_AUTOCAST},
    {"--dtype", CLI_DTYPE},
    {"--block", CLI_CONVERT},
    {"--block-nodes", CLI_CONVERT},
    {"--calibrate", CLI_CONVERT},
    {"--round", CLI_CONVERT},
    {"--range-limit", CLI_CONVERT},
    {"--underflow-limit", CLI_CONVERT},
    {"--max-error", CLI_MAX_ERROR},
    {"--keep-op-classes", CLI_MAX_ERROR},
    {"--target-opset", CLI_TARGET_OPSET},
    {"--dot", CLI_DOT},
    {"--dot-all", CLI_DOT},
};

/* 0 when cmd takes option a, else 2 after saying why. */
static int taken(const cli_command *cmd, const char *a) {
    for (size_t k = 0; k < sizeof cli_options / sizeof cli_options[0]; k++)
        if (strcmp(a, cli_options[k].name) == 0) return cmd->opts & cli_options[k].bits ? 0 : cli_refuse(cmd->name, a);
    fprintf(stderr, "amprt: %s: unknown option '%s'; 'amprt %s --help' lists its options\n", cmd->name, a, cmd->name);
    return 2;
}

int cli_parse(int argc, char **argv, int first, cli_opts *o, const cli_command *cmd) {
    memset(o, 0, sizeof *o);
    o->rtol = 1e-3;
    o->atol = 1e-5;
    o->runs = 50;
    o->warmup = 5;
    o->seed = 42;
    size_t cap = argc > 0 ? (size_t)argc : 1;
    o->input_names = calloc(cap, sizeof *o->input_names);
    o->input_files = calloc(cap, sizeof *o->input_files);
    o->dims = calloc(cap, sizeof *o->dims);
    o->positional = calloc(cap, sizeof *o->positional);
    if (!o->input_names || !o->input_files || !o->dims || !o->positional) {
        fprintf(stderr, "amprt: out of memory parsing the command line\n");
        cli_free(o);
        return 2;
    }
    int rc = parse_opts(argc, argv, first, o, cmd);
    if (rc) cli_free(o);
    return rc;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int parse_opts(int argc, char **argv, int first, cli_opts *o, const cli_command *cmd) {
    const int max_threads = cli_max_threads();
    const char *conv_opt = NULL; /* the first option that only a conversion reads */
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(cmd->usage, stdout);
            exit(0);
        }
        if (a[0] == '-' && a[1] && taken(cmd, a)) return 2;
        if (!conv_opt && (strcmp(a, "--block") == 0 || strcmp(a, "--block-nodes") == 0 || strcmp(a, "--calibrate") == 0 ||
                          strcmp(a, "--round") == 0 || strcmp(a, "--range-limit") == 0 || strcmp(a, "--keep-io-types") == 0 ||
                          strcmp(a, "--io-16bit") == 0 || strcmp(a, "--underflow-limit") == 0))
            conv_opt = a;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = true;
        } else if (strcmp(a, "--markdown") == 0) {
            o->markdown = true;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = true;
        } else if (strcmp(a, "--input") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            const char *v = argv[++i], *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                fprintf(stderr, "amprt: --input expects NAME=FILE (.pb or .npy), got '%s'\n", v);
                return 2;
            }
            char *name = dup_n(v, (size_t)(eq - v));
            if (!name) {
                fprintf(stderr, "amprt: out of memory\n");
                return 2;
            }
            for (int k = 0; k < o->n_inputs; k++)
                if (strcmp(o->input_names[k], name) == 0) {
                    fprintf(stderr, "amprt: --input '%s' is given twice\n", name);
                    free(name);
                    return 2;
                }
            o->input_names[o->n_inputs] = name;
            o->input_files[o->n_inputs++] = eq + 1;
        } else if (strcmp(a, "--dim") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            const char *eq = strchr(argv[i + 1], '=');
            if (!eq || eq == argv[i + 1]) {
                fprintf(stderr, "amprt: --dim expects NAME=VALUE, got '%s'\n", argv[i + 1]);
                return 2;
            }
            int v;
            if (!parse_int(eq + 1, "--dim", 0, 1000000000, &v)) return 2;
            char *name = dup_n(argv[i + 1], (size_t)(eq - argv[i + 1]));
            if (!name) {
                fprintf(stderr, "amprt: out of memory\n");
                return 2;
            }
            o->dims[o->n_dims].name = name;
            o->dims[o->n_dims].value = v;
            o->n_dims++;
            i++;
        } else if (strcmp(a, "--shapes") == 0) {
            if (!want_arg(i, argc, a) || cli_parse_shapes(argv[++i], o)) return 2;
        } else if (strcmp(a, "--target-opset") == 0) {
            if (!want_arg(i, argc, a) || !parse_int(argv[++i], a, 1, 1000, &o->target_opset)) return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            const char *v = argv[++i];
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || *end || errno) {
                fprintf(stderr, "amprt: --seed expects an integer from 0 to 18446744073709551615, got '%s'\n", v);
                return 2;
            }
            o->seed = seed;
        } else if (strcmp(a, "--max-memory") == 0) {
            if (!want_arg(i, argc, a) || !parse_bytes(argv[++i], a, &o->max_memory)) return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (!want_arg(i, argc, a) || !parse_int(argv[++i], a, 1, max_threads, &o->threads)) return 2;
        } else if (strcmp(a, "--batch") == 0) {
            if (!want_arg(i, argc, a) || !parse_int(argv[++i], a, 1, 1 << 24, &o->batch)) return 2;
        } else if (strcmp(a, "--runs") == 0 || strcmp(a, "--iterations") == 0) {
            if (!want_arg(i, argc, a) || !parse_int(argv[++i], a, 1, 1000000, &o->runs)) return 2;
        } else if (strcmp(a, "--warmup") == 0) {
            if (!want_arg(i, argc, a) || !parse_int(argv[++i], a, 0, 1000000, &o->warmup)) return 2;
        } else if (strcmp(a, "--backend") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            const char *b = argv[++i];
            bool known = false;
            for (int k = 0; amp_backend_name(k); k++) known = known || strcmp(b, amp_backend_name(k)) == 0;
            if (!known) {
                fprintf(stderr, "amprt: --backend expects one of");
                for (int k = 0; amp_backend_name(k); k++) fprintf(stderr, "%s %s", k ? "," : "", amp_backend_name(k));
                fprintf(stderr, "; got '%s'\n", b);
                return 2;
            }
            o->backend = b;
        } else if (strcmp(a, "--fusion") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            const char *f = argv[++i];
            if (strcmp(f, "auto") == 0) o->fusion = 0;
            else if (strcmp(f, "on") == 0) o->fusion = 1;
            else if (strcmp(f, "off") == 0) o->fusion = -1;
            else {
                fprintf(stderr, "amprt: --fusion expects auto, on or off; got '%s'\n", f);
                return 2;
            }
        } else if (strcmp(a, "--output-dir") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            o->output_dir = argv[++i];
        } else if (strcmp(a, "--list-passing") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            o->list_file = argv[++i];
        } else if (strcmp(a, "--duration") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            char *end;
            double v = strtod(argv[i + 1], &end);
            if (!argv[i + 1][0] || *end || !(v > 0) || v > 86400) {
                fprintf(stderr, "amprt: --duration expects seconds above 0, at most 86400, got '%s'\n", argv[i + 1]);
                return 2;
            }
            o->duration_s = v;
            i++;
        } else if (strcmp(a, "--rtol") == 0 || strcmp(a, "--atol") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            char *end;
            double v = strtod(argv[i + 1], &end);
            if (!argv[i + 1][0] || *end || !(v >= 0) || !isfinite(v)) {
                fprintf(stderr, "amprt: %s expects a finite number >= 0, got '%s'\n", a, argv[i + 1]);
                return 2;
            }
            if (strcmp(a, "--rtol") == 0) o->rtol = v;
            else o->atol = v;
            i++;
        } else if (strcmp(a, "--range-limit") == 0 || strcmp(a, "--max-error") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            char *end;
            double v = strtod(argv[i + 1], &end);
            if (!argv[i + 1][0] || *end || !(v > 0) || !isfinite(v)) {
                fprintf(stderr, "amprt: %s expects a finite number > 0, got '%s'\n", a, argv[i + 1]);
                return 2;
            }
            if (strcmp(a, "--range-limit") == 0) o->range_limit = v;
            else o->max_error = v;
            i++;
        } else if (strcmp(a, "--underflow-limit") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            char *end;
            double v = strtod(argv[i + 1], &end);
            if (!argv[i + 1][0] || *end || !isfinite(v)) {
                fprintf(stderr, "amprt: %s expects a finite number (0: the default, negative: off), got '%s'\n", a,
                        argv[i + 1]);
                return 2;
            }
            o->underflow_limit = v;
            i++;
        } else if (strcmp(a, "--keep-io-types") == 0 || strcmp(a, "--io-16bit") == 0) {
            if (strcmp(a, "--keep-io-types") == 0) o->keep_io = true;
            else o->io_16bit = true;
            if (o->keep_io && o->io_16bit) {
                fprintf(stderr, "amprt: --io-16bit and --keep-io-types ask for opposite things\n");
                return 2;
            }
        } else if (strcmp(a, "--train") == 0) {
            o->train = true;
        } else if (strcmp(a, "--keep-op-classes") == 0) {
            o->keep_op_classes = true;
        } else if (strcmp(a, "--precision") == 0 || strcmp(a, "--autocast") == 0 || strcmp(a, "--dtype") == 0) {
            if (!want_arg(i, argc, a) || !cli_parse_dtype(argv[i + 1], a)) return 2;
            o->precision = argv[++i];
        } else if (strcmp(a, "--round") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            o->round = argv[++i];
            if (strcmp(o->round, "nearest") != 0 && strcmp(o->round, "zero") != 0) {
                fprintf(stderr, "amprt: --round expects nearest or zero, got '%s'\n", o->round);
                return 2;
            }
        } else if (strcmp(a, "--block") == 0 || strcmp(a, "--block-nodes") == 0 || strcmp(a, "--calibrate") == 0 ||
                   strcmp(a, "--dot") == 0) {
            if (!want_arg(i, argc, a)) return 2;
            const char *v = argv[++i];
            if (strcmp(a, "--block") == 0) o->block = v;
            else if (strcmp(a, "--block-nodes") == 0) o->block_nodes = v;
            else if (strcmp(a, "--calibrate") == 0) o->calibrate = v;
            else o->dot = v;
        } else if (strcmp(a, "--dot-all") == 0) {
            o->dot_all = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "amprt: option %s is in the table but has no parser\n", a); /* a bug */
            return 2;
        } else {
            o->positional[o->n_positional++] = a;
        }
    }
    /* an option read only by what another option turns on is refused without it, not ignored */
    bool converts = o->precision ? cli_parse_dtype(o->precision, "--precision") != AMP_F32 : (cmd->opts & CLI_DTYPE) != 0;
    if (conv_opt && !converts) {
        fprintf(stderr, "amprt: %s: %s applies only to a conversion, with --precision fp16 or bf16\n", cmd->name, conv_opt);
        return 2;
    }
    return 0;
}

int cli_load_inputs(amp_context *ctx, const amp_model *m, const cli_opts *o, const char **names, amp_tensor **tensors) {
    int nin = amp_model_input_count(m);
    for (int i = 0; i < o->n_inputs; i++) {
        bool known = false;
        for (int k = 0; k < nin && !known; k++) {
            amp_value_info vi = {.struct_size = sizeof vi};
            known = amp_model_input_info(m, k, &vi) == AMP_OK && strcmp(vi.name, o->input_names[i]) == 0;
        }
        if (!known) {
            fprintf(stderr, "amprt: --input '%s': the model has no input of that name (its inputs:", o->input_names[i]);
            for (int k = 0; k < nin && k < 16; k++) {
                amp_value_info vi = {.struct_size = sizeof vi};
                if (amp_model_input_info(m, k, &vi) == AMP_OK) fprintf(stderr, " '%s'", vi.name);
            }
            fprintf(stderr, "%s)\n", nin > 16 ? " ..." : nin == 0 ? " none" : "");
            return 1;
        }
    }
    for (int i = 0; i < o->n_inputs; i++) {
        names[i] = o->input_names[i];
        tensors[i] = NULL;
        const char *f = o->input_files[i];
        size_t n = strlen(f);
        bool npy = n > 4 && strcasecmp(f + n - 4, ".npy") == 0;
        bool raw = n > 4 && (strcasecmp(f + n - 4, ".raw") == 0 || strcasecmp(f + n - 4, ".bin") == 0);
        amp_status s = AMP_OK;
        if (npy && cli_load_npy(ctx, f, &tensors[i])) s = AMP_ERR_PARSE;
        else if (raw && cli_load_raw(ctx, m, o, names[i], f, &tensors[i])) s = AMP_ERR_PARSE;
        else if (!npy && !raw) s = amp_tensor_load_pb(ctx, f, &tensors[i], NULL);
        if (s && !npy && !raw) fprintf(stderr, "amprt: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        if (s) {
            for (int j = 0; j < i; j++) {
                amp_tensor_destroy(tensors[j]);
                tensors[j] = NULL;
            }
            return 1;
        }
    }
    return 0;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int cli_input_dims(const amp_model *m, const cli_opts *o, amp_value_info *vi, int64_t *dims, int *unbound) {
    const cli_shape *sh = cli_shape_of(o, vi->name);
    if (sh) {
        vi->rank = sh->rank;
        memcpy(vi->dims, sh->dims, sizeof vi->dims);
    }
    if (vi->rank < 0) {
        fprintf(stderr, "amprt: input '%s' has no declared shape; give it with --input or --shapes\n", vi->name);
        return 1;
    }
    if (unbound) *unbound = -1;
    for (int d = 0; d < vi->rank; d++) {
        dims[d] = vi->dims[d];
        if (dims[d] >= 0) continue;
        if (vi->dim_names[d] && cli_shapes_bind(m, o, vi->dim_names[d], &dims[d])) continue;
        bool given = d == 0 && o->batch;
        dims[d] = given ? o->batch : 1;
        for (int k = 0; k < o->n_dims; k++)
            if (vi->dim_names[d] && strcmp(vi->dim_names[d], o->dims[k].name) == 0) {
                dims[d] = o->dims[k].value;
                given = true;
            }
        if (!given && unbound) *unbound = *unbound == -1 ? d : -2;
    }
    return 0;
}

int cli_random_inputs(amp_context *ctx, amp_model *m, const cli_opts *o, const char **names, amp_tensor **tensors) {
    int n = amp_model_input_count(m);
    uint64_t seed = o->seed;
    for (int i = 0; i < n; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        amp_model_input_info(m, i, &vi);
        int64_t dims[AMP_MAX_RANK];
        if (cli_input_dims(m, o, &vi, dims, NULL)) return 1;
        amp_status s = amp_tensor_create(ctx, vi.dtype, vi.rank, dims, &tensors[i]);
        if (s) {
            fprintf(stderr, "amprt: input '%s': %s\n", vi.name, amp_context_last_error(ctx));
            return 1;
        }
        names[i] = vi.name;
        amp_tensor *t = tensors[i];
        for (int64_t e = 0; e < t->numel; e++) {
            double u = (double)(splitmix(&seed) >> 11) / 9007199254740992.0;
            /* normal-ish values for floats, small non-negative values for integers */
            double v = amp_dtype_is_float(t->dtype) ? (u * 2.0 - 1.0) * 1.7 : floor(u * 4.0);
            amp_st(t->dtype, t->data, e, v);
        }
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when the bytes there are not one
 * (overlong forms, surrogates and values above U+10FFFF included). */
static int utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, min = 0x10000;
    else return 0;
    unsigned v = c & (0x7fu >> n);
    for (int k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    return n;
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        unsigned char c = *p;
        int n = utf8_len(p);
        if (n == 0) {
            fputs("\\ufffd", f);
            p++;
        } else if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            p++;
        } else {
            fwrite(p, 1, (size_t)n, f);
            p += n;
        }
    }
    fputc('"', f);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "inspect") == 0) return cmd_inspect(argc, argv);
    if (strcmp(cmd, "run") == 0) return cmd_run(argc, argv);
    if (strcmp(cmd, "check") == 0) return cmd_check(argc, argv);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc, argv);
    if (strcmp(cmd, "convert") == 0) return cmd_convert(argc, argv);
    if (strcmp(cmd, "train") == 0) return cmd_train(argc, argv);
    if (strcmp(cmd, "evaluate") == 0) return cmd_evaluate(argc, argv);
    if (strcmp(cmd, "plot") == 0) return cmd_plot(argc, argv);
    if (strcmp(cmd, "ops") == 0) return cmd_ops(argc, argv);
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        /* the library's version (a program and a library from two builds would differ) */
        printf("amprt %s\n%s", amp_version(), amp_build_info());
        if (strcmp(amp_version(), AMP_VERSION_STRING_OF_TOOL) != 0)
            printf("note: this tool was built against amprt %s\n", AMP_VERSION_STRING_OF_TOOL);
        return 0;
    }
    fprintf(stderr, "amprt: unknown command '%s'\n%s", cmd, usage_main);
    return 2;
}
