/* Type rules of the op table that read a node's attributes or its opset (TYPES_FN in
 * ir/ops.def); every other op's rule is data in its table line. */
#include "ir/ir.h"

static int attr_dtype(const amp_node *n, const char *name) {
    const amp_attr *a = amp_node_attr(n, name);
    return a && a->kind == AMP_ATTR_INT ? (int)a->i : 0;
}

void amp_types_cast(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    r->tin = r->tout = 0;
    r->agnostic = 1;
    r->out_rule[0] = attr_dtype(n, "to");
}

void amp_types_constant(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    r->tin = r->tout = 0;
    const amp_tensor *t = amp_attr_tensor(n, "value");
    if (t) r->out_rule[0] = t->dtype;
    else if (amp_node_attr(n, "value_float") || amp_node_attr(n, "value_floats")) r->out_rule[0] = AMP_F32;
    else if (amp_node_attr(n, "value_int") || amp_node_attr(n, "value_ints")) r->out_rule[0] = AMP_I64;
    else r->known = false; /* strings, sparse tensors: left as declared */
}

void amp_types_constant_of_shape(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    r->tin = r->tout = 0;
    const amp_tensor *t = amp_attr_tensor(n, "value");
    r->out_rule[0] = t ? (int)t->dtype : AMP_F32;
}

void amp_types_like(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    int dt = attr_dtype(n, "dtype");
    if (dt) {
        r->tin = r->tout = 0;
        r->agnostic = 1; /* the input gives only the shape */
        r->out_rule[0] = dt;
    } else {
        r->tin = r->tout = 1; /* the output follows the input's type */
    }
}

void amp_types_batch_norm(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)n;
    if (opset < 15) return; /* every input and output T */
    /* X: T; scale, B: T1; mean, var: T2; running mean/var outputs: T2 */
    r->tin = r->tout = 1;
    r->out_rule[1] = -4;
    r->out_rule[2] = -5;
}

void amp_types_layer_norm(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    r->tin = 7;
    r->tout = 1;
    /* Mean and InvStdDev have the stash type (float by default) */
    r->out_rule[1] = r->out_rule[2] = (int)amp_attr_int(n, "stash_type", 1);
}

void amp_types_quantize_linear(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    /* y takes the zero point's type, else output_dtype (21), else uint8 */
    r->tin = r->tout = 0;
    int od = attr_dtype(n, "output_dtype");
    r->out_rule[0] = n->n_inputs > 2 && n->inputs[2] >= 0 ? -3 : od ? od : AMP_U8;
}

void amp_types_window(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    r->tin = r->tout = 0; /* integer size; the output type is output_datatype */
    int dt = attr_dtype(n, "output_datatype");
    r->out_rule[0] = dt ? dt : AMP_F32;
}
