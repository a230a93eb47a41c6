/* CPU kernel of ResizeGrad (ir/ops/resize_grad.def): dX = the transpose of Resize's interpolation
 * applied to dY. The forward's sampling tables (ir/ops/resize.h) are built in the workspace; one
 * scatter-add pass per resized axis takes dY's shape back to X's, most-enlarged axis first so
 * the data shrinks early. Per-axis operators act on different axes and commute, so any order
 * gives the transpose. Accumulation is in f32 for f32/f16/bf16 and in f64 for f64; 16-bit dX is
 * accumulated in the workspace and rounded once. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"
#include "ir/ops/resize.h"

#define PAR_MIN_WORK (1 << 15)
#define BLOCK 256 /* inner elements one task owns: tasks never scatter into the same element */

/* dst[o, idx[j, k], i] += w[j, k] * src[o, j, i] over j and k, for output positions j not
 * extrapolated; dst (length lin along the axis) is zeroed by the caller. */
#define DEFINE_SCATTER(NAME, T, W)                                                                                   \
    static void NAME(const amp_resize_tab *t, int64_t K, const T *src, T *dst, int64_t outer, int64_t lout,          \
                     int64_t lin, int64_t inner, int threads) {                                                      \
        int64_t nb = (inner + BLOCK - 1) / BLOCK;                                                                    \
        bool par = outer * lout * inner >= PAR_MIN_WORK;                                                             \
        _Pragma("omp parallel for num_threads(threads) if (par && outer * nb > 1)")                                  \
        for (int64_t ob = 0; ob < outer * nb; ob++) {                                                                \
            int64_t o = ob / nb, i0 = ob % nb * BLOCK, i1 = i0 + BLOCK < inner ? i0 + BLOCK : inner;                 \
            const T *s = src + o * lout * inner;                                                                     \
            T *d = dst + o * lin * inner;                                                                            \
            for (int64_t j = 0; j < lout; j++) {                                                                     \
                if (t->outside && t->outside[j]) continue;                                                           \
                const T *sj = s + j * inner;                                                                         \
                for (int64_t k = 0; k < K; k++) {                                                                    \
                    T w = t->W[j * K + k];                                                                           \
                    T *dk = d + t->idx[j * K + k] * inner;                                                           \
                    for (int64_t i = i0; i < i1; i++) dk[i] += w * sj[i];                                            \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }

DEFINE_SCATTER(scatter_f32, float, wf)
DEFINE_SCATTER(scatter_f64, double, wd)

/* The first pass reads dY in its own dtype when that is not the compute type (f16, bf16). */
static void scatter_any(const amp_resize_tab *t, int64_t K, const void *src, amp_dtype sdt, float *dst,
                        int64_t outer, int64_t lout, int64_t lin, int64_t inner, int threads) {
    int64_t nb = (inner + BLOCK - 1) / BLOCK;
    bool par = outer * lout * inner >= PAR_MIN_WORK;
    AMP_PAR_FOR(par && outer * nb > 1, num_threads(threads),
    for (int64_t ob = 0; ob < outer * nb; ob++) {
        int64_t o = ob / nb, i0 = ob % nb * BLOCK, i1 = i0 + BLOCK < inner ? i0 + BLOCK : inner;
        float *d = dst + o * lin * inner;
        for (int64_t j = 0; j < lout; j++) {
            if (t->outside && t->outside[j]) continue;
            int64_t sj = (o * lout + j) * inner;
            for (int64_t k = 0; k < K; k++) {
                float w = t->wf[j * K + k];
                float *dk = d + t->idx[j * K + k] * inner;
                for (int64_t i = i0; i < i1; i++) dk[i] += w * (float)amp_ld(sdt, src, sj + i);
            }
        }
    });
}

amp_status amp_cpu_resize_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0];
    amp_tensor *dx = k->out[0];
    const char *op = amp_attr_str(k->n, "fwd_op", "");
    amp_resize_slots sl = {.upsample = strcmp(op, "Upsample") == 0, .opset = amp_attr_int(k->n, "fwd_opset", 0),
                           .roi = 2, .scales = 3, .sizes = 4};
    const amp_tensor *roi = amp_resize_kernel_input(k, sl.roi);
    amp_resize_geom g;
    amp_resize_plan p;
    char why[256];
    amp_status s = amp_resize_geometry(k->n, &sl, dx->rank, dx->dims, roi, roi != NULL, amp_resize_kernel_input(k, sl.scales),
                                       amp_resize_kernel_input(k, sl.sizes), &g, why, sizeof why);
    if (!s) s = amp_resize_plan_make(&g, dx->dtype, true, k->ctx->max_tensor_elements, &p, why, sizeof why);
    if (s) return amp_kernel_fail(k, s, "%s", why);
    if (dy->dtype != dx->dtype || dy->rank != dx->rank || memcmp(dy->dims, g.out, sizeof(int64_t) * (size_t)dy->rank))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY does not have the forward output's shape");
    if (p.bytes > k->ws_bytes) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    if (dx->numel == 0) return AMP_OK;
    if (dy->numel == 0) {
        memset(dx->data, 0, dx->nbytes); /* all-zero bits are 0.0 in every float dtype */
        return AMP_OK;
    }
    if (p.npass == 0) {
        if (dx->data != dy->data) memcpy(dx->data, dy->data, dy->nbytes);
        return AMP_OK;
    }
    amp_resize_tab tab[AMP_MAX_RANK];
    amp_resize_tables(&g, &p, k->ws, tab);
    size_t es = amp_dtype_size(p.ct);
    bool direct = dx->dtype == p.ct; /* the last pass may accumulate into dX itself */
    int64_t cur[AMP_MAX_RANK];
    memcpy(cur, g.out, sizeof cur);
    const void *src = dy->data;
    amp_dtype sdt = dy->dtype;
    for (int i = 0; i < p.npass; i++) {
        int d = p.axes[i];
        int64_t outer = 1, inner = 1;
        for (int e = 0; e < d; e++) outer *= cur[e];
        for (int e = d + 1; e < g.rank; e++) inner *= cur[e];
        bool last = i == p.npass - 1;
        void *dst = last ? (direct ? dx->data : (char *)k->ws + p.acc) : (char *)k->ws + p.buf[i % 2];
        memset(dst, 0, (size_t)(outer * g.in[d] * inner) * es);
        if (sdt == p.ct && p.ct == AMP_F32)
            scatter_f32(&tab[d], g.taps[d], src, dst, outer, g.out[d], g.in[d], inner, k->threads);
        else if (sdt == p.ct)
            scatter_f64(&tab[d], g.taps[d], src, dst, outer, g.out[d], g.in[d], inner, k->threads);
        else
            scatter_any(&tab[d], g.taps[d], src, sdt, dst, outer, g.out[d], g.in[d], inner, k->threads);
        cur[d] = g.in[d];
        src = dst;
        sdt = p.ct;
    }
    if (!direct) amp_narrow16(dx->dtype, (const float *)((char *)k->ws + p.acc), dx->data, dx->numel);
    return AMP_OK;
}
