/* Helpers shared by the CPU kernels: index arithmetic, 16-bit widening, MatMul and broadcast
 * geometry. Element access in every dtype is base-level (base/elem.h, included here). */
#ifndef AMP_BACKENDS_CPU_CPU_H
#define AMP_BACKENDS_CPU_CPU_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/elem.h"
#include "backends/cpu/kernels.h"
#include "base/half.h"
#include "ir/ir.h"

/* A loop body written once and inlined into each specialisation (f32 fast path, per-dtype
 * path), so that branches on compile-time constants fold away. */
#define AMP_CPU_INLINE static inline __attribute__((always_inline))

/* Input i of a kernel, NULL where it is omitted or past the end. */
static inline const amp_tensor *in_opt(const amp_kernel *k, int i) { return i < k->nin ? k->in[i] : NULL; }

/* Element access for kernels that branch once on f32 (the common case) and otherwise go through
 * amp_ld/amp_st; inlined so the branch resolves at compile time where f32 is a constant. */
AMP_CPU_INLINE double amp_ldf(bool f32, amp_dtype t, const void *p, int64_t i) {
    return f32 ? (double)((const float *)p)[i] : amp_ld(t, p, i);
}
AMP_CPU_INLINE void amp_stf(bool f32, amp_dtype t, void *p, int64_t i, double v) {
    if (f32) ((float *)p)[i] = (float)v;
    else amp_st(t, p, i, v);
}

/* Row-major strides of dims (elements). */
/* The threads a kernel may use (k->threads, at least 1). */
static inline int amp_cpu_threads(const amp_kernel *k) { return k->threads > 0 ? k->threads : 1; }

static inline void amp_strides(int rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

/* f16/bf16 buffer <-> f32 buffer, for kernels that compute 16-bit tensors in f32 scratch. */
static inline void amp_widen16(amp_dtype dt, const void *src, float *dst, int64_t n) {
    const uint16_t *p = src;
    if (dt == AMP_F16)
        for (int64_t i = 0; i < n; i++) dst[i] = amp_f16_to_f32(p[i]);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = amp_bf16_to_f32(p[i]);
}

static inline void amp_narrow16(amp_dtype dt, const float *src, void *dst, int64_t n) {
    uint16_t *p = dst;
    if (dt == AMP_F16)
        for (int64_t i = 0; i < n; i++) p[i] = amp_f32_to_f16(src[i]);
    else
        for (int64_t i = 0; i < n; i++) p[i] = amp_f32_to_bf16(src[i]);
}

/* MatMul batch geometry with numpy broadcasting (forward and gradient kernels). */
typedef struct amp_mm_shape {
    int64_t M, N, K, nb; /* nb: batch count of Y */
    int rb;              /* batch rank of Y */
    int64_t ydims[AMP_MAX_RANK];
    int64_t sa[AMP_MAX_RANK], sb[AMP_MAX_RANK]; /* element strides of A and B per Y batch dim (0: broadcast) */
} amp_mm_shape;

static inline void amp_mm_shape_init(const amp_tensor *A, const amp_tensor *B, const amp_tensor *Y, amp_mm_shape *s) {
    memset(s, 0, sizeof *s);
    s->M = A->rank == 1 ? 1 : A->dims[A->rank - 2];
    s->K = A->dims[A->rank - 1];
    s->N = B->rank == 1 ? 1 : B->dims[B->rank - 1];
    s->rb = Y->rank - (A->rank > 1) - (B->rank > 1);
    s->nb = 1;
    for (int i = 0; i < s->rb; i++) {
        s->ydims[i] = Y->dims[i];
        s->nb *= Y->dims[i];
    }
    /* walk the batch dims from the right, aligning A's and B's to Y's */
    int ra = A->rank > 2 ? A->rank - 2 : 0, rbb = B->rank > 2 ? B->rank - 2 : 0;
    int64_t stA = s->M * s->K, stB = s->K * s->N;
    for (int i = s->rb - 1; i >= 0; i--) {
        int ia = i - (s->rb - ra), ib = i - (s->rb - rbb);
        int64_t da = ia >= 0 ? A->dims[ia] : 1, db = ib >= 0 ? B->dims[ib] : 1;
        s->sa[i] = da == 1 ? 0 : stA;
        s->sb[i] = db == 1 ? 0 : stB;
        stA *= da;
        stB *= db;
    }
}

static inline void amp_mm_offsets(const amp_mm_shape *s, int64_t b, int64_t *oa, int64_t *ob) {
    int64_t a = 0, c = 0;
    for (int i = s->rb - 1; i >= 0; i--) {
        int64_t q = b % s->ydims[i];
        b /= s->ydims[i];
        a += q * s->sa[i];
        c += q * s->sb[i];
    }
    *oa = a;
    *ob = c;
}


/* Broadcasting geometry of nin inputs against an output of orank dims: ed[i] are input i's
 * dims in the output's frame (1 where absent). Size-1 output dims are dropped and neighbours
 * contiguous in every input merged; *rank (>= 1), dims and per-input element strides st[i]
 * (0 where broadcast) describe the result. */
static inline void amp_bcast_collapse(int orank, const int64_t *odims, int nin, int64_t (*ed)[AMP_MAX_RANK],
                                      int *rank, int64_t *dims, int64_t (*st)[AMP_MAX_RANK]) {
    int64_t cs[AMP_MAX_RANK];
    int r = 0;
    for (int d = 0; d < orank; d++)
        if (odims[d] != 1) dims[r++] = odims[d];
    for (int i = 0; i < nin; i++) {
        amp_strides(orank, ed[i], cs);
        int q = 0;
        for (int d = 0; d < orank; d++)
            if (odims[d] != 1) st[i][q++] = ed[i][d] == 1 ? 0 : cs[d];
    }
    if (r == 0) {
        *rank = 1;
        dims[0] = 1;
        for (int i = 0; i < nin; i++) st[i][0] = 0;
        return;
    }
    int m = 0;
    for (int d = 0; d < r; d++) {
        bool merge = m > 0;
        for (int i = 0; merge && i < nin; i++) merge = st[i][m - 1] == st[i][d] * dims[d];
        if (merge) {
            dims[m - 1] *= dims[d];
            for (int i = 0; i < nin; i++) st[i][m - 1] = st[i][d];
        } else {
            dims[m] = dims[d];
            for (int i = 0; i < nin; i++) st[i][m] = st[i][d];
            m++;
        }
    }
    *rank = m;
}

/* Every index of ind within [-len, len), else AMP_ERR_INVALID_ARG naming the first bad one
 * (backends/cpu/gather.c; Gather, GatherElements, ScatterElements and their gradients). */
amp_status amp_cpu_check_indices(amp_kernel *k, const amp_tensor *ind, int64_t len);

/* Which of rank dims a Reduce* node reduces (axes from the attribute, or from axes_in when
 * from_input); *noop for empty axes with noop_with_empty_axes (backends/cpu/reduce.c). */
amp_status amp_cpu_reduce_axes(amp_kernel *k, bool from_input, const amp_tensor *axes_in, int rank, bool *red,
                               bool *noop);

/* LU with partial pivoting in place (backends/cpu/linalg.c: Det and its gradient); returns
 * det(P), +1 or -1. */
int amp_cpu_lu(double *a, int64_t n, int64_t *perm);

#endif
