/* What the CUDA training tests (tests/cuda/test_lenet.c, test_models.c) share: comparing two
 * trainers' parameters through the public API. Include after amprt/amprt.h; static only. */
#ifndef AMP_TESTS_CUDA_CUDA_TRAIN_H
#define AMP_TESTS_CUDA_CUDA_TRAIN_H

#include <math.h>
#include <string.h>

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

#endif
