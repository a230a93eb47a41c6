/* Shape inference of the linalg family: Einsum, Det and the window generators (HannWindow,
 * HammingWindow, BlackmanWindow); and the Einsum equation parser and contraction planner, which
 * the CPU kernel and its workspace sizing (backends/cpu/linalg.c) and the gradient builder
 * (ir/ops/linalg_grad.c) call too, so that both see one contraction plan.
 *
 * Einsum labels: 'A'..'Z' are 0..25 and 'a'..'z' 26..51 (ASCII order, the order of an implicit
 * output), the dims an ellipsis stands for are 52..59: the broadcast ellipsis has E dims (the
 * most any operand's ellipsis covers) labelled 52..52+E-1, and an operand whose ellipsis covers
 * e dims gets the last e of them (numpy's right-aligned broadcasting). Dims of size 1 broadcast
 * against the other operands' sizes of the same label, letters included, as numpy and
 * onnxruntime allow; dims repeated within one operand (a diagonal) must be equal. */
#include <stdio.h>
#include <string.h>

#include "ir/ops/linalg.h"

#define EIN_LETTERS 52
#define EIN_MAX_IN 32

/* ---- Einsum equation ---------------------------------------------------------------------- */

static char letter_of(int id) { return (char)(id < 26 ? 'A' + id : 'a' + id - 26); }

static int letter_id(char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    return -1;
}

/* One term of the equation: letters and at most one ellipsis (at position ell, -1 when none). */
typedef struct ein_term {
    int8_t let[AMP_MAX_RANK + 1];
    int nlet;
    int ell;
} ein_term;

/* Parse the term starting at *p up to a ',' or "->" or the end; spaces are skipped. */
static amp_status parse_term(const char **pp, ein_term *t, char *msg, size_t cap) {
    const char *p = *pp;
    memset(t, 0, sizeof *t);
    t->ell = -1;
    for (;; p++) {
        char ch = *p;
        if (ch == ' ') continue;
        if (ch == '\0' || ch == ',' || ch == '-') break;
        if (ch == '.') {
            if (p[1] != '.' || p[2] != '.' || t->ell >= 0) {
                snprintf(msg, cap, "malformed ellipsis in the equation (one '...' per term)");
                return AMP_ERR_INVALID_GRAPH;
            }
            t->ell = t->nlet;
            p += 2;
            continue;
        }
        int id = letter_id(ch);
        if (id < 0) {
            if (ch > 32 && ch < 127)
                snprintf(msg, cap, "character '%c' is not allowed in the equation (letters, ',', '...', '->')", ch);
            else
                snprintf(msg, cap, "byte 0x%02x is not allowed in the equation (letters, ',', '...', '->')",
                         (unsigned char)ch);
            return AMP_ERR_INVALID_GRAPH;
        }
        if (t->nlet >= AMP_MAX_RANK) {
            snprintf(msg, cap, "a term has more than %d subscripts", AMP_MAX_RANK);
            return AMP_ERR_INVALID_GRAPH;
        }
        t->let[t->nlet++] = (int8_t)id;
    }
    *pp = p;
    return AMP_OK;
}

/* Labels of every operand dim (lab[i][d]) and of the output (olab, *orank) for an equation
 * over nin operands of ranks ranks[]; *ell_dims: E, the dims of the broadcast ellipsis. A
 * message into msg on failure (AMP_ERR_INVALID_GRAPH for a bad equation, AMP_ERR_SHAPE for
 * ranks that do not fit it). */
amp_status amp_einsum_parse(const char *eq, int nin, const int *ranks, int8_t (*lab)[AMP_MAX_RANK], int8_t *olab,
                            int *orank, int *ell_dims, char *msg, size_t cap) {
    if (!eq) {
        snprintf(msg, cap, "attribute 'equation' is required");
        return AMP_ERR_INVALID_GRAPH;
    }
    const char *arrow = strstr(eq, "->");
    if (arrow && strstr(arrow + 2, "->")) {
        snprintf(msg, cap, "the equation has more than one '->'");
        return AMP_ERR_INVALID_GRAPH;
    }
    for (const char *q = eq; *q; q++)
        if ((*q == '-' && q != arrow) || (*q == '>' && (!arrow || q != arrow + 1))) {
            snprintf(msg, cap, "stray '%c' in the equation", *q);
            return AMP_ERR_INVALID_GRAPH;
        }
    if (arrow)
        for (const char *q = arrow + 2; *q; q++)
            if (*q == ',') {
                snprintf(msg, cap, "the output term has a ','");
                return AMP_ERR_INVALID_GRAPH;
            }
    ein_term terms[EIN_MAX_IN];
    const char *p = eq;
    int nt = 0;
    amp_status s;
    for (;;) {
        if (nt >= nin) {
            snprintf(msg, cap, "the equation has more terms than the %d inputs", nin);
            return AMP_ERR_INVALID_GRAPH;
        }
        if ((s = parse_term(&p, &terms[nt], msg, cap))) return s;
        nt++;
        if (*p == ',') {
            p++;
            continue;
        }
        break;
    }
    if (nt != nin) {
        snprintf(msg, cap, "the equation has %d terms for %d inputs", nt, nin);
        return AMP_ERR_INVALID_GRAPH;
    }
    int ell = 0;
    bool any_ell = false;
    for (int i = 0; i < nin; i++) {
        const ein_term *t = &terms[i];
        int e = ranks[i] - t->nlet;
        if (t->ell < 0 ? e != 0 : e < 0) {
            snprintf(msg, cap, "input %d has rank %d but its term has %d subscripts%s", i, ranks[i], t->nlet,
                     t->ell >= 0 ? " and an ellipsis" : "");
            return AMP_ERR_SHAPE;
        }
        if (t->ell >= 0) any_ell = true;
        if (e > ell) ell = e;
    }
    for (int i = 0; i < nin; i++) {
        const ein_term *t = &terms[i];
        int e = ranks[i] - t->nlet, d = 0;
        for (int j = 0; j <= t->nlet; j++) {
            if (j == t->ell)
                for (int q = 0; q < e; q++) lab[i][d++] = (int8_t)(EIN_LETTERS + ell - e + q);
            if (j < t->nlet) lab[i][d++] = t->let[j];
        }
    }
    int r = 0;
    if (arrow) {
        ein_term out;
        p = arrow + 2;
        if ((s = parse_term(&p, &out, msg, cap))) return s;
        if (*p) {
            snprintf(msg, cap, "unexpected '%c' in the output term", *p);
            return AMP_ERR_INVALID_GRAPH;
        }
        if (ell > 0 && out.ell < 0) {
            snprintf(msg, cap, "the inputs' ellipsis stands for %d dims but the output term has no '...'", ell);
            return AMP_ERR_INVALID_GRAPH;
        }
        if (out.nlet + (out.ell >= 0 ? ell : 0) > AMP_MAX_RANK) {
            snprintf(msg, cap, "the output rank exceeds %d", AMP_MAX_RANK);
            return AMP_ERR_UNSUPPORTED;
        }
        uint64_t seen = 0;
        for (int j = 0; j < out.nlet; j++) {
            uint64_t b = 1ull << out.let[j];
            if (seen & b) {
                snprintf(msg, cap, "the output term repeats '%c'", letter_of(out.let[j]));
                return AMP_ERR_INVALID_GRAPH;
            }
            seen |= b;
            bool found = false;
            for (int i = 0; i < nin && !found; i++)
                for (int k = 0; k < terms[i].nlet && !found; k++) found = terms[i].let[k] == out.let[j];
            if (!found) {
                snprintf(msg, cap, "output subscript '%c' appears in no input", letter_of(out.let[j]));
                return AMP_ERR_INVALID_GRAPH;
            }
        }
        for (int j = 0; j <= out.nlet; j++) {
            if (j == out.ell)
                for (int q = 0; q < ell; q++) olab[r++] = (int8_t)(EIN_LETTERS + q);
            if (j < out.nlet) olab[r++] = out.let[j];
        }
    } else {
        /* implicit output: the ellipsis first, then the letters seen exactly once, in ASCII order */
        int count[EIN_LETTERS] = {0};
        for (int i = 0; i < nin; i++)
            for (int k = 0; k < terms[i].nlet; k++) count[terms[i].let[k]]++;
        if (any_ell)
            for (int q = 0; q < ell; q++) olab[r++] = (int8_t)(EIN_LETTERS + q);
        for (int l = 0; l < EIN_LETTERS; l++)
            if (count[l] == 1) {
                if (r >= AMP_MAX_RANK) {
                    snprintf(msg, cap, "the output rank exceeds %d", AMP_MAX_RANK);
                    return AMP_ERR_UNSUPPORTED;
                }
                olab[r++] = (int8_t)l;
            }
    }
    *orank = r;
    *ell_dims = ell;
    return AMP_OK;
}

/* Size of every label (ldim[0..63], -1 for labels not used) from the operands' dims, checking
 * that repeated labels within an operand have equal dims and that dims of one label agree across
 * operands up to broadcasting of size 1. */
amp_status amp_einsum_sizes(int nin, const int *ranks, const int64_t (*dims)[AMP_MAX_RANK],
                            const int8_t (*lab)[AMP_MAX_RANK], int64_t *ldim, char *msg, size_t cap) {
    for (int l = 0; l < 64; l++) ldim[l] = -1;
    for (int i = 0; i < nin; i++)
        for (int d = 0; d < ranks[i]; d++) {
            int l = lab[i][d];
            int64_t v = dims[i][d];
            for (int e = 0; e < d; e++)
                if (lab[i][e] == l && dims[i][e] != v) {
                    snprintf(msg, cap, "input %d repeats a subscript over dims %d and %d of sizes %lld and %lld", i, e,
                             d, (long long)dims[i][e], (long long)v);
                    return AMP_ERR_SHAPE;
                }
            if (ldim[l] < 0 || ldim[l] == 1) ldim[l] = ldim[l] < 0 || v != 1 ? v : ldim[l];
            else if (v != 1 && v != ldim[l]) {
                snprintf(msg, cap, "input %d dim %d has size %lld where another input has %lld", i, d, (long long)v,
                         (long long)ldim[l]);
                return AMP_ERR_SHAPE;
            }
        }
    return AMP_OK;
}

/* Product of the sizes of the labels in mask; -1 when it exceeds 2^62. */
static int64_t mask_size(uint64_t mask, const int64_t *ldim) {
    int64_t n = 1;
    for (int l = 0; l < 64; l++)
        if (mask >> l & 1) {
            if (ldim[l] == 0) return 0;
            if (n > ((int64_t)1 << 62) / ldim[l]) return -1;
            n *= ldim[l];
        }
    return n;
}

static int64_t add_sat(int64_t a, int64_t b) {
    if (a < 0 || b < 0 || a > ((int64_t)1 << 62) - b) return -1;
    return a + b;
}

/* The pairwise contraction plan over operands whose label sets are mask[0..nin-1] and an output
 * of labels omask. Step s contracts operands pair[s][0] and pair[s][1] (inputs are 0..nin-1,
 * the result of step s is operand nin+s) keeping the labels keep[s] (those of the output or of an
 * operand not yet contracted); labels that only one of the pair has and that are not kept are
 * summed while that operand is packed. Greedy: each step takes the pair whose result is
 * smallest (the first such pair on ties).
 *
 * Workspace, in elements of the compute type: the result of step s at res_off[s]; every step
 * packs its two operands from pack_off on (the first of the pair, labels of its mask that are
 * kept or shared with the other, then the second likewise). Returns the total, or -1 when a
 * size overflows. nin - 1 steps. */
int64_t amp_einsum_plan(int nin, const uint64_t *mask, uint64_t omask, const int64_t *ldim, int (*pair)[2],
                        uint64_t *keep, int64_t *res_off, int64_t *pack_off) {
    uint64_t m[2 * EIN_MAX_IN];
    int act[EIN_MAX_IN], na = nin;
    for (int i = 0; i < nin; i++) {
        m[i] = mask[i];
        act[i] = i;
    }
    int64_t res = 0, pack = 0;
    for (int s = 0; s < nin - 1; s++) {
        int bp = -1, bq = -1;
        int64_t best = -1;
        uint64_t bkeep = 0;
        for (int p = 0; p < na; p++)
            for (int q = p + 1; q < na; q++) {
                uint64_t others = omask;
                for (int o = 0; o < na; o++)
                    if (o != p && o != q) others |= m[act[o]];
                uint64_t kp = (m[act[p]] | m[act[q]]) & others;
                int64_t sz = mask_size(kp, ldim);
                if (sz < 0) sz = INT64_MAX;
                if (best < 0 || sz < best) {
                    best = sz;
                    bp = p;
                    bq = q;
                    bkeep = kp;
                }
            }
        int a = act[bp], b = act[bq];
        pair[s][0] = a;
        pair[s][1] = b;
        keep[s] = bkeep;
        int64_t rs = mask_size(bkeep, ldim);
        int64_t pa = mask_size(m[a] & (bkeep | m[b]), ldim), pb = mask_size(m[b] & (bkeep | m[a]), ldim);
        if (rs < 0 || pa < 0 || pb < 0) return -1;
        res_off[s] = res;
        if ((res = add_sat(res, rs)) < 0) return -1;
        int64_t pk = add_sat(pa, pb);
        if (pk < 0) return -1;
        if (pk > pack) pack = pk;
        m[nin + s] = bkeep;
        /* the result takes the first operand's place; the second leaves the active list */
        act[bp] = nin + s;
        for (int o = bq; o + 1 < na; o++) act[o] = act[o + 1];
        na--;
    }
    *pack_off = res;
    return add_sat(res, pack);
}

/* ---- Einsum -------------------------------------------------------------------------------- */

static const amp_dtype einsum_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64,
                                         AMP_I32, AMP_I8,  AMP_U8,   AMP_UNDEFINED};

amp_status amp_infer_einsum(amp_infer *c) {
    amp_status s;
    if (c->nin < 1 || c->nin > EIN_MAX_IN)
        return amp_infer_fail(c, c->nin < 1 ? AMP_ERR_INVALID_GRAPH : AMP_ERR_UNSUPPORTED,
                              "expects 1 to %d inputs, has %d", EIN_MAX_IN, c->nin);
    if ((s = amp_infer_need_inputs(c, c->nin, c->nin))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects 1 output, has %d", c->nout);
    const amp_dtype dt = c->in[0]->dtype;
    if ((s = amp_infer_dtype_in(c, dt, einsum_types))) return s;
    for (int i = 1; i < c->nin; i++)
        if (c->in[i]->dtype != dt)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d is %s but input 0 is %s", i,
                                  amp_dtype_name(c->in[i]->dtype), amp_dtype_name(dt));
    const amp_attr *eqa = amp_node_attr(c->n, "equation");
    if (!eqa || eqa->kind != AMP_ATTR_STRING || !eqa->s)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute 'equation' (a string) is required");
    if (strlen(eqa->s) != eqa->slen)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "the equation holds a NUL byte");
    int ranks[EIN_MAX_IN];
    int64_t dims[EIN_MAX_IN][AMP_MAX_RANK];
    int8_t lab[EIN_MAX_IN][AMP_MAX_RANK], olab[AMP_MAX_RANK];
    for (int i = 0; i < c->nin; i++) {
        ranks[i] = c->in[i]->rank;
        memcpy(dims[i], c->in[i]->dims, sizeof dims[i]);
    }
    char msg[256];
    int orank, ell;
    int64_t ldim[64];
    if ((s = amp_einsum_parse(eqa->s, c->nin, ranks, lab, olab, &orank, &ell, msg, sizeof msg)) ||
        (s = amp_einsum_sizes(c->nin, ranks, (const int64_t(*)[AMP_MAX_RANK])dims, (const int8_t(*)[AMP_MAX_RANK])lab,
                              ldim, msg, sizeof msg)))
        return amp_infer_fail(c, s, "%s (equation '%.64s')", msg, eqa->s);
    amp_tinfo *y = c->out[0];
    y->dtype = dt;
    y->rank = orank;
    for (int d = 0; d < orank; d++) y->dims[d] = ldim[olab[d]];
    if ((s = amp_shape_numel(y->rank, y->dims, dt, NULL, NULL)))
        return amp_infer_fail(c, s, "output shape overflows or is invalid");
    return AMP_OK;
}

/* ---- Det ----------------------------------------------------------------------------------- */

/* Determinants of up to this many matrices are computed at once, one workspace slot each. */
#define DET_SLOTS 16

/* Doubles per workspace slot of Det (LU factors, pivot order) and of DetGrad (backends/cpu). */
int64_t amp_det_slot_doubles(int64_t n, bool grad) { return grad ? 2 * n * n + 5 * n : n * n + n; }

/* How many matrices of a batch of nb are factored at once (each in its own workspace slot). */
int64_t amp_det_slots(int64_t nb) { return nb < DET_SLOTS ? nb : DET_SLOTS; }

amp_status amp_infer_det(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 1, 1))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects 1 output, has %d", c->nout);
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (x->rank < 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank >= 2, has %d", x->rank);
    const int64_t n = x->dims[x->rank - 1];
    if (x->dims[x->rank - 2] != n)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "matrices must be square, are %lld x %lld",
                              (long long)x->dims[x->rank - 2], (long long)n);
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank - 2;
    for (int d = 0; d < y->rank; d++) y->dims[d] = x->dims[d];
    if ((s = amp_shape_numel(y->rank, y->dims, y->dtype, NULL, NULL)))
        return amp_infer_fail(c, s, "output shape overflows or is invalid");
    return AMP_OK;
}

/* ---- windows ------------------------------------------------------------------------------- */

static const amp_dtype window_size_types[] = {AMP_I64, AMP_I32, AMP_UNDEFINED};
/* T2 of the schemas, as far as amprt holds the types */
static const amp_dtype window_out_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64,
                                             AMP_I32, AMP_I8,  AMP_U8,   AMP_UNDEFINED};

amp_status amp_infer_window(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 1, 1))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects 1 output, has %d", c->nout);
    const amp_tinfo *sz = c->in[0];
    if ((s = amp_infer_dtype_in(c, sz->dtype, window_size_types))) return s;
    if (!(sz->rank == 0 || (sz->rank == 1 && sz->dims[0] == 1)))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "size must be a scalar");
    const int64_t periodic = amp_attr_int(c->n, "periodic", 1);
    if (periodic != 0 && periodic != 1)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "periodic must be 0 or 1, is %lld", (long long)periodic);
    const int64_t odt = amp_attr_int(c->n, "output_datatype", AMP_F32);
    static const int64_t onnx_t2[] = {1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 16};
    bool in_t2 = false;
    for (size_t i = 0; i < sizeof onnx_t2 / sizeof onnx_t2[0]; i++) in_t2 |= onnx_t2[i] == odt;
    if (!in_t2) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "output_datatype %lld is not allowed", (long long)odt);
    if ((s = amp_infer_dtype_in(c, (amp_dtype)odt, window_out_types))) return s;
    int64_t v[1];
    int nv = 0;
    if ((s = amp_infer_const_ints(c, 0, v, 1, &nv))) return s;
    if (nv != 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "size must hold one value");
    if (v[0] < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "size %lld is negative", (long long)v[0]);
    amp_tinfo *y = c->out[0];
    y->dtype = (amp_dtype)odt;
    y->rank = 1;
    y->dims[0] = v[0];
    if ((s = amp_shape_numel(1, y->dims, y->dtype, NULL, NULL)))
        return amp_infer_fail(c, s, "size %lld is too large", (long long)v[0]);
    return AMP_OK;
}
