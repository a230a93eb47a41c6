/* A small test harness for the CUDA backend's tests: no Criterion, so the same test programs
 * run here on the emulator and, built with nvcc, on a lent GPU machine that has no Criterion.
 *
 *     static void t_relu(void) { ... CT_CHECK(err < 1e-6, "relu f32: rel L2 %g", err); }
 *     static const ct_case cases[] = {{"relu_f32", t_relu}, {NULL, NULL}};
 *     int main(int argc, char **argv) { return ct_main(argc, argv, cases); }
 *
 * Each case prints PASS, FAIL (file:line, the condition and the message) or SKIP. A case fails
 * at its first failed check (the check returns from the case). ct_main returns 0 when no case
 * failed, 1 when one did, and 77 (CTest's SKIP_RETURN_CODE) when every case was skipped, so a
 * run without a device never claims a pass. argv[1], when given, runs only the cases whose name
 * contains it. */
#ifndef AMP_TESTS_CUDA_CUDA_TEST_H
#define AMP_TESTS_CUDA_CUDA_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

typedef struct ct_case {
    const char *name;
    void (*fn)(void);
} ct_case;

typedef struct ct_state {
    int failed; /* the running case failed */
    int skipped;
    int checks;
} ct_state;

static ct_state ct_st;

static inline void ct_fail(const char *file, int line, const char *cond, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static inline void ct_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: check failed: %s: ", file, line, cond);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    ct_st.failed = 1;
}

/* a check that fails the case (and returns from it) with a message */
#define CT_CHECK(cond, ...)                                        \
    do {                                                           \
        ct_st.checks++;                                            \
        if (!(cond)) {                                             \
            ct_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);       \
            return;                                                \
        }                                                          \
    } while (0)

/* marks the running case skipped (no device, say) and returns from it */
#define CT_SKIP(...)                       \
    do {                                   \
        fprintf(stderr, "  skip: ");       \
        fprintf(stderr, __VA_ARGS__);      \
        fputc('\n', stderr);               \
        ct_st.skipped = 1;                 \
        return;                            \
    } while (0)

/* Is there a device to test on (the emulator's always is)? A test whose setup needs the
 * device asks first and, without one, goes straight to ct_main, which then skips every case. */
static inline int ct_have_device(void) {
    int ndev = 0;
    cudaError_t de = cudaGetDeviceCount(&ndev);
    if (de != cudaSuccess) cudaGetLastError();
    return de == cudaSuccess && ndev > 0;
}

static inline int ct_main(int argc, char **argv, const ct_case *cases) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    /* no device (a GPU build on a machine without one): nothing can pass, so nothing claims to */
    if (!ct_have_device()) {
        printf("SKIP all cases: no CUDA device\n");
        return 77;
    }
    int run = 0, failed = 0, skipped = 0;
    for (const ct_case *c = cases; c->name; c++) {
        if (filter && !strstr(c->name, filter)) continue;
        ct_st.failed = ct_st.skipped = 0;
        int before = ct_st.checks;
        c->fn();
        run++;
        if (ct_st.failed) {
            failed++;
            printf("FAIL %s\n", c->name);
        } else if (ct_st.skipped) {
            skipped++;
            printf("SKIP %s\n", c->name);
        } else if (ct_st.checks == before) {
            /* a case that checked nothing proves nothing */
            failed++;
            printf("FAIL %s (no checks ran)\n", c->name);
        } else {
            printf("PASS %s (%d checks)\n", c->name, ct_st.checks - before);
        }
        fflush(stdout);
    }
    printf("%d cases: %d passed, %d failed, %d skipped\n", run, run - failed - skipped, failed, skipped);
    if (failed || run == 0) return 1;
    return skipped == run ? 77 : 0;
}

/* ---- numerics ------------------------------------------------------------------------------- */

/* ||a - ref|| / ||ref|| over n values (ref must not be all zeros: tests never check zeros) */
static inline double ct_rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

/* the largest |a - ref| over n values, and whether every value is finite */
static inline double ct_max_abs(const float *a, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (d != d) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

/* deterministic uniform values in [lo, hi), never exactly zero */
static inline void ct_fill(float *x, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        float u = (float)((s >> 40) & 0xFFFFFF) / 16777216.0f;
        float v = lo + (hi - lo) * u;
        x[i] = v == 0.0f ? (hi - lo) * 1e-3f : v;
    }
}

#endif
