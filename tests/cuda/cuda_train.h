/* What the CUDA training tests (tests/cuda/test_lenet.c, test_models.c) share: comparing two
 * trainers' parameters through the public API, and the emulated runtime's counters inside the
 * CUDA module (allocations, waits, the work a step enqueues). Include after amprt/amprt.h; static only. */
#ifndef AMP_TESTS_CUDA_CUDA_TRAIN_H
#define AMP_TESTS_CUDA_CUDA_TRAIN_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(AMP_CUDA_EMULATED)
#include <dlfcn.h>
#endif

#include "amprt/amprt.h"

/* relative L2 distance of all parameters of a from b (f32 master weights), or -1 when they
 * differ in count or shape; bit-identical when *identical is set */
static inline double param_distance(amp_trainer *a, amp_trainer *b, int *identical) {
    int n = amp_trainer_param_count(a);
    if (n != amp_trainer_param_count(b)) return -1;
    double num = 0, den = 0;
    *identical = 1;
    for (int i = 0; i < n; i++) {
        amp_tensor *pa, *pb;
        if (amp_trainer_param(a, i, NULL, &pa) || amp_trainer_param(b, i, NULL, &pb)) return -1;
        size_t na = amp_tensor_nbytes(pa), nb = amp_tensor_nbytes(pb);
        const void *da = amp_tensor_data(pa), *db = amp_tensor_data(pb);
        if (na != nb || amp_tensor_dtype(pa) != AMP_F32) return -1;
        if (memcmp(da, db, na)) *identical = 0;
        const float *fa = da, *fb = db;
        for (size_t k = 0; k < na / 4; k++) {
            double d = (double)fa[k] - fb[k];
            num += d * d;
            den += (double)fb[k] * fb[k];
        }
    }
    return den > 0 ? sqrt(num / den) : 0;
}

/* A function of the emulated runtime inside the CUDA module (emu/fake_runtime.h: the module has
 * its own copy of the runtime, so its counters are asked there), or NULL where there is none
 * (a real GPU, or before the first trainer loaded the module). The module stays loaded: the
 * library holds its own reference. */
static inline void *emu_fn(const char *name) {
#if defined(AMP_CUDA_EMULATED)
    const char *m = getenv("AMPRT_CUDA_MODULE");
    void *h = m ? dlopen(m, RTLD_NOW | RTLD_NOLOAD) : NULL;
    if (!h) return NULL;
    void *sym = dlsym(h, name);
    dlclose(h);
    return sym;
#else
    (void)name;
    return NULL;
#endif
}

/* cudaGraphLaunch calls so far; -1 where that cannot be asked (a real GPU: there the
 * bit-identity is the check) */
static inline long long graph_launches(void) {
    unsigned long long (*fn)(void);
    void *sym = emu_fn("amp_emu_graph_launches");
    memcpy(&fn, &sym, sizeof fn);
    return fn ? (long long)fn() : -1;
}

/* allocating and waiting calls so far; 0 where they cannot be counted */
static inline int call_counts(unsigned long long *allocs, unsigned long long *syncs) {
    void (*fn)(unsigned long long *, unsigned long long *);
    void *sym = emu_fn("amp_emu_call_counts");
    memcpy(&fn, &sym, sizeof fn);
    if (fn) fn(allocs, syncs);
    return fn != NULL;
}

/* stream work run so far: kernels, library calls, copies, memsets (0 where it cannot be
 * counted) */
static inline int ran_counts(unsigned long long c[4]) {
    void (*fn)(unsigned long long *);
    void *sym = emu_fn("amp_emu_ran_counts");
    memcpy(&fn, &sym, sizeof fn);
    if (fn) fn(c);
    return fn != NULL;
}

#endif
