/* ReduceSum and ReduceMean (kernels_reduce.h: amp_k_reduce_sum). The geometry is collapsed on the
 * host into kept and reduced dims (amp_k_s2s_plan); each output element is summed in double in a
 * fixed order: a thread per output element when few elements are summed or the outputs are
 * many, else a block per output element whose threads stride over the reduced positions and
 * then reduce in a fixed tree (amp_k_block_reduce). */
#include "backends/cuda/kernels_dev.h"
#include "backends/cuda/kernels_reduce.h"

/* x's offset of index j over collapsed dims (row-major) with x's strides; one dim (the common
 * case: a contiguous or evenly strided run) without a division */
__device__ __forceinline__ int64_t amp_k_red_off(const int64_t *dims, const int64_t *str, int nd, int64_t j) {
    if (nd == 1) return j * str[0];
    int64_t off = 0;
    for (int d = nd - 1; d > 0; d--) {
        const int64_t q = j / dims[d];
        off += (j - q * dims[d]) * str[d];
        j = q;
    }
    return off + j * str[0];
}

template <int T>
__global__ void amp_k_red_thread(amp_k_s2s g, const void *x, void *y, double div) {
    AMP_K_FOR(j, g.m) {
        const int64_t base = amp_k_red_off(g.kd, g.ks, g.nk, j);
        double s = 0.0;
        for (int64_t t = 0; t < g.r; t++) s += (double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t));
        amp_k_st(y, T, j, (float)(s / div));
    }
}

template <int T>
__global__ void amp_k_red_block(amp_k_s2s g, const void *x, void *y, double div) {
    __shared__ double sh[32];
    for (int64_t j = blockIdx.x; j < g.m; j += gridDim.x) {
        const int64_t base = amp_k_red_off(g.kd, g.ks, g.nk, j);
        double s = 0.0;
        for (int64_t t = threadIdx.x; t < g.r; t += blockDim.x)
            s += (double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t));
        s = amp_k_block_reduce<amp_k_sum_op>(s, sh);
        if (threadIdx.x == 0) amp_k_st(y, T, j, (float)(s / div));
    }
}

typedef void (*amp_k_red_fn)(amp_k_s2s, const void *, void *, double);
static const amp_k_red_fn amp_k_red_threads[AMP_K_DTYPE_COUNT] = {amp_k_red_thread<AMP_K_F32>,
                                                                  amp_k_red_thread<AMP_K_F16>,
                                                                  amp_k_red_thread<AMP_K_BF16>};
static const amp_k_red_fn amp_k_red_blocks[AMP_K_DTYPE_COUNT] = {amp_k_red_block<AMP_K_F32>, amp_k_red_block<AMP_K_F16>,
                                                                 amp_k_red_block<AMP_K_BF16>};

extern "C" cudaError_t amp_k_reduce_sum(cudaStream_t stream, amp_k_dtype dt, const amp_k_s2s *g, const void *x,
                                        void *y, double div) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || !g) return cudaErrorInvalidValue;
    if (g->m <= 0) return cudaSuccess;
    if (g->r >= 32 && g->m < 64 * 1024)
        return AMP_CUDA_LAUNCH(amp_k_red_blocks[dt], amp_k_blocks(g->m, 1), amp_k_row_threads(g->r), 0, stream, *g, x,
                               y, div);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_red_threads[dt], amp_k_blocks(g->m, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 *g, x, y, div);
}
