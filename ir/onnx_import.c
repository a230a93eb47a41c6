/* ONNX ModelProto -> graph IR. */
#include <string.h>
#include <unistd.h>

#include "ir/onnx_pb.h"


/* name -> value id, open addressing; keeps import linear in the graph size */
typedef struct name_map {
    int *slots;
    size_t cap;
} name_map;

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

typedef struct importer {
    amp_context *ctx;
    amp_graph *g;
    name_map map;
    const char *base_dir;
    const amp_pb_source *src; /* where raw_data lives (the model is a compact copy) */
} importer;

static amp_status map_grow(importer *im) {
    size_t nc = im->map.cap ? im->map.cap * 2 : 256;
    int *ns = amp_alloc(im->ctx, nc * sizeof(int));
    if (!ns) return AMP_ERR_NO_MEMORY;
    for (size_t i = 0; i < nc; i++) ns[i] = -1;
    for (int v = 0; v < im->g->n_values; v++) {
        size_t h = hash_str(im->g->values[v].name) & (nc - 1);
        while (ns[h] >= 0) h = (h + 1) & (nc - 1);
        ns[h] = v;
    }
    amp_dealloc(im->ctx, im->map.slots);
    im->map.slots = ns;
    im->map.cap = nc;
    return AMP_OK;
}

/* Find or create the value called name; -1 on allocation failure. */
static int value_id(importer *im, const char *name, bool create) {
    if ((size_t)(im->g->n_values + 1) * 2 > im->map.cap && map_grow(im)) return -2;
    size_t mask = im->map.cap - 1, h = hash_str(name) & mask;
    while (im->map.slots[h] >= 0) {
        if (strcmp(im->g->values[im->map.slots[h]].name, name) == 0) return im->map.slots[h];
        h = (h + 1) & mask;
    }
    if (!create) return -1;
    int id = amp_graph_new_value(im->g, name);
    if (id < 0) return -2;
    im->map.slots[h] = id;
    return id;
}

static amp_status oom(importer *im) { return amp_seterr(im->ctx, AMP_ERR_NO_MEMORY, "out of memory loading the model"); }

static amp_status read_type(importer *im, const Onnx__ValueInfoProto *vi, amp_value *v) {
    const Onnx__TypeProto *tp = vi->type;
    v->declared = true;
    if (!tp) return AMP_OK;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return amp_seterr(im->ctx, AMP_ERR_UNSUPPORTED, "value '%s': only tensor types are supported (sequence, map and optional are not)",
                          v->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (!tt) return AMP_OK;
    if (tt->has_elem_type) {
        v->elem_onnx_type = tt->elem_type;
        v->dtype = amp_dtype_size((amp_dtype)tt->elem_type) ? (amp_dtype)tt->elem_type : AMP_UNDEFINED;
    }
    if (!tt->shape) {
        v->rank = -1;
        return AMP_OK;
    }
    if (tt->shape->n_dim > AMP_MAX_RANK)
        return amp_seterr(im->ctx, AMP_ERR_UNSUPPORTED, "value '%s': rank %zu exceeds %d", v->name, tt->shape->n_dim,
                          AMP_MAX_RANK);
    v->rank = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        v->dims[i].value = -1;
        v->dims[i].sym = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return amp_seterr(im->ctx, AMP_ERR_PARSE, "value '%s': negative dimension %lld", v->name,
                                  (long long)d->dim_value);
            v->dims[i].value = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param &&
                   d->dim_param[0]) {
            int s = amp_graph_sym(im->g, d->dim_param);
            if (s < 0) return oom(im);
            v->dims[i].sym = s;
        }
    }
    return AMP_OK;
}

static char *dup_bytes(amp_context *ctx, const ProtobufCBinaryData *b) {
    char *s = amp_alloc(ctx, b->len + 1);
    if (!s) return NULL;
    if (b->len) memcpy(s, b->data, b->len);
    s[b->len] = 0;
    return s;
}

static amp_status read_attr(importer *im, const amp_node *n, const Onnx__AttributeProto *ap, amp_attr *a) {
    amp_context *ctx = im->ctx;
    a->name = amp_strdup(ctx, ap->name ? ap->name : "");
    if (!a->name) return oom(im);
    if (ap->ref_attr_name && ap->ref_attr_name[0]) {
        a->ref_attr_name = amp_strdup(ctx, ap->ref_attr_name);
        if (!a->ref_attr_name) return oom(im);
    }
    if (ap->doc_string && ap->doc_string[0] && !(a->doc = amp_strdup(ctx, ap->doc_string))) return oom(im);
    int type = ap->has_type ? (int)ap->type : 0;
    if (!type) { /* IR version 1: infer the kind from the field in use */
        if (ap->has_f) type = AMP_ATTR_FLOAT;
        else if (ap->has_i) type = AMP_ATTR_INT;
        else if (ap->has_s) type = AMP_ATTR_STRING;
        else if (ap->t) type = AMP_ATTR_TENSOR;
        else if (ap->g) type = AMP_ATTR_GRAPH;
        else if (ap->n_floats) type = AMP_ATTR_FLOATS;
        else if (ap->n_ints) type = AMP_ATTR_INTS;
        else if (ap->n_strings) type = AMP_ATTR_STRINGS;
        else if (ap->n_tensors) type = AMP_ATTR_TENSORS;
        else if (ap->n_graphs) type = AMP_ATTR_GRAPHS;
    }
    a->kind = (amp_attr_kind)type;
    const char *nn = n->name && n->name[0] ? n->name : n->op_type;
    switch (type) {
    case AMP_ATTR_FLOAT: a->f = ap->f; break;
    case AMP_ATTR_INT: a->i = ap->i; break;
    case AMP_ATTR_STRING:
        if (!(a->s = dup_bytes(ctx, &ap->s))) return oom(im);
        a->slen = ap->s.len;
        break;
    case AMP_ATTR_FLOATS:
        a->n = (int)ap->n_floats;
        if (!(a->floats = amp_alloc(ctx, sizeof(float) * (ap->n_floats + 1)))) return oom(im);
        if (ap->n_floats) memcpy(a->floats, ap->floats, sizeof(float) * ap->n_floats);
        break;
    case AMP_ATTR_INTS:
        a->n = (int)ap->n_ints;
        if (!(a->ints = amp_alloc(ctx, sizeof(int64_t) * (ap->n_ints + 1)))) return oom(im);
        if (ap->n_ints) memcpy(a->ints, ap->ints, sizeof(int64_t) * ap->n_ints);
        break;
    case AMP_ATTR_STRINGS:
        if (!(a->strings = amp_calloc(ctx, ap->n_strings + 1, sizeof(char *)))) return oom(im);
        a->n = (int)ap->n_strings;
        for (size_t i = 0; i < ap->n_strings; i++)
            if (!(a->strings[i] = dup_bytes(ctx, &ap->strings[i]))) return oom(im);
        break;
    case AMP_ATTR_TENSOR:
        if (!ap->t) return amp_seterr(ctx, AMP_ERR_PARSE, "node '%s': attribute '%s' has no tensor", nn, a->name);
        return amp_tensor_from_proto(ctx, ap->t, im->src, im->base_dir, &a->t);
    case AMP_ATTR_TENSORS:
        if (!(a->tensors = amp_calloc(ctx, ap->n_tensors + 1, sizeof(amp_tensor *)))) return oom(im);
        a->n = (int)ap->n_tensors;
        for (size_t i = 0; i < ap->n_tensors; i++) {
            amp_status s = amp_tensor_from_proto(ctx, ap->tensors[i], im->src, im->base_dir, &a->tensors[i]);
            if (s) return s;
        }
        break;
    case AMP_ATTR_GRAPH:
    case AMP_ATTR_GRAPHS:
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED,
                          "node '%s' (%s): graph attribute '%s' (If/Loop/Scan bodies) is not supported yet", nn,
                          n->op_type, a->name);
    case AMP_ATTR_SPARSE_TENSOR:
    case AMP_ATTR_SPARSE_TENSORS:
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "node '%s': sparse tensor attribute '%s' is not supported", nn,
                          a->name);
    case AMP_ATTR_TYPE_PROTO:
    case AMP_ATTR_TYPE_PROTOS:
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "node '%s': type-proto attribute '%s' is not supported", nn,
                          a->name);
    default:
        return amp_seterr(ctx, AMP_ERR_PARSE, "node '%s': attribute '%s' has unknown type %d", nn, a->name, type);
    }
    return AMP_OK;
}

static amp_status read_node(importer *im, const Onnx__NodeProto *np) {
    amp_context *ctx = im->ctx;
    amp_node n;
    memset(&n, 0, sizeof n);
    amp_status s = AMP_OK;
    if (!np->op_type || !np->op_type[0]) return amp_seterr(ctx, AMP_ERR_PARSE, "a node has no op_type");
    n.name = amp_strdup(ctx, np->name ? np->name : "");
    n.op_type = amp_strdup(ctx, np->op_type);
    n.domain = amp_strdup(ctx, np->domain ? np->domain : "");
    if (np->doc_string && np->doc_string[0]) n.doc = amp_strdup(ctx, np->doc_string);
    n.inputs = amp_alloc(ctx, sizeof(int) * (np->n_input + 1));
    n.outputs = amp_alloc(ctx, sizeof(int) * (np->n_output + 1));
    n.attrs = amp_calloc(ctx, np->n_attribute + 1, sizeof(amp_attr));
    if (!n.name || !n.op_type || !n.domain || !n.inputs || !n.outputs || !n.attrs) {
        s = oom(im);
        goto fail;
    }
    n.op = amp_op_lookup(n.op_type, n.domain);
    for (size_t i = 0; i < np->n_input; i++) {
        const char *nm = np->input[i];
        if (!nm || !nm[0]) {
            n.inputs[n.n_inputs++] = -1;
            continue;
        }
        int id = value_id(im, nm, true);
        if (id < 0) {
            s = oom(im);
            goto fail;
        }
        n.inputs[n.n_inputs++] = id;
    }
    for (size_t i = 0; i < np->n_output; i++) {
        const char *nm = np->output[i];
        if (!nm || !nm[0]) {
            n.outputs[n.n_outputs++] = -1;
            continue;
        }
        int id = value_id(im, nm, true);
        if (id < 0) {
            s = oom(im);
            goto fail;
        }
        n.outputs[n.n_outputs++] = id;
    }
    for (size_t i = 0; i < np->n_attribute; i++) {
        s = read_attr(im, &n, np->attribute[i], &n.attrs[n.n_attrs++]);
        if (s) goto fail;
    }
    s = amp_graph_add_node(im->g, &n);
    if (s) goto fail;
    return AMP_OK;
fail:
    amp_node_free(ctx, &n);
    return s;
}

static amp_status import_model(importer *im, const Onnx__ModelProto *mp) {
    amp_context *ctx = im->ctx;
    amp_graph *g = im->g;
    amp_status s;
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp) return amp_seterr(ctx, AMP_ERR_PARSE, "the model has no graph");
    g->ir_version = mp->has_ir_version ? mp->ir_version : 3;
    g->model_version = mp->has_model_version ? mp->model_version : 0;
    if (mp->producer_name && !(g->producer_name = amp_strdup(ctx, mp->producer_name))) return oom(im);
    if (mp->producer_version && !(g->producer_version = amp_strdup(ctx, mp->producer_version))) return oom(im);
    if (mp->domain && !(g->model_domain = amp_strdup(ctx, mp->domain))) return oom(im);
    if (mp->doc_string && mp->doc_string[0] && !(g->doc = amp_strdup(ctx, mp->doc_string))) return oom(im);
    if (gp->name && !(g->name = amp_strdup(ctx, gp->name))) return oom(im);
    if (mp->n_functions)
        return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "model-local functions are not supported yet");
    if (gp->n_sparse_initializer) return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "sparse initializers are not supported");
    g->opset = mp->n_opset_import ? -1 : 1;
    if (!(g->opsets = amp_calloc(ctx, mp->n_opset_import + 1, sizeof(amp_opset)))) return oom(im);
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        amp_opset *dst = &g->opsets[g->n_opsets++];
        if (!(dst->domain = amp_strdup(ctx, o->domain ? o->domain : ""))) return oom(im);
        dst->version = o->has_version ? o->version : 1;
        /* ONNX versions every domain from 1; a version above what the op table knows is named
         * per node when planning, where the op's own range is known */
        if (dst->version < 1)
            return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "opset_import: domain '%s' has version %lld; versions start at 1",
                              amp_domain_is_default(dst->domain) ? "ai.onnx" : dst->domain, (long long)dst->version);
        for (int j = 0; j < g->n_opsets - 1; j++) {
            const amp_opset *prev = &g->opsets[j];
            bool same = amp_domain_is_default(prev->domain) ? amp_domain_is_default(dst->domain)
                                                            : strcmp(prev->domain, dst->domain) == 0;
            if (same && prev->version != dst->version)
                return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "opset_import: domain '%s' is imported at versions %lld and %lld",
                                  amp_domain_is_default(dst->domain) ? "ai.onnx" : dst->domain,
                                  (long long)prev->version, (long long)dst->version);
        }
        if (amp_domain_is_default(dst->domain)) g->opset = dst->version;
    }
    if (g->opset < 0) g->opset = 1;
    if (!(g->meta_keys = amp_calloc(ctx, mp->n_metadata_props + 1, sizeof(char *))) ||
        !(g->meta_values = amp_calloc(ctx, mp->n_metadata_props + 1, sizeof(char *))))
        return oom(im);
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = mp->metadata_props[i];
        g->meta_keys[g->n_meta] = amp_strdup(ctx, e->key ? e->key : "");
        g->meta_values[g->n_meta] = amp_strdup(ctx, e->value ? e->value : "");
        g->n_meta++;
        if (!g->meta_keys[g->n_meta - 1] || !g->meta_values[g->n_meta - 1]) return oom(im);
    }
    if (gp->n_node > (size_t)ctx->max_nodes)
        return amp_seterr(ctx, AMP_ERR_LIMIT, "the graph has %zu nodes, over the limit of %lld", gp->n_node,
                          (long long)ctx->max_nodes);

    /* initializers */
    if (!(g->inits = amp_calloc(ctx, gp->n_initializer + 1, sizeof(int)))) return oom(im);
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !tp->name[0]) return amp_seterr(ctx, AMP_ERR_PARSE, "initializer %zu has no name", i);
        int id = value_id(im, tp->name, false);
        if (id == -2) return oom(im);
        if (id >= 0) return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "initializer '%s' is defined twice", tp->name);
        if ((id = value_id(im, tp->name, true)) < 0) return oom(im);
        amp_value *v = &g->values[id];
        s = amp_tensor_from_proto(ctx, tp, im->src, im->base_dir, &v->init);
        if (s) return s;
        v->dtype = v->init->dtype;
        v->elem_onnx_type = v->init->dtype;
        v->rank = v->init->rank;
        for (int d = 0; d < v->rank; d++) {
            v->dims[d].value = v->init->dims[d];
            v->dims[d].sym = -1;
        }
        g->inits[g->n_inits++] = id;
    }
    /* inputs (an input that names an initializer is an overridable default) */
    if (!(g->inputs = amp_calloc(ctx, gp->n_input + 1, sizeof(int)))) return oom(im);
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !vi->name[0]) return amp_seterr(ctx, AMP_ERR_PARSE, "graph input %zu has no name", i);
        int id = value_id(im, vi->name, true);
        if (id < 0) return oom(im);
        amp_value *v = &g->values[id];
        if (v->is_input) return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "graph input '%s' is listed twice", vi->name);
        if (!v->init) {
            v->is_input = true;
            if ((s = read_type(im, vi, v))) return s;
        }
        g->inputs[g->n_inputs++] = id;
    }
    /* nodes */
    for (size_t i = 0; i < gp->n_node; i++)
        if ((s = read_node(im, gp->node[i]))) return s;
    /* outputs and value_info */
    if (!(g->outputs = amp_calloc(ctx, gp->n_output + 1, sizeof(int)))) return oom(im);
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        if (!vi->name || !vi->name[0]) return amp_seterr(ctx, AMP_ERR_PARSE, "graph output %zu has no name", i);
        int id = value_id(im, vi->name, false);
        if (id == -2) return oom(im);
        if (id < 0) return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "graph output '%s' is not defined", vi->name);
        amp_value *v = &g->values[id];
        v->is_output = true;
        if (!v->init && !v->is_input && (s = read_type(im, vi, v))) return s;
        g->outputs[g->n_outputs++] = id;
    }
    for (size_t i = 0; i < gp->n_value_info; i++) {
        const Onnx__ValueInfoProto *vi = gp->value_info[i];
        if (!vi->name) continue;
        int id = value_id(im, vi->name, false);
        if (id == -2) return oom(im);
        if (id < 0) continue; /* describes nothing in this graph */
        amp_value *v = &g->values[id];
        if (v->init || v->is_input || v->is_output) continue;
        amp_status ts = read_type(im, vi, v);
        if (ts == AMP_ERR_NO_MEMORY) return ts;
        if (ts) { /* a value_info we cannot use is only a hint: forget it */
            v->dtype = AMP_UNDEFINED;
            v->rank = -1;
            v->declared = false;
        }
    }
    return amp_graph_link(g);
}

/* Walk src (depth cap, compact copy), unpack the copy, import it; tensors' bytes come from src. */
static amp_status import_source(amp_context *ctx, const amp_pb_source *src, uint64_t size, const char *base_dir,
                                amp_graph **out) {
    if (size == 0) return amp_seterr(ctx, AMP_ERR_PARSE, "the model file is empty");
    uint8_t *buf = NULL;
    size_t n = 0;
    amp_status s = amp_pb_compact(ctx, &onnx__model_proto__descriptor, src, size, "the model", &buf, &n);
    if (s) return s;
    ProtobufCAllocator pa;
    amp_pb_allocator(ctx, &pa);
    unsigned long failures = ctx->alloc_failures;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&pa, n, buf);
    amp_dealloc(ctx, buf);
    if (!mp && ctx->alloc_failures != failures)
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory parsing the model");
    if (!mp) return amp_seterr(ctx, AMP_ERR_PARSE, "not a valid ONNX model (protobuf parse failed: truncated or not ONNX)");
    importer im = {.ctx = ctx, .base_dir = base_dir, .src = src};
    s = amp_graph_create(ctx, &im.g);
    if (!s) s = import_model(&im, mp);
    amp_dealloc(ctx, im.map.slots);
    onnx__model_proto__free_unpacked(mp, &pa);
    if (s) {
        amp_graph_destroy(im.g);
        return s;
    }
    *out = im.g;
    return AMP_OK;
}

amp_status amp_onnx_import(amp_context *ctx, const void *data, size_t size, const char *base_dir, amp_graph **out) {
    if (!data && size) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "NULL model buffer");
    amp_pb_source src = {.mem = data, .fd = -1};
    return import_source(ctx, &src, size, base_dir, out);
}

amp_status amp_onnx_import_file(amp_context *ctx, const char *path, const char *base_dir, amp_graph **out) {
    amp_pb_source src = {.path = path};
    uint64_t size;
    amp_status s = amp_open_regular(ctx, path, "model", ctx->max_file_bytes, &src.fd, &size);
    if (s) return s;
    s = import_source(ctx, &src, size, base_dir, out);
    close(src.fd);
    return s;
}
