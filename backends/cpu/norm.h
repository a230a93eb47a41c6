/* MeanVarianceNormalization geometry shared by its forward (backends/cpu/norm.c) and
 * gradient (backends/cpu/norm_grad.c) kernels: X's dims split into kept and reduced ones,
 * neighbours of one kind merged. */
#ifndef AMP_BACKENDS_CPU_NORM_GROUP_H
#define AMP_BACKENDS_CPU_NORM_GROUP_H

#include "backends/cpu/cpu.h"

typedef struct mvn_geom {
    int nk, nr;
    int64_t klen[AMP_MAX_RANK], kst[AMP_MAX_RANK]; /* kept dims: length, element stride */
    int64_t rlen[AMP_MAX_RANK], rst[AMP_MAX_RANK]; /* reduced dims */
    int64_t kcount, rcount, inner, istride;        /* positions, elements per position, innermost run */
} mvn_geom;

/* Split x into kept and reduced dims for the node's axes (default 0, 2, 3; empty: all). */
amp_status amp_cpu_mvn_geom_init(amp_kernel *k, const amp_tensor *x, mvn_geom *gm);

/* Offset of kept position p, and of the start of outer reduced step o. */
static inline int64_t mvn_kept_off(const mvn_geom *gm, int64_t p) {
    int64_t off = 0;
    for (int d = gm->nk - 1; d >= 0; d--) {
        off += (p % gm->klen[d]) * gm->kst[d];
        p /= gm->klen[d];
    }
    return off;
}
static inline int64_t mvn_outer_off(const mvn_geom *gm, int64_t o) {
    int64_t off = 0;
    for (int d = gm->nr - 2; d >= 0; d--) {
        off += (o % gm->rlen[d]) * gm->rst[d];
        o /= gm->rlen[d];
    }
    return off;
}

/* Run body with `off` at every element of the kept position starting at base. */
#define MVN_WALK(gm, base, off, ...)                                                        \
    for (int64_t o_ = 0; o_ < (gm)->rcount / (gm)->inner; o_++) {                           \
        int64_t off = (base) + mvn_outer_off((gm), o_);                                     \
        for (int64_t i_ = 0; i_ < (gm)->inner; i_++, off += (gm)->istride) { __VA_ARGS__; } \
    }

#endif
