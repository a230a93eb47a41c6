/* amprt convert: load a model and write it back as ONNX (mixed-precision conversion joins it
 * with the autocast pass). */
#include <string.h>

#include "tools/amprt/cli.h"

static const char *const usage =
    "usage: amprt convert IN.onnx OUT.onnx [--dtype fp32]\n"
    "  Loads IN into amprt's graph IR and writes it back to OUT (to a temporary name, then\n"
    "  renamed). With --dtype fp32 (the only value this build accepts) the graph is unchanged:\n"
    "  an import/export round trip.\n";

int cmd_convert(int argc, char **argv) {
    const char *dtype = "fp32";
    /* peel --dtype before the common parser */
    char *args[128];
    int n = 0;
    for (int i = 0; i < argc && n < 128; i++) {
        if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) {
            dtype = argv[++i];
            continue;
        }
        args[n++] = argv[i];
    }
    cli_opts o;
    int rc = cli_parse(n, args, 2, &o, usage);
    if (rc) return rc;
    if (o.n_positional != 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(dtype, "fp32") != 0) {
        fprintf(stderr, "amprt: --dtype %s is not available in this build (only fp32)\n", dtype);
        return 2;
    }
    amp_context *ctx = cli_context();
    amp_model *m = NULL;
    rc = 1;
    amp_status s = amp_model_load(ctx, o.positional[0], &m);
    if (s) {
        fprintf(stderr, "amprt: cannot load the model: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        goto done;
    }
    s = amp_model_save(m, o.positional[1]);
    if (s) {
        fprintf(stderr, "amprt: cannot write '%s': %s: %s\n", o.positional[1], amp_status_name(s),
                amp_context_last_error(ctx));
        goto done;
    }
    rc = 0;
done:
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    cli_free(&o);
    return rc;
}
