/* CPU kernels for binary elementwise ops (arithmetic, comparison, logic, PRelu), the variadic
 * Min/Max/Sum/Mean and Where, all with numpy broadcasting.
 *
 * Broadcasting is planned once per call: dims of size 1 in the output are dropped and adjacent
 * dims whose strides line up in every operand are merged, so same-shape operands become one
 * flat loop and scalar or row broadcasts become a loop whose inner stride is 0 or 1. The inner
 * loops are typed per (op, dtype) with separate branches for those stride patterns, so the
 * compiler vectorises the common cases. */
#include <stdbool.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "backends/elementwise.h"

#define MAX_OPS 3
#define BLOCK 8192                  /* elements per work item along the inner dim */
#define PAR_MIN ((int64_t)1 << 16)  /* below this many output elements, threads cost more than they save */

/* ---- broadcasting plan ---------------------------------------------------------------------- */

typedef struct bplan {
    int rank;                         /* >= 1 after collapsing */
    int64_t dims[AMP_MAX_RANK];
    int64_t st[MAX_OPS][AMP_MAX_RANK]; /* element strides per input; 0 where broadcast */
    int nin;
} bplan;

/* Inner loop: o gets n elements; p[i] points at input i's first element, s[i] is 0 (broadcast)
 * or 1 (contiguous). */
typedef void (*inner_fn)(char *o, const char *const *p, const int64_t *s, int64_t n, const void *aux);

/* ed[i] are input i's dims aligned to the output rank (1 where absent). */
static void plan_build(bplan *pl, int orank, const int64_t *odims, int nin, int64_t ed[][AMP_MAX_RANK]) {
    pl->nin = nin;
    amp_bcast_collapse(orank, odims, nin, ed, &pl->rank, pl->dims, pl->st);
}

/* Run fn over the plan. out is contiguous in the output's dims; in[i] have element sizes es[i]. */
static void plan_run(const bplan *pl, char *out, size_t oes, const char *const *in, const size_t *es, inner_fn fn,
                     const void *aux, int threads) {
    int64_t inner = pl->dims[pl->rank - 1];
    int64_t rows = 1;
    for (int d = 0; d < pl->rank - 1; d++) rows *= pl->dims[d];
    int64_t nblk = (inner + BLOCK - 1) / BLOCK;
    int64_t work = rows * nblk;
    int64_t s_in[MAX_OPS];
    for (int i = 0; i < pl->nin; i++) s_in[i] = pl->st[i][pl->rank - 1];
    bool big = rows * inner >= PAR_MIN && threads > 1;
    AMP_PAR_FOR(big, num_threads(threads > 0 ? threads : 1) schedule(static),
    for (int64_t w = 0; w < work; w++) {
        int64_t row = w / nblk, j0 = (w % nblk) * BLOCK;
        int64_t n = inner - j0 < BLOCK ? inner - j0 : BLOCK;
        int64_t off[MAX_OPS] = {0};
        int64_t rem = row;
        for (int d = pl->rank - 2; d >= 0; d--) {
            int64_t idx = rem % pl->dims[d];
            rem /= pl->dims[d];
            for (int i = 0; i < pl->nin; i++) off[i] += idx * pl->st[i][d];
        }
        const char *p[MAX_OPS];
        for (int i = 0; i < pl->nin; i++) p[i] = in[i] + (size_t)(off[i] + j0 * s_in[i]) * es[i];
        fn(out + (size_t)(row * inner + j0) * oes, p, s_in, n, aux);
    });
}

/* Ops that carried the legacy `broadcast`/`axis` attributes before opset 7 (as in inference). */
static bool has_legacy_broadcast(amp_op op) {
    switch (op) {
    case AMP_OP_ADD: case AMP_OP_SUB: case AMP_OP_MUL: case AMP_OP_DIV: case AMP_OP_POW:
    case AMP_OP_AND: case AMP_OP_OR: case AMP_OP_XOR:
    case AMP_OP_EQUAL: case AMP_OP_LESS: case AMP_OP_GREATER:
        return true;
    default:
        return false;
    }
}

/* Align input t's dims to the output rank: trailing dims by default; at the legacy axis for
 * input 1 of old-opset ops, and at the channel axis for an old PRelu's 1-D slope. */
static void align_dims(const amp_kernel *k, int idx, const amp_tensor *t, int orank, int64_t *ed) {
    int off = orank - t->rank;
    if (idx == 1 && k->opset < 7) {
        const amp_tensor *a = k->in[0];
        if (k->n->op == AMP_OP_PRELU) {
            if (t->rank == 1 && a->rank >= 2 && t->dims[0] != 1 && t->dims[0] == a->dims[1]) off = 1;
        } else if (has_legacy_broadcast(k->n->op) && amp_attr_int(k->n, "broadcast", 0) &&
                   amp_node_attr(k->n, "axis")) {
            int64_t ax = amp_attr_int(k->n, "axis", 0);
            off = (int)(ax < 0 ? ax + a->rank : ax);
        }
    }
    for (int d = 0; d < orank; d++) ed[d] = 1;
    for (int i = 0; i < t->rank; i++) ed[off + i] = t->dims[i];
}

/* Plan and run fn for out = f(in[0], ..., in[nin-1]). */
static amp_status run_bcast(amp_kernel *k, amp_tensor *out, int nin, const amp_tensor *const *in, const int *idx,
                            inner_fn fn, const void *aux) {
    if (out->numel == 0) return AMP_OK;
    int64_t ed[MAX_OPS][AMP_MAX_RANK];
    const char *p[MAX_OPS];
    size_t es[MAX_OPS];
    for (int i = 0; i < nin; i++) {
        if (in[i]->rank > out->rank) return amp_kernel_fail(k, AMP_ERR_SHAPE, "input rank exceeds output rank");
        align_dims(k, idx[i], in[i], out->rank, ed[i]);
        for (int d = 0; d < out->rank; d++)
            if (ed[i][d] != 1 && ed[i][d] != out->dims[d])
                return amp_kernel_fail(k, AMP_ERR_SHAPE, "input %d does not broadcast to the output", idx[i]);
        p[i] = in[i]->data;
        es[i] = amp_dtype_size(in[i]->dtype);
    }
    bplan pl;
    plan_build(&pl, out->rank, out->dims, nin, ed);
    plan_run(&pl, out->data, amp_dtype_size(out->dtype), p, es, fn, aux, k->threads);
    return AMP_OK;
}

/* ---- typed inner loops --------------------------------------------------------------------- */

#define ID(v) (v)
#define LD_F16(v) amp_f16_to_f32(v)
#define ST_F16(v) amp_f32_to_f16(v)
#define LD_BF16(v) amp_bf16_to_f32(v)
#define ST_BF16(v) amp_f32_to_bf16(v)
#define LD_I64(v) ((int64_t)(v))
#define LD_BOOL(v) ((v) != 0)
#define TO_BOOL(v) ((uint8_t)((v) != 0))

#define BIN_FN(NAME, TA, TO, LD, ST, CT, EXPR)                                                     \
    static void NAME(char *vo, const char *const *p, const int64_t *s, int64_t n, const void *aux) { \
        (void)aux;                                                                                \
        const TA *a = (const TA *)p[0], *b = (const TA *)p[1];                                    \
        TO *o = (TO *)vo;                                                                         \
        if (s[0] && s[1]) {                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                     \
                CT x = LD(a[i]), y = LD(b[i]);                                                    \
                o[i] = ST(EXPR);                                                                  \
            }                                                                                     \
        } else if (s[0]) {                                                                        \
            CT y = LD(b[0]);                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                     \
                CT x = LD(a[i]);                                                                  \
                o[i] = ST(EXPR);                                                                  \
            }                                                                                     \
        } else if (s[1]) {                                                                        \
            CT x = LD(a[0]);                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                     \
                CT y = LD(b[i]);                                                                  \
                o[i] = ST(EXPR);                                                                  \
            }                                                                                     \
        } else {                                                                                  \
            CT x = LD(a[0]), y = LD(b[0]);                                                        \
            TO r = ST(EXPR);                                                                      \
            for (int64_t i = 0; i < n; i++) o[i] = r;                                             \
        }                                                                                         \
    }

static inline float m_pow_f(float x, float y) { return powf(x, y); }
static inline double m_pow_d(double x, double y) { return pow(x, y); }
static inline float m_fmod_f(float x, float y) { return fmodf(x, y); }
static inline double m_fmod_d(double x, double y) { return fmod(x, y); }

/* Comparisons, for every dtype (CT is the type compared in). */
#define CMP_FNS(SUF, T, LD, CT)                                   \
    BIN_FN(eq_##SUF, T, uint8_t, LD, TO_BOOL, CT, x == y)         \
    BIN_FN(lt_##SUF, T, uint8_t, LD, TO_BOOL, CT, x < y)          \
    BIN_FN(gt_##SUF, T, uint8_t, LD, TO_BOOL, CT, x > y)          \
    BIN_FN(le_##SUF, T, uint8_t, LD, TO_BOOL, CT, x <= y)         \
    BIN_FN(ge_##SUF, T, uint8_t, LD, TO_BOOL, CT, x >= y)

/* Float arithmetic; MS picks the float (f) or double (d) helper. */
#define FLOAT_FNS(SUF, T, LD, ST, CT, MS)                         \
    BIN_FN(add_##SUF, T, T, LD, ST, CT, x + y)                    \
    BIN_FN(sub_##SUF, T, T, LD, ST, CT, x - y)                    \
    BIN_FN(mul_##SUF, T, T, LD, ST, CT, x * y)                    \
    BIN_FN(div_##SUF, T, T, LD, ST, CT, x / y)                    \
    BIN_FN(pow_##SUF, T, T, LD, ST, CT, m_pow_##MS(x, y))         \
    BIN_FN(fmod_##SUF, T, T, LD, ST, CT, m_fmod_##MS(x, y))       \
    BIN_FN(floormod_##SUF, T, T, LD, ST, CT, amp_floormod_##MS(x, y)) \
    BIN_FN(prelu_##SUF, T, T, LD, ST, CT, amp_prelu_##MS(x, y))   \
    BIN_FN(min_##SUF, T, T, LD, ST, CT, amp_min_##MS(x, y))       \
    BIN_FN(max_##SUF, T, T, LD, ST, CT, amp_max_##MS(x, y))       \
    CMP_FNS(SUF, T, LD, CT)

/* Integer arithmetic in int64 with wrapping, stored back by truncation. */
#define INT_FNS(SUF, T)                                                       \
    BIN_FN(add_##SUF, T, T, LD_I64, (T), int64_t, amp_iadd(x, y))             \
    BIN_FN(sub_##SUF, T, T, LD_I64, (T), int64_t, amp_isub(x, y))             \
    BIN_FN(mul_##SUF, T, T, LD_I64, (T), int64_t, amp_imul(x, y))             \
    BIN_FN(div_##SUF, T, T, LD_I64, (T), int64_t, amp_idiv(x, y))             \
    BIN_FN(pow_##SUF, T, T, LD_I64, (T), int64_t, amp_ipow(x, y))             \
    BIN_FN(mod_##SUF, T, T, LD_I64, (T), int64_t, amp_imod(x, y, 0))          \
    BIN_FN(fmod_##SUF, T, T, LD_I64, (T), int64_t, amp_imod(x, y, 1))         \
    BIN_FN(prelu_##SUF, T, T, LD_I64, (T), int64_t, x < 0 ? amp_imul(x, y) : x) \
    BIN_FN(min_##SUF, T, T, LD_I64, (T), int64_t, x < y ? x : y)              \
    BIN_FN(max_##SUF, T, T, LD_I64, (T), int64_t, x > y ? x : y)              \
    CMP_FNS(SUF, T, ID, T)

FLOAT_FNS(f32, float, ID, ID, float, f)
FLOAT_FNS(f64, double, ID, ID, double, d)
FLOAT_FNS(f16, uint16_t, LD_F16, ST_F16, float, f)
FLOAT_FNS(bf16, uint16_t, LD_BF16, ST_BF16, float, f)
INT_FNS(i64, int64_t)
INT_FNS(i32, int32_t)
INT_FNS(i16, int16_t)
INT_FNS(i8, int8_t)
INT_FNS(u32, uint32_t)
INT_FNS(u16, uint16_t)
INT_FNS(u8, uint8_t)

/* uint64 needs unsigned order and division (in int64 its upper half would be negative). */
static inline uint64_t u64_div(uint64_t x, uint64_t y) { return y ? x / y : 0; }
static inline uint64_t u64_mod(uint64_t x, uint64_t y) { return y ? x % y : 0; }
static inline uint64_t u64_pow(uint64_t b, uint64_t n) {
    uint64_t r = 1;
    for (; n; n >>= 1, b *= b)
        if (n & 1) r *= b;
    return r;
}
BIN_FN(add_u64, uint64_t, uint64_t, ID, ID, uint64_t, x + y)
BIN_FN(sub_u64, uint64_t, uint64_t, ID, ID, uint64_t, x - y)
BIN_FN(mul_u64, uint64_t, uint64_t, ID, ID, uint64_t, x * y)
BIN_FN(div_u64, uint64_t, uint64_t, ID, ID, uint64_t, u64_div(x, y))
BIN_FN(pow_u64, uint64_t, uint64_t, ID, ID, uint64_t, u64_pow(x, y))
BIN_FN(mod_u64, uint64_t, uint64_t, ID, ID, uint64_t, u64_mod(x, y))
BIN_FN(prelu_u64, uint64_t, uint64_t, ID, ID, uint64_t, x | (y & 0u)) /* never negative */
BIN_FN(min_u64, uint64_t, uint64_t, ID, ID, uint64_t, x < y ? x : y)
BIN_FN(max_u64, uint64_t, uint64_t, ID, ID, uint64_t, x > y ? x : y)
CMP_FNS(u64, uint64_t, ID, uint64_t)
#define fmod_u64 mod_u64
BIN_FN(eq_bool, uint8_t, uint8_t, LD_BOOL, TO_BOOL, int, x == y)
BIN_FN(and_bool, uint8_t, uint8_t, LD_BOOL, TO_BOOL, int, x && y)
BIN_FN(or_bool, uint8_t, uint8_t, LD_BOOL, TO_BOOL, int, x || y)
BIN_FN(xor_bool, uint8_t, uint8_t, LD_BOOL, TO_BOOL, int, x != y)

/* One switch per dtype: the op's inner loop, or NULL when the op does not apply. */
#define PICK(SUF, IS_INT)                                            \
    switch (op) {                                                    \
    case AMP_OP_ADD: case AMP_OP_SUM: case AMP_OP_MEAN: return add_##SUF; \
    case AMP_OP_SUB: return sub_##SUF;                               \
    case AMP_OP_MUL: return mul_##SUF;                               \
    case AMP_OP_DIV: return div_##SUF;                               \
    case AMP_OP_POW: return pow_##SUF;                               \
    case AMP_OP_MOD: return fmod_flag ? fmod_##SUF : mod_int_##SUF; \
    case AMP_OP_PRELU: return prelu_##SUF;                           \
    case AMP_OP_MIN: return min_##SUF;                               \
    case AMP_OP_MAX: return max_##SUF;                               \
    case AMP_OP_EQUAL: return eq_##SUF;                              \
    case AMP_OP_LESS: return lt_##SUF;                               \
    case AMP_OP_GREATER: return gt_##SUF;                            \
    case AMP_OP_LESS_OR_EQUAL: return le_##SUF;                      \
    case AMP_OP_GREATER_OR_EQUAL: return ge_##SUF;                   \
    default: return NULL;                                            \
    }

/* Mod with fmod = 0: Python's % for integers; for floats (opset 28) the floor form. */
#define mod_int_f32 floormod_f32
#define mod_int_f64 floormod_f64
#define mod_int_f16 floormod_f16
#define mod_int_bf16 floormod_bf16
#define mod_int_i64 mod_i64
#define mod_int_i32 mod_i32
#define mod_int_i16 mod_i16
#define mod_int_i8 mod_i8
#define mod_int_u64 mod_u64
#define mod_int_u32 mod_u32
#define mod_int_u16 mod_u16
#define mod_int_u8 mod_u8

static inner_fn pick(amp_op op, amp_dtype dt, int fmod_flag) {
    switch (dt) {
    case AMP_F32: PICK(f32, 0)
    case AMP_F64: PICK(f64, 0)
    case AMP_F16: PICK(f16, 0)
    case AMP_BF16: PICK(bf16, 0)
    case AMP_I64: PICK(i64, 1)
    case AMP_I32: PICK(i32, 1)
    case AMP_I16: PICK(i16, 1)
    case AMP_I8: PICK(i8, 1)
    case AMP_U64: PICK(u64, 1)
    case AMP_U32: PICK(u32, 1)
    case AMP_U16: PICK(u16, 1)
    case AMP_U8: PICK(u8, 1)
    case AMP_BOOL:
        switch (op) {
        case AMP_OP_EQUAL: return eq_bool;
        case AMP_OP_AND: return and_bool;
        case AMP_OP_OR: return or_bool;
        case AMP_OP_XOR: return xor_bool;
        default: return NULL;
        }
    default: return NULL;
    }
}

/* Store a double into a float dtype with one rounding (16-bit formats via round-to-odd). */
static inline void st_float(amp_dtype t, void *p, int64_t i, double v) {
    switch (t) {
    case AMP_F16: ((uint16_t *)p)[i] = amp_f64_to_f16(v); break;
    case AMP_BF16: ((uint16_t *)p)[i] = amp_f64_to_bf16(v); break;
    default: amp_st(t, p, i, v); break;
    }
}

/* Pow whose exponent dtype differs from the base's (opset 12+). Computed in double, or exactly
 * in integers when both are integers. */
typedef struct pow_aux {
    amp_dtype ta, tb;
} pow_aux;

static void pow_mixed(char *o, const char *const *p, const int64_t *s, int64_t n, const void *vaux) {
    const pow_aux *x = vaux;
    bool int_base = amp_dtype_is_int(x->ta), int_exp = amp_dtype_is_int(x->tb);
    for (int64_t i = 0; i < n; i++) {
        if (int_base && int_exp) {
            amp_sti(x->ta, o, i, amp_ipow(amp_ldi(x->ta, p[0], i * s[0]), amp_ldi(x->tb, p[1], i * s[1])));
        } else if (int_base) {
            double v = pow((double)amp_ldi(x->ta, p[0], i * s[0]), amp_ld(x->tb, p[1], i * s[1]));
            amp_sti(x->ta, o, i, amp_f2i_sat(v));
        } else {
            double e = int_exp && x->tb != AMP_U64 ? (double)amp_ldi(x->tb, p[1], i * s[1]) : amp_ld(x->tb, p[1], i * s[1]);
            st_float(x->ta, o, i, pow(amp_ld(x->ta, p[0], i * s[0]), e));
        }
    }
}

/* ---- kernels -------------------------------------------------------------------------------- */

amp_status amp_cpu_binary(amp_kernel *k) {
    if (k->nin < 2 || !k->in[0] || !k->in[1]) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs two inputs");
    const amp_tensor *in[2] = {k->in[0], k->in[1]};
    static const int idx[2] = {0, 1};
    amp_op op = k->n->op;
    if (op == AMP_OP_POW && in[0]->dtype != in[1]->dtype) {
        pow_aux aux = {in[0]->dtype, in[1]->dtype};
        return run_bcast(k, k->out[0], 2, in, idx, pow_mixed, &aux);
    }
    if (in[0]->dtype != in[1]->dtype)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "inputs are %s and %s", amp_dtype_name(in[0]->dtype),
                               amp_dtype_name(in[1]->dtype));
    if (op == AMP_OP_POW && amp_dtype_is_float(in[0]->dtype) && in[1]->numel == 1 &&
        amp_ld(in[1]->dtype, in[1]->data, 0) == 2.0) {
        /* x^2 (variances, decomposed LayerNorm) as x * x: the same correctly rounded value, NaN
         * and infinities included, without a pow call per element */
        const amp_tensor *sq[2] = {in[0], in[0]};
        return run_bcast(k, k->out[0], 2, sq, idx, pick(AMP_OP_MUL, in[0]->dtype, 0), NULL);
    }
    inner_fn fn = pick(op, in[0]->dtype, (int)amp_attr_int(k->n, "fmod", 0));
    if (!fn)
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(in[0]->dtype));
    return run_bcast(k, k->out[0], 2, in, idx, fn, NULL);
}

/* 16-bit Sum/Mean accumulate in f32 (workspace) so that a chain of additions rounds once. */
static void acc_init_f16(char *o, const char *const *p, const int64_t *s, int64_t n, const void *aux) {
    (void)aux;
    const uint16_t *a = (const uint16_t *)p[0];
    for (int64_t i = 0; i < n; i++) ((float *)o)[i] = amp_f16_to_f32(a[i * s[0]]);
}
static void acc_init_bf16(char *o, const char *const *p, const int64_t *s, int64_t n, const void *aux) {
    (void)aux;
    const uint16_t *a = (const uint16_t *)p[0];
    for (int64_t i = 0; i < n; i++) ((float *)o)[i] = amp_bf16_to_f32(a[i * s[0]]);
}
static void acc_add_f16(char *o, const char *const *p, const int64_t *s, int64_t n, const void *aux) {
    (void)aux;
    const float *a = (const float *)p[0];
    const uint16_t *b = (const uint16_t *)p[1];
    for (int64_t i = 0; i < n; i++) ((float *)o)[i] = a[i * s[0]] + amp_f16_to_f32(b[i * s[1]]);
}
static void acc_add_bf16(char *o, const char *const *p, const int64_t *s, int64_t n, const void *aux) {
    (void)aux;
    const float *a = (const float *)p[0];
    const uint16_t *b = (const uint16_t *)p[1];
    for (int64_t i = 0; i < n; i++) ((float *)o)[i] = a[i * s[0]] + amp_bf16_to_f32(b[i * s[1]]);
}

/* True when Sum/Mean of this dtype and input count needs the f32 workspace (inference asks for
 * numel * 4 bytes in exactly this case). */
static bool variadic_needs_acc(amp_op op, amp_dtype dt, int nin) {
    if (dt != AMP_F16 && dt != AMP_BF16) return false;
    return (op == AMP_OP_SUM && nin > 2) || (op == AMP_OP_MEAN && nin > 1);
}

static void scale_out(amp_tensor *o, double scale, int threads) {
    int64_t n = o->numel;
    bool big = n >= PAR_MIN && threads > 1;
    if (o->dtype == AMP_F32) {
        float *p = o->data, f = (float)scale;
        AMP_PAR_FOR(big, num_threads(threads > 0 ? threads : 1),
        for (int64_t i = 0; i < n; i++) p[i] *= f;);
    } else {
        AMP_PAR_FOR(big, num_threads(threads > 0 ? threads : 1),
        for (int64_t i = 0; i < n; i++) amp_st(o->dtype, o->data, i, amp_ld(o->dtype, o->data, i) * scale););
    }
}

/* 16-bit Sum/Mean of several inputs accumulate in an f32 copy of the output so they round once. */
amp_status amp_cpu_ws_variadic(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *out = k->out[0];
    *bytes = 0;
    if (!variadic_needs_acc(k->n->op, out->dtype, k->nin)) return AMP_OK;
    return amp_cpu_ws_elems(k, out->numel, sizeof(float), bytes);
}

amp_status amp_cpu_variadic(amp_kernel *k) {
    amp_tensor *out = k->out[0];
    amp_op op = k->n->op;
    int nin = k->nin;
    if (nin < 1) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs at least one input");
    for (int i = 0; i < nin; i++)
        if (!k->in[i] || k->in[i]->dtype != out->dtype)
            return amp_kernel_fail(k, AMP_ERR_SHAPE, "input %d is missing or of another dtype", i);
    if (out->numel == 0) return AMP_OK;
    amp_dtype dt = out->dtype;

    if (variadic_needs_acc(op, dt, nin)) {
        size_t need = (size_t)out->numel * sizeof(float);
        if (!k->ws || k->ws_bytes < need) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        amp_tensor acc;
        amp_tensor_view(&acc, AMP_F32, out->rank, out->dims, k->ws);
        const amp_tensor *one[1] = {k->in[0]};
        int idx0[1] = {0};
        amp_status s = run_bcast(k, &acc, 1, one, idx0, dt == AMP_F16 ? acc_init_f16 : acc_init_bf16, NULL);
        for (int i = 1; !s && i < nin; i++) {
            const amp_tensor *two[2] = {&acc, k->in[i]};
            int idx[2] = {0, i};
            s = run_bcast(k, &acc, 2, two, idx, dt == AMP_F16 ? acc_add_f16 : acc_add_bf16, NULL);
        }
        if (s) return s;
        const float *a = k->ws;
        float scale = op == AMP_OP_MEAN ? 1.0f / (float)nin : 1.0f;
        int64_t n = out->numel;
        bool big = n >= PAR_MIN && k->threads > 1;
        uint16_t *o = out->data;
        AMP_PAR_FOR(big, num_threads(k->threads > 0 ? k->threads : 1),
        for (int64_t i = 0; i < n; i++) o[i] = dt == AMP_F16 ? amp_f32_to_f16(a[i] * scale) : amp_f32_to_bf16(a[i] * scale););
        return AMP_OK;
    }

    inner_fn fn = pick(op, dt, 0);
    if (!fn) return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(dt));
    amp_status s = AMP_OK;
    if (nin == 1) {
        /* A single input has the output's shape: a copy (nothing when in place). */
        if (out->data != k->in[0]->data) memmove(out->data, k->in[0]->data, out->nbytes);
    } else {
        const amp_tensor *two[2] = {k->in[0], k->in[1]};
        int idx[2] = {0, 1};
        s = run_bcast(k, out, 2, two, idx, fn, NULL);
        /* Later inputs fold into the output, which already has the full shape: same order of
         * operations as ((a op b) op c), the reference's order. */
        for (int i = 2; !s && i < nin; i++) {
            const amp_tensor *acc2[2] = {out, k->in[i]};
            int idx2[2] = {0, i};
            s = run_bcast(k, out, 2, acc2, idx2, fn, NULL);
        }
    }
    if (!s && op == AMP_OP_MEAN && nin > 1) scale_out(out, 1.0 / nin, k->threads);
    return s;
}

/* Where: the element size is all that matters for the selected values. */
#define WHERE_LOOP(T)                                                                  \
    do {                                                                               \
        const uint8_t *cc = (const uint8_t *)p[0];                                     \
        const T *x = (const T *)p[1], *y = (const T *)p[2];                            \
        T *oo = (T *)o;                                                                \
        if (s[0] && s[1] && s[2])                                                      \
            for (int64_t i = 0; i < n; i++) oo[i] = cc[i] ? x[i] : y[i];               \
        else                                                                           \
            for (int64_t i = 0; i < n; i++) oo[i] = cc[i * s[0]] ? x[i * s[1]] : y[i * s[2]]; \
    } while (0)

static void where_inner(char *o, const char *const *p, const int64_t *s, int64_t n, const void *aux) {
    switch (*(const size_t *)aux) {
    case 1: WHERE_LOOP(uint8_t); break;
    case 2: WHERE_LOOP(uint16_t); break;
    case 4: WHERE_LOOP(uint32_t); break;
    default: WHERE_LOOP(uint64_t); break;
    }
}

amp_status amp_cpu_where(amp_kernel *k) {
    if (k->nin != 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs three inputs");
    if (k->in[0]->dtype != AMP_BOOL || k->in[1]->dtype != k->out[0]->dtype || k->in[2]->dtype != k->out[0]->dtype)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "condition must be bool and both branches of the output dtype");
    const amp_tensor *in[3] = {k->in[0], k->in[1], k->in[2]};
    static const int idx[3] = {0, 1, 2};
    size_t es = amp_dtype_size(k->out[0]->dtype);
    return run_bcast(k, k->out[0], 3, in, idx, where_inner, &es);
}

/* ---- BitShift and the Bitwise ops (integers as bit patterns) -------------------------------- */

typedef struct bits_aux {
    amp_op op;
    size_t es;   /* element size */
    bool left;   /* BitShift direction */
} bits_aux;

static inline uint64_t ld_bits(const char *p, size_t es) {
    switch (es) {
    case 1: return *(const uint8_t *)p;
    case 2: return *(const uint16_t *)p;
    case 4: return *(const uint32_t *)p;
    default: return *(const uint64_t *)p;
    }
}

static inline void st_bits(char *p, size_t es, uint64_t v) {
    switch (es) {
    case 1: *(uint8_t *)p = (uint8_t)v; break;
    case 2: *(uint16_t *)p = (uint16_t)v; break;
    case 4: *(uint32_t *)p = (uint32_t)v; break;
    default: *(uint64_t *)p = v; break;
    }
}

static void bits_inner(char *o, const char *const *p, const int64_t *s, int64_t n, const void *vaux) {
    const bits_aux *a = vaux;
    size_t es = a->es;
    unsigned width = (unsigned)(8 * es);
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = ld_bits(p[0] + (size_t)(i * s[0]) * es, es), y = ld_bits(p[1] + (size_t)(i * s[1]) * es, es), r;
        switch (a->op) {
        /* shifting by the width or more leaves no bits (C leaves it undefined) */
        case AMP_OP_BIT_SHIFT: r = y >= width ? 0 : a->left ? x << y : x >> y; break;
        case AMP_OP_BITWISE_AND: r = x & y; break;
        case AMP_OP_BITWISE_OR: r = x | y; break;
        default: r = x ^ y; break;
        }
        st_bits(o + (size_t)i * es, es, r);
    }
}

amp_status amp_cpu_bitwise(amp_kernel *k) {
    amp_op op = k->n->op;
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (!amp_dtype_is_int(x->dtype) || y->dtype != x->dtype)
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(x->dtype));
    size_t es = amp_dtype_size(x->dtype);
    if (op == AMP_OP_BITWISE_NOT) {
        if (y->numel != x->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output size differs from input");
        for (int64_t i = 0; i < x->numel; i++)
            st_bits((char *)y->data + (size_t)i * es, es, ~ld_bits((const char *)x->data + (size_t)i * es, es));
        return AMP_OK;
    }
    if (k->nin < 2 || !k->in[1] || k->in[1]->dtype != x->dtype)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "needs two inputs of one dtype");
    const amp_tensor *in[2] = {x, k->in[1]};
    static const int idx[2] = {0, 1};
    const char *dir = amp_attr_str(k->n, "direction", "");
    bits_aux aux = {op, es, strcmp(dir, "LEFT") == 0};
    if (op == AMP_OP_BIT_SHIFT && !aux.left && strcmp(dir, "RIGHT") != 0)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "direction must be LEFT or RIGHT");
    return run_bcast(k, y, 2, in, idx, bits_inner, &aux);
}
