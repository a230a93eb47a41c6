/* Graph IR -> ONNX ModelProto bytes. The protobuf structs borrow the graph's strings and
 * tensor data; everything allocated here is tracked in a pool and freed after packing. */
#include <string.h>

#include "ir/onnx_pb.h"

typedef struct pool {
    amp_context *ctx;
    void **ptrs;
    int n, cap;
    bool failed;
} pool;

static void *palloc(pool *p, size_t n, size_t size) {
    if (p->failed) return NULL;
    void *q = amp_calloc(p->ctx, n ? n : 1, size);
    if (!q || amp_grow(p->ctx, (void **)&p->ptrs, &p->cap, p->n + 1, sizeof(void *))) {
        amp_dealloc(p->ctx, q);
        p->failed = true;
        return NULL;
    }
    p->ptrs[p->n++] = q;
    return q;
}

static void pool_free(pool *p) {
    for (int i = 0; i < p->n; i++) amp_dealloc(p->ctx, p->ptrs[i]);
    amp_dealloc(p->ctx, p->ptrs);
}

static Onnx__TensorProto *tensor_proto(pool *p, const amp_tensor *t, const char *name) {
    Onnx__TensorProto *tp = palloc(p, 1, sizeof *tp);
    int64_t *dims = palloc(p, AMP_MAX_RANK, sizeof(int64_t));
    if (!tp || !dims) return NULL;
    amp_tensor_to_proto(t, name, tp, dims);
    return tp;
}

static Onnx__ValueInfoProto *value_info(pool *p, const amp_graph *g, const amp_value *v) {
    Onnx__ValueInfoProto *vi = palloc(p, 1, sizeof *vi);
    Onnx__TypeProto *tp = palloc(p, 1, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = palloc(p, 1, sizeof *tt);
    if (!vi || !tp || !tt) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    vi->name = v->name;
    if (v->doc) vi->doc_string = v->doc;
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    int et = v->dtype != AMP_UNDEFINED ? (int)v->dtype : v->elem_onnx_type;
    if (et) {
        tt->has_elem_type = 1;
        tt->elem_type = et;
    }
    if (v->rank >= 0) {
        Onnx__TensorShapeProto *sp = palloc(p, 1, sizeof *sp);
        Onnx__TensorShapeProto__Dimension **dims = palloc(p, (size_t)v->rank + 1, sizeof *dims);
        if (!sp || !dims) return NULL;
        onnx__tensor_shape_proto__init(sp);
        sp->n_dim = (size_t)v->rank;
        sp->dim = dims;
        for (int i = 0; i < v->rank; i++) {
            Onnx__TensorShapeProto__Dimension *d = palloc(p, 1, sizeof *d);
            if (!d) return NULL;
            onnx__tensor_shape_proto__dimension__init(d);
            if (v->dims[i].sym >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = g->syms[v->dims[i].sym];
            } else if (v->dims[i].value >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = v->dims[i].value;
            }
            dims[i] = d;
        }
        tt->shape = sp;
    }
    return vi;
}

static Onnx__AttributeProto *attr_proto(pool *p, const amp_attr *a) {
    Onnx__AttributeProto *ap = palloc(p, 1, sizeof *ap);
    if (!ap) return NULL;
    onnx__attribute_proto__init(ap);
    ap->name = a->name;
    if (a->ref_attr_name) ap->ref_attr_name = a->ref_attr_name;
    if (a->doc) ap->doc_string = a->doc;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->kind;
    switch (a->kind) {
    case AMP_ATTR_FLOAT: ap->has_f = 1; ap->f = a->f; break;
    case AMP_ATTR_INT: ap->has_i = 1; ap->i = a->i; break;
    case AMP_ATTR_STRING:
        ap->has_s = 1;
        ap->s.data = (uint8_t *)a->s;
        ap->s.len = a->slen;
        break;
    case AMP_ATTR_FLOATS: ap->n_floats = (size_t)a->n; ap->floats = a->floats; break;
    case AMP_ATTR_INTS: ap->n_ints = (size_t)a->n; ap->ints = a->ints; break;
    case AMP_ATTR_STRINGS: {
        ProtobufCBinaryData *b = palloc(p, (size_t)a->n + 1, sizeof *b);
        if (!b) return NULL;
        for (int i = 0; i < a->n; i++) {
            b[i].data = (uint8_t *)a->strings[i];
            b[i].len = strlen(a->strings[i]);
        }
        ap->n_strings = (size_t)a->n;
        ap->strings = b;
        break;
    }
    case AMP_ATTR_TENSOR:
        if (!(ap->t = tensor_proto(p, a->t, ""))) return NULL;
        break;
    case AMP_ATTR_TENSORS: {
        Onnx__TensorProto **ts = palloc(p, (size_t)a->n + 1, sizeof *ts);
        if (!ts) return NULL;
        for (int i = 0; i < a->n; i++)
            if (!(ts[i] = tensor_proto(p, a->tensors[i], ""))) return NULL;
        ap->n_tensors = (size_t)a->n;
        ap->tensors = ts;
        break;
    }
    default: break;
    }
    return ap;
}

amp_status amp_onnx_export(const amp_graph *g, void **data, size_t *size) {
    amp_context *ctx = g->ctx;
    pool p = {.ctx = ctx};
    amp_status s = AMP_OK;
    Onnx__ModelProto mp;
    Onnx__GraphProto gp;
    onnx__model_proto__init(&mp);
    onnx__graph_proto__init(&gp);
    mp.has_ir_version = 1;
    mp.ir_version = g->ir_version;
    mp.producer_name = g->producer_name ? g->producer_name : "amprt";
    if (g->producer_version) mp.producer_version = g->producer_version;
    if (g->model_domain) mp.domain = g->model_domain;
    if (g->model_version) {
        mp.has_model_version = 1;
        mp.model_version = g->model_version;
    }
    if (g->doc) mp.doc_string = g->doc;
    mp.graph = &gp;
    gp.name = g->name ? g->name : "amprt";

    int nops = g->n_opsets ? g->n_opsets : 1;
    Onnx__OperatorSetIdProto **ops = palloc(&p, (size_t)nops, sizeof *ops);
    for (int i = 0; ops && i < nops; i++) {
        Onnx__OperatorSetIdProto *o = palloc(&p, 1, sizeof *o);
        if (!o) break;
        onnx__operator_set_id_proto__init(o);
        o->domain = g->n_opsets ? g->opsets[i].domain : "";
        o->has_version = 1;
        o->version = g->n_opsets ? g->opsets[i].version : g->opset;
        ops[i] = o;
    }
    mp.n_opset_import = (size_t)nops;
    mp.opset_import = ops;

    if (g->n_meta) {
        Onnx__StringStringEntryProto **md = palloc(&p, (size_t)g->n_meta, sizeof *md);
        for (int i = 0; md && i < g->n_meta; i++) {
            Onnx__StringStringEntryProto *e = palloc(&p, 1, sizeof *e);
            if (!e) break;
            onnx__string_string_entry_proto__init(e);
            e->key = g->meta_keys[i];
            e->value = g->meta_values[i];
            md[i] = e;
        }
        mp.n_metadata_props = (size_t)g->n_meta;
        mp.metadata_props = md;
    }

    Onnx__TensorProto **inits = palloc(&p, (size_t)g->n_inits + 1, sizeof *inits);
    for (int i = 0; inits && i < g->n_inits; i++) {
        const amp_value *v = &g->values[g->inits[i]];
        inits[i] = tensor_proto(&p, v->init, v->name);
    }
    gp.n_initializer = (size_t)g->n_inits;
    gp.initializer = inits;

    Onnx__ValueInfoProto **ins = palloc(&p, (size_t)g->n_inputs + 1, sizeof *ins);
    for (int i = 0; ins && i < g->n_inputs; i++) ins[i] = value_info(&p, g, &g->values[g->inputs[i]]);
    gp.n_input = (size_t)g->n_inputs;
    gp.input = ins;
    Onnx__ValueInfoProto **outs = palloc(&p, (size_t)g->n_outputs + 1, sizeof *outs);
    for (int i = 0; outs && i < g->n_outputs; i++) outs[i] = value_info(&p, g, &g->values[g->outputs[i]]);
    gp.n_output = (size_t)g->n_outputs;
    gp.output = outs;

    /* value_info for intermediates whose type is known */
    Onnx__ValueInfoProto **vis = palloc(&p, (size_t)g->n_values + 1, sizeof *vis);
    size_t nvi = 0;
    for (int i = 0; vis && i < g->n_values; i++) {
        const amp_value *v = &g->values[i];
        if (v->init || v->is_input || v->is_output || v->producer < 0 || !v->declared) continue;
        vis[nvi++] = value_info(&p, g, v);
    }
    gp.n_value_info = nvi;
    gp.value_info = vis;

    Onnx__NodeProto **nodes = palloc(&p, (size_t)g->n_nodes + 1, sizeof *nodes);
    for (int ni = 0; nodes && ni < g->n_nodes; ni++) {
        const amp_node *n = &g->nodes[ni];
        Onnx__NodeProto *np = palloc(&p, 1, sizeof *np);
        char **in = palloc(&p, (size_t)n->n_inputs + 1, sizeof(char *));
        char **out = palloc(&p, (size_t)n->n_outputs + 1, sizeof(char *));
        Onnx__AttributeProto **at = palloc(&p, (size_t)n->n_attrs + 1, sizeof *at);
        if (!np || !in || !out || !at) break;
        onnx__node_proto__init(np);
        np->name = n->name;
        np->op_type = n->op_type;
        np->domain = n->domain;
        if (n->doc) np->doc_string = n->doc;
        for (int k = 0; k < n->n_inputs; k++) in[k] = n->inputs[k] >= 0 ? g->values[n->inputs[k]].name : "";
        for (int k = 0; k < n->n_outputs; k++) out[k] = n->outputs[k] >= 0 ? g->values[n->outputs[k]].name : "";
        for (int k = 0; k < n->n_attrs; k++) at[k] = attr_proto(&p, &n->attrs[k]);
        np->n_input = (size_t)n->n_inputs;
        np->input = in;
        np->n_output = (size_t)n->n_outputs;
        np->output = out;
        np->n_attribute = (size_t)n->n_attrs;
        np->attribute = at;
        nodes[ni] = np;
    }
    gp.n_node = (size_t)g->n_nodes;
    gp.node = nodes;

    if (p.failed) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory exporting the model");
        goto done;
    }
    size_t n = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = amp_alloc(ctx, n);
    if (!buf) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory exporting the model");
        goto done;
    }
    onnx__model_proto__pack(&mp, buf);
    *data = buf;
    *size = n;
done:
    pool_free(&p);
    return s;
}
