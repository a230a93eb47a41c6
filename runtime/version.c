/* The library's version and build configuration (include/amprt/amprt.h): the strings come from
 * CMake (CMakeLists.txt sets the AMP_BUILD_* definitions on this file alone). */
#include "amprt/amprt.h"

#define AMP_STR2(x) #x
#define AMP_STR(x) AMP_STR2(x)

#ifndef AMP_BUILD_COMPILER
#define AMP_BUILD_COMPILER "unknown"
#endif
#ifndef AMP_BUILD_TYPE
#define AMP_BUILD_TYPE "unknown"
#endif
#ifndef AMP_BUILD_BLAS
#define AMP_BUILD_BLAS "unknown"
#endif
#ifndef AMP_BUILD_OPENMP
#define AMP_BUILD_OPENMP "unknown"
#endif
#ifndef AMP_BUILD_CUDA
#define AMP_BUILD_CUDA "unknown"
#endif
#ifndef AMP_BUILD_SANITIZERS
#define AMP_BUILD_SANITIZERS "unknown"
#endif

const char *amp_version(void) {
    return AMP_STR(AMP_VERSION_MAJOR) "." AMP_STR(AMP_VERSION_MINOR) "." AMP_STR(AMP_VERSION_PATCH);
}

int amp_version_number(void) { return AMP_VERSION_NUMBER; }

const char *amp_build_info(void) {
    return "compiler: " AMP_BUILD_COMPILER "\n"
           "build type: " AMP_BUILD_TYPE "\n"
           "BLAS: " AMP_BUILD_BLAS "\n"
           "threads: " AMP_BUILD_OPENMP "\n"
           "CUDA: " AMP_BUILD_CUDA "\n"
           "sanitizers: " AMP_BUILD_SANITIZERS "\n";
}
