/* The emulator's thread and block order for tests/cuda/test_norm.c (a C program cannot include
 * the emulator's C++ header). On a GPU the order is the hardware's and this does nothing. */
#include "backends/cuda/launch.h"

extern "C" int kn_set_order(int flags) {
#ifdef __CUDACC__
    (void)flags;
    return 0;
#else
    return amp_emu_set_order(flags);
#endif
}
