#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/cpu/cpu.h"
#include "ir/grad.h"

const char *tu_backend(void) {
    const char *b = getenv("AMP_TEST_BACKEND");
    return b && b[0] ? b : "cpu";
}

amp_test_node *tn_new(amp_context *ctx, const char *op_type) {
    amp_test_node *t = calloc(1, sizeof *t);
    t->ctx = ctx;
    t->node.name = "test";
    t->node.op_type = (char *)op_type;
    t->node.domain = "";
    t->node.op = amp_op_lookup(op_type, "");
    t->node.attrs = t->attrs;
    t->opset = 17;
    t->threads = 2;
    return t;
}

amp_test_node *tn_train(amp_context *ctx, const char *op_type) {
    amp_test_node *t = tn_new(ctx, op_type);
    t->node.domain = AMP_TRAIN_DOMAIN;
    t->node.op = amp_op_lookup(op_type, AMP_TRAIN_DOMAIN);
    t->opset = 1;
    return t;
}

amp_tensor *tt_convert(amp_context *ctx, const amp_tensor *t, amp_dtype dt) {
    amp_tensor *o = NULL;
    if (amp_tensor_create(ctx, dt, t->rank, t->dims, &o) != AMP_OK) return NULL;
    for (int64_t i = 0; i < t->numel; i++) amp_st(dt, o->data, i, amp_ld(t->dtype, t->data, i));
    return o;
}

void tn_free(amp_test_node *t) {
    if (!t) return;
    for (int i = 0; i < t->node.n_attrs; i++) {
        amp_attr *a = &t->attrs[i];
        free(a->ints);
        free(a->floats);
        free(a->s);
        amp_tensor_destroy(a->t);
    }
    free(t);
}

static amp_attr *add(amp_test_node *t, const char *name, amp_attr_kind k) {
    amp_attr *a = &t->attrs[t->node.n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = (char *)name;
    a->kind = k;
    return a;
}

void tn_int(amp_test_node *t, const char *name, int64_t v) { add(t, name, AMP_ATTR_INT)->i = v; }
void tn_float(amp_test_node *t, const char *name, float v) { add(t, name, AMP_ATTR_FLOAT)->f = v; }
void tn_str(amp_test_node *t, const char *name, const char *v) {
    amp_attr *a = add(t, name, AMP_ATTR_STRING);
    a->s = malloc(strlen(v) + 1);
    strcpy(a->s, v);
    a->slen = strlen(v);
}
void tn_ints(amp_test_node *t, const char *name, int n, const int64_t *v) {
    amp_attr *a = add(t, name, AMP_ATTR_INTS);
    a->ints = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
    a->n = n;
}
void tn_floats(amp_test_node *t, const char *name, int n, const float *v) {
    amp_attr *a = add(t, name, AMP_ATTR_FLOATS);
    a->floats = malloc(sizeof(float) * (size_t)(n ? n : 1));
    memcpy(a->floats, v, sizeof(float) * (size_t)n);
    a->n = n;
}
void tn_tensor(amp_test_node *t, const char *name, const amp_tensor *v) {
    amp_attr *a = add(t, name, AMP_ATTR_TENSOR);
    amp_tensor_clone(t->ctx, v, &a->t);
}

amp_status tn_run_kernel(amp_kernel *k) {
    amp_backend *b = NULL;
    amp_status s = amp_backend_create(k->ctx, tu_backend(), k->threads > 0 ? k->threads : 1, &b);
    if (!s) s = amp_backend_run_once(b, k);
    amp_backend_destroy(b);
    return s;
}

amp_status tn_run(amp_test_node *t, int nin, amp_tensor *const *in, int nout, amp_tensor **out) {
    if (t->node.op == AMP_OP_UNKNOWN) return amp_seterr(t->ctx, AMP_ERR_UNSUPPORTED, "unknown op %s", t->node.op_type);
    amp_tinfo ti[16], to[16];
    const amp_tinfo *pin[16];
    amp_tinfo *pout[16];
    int ids_in[16], ids_out[16];
    memset(ti, 0, sizeof ti);
    memset(to, 0, sizeof to);
    for (int i = 0; i < nin; i++) {
        ids_in[i] = in[i] ? i : -1;
        pin[i] = NULL;
        if (!in[i]) continue;
        ti[i].dtype = in[i]->dtype;
        ti[i].rank = in[i]->rank;
        memcpy(ti[i].dims, in[i]->dims, sizeof ti[i].dims);
        ti[i].value = in[i];
        pin[i] = &ti[i];
    }
    for (int i = 0; i < nout; i++) {
        ids_out[i] = i;
        pout[i] = &to[i];
        out[i] = NULL;
    }
    t->node.inputs = ids_in;
    t->node.n_inputs = nin;
    t->node.outputs = ids_out;
    t->node.n_outputs = nout;
    amp_infer c = {.ctx = t->ctx, .g = NULL, .n = &t->node, .opset = t->opset, .nin = nin, .nout = nout,
                   .in = pin, .out = pout};
    amp_status s = amp_op_table[t->node.op].infer(&c);
    if (s) return s;
    for (int i = 0; i < nout; i++) {
        s = amp_tensor_create(t->ctx, to[i].dtype, to[i].rank, to[i].dims, &out[i]);
        if (s) goto fail;
        /* poison outputs so kernels that skip elements are caught */
        memset(out[i]->data, 0x7f, out[i]->nbytes);
    }
    amp_kernel k = {.ctx = t->ctx, .n = &t->node, .opset = t->opset, .nin = nin, .nout = nout, .in = in,
                    .out = out, .threads = t->threads};
    s = tn_run_kernel(&k);
    if (s) goto fail;
    return AMP_OK;
fail:
    for (int i = 0; i < nout; i++) {
        amp_tensor_destroy(out[i]);
        out[i] = NULL;
    }
    return s;
}

amp_tensor *tt_make(amp_context *ctx, amp_dtype dt, int rank, const int64_t *dims, const double *vals) {
    amp_tensor *t;
    if (amp_tensor_create(ctx, dt, rank, dims, &t)) return NULL;
    for (int64_t i = 0; i < t->numel; i++) amp_st(dt, t->data, i, vals[i]);
    return t;
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

amp_tensor *tt_rand(amp_context *ctx, amp_dtype dt, int rank, const int64_t *dims, double lo, double hi,
                    uint64_t seed) {
    amp_tensor *t;
    if (amp_tensor_create(ctx, dt, rank, dims, &t)) return NULL;
    uint64_t s = seed;
    for (int64_t i = 0; i < t->numel; i++) {
        double u = (double)(rng_next(&s) >> 11) / 9007199254740992.0;
        double v = lo + (hi - lo) * u;
        if (amp_dtype_is_int(dt) || dt == AMP_BOOL) v = floor(v);
        amp_st(dt, t->data, i, v);
    }
    return t;
}

double tt_get(const amp_tensor *t, int64_t i) { return amp_ld(t->dtype, t->data, i); }

double tt_nse(const amp_tensor *a, const amp_tensor *ref) {
    if (!a || !ref || a->rank != ref->rank || a->numel != ref->numel) return INFINITY;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != ref->dims[i]) return INFINITY;
    double num = 0, den = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double x = tt_get(a, i), y = tt_get(ref, i);
        if (isnan(x) || isnan(y)) {
            if (isnan(x) && isnan(y)) continue;
            return INFINITY;
        }
        if (isinf(x) || isinf(y)) {
            if (x == y) continue;
            return INFINITY;
        }
        num += (x - y) * (x - y);
        den += y * y;
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

int tt_equal(const amp_tensor *a, const amp_tensor *b) {
    if (!a || !b || a->dtype != b->dtype || a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double x = tt_get(a, i), y = tt_get(b, i);
        if (isnan(x) && isnan(y)) continue;
        if (amp_dtype_is_int(a->dtype) ? amp_ldi(a->dtype, a->data, i) != amp_ldi(b->dtype, b->data, i) : x != y)
            return 0;
    }
    return 1;
}

amp_model *tt_load(amp_context *ctx, const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", AMP_SOURCE_DIR, rel);
    amp_model *m = NULL;
    cr_assert_eq(amp_model_load(ctx, path, &m), AMP_OK, "%s: %s", path, amp_context_last_error(ctx));
    return m;
}
