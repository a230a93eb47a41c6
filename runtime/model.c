/* Models: load (file or buffer), save, and describe inputs and outputs. */
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

amp_status amp_model_wrap(amp_context *ctx, amp_graph *g, amp_model **out) {
    amp_model *m = amp_calloc(ctx, 1, sizeof *m);
    if (!m) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    m->ctx = ctx;
    m->g = g;
    m->hash = amp_graph_hash(g);
    *out = m;
    return AMP_OK;
}

static amp_status finish_load(amp_context *ctx, amp_graph *g, amp_model **out) {
    amp_status s = amp_model_wrap(ctx, g, out);
    if (s) amp_graph_destroy(g);
    return s;
}

amp_status amp_model_load_buffer(amp_context *ctx, const void *data, size_t size, const char *base_dir,
                                 amp_model **out) {
    if (!ctx || !out) return AMP_ERR_INVALID_ARG;
    if ((int64_t)size > ctx->max_file_bytes)
        return amp_seterr(ctx, AMP_ERR_LIMIT, "model of %zu bytes is over the limit", size);
    amp_graph *g;
    amp_status s = amp_onnx_import(ctx, data, size, base_dir, &g);
    if (s) return s;
    return finish_load(ctx, g, out);
}

amp_status amp_model_load(amp_context *ctx, const char *path, amp_model **out) {
    if (!ctx || !path || !out) return AMP_ERR_INVALID_ARG;
    char *dir = NULL;
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t n = (size_t)(slash - path);
        dir = amp_alloc(ctx, n + 2);
        if (!dir) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
        memcpy(dir, path, n);
        dir[n] = 0;
        if (n == 0) strcpy(dir, "/");
    }
    amp_graph *g;
    amp_status s = amp_onnx_import_file(ctx, path, dir ? dir : ".", &g);
    amp_dealloc(ctx, dir);
    if (s) {
        /* name the file in the message */
        char msg[sizeof ctx->err];
        snprintf(msg, sizeof msg, "%s", ctx->err);
        amp_seterr(ctx, s, "%s: %s", path, msg);
        return s;
    }
    return finish_load(ctx, g, out);
}

amp_status amp_model_save(amp_model *m, const char *path) {
    if (!m || !path) return AMP_ERR_INVALID_ARG;
    void *data = NULL;
    size_t size = 0;
    amp_status s = amp_onnx_export(m->g, &data, &size);
    if (s) return s;
    s = amp_write_file_atomic(m->ctx, path, data, size);
    amp_dealloc(m->ctx, data);
    return s;
}

void amp_model_destroy(amp_model *m) {
    if (!m) return;
    amp_graph_destroy(m->g);
    amp_dealloc(m->ctx, m);
}

/* graph inputs that are real inputs (initializer defaults excluded) */
int amp_model_input_value(const amp_model *m, int i) {
    int k = 0;
    for (int j = 0; j < m->g->n_inputs; j++) {
        const amp_value *v = &m->g->values[m->g->inputs[j]];
        if (v->init) continue;
        if (k++ == i) return m->g->inputs[j];
    }
    return -1;
}

int amp_model_input_count(const amp_model *m) {
    if (!m) return 0;
    int k = 0;
    for (int j = 0; j < m->g->n_inputs; j++)
        if (!m->g->values[m->g->inputs[j]].init) k++;
    return k;
}

int amp_model_output_count(const amp_model *m) { return m ? m->g->n_outputs : 0; }

/* Fill the caller's *info (of the size the caller set) from value v. */
static amp_status fill_info(const amp_model *m, const amp_value *v, amp_value_info *info, const char *what) {
    amp_value_info vi;
    memset(&vi, 0, sizeof vi);
    vi.struct_size = sizeof vi;
    vi.name = v->name;
    vi.dtype = v->dtype;
    vi.rank = v->rank;
    for (int i = 0; i < v->rank && i < AMP_MAX_RANK; i++) {
        vi.dims[i] = v->dims[i].value;
        vi.dim_names[i] = v->dims[i].sym >= 0 ? m->g->syms[v->dims[i].sym] : NULL;
    }
    return amp_copy_output(m->ctx, info, &vi, sizeof vi, what);
}

amp_status amp_model_input_info(const amp_model *m, int i, amp_value_info *info) {
    if (!m || !info) return AMP_ERR_INVALID_ARG;
    int v = amp_model_input_value(m, i);
    if (v < 0) return amp_seterr(m->ctx, AMP_ERR_INVALID_ARG, "input index %d out of range", i);
    return fill_info(m, &m->g->values[v], info, "amp_model_input_info");
}

amp_status amp_model_output_info(const amp_model *m, int i, amp_value_info *info) {
    if (!m || !info) return AMP_ERR_INVALID_ARG;
    if (i < 0 || i >= m->g->n_outputs) return amp_seterr(m->ctx, AMP_ERR_INVALID_ARG, "output index %d out of range", i);
    return fill_info(m, &m->g->values[m->g->outputs[i]], info, "amp_model_output_info");
}

int64_t amp_model_opset(const amp_model *m) { return m ? m->g->opset : 0; }
