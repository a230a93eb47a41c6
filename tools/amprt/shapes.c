/* --shapes NAME:D0xD1x...[,NAME:...]: the concrete shape of named inputs (trtexec's and
 * polygraphy's spelling), for run and bench. */
#include <stdlib.h>
#include <string.h>

#include "tools/amprt/cli.h"

/* Most a dim of --shapes may be (as --dim). */
#define CLI_SHAPE_MAX_DIM 1000000000LL

/* Parse "D0xD1x..." (n bytes at s) into sh; 0 after a message naming item. */
static int parse_dims(const char *s, size_t n, const char *item, cli_shape *sh) {
    sh->rank = 0;
    size_t i = 0;
    while (i < n) {
        if (sh->rank == AMP_MAX_RANK) {
            fprintf(stderr, "amprt: --shapes '%s': more than %d dims\n", item, AMP_MAX_RANK);
            return 0;
        }
        long long v = 0;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9' && v <= CLI_SHAPE_MAX_DIM) v = v * 10 + (s[i++] - '0');
        if (i == start || v > CLI_SHAPE_MAX_DIM || (i < n && s[i] != 'x') || (i + 1 == n)) {
            fprintf(stderr, "amprt: --shapes '%s': expects NAME:D0xD1x... with dims from 0 to %lld\n", item,
                    CLI_SHAPE_MAX_DIM);
            return 0;
        }
        sh->dims[sh->rank++] = v;
        if (i < n) i++; /* the 'x' */
    }
    return 1;
}

int cli_parse_shapes(const char *spec, cli_opts *o) {
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[512];
        snprintf(item, sizeof item, "%.*s", (int)(len < 400 ? len : 400), p);
        /* the last ':' splits, so a name may hold one (a dims part never does) */
        const char *colon = NULL;
        for (const char *c = p; c < p + len; c++)
            if (*c == ':') colon = c;
        if (!colon || colon == p || colon + 1 == p + len) {
            fprintf(stderr, "amprt: --shapes expects NAME:D0xD1x...[,NAME:...], got '%s'\n", item);
            return 2;
        }
        cli_shape sh = {0};
        if (!parse_dims(colon + 1, (size_t)(p + len - colon - 1), item, &sh)) return 2;
        size_t nlen = (size_t)(colon - p);
        for (int k = 0; k < o->n_shapes; k++)
            if (strlen(o->shapes[k].name) == nlen && memcmp(o->shapes[k].name, p, nlen) == 0) {
                fprintf(stderr, "amprt: --shapes gives input '%.*s' twice\n", (int)nlen, p);
                return 2;
            }
        cli_shape *grown = realloc(o->shapes, sizeof *grown * ((size_t)o->n_shapes + 1));
        sh.name = malloc(nlen + 1);
        if (grown) o->shapes = grown;
        if (!grown || !sh.name) {
            free(sh.name);
            fprintf(stderr, "amprt: out of memory\n");
            return 2;
        }
        memcpy(sh.name, p, nlen);
        sh.name[nlen] = 0;
        o->shapes[o->n_shapes++] = sh;
        if (!end) return 0;
        p = end + 1;
    }
}

const cli_shape *cli_shape_of(const cli_opts *o, const char *name) {
    for (int k = 0; k < o->n_shapes; k++)
        if (strcmp(o->shapes[k].name, name) == 0) return &o->shapes[k];
    return NULL;
}

/* Input named name of m into vi; false when m has none. */
static bool input_named(const amp_model *m, const char *name, amp_value_info *vi) {
    for (int i = 0; i < amp_model_input_count(m); i++) {
        *vi = (amp_value_info){.struct_size = sizeof *vi};
        if (amp_model_input_info(m, i, vi) == AMP_OK && strcmp(vi->name, name) == 0) return true;
    }
    return false;
}

int cli_check_shapes(const amp_model *m, const cli_opts *o) {
    for (int k = 0; k < o->n_shapes; k++) {
        const cli_shape *sh = &o->shapes[k];
        amp_value_info vi;
        if (!input_named(m, sh->name, &vi)) {
            fprintf(stderr, "amprt: --shapes '%s': the model has no input of that name (its inputs:", sh->name);
            int nin = amp_model_input_count(m);
            for (int i = 0; i < nin && i < 16; i++) {
                amp_value_info v = {.struct_size = sizeof v};
                if (amp_model_input_info(m, i, &v) == AMP_OK) fprintf(stderr, " '%s'", v.name);
            }
            fprintf(stderr, "%s)\n", nin > 16 ? " ..." : nin == 0 ? " none" : "");
            return 2;
        }
        if (vi.rank < 0) continue; /* the model does not say: the given shape is the shape */
        if (vi.rank != sh->rank) {
            fprintf(stderr, "amprt: --shapes '%s': gives %d dims, but the model's input has %d\n", sh->name, sh->rank,
                    vi.rank);
            return 2;
        }
        for (int d = 0; d < vi.rank; d++) {
            if (vi.dims[d] >= 0 && vi.dims[d] != sh->dims[d]) {
                fprintf(stderr, "amprt: --shapes '%s': dim %d is %lld in the model, not %lld\n", sh->name, d,
                        (long long)vi.dims[d], (long long)sh->dims[d]);
                return 2;
            }
            if (vi.dims[d] >= 0 || !vi.dim_names[d]) continue;
            /* a symbol takes one value: every other mention of it must agree */
            for (int j = 0; j < o->n_shapes; j++) {
                amp_value_info vj;
                if (j == k || !input_named(m, o->shapes[j].name, &vj) || vj.rank != o->shapes[j].rank) continue;
                for (int e = 0; e < vj.rank; e++)
                    if (vj.dims[e] < 0 && vj.dim_names[e] && strcmp(vj.dim_names[e], vi.dim_names[d]) == 0 &&
                        o->shapes[j].dims[e] != sh->dims[d]) {
                        fprintf(stderr, "amprt: --shapes: dim '%s' is %lld in '%s' but %lld in '%s'\n", vi.dim_names[d],
                                (long long)sh->dims[d], sh->name, (long long)o->shapes[j].dims[e], o->shapes[j].name);
                        return 2;
                    }
            }
            for (int j = 0; j < o->n_dims; j++)
                if (strcmp(o->dims[j].name, vi.dim_names[d]) == 0 && o->dims[j].value != sh->dims[d]) {
                    fprintf(stderr, "amprt: --shapes '%s': dim %d ('%s') is %lld, but --dim %s=%lld\n", sh->name, d,
                            vi.dim_names[d], (long long)sh->dims[d], o->dims[j].name, (long long)o->dims[j].value);
                    return 2;
                }
        }
    }
    return 0;
}

bool cli_shapes_bind(const amp_model *m, const cli_opts *o, const char *sym, int64_t *v) {
    for (int k = 0; k < o->n_shapes; k++) {
        amp_value_info vi;
        if (!input_named(m, o->shapes[k].name, &vi) || vi.rank != o->shapes[k].rank) continue;
        for (int d = 0; d < vi.rank; d++)
            if (vi.dims[d] < 0 && vi.dim_names[d] && strcmp(vi.dim_names[d], sym) == 0) {
                *v = o->shapes[k].dims[d]; /* cli_check_shapes made every mention agree */
                return true;
            }
    }
    return false;
}
