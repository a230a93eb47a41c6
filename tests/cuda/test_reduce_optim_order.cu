/* The emulator's thread and block order switch for tests/cuda/test_reduce_optim.c, which is C
 * and cannot call the emulator's C++ API; on a GPU it does nothing. */
#include "backends/cuda/launch.h"

extern "C" int ro_set_order(int flags) {
#ifdef __CUDACC__
  (void)flags;
  return 0;
#else
  return amp_emu_set_order(flags);
#endif
}
