/* The f16/bf16 conversions are base-level (base/half.h); this name is kept for the includers
 * in ir/, passes/, backends/ and runtime/ until each switches to base/half.h. */
#ifndef AMP_IR_HALF_H
#define AMP_IR_HALF_H

#include "base/half.h"

#endif
