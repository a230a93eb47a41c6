/* CPU kernels of the linalg family's training ops: DetGrad.
 *
 * DetGrad(dY, X) -> dX = dY * C, C the cofactor matrix of X (adj(X)^T). det(X) inv(X)^T would
 * fail on singular matrices, where C is still defined (and nonzero at rank n-1), so C comes
 * from the LU factorisation P X = L U without dividing by pivots:
 *   adj(X) = adj(U) adj(L) adj(P^T) = det(P) adj(U) L^-1 P.
 * adj(U) of the upper triangular U is upper triangular; with d the diagonal of U,
 *   adj(U)[i][j] = (prod_{k<i} d_k) (prod_{k>j} d_k) g(i, j)   (i <= j),
 *   g(j, j) = 1,  g(i, j) = -sum_{k=i+1..j} U[i][k] (prod_{m=i+1..k-1} d_m) g(k, j),
 * a polynomial in U's entries (for invertible U it is det(U) U^-1), so a zero pivot, or
 * several, needs no special case. Everything is O(n^3) in double, one matrix per workspace
 * slot. */
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "ir/ops/linalg.h"


#define PAR_MIN ((int64_t)1 << 16)

/* cof = cofactor matrix of the n x n matrix in a (destroyed); scratch: n*n + 4n doubles. */
static void cofactors(double *a, int64_t n, double *adj, double *scratch) {
    double *pre = scratch, *suf = pre + n, *g = suf + n;
    int64_t *perm = (int64_t *)(g + n);
    const double sign = amp_cpu_lu(a, n, perm);
    pre[0] = 1.0;
    for (int64_t i = 1; i < n; i++) pre[i] = pre[i - 1] * a[(i - 1) * n + (i - 1)];
    suf[n - 1] = 1.0;
    for (int64_t j = n - 2; j >= 0; j--) suf[j] = suf[j + 1] * a[(j + 1) * n + (j + 1)];
    /* adj(U), column by column */
    for (int64_t j = 0; j < n; j++) {
        g[j] = 1.0;
        for (int64_t i = j - 1; i >= 0; i--) {
            double acc = 0.0, q = 1.0;
            for (int64_t k = i + 1; k <= j; k++) {
                acc += a[i * n + k] * q * g[k];
                q *= a[k * n + k];
            }
            g[i] = -acc;
        }
        for (int64_t i = 0; i < n; i++) adj[i * n + j] = i <= j ? pre[i] * suf[j] * g[i] : 0.0;
    }
    /* W = adj(U) L^-1, row by row in place: w L = u, solved from the last column back */
    for (int64_t r = 0; r < n; r++) {
        double *w = adj + r * n;
        for (int64_t col = n - 1; col >= 0; col--) {
            double v = w[col];
            for (int64_t k = col + 1; k < n; k++) v -= w[k] * a[k * n + col];
            w[col] = v;
        }
    }
    /* adj(X)[r][perm[k]] = det(P) W[r][k]; the cofactor matrix is its transpose, written to a */
    for (int64_t r = 0; r < n; r++)
        for (int64_t k = 0; k < n; k++) a[perm[k] * n + r] = sign * adj[r * n + k];
}

amp_status amp_cpu_det_grad(amp_kernel *k) {
    const amp_tensor *dY = k->in[0], *X = k->in[1];
    amp_tensor *dX = k->out[0];
    const int64_t n = X->dims[X->rank - 1], nn = n * n, nb = dY->numel;
    if (dX->numel == 0) return AMP_OK;
    const int64_t slots = amp_det_slots(nb), per = amp_det_slot_doubles(n, true);
    if (!k->ws || k->ws_bytes < (size_t)(slots * per) * sizeof(double))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    int nt = k->threads < 1 ? 1 : k->threads;
    if (nt > slots) nt = (int)slots;
    if (nb * nn * n < PAR_MIN) nt = 1;
    double *ws = k->ws;
    const amp_dtype dt = X->dtype;
    _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)") for (int64_t b = 0; b < nb; b++) {
        double *a = ws + (int64_t)omp_get_thread_num() * per, *adj = a + nn;
        for (int64_t i = 0; i < nn; i++) a[i] = amp_ld(dt, X->data, b * nn + i);
        cofactors(a, n, adj, adj + nn);
        const double dy = amp_ld(dt, dY->data, b);
        for (int64_t i = 0; i < nn; i++) amp_st(dt, dX->data, b * nn + i, dy * a[i]);
    }
    return AMP_OK;
}
