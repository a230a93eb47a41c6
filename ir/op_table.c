/* The op table, expanded from ir/ops.def. */
#include <string.h>

#include "ir/ir.h"

const amp_op_info amp_op_table[AMP_OP_COUNT] = {
    [AMP_OP_UNKNOWN] = {"<unknown>", "", 0, 0, AMP_CLASS_NONE, false, false, NULL},
#define OP(id, name, domain, lo, hi, cls, grad, inplace, infer, cpu) \
    [AMP_OP_##id] = {name, domain, lo, hi, AMP_CLASS_##cls, grad, inplace, infer},
#include "ir/ops.def"
#undef OP
};

amp_op amp_op_lookup(const char *name, const char *domain) {
    for (int i = 1; i < AMP_OP_COUNT; i++) {
        const amp_op_info *o = &amp_op_table[i];
        if (strcmp(o->name, name) != 0) continue;
        if (amp_domain_is_default(o->domain) ? amp_domain_is_default(domain) : (domain && strcmp(o->domain, domain) == 0)) return (amp_op)i;
    }
    return AMP_OP_UNKNOWN;
}
