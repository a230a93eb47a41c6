/* GridSample, AffineGrid and RoiAlign geometry shared by their kernels (backends/cpu/sample.c)
 * and their gradient kernels (backends/cpu/sample_grad.c). */
#ifndef AMP_BACKENDS_CPU_SAMPLE_H
#define AMP_BACKENDS_CPU_SAMPLE_H

#include <stdbool.h>

#include "backends/cpu/cpu.h"

#define GS_MAX_TAPS 64 /* 4 cubic taps along each of at most 3 spatial dims */

/* cfg[0] mode (0 nearest, 1 linear, 2 cubic), cfg[1] padding (0 zeros, 1 border, 2 reflection),
 * cfg[2] align_corners; opset is the forward node's (it decides the mode names). */
amp_status amp_cpu_gs_config(amp_kernel *k, int64_t opset, int cfg[3]);
/* The taps of one output point whose grid vector is coord[r] (coord[0] is the last spatial dim's,
 * as in ONNX), for X with spatial dims sdims[r]: returns their count (at most GS_MAX_TAPS) and
 * fills off (offsets into one (n, c) plane of X), w (weights) and, when dw is not NULL,
 * dw[t * r + q], the derivative of w[t] with respect to coord[q]. wide: the grid is f64 (else the
 * coordinates are computed in f32, as the reference does for float grids). */
int amp_cpu_gs_taps(const int cfg[3], int r, const int64_t *sdims, const double *coord, bool wide, int64_t *off,
                    double *w, double *dw);

/* The normalised coordinate of pixel i of len: pixel centres spread over [-1, 1] (align_corners:
 * the centres of the corner pixels at -1 and 1; one pixel sits at 0, as in PyTorch). */
double amp_cpu_affine_base(int64_t i, int64_t len, bool align);

/* p[0] spatial_scale, p[1] the half-pixel shift (0.5 or 0), p[2] sampling_ratio, p[3] 1 for max. */
void amp_cpu_roi_params(const amp_node *n, int64_t opset, double p[4]);
/* The sampling box of one roi (x1, y1, x2, y2): b[0], b[1] start y and x; b[2], b[3] bin height
 * and width; b[4], b[5] samples per bin along y and x (<= 0: none); b[6] the avg divisor. false
 * when some of it is not finite, or a bin has over 2^53 samples along an axis (the roi's outputs
 * are then NaN and pass no gradient). */
bool amp_cpu_roi_box(const double p[4], const double roi[4], int64_t oh, int64_t ow, double b[7]);
/* Sample indices [*lo, *hi) of one bin along one axis (first sample at start + step / 2) that may
 * land inside [-1, len]; the rest of [0, grid) surely do not. */
void amp_cpu_roi_range(double start, double step, double grid, int64_t len, int64_t *lo, int64_t *hi);
/* One sample coordinate v along an axis of len pixels: false when the sample reads nothing
 * (outside [-1, len]); else the two pixels it reads and their weights. */
bool amp_cpu_roi_axis(double v, int64_t len, int64_t *ilo, int64_t *ihi, double *wlo, double *whi);
/* Output (ph, pw) of a roi with box b over the H x W plane of X at element xo: the avg or max of
 * the bin's bilinear samples. For max, *arg (when arg is not NULL) gets the plane offset of the
 * corner term that won and *argw its weight (-1: a sample that read nothing won, or none ran). */
double amp_cpu_roi_bin(amp_dtype dt, const void *xd, int64_t xo, int64_t H, int64_t W, const double *b, int64_t ph,
                       int64_t pw, bool is_max, int64_t *arg, double *argw);

#endif
