/* CPU kernels of the ai.onnx.preview.training optimizers Adagrad, Adam and Momentum
 * (ir/ops/preview.def; inference in ir/ops/preview.c has checked counts, dtypes and shapes).
 *
 * Every element is computed in double, whatever the tensors' dtype (f32 or f64), and rounded
 * once on store: the schemas' pseudo code is a handful of operations per element, so f32
 * tensors gain accuracy at no cost that matters next to the memory traffic, and f32 and f64 runs
 * of the same data agree to f32 rounding. Scalar coefficients (the decayed or bias-corrected
 * learning rate) are formed once per node, in double, from R, T and the attributes.
 *
 * Inputs are read-only and every new value is an output; an omitted output (empty name) is
 * NULL here and simply not written. Elements are independent, so splitting them over threads
 * gives the same bits for any thread count. */
#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"

#define PREVIEW_PAR_MIN 32768 /* elements below which a tensor is updated on one thread */

enum { KIND_ADAGRAD, KIND_ADAM, KIND_MOMENTUM };

/* Per-node constants. */
typedef struct preview_hp {
    int kind;
    double nc;       /* norm_coefficient: the gradient of 0.5 * nc * ||X||^2 is added to G */
    double r;        /* Adagrad: R / (1 + T * decay_factor); Adam: R with the bias correction; Momentum: R */
    double eps;      /* Adagrad, Adam */
    double a, b;     /* Adam: alpha, beta; Momentum: alpha and beta (1 when T <= 0) */
    double ncp;      /* Adam: 1 - norm_coefficient_post */
    bool nesterov;   /* Momentum */
} preview_hp;

/* One element: x, g and the state s1 (Adagrad H; Adam V; Momentum V) and s2 (Adam H) in, the
 * new values out through the same pointers. kind is a constant in the typed loops, so each
 * of them compiles to one straight-line body. */
static inline void update_elem(int kind, const preview_hp *hp, double *x, double g, double *s1, double *s2) {
    const double gr = hp->nc * *x + g;
    if (kind == KIND_ADAGRAD) {
        const double h = *s1 + gr * gr;
        *s1 = h;
        *x = *x - hp->r * gr / (sqrt(h) + hp->eps);
    } else if (kind == KIND_ADAM) {
        const double v = hp->a * *s1 + (1.0 - hp->a) * gr;
        const double h = hp->b * *s2 + (1.0 - hp->b) * (gr * gr);
        *s1 = v;
        *s2 = h;
        *x = hp->ncp * (*x - hp->r * (v / (sqrt(h) + hp->eps)));
    } else {
        const double v = hp->a * *s1 + hp->b * gr;
        *s1 = v;
        *x = hp->nesterov ? *x - hp->r * (gr + hp->a * v) : *x - hp->r * v;
    }
}

/* The tensors of optimized tensor i: inputs X, G, S1, S2 (S2 only for Adam) and outputs X_new,
 * S1_new, S2_new (NULL when omitted). */
typedef struct preview_io {
    const void *x, *g, *s1, *s2;
    void *xo, *s1o, *s2o;
    int64_t n;
} preview_io;

/* The common case, every output wanted: typed loops per dtype and op that the compiler can
 * vectorise. */
#define PREVIEW_TYPED_LOOP(T, KIND)                                                                    \
    static void update_##T##_##KIND(const preview_hp *hp, const preview_io *io, int threads) {        \
        const T *x = io->x, *g = io->g, *s1 = io->s1, *s2 = io->s2;                                    \
        T *xo = io->xo, *s1o = io->s1o, *s2o = io->s2o;                                                 \
        const int64_t n = io->n;                                                                        \
        _Pragma("omp parallel for num_threads(threads) if (n >= PREVIEW_PAR_MIN) schedule(static)")     \
        for (int64_t j = 0; j < n; j++) {                                                               \
            double xv = x[j], a = s1[j], b = KIND == KIND_ADAM ? s2[j] : 0.0;                           \
            update_elem(KIND, hp, &xv, g[j], &a, &b);                                                   \
            xo[j] = (T)xv;                                                                              \
            s1o[j] = (T)a;                                                                              \
            if (KIND == KIND_ADAM) s2o[j] = (T)b;                                                       \
        }                                                                                               \
    }
PREVIEW_TYPED_LOOP(float, KIND_ADAGRAD)
PREVIEW_TYPED_LOOP(float, KIND_ADAM)
PREVIEW_TYPED_LOOP(float, KIND_MOMENTUM)
PREVIEW_TYPED_LOOP(double, KIND_ADAGRAD)
PREVIEW_TYPED_LOOP(double, KIND_ADAM)
PREVIEW_TYPED_LOOP(double, KIND_MOMENTUM)
#undef PREVIEW_TYPED_LOOP

/* Some output omitted: element access by dtype, writing only the outputs that exist. */
static void update_generic(const preview_hp *hp, const preview_io *io, amp_dtype dt, int threads) {
    const int64_t n = io->n;
    AMP_PAR_FOR(n >= PREVIEW_PAR_MIN, num_threads(threads) schedule(static),
    for (int64_t j = 0; j < n; j++) {
        double xv = amp_ld(dt, io->x, j), a = amp_ld(dt, io->s1, j), b = io->s2 ? amp_ld(dt, io->s2, j) : 0.0;
        update_elem(hp->kind, hp, &xv, amp_ld(dt, io->g, j), &a, &b);
        if (io->xo) amp_st(dt, io->xo, j, xv);
        if (io->s1o) amp_st(dt, io->s1o, j, a);
        if (io->s2o) amp_st(dt, io->s2o, j, b);
    });
}

/* Inputs R, T, X[n], G[n], S1[n] (, S2[n]); outputs X_new[n], S1_new[n] (, S2_new[n]). */
static amp_status run_optimizer(amp_kernel *k, const preview_hp *hp) {
    const int groups = hp->kind == KIND_ADAM ? 4 : 3;
    const int n = (k->nin - 2) / groups;
    if (n < 1 || k->nout != (groups - 1) * n)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "%d inputs and %d outputs do not match the op", k->nin, k->nout);
    const amp_dtype dt = k->in[2]->dtype;
    amp_tensor *const *in = k->in + 2, *const *out = k->out;
    for (int i = 0; i < n; i++) {
        preview_io io = {.x = in[i]->data,
                         .g = in[n + i]->data,
                         .s1 = in[2 * n + i]->data,
                         .s2 = groups == 4 ? in[3 * n + i]->data : NULL,
                         .xo = out[i] ? out[i]->data : NULL,
                         .s1o = out[n + i] ? out[n + i]->data : NULL,
                         .s2o = groups == 4 && out[2 * n + i] ? out[2 * n + i]->data : NULL,
                         .n = in[i]->numel};
        if (io.n == 0) continue;
        const bool all_out = io.xo && io.s1o && (groups == 3 || io.s2o);
        if (!all_out) {
            update_generic(hp, &io, dt, k->threads);
        } else if (dt == AMP_F32) {
            if (hp->kind == KIND_ADAGRAD) update_float_KIND_ADAGRAD(hp, &io, k->threads);
            else if (hp->kind == KIND_ADAM) update_float_KIND_ADAM(hp, &io, k->threads);
            else update_float_KIND_MOMENTUM(hp, &io, k->threads);
        } else {
            if (hp->kind == KIND_ADAGRAD) update_double_KIND_ADAGRAD(hp, &io, k->threads);
            else if (hp->kind == KIND_ADAM) update_double_KIND_ADAM(hp, &io, k->threads);
            else update_double_KIND_MOMENTUM(hp, &io, k->threads);
        }
    }
    return AMP_OK;
}

static double r_of(const amp_kernel *k) { return amp_ld(k->in[0]->dtype, k->in[0]->data, 0); }
static int64_t t_of(const amp_kernel *k) { return amp_ldi(k->in[1]->dtype, k->in[1]->data, 0); }

amp_status amp_cpu_adagrad(amp_kernel *k) {
    const double decay = amp_attr_float(k->n, "decay_factor", 0.0f);
    preview_hp hp = {.kind = KIND_ADAGRAD,
                     .nc = amp_attr_float(k->n, "norm_coefficient", 0.0f),
                     .eps = amp_attr_float(k->n, "epsilon", 1e-6f)};
    hp.r = r_of(k) / (1.0 + (double)t_of(k) * decay);
    return run_optimizer(k, &hp);
}

amp_status amp_cpu_adam(amp_kernel *k) {
    preview_hp hp = {.kind = KIND_ADAM,
                     .nc = amp_attr_float(k->n, "norm_coefficient", 0.0f),
                     .eps = amp_attr_float(k->n, "epsilon", 1e-6f),
                     .a = amp_attr_float(k->n, "alpha", 0.9f),
                     .b = amp_attr_float(k->n, "beta", 0.999f),
                     .ncp = 1.0 - (double)amp_attr_float(k->n, "norm_coefficient_post", 0.0f)};
    const int64_t t = t_of(k);
    hp.r = r_of(k);
    /* bias correction of both moments folded into the step size, from the first update on */
    if (t > 0) hp.r = hp.r * sqrt(1.0 - pow(hp.b, (double)t)) / (1.0 - pow(hp.a, (double)t));
    return run_optimizer(k, &hp);
}

amp_status amp_cpu_momentum(amp_kernel *k) {
    const amp_attr *mode = amp_node_attr(k->n, "mode");
    preview_hp hp = {.kind = KIND_MOMENTUM,
                     .nc = amp_attr_float(k->n, "norm_coefficient", 0.0f),
                     .r = r_of(k),
                     .a = amp_attr_float(k->n, "alpha", 0.0f),
                     .nesterov = mode && mode->s && mode->slen == 8 && memcmp(mode->s, "nesterov", 8) == 0};
    /* the first update (T = 0) takes the whole gradient, whatever beta is */
    hp.b = t_of(k) > 0 ? amp_attr_float(k->n, "beta", 0.0f) : 1.0;
    return run_optimizer(k, &hp);
}
