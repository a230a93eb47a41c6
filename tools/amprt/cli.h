/* The amprt command-line tool: shared helpers of the subcommands. */
#ifndef AMP_TOOLS_CLI_H
#define AMP_TOOLS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "amprt/amprt.h"

typedef struct cli_opts {
    const char *model;
    const char *inputs[64]; /* NAME=FILE.pb */
    int n_inputs;
    amp_dim_binding dims[32];
    char *dim_names[32];
    int n_dims;
    int threads;
    int batch;      /* 0: not given */
    int runs, warmup;
    bool json;
    bool verbose;
    amp_backend_kind backend;
    const char *output_dir;
    const char *list_file;
    double rtol, atol;
    const char *positional[64];
    int n_positional;
} cli_opts;

/* Parse the common options; returns 0, or 2 after printing a message. */
int cli_parse(int argc, char **argv, int first, cli_opts *o, const char *usage);
void cli_free(cli_opts *o);
double cli_now_ms(void);
/* A context with default limits; exits with a message on failure. */
amp_context *cli_context(void);
/* Load inputs given with --input NAME=FILE.pb; returns 0 or 1 (message printed). */
int cli_load_inputs(amp_context *ctx, const cli_opts *o, const char **names, amp_tensor **tensors);
/* Make seeded random inputs for every model input, binding symbolic dims from o (batch for the
 * first dim when --batch is given, else 1). */
int cli_random_inputs(amp_context *ctx, amp_model *m, const cli_opts *o, const char **names, amp_tensor **tensors);
void cli_json_str(FILE *f, const char *s);

int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);

#endif
