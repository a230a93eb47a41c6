/* Gradients of the linalg family: the builder amp_grad_linalg (Einsum, Det) and the shape
 * inference of its training op DetGrad (ir/ops/linalg_grad.def; kernel in backends/cpu/linalg_grad.c).
 *
 * Einsum: the gradient of operand i is itself an Einsum, of dY with every other operand, whose
 * output term is operand i's. Three things an Einsum output cannot say directly are added as
 * extra operands built from Shape(X_i) (folded while planning, so they cost nothing per run):
 *  - a subscript repeated within operand i (a diagonal) is renamed at each repeat, and an
 *    identity matrix over the old and the new name puts the gradient on the diagonal only;
 *  - a subscript only operand i has (summed away inside it) gets a tensor of ones over it, so
 *    the gradient is broadcast back along it; so does one summed away whose other operands may
 *    all have size 1 where operand i has n (broadcasting the other way);
 *  - dims where operand i was broadcast (size 1 against the others' n, letters or ellipsis, or
 *    an ellipsis covering fewer dims than the broadcast one) come out at the broadcast size and
 *    are summed back by SumToShape, skipped when the graph proves no broadcast happened.
 * Det: dX = dY * adj(X)^T (the cofactor matrix), computed by DetGrad from an LU factorisation so
 * that singular matrices get their exact gradient too (see backends/cpu/linalg_grad.c). */
#include <stdio.h>
#include <string.h>

#include "ir/grad.h"
#include "ir/ops/linalg.h"


#define EIN_LETTERS 52
#define EIN_MAX_IN 32
/* Einsum operands of one gradient node: dY, the other inputs, identities and the ones. */
#define GRAD_MAX_OPS (2 * EIN_MAX_IN + 2 * AMP_MAX_RANK)

static amp_dtype vdtype(const amp_grad_ctx *c, int v) { return v >= 0 ? c->g->values[v].dtype : AMP_UNDEFINED; }

static int vrank(const amp_grad_ctx *c, int v) {
    const amp_value *x = &c->g->values[v];
    return x->init ? x->init->rank : x->rank;
}

/* A dim that holds for every run (initializers and graph inputs), or -1. */
static int64_t bound_dim(const amp_grad_ctx *c, int v, int d) {
    const amp_value *x = &c->g->values[v];
    if (x->init) return x->init->dims[d];
    return x->is_input ? x->dims[d].value : -1;
}

static char letter(int l) { return (char)(l < 26 ? 'A' + l : 'a' + l - 26); }

/* Append the term of labels lab[0..n-1] to buf (ellipsis labels as one "..."). */
static void put_term(char *buf, size_t cap, const int8_t *lab, int n) {
    size_t len = strlen(buf);
    bool ell = false;
    for (int d = 0; d < n && len + 4 < cap; d++) {
        if (lab[d] >= EIN_LETTERS) {
            if (!ell) {
                memcpy(buf + len, "...", 3);
                len += 3;
                ell = true;
            }
        } else {
            buf[len++] = letter(lab[d]);
        }
    }
    buf[len] = '\0';
}

static void put_str(char *buf, size_t cap, const char *s) {
    size_t len = strlen(buf), n = strlen(s);
    if (len + n < cap) memcpy(buf + len, s, n + 1);
}

typedef struct ein_ctx {
    amp_grad_ctx *c;
    int nin, orank, ell;
    int ranks[EIN_MAX_IN];
    int8_t lab[EIN_MAX_IN][AMP_MAX_RANK], olab[AMP_MAX_RANK];
    amp_dtype dt;
} ein_ctx;

/* Gather(Shape(x), idx): some of x's dims as a 1-D int64 value. */
static amp_status dims_of(amp_grad_ctx *c, int *shape, int x, int n, const int64_t *idx, int *out) {
    amp_status s;
    if (*shape < 0 && (s = amp_grad_node(c, "Shape", "", 1, &x, 1, shape, NULL))) return s;
    int iv = amp_grad_const_ints(c, n, idx);
    if (iv < 0) return AMP_ERR_NO_MEMORY;
    int ins[2] = {*shape, iv};
    return amp_grad_node(c, "Gather", "", 2, ins, 1, out, NULL);
}

/* A tensor of ones of dtype dt and dims `dims` (a 1-D int64 value). */
static amp_status ones_of(amp_grad_ctx *c, amp_dtype dt, int dims, int *out) {
    int one = amp_grad_const_scalar(c, dt, 1.0);
    if (one < 0) return AMP_ERR_NO_MEMORY;
    int ins[2] = {one, dims};
    return amp_grad_node(c, "Expand", "", 2, ins, 1, out, NULL);
}

/* Could operand i's dim d have been broadcast against another operand's? */
static bool maybe_broadcast(const ein_ctx *e, int i, int d) {
    const int l = e->lab[i][d];
    const int xi = amp_grad_in(e->c, i);
    const int64_t v = bound_dim(e->c, xi, d);
    bool shared = false, all_one = true;
    for (int j = 0; j < e->nin; j++) {
        if (j == i) continue;
        for (int q = 0; q < e->ranks[j]; q++)
            if (e->lab[j][q] == l) {
                shared = true;
                if (bound_dim(e->c, amp_grad_in(e->c, j), q) != 1) all_one = false;
            }
    }
    if (!shared || v > 1) return false;
    return !(v == 1 && all_one);
}

/* Does some other operand give the label of operand i's dim d its size (so the gradient
 * Einsum, where that label is summed away, comes out at operand i's size)? When the others
 * may all have size 1 against operand i's n, a tensor of ones over the dim supplies n. */
static bool size_covered(const ein_ctx *e, int i, int d) {
    const int l = e->lab[i][d];
    for (int q = 0; q < e->ranks[i]; q++)
        if (q != d && e->lab[i][q] == l) return true; /* repeated: the identity has its size */
    const int64_t v = bound_dim(e->c, amp_grad_in(e->c, i), d);
    if (v == 1) return true;
    for (int j = 0; j < e->nin; j++)
        if (j != i)
            for (int q = 0; q < e->ranks[j]; q++)
                if (e->lab[j][q] == l && v >= 0 && bound_dim(e->c, amp_grad_in(e->c, j), q) == v) return true;
    return false;
}

static amp_status grad_einsum_input(ein_ctx *e, int i, int *dx) {
    amp_grad_ctx *c = e->c;
    const int xi = amp_grad_in(c, i), rank = e->ranks[i];
    amp_status s;
    /* letters of the forward equation; the rest are free for renaming */
    uint64_t used = 0;
    for (int j = 0; j < e->nin; j++)
        for (int d = 0; d < e->ranks[j]; d++) used |= 1ull << e->lab[j][d];
    int8_t ren[AMP_MAX_RANK]; /* operand i's labels, repeats renamed */
    int eye_a[AMP_MAX_RANK], eye_b[AMP_MAX_RANK], eye_pos[AMP_MAX_RANK], neye = 0;
    for (int d = 0; d < rank; d++) {
        const int l = e->lab[i][d];
        ren[d] = (int8_t)l;
        int prev = -1;
        for (int q = d - 1; q >= 0 && prev < 0; q--)
            if (e->lab[i][q] == l) prev = q;
        if (prev < 0) continue;
        int f = 0;
        while (f < EIN_LETTERS && (used >> f & 1)) f++;
        if (f == EIN_LETTERS)
            return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED,
                              "node '%s': Einsum gradient needs more subscript letters than are free",
                              amp_grad_fwd(c)->name);
        used |= 1ull << f;
        ren[d] = (int8_t)f;
        eye_a[neye] = ren[prev];
        eye_b[neye] = f;
        eye_pos[neye++] = prev;
    }
    /* subscripts of operand i no other operand of the gradient has */
    uint64_t others = 0;
    for (int d = 0; d < e->orank; d++) others |= 1ull << e->olab[d];
    for (int j = 0; j < e->nin; j++)
        if (j != i)
            for (int d = 0; d < e->ranks[j]; d++) others |= 1ull << e->lab[j][d];
    for (int q = 0; q < neye; q++) others |= 1ull << eye_a[q] | 1ull << eye_b[q];
    uint64_t outm = 0;
    for (int d = 0; d < e->orank; d++) outm |= 1ull << e->olab[d];
    int64_t miss_pos[AMP_MAX_RANK];
    int8_t miss_lab[AMP_MAX_RANK];
    int nmiss = 0, e_i = 0;
    for (int d = 0; d < rank; d++) {
        if (ren[d] >= EIN_LETTERS) {
            e_i++;
        } else if (!(others >> ren[d] & 1) || (!(outm >> ren[d] & 1) && !size_covered(e, i, d))) {
            miss_pos[nmiss] = d;
            miss_lab[nmiss++] = ren[d];
        }
    }
    char eq[512] = "";
    int ins[GRAD_MAX_OPS], nop = 0, shape = -1;
    ins[nop++] = c->dy[0];
    put_term(eq, sizeof eq, e->olab, e->orank);
    for (int j = 0; j < e->nin; j++) {
        if (j == i) continue;
        ins[nop++] = amp_grad_in(c, j);
        put_str(eq, sizeof eq, ",");
        put_term(eq, sizeof eq, e->lab[j], e->ranks[j]);
    }
    for (int q = 0; q < neye; q++) {
        /* identity over the repeated dim: EyeLike of a square of ones (f32: EyeLike has no bf16) */
        int64_t idx[2] = {eye_pos[q], eye_pos[q]};
        int nn, sq, eye;
        amp_node *n;
        if ((s = dims_of(c, &shape, xi, 2, idx, &nn)) || (s = ones_of(c, AMP_F32, nn, &sq)) ||
            (s = amp_grad_node(c, "EyeLike", "", 1, &sq, 1, &eye, NULL)))
            return s;
        if (e->dt != AMP_F32) {
            int cast;
            if ((s = amp_grad_node(c, "Cast", "", 1, &eye, 1, &cast, &n)) ||
                (s = amp_grad_attr_int(c, n, "to", e->dt)))
                return s;
            eye = cast;
        }
        ins[nop++] = eye;
        char t[3] = {letter(eye_a[q]), letter(eye_b[q]), '\0'};
        put_str(eq, sizeof eq, ",");
        put_str(eq, sizeof eq, t);
    }
    if (nmiss) {
        int dm, ones;
        if ((s = dims_of(c, &shape, xi, nmiss, miss_pos, &dm)) || (s = ones_of(c, e->dt, dm, &ones))) return s;
        ins[nop++] = ones;
        put_str(eq, sizeof eq, ",");
        put_term(eq, sizeof eq, miss_lab, nmiss);
    }
    /* the output: operand i's own layout when its ellipsis (if any) covers the whole broadcast
     * ellipsis; else the broadcast ellipsis first, then its letters, summed and transposed back */
    const bool own_layout = e_i == e->ell;
    int8_t outl[AMP_MAX_RANK * 2];
    int64_t perm[AMP_MAX_RANK];
    int no = 0, np = 0;
    if (own_layout) {
        for (int d = 0; d < rank; d++) outl[no++] = ren[d];
    } else {
        for (int q = 0; q < e->ell; q++) outl[no++] = (int8_t)(EIN_LETTERS + q);
        for (int d = 0; d < rank; d++)
            if (ren[d] >= EIN_LETTERS) perm[np++] = d;
        for (int d = 0; d < rank; d++)
            if (ren[d] < EIN_LETTERS) {
                outl[no++] = ren[d];
                perm[np++] = d;
            }
    }
    put_str(eq, sizeof eq, "->");
    put_term(eq, sizeof eq, outl, no);
    if (strlen(eq) > sizeof eq - 8)
        return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': Einsum gradient equation too long",
                          amp_grad_fwd(c)->name);
    int g;
    amp_node *n;
    if ((s = amp_grad_node(c, "Einsum", "", nop, ins, 1, &g, &n)) || (s = amp_grad_attr_str(c, n, "equation", eq)))
        return s;
    bool need_sum = !own_layout;
    for (int d = 0; d < rank && !need_sum; d++) need_sum = maybe_broadcast(e, i, d);
    if (!need_sum) {
        *dx = g;
        return AMP_OK;
    }
    if (own_layout) return amp_grad_sum_to_shape(c, g, xi, dx);
    bool ident = true;
    for (int d = 0; d < rank; d++) ident &= perm[d] == d;
    int target, r;
    if (ident) {
        if ((s = amp_grad_node(c, "Shape", "", 1, &xi, 1, &target, NULL))) return s;
    } else if ((s = dims_of(c, &shape, xi, rank, perm, &target))) {
        return s;
    }
    int sins[2] = {g, target};
    if ((s = amp_grad_node(c, "SumToShape", AMP_TRAIN_DOMAIN, 2, sins, 1, &r, NULL))) return s;
    if (ident) {
        *dx = r;
        return AMP_OK;
    }
    /* r holds operand i's dims in the order perm; put them back */
    int64_t inv[AMP_MAX_RANK];
    for (int d = 0; d < rank; d++) inv[perm[d]] = d;
    if ((s = amp_grad_node(c, "Transpose", "", 1, &r, 1, dx, &n))) return s;
    return amp_grad_attr_ints(c, n, "perm", rank, inv);
}

static amp_status grad_einsum(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    ein_ctx e = {.c = c, .nin = c->nin};
    if (c->nin > EIN_MAX_IN)
        return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': Einsum of %d inputs has no gradient", f->name,
                          c->nin);
    e.dt = vdtype(c, amp_grad_in(c, 0));
    if (!amp_dtype_is_float(e.dt))
        return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': Einsum of %s has no gradient", f->name,
                          amp_dtype_name(e.dt));
    for (int i = 0; i < c->nin; i++) {
        e.ranks[i] = vrank(c, amp_grad_in(c, i));
        if (e.ranks[i] < 0)
            return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED,
                              "node '%s': the Einsum gradient needs the rank of input %d, which is unknown", f->name,
                              i);
    }
    char msg[256];
    amp_status s = amp_einsum_parse(amp_attr_str(f, "equation", NULL), c->nin, e.ranks, e.lab, e.olab, &e.orank,
                                    &e.ell, msg, sizeof msg);
    if (s) return amp_seterr(c->ctx, s, "node '%s': %s", f->name, msg);
    for (int i = 0; i < c->nin; i++) {
        if (!c->need[i]) continue;
        int dx = -1;
        if ((s = grad_einsum_input(&e, i, &dx))) return s;
        c->dx[i] = dx;
    }
    return AMP_OK;
}

static amp_status grad_det(amp_grad_ctx *c) {
    if (!c->need[0]) return AMP_OK;
    int ins[2] = {c->dy[0], amp_grad_in(c, 0)};
    return amp_grad_node(c, "DetGrad", AMP_TRAIN_DOMAIN, 2, ins, 1, &c->dx[0], NULL);
}

amp_status amp_grad_linalg(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_EINSUM: return grad_einsum(c);
    case AMP_OP_DET: return grad_det(c);
    default: return AMP_ERR_NOT_FOUND;
    }
}

/* ---- shape inference of the training ops ------------------------------------------------------ */

/* DetGrad(dY, X) -> dX: dY has X's batch dims, dX X's dims; float types, computed in double. */
amp_status amp_infer_det_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects 1 output, has %d", c->nout);
    const amp_tinfo *dy = c->in[0], *x = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (dy->dtype != x->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "dY is %s but X is %s", amp_dtype_name(dy->dtype),
                              amp_dtype_name(x->dtype));
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2])
        return amp_infer_fail(c, AMP_ERR_SHAPE, "X must be a batch of square matrices");
    bool ok = dy->rank == x->rank - 2;
    for (int d = 0; ok && d < dy->rank; d++) ok = dy->dims[d] == x->dims[d];
    if (!ok) return amp_infer_fail(c, AMP_ERR_SHAPE, "dY must have X's batch dims");
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    y->value = NULL;
    return AMP_OK;
}
