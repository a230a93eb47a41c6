/* CPU kernels of the linalg family: Einsum (pairwise contractions, each a batched GEMM through
 * OpenBLAS for floats), Det (LU with partial pivoting in double) and the window generators
 * (HannWindow, HammingWindow, BlackmanWindow).
 *
 * Einsum computes f32, f16 and bf16 in f32 (16-bit operands are widened while they are packed),
 * f64 in f64 and every integer type in int64 arithmetic that wraps as two's complement, as
 * MatMul does. The contraction order and the workspace layout come from amp_einsum_plan
 * (ir/ops/linalg.c), the same call inference sized the workspace with. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"
#include "ir/ops/linalg.h"


#define EIN_MAX_IN 32
#define NLAB 64
/* Products with fewer multiply-adds than this run as plain loops: a BLAS call costs more. */
#define BLAS_MIN 512
/* Per-matrix work under which a batch is spread over threads, one product each. */
#define MM_SMALL ((int64_t)1 << 21)
/* Elements (or multiply-adds) under which loops stay on one thread. */
#define PAR_MIN ((int64_t)1 << 16)

/* ---- Einsum ------------------------------------------------------------------------------ */

/* An operand as seen by the contraction: its distinct labels in order, and the element stride
 * of each label (indexed by label; diagonals add the strides of the repeated dims, a
 * broadcast dim has stride 0). */
typedef struct eop {
    const void *data;
    amp_dtype dt;
    int n;
    int8_t lab[NLAB];
    int64_t st[NLAB];
    uint64_t mask;
} eop;

static void op_from_input(eop *o, const amp_tensor *t, const int8_t *lab, const int64_t *ldim) {
    int64_t ts[AMP_MAX_RANK];
    amp_strides(t->rank, t->dims, ts);
    o->data = t->data;
    o->dt = t->dtype;
    o->n = 0;
    o->mask = 0;
    for (int d = 0; d < t->rank; d++) {
        int l = lab[d];
        int64_t s = t->dims[d] == 1 && ldim[l] != 1 ? 0 : ts[d];
        if (!(o->mask >> l & 1)) {
            o->lab[o->n++] = (int8_t)l;
            o->st[l] = 0;
            o->mask |= 1ull << l;
        }
        o->st[l] += s;
    }
}

/* A contiguous operand over labels lab[0..n-1]. */
static void op_contig(eop *o, const void *data, amp_dtype dt, int n, const int8_t *lab, const int64_t *ldim) {
    o->data = data;
    o->dt = dt;
    o->n = n;
    o->mask = 0;
    int64_t s = 1;
    for (int i = n - 1; i >= 0; i--) {
        o->lab[i] = lab[i];
        o->st[lab[i]] = s;
        o->mask |= 1ull << lab[i];
        s *= ldim[lab[i]];
    }
}

static int64_t prod_of(int n, const int8_t *lab, const int64_t *ldim) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= ldim[lab[i]];
    return p;
}

/* Labels of mask in the order they have in o. */
static int in_order(const eop *o, uint64_t mask, int8_t *out) {
    int n = 0;
    for (int i = 0; i < o->n; i++)
        if (mask >> o->lab[i] & 1) out[n++] = o->lab[i];
    return n;
}

/* Does o hold exactly the labels g1++g2++g3 laid out contiguously in that order? */
static bool contiguous_as(const eop *o, int n1, const int8_t *g1, int n2, const int8_t *g2, int n3, const int8_t *g3,
                          const int64_t *ldim) {
    if (n1 + n2 + n3 != o->n) return false;
    const int8_t *gs[3] = {g1, g2, g3};
    const int ns[3] = {n1, n2, n3};
    int64_t expect = 1;
    for (int g = 2; g >= 0; g--)
        for (int i = ns[g] - 1; i >= 0; i--) {
            int l = gs[g][i];
            if (!(o->mask >> l & 1)) return false;
            if (ldim[l] != 1 && o->st[l] != expect) return false;
            expect *= ldim[l];
        }
    return true;
}

/* dst, contiguous over the labels out[0..no-1] in dtype ddt, = src summed over the labels
 * sum[0..ns-1]. Size-1 dims are dropped and neighbours contiguous in src merged first. */
static void pack(int threads, const eop *src, int no, const int8_t *out, int ns, const int8_t *sum,
                 const int64_t *ldim, void *dst, amp_dtype ddt) {
    int64_t od[NLAB], os[NLAB], sd[NLAB], ss[NLAB];
    int nd = 0, nsd = 0;
    int64_t total = 1;
    for (int i = 0; i < no; i++) {
        int64_t d = ldim[out[i]], s = src->st[out[i]];
        total *= d;
        if (d == 1) continue;
        if (nd > 0 && os[nd - 1] == s * d) {
            od[nd - 1] *= d;
            os[nd - 1] = s;
        } else {
            od[nd] = d;
            os[nd++] = s;
        }
    }
    if (total == 0) return;
    bool zero = false;
    for (int i = 0; i < ns; i++) {
        int64_t d = ldim[sum[i]];
        if (d == 0) zero = true;
        if (d <= 1) continue;
        sd[nsd] = d;
        ss[nsd++] = src->st[sum[i]];
    }
    if (zero) {
        memset(dst, 0, (size_t)total * amp_dtype_size(ddt));
        return;
    }
    if (nd == 0) {
        od[0] = 1;
        os[0] = 0;
        nd = 1;
    }
    const int64_t inner = od[nd - 1], ist = os[nd - 1], rows = total / inner;
    const amp_dtype sdt = src->dt;
    const void *sp = src->data;
    const bool fl = amp_dtype_is_float(sdt);
    const size_t es = amp_dtype_size(sdt);
    const int nt = threads > 1 && total * (nsd ? 2 : 1) >= PAR_MIN ? threads : 1;
    _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)") for (int64_t r = 0; r < rows; r++) {
        int64_t base = 0, q = r;
        for (int d = nd - 2; d >= 0; d--) {
            base += (q % od[d]) * os[d];
            q /= od[d];
        }
        const int64_t o0 = r * inner;
        if (nsd == 0 && sdt == ddt) {
            /* a plain gather: copy elements of the same type */
            if (es == 4) {
                const uint32_t *s4 = sp;
                uint32_t *d4 = dst;
                for (int64_t j = 0; j < inner; j++) d4[o0 + j] = s4[base + j * ist];
            } else if (es == 8) {
                const uint64_t *s8 = sp;
                uint64_t *d8 = dst;
                for (int64_t j = 0; j < inner; j++) d8[o0 + j] = s8[base + j * ist];
            } else {
                for (int64_t j = 0; j < inner; j++)
                    memcpy((char *)dst + (size_t)(o0 + j) * es, (const char *)sp + (size_t)(base + j * ist) * es, es);
            }
            continue;
        }
        int64_t idx[NLAB];
        for (int64_t j = 0; j < inner; j++) {
            int64_t so = base + j * ist;
            if (fl) {
                double acc = 0;
                if (nsd == 0) acc = amp_ld(sdt, sp, so);
                else {
                    for (int d = 0; d < nsd; d++) idx[d] = 0;
                    for (;;) {
                        acc += amp_ld(sdt, sp, so);
                        int d = nsd - 1;
                        for (; d >= 0; d--) {
                            so += ss[d];
                            if (++idx[d] < sd[d]) break;
                            so -= ss[d] * sd[d];
                            idx[d] = 0;
                        }
                        if (d < 0) break;
                    }
                }
                amp_st(ddt, dst, o0 + j, acc);
            } else {
                uint64_t acc = 0;
                if (nsd == 0) acc = (uint64_t)amp_ldi(sdt, sp, so);
                else {
                    for (int d = 0; d < nsd; d++) idx[d] = 0;
                    for (;;) {
                        acc += (uint64_t)amp_ldi(sdt, sp, so);
                        int d = nsd - 1;
                        for (; d >= 0; d--) {
                            so += ss[d];
                            if (++idx[d] < sd[d]) break;
                            so -= ss[d] * sd[d];
                            idx[d] = 0;
                        }
                        if (d < 0) break;
                    }
                }
                amp_sti(ddt, dst, o0 + j, (int64_t)acc);
            }
        }
    }
}

/* C[b] (M x N) = op(A[b]) op(B[b]) for b < nb; A[b] is M x K (K x M when ta), B[b] K x N (N x K
 * when tb); every operand contiguous, in the compute type cdt. */
typedef struct bgemm {
    int64_t nb, M, N, K;
    int ta, tb;
    const void *a, *b;
    void *c;
} bgemm;

#define DEFINE_BGEMM_BLAS(T, SUF, GEMM, PGEMM)                                                                         \
    static void bgemm_##SUF(const amp_kernel *k, const bgemm *g) {                                                     \
        const int64_t M = g->M, N = g->N, K = g->K, lda = g->ta ? M : K, ldb = g->tb ? K : N;                          \
        const T *a = g->a, *b = g->b;                                                                                  \
        T *c = g->c;                                                                                                   \
        int nthr = amp_cpu_threads(k);                                                                                      \
        if (nthr > g->nb) nthr = (int)g->nb;                                                                           \
        if (nthr < 2 || M * N * K >= MM_SMALL) {                                                                       \
            for (int64_t i = 0; i < g->nb; i++)                                                                        \
                PGEMM(amp_cpu_threads(k), g->ta, g->tb, M, N, K, (T)1, a + i * M * K, lda, b + i * K * N, ldb, (T)0,        \
                      c + i * M * N, N);                                                                               \
            return;                                                                                                    \
        }                                                                                                              \
        amp_cpu_blas_threads(1);                                                                                       \
        _Pragma("omp parallel for num_threads(nthr) schedule(static)") for (int64_t i = 0; i < g->nb; i++)             \
            GEMM(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,  \
                 (int)K, (T)1, a + i * M * K, (int)lda, b + i * K * N, (int)ldb, (T)0, c + i * M * N, (int)N);         \
    }

DEFINE_BGEMM_BLAS(float, f32, cblas_sgemm, amp_cpu_sgemm)
DEFINE_BGEMM_BLAS(double, f64, cblas_dgemm, amp_cpu_dgemm)

/* Small products (and every integer one) as loops: rows of all batches spread over threads.
 * Floats accumulate in double, integers in wrapping uint64. */
#define DEFINE_BGEMM_LOOP(T, ACC, SUF)                                                                                 \
    static void loop_##SUF(const amp_kernel *k, const bgemm *g) {                                                      \
        const int64_t M = g->M, N = g->N, K = g->K, rows = g->nb * M;                                                  \
        const int64_t sam = g->ta ? 1 : K, sak = g->ta ? M : 1, sbk = g->tb ? 1 : N, sbn = g->tb ? K : 1;              \
        const T *a = g->a, *b = g->b;                                                                                  \
        T *c = g->c;                                                                                                   \
        const int par = amp_cpu_threads(k) > 1 && rows > 1 && rows * N * (K ? K : 1) >= PAR_MIN;                           \
        _Pragma("omp parallel for num_threads(amp_cpu_threads(k)) schedule(static) if (par)") for (int64_t r = 0; r < rows; \
                                                                                              r++) {                   \
            const int64_t bi = r / M, m = r % M;                                                                       \
            const T *ar = a + bi * M * K + m * sam;                                                                    \
            const T *bb = b + bi * K * N;                                                                              \
            for (int64_t n = 0; n < N; n++) {                                                                          \
                ACC acc = 0;                                                                                           \
                for (int64_t i = 0; i < K; i++) acc += (ACC)ar[i * sak] * (ACC)bb[i * sbk + n * sbn];                  \
                c[r * N + n] = (T)acc;                                                                                 \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_BGEMM_LOOP(float, double, f32)
DEFINE_BGEMM_LOOP(double, double, f64)

static void loop_i64(const amp_kernel *k, const bgemm *g) {
    const int64_t M = g->M, N = g->N, K = g->K, rows = g->nb * M;
    const int64_t sam = g->ta ? 1 : K, sak = g->ta ? M : 1, sbk = g->tb ? 1 : N, sbn = g->tb ? K : 1;
    const int64_t *a = g->a, *b = g->b;
    int64_t *c = g->c;
    const int par = amp_cpu_threads(k) > 1 && rows > 1 && rows * N * (K ? K : 1) >= PAR_MIN;
    _Pragma("omp parallel for num_threads(amp_cpu_threads(k)) schedule(static) if (par)") for (int64_t r = 0; r < rows;
                                                                                          r++) {
        const int64_t bi = r / M, m = r % M;
        const int64_t *ar = a + bi * M * K + m * sam;
        const int64_t *bb = b + bi * K * N;
        for (int64_t n = 0; n < N; n++) {
            uint64_t acc = 0;
            for (int64_t i = 0; i < K; i++) acc += (uint64_t)ar[i * sak] * (uint64_t)bb[i * sbk + n * sbn];
            c[r * N + n] = (int64_t)acc;
        }
    }
}

/* Operand X of one pairwise product as a [batch, R, C] matrix over the label groups b, r, c:
 * X itself when it is laid out so (*t = 0) or as [batch, C, R] (*t = 1) in the compute type, else
 * packed into pk (summing the labels in sum_mask, which only X has) with *t = 0. */
static const void *as_matrix(int nt, const eop *X, uint64_t sum_mask, int nb, const int8_t *b, int nr,
                             const int8_t *r, int nc, const int8_t *c, const int64_t *ldim, char *pk, amp_dtype cdt,
                             int *t) {
    *t = 0;
    if (X->dt == cdt && contiguous_as(X, nb, b, nr, r, nc, c, ldim)) return X->data;
    if (X->dt == cdt && contiguous_as(X, nb, b, nc, c, nr, r, ldim)) {
        *t = 1;
        return X->data;
    }
    int8_t all[NLAB], so[NLAB];
    memcpy(all, b, (size_t)nb);
    memcpy(all + nb, r, (size_t)nr);
    memcpy(all + nb + nr, c, (size_t)nc);
    int nso = in_order(X, sum_mask, so);
    pack(nt, X, nb + nr + nc, all, nso, so, ldim, pk, cdt);
    return pk;
}

static void run_bgemm(const amp_kernel *k, amp_dtype cdt, const bgemm *g) {
    const int64_t M = g->M, N = g->N, K = g->K;
    if (g->nb * M * N == 0) return;
    if (K == 0) {
        memset(g->c, 0, (size_t)(g->nb * M * N) * amp_dtype_size(cdt));
        return;
    }
    const bool blas = M * N * K >= BLAS_MIN && M < INT32_MAX && N < INT32_MAX && K < INT32_MAX;
    switch (cdt) {
    case AMP_F32: blas ? bgemm_f32(k, g) : loop_f32(k, g); break;
    case AMP_F64: blas ? bgemm_f64(k, g) : loop_f64(k, g); break;
    default: loop_i64(k, g); break;
    }
}

static int popcount64(uint64_t m) {
    int n = 0;
    for (; m; m &= m - 1) n++;
    return n;
}

/* Can the output order be read as batch labels, then one operand's own labels, then the
 * other's? *swap: the second operand's labels come first. */
static bool output_split(const int8_t *olab, int orank, uint64_t bm, uint64_t am, uint64_t cm, bool *swap) {
    int nb = popcount64(bm), i = 0;
    for (; i < nb; i++)
        if (!(bm >> olab[i] & 1)) return false;
    if (i == orank) {
        *swap = false;
        return true;
    }
    *swap = (cm >> olab[i] & 1) != 0;
    uint64_t first = *swap ? cm : am, second = *swap ? am : cm;
    int nf = popcount64(first);
    for (int j = 0; j < nf; j++, i++)
        if (i >= orank || !(first >> olab[i] & 1)) return false;
    for (; i < orank; i++)
        if (!(second >> olab[i] & 1)) return false;
    return true;
}

/* The labels of every operand dim and of the output, and every label's size, from the equation
 * and the inputs' dims; a message on the context on failure. */
static amp_status einsum_labels(const amp_kernel *k, int8_t (*lab)[AMP_MAX_RANK], int8_t *olab, int *orank,
                                int64_t *ldim) {
    const int nin = k->nin;
    int ranks[EIN_MAX_IN];
    int64_t dims[EIN_MAX_IN][AMP_MAX_RANK];
    for (int i = 0; i < nin; i++) {
        ranks[i] = k->in[i]->rank;
        memcpy(dims[i], k->in[i]->dims, sizeof dims[i]);
    }
    char msg[256];
    int ell;
    amp_status s;
    if ((s = amp_einsum_parse(amp_attr_str(k->n, "equation", NULL), nin, ranks, lab, olab, orank, &ell, msg,
                              sizeof msg)) ||
        (s = amp_einsum_sizes(nin, ranks, (const int64_t(*)[AMP_MAX_RANK])dims, (const int8_t(*)[AMP_MAX_RANK])lab,
                              ldim, msg, sizeof msg)))
        return amp_kernel_fail(k, s, "%s", msg);
    return AMP_OK;
}

/* The intermediate results of the pairwise contractions, in the compute type (f32 for f32, f16
 * and bf16; 8 bytes otherwise), as amp_einsum_plan lays them out. */
amp_status amp_cpu_ws_einsum(const amp_kernel *k, size_t *bytes) {
    const int nin = k->nin;
    if (nin < 1 || nin > EIN_MAX_IN) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "bad input count");
    const amp_dtype dt = k->in[0]->dtype;
    int8_t lab[EIN_MAX_IN][AMP_MAX_RANK], olab[AMP_MAX_RANK];
    int orank;
    int64_t ldim[NLAB];
    amp_status s = einsum_labels(k, lab, olab, &orank, ldim);
    if (s) return s;
    uint64_t omask = 0, mask[EIN_MAX_IN];
    for (int d = 0; d < orank; d++) omask |= 1ull << olab[d];
    for (int i = 0; i < nin; i++) {
        mask[i] = 0;
        for (int d = 0; d < k->in[i]->rank; d++) mask[i] |= 1ull << lab[i][d];
    }
    int pair[EIN_MAX_IN][2];
    uint64_t keep[EIN_MAX_IN];
    int64_t res_off[EIN_MAX_IN], pack_off;
    const int64_t elems = amp_einsum_plan(nin, mask, omask, ldim, pair, keep, res_off, &pack_off);
    const size_t esize = dt == AMP_F32 || dt == AMP_F16 || dt == AMP_BF16 ? 4 : 8;
    if (elems < 0) return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "the intermediate results of the contraction overflow");
    return amp_cpu_ws_elems(k, elems, esize, bytes);
}

amp_status amp_cpu_einsum(amp_kernel *k) {
    const int nin = k->nin;
    amp_tensor *Y = k->out[0];
    if (nin < 1 || nin > EIN_MAX_IN) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "bad input count %d", nin);
    const amp_dtype dt = k->in[0]->dtype;
    const amp_dtype cdt = dt == AMP_F32 || dt == AMP_F16 || dt == AMP_BF16 ? AMP_F32
                          : dt == AMP_F64                                  ? AMP_F64
                                                                           : AMP_I64;
    const size_t esize = amp_dtype_size(cdt);
    int8_t lab[EIN_MAX_IN][AMP_MAX_RANK], olab[AMP_MAX_RANK];
    int orank;
    int64_t ldim[NLAB];
    amp_status s = einsum_labels(k, lab, olab, &orank, ldim);
    if (s) return s;
    if (Y->numel == 0) return AMP_OK;
    uint64_t omask = 0, mask[EIN_MAX_IN];
    for (int d = 0; d < orank; d++) omask |= 1ull << olab[d];
    eop ops[2 * EIN_MAX_IN];
    for (int i = 0; i < nin; i++) {
        op_from_input(&ops[i], k->in[i], lab[i], ldim);
        mask[i] = ops[i].mask;
    }
    int pair[EIN_MAX_IN][2];
    uint64_t keep[EIN_MAX_IN];
    int64_t res_off[EIN_MAX_IN], pack_off;
    const int64_t elems = amp_einsum_plan(nin, mask, omask, ldim, pair, keep, res_off, &pack_off);
    if (elems < 0 || (size_t)elems * esize > k->ws_bytes || (elems > 0 && !k->ws))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    char *ws = k->ws;
    const int nt = amp_cpu_threads(k);
    bool out_done = false;
    for (int st = 0; st < nin - 1; st++) {
        const eop *A = &ops[pair[st][0]], *B = &ops[pair[st][1]];
        const uint64_t kp = keep[st];
        uint64_t bm = A->mask & B->mask & kp, km = A->mask & B->mask & ~kp;
        uint64_t mm = A->mask & ~B->mask & kp, nm = B->mask & ~A->mask & kp;
        int8_t bo[NLAB], mo[NLAB], no[NLAB], ko[NLAB];
        int nbo, nmo, nno, nko;
        const bool last = st == nin - 2;
        bool swap = false, direct_out = false;
        if (last && output_split(olab, orank, bm, mm, nm, &swap)) {
            if (swap) {
                const eop *t = A;
                A = B;
                B = t;
                uint64_t tm = mm;
                mm = nm;
                nm = tm;
            }
            /* batch, M and N in the output's order: the product lands in Y as it is */
            nbo = nmo = nno = 0;
            for (int d = 0; d < orank; d++) {
                int l = olab[d];
                if (bm >> l & 1) bo[nbo++] = (int8_t)l;
                else if (mm >> l & 1) mo[nmo++] = (int8_t)l;
                else no[nno++] = (int8_t)l;
            }
            direct_out = Y->dtype == cdt;
        } else {
            nbo = in_order(A, bm, bo);
            nmo = in_order(A, mm, mo);
            nno = in_order(B, nm, no);
        }
        nko = in_order(A, km, ko);
        bgemm g = {.nb = prod_of(nbo, bo, ldim), .M = prod_of(nmo, mo, ldim), .N = prod_of(nno, no, ldim),
                   .K = prod_of(nko, ko, ldim)};
        char *pk = ws + (size_t)pack_off * esize;
        /* A as [batch, M, K] and B as [batch, K, N], each used in place when already laid out so
         * (or transposed) in the compute type */
        g.a = as_matrix(nt, A, A->mask & ~B->mask & ~kp, nbo, bo, nmo, mo, nko, ko, ldim, pk, cdt, &g.ta);
        pk += (size_t)(g.nb * g.M * g.K) * esize;
        g.b = as_matrix(nt, B, B->mask & ~A->mask & ~kp, nbo, bo, nko, ko, nno, no, ldim, pk, cdt, &g.tb);
        g.c = direct_out ? Y->data : ws + (size_t)res_off[st] * esize;
        run_bgemm(k, cdt, &g);
        int8_t rl[NLAB];
        int nr = 0;
        memcpy(rl, bo, (size_t)nbo);
        nr += nbo;
        memcpy(rl + nr, mo, (size_t)nmo);
        nr += nmo;
        memcpy(rl + nr, no, (size_t)nno);
        nr += nno;
        op_contig(&ops[nin + st], g.c, cdt, nr, rl, ldim);
        out_done = direct_out;
    }
    if (!out_done) {
        const eop *F = &ops[nin == 1 ? 0 : 2 * nin - 2];
        int8_t so[NLAB];
        int nso = in_order(F, F->mask & ~omask, so);
        pack(nt, F, orank, olab, nso, so, ldim, Y->data, Y->dtype);
    }
    return AMP_OK;
}

/* ---- Det ---------------------------------------------------------------------------------- */

/* LU factorisation with partial pivoting of the n x n row-major matrix a, in place: L (unit
 * diagonal, below) and U (on and above the diagonal) with L U = P A, where row i of P A is row
 * perm[i] of A. A zero pivot column is left as it is (as LAPACK's getrf does), so singular
 * matrices factor too, with a zero on U's diagonal. Returns det(P), +1 or -1. Also used by
 * DetGrad (backends/cpu/linalg_grad.c). */
int amp_cpu_lu(double *a, int64_t n, int64_t *perm) {
    int sign = 1;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t c = 0; c < n; c++) {
        int64_t p = c;
        double best = fabs(a[c * n + c]);
        for (int64_t r = c + 1; r < n; r++) {
            double v = fabs(a[r * n + c]);
            if (v > best) {
                best = v;
                p = r;
            }
        }
        if (p != c) {
            for (int64_t j = 0; j < n; j++) {
                double t = a[c * n + j];
                a[c * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
            int64_t t = perm[c];
            perm[c] = perm[p];
            perm[p] = t;
            sign = -sign;
        }
        const double piv = a[c * n + c];
        if (piv == 0.0) continue;
        for (int64_t r = c + 1; r < n; r++) {
            double f = a[r * n + c] / piv;
            a[r * n + c] = f;
            if (f == 0.0) continue;
            double *ar = a + r * n;
            const double *ac = a + c * n;
            for (int64_t j = c + 1; j < n; j++) ar[j] -= f * ac[j];
        }
    }
    return sign;
}

/* Det and DetGrad factor up to amp_det_slots matrices at once, one slot of
 * amp_det_slot_doubles each. Det reads X (batch in Y); DetGrad reads (dY, X). */
amp_status amp_cpu_ws_det(const amp_kernel *k, size_t *bytes) {
    const bool grad = k->n->op == AMP_OP_DET_GRAD;
    const amp_tensor *X = k->in[grad ? 1 : 0];
    const int64_t nb = grad ? k->in[0]->numel : k->out[0]->numel, n = X->dims[X->rank - 1];
    const int64_t slots = amp_det_slots(nb);
    *bytes = 0;
    if (slots < 1 || n == 0) return AMP_OK;
    if (n > ((int64_t)1 << 24)) return amp_kernel_fail(k, AMP_ERR_LIMIT, "matrices are too large");
    const int64_t per = amp_det_slot_doubles(n, grad);
    if (per > (int64_t)(SIZE_MAX / 16) / slots / (int64_t)sizeof(double))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace overflows");
    *bytes = (size_t)(slots * per) * sizeof(double);
    return AMP_OK;
}

amp_status amp_cpu_det(amp_kernel *k) {
    const amp_tensor *X = k->in[0];
    amp_tensor *Y = k->out[0];
    const int64_t n = X->dims[X->rank - 1], nb = Y->numel, nn = n * n;
    if (nb == 0) return AMP_OK;
    if (n == 0) {
        for (int64_t b = 0; b < nb; b++) amp_st(Y->dtype, Y->data, b, 1.0);
        return AMP_OK;
    }
    const int64_t slots = amp_det_slots(nb), per = amp_det_slot_doubles(n, false);
    if (!k->ws || k->ws_bytes < (size_t)(slots * per) * sizeof(double))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    int nt = amp_cpu_threads(k);
    if (nt > slots) nt = (int)slots;
    if (nb * nn * n < PAR_MIN) nt = 1;
    double *ws = k->ws;
    const amp_dtype dt = X->dtype;
    _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)") for (int64_t b = 0; b < nb; b++) {
        double *a = ws + (int64_t)omp_get_thread_num() * per;
        int64_t *perm = (int64_t *)(a + nn);
        if (dt == AMP_F64) memcpy(a, (const double *)X->data + b * nn, sizeof(double) * (size_t)nn);
        else if (dt == AMP_F32)
            for (int64_t i = 0; i < nn; i++) a[i] = ((const float *)X->data)[b * nn + i];
        else
            for (int64_t i = 0; i < nn; i++) a[i] = amp_ld(dt, X->data, b * nn + i);
        double det = amp_cpu_lu(a, n, perm);
        for (int64_t i = 0; i < n; i++) det *= a[i * n + i];
        amp_st(Y->dtype, Y->data, b, det);
    }
    return AMP_OK;
}

/* ---- windows ------------------------------------------------------------------------------ */

/* w[i] = a0 - a1 cos(2 pi i / N) + a2 cos(4 pi i / N), N the size (periodic) or size - 1
 * (symmetric), in double, rounded once to the output type; integer outputs truncate as Cast
 * does. A symmetric window of size 1 divides 0 by 0, as the ONNX function does: NaN (0 in
 * integer outputs, where NaN has no value). */
amp_status amp_cpu_window(amp_kernel *k) {
    amp_tensor *Y = k->out[0];
    double a0, a1, a2;
    switch (k->n->op) {
    case AMP_OP_HANN_WINDOW: a0 = 0.5, a1 = 0.5, a2 = 0.0; break;
    case AMP_OP_HAMMING_WINDOW: a0 = 25.0 / 46.0, a1 = 21.0 / 46.0, a2 = 0.0; break;
    case AMP_OP_BLACKMAN_WINDOW: a0 = 0.42, a1 = 0.5, a2 = 0.08; break;
    default: return amp_kernel_fail(k, AMP_ERR_INTERNAL, "not a window op");
    }
    const int64_t size = Y->dims[0];
    const bool periodic = amp_attr_int(k->n, "periodic", 1) != 0;
    const double N = (double)(periodic ? size : size - 1);
    const double pi2 = 6.283185307179586476925286766559;
    const bool fl = amp_dtype_is_float(Y->dtype);
    for (int64_t i = 0; i < size; i++) {
        double v;
        if (N == 0.0) v = NAN;
        else {
            double x = pi2 * (double)i / N;
            v = a0 - a1 * cos(x) + a2 * cos(2.0 * x);
        }
        if (fl) amp_st(Y->dtype, Y->data, i, v);
        else amp_sti(Y->dtype, Y->data, i, isnan(v) ? 0 : (int64_t)v);
    }
    return AMP_OK;
}
