/* libFuzzer target: model bytes -> load -> verify (link, type check) -> infer shapes -> plan ->
 * one run on small random inputs, and an autocast conversion of whatever loads. Limits keep one
 * input cheap: symbolic dims are 1 to 3, inputs hold at most FUZZ_MAX_INPUT elements in all,
 * plans with an arena over FUZZ_MAX_ARENA are not run, and the context's limits bound every
 * tensor. Input values come from a fixed seed, so a finding replays exactly. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "amprt/amprt.h"

#define FUZZ_MAX_INPUTS 16
#define FUZZ_MAX_INPUT ((int64_t)1 << 14)
#define FUZZ_MAX_ARENA ((size_t)64 << 20)
#define FUZZ_MAX_BINDINGS 32

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Small values, most of them valid as indices and counts: integers in [-1, 3], floats in
 * [-2, 2], booleans either way. */
static void fill_random(amp_tensor *t, uint64_t *seed) {
    unsigned char *p = amp_tensor_data(t);
    int64_t n = amp_tensor_numel(t);
    amp_dtype dt = amp_tensor_dtype(t);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = next_rand(seed);
        int64_t iv = (int64_t)(r % 5) - 1;
        float fv = (float)((double)(r >> 11) / (double)(1ull << 53) * 4.0 - 2.0);
        switch (dt) {
        case AMP_F32: memcpy(p + 4 * i, &fv, 4); break;
        case AMP_F64: {
            double d = fv;
            memcpy(p + 8 * i, &d, 8);
            break;
        }
        case AMP_F16: { /* a half in [-2, 2): sign, exponent 13..15, random mantissa */
            uint16_t h = (uint16_t)((r & 1) << 15 | (13 + (r >> 1) % 3) << 10 | ((r >> 3) & 0x3ff));
            memcpy(p + 2 * i, &h, 2);
            break;
        }
        case AMP_BF16: {
            uint32_t u;
            memcpy(&u, &fv, 4);
            uint16_t h = (uint16_t)(u >> 16);
            memcpy(p + 2 * i, &h, 2);
            break;
        }
        case AMP_BOOL: p[i] = (unsigned char)(r & 1); break;
        case AMP_I64: memcpy(p + 8 * i, &iv, 8); break;
        case AMP_I32: case AMP_U32: {
            int32_t v = (int32_t)iv;
            memcpy(p + 4 * i, &v, 4);
            break;
        }
        case AMP_I16: case AMP_U16: {
            int16_t v = (int16_t)iv;
            memcpy(p + 2 * i, &v, 2);
            break;
        }
        case AMP_U64: memcpy(p + 8 * i, &iv, 8); break;
        default: p[i] = (unsigned char)iv; break; /* u8, i8 */
        }
    }
}

/* the value a symbolic dim is bound to: 1 to 3, the same for every use of one name */
static int64_t dim_value(const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return 1 + (int64_t)(h % 3);
}

/* Make one random tensor per graph input; false when an input is too large or has no shape. */
static bool make_inputs(amp_context *ctx, amp_model *m, int n, const char **names, amp_tensor **in,
                        amp_dim_binding *b, int *nb) {
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int64_t total = 0;
    *nb = 0;
    for (int i = 0; i < n; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        if (amp_model_input_info(m, i, &vi) || vi.rank < 0 || vi.rank > AMP_MAX_RANK) return false;
        int64_t dims[AMP_MAX_RANK], numel = 1;
        for (int k = 0; k < vi.rank; k++) {
            dims[k] = vi.dims[k] >= 0 ? vi.dims[k] : vi.dim_names[k] ? dim_value(vi.dim_names[k]) : 1;
            if (vi.dim_names[k] && vi.dims[k] < 0) {
                bool seen = false;
                for (int j = 0; j < *nb; j++) seen |= strcmp(b[j].name, vi.dim_names[k]) == 0;
                if (!seen && *nb < FUZZ_MAX_BINDINGS) b[(*nb)++] = (amp_dim_binding){vi.dim_names[k], dims[k]};
            }
            if (dims[k] > FUZZ_MAX_INPUT) return false;
            numel *= dims[k];
            if (numel > FUZZ_MAX_INPUT) return false;
        }
        total += numel;
        if (total > FUZZ_MAX_INPUT) return false;
        names[i] = vi.name;
        if (amp_tensor_create(ctx, vi.dtype, vi.rank, dims, &in[i])) return false;
        fill_random(in[i], &seed);
    }
    return true;
}

/* Plan for the inputs' shapes and, when the arena is modest, run once: the kernels' own checks
 * (index ranges, shape agreement, dtype support) meet whatever the model asks of them. */
static void plan_and_run(amp_context *ctx, amp_model *m, amp_session *s) {
    int n = amp_model_input_count(m), nout = amp_model_output_count(m);
    if (n > FUZZ_MAX_INPUTS || nout < 1 || nout > FUZZ_MAX_INPUTS) return;
    const char *names[FUZZ_MAX_INPUTS] = {0}, *onames[FUZZ_MAX_INPUTS] = {0};
    amp_tensor *in[FUZZ_MAX_INPUTS] = {0}, *out[FUZZ_MAX_INPUTS] = {0};
    amp_dim_binding b[FUZZ_MAX_BINDINGS];
    int nb = 0;
    if (make_inputs(ctx, m, n, names, in, b, &nb)) {
        amp_plan_stats ps = {.struct_size = sizeof ps};
        bool ok = true;
        for (int i = 0; i < nout; i++) {
            amp_value_info vi = {.struct_size = sizeof vi};
            ok &= amp_model_output_info(m, i, &vi) == AMP_OK;
            onames[i] = vi.name;
        }
        if (ok && amp_session_plan(s, nb, b, &ps) == AMP_OK && ps.arena_bytes <= FUZZ_MAX_ARENA &&
            ps.persistent_bytes <= FUZZ_MAX_ARENA)
            amp_session_run(s, n, names, (const amp_tensor *const *)in, nout, onames, out);
    }
    for (int i = 0; i < FUZZ_MAX_INPUTS; i++) {
        amp_tensor_destroy(in[i]);
        amp_tensor_destroy(out[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    amp_context_desc d = {.struct_size = sizeof d, .max_tensor_elements = 1 << 20, .max_file_bytes = 1 << 22,
                          .max_nodes = 4096};
    amp_context *ctx = NULL;
    if (amp_context_create(&d, &ctx)) return 0;
    amp_model *m = NULL, *c = NULL;
    amp_session *s = NULL;
    if (amp_model_load_buffer(ctx, data, size, NULL, &m) == AMP_OK) {
        amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16};
        amp_model_autocast(m, &o, &c, NULL);
        /* cpu-check: NaN-filled outputs and poisoned dead arena bytes make kernel mistakes show */
        amp_session_options so = {.struct_size = sizeof so, .backend = "cpu-check", .threads = 1};
        if (amp_session_create(m, &so, &s) == AMP_OK) plan_and_run(ctx, m, s);
    }
    amp_session_destroy(s);
    amp_model_destroy(c);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    return 0;
}
