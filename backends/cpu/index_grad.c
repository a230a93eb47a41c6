/* CPU kernels of the index family's training ops (ir/ops/index_grad.def): GatherNDGrad,
 * ScatterNDDataGrad and MaxUnpoolGrad. Sums run in a fixed order (the order of the index
 * tuples), so results never depend on the thread count; 16-bit sums accumulate in f32. */
#include <string.h>

#include "backends/cpu/index.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"

#define PAR_MIN_WORK (1 << 15)

/* GatherNDGrad: 16-bit gradients add up in an f32 copy of dX. */
amp_status amp_cpu_ws_gather_nd_grad(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *dx = k->out[0];
    *bytes = 0;
    if (dx->dtype != AMP_F16 && dx->dtype != AMP_BF16) return AMP_OK;
    return amp_cpu_ws_elems(k, dx->numel, sizeof(float), bytes);
}

/* MaxUnpoolGrad: one int64 per unpooled element, the last X position written there. */
amp_status amp_cpu_ws_max_unpool_grad(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *ind = k->in[1];
    int64_t ud[AMP_MAX_RANK], total = 1;
    amp_status s = amp_cpu_unpooled_dims(k, ind, ud);
    if (s) return s;
    for (int d = 0; d < ind->rank; d++)
        if (__builtin_mul_overflow(total, ud[d], &total))
            return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "scratch size overflows");
    return amp_cpu_ws_elems(k, total, sizeof(int64_t), bytes);
}

amp_status amp_cpu_gather_nd_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *ind = k->in[2];
    amp_tensor *dx = k->out[0];
    int64_t b = amp_attr_int(k->n, "batch_dims", 0), tuples, slice;
    amp_status s = amp_cpu_nd_check(k, dx->rank, dx->dims, ind, b, &tuples, &slice);
    if (s) return s;
    amp_dtype dt = dx->dtype;
    if (dy->dtype != dt || dy->numel != tuples * slice)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY does not match the indices");
    if (dx->nbytes) memset(dx->data, 0, dx->nbytes);
    if (dt == AMP_F64) {
        double *g = dx->data;
        const double *u = dy->data;
        for (int64_t t = 0; t < tuples; t++) {
            int64_t o = amp_cpu_nd_offset(dx->rank, dx->dims, ind, b, t);
            for (int64_t e = 0; e < slice; e++) g[o + e] += u[t * slice + e];
        }
    } else if (dt == AMP_F32 || dt == AMP_F16 || dt == AMP_BF16) {
        bool half = dt != AMP_F32;
        if (half && (!k->ws || k->ws_bytes < (size_t)dx->numel * sizeof(float)))
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        float *g = half ? k->ws : dx->data;
        if (half) memset(g, 0, (size_t)dx->numel * sizeof(float));
        for (int64_t t = 0; t < tuples; t++) {
            int64_t o = amp_cpu_nd_offset(dx->rank, dx->dims, ind, b, t);
            if (half)
                for (int64_t e = 0; e < slice; e++) g[o + e] += (float)amp_ld(dt, dy->data, t * slice + e);
            else
                for (int64_t e = 0; e < slice; e++) g[o + e] += ((const float *)dy->data)[t * slice + e];
        }
        if (half) amp_narrow16(dt, g, dx->data, dx->numel);
    } else {
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s", amp_dtype_name(dt));
    }
    return AMP_OK;
}

amp_status amp_cpu_scatter_nd_data_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *ind = k->in[1];
    amp_tensor *dx = k->out[0];
    int64_t tuples, slice;
    amp_status s = amp_cpu_nd_check(k, dy->rank, dy->dims, ind, 0, &tuples, &slice);
    if (s) return s;
    if (dx->dtype != dy->dtype || dx->numel != dy->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "dX does not match");
    if (dx->data != dy->data && dy->nbytes) memcpy(dx->data, dy->data, dy->nbytes);
    size_t es = amp_dtype_size(dx->dtype);
    /* zeroing is idempotent: repeated tuples may run in any order */
    AMP_PAR_FOR(tuples * slice >= PAR_MIN_WORK && tuples > 1, num_threads(k->threads),
    for (int64_t t = 0; t < tuples; t++) {
        int64_t o = amp_cpu_nd_offset(dx->rank, dx->dims, ind, 0, t);
        memset((uint8_t *)dx->data + (size_t)o * es, 0, (size_t)slice * es);
    });
    return AMP_OK;
}

amp_status amp_cpu_max_unpool_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *ind = k->in[1];
    amp_tensor *dx = k->out[0];
    int64_t ud[AMP_MAX_RANK];
    amp_status s = amp_cpu_unpooled_dims(k, ind, ud);
    if (s) return s;
    int r = ind->rank;
    bool ok = dy->rank == r && dx->numel == ind->numel && dx->dtype == dy->dtype, corner = false;
    for (int d = 0; ok && d < r; d++) {
        ok = dy->dims[d] >= ud[d];
        corner |= dy->dims[d] != ud[d];
    }
    if (!ok) return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY or dX does not match");
    int64_t total = 1;
    for (int d = 0; d < r; d++) total *= ud[d];
    if (!k->ws || k->ws_bytes < (size_t)total * sizeof(int64_t))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    for (int64_t p = 0; p < ind->numel; p++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, p);
        if (v < 0 || v >= total)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "index %lld at position %lld is out of range [0, %lld)",
                                   (long long)v, (long long)p, (long long)total);
    }
    /* the forward writes in order: the last X position with an index is the one Y holds */
    int64_t *last = k->ws;
    for (int64_t i = 0; i < total; i++) last[i] = -1;
    for (int64_t p = 0; p < ind->numel; p++) last[amp_ldi(ind->dtype, ind->data, p)] = p;
    int64_t yst[AMP_MAX_RANK];
    amp_strides(r, dy->dims, yst);
    amp_dtype dt = dx->dtype;
    AMP_PAR_FOR(dx->numel >= PAR_MIN_WORK, num_threads(k->threads),
    for (int64_t p = 0; p < dx->numel; p++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, p), o = v;
        if (corner) {
            /* the unpooled tensor sits at the origin of the larger output */
            int64_t rem = v;
            o = 0;
            for (int d = r - 1; d >= 0; d--) {
                o += (rem % ud[d]) * yst[d];
                rem /= ud[d];
            }
        }
        amp_st(dt, dx->data, p, last[v] == p ? amp_ld(dt, dy->data, o) : 0.0);
    });
    return AMP_OK;
}
