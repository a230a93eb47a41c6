/* The amprt command-line tool: shared helpers of the subcommands. */
#ifndef AMP_TOOLS_CLI_H
#define AMP_TOOLS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "amprt/amprt.h"

/* One input's shape from --shapes NAME:D0xD1x... */
typedef struct cli_shape {
    char *name; /* owned */
    int rank;
    int64_t dims[AMP_MAX_RANK];
} cli_shape;

typedef struct cli_opts {
    const char *model;
    /* --input NAME=FILE.pb|FILE.npy: names (owned copies) and files, n_inputs of each; no name twice */
    char **input_names;
    const char **input_files;
    int n_inputs;
    amp_dim_binding *dims; /* --dim NAME=VALUE (names owned) */
    int n_dims;
    cli_shape *shapes; /* --shapes NAME:D0xD1x...[,...], n_shapes of them; no name twice */
    int n_shapes;
    int threads;
    int64_t max_memory; /* --max-memory BYTES[K|M|G]: the context's plan limit; 0: the default */
    int batch;      /* 0: not given */
    uint64_t seed;      /* --seed N: of the random inputs (default 42) */
    int runs, warmup;   /* --runs (alias --iterations), --warmup */
    double duration_s;  /* --duration SECONDS: time runs until this long has passed; 0: not given */
    bool json;
    bool markdown;  /* --markdown (ops) */
    bool verbose;
    bool quiet;          /* --quiet, -q: no informational lines on stderr (warnings and errors stay) */
    const char *backend; /* "cpu", "cuda", "auto" or "cpu-check" (tests); NULL: auto */
    int fusion;          /* --fusion auto|on|off: 0, 1, -1 (amp_session_options.fusion) */
    const char *output_dir;
    const char *list_file;
    double rtol, atol;
    const char *precision;   /* --precision fp32|fp16|bf16 (aliases --autocast, --dtype); NULL: not given */
    bool io_16bit;           /* --io-16bit: graph inputs and outputs 16-bit too (convert) */
    bool keep_io;            /* --keep-io-types: the default said out loud */
    const char *block;       /* --block OP,OP */
    const char *block_nodes; /* --block-nodes NAME,NAME */
    const char *calibrate;   /* --calibrate DIR */
    const char *round;       /* --round nearest|zero */
    double range_limit;      /* --range-limit X */
    double underflow_limit;  /* --underflow-limit X (0: the default, negative: no guard) */
    double max_error;        /* --max-error E (convert) */
    bool keep_op_classes;    /* --keep-op-classes: --max-error leaves the op classes' FP32 nodes */
    int target_opset;        /* --target-opset N (convert; 0: keep the file's) */
    const char *dot;         /* --dot FILE */
    bool dot_all;            /* --dot-all: folded nodes drawn too */
    bool train;              /* --train (inspect, bench): the training step */
    const char **positional;
    int n_positional;
} cli_opts;

/* The options of cli_parse, one bit each; a command names those it reads. */
enum {
    CLI_JSON = 1u << 0,
    CLI_MARKDOWN = 1u << 1,
    CLI_VERBOSE = 1u << 2,    /* --verbose, -v */
    CLI_INPUT = 1u << 3,
    CLI_DIM = 1u << 4,
    CLI_MAX_MEMORY = 1u << 5,
    CLI_THREADS = 1u << 6,
    CLI_BATCH = 1u << 7,
    CLI_RUNS = 1u << 8,       /* --runs (--iterations), --warmup, --duration */
    CLI_BACKEND = 1u << 9,
    CLI_FUSION = 1u << 10,
    CLI_OUTPUT_DIR = 1u << 11,
    CLI_LIST_PASSING = 1u << 12,
    CLI_TOLERANCE = 1u << 13, /* --rtol, --atol */
    CLI_KEEP_IO = 1u << 14,   /* --io-16bit, --keep-io-types */
    CLI_TRAIN = 1u << 15,
    CLI_AUTOCAST = 1u << 16,  /* --precision, spelt --autocast too */
    CLI_DTYPE = 1u << 17,     /* --precision, spelt --dtype too (convert) */
    CLI_CONVERT = 1u << 18,   /* --block, --block-nodes, --calibrate, --round, --range-limit,
                                 --underflow-limit */
    CLI_DOT = 1u << 19,
    CLI_SHAPES = 1u << 20,
    CLI_SEED = 1u << 21,
    CLI_QUIET = 1u << 22,     /* --quiet, -q */
    CLI_MAX_ERROR = 1u << 23, /* --max-error E, --keep-op-classes */
    CLI_TARGET_OPSET = 1u << 24, /* --target-opset N */
};

/* A command as the parser sees it: its name (for messages), its help and the CLI_* options it
 * reads; any other option is refused. */
typedef struct cli_command {
    const char *name;
    const char *usage;
    unsigned opts;
} cli_command;

/* Parse the options cmd reads; returns 0, or 2 after printing a message (o is then freed).
 * --help prints cmd's usage and exits 0. The arrays hold as many entries as there are
 * arguments; cli_free releases them. */
int cli_parse(int argc, char **argv, int first, cli_opts *o, const cli_command *cmd);
/* Help of --precision where a command converts in memory (inspect, run, bench, evaluate). */
#define CLI_PRECISION_HELP                                                                                \
    "  --precision fp16|bf16 (alias --autocast; fp32: as the file is) converts in memory first, I/O\n"   \
    "  kept FP32, taking convert's --block OP,..., --block-nodes NAME,..., --calibrate DIR,\n"         \
    "  --range-limit X, --underflow-limit X and --round nearest|zero.\n"

/* Help of --quiet (run, bench, check, train, convert, evaluate). */
#define CLI_QUIET_HELP \
    "  --quiet (-q) leaves out the informational lines on stderr (backend, progress); warnings and\n" \
    "  errors stay, and stdout is unchanged.\n"

/* The message for an option cmd does not take; returns 2 (the exit status). */
int cli_refuse(const char *cmd, const char *opt);
void cli_free(cli_opts *o);
/* Most --threads accepted: 4 per CPU, at least 64, at most 1024. */
int cli_max_threads(void);
/* The cores online: what --threads defaults to everywhere (the library's threads = 0). */
int cli_cores(void);
double cli_now_ms(void);
/* One line on stderr: the backend a session or trainer runs on, and why ("auto" says); nothing
 * under --quiet. */
void cli_say_backend(const cli_opts *o, const char *name, const char *note);
/* A context with default limits; exits with a message on failure. */
/* A context with the library defaults, or with --max-memory when o gives it (o may be NULL). */
amp_context *cli_context(const cli_opts *o);
/* Load inputs given with --input NAME=FILE into names/tensors[0, n_inputs): a .npy file (by its
 * extension, any case) through cli_load_npy, anything else as a TensorProto .pb; every name
 * must be an input of m. Returns 0 or 1 (message printed, nothing left allocated). */
int cli_load_inputs(amp_context *ctx, const amp_model *m, const cli_opts *o, const char **names, amp_tensor **tensors);
/* A NumPy .npy file (format 1.0 or 2.0, C order; <f4, <f2, <i8, <i4, |u1 or |b1) as a new tensor
 * in *out (the caller's to destroy). Sizes are checked against the file's before allocating.
 * Returns 0, or 1 after a message naming the path and what is wrong or unsupported. */
int cli_load_npy(amp_context *ctx, const char *path, amp_tensor **out);
/* A raw file (.raw or .bin, trtexec's --loadInputs): the bytes of input name of m, little-endian,
 * C order, in the input's declared dtype and the shape of cli_input_dims; when exactly one dim
 * is symbolic and bound by nothing, the file's size gives it. The size is checked before
 * anything is allocated. Returns 0, or 1 after a message. */
int cli_load_raw(amp_context *ctx, const amp_model *m, const cli_opts *o, const char *name, const char *path,
                 amp_tensor **out);
/* The shape an input of m takes from the command line into dims (vi, the input's info, gets
 * --shapes's rank and dims when it names the input): --shapes, then --dim for symbolic dims,
 * --batch for the first, 1 for the rest. *unbound (may be NULL): the one symbolic dim nothing
 * bound, -1 when none, -2 when several. Returns 0, or 1 after a message (no declared shape). */
int cli_input_dims(const amp_model *m, const cli_opts *o, amp_value_info *vi, int64_t *dims, int *unbound);
/* Make random inputs, seeded by --seed, for every model input: the --shapes shape when o gives one, else
 * the declared shape with symbolic dims from --dim (batch for the first dim when --batch is
 * given, else 1). */
int cli_random_inputs(amp_context *ctx, amp_model *m, const cli_opts *o, const char **names, amp_tensor **tensors);
/* --shapes (tools/amprt/shapes.c). Append the items of spec to o->shapes: 0, or 2 after a
 * message (a malformed item, a name given twice). */
int cli_parse_shapes(const char *spec, cli_opts *o);
/* The --shapes entry of input name, or NULL. */
const cli_shape *cli_shape_of(const cli_opts *o, const char *name);
/* Every --shapes entry names an input of m, has its rank and fixed dims, and gives each
 * symbolic dim the one value every other --shapes entry and --dim give it: 0, or 2 after a
 * message. */
int cli_check_shapes(const amp_model *m, const cli_opts *o);
/* The value --shapes gives the symbolic dim sym (after cli_check_shapes), into *v; false when
 * no entry binds it. */
bool cli_shapes_bind(const amp_model *m, const cli_opts *o, const char *sym, int64_t *v);
/* A JSON string; bytes that are not valid UTF-8 become U+FFFD, so the output is valid JSON. */
void cli_json_str(FILE *f, const char *s);

/* Files (tools/amprt/files.c). Each returns 0, or 1 after printing a message naming the path. */
/* path, when it exists, is a regular file (for --resume, read after the model and the data). */
int cli_check_regular(const char *path, const char *what);
/* dir exists and is a folder (the loader refuses data files that are not regular files). */
int cli_check_data_dir(const char *dir);
/* path can be written: not a folder, and a file can be created and removed beside it. Also
 * removes PATH.tmp.PID files left by killed runs (PID no longer alive). */
int cli_check_writable(const char *path, const char *what);
/* Load MODEL; "-" reads it from stdin (all its tensors inside: external data is refused). */
int cli_load_model(amp_context *ctx, const char *path, amp_model **m);
/* Save m to path; "-" writes it to stdout once it is complete (nothing on a failure). */
int cli_save_model(amp_context *ctx, amp_model *m, const char *path);

/* One node the conversion left in FP32, and why (amp_autocast_decision with owned strings). */
typedef struct cli_decision {
    char *node, *op;
    amp_autocast_reason reason;
    double value, limit;
    bool drawn; /* matched to a node of the drawing already */
} cli_decision;

/* Autocast from the command line (tools/amprt/autocast_cli.c). */
typedef struct cli_autocast {
    amp_autocast_report report;
    amp_model *fp32;         /* the model before conversion (owned) */
    char *lists;             /* storage of the block lists */
    const char *block_ops[64], *block_nodes[64];
    const char **calib_names; /* n_names */
    amp_tensor **calib;       /* n_calib * n_names complete sets, n_cells allocated */
    int n_calib, n_names, n_cells;
    /* why each node the conversion left in FP32 is there, in node order (the explain callback
     * of amp_autocast_options) */
    cli_decision *why;
    int n_why, cap_why;
    bool why_oom;
} cli_autocast;

/* Parse "fp16"/"bf16"/"fp32" into a dtype (AMP_F32 for fp32); 0 after printing a message. */
amp_dtype cli_parse_dtype(const char *s, const char *opt);
/* The JSON value naming an in-memory conversion to lo: "\"fp16\"", "\"bf16\"", or "null" for
 * none (AMP_UNDEFINED). */
const char *cli_precision_json(amp_dtype lo);
/* The 16-bit dtype --precision asks to convert to, or AMP_UNDEFINED (not given, or fp32). */
amp_dtype cli_autocast_dtype(const cli_opts *o);
/* Replace *m with its converted copy (dtype lo), keeping the original in ca->fp32. Uses
 * --io-16bit (convert; in_memory conversions, for amprt's own runs, keep FP32 I/O and may use
 * 16-bit types ONNX does not list), --block, --block-nodes, --calibrate, --round and
 * --range-limit from o. Returns 0, or 1 after printing a message. */
int cli_autocast_model(amp_context *ctx, const cli_opts *o, amp_dtype lo, bool in_memory, amp_model **m,
                       cli_autocast *ca);
void cli_autocast_free(cli_autocast *ca);
/* The conversion report as one JSON object: the counts, and "fp32_nodes", one {node, op, reason,
 * value, limit} per node left in FP32 (value and limit null where the reason has none). */
void cli_report_json(FILE *f, const cli_autocast *ca);
/* The short name of a reason ("deny-class", "range", ...) and what it means with its numbers,
 * as --verbose prints it. */
const char *cli_reason_name(amp_autocast_reason r);
void cli_reason_text(char *buf, size_t len, const cli_decision *d);
/* A deny-class or neighbours node the max_error search tried in 16 bits: value the error
 * measured then (-1: the passes ran out first), limit the target. */
bool cli_reason_measured(const cli_decision *d);
/* Matmul/conv FLOPs of the last plan of s: total and in 16-bit types. */
void cli_plan_flops(const amp_session *s, double *total, double *in16);
/* Graphviz drawing of the model, nodes coloured by precision, casts marked; FP32 nodes carry
 * the reason ca records (ca may be NULL) as their tooltip. With s (a session of m, planned),
 * the nodes its last plan folded are left out; NULL draws every node. 0 or 1. */
int cli_write_dot(amp_context *ctx, const amp_model *m, const char *path, cli_autocast *ca, const amp_session *s);

/* The timed loop of bench (tools/amprt/bench_time.c). */
typedef amp_status (*cli_step_fn)(void *user);
typedef struct cli_times {
    double *ms;      /* the n times of one run each, in milliseconds, sorted (owned) */
    int n;
    double total_ms; /* wall time of the whole loop */
    double median, min, max, p50, p90, p99, mean; /* mean: total_ms / n, what a caller's loop sees */
    amp_status status; /* the failure of step, when it failed */
} cli_times;
/* Call step o->runs times, and more while o->duration_s has not passed (at most 10 million runs
 * in all), timing each call; then t holds the sorted times and their statistics (percentiles
 * interpolated between ranks, p50 the median). Returns 0; or 1 with t empty and t->status the
 * failure of step (its message is the caller's to print), or AMP_OK when the times found no
 * memory (message printed). cli_times_free releases t. */
int cli_time_runs(const cli_opts *o, cli_step_fn step, void *user, cli_times *t);
void cli_times_free(cli_times *t);
/* The fields "runs", "median_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms"
 * and "timed_s" of a JSON object, without braces. */
void cli_times_json(FILE *f, const cli_times *t);
/* "median X ms (min X, max X; p50 X, p90 X, p99 X)" */
void cli_times_text(FILE *f, const cli_times *t);

/* amprt bench --train on m (tools/amprt/bench_train.c): 0, or 1 after printing a message. */
int cli_bench_train(amp_context *ctx, const cli_opts *o, amp_model *m);
/* Seeded labels for a training step of m on inputs ins, from one CPU prediction: cross entropy
 * (*ce) with class indices for an N x C output (N x D for N x C x D), else MSE toward a seeded
 * target of the output's shape. 1 after printing why on failure. (bench_train.c) */
int cli_train_labels(amp_context *ctx, const cli_opts *o, amp_model *m, int nin, const char **names, amp_tensor **ins,
                     amp_tensor **labels, bool *ce);

int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_ops(int argc, char **argv);

#endif
