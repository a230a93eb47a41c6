/* The one internal header the command-line tool (tools/amprt) may include beside the public
 * amprt/amprt.h and the base headers (base/base.h, base/elem.h). Layers below the tools never
 * include it; it gathers, in one place, what the tool reads that the public API does not offer:
 *
 *  - models, sessions and plans (runtime/runtime.h): `inspect` walks the model's graph
 *    (m->g: values, nodes, opsets, initializers) and prints the plan's schedule
 *    (amp_plan_dump) and slot dtypes; `bench --profile` times each node (amp_session_profile);
 *    the FLOP share of an autocast model reads the last plan's concrete dims;
 *  - the graph IR (ir/ir.h, through runtime.h): op ids such as AMP_OP_CAST and AMP_OP_CONV,
 *    attributes, amp_write_file_atomic for plots and DOT files;
 *  - the type rules (passes/passes.h): amp_pass_typecheck, amp_node_precision and
 *    amp_autocast_census colour the DOT drawing and count nodes per precision;
 *  - training data (runtime/data.h): IDX files, image datasets and the batcher of `train` and
 *    `evaluate`.
 *
 * Anything the tool needs beyond this should become public API or be added here, with the
 * reason, rather than included from a lower layer directly (tools/check_layers.py enforces
 * it). */
#ifndef AMP_RUNTIME_INTERNAL_H
#define AMP_RUNTIME_INTERNAL_H

#include "amprt/amprt.h"
#include "base/base.h"
#include "passes/passes.h"
#include "runtime/data.h"
#include "runtime/runtime.h"

#endif
