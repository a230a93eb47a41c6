/* The op table, expanded from ir/ops.def. */
#include <string.h>

#include "ir/grad.h"
#include "ir/ir.h"

/* IN(k): an output with the dtype of input k (amp_type_rule.out_rule). */
#define IN(k) (-(k) - 1)
#define TYPES_ALL .types = {.known = true, .tin = AMP_TYPES_ALL, .tout = AMP_TYPES_ALL}
#define TYPES_NONE .types = {.known = false}
#define TYPES(in, out, agn, ...) .types = {.known = true, .tin = (in), .tout = (out), .agnostic = (agn), .out_rule = {__VA_ARGS__}}
/* the function fills the whole rule; it starts from "every input and output T" */
#define TYPES_FN(fn) TYPES_ALL, .types_fn = fn
#define NOGRAD .has_grad = false
#define GRAD(fn) .has_grad = true, .grad_builder = fn

const amp_op_info amp_op_table[AMP_OP_COUNT] = {
    [AMP_OP_UNKNOWN] = {.name = "<unknown>", .domain = "", .cast_class = AMP_CLASS_NONE},
#define OP(id, nm, dom, lo, hi, cls, bf16, types, grad, inpl, inf, cpu)                                        \
    [AMP_OP_##id] = {.name = nm, .domain = dom, .opset_lo = lo, .opset_hi = hi, .cast_class = AMP_CLASS_##cls, \
                     .bf16_opset = bf16, types, grad, .inplace = inpl, .infer = inf},
#include "ir/ops.def"
#undef OP
};

#undef IN

static const uint32_t value_inputs[AMP_OP_COUNT] = {
#define OP(id, name, domain, lo, hi, cls, bf16, types, grad, inplace, infer, cpu)
#define OP_VALUE_INPUTS(id, mask) [AMP_OP_##id] = (mask),
#include "ir/ops.def"
#undef OP_VALUE_INPUTS
#undef OP
};

bool amp_op_value_input(amp_op op, int k) {
    if (op <= AMP_OP_UNKNOWN || op >= AMP_OP_COUNT || k < 0) return false;
    return (value_inputs[op] >> (k < 31 ? k : 31)) & 1u; /* bit 31 stands for every later input */
}

static const bool dims_only[AMP_OP_COUNT] = {
#define OP(id, name, domain, lo, hi, cls, bf16, types, grad, inplace, infer, cpu)
#define OP_DIMS_ONLY(id) [AMP_OP_##id] = true,
#include "ir/ops.def"
#undef OP_DIMS_ONLY
#undef OP
};

bool amp_op_dims_only(amp_op op) { return op > AMP_OP_UNKNOWN && op < AMP_OP_COUNT && dims_only[op]; }

amp_op amp_op_lookup(const char *name, const char *domain) {
    for (int i = 1; i < AMP_OP_COUNT; i++) {
        const amp_op_info *o = &amp_op_table[i];
        if (strcmp(o->name, name) != 0) continue;
        if (amp_domain_is_default(o->domain) ? amp_domain_is_default(domain) : (domain && strcmp(o->domain, domain) == 0)) return (amp_op)i;
    }
    return AMP_OP_UNKNOWN;
}
