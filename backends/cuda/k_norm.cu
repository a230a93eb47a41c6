/* The norm family's kernels (kernels_norm.h): Softmax, LogSoftmax, LayerNormalization,
 * InstanceNormalization and their gradients.
 *
 * One block per row (a softmax row, a layer-norm row, an instance (n, c)); its statistics by
 * block reductions in double (amp_k_block_reduce: each thread sums its strided elements in
 * order, then a fixed tree), as the CPU kernels sum in double; every element is computed in
 * double as theirs are and rounded once on store. The gradients' sums over the batch (a
 * layer norm's dScale and dB per column, an instance norm's per channel) go through the
 * workspace in a fixed order, never through float atomics, so every run gives the same bits. */
#include "backends/cuda/kernels_dev.h"
#include "backends/cuda/kernels_norm.h"
#include "backends/nn_grad.h"
#include "backends/norm_grad.h"

/* Blocks of the row kernels: one per row, up to the grid limit (the rows loop past it). */
static unsigned norm_blocks(int64_t rows) {
    return rows < (int64_t)AMP_K_MAX_BLOCKS ? (unsigned)rows : AMP_K_MAX_BLOCKS;
}

/* Block-wide sum in double (every thread gets it). */
__device__ __forceinline__ double norm_sum(double v, double *sh) { return amp_k_block_reduce<amp_k_sum_op>(v, sh); }

/* Where element j of a block's row lies: contiguous rows, and a batch norm's channel (n segments
 * of seg elements, gap apart). */
struct norm_contig {
    int64_t base;
    __device__ __forceinline__ int64_t operator()(int64_t j) const { return base + j; }
};
struct norm_segs {
    int64_t base, seg, gap;
    __device__ __forceinline__ int64_t operator()(int64_t j) const { return base + (j / seg) * gap + j % seg; }
};

/* A SumToShape geometry (kernels.h) walked by one block: element j of kept position p's reduced
 * elements (the odometer over the reduced dims). */
struct norm_s2s_at {
    int64_t base;
    const amp_k_s2s *g;
    __device__ __forceinline__ int64_t operator()(int64_t j) const {
        int64_t off = base;
        for (int d = g->nr - 1; d >= 0; d--) {
            const int64_t q = j / g->rd[d];
            off += (j - q * g->rd[d]) * g->rs[d];
            j = q;
        }
        return off;
    }
};

__device__ __forceinline__ norm_s2s_at norm_s2s_pos(const amp_k_s2s &g, int64_t p) {
    int64_t off = 0;
    for (int d = g.nk - 1; d >= 0; d--) {
        const int64_t q = p / g.kd[d];
        off += (p - q * g.kd[d]) * g.ks[d];
        p = q;
    }
    return norm_s2s_at{off, &g};
}

/* Element j of a block's row as f32: x[at(j)]. */
template <class At>
struct norm_ld {
    const void *x;
    int xt;
    At at;
    __device__ __forceinline__ float operator()(int64_t j) const { return amp_k_ld(x, xt, at(j)); }
};

/* Mean and population variance (two passes, as on the CPU) of the n elements ld(j) of one
 * block's row. guard: an empty row gives mean 0 and var 0 (the gradients' convention); without
 * it 0 / 0, as the forward kernels compute it. */
template <class Ld>
__device__ __forceinline__ void norm_stats_of(Ld ld, int64_t n, bool guard, double *sh, double *mean, double *var) {
    const double cnt = (double)n;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += ld(j);
    s = norm_sum(s, sh);
    const double m = guard && n == 0 ? 0.0 : s / cnt;
    double q = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const double d = (double)ld(j) - m;
        q += d * d;
    }
    q = norm_sum(q, sh);
    *mean = m;
    *var = guard && n == 0 ? 0.0 : q / cnt;
}

/* The same over the elements x[at(j)]. */
template <class At>
__device__ __forceinline__ void norm_stats(const void *x, int xt, At at, int64_t n, bool guard, double *sh,
                                           double *mean, double *var) {
    norm_stats_of(norm_ld<At>{x, xt, at}, n, guard, sh, mean, var);
}

/* sum(dy) and sum(dy (x - mean)) over the n elements at(j) of one block's row (every thread gets
 * both). */
template <class At>
__device__ __forceinline__ void norm_dy_sums(const void *dy, int dyt, const void *x, int xt, At at, int64_t n,
                                             double mean, double *sh, double *sdy, double *sdyx) {
    double a = 0.0, b = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const double g = amp_k_ld(dy, dyt, at(j));
        a += g;
        b += g * ((double)amp_k_ld(x, xt, at(j)) - mean);
    }
    *sdy = norm_sum(a, sh);
    *sdyx = norm_sum(b, sh);
}

/* ---- Softmax, LogSoftmax ------------------------------------------------------------------------ */

__device__ __forceinline__ int64_t softmax_base(const amp_k_softmax &p, int64_t r) {
    return (r / p.inner) * p.len * p.inner + r % p.inner;
}

__global__ void amp_k_softmax_rows(amp_k_softmax p, const void *x, void *y) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t base = softmax_base(p, r);
        double mx, sum;
        /* all -inf keeps mx at -inf, so x - mx is NaN, as on the CPU */
        amp_k_row_lse(x, p.xt, base, p.inner, p.len, sh, &mx, &sum);
        const double lse = log(sum), inv = 1.0 / sum;
        for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) {
            const int64_t at = base + j * p.inner;
            const double v = (double)amp_k_ld(x, p.xt, at) - mx;
            amp_k_st(y, p.yt, at, (float)(p.log ? v - lse : exp(v) * inv));
        }
    }
}

__global__ void amp_k_softmax_grad_rows(amp_k_softmax p, const void *dy, const void *y, void *dx) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t base = softmax_base(p, r);
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) {
            const int64_t at = base + j * p.inner;
            const double g = amp_k_ld(dy, p.dyt, at);
            s += p.log ? g : g * (double)amp_k_ld(y, p.xt, at);
        }
        s = norm_sum(s, sh);
        for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) {
            const int64_t at = base + j * p.inner;
            const double yv = amp_k_ld(y, p.xt, at), g = amp_k_ld(dy, p.dyt, at);
            amp_k_st(dx, p.yt, at, (float)(p.log ? amp_log_softmax_dx_d(yv, g, s) : amp_softmax_dx_d(yv, g, s)));
        }
    }
}

extern "C" cudaError_t amp_k_softmax_fwd(cudaStream_t stream, const amp_k_softmax *p, const void *x, void *y) {
    if (p->rows <= 0 || p->len <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_softmax_rows, norm_blocks(p->rows), amp_k_row_threads(p->len), 0, stream, *p, x, y);
}

/* Hardmax: the CPU's scan, one thread per row */
__global__ void amp_k_hardmax_rows(amp_k_softmax p, const void *x, void *y) {
    AMP_K_FOR(r, p.rows) {
        const int64_t base = softmax_base(p, r);
        int64_t best = 0;
        float bv = amp_k_ld(x, p.xt, base);
        for (int64_t j = 1; j < p.len && bv == bv; j++) {
            const float v = amp_k_ld(x, p.xt, base + j * p.inner);
            if (v > bv || v != v) {
                bv = v;
                best = j;
            }
        }
        for (int64_t j = 0; j < p.len; j++) amp_k_st(y, p.yt, base + j * p.inner, j == best ? 1.0f : 0.0f);
    }
}

extern "C" cudaError_t amp_k_hardmax(cudaStream_t stream, const amp_k_softmax *p, const void *x, void *y) {
    if (p->rows <= 0 || p->len <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_hardmax_rows, amp_k_blocks(p->rows, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 *p, x, y);
}

extern "C" cudaError_t amp_k_softmax_grad(cudaStream_t stream, const amp_k_softmax *p, const void *dy, const void *y,
                                          void *dx) {
    if (p->rows <= 0 || p->len <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_softmax_grad_rows, norm_blocks(p->rows), amp_k_row_threads(p->len), 0, stream, *p,
                           dy, y, dx);
}

/* ---- LayerNormalization ------------------------------------------------------------------------- */

/* A statistic's element r: f32, f16, bf16 or f64 (AMP_K_STAT_F64), stored from double as the CPU
 * stores it (through f32 for the 16-bit types). */
__device__ __forceinline__ double ln_stat_ld(const void *p, int dt, int64_t r) {
    return dt == AMP_K_STAT_F64 ? ((const double *)p)[r] : (double)amp_k_ld(p, dt, r);
}
__device__ __forceinline__ void ln_stat_st(void *p, int dt, int64_t r, double v) {
    if (dt == AMP_K_STAT_F64) ((double *)p)[r] = v;
    else amp_k_st(p, dt, r, (float)v);
}

/* The element of a parameter (strides st, or the column j when col) that X's element flat reads. */
__device__ __forceinline__ int64_t ln_pidx(const amp_k_ln &p, bool col, const int64_t *st, int64_t flat, int64_t j) {
    if (col) return j;
    int64_t at = 0;
    for (int d = p.rank - 1; d >= 0; d--) {
        const int64_t q = flat / p.xd[d];
        at += (flat - q * p.xd[d]) * st[d];
        flat = q;
    }
    return at;
}

/* Element j of row r's input: x, or with a residual (RES: AddLayerNorm) s = round_T(x + r) as
 * Add computes it (the f32 sum of the loaded values, rounded once to X's dtype), r's row being
 * the row modulo R's rows. */
template <bool RES>
struct ln_src {
    const void *x, *r;
    int xt;
    int64_t base, rbase;
    __device__ __forceinline__ float operator()(int64_t j) const {
        const float v = amp_k_ld(x, xt, base + j);
        if (!RES) return v;
        const float s = v + amp_k_ld(r, xt, rbase + j);
        return xt == AMP_K_F32 ? s : amp_k_from16(xt, amp_k_to16(xt, s, 0));
    }
};

/* One block per row: the statistics of the row's input (ln_src), then y, and s (RES, where not
 * NULL), mean and inv. The input is loaded (and with RES recomputed) in each of the three
 * passes rather than kept: a row may be longer than shared memory. */
template <bool RES>
__device__ __forceinline__ void ln_rows(const amp_k_ln &p, int64_t rrows, const void *x, const void *res,
                                        const void *sc, const void *b, void *y, void *os, void *omean, void *oinv) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t base = r * p.cols, rbase = RES ? (r % rrows) * p.cols : 0;
        const ln_src<RES> src{x, res, p.xt, base, rbase};
        double mean, var;
        norm_stats_of(src, p.cols, false, sh, &mean, &var);
        const double inv = 1.0 / sqrt(var + p.eps);
        if (p.fast) {
            /* the CPU's f32 loop: float arithmetic from the rounded statistics */
            const ln_src<RES> fsrc{x, res, AMP_K_F32, base, rbase};
            const float fm = (float)mean, fi = (float)inv;
            const float *ss = (const float *)sc, *bs = (const float *)b;
            float *ys = (float *)y;
            for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) {
                const float xv = fsrc(j);
                if (RES && os) ((float *)os)[base + j] = xv;
                const float v = (xv - fm) * fi * ss[j];
                ys[base + j] = bs ? v + bs[j] : v;
            }
        } else {
            for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) {
                const float xv = src(j);
                if (RES && os) amp_k_st(os, p.xt, base + j, xv);
                const double gam = amp_k_ld(sc, p.st, ln_pidx(p, p.scol, p.sst, base + j, j));
                double v = ((double)xv - mean) * inv * gam;
                if (b) v += (double)amp_k_ld(b, p.bt, ln_pidx(p, p.bcol, p.bst, base + j, j));
                amp_k_st(y, p.yt, base + j, (float)v);
            }
        }
        if (threadIdx.x == 0) {
            if (omean) ln_stat_st(omean, p.mt, r, mean);
            if (oinv) ln_stat_st(oinv, p.it, r, inv);
        }
    }
}

__global__ void amp_k_ln_rows(amp_k_ln p, const void *x, const void *sc, const void *b, void *y, void *omean,
                              void *oinv) {
    ln_rows<false>(p, 1, x, nullptr, sc, b, y, nullptr, omean, oinv);
}

__global__ void amp_k_add_ln_rows(amp_k_ln p, int64_t rrows, const void *x, const void *res, const void *sc,
                                  const void *b, void *y, void *os, void *omean, void *oinv) {
    ln_rows<true>(p, rrows, x, res, sc, b, y, os, omean, oinv);
}

extern "C" cudaError_t amp_k_layer_norm(cudaStream_t stream, const amp_k_ln *p, const void *x, const void *scale,
                                        const void *b, void *y, void *mean, void *inv) {
    if (p->rows <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_ln_rows, norm_blocks(p->rows), amp_k_row_threads(p->cols), 0, stream, *p, x, scale,
                           b, y, mean, inv);
}

extern "C" cudaError_t amp_k_add_layer_norm(cudaStream_t stream, const amp_k_ln *p, int64_t rrows, const void *x,
                                            const void *r, const void *scale, const void *b, void *y, void *s,
                                            void *mean, void *inv) {
    if (p->rows <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_add_ln_rows, norm_blocks(p->rows), amp_k_row_threads(p->cols), 0, stream, *p,
                           rrows > 0 ? rrows : 1, x, r, scale, b, y, s, mean, inv);
}

/* ---- LayerNormalizationGrad ----------------------------------------------------------------------
 * Per row (one block): the statistics (saved or recomputed), sum(g) and sum(g (x - mean)) with
 * g = dy * scale, and dX by amp_norm_dx; the row's mean and inv go to the workspace. Then the
 * column sums of dy * xhat (dScale) and dy (dB): chunks of LN_CHUNK rows per thread and column,
 * then the chunks in order. */

#define LN_CHUNK 32

static int64_t ln_chunks(const amp_k_ln *p) { return (p->rows + LN_CHUNK - 1) / LN_CHUNK; }

extern "C" size_t amp_k_layer_norm_grad_ws(const amp_k_ln *p) {
    return sizeof(double) * (size_t)(2 * p->rows + 2 * ln_chunks(p) * p->cols) + 8;
}

__global__ void amp_k_ln_grad_rows(amp_k_ln p, const void *dy, const void *x, const void *sc, const void *sm,
                                   const void *si, const void *gm, const void *gi, void *dx, double *stats) {
    __shared__ double sh[32];
    const double cnt = (double)p.cols;
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t base = r * p.cols;
        double mean, inv;
        if (sm && si) {
            mean = ln_stat_ld(sm, p.mt, r);
            inv = ln_stat_ld(si, p.it, r);
        } else {
            double var;
            norm_stats(x, p.xt, norm_contig{base}, p.cols, false, sh, &mean, &var);
            inv = 1.0 / sqrt(var + p.eps);
        }
        if (threadIdx.x == 0) {
            stats[2 * r] = mean;
            stats[2 * r + 1] = inv;
        }
        double sg = 0.0, sgx = 0.0;
        if (dy) {
            for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) {
                const double gam = amp_k_ld(sc, p.st, ln_pidx(p, p.scol, p.sst, base + j, j));
                const double g = (double)amp_k_ld(dy, p.dyt, base + j) * gam;
                sg += g;
                sgx += g * ((double)amp_k_ld(x, p.xt, base + j) - mean);
            }
            sg = norm_sum(sg, sh);
            sgx = norm_sum(sgx, sh) * inv;
        }
        const double gmv = gm ? ln_stat_ld(gm, p.gmt, r) : 0.0, giv = gi ? ln_stat_ld(gi, p.git, r) : 0.0;
        const amp_norm_coef kc = amp_norm_coef_d(inv, sg / cnt, sgx / cnt, gmv, giv, cnt);
        for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) {
            const double xhat = ((double)amp_k_ld(x, p.xt, base + j) - mean) * kc.inv;
            const double g =
                dy ? (double)amp_k_ld(dy, p.dyt, base + j) * (double)amp_k_ld(sc, p.st, ln_pidx(p, p.scol, p.sst, base + j, j))
                   : 0.0;
            amp_k_st(dx, p.yt, base + j, (float)amp_norm_dx_d(kc, g, xhat));
        }
    }
}

/* part[(chunk * cols + j) * 2 + {0, 1}]: sums over the chunk's rows of dy * xhat and dy. */
__global__ void amp_k_ln_grad_part(amp_k_ln p, const void *dy, const void *x, const double *stats, double *part) {
    const int64_t nch = (p.rows + LN_CHUNK - 1) / LN_CHUNK;
    AMP_K_FOR(i, nch * p.cols) {
        const int64_t ch = i / p.cols, j = i % p.cols, r1 = (ch + 1) * LN_CHUNK < p.rows ? (ch + 1) * LN_CHUNK : p.rows;
        double s = 0.0, t = 0.0;
        for (int64_t r = ch * LN_CHUNK; dy && r < r1; r++) {
            const int64_t at = r * p.cols + j;
            const double g = amp_k_ld(dy, p.dyt, at);
            s += g * ((double)amp_k_ld(x, p.xt, at) - stats[2 * r]) * stats[2 * r + 1];
            t += g;
        }
        part[2 * i] = s;
        part[2 * i + 1] = t;
    }
}

__global__ void amp_k_ln_grad_cols(amp_k_ln p, const double *part, void *dscale, void *db) {
    const int64_t nch = (p.rows + LN_CHUNK - 1) / LN_CHUNK;
    AMP_K_FOR(j, p.cols) {
        double s = 0.0, t = 0.0;
        for (int64_t ch = 0; ch < nch; ch++) {
            s += part[2 * (ch * p.cols + j)];
            t += part[2 * (ch * p.cols + j) + 1];
        }
        if (dscale) amp_k_st(dscale, p.dst, j, (float)s);
        if (db) amp_k_st(db, p.dbt, j, (float)t);
    }
}

/* A parameter broadcast other than by the column: per element (one block), the sum over the X
 * elements that read it (g: X summed to its shape) of dy * xhat (scale) or dy. */
__global__ void amp_k_ln_grad_general(amp_k_ln p, amp_k_s2s g, int scale, const void *dy, const void *x,
                                      const double *stats, void *out, int ot) {
    __shared__ double sh[32];
    for (int64_t q = blockIdx.x; q < g.m; q += gridDim.x) {
        const norm_s2s_at at = norm_s2s_pos(g, q);
        double s = 0.0;
        for (int64_t j = threadIdx.x; dy && j < g.r; j += blockDim.x) {
            const int64_t e = at(j), r = e / p.cols;
            const double gy = amp_k_ld(dy, p.dyt, e);
            s += scale ? gy * ((double)amp_k_ld(x, p.xt, e) - stats[2 * r]) * stats[2 * r + 1] : gy;
        }
        s = norm_sum(s, sh);
        if (threadIdx.x == 0) amp_k_st(out, ot, q, (float)s);
    }
}

extern "C" cudaError_t amp_k_layer_norm_grad(cudaStream_t stream, const amp_k_ln *p, const void *dy, const void *x,
                                             const void *scale, const void *smean, const void *sinv, const void *gm,
                                             const void *gi, void *dx, void *dscale, void *db, void *ws) {
    double *stats = (double *)ws, *part = stats + 2 * p->rows;
    cudaError_t e = cudaSuccess;
    if (p->rows > 0)
        e = AMP_CUDA_LAUNCH(amp_k_ln_grad_rows, norm_blocks(p->rows), amp_k_row_threads(p->cols), 0, stream, *p, dy,
                            x, scale, smean, sinv, gm, gi, dx, stats);
    if (e != cudaSuccess) return e;
    /* the parameters broadcast otherwise, then the column ones */
    if (dscale && !p->scol && p->sg.m > 0)
        e = AMP_CUDA_LAUNCH(amp_k_ln_grad_general, norm_blocks(p->sg.m), amp_k_row_threads(p->sg.r), 0, stream, *p,
                            p->sg, 1, dy, x, (const double *)stats, dscale, (int)p->dst);
    if (e == cudaSuccess && db && !p->bcol && p->bg.m > 0)
        e = AMP_CUDA_LAUNCH(amp_k_ln_grad_general, norm_blocks(p->bg.m), amp_k_row_threads(p->bg.r), 0, stream, *p,
                            p->bg, 0, dy, x, (const double *)stats, db, (int)p->dbt);
    if (!p->scol) dscale = NULL;
    if (!p->bcol) db = NULL;
    if (e != cudaSuccess || p->cols <= 0 || (!dscale && !db)) return e;
    const int64_t nch = ln_chunks(p);
    if (nch > 0) {
        e = AMP_CUDA_LAUNCH_PLAIN(amp_k_ln_grad_part, amp_k_blocks(nch * p->cols, AMP_K_THREADS), AMP_K_THREADS, 0,
                                  stream, *p, dy, x, (const double *)stats, part);
        if (e != cudaSuccess) return e;
    }
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_ln_grad_cols, amp_k_blocks(p->cols, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 *p, (const double *)part, dscale, db);
}

/* ---- InstanceNormalization ------------------------------------------------------------------------ */

__global__ void amp_k_in_rows(amp_k_inorm p, const void *x, const void *sc, const void *b, void *y) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < p.n * p.c; r += gridDim.x) {
        const int64_t base = r * p.sp, c = r % p.c;
        double mean, var;
        norm_stats(x, p.xt, norm_contig{base}, p.sp, false, sh, &mean, &var);
        const double a = (double)amp_k_ld(sc, p.st, c) / sqrt(var + p.eps), bb = (double)amp_k_ld(b, p.bt, c) - mean * a;
        for (int64_t j = threadIdx.x; j < p.sp; j += blockDim.x)
            amp_k_st(y, p.yt, base + j, (float)((double)amp_k_ld(x, p.xt, base + j) * a + bb));
    }
}

extern "C" cudaError_t amp_k_instance_norm(cudaStream_t stream, const amp_k_inorm *p, const void *x,
                                           const void *scale, const void *b, void *y) {
    if (p->n * p->c <= 0 || p->sp <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_in_rows, norm_blocks(p->n * p->c), amp_k_row_threads(p->sp), 0, stream, *p, x, scale,
                           b, y);
}

/* ---- InstanceNormalizationGrad ---------------------------------------------------------------------
 * Per (n, c) row (one block): its statistics, sum(dy) and sum(dy (x - mean)) inv, dX; the two
 * sums go to the workspace, and one thread per channel adds them over n in order. */

extern "C" size_t amp_k_instance_norm_grad_ws(const amp_k_inorm *p) {
    return sizeof(double) * (size_t)(2 * p->n * p->c) + 8;
}

__global__ void amp_k_in_grad_rows(amp_k_inorm p, const void *dy, const void *x, const void *sc, void *dx,
                                   double *sums) {
    __shared__ double sh[32];
    const double cnt = (double)p.sp;
    for (int64_t r = blockIdx.x; r < p.n * p.c; r += gridDim.x) {
        const int64_t base = r * p.sp;
        const double gamma = amp_k_ld(sc, p.st, r % p.c);
        double mean, var;
        norm_stats(x, p.xt, norm_contig{base}, p.sp, true, sh, &mean, &var);
        const double inv = 1.0 / sqrt(var + p.eps);
        double sdy, sdyx;
        norm_dy_sums(dy, p.dyt, x, p.xt, norm_contig{base}, p.sp, mean, sh, &sdy, &sdyx);
        sdyx *= inv;
        const double mg = p.sp > 0 ? gamma * sdy / cnt : 0.0, mgx = p.sp > 0 ? gamma * sdyx / cnt : 0.0;
        const amp_norm_coef kc = amp_norm_coef_d(inv, mg, mgx, 0.0, 0.0, cnt);
        for (int64_t j = threadIdx.x; j < p.sp; j += blockDim.x) {
            const double xhat = ((double)amp_k_ld(x, p.xt, base + j) - mean) * inv;
            amp_k_st(dx, p.yt, base + j, (float)amp_norm_dx_d(kc, gamma * (double)amp_k_ld(dy, p.dyt, base + j), xhat));
        }
        if (threadIdx.x == 0) {
            sums[2 * r] = sdy;
            sums[2 * r + 1] = sdyx;
        }
    }
}

__global__ void amp_k_in_grad_channels(amp_k_inorm p, const double *sums, void *dscale, void *db) {
    AMP_K_FOR(c, p.c) {
        double tdy = 0.0, tdyx = 0.0;
        for (int64_t i = 0; i < p.n; i++) {
            tdy += sums[2 * (i * p.c + c)];
            tdyx += sums[2 * (i * p.c + c) + 1];
        }
        if (dscale) amp_k_st(dscale, p.dst, c, (float)tdyx);
        if (db) amp_k_st(db, p.dbt, c, (float)tdy);
    }
}

extern "C" cudaError_t amp_k_instance_norm_grad(cudaStream_t stream, const amp_k_inorm *p, const void *dy,
                                                const void *x, const void *scale, void *dx, void *dscale, void *db,
                                                void *ws) {
    double *sums = (double *)ws;
    cudaError_t e = cudaSuccess;
    if (p->n * p->c > 0)
        e = AMP_CUDA_LAUNCH(amp_k_in_grad_rows, norm_blocks(p->n * p->c), amp_k_row_threads(p->sp), 0, stream, *p, dy,
                            x, scale, dx, sums);
    if (e != cudaSuccess || p->c <= 0 || (!dscale && !db)) return e;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_in_grad_channels, amp_k_blocks(p->c, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 *p, (const double *)sums, dscale, db);
}

/* ---- GroupNormalization ------------------------------------------------------------------------------
 * One block per group (n, g): cpg consecutive channels of sp elements, contiguous. */

__device__ __forceinline__ int64_t gn_param(const amp_k_gnorm &p, int64_t g, int64_t j) {
    return p.per_channel ? g * p.cpg + j : g;
}

__global__ void amp_k_gn_groups(amp_k_gnorm p, const void *x, const void *sc, const void *b, void *y) {
    __shared__ double sh[32];
    const int64_t len = p.cpg * p.sp;
    for (int64_t ng = blockIdx.x; ng < p.n * p.groups; ng += gridDim.x) {
        const int64_t base = ng * len, g = ng % p.groups;
        double mean, var;
        if (p.fast) {
            /* the CPU's f32 statistics: one pass over the deviations from the group's first element */
            const float *xs = (const float *)x;
            const double k0 = xs[base];
            double s1 = 0.0, s2 = 0.0;
            for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
                const double d = (double)xs[base + j] - k0;
                s1 += d;
                s2 += d * d;
            }
            s1 = norm_sum(s1, sh);
            s2 = norm_sum(s2, sh);
            const double m = s1 / (double)len, v = s2 / (double)len - m * m;
            mean = k0 + m;
            var = v > 0 ? v : 0;
        } else {
            norm_stats(x, p.xt, norm_contig{base}, len, false, sh, &mean, &var);
        }
        const double inv = 1.0 / sqrt(var + p.eps);
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
            const int64_t pi = gn_param(p, g, j / p.sp);
            const double s = (double)amp_k_ld(sc, p.st, pi) * inv, bb = amp_k_ld(b, p.bt, pi);
            if (p.fast)
                ((float *)y)[base + j] = (((const float *)x)[base + j] - (float)mean) * (float)s + (float)bb;
            else
                amp_k_st(y, p.yt, base + j, (float)(((double)amp_k_ld(x, p.xt, base + j) - mean) * s + bb));
        }
    }
}

extern "C" cudaError_t amp_k_group_norm(cudaStream_t stream, const amp_k_gnorm *p, const void *x, const void *scale,
                                        const void *b, void *y) {
    if (p->n * p->groups <= 0 || p->cpg * p->sp <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_gn_groups, norm_blocks(p->n * p->groups), amp_k_row_threads(p->cpg * p->sp), 0,
                           stream, *p, x, scale, b, y);
}

/* GroupNormalizationGrad per group (one block), with xhat = (x - mean) inv and g = dy scale:
 * per channel sum(dy) and sum(dy xhat) into the workspace, dx = inv (g - mean(g) - xhat mean(g xhat)). */
extern "C" size_t amp_k_group_norm_grad_ws(const amp_k_gnorm *p) { return sizeof(double) * (size_t)(2 * p->n * p->c) + 8; }

__global__ void amp_k_gn_grad_groups(amp_k_gnorm p, const void *dy, const void *x, const void *sc, void *dx,
                                     double *sums) {
    __shared__ double sh[32];
    const int64_t len = p.cpg * p.sp;
    for (int64_t ng = blockIdx.x; ng < p.n * p.groups; ng += gridDim.x) {
        const int64_t base = ng * len, g = ng % p.groups, n = ng / p.groups;
        double mean, var;
        norm_stats(x, p.xt, norm_contig{base}, len, false, sh, &mean, &var);
        const double inv = 1.0 / sqrt(var + p.eps);
        double sg = 0.0, sgx = 0.0;
        for (int64_t j = 0; j < p.cpg; j++) {
            const int64_t c = g * p.cpg + j, row = base + j * p.sp;
            double s1, s2;
            norm_dy_sums(dy, p.dyt, x, p.xt, norm_contig{row}, p.sp, mean, sh, &s1, &s2);
            s2 *= inv;
            if (threadIdx.x == 0) {
                sums[(n * p.c + c) * 2] = s1;
                sums[(n * p.c + c) * 2 + 1] = s2;
            }
            const double gam = amp_k_ld(sc, p.st, gn_param(p, g, j));
            sg += gam * s1;
            sgx += gam * s2;
        }
        sg /= (double)len;
        sgx /= (double)len;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
            const double gam = amp_k_ld(sc, p.st, gn_param(p, g, j / p.sp));
            const double xh = ((double)amp_k_ld(x, p.xt, base + j) - mean) * inv;
            const double gy = amp_k_ld(dy, p.dyt, base + j);
            amp_k_st(dx, p.yt, base + j, (float)(inv * (gam * gy - sg - xh * sgx)));
        }
    }
}

/* Per parameter: the sums over n (and, per group, over its channels) in the CPU's order; sums
 * NULL for an empty X (zeros). */
__global__ void amp_k_gn_grad_params(amp_k_gnorm p, const double *sums, void *dscale, void *db) {
    const int64_t plen = p.per_channel ? p.c : p.groups, per = p.per_channel ? 1 : p.cpg;
    AMP_K_FOR(q, plen) {
        double s1 = 0.0, s2 = 0.0;
        for (int64_t i = 0; sums && i < p.n; i++)
            for (int64_t j = 0; j < per; j++) {
                const int64_t c = q * per + j;
                s1 += sums[(i * p.c + c) * 2];
                s2 += sums[(i * p.c + c) * 2 + 1];
            }
        if (dscale) amp_k_st(dscale, p.dst, q, (float)s2);
        if (db) amp_k_st(db, p.dbt, q, (float)s1);
    }
}

extern "C" cudaError_t amp_k_group_norm_grad(cudaStream_t stream, const amp_k_gnorm *p, const void *dy, const void *x,
                                             const void *scale, void *dx, void *dscale, void *db, void *ws) {
    const bool empty = p->n * p->c * p->sp <= 0;
    double *sums = empty ? NULL : (double *)ws;
    cudaError_t e = cudaSuccess;
    if (!empty)
        e = AMP_CUDA_LAUNCH(amp_k_gn_grad_groups, norm_blocks(p->n * p->groups), amp_k_row_threads(p->cpg * p->sp), 0,
                            stream, *p, dy, x, scale, dx, sums);
    const int64_t plen = p->per_channel ? p->c : p->groups;
    if (e != cudaSuccess || plen <= 0 || (!dscale && !db)) return e;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_gn_grad_params, amp_k_blocks(plen, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *p,
                                 (const double *)sums, dscale, db);
}

/* ---- BatchNormalization ----------------------------------------------------------------------------------
 * Inference is an affine map per channel (its two coefficients first, into the workspace);
 * training and the gradient take one block per channel over its n segments of sp elements. */

__device__ __forceinline__ norm_segs bn_walk(const amp_k_bnorm &p, int64_t c) { return norm_segs{c * p.sp, p.sp, p.ch * p.sp}; }

extern "C" size_t amp_k_batch_norm_ws(const amp_k_bnorm *p) {
    return p->training ? 0 : sizeof(double) * (size_t)(2 * p->ch) + 8;
}

__global__ void amp_k_bn_coef(amp_k_bnorm p, const void *sc, const void *b, const void *mn, const void *vr,
                              double *coef) {
    AMP_K_FOR(c, p.ch) {
        const double a = (double)amp_k_ld(sc, p.st, c) / sqrt((double)amp_k_ld(vr, p.vt, c) + p.eps);
        coef[2 * c] = a;
        coef[2 * c + 1] = (double)amp_k_ld(b, p.bt, c) - (double)amp_k_ld(mn, p.mt, c) * a;
    }
}

__global__ void amp_k_bn_apply(amp_k_bnorm p, const void *x, const double *coef, void *y) {
    AMP_K_FOR(i, p.n * p.ch * p.sp) {
        const int64_t c = (i / p.sp) % p.ch;
        amp_k_st(y, p.yt, i, (float)((double)amp_k_ld(x, p.xt, i) * coef[2 * c] + coef[2 * c + 1]));
    }
}

__global__ void amp_k_bn_train(amp_k_bnorm p, const void *x, const void *sc, const void *b, const void *mn,
                               const void *vr, void *y, void *rmean, void *rvar, void *smean, void *sinv) {
    __shared__ double sh[32];
    const int64_t cnt = p.n * p.sp;
    for (int64_t c = blockIdx.x; c < p.ch; c += gridDim.x) {
        const norm_segs at = bn_walk(p, c);
        double mean, var;
        norm_stats(x, p.xt, at, cnt, false, sh, &mean, &var);
        const double inv = 1.0 / sqrt(var + p.eps);
        const double a = (double)amp_k_ld(sc, p.st, c) * inv, bb = (double)amp_k_ld(b, p.bt, c) - mean * a;
        for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x)
            amp_k_st(y, p.yt, at(j), (float)((double)amp_k_ld(x, p.xt, at(j)) * a + bb));
        if (threadIdx.x == 0) {
            if (rmean) amp_k_st(rmean, p.rmt, c, (float)((double)amp_k_ld(mn, p.mt, c) * p.mom + mean * (1 - p.mom)));
            if (rvar) amp_k_st(rvar, p.rvt, c, (float)((double)amp_k_ld(vr, p.vt, c) * p.mom + var * (1 - p.mom)));
            if (smean) amp_k_st(smean, p.smt, c, (float)mean);
            if (sinv) amp_k_st(sinv, p.sit, c, (float)inv);
        }
    }
}

extern "C" cudaError_t amp_k_batch_norm(cudaStream_t stream, const amp_k_bnorm *p, const void *x, const void *scale,
                                        const void *b, const void *mean, const void *var, void *y, void *rmean,
                                        void *rvar, void *smean, void *sinv, void *ws) {
    if (p->ch <= 0) return cudaSuccess;
    if (p->training)
        return AMP_CUDA_LAUNCH(amp_k_bn_train, norm_blocks(p->ch), amp_k_row_threads(p->n * p->sp), 0, stream, *p, x,
                               scale, b, mean, var, y, rmean, rvar, smean, sinv);
    const int64_t total = p->n * p->ch * p->sp;
    if (total <= 0) return cudaSuccess;
    double *coef = (double *)ws;
    cudaError_t e = AMP_CUDA_LAUNCH_PLAIN(amp_k_bn_coef, amp_k_blocks(p->ch, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                          *p, scale, b, mean, var, coef);
    if (e != cudaSuccess) return e;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_bn_apply, amp_k_blocks(total, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *p, x,
                                 (const double *)coef, y);
}

/* BatchNormalizationGrad per channel (backends/cpu/norm_grad.c's bn_channel): training through
 * the batch statistics (amp_norm_dx, with the running and saved statistics' gradients), inference
 * through the affine map. */
__global__ void amp_k_bn_grad_channels(amp_k_bnorm p, const void *dy, const void *x, const void *sc, const void *mn,
                                       const void *vr, const void *grm, const void *grv, const void *gsm,
                                       const void *gsi, void *dx, void *dsc, void *db, void *dmn, void *dvr) {
    __shared__ double sh[32];
    const int64_t cnt = p.n * p.sp;
    const double fcnt = (double)cnt, mom = p.mom;
    for (int64_t c = blockIdx.x; c < p.ch; c += gridDim.x) {
        const norm_segs at = bn_walk(p, c);
        const double gamma = amp_k_ld(sc, p.st, c);
        double mean, inv;
        if (p.training) {
            double var;
            norm_stats(x, p.xt, at, cnt, true, sh, &mean, &var);
            inv = 1.0 / sqrt(var + p.eps);
        } else {
            mean = amp_k_ld(mn, p.mt, c);
            inv = 1.0 / sqrt((double)amp_k_ld(vr, p.vt, c) + p.eps);
        }
        double sdy = 0.0, sdyx = 0.0;
        if (dy) {
            norm_dy_sums(dy, p.dyt, x, p.xt, at, cnt, mean, sh, &sdy, &sdyx);
            sdyx *= inv;
        }
        double omn, ovr;
        if (p.training) {
            const double rm = grm ? (double)amp_k_ld(grm, p.rmt, c) : 0.0, rv = grv ? (double)amp_k_ld(grv, p.rvt, c) : 0.0;
            const double sm = gsm ? (double)amp_k_ld(gsm, p.smt, c) : 0.0, si = gsi ? (double)amp_k_ld(gsi, p.sit, c) : 0.0;
            /* var = inv^-2 - eps: a gradient rv of var is one of -2 rv / inv^3 of inv */
            const double gm = rm * (1 - mom) + sm, gi = si - 2.0 * rv * (1 - mom) / (inv * inv * inv);
            const double mg = cnt > 0 ? gamma * sdy / fcnt : 0.0, mgx = cnt > 0 ? gamma * sdyx / fcnt : 0.0;
            const amp_norm_coef kc = amp_norm_coef_d(inv, mg, mgx, gm, gi, fcnt);
            for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
                const double xhat = ((double)amp_k_ld(x, p.xt, at(j)) - mean) * inv;
                const double g = dy ? gamma * (double)amp_k_ld(dy, p.dyt, at(j)) : 0.0;
                amp_k_st(dx, p.yt, at(j), (float)amp_norm_dx_d(kc, g, xhat));
            }
            omn = rm * mom;
            ovr = rv * mom;
        } else {
            const double sa = gamma * inv;
            for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x)
                amp_k_st(dx, p.yt, at(j), (float)(dy ? sa * (double)amp_k_ld(dy, p.dyt, at(j)) : 0.0));
            omn = -sa * sdy;
            ovr = -0.5 * gamma * inv * inv * sdyx;
        }
        if (threadIdx.x == 0) {
            if (dmn) amp_k_st(dmn, p.dmt, c, (float)omn);
            if (dvr) amp_k_st(dvr, p.dvt, c, (float)ovr);
            if (dsc) amp_k_st(dsc, p.dst, c, (float)sdyx);
            if (db) amp_k_st(db, p.dbt, c, (float)sdy);
        }
    }
}

extern "C" cudaError_t amp_k_batch_norm_grad(cudaStream_t stream, const amp_k_bnorm *p, const void *dy, const void *x,
                                             const void *scale, const void *mean, const void *var, const void *grm,
                                             const void *grv, const void *gsm, const void *gsi, void *dx, void *dscale,
                                             void *db, void *dmean, void *dvar) {
    if (p->ch <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_bn_grad_channels, norm_blocks(p->ch), amp_k_row_threads(p->n * p->sp), 0, stream, *p,
                           dy, x, scale, mean, var, grm, grv, gsm, gsi, dx, dscale, db, dmean, dvar);
}

/* ---- LRN, LRNGrad -------------------------------------------------------------------------------------
 * One thread per element, its window summed in channel order as on the CPU. */

/* d^-beta, without pow for the exponents models use (AlexNet's 0.75): the CPU's lrn_pow */
__device__ __forceinline__ double lrn_pow(double d, double beta) {
    if (beta == 0.75) return 1.0 / (sqrt(d) * sqrt(sqrt(d)));
    if (beta == 0.5) return 1.0 / sqrt(d);
    if (beta == 1.0) return 1.0 / d;
    return pow(d, -beta);
}

/* D at element i (row r = n ch + c, position s), in double */
__device__ __forceinline__ double lrn_den(const amp_k_lrn &p, const void *x, int64_t i) {
    const int64_t s = i % p.sp, r = i / p.sp, c = r % p.ch, nbase = (r - c) * p.sp;
    const int64_t i0 = c - p.lo > 0 ? c - p.lo : 0, i1 = c + p.hi < p.ch - 1 ? c + p.hi : p.ch - 1;
    double sq = 0.0;
    for (int64_t w = i0; w <= i1; w++) {
        const double v = amp_k_ld(x, p.xt, nbase + w * p.sp + s);
        sq += v * v;
    }
    return p.bias + p.scale * sq;
}

__global__ void amp_k_lrn_elems(amp_k_lrn p, const void *x, void *y) {
    AMP_K_FOR(i, p.n * p.ch * p.sp) {
        if (p.fast) {
            const float *xs = (const float *)x;
            const int64_t s = i % p.sp, r = i / p.sp, c = r % p.ch, nbase = (r - c) * p.sp;
            const int64_t i0 = c - p.lo > 0 ? c - p.lo : 0, i1 = c + p.hi < p.ch - 1 ? c + p.hi : p.ch - 1;
            float sq = 0.0f;
            for (int64_t w = i0; w <= i1; w++) sq += xs[nbase + w * p.sp + s] * xs[nbase + w * p.sp + s];
            if (p.beta == 0.75) {
                const float d = (float)p.bias + (float)p.scale * sq;
                ((float *)y)[i] = xs[i] / (sqrtf(d) * sqrtf(sqrtf(d)));
            } else {
                ((float *)y)[i] = (float)((double)xs[i] * lrn_pow(p.bias + p.scale * (double)sq, p.beta));
            }
        } else {
            amp_k_st(y, p.yt, i, (float)((double)amp_k_ld(x, p.xt, i) * lrn_pow(lrn_den(p, x, i), p.beta)));
        }
    }
}

extern "C" cudaError_t amp_k_lrn_fwd(cudaStream_t stream, const amp_k_lrn *p, const void *x, void *y) {
    const int64_t total = p->n * p->ch * p->sp;
    if (total <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_lrn_elems, amp_k_blocks(total, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *p, x,
                                 y);
}

/* With D_c as above and Y_c = X_c D_c^-beta:
 *   dX_j = dY_j D_j^-beta - 2 scale beta X_j sum_c dY_c X_c D_c^(-beta-1)
 * over the channels c whose window holds j, [j - hi, j + lo] clipped. */
extern "C" size_t amp_k_lrn_grad_ws(const amp_k_lrn *p) { return sizeof(double) * (size_t)(p->n * p->ch * p->sp) + 8; }

__global__ void amp_k_lrn_grad_w(amp_k_lrn p, const void *dy, const void *x, double *w) {
    AMP_K_FOR(i, p.n * p.ch * p.sp) {
        const double d = lrn_den(p, x, i);
        w[i] = (double)amp_k_ld(dy, p.dyt, i) * (double)amp_k_ld(x, p.xt, i) * lrn_pow(d, p.beta) / d;
    }
}

__global__ void amp_k_lrn_grad_dx(amp_k_lrn p, const void *dy, const void *x, const double *w, void *dx) {
    const double k2 = 2.0 * p.scale * p.beta;
    AMP_K_FOR(i, p.n * p.ch * p.sp) {
        const int64_t s = i % p.sp, r = i / p.sp, c = r % p.ch, nbase = (r - c) * p.sp;
        const int64_t i0 = c - p.hi > 0 ? c - p.hi : 0, i1 = c + p.lo < p.ch - 1 ? c + p.lo : p.ch - 1;
        double t = 0.0;
        for (int64_t q = i0; q <= i1; q++) t += w[nbase + q * p.sp + s];
        const double v = (double)amp_k_ld(dy, p.dyt, i) * lrn_pow(lrn_den(p, x, i), p.beta) -
                         k2 * (double)amp_k_ld(x, p.xt, i) * t;
        amp_k_st(dx, p.yt, i, (float)v);
    }
}

extern "C" cudaError_t amp_k_lrn_grad(cudaStream_t stream, const amp_k_lrn *p, const void *dy, const void *x, void *dx,
                                      void *ws) {
    const int64_t total = p->n * p->ch * p->sp;
    if (total <= 0) return cudaSuccess;
    double *w = (double *)ws;
    cudaError_t e = AMP_CUDA_LAUNCH_PLAIN(amp_k_lrn_grad_w, amp_k_blocks(total, AMP_K_THREADS), AMP_K_THREADS, 0,
                                          stream, *p, dy, x, w);
    if (e != cudaSuccess) return e;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_lrn_grad_dx, amp_k_blocks(total, AMP_K_THREADS), AMP_K_THREADS, 0, stream, *p,
                                 dy, x, (const double *)w, dx);
}

/* ---- MeanVarianceNormalization, its gradient ---------------------------------------------------------- */

__global__ void amp_k_mvn_pos(amp_k_s2s g, int xt, int yt, const void *x, void *y) {
    __shared__ double sh[32];
    for (int64_t p = blockIdx.x; p < g.m; p += gridDim.x) {
        const norm_s2s_at at = norm_s2s_pos(g, p);
        double mean, var;
        norm_stats(x, xt, at, g.r, false, sh, &mean, &var);
        const double inv = 1.0 / (sqrt(var) + 1e-9);
        for (int64_t j = threadIdx.x; j < g.r; j += blockDim.x)
            amp_k_st(y, yt, at(j), (float)(((double)amp_k_ld(x, xt, at(j)) - mean) * inv));
    }
}

extern "C" cudaError_t amp_k_mvn(cudaStream_t stream, const amp_k_s2s *g, amp_k_dtype xt, amp_k_dtype yt,
                                 const void *x, void *y) {
    if (g->m <= 0 || g->r <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_mvn_pos, norm_blocks(g->m), amp_k_row_threads(g->r), 0, stream, *g, (int)xt, (int)yt,
                           x, y);
}

/* With d = x - mean, s = sqrt(mean(d^2)) and D = s + 1e-9:
 *   dX = (dY - mean(dY)) / D - d sum(dY d) / (M s D^2), the second term 0 where s = 0. */
__global__ void amp_k_mvn_grad_pos(amp_k_s2s g, int dyt, int xt, int dxt, const void *dy, const void *x, void *dx) {
    __shared__ double sh[32];
    const double m = (double)g.r;
    for (int64_t p = blockIdx.x; p < g.m; p += gridDim.x) {
        const norm_s2s_at at = norm_s2s_pos(g, p);
        double sum = 0.0;
        for (int64_t j = threadIdx.x; j < g.r; j += blockDim.x) sum += amp_k_ld(x, xt, at(j));
        const double mean = norm_sum(sum, sh) / m;
        double sq = 0.0, sdy, sdyd;
        for (int64_t j = threadIdx.x; j < g.r; j += blockDim.x) {
            const double d = (double)amp_k_ld(x, xt, at(j)) - mean;
            sq += d * d;
        }
        sq = norm_sum(sq, sh);
        norm_dy_sums(dy, dyt, x, xt, at, g.r, mean, sh, &sdy, &sdyd);
        const double s = sqrt(sq / m), den = s + 1e-9, inv = 1.0 / den, mdy = sdy / m;
        const double coef = s > 0 ? sdyd / (m * s * den * den) : 0.0;
        for (int64_t j = threadIdx.x; j < g.r; j += blockDim.x) {
            const double d = (double)amp_k_ld(x, xt, at(j)) - mean;
            amp_k_st(dx, dxt, at(j), (float)(((double)amp_k_ld(dy, dyt, at(j)) - mdy) * inv - d * coef));
        }
    }
}

extern "C" cudaError_t amp_k_mvn_grad(cudaStream_t stream, const amp_k_s2s *g, amp_k_dtype dyt, amp_k_dtype xt,
                                      amp_k_dtype dxt, const void *dy, const void *x, void *dx) {
    if (g->m <= 0 || g->r <= 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH(amp_k_mvn_grad_pos, norm_blocks(g->m), amp_k_row_threads(g->r), 0, stream, *g, (int)dyt,
                           (int)xt, (int)dxt, dy, x, dx);
}
