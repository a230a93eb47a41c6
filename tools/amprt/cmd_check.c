/* amprt check: run ONNX backend-test cases (model.onnx + test_data_set_N/{input,output}_K.pb)
 * and compare every output. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "base/elem.h"
#include "tools/amprt/cli.h"

static const char *const usage =
    "usage: amprt check DIR... [--rtol X] [--atol X] [--threads N] [--list-passing FILE] [--verbose]\n"
    "                   [--precision fp16|bf16] [--backend ...] [--fusion auto|on|off] [--max-memory BYTES]\n"
    "                   [--json] [--quiet]\n"
    "  Each DIR is a case (holding model.onnx) or a folder of cases. Prints PASS, FAIL or SKIP per\n"
    "  case and last 'N passed, N failed, N skipped'. Floats match when |a-b| <= atol + rtol*|b|\n"
    "  (defaults 1e-3 and 1e-5), NaN only matches NaN; integers and bools must be equal.\n"
    "  --threads N: CPU threads of each case's session (default: all cores).\n"
    "  With --precision (alias --autocast) each model is converted first (I/O kept FP32; convert's\n"
    "  --block, --block-nodes, --calibrate, --range-limit and --round apply) and float outputs must\n"
    "  be within relative L2 error 1e-2 (fp16) or 3e-2 (bf16) of the FP32 expectation, finite where\n"
    "  it is finite; --precision fp32 is the plain comparison.\n"
    "  SKIP means an unsupported op or dtype, named on the line; it never counts as a pass.\n"
    "  --json prints one JSON object instead: \"cases\" (name, dir, result pass|fail|skip, why,\n"
    "  ms), then \"passed\", \"failed\" and \"skipped\".\n"
    "  Exit status: 0 when nothing failed, 1 otherwise.\n" CLI_QUIET_HELP;

static const cli_command check_cmd = {"check", usage,
                                      CLI_TOLERANCE | CLI_THREADS | CLI_LIST_PASSING | CLI_VERBOSE | CLI_AUTOCAST |
                                          CLI_CONVERT | CLI_BACKEND | CLI_FUSION | CLI_MAX_MEMORY | CLI_QUIET | CLI_JSON};

typedef enum { R_PASS, R_FAIL, R_SKIP } result;

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}
static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted list of subfolder names of dir starting with prefix (NULL for all). */
static char **list_dirs(const char *dir, const char *prefix, int *n) {
    DIR *d = opendir(dir);
    *n = 0;
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (prefix && strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        char path[4352];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!is_dir(path)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, sizeof(char *) * (size_t)cap);
            if (!nn) break;
            names = nn;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names) qsort(names, (size_t)*n, sizeof(char *), cmp_str);
    return names;
}

static void free_list(char **l, int n) {
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

/* Compare got with want; on mismatch write a reason. */
static bool compare(const amp_tensor *got, const amp_tensor *want, double rtol, double atol, char *why, size_t whyn) {
    if (got->dtype != want->dtype) {
        snprintf(why, whyn, "dtype %s, expected %s", amp_dtype_name(got->dtype), amp_dtype_name(want->dtype));
        return false;
    }
    bool shape_ok = got->rank == want->rank;
    for (int d = 0; shape_ok && d < got->rank; d++) shape_ok = got->dims[d] == want->dims[d];
    if (!shape_ok) {
        char a[128] = "", b[128] = "";
        for (int d = 0; d < got->rank; d++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? "," : "", (long long)got->dims[d]);
        for (int d = 0; d < want->rank; d++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? "," : "", (long long)want->dims[d]);
        snprintf(why, whyn, "shape [%s], expected [%s]", a, b);
        return false;
    }
    bool fl = amp_dtype_is_float(got->dtype);
    for (int64_t i = 0; i < got->numel; i++) {
        if (fl) {
            double x = amp_ld(got->dtype, got->data, i), y = amp_ld(want->dtype, want->data, i);
            bool ok;
            if (isnan(y) || isnan(x)) ok = isnan(x) && isnan(y);
            else if (isinf(y) || isinf(x)) ok = x == y;
            else ok = fabs(x - y) <= atol + rtol * fabs(y);
            if (!ok) {
                snprintf(why, whyn, "element %lld is %.9g, expected %.9g", (long long)i, x, y);
                return false;
            }
        } else {
            int64_t x = amp_ldi(got->dtype, got->data, i), y = amp_ldi(want->dtype, want->data, i);
            if (x != y) {
                snprintf(why, whyn, "element %lld is %lld, expected %lld", (long long)i, (long long)x, (long long)y);
                return false;
            }
        }
    }
    return true;
}

/* Mixed precision: float outputs within relative L2 error tol of the FP32 expectation (over
 * the finite expected elements; non-finite ones must match exactly), and no inf or NaN where
 * the expectation is finite. Integer and bool outputs go through compare(). */
static bool compare_mixed(const amp_tensor *got, const amp_tensor *want, double tol, char *why, size_t whyn) {
    if (!amp_dtype_is_float(want->dtype) || got->dtype != want->dtype || got->numel != want->numel)
        return compare(got, want, 0, 0, why, whyn);
    double num = 0, den = 0;
    for (int64_t i = 0; i < got->numel; i++) {
        double x = amp_ld(got->dtype, got->data, i), y = amp_ld(want->dtype, want->data, i);
        if (!isfinite(y)) {
            if (!(x == y || (isnan(x) && isnan(y)))) {
                snprintf(why, whyn, "element %lld is %.9g, expected %.9g", (long long)i, x, y);
                return false;
            }
            continue;
        }
        if (!isfinite(x)) {
            snprintf(why, whyn, "element %lld is %.9g, expected finite %.9g", (long long)i, x, y);
            return false;
        }
        num += (x - y) * (x - y);
        den += y * y;
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    if (rel > tol) {
        snprintf(why, whyn, "relative L2 error %.3g over the tolerance %.3g", rel, tol);
        return false;
    }
    return true;
}

static result status_result(amp_status s) { return s == AMP_ERR_UNSUPPORTED ? R_SKIP : R_FAIL; }

static result run_case(const char *dir, const cli_opts *o, char *why, size_t whyn) {
    amp_context *ctx = cli_context(o);
    amp_model *m = NULL;
    amp_session *sess = NULL;
    result r = R_PASS;
    char path[4352];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    amp_status s = amp_model_load(ctx, path, &m);
    if (s) {
        snprintf(why, whyn, "%s: %s", amp_status_name(s), amp_context_last_error(ctx));
        r = status_result(s);
        goto done;
    }
    cli_autocast ca;
    memset(&ca, 0, sizeof ca);
    double mixed_tol = 0;
    amp_dtype lo = cli_autocast_dtype(o);
    if (lo) {
        mixed_tol = lo == AMP_BF16 ? 3e-2 : 1e-2;
        if (cli_autocast_model(ctx, o, lo, true, &m, &ca)) {
            snprintf(why, whyn, "autocast failed: %s", amp_context_last_error(ctx));
            r = status_result(AMP_ERR_INVALID_GRAPH);
            cli_autocast_free(&ca);
            goto done;
        }
        cli_autocast_free(&ca); /* the FP32 model is not needed */
    }
    amp_session_options so = {.struct_size = sizeof so, .backend = o->backend, .fusion = o->fusion, .threads = o->threads};
    s = amp_session_create(m, &so, &sess);
    if (s) {
        snprintf(why, whyn, "%s: %s", amp_status_name(s), amp_context_last_error(ctx));
        r = status_result(s);
        goto done;
    }
    if (o->verbose) cli_say_backend(o, amp_session_backend(sess), amp_session_backend_note(sess));
    int nsets;
    char **sets = list_dirs(dir, "test_data_set_", &nsets);
    if (nsets == 0) {
        snprintf(why, whyn, "no test_data_set_N folder");
        r = R_FAIL;
        free_list(sets, nsets);
        goto done;
    }
    int nin = amp_model_input_count(m), nout = amp_model_output_count(m);
    const char **names = calloc((size_t)nin + 1, sizeof *names), **onames = calloc((size_t)nout + 1, sizeof *onames);
    amp_tensor **ins = calloc((size_t)nin + 1, sizeof *ins), **outs = calloc((size_t)nout + 1, sizeof *outs),
               **want = calloc((size_t)nout + 1, sizeof *want);
    if (!names || !onames || !ins || !outs || !want) {
        snprintf(why, whyn, "out of memory");
        r = R_FAIL;
    }
    for (int si = 0; si < nsets && r == R_PASS; si++) {
        int given = 0;
        /* an expected output the model does not produce: a model with no outputs passes nothing */
        snprintf(path, sizeof path, "%s/%s/output_%d.pb", dir, sets[si], nout);
        if (is_file(path)) {
            snprintf(why, whyn, "%s holds output_%d.pb but the model has %d output%s", sets[si], nout, nout,
                     nout == 1 ? "" : "s");
            r = R_FAIL;
            break;
        }
        /* inputs: input_K.pb in the order of the model's inputs; a missing file is an omitted
         * optional input only when the model has fewer files than inputs */
        for (int k = 0; k < nin; k++) {
            snprintf(path, sizeof path, "%s/%s/input_%d.pb", dir, sets[si], k);
            if (!is_file(path)) break;
            amp_value_info vi = {.struct_size = sizeof vi};
            amp_model_input_info(m, k, &vi);
            s = amp_tensor_load_pb(ctx, path, &ins[k], NULL);
            if (s) {
                snprintf(why, whyn, "%s: %s", amp_status_name(s), amp_context_last_error(ctx));
                r = status_result(s);
                break;
            }
            /* ONNX 1.12's test data stores bfloat16 tensors as their uint16 bit patterns */
            if (vi.dtype == AMP_BF16 && ins[k]->dtype == AMP_U16) ins[k]->dtype = AMP_BF16;
            names[k] = vi.name;
            given++;
        }
        for (int k = 0; k < nout && r == R_PASS; k++) {
            amp_value_info vi = {.struct_size = sizeof vi};
            amp_model_output_info(m, k, &vi);
            onames[k] = vi.name;
            snprintf(path, sizeof path, "%s/%s/output_%d.pb", dir, sets[si], k);
            struct stat fst;
            s = stat(path, &fst) == 0 && !S_ISREG(fst.st_mode)
                    ? amp_seterr(ctx, AMP_ERR_IO, "'%s' is not a regular file", path)
                    : amp_tensor_load_pb(ctx, path, &want[k], NULL);
            if (s) {
                snprintf(why, whyn, "expected output %d: %s: %s", k, amp_status_name(s), amp_context_last_error(ctx));
                r = status_result(s);
            } else if (vi.dtype == AMP_BF16 && want[k]->dtype == AMP_U16) {
                want[k]->dtype = AMP_BF16; /* bit patterns, as for inputs */
            }
        }
        if (r == R_PASS) {
            s = amp_session_run(sess, given, names, (const amp_tensor *const *)ins, nout, onames, outs);
            if (s) {
                snprintf(why, whyn, "%s: %s", amp_status_name(s), amp_session_last_error(sess));
                r = status_result(s);
            }
        }
        for (int k = 0; k < nout && r == R_PASS; k++) {
            char w[512];
            bool ok = mixed_tol > 0 ? compare_mixed(outs[k], want[k], mixed_tol, w, sizeof w)
                                    : compare(outs[k], want[k], o->rtol, o->atol, w, sizeof w);
            if (!ok) {
                snprintf(why, whyn, "%s output %d ('%s'): %s", sets[si], k, onames[k], w);
                r = R_FAIL;
            }
        }
        for (int k = 0; ins && k < nin; k++) {
            amp_tensor_destroy(ins[k]);
            ins[k] = NULL;
        }
        for (int k = 0; outs && want && k < nout; k++) {
            amp_tensor_destroy(outs[k]);
            amp_tensor_destroy(want[k]);
            outs[k] = want[k] = NULL;
        }
    }
    free(names);
    free(onames);
    free(ins);
    free(outs);
    free(want);
    free_list(sets, nsets);
done:
    amp_session_destroy(sess);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    return r;
}

int cmd_check(int argc, char **argv) {
    cli_opts o;
    int rc = cli_parse(argc, argv, 2, &o, &check_cmd);
    if (rc) return rc;
    if (o.n_positional == 0) {
        fputs(usage, stderr);
        cli_free(&o);
        return 2;
    }
    FILE *list = NULL;
    if (o.list_file) {
        list = fopen(o.list_file, "w");
        if (!list) {
            fprintf(stderr, "amprt: cannot write '%s': %s\n", o.list_file, strerror(errno));
            cli_free(&o);
            return 2;
        }
    }
    int passed = 0, failed = 0, skipped = 0, listed = 0;
    if (o.json) printf("{\"cases\": [");
    for (int pi = 0; pi < o.n_positional; pi++) {
        const char *root = o.positional[pi];
        char path[4352];
        snprintf(path, sizeof path, "%s/model.onnx", root);
        char **cases = NULL;
        int ncases = 0;
        bool single = is_file(path);
        if (!single) {
            if (!is_dir(root)) {
                fprintf(stderr, "amprt: '%s' is not a folder\n", root);
                failed++;
                continue;
            }
            cases = list_dirs(root, NULL, &ncases);
        }
        for (int ci = 0; ci < (single ? 1 : ncases); ci++) {
            char dir[4096];
            if (single) snprintf(dir, sizeof dir, "%s", root);
            else snprintf(dir, sizeof dir, "%s/%s", root, cases[ci]);
            snprintf(path, sizeof path, "%s/model.onnx", dir);
            if (!is_file(path)) continue;
            const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
            char why[1200] = "";
            double t0 = cli_now_ms();
            result r = run_case(dir, &o, why, sizeof why);
            double dt = cli_now_ms() - t0;
            if (o.json) {
                printf("%s\n  {\"name\": ", listed++ ? "," : "");
                cli_json_str(stdout, name);
                printf(", \"dir\": ");
                cli_json_str(stdout, dir);
                printf(", \"result\": \"%s\", \"why\": ", r == R_PASS ? "pass" : r == R_FAIL ? "fail" : "skip");
                cli_json_str(stdout, why);
                printf(", \"ms\": %.3f}", dt);
            }
            if (r == R_PASS) {
                passed++;
                if (!o.json) {
                    printf("PASS %s", name);
                    if (o.verbose) printf(" (%.1f ms)", dt);
                    printf("\n");
                }
                if (list) fprintf(list, "%s\n", name);
            } else if (r == R_FAIL) {
                failed++;
                if (!o.json) printf("FAIL %s: %s\n", name, why);
            } else {
                skipped++;
                if (!o.json) printf("SKIP %s: %s\n", name, why);
            }
            fflush(stdout);
        }
        free_list(cases, ncases);
    }
    if (list) fclose(list);
    if (o.json) printf("\n], \"passed\": %d, \"failed\": %d, \"skipped\": %d}\n", passed, failed, skipped);
    else printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    cli_free(&o);
    return failed ? 1 : 0;
}
