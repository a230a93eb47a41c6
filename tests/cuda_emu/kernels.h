/* Host entry points of tests/cuda_emu/kernels.cu; each returns an amp_emu_status. */
#ifndef AMP_TESTS_CUDA_EMU_KERNELS_H
#define AMP_TESTS_CUDA_EMU_KERNELS_H

int run_block_sum(const float *in, float *out, int n, int grid, int block);
int run_warp_exclusive_scan(const int *in, int *out, int grid, int block);
int run_warp_votes(const int *in, unsigned *ballot, int *any, int *all, int *maxv, int grid, int block);
int run_atomics(const float *in, int n, float *sum, int *count, int *imax, float *fmax, int grid, int block);
int run_barriers(int rounds, int *out, int grid, int block);
int run_bug_return_before_barrier(const float *in, float *out, int n, int block);
int run_bug_half_warp_shuffle(const float *in, float *out, int block);
int run_bug_one_warp_barrier(float *out);
int run_bug_missing_barrier(const float *in, float *out, int block, int fixed);
int run_half_warp_sum(const float *in, float *out, int block, int mask_bug);
int run_coords(unsigned *out, dim3 grid, dim3 block);
int run_saxpy(int n, float a, const float *x, float *y, int block, int plain);
int run_block_sum_plain(const float *in, float *out, int n, int grid, int block);
int run_block_votes(const int *in, int *count, int *all, int *any, int grid, int block, int planted);
int run_intrinsics(const float *x, const unsigned *u, float *out, unsigned *bits, int n);

#endif
