/* The device as the runtime and cuDNN see it: cudaGetDeviceProperties and cuDNN's own
 * device-property description must agree on the numbers cuDNN's heuristics use. On the emulator
 * that checks the fake runtime against the committed H100 description (emu/), which is what
 * cuDNN plans from there; on a GPU it reads the real card's description from a handle, and with
 * AMP_DEVICE_JSON=FILE writes it there (tools/gpu-check.sh keeps it: the next description to
 * commit). Cases: props, info. */
#include <stdlib.h>

#include <cudnn.h>

#include "backends/cuda/conv.h"
#include "tests/cuda/cuda_test.h"

/* The integer after "key": in a flat JSON object; 0 with *found = 0 when absent. */
static long long json_int(const char *json, const char *key, int *found) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    *found = 0;
    if (!p) return 0;
    p += strlen(pat);
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == ':') p++;
    char *end = NULL;
    long long v = strtoll(p, &end, 10);
    *found = end != p;
    return v;
}

/* The description cuDNN builds for device 0 (the emulator: from the committed JSON, as
 * devprop.c does), read back as JSON into buf. Returns the status of the first call that
 * failed. */
static cudnnStatus_t read_devprop(char *buf, int64_t cap, int64_t *len) {
    cudnnHandle_t h = NULL;
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t s = cudnnCreate(&h);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &d);
#if defined(AMP_CUDA_EMULATED)
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
                                     (int64_t)amp_cuda_h100_devprop_len, amp_cuda_h100_devprop);
#else
    int32_t id = 0;
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendSetAttribute(d, CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(d, CUDNN_ATTR_DEVICEPROP_DEVICE_ID, CUDNN_TYPE_INT32, 1, &id);
#endif
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(d);
    *len = 0;
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendGetAttribute(d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, cap - 1, len, buf);
    if (s == CUDNN_STATUS_SUCCESS && (*len <= 0 || *len >= cap)) s = CUDNN_STATUS_BAD_PARAM;
    buf[s == CUDNN_STATUS_SUCCESS ? *len : 0] = '\0';
    if (d) cudnnBackendDestroyDescriptor(d);
    if (h) cudnnDestroy(h);
    return s;
}

static void t_props(void) {
    struct cudaDeviceProp p;
    memset(&p, 0, sizeof p);
    CT_CHECK(cudaGetDeviceProperties(&p, 0) == cudaSuccess, "cudaGetDeviceProperties: %s",
             cudaGetErrorString(cudaGetLastError()));
    printf("  device 0: %s, compute capability %d.%d, %d SMs, %.1f GiB, L2 %d KiB\n", p.name, p.major, p.minor,
           p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.l2CacheSize / 1024);
    /* the module is built for sm_90 (and PTX for what comes after) */
    CT_CHECK(p.major >= 9, "compute capability %d.%d: the CUDA module needs 9.0 or later", p.major, p.minor);
    CT_CHECK(p.warpSize == 32, "warp size %d", p.warpSize);
    CT_CHECK(p.multiProcessorCount > 0 && p.maxThreadsPerBlock >= 1024, "%d SMs, %d threads per block",
             p.multiProcessorCount, p.maxThreadsPerBlock);
    CT_CHECK(p.totalGlobalMem > ((size_t)1 << 30), "%zu bytes of device memory", p.totalGlobalMem);
    CT_CHECK(p.sharedMemPerBlockOptin >= p.sharedMemPerBlock, "opt-in shared memory %zu < default %zu",
             p.sharedMemPerBlockOptin, p.sharedMemPerBlock);
}

static void t_info(void) {
    static char json[1 << 16];
    int64_t len = 0;
    cudnnStatus_t s = read_devprop(json, (int64_t)sizeof json, &len);
    CT_CHECK(s == CUDNN_STATUS_SUCCESS, "cuDNN device properties: %s", cudnnGetErrorString(s));
    struct cudaDeviceProp p;
    memset(&p, 0, sizeof p);
    CT_CHECK(cudaGetDeviceProperties(&p, 0) == cudaSuccess, "cudaGetDeviceProperties");
    /* what cuDNN plans from and what the runtime reports must be one device */
    const struct {
        const char *key;
        long long want;
    } same[] = {
        {"multiProcessorCount", p.multiProcessorCount},
        {"warpSize", p.warpSize},
        {"l2CacheSize", p.l2CacheSize},
        {"regsPerBlock", p.regsPerBlock},
        {"maxThreadsPerBlock", p.maxThreadsPerBlock},
        {"maxThreadsPerSM", p.maxThreadsPerMultiProcessor},
        {"maxSharedMemoryPerBlock", (long long)p.sharedMemPerBlock},
        {"maxSharedMemoryPerBlockOptin", (long long)p.sharedMemPerBlockOptin},
        {"totalGlobalMem", (long long)p.totalGlobalMem},
        {"deviceVer", p.major * 100 + p.minor * 10},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        int found = 0;
        long long v = json_int(json, same[i].key, &found);
        CT_CHECK(found, "cuDNN's description has no %s:\n%s", same[i].key, json);
        CT_CHECK(v == same[i].want, "%s: cuDNN says %lld, the runtime %lld", same[i].key, v, same[i].want);
    }
    CT_CHECK(strstr(json, p.name) != NULL, "device name '%s' not in cuDNN's description", p.name);
    const char *path = getenv("AMP_DEVICE_JSON");
    if (path && path[0]) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "wb");
        CT_CHECK(f != NULL, "cannot write %s", tmp);
        size_t n = fwrite(json, 1, (size_t)len, f);
        int bad = fclose(f) != 0 || n != (size_t)len || rename(tmp, path) != 0;
        if (bad) remove(tmp);
        CT_CHECK(!bad, "cannot write %s", path);
        printf("  wrote %s (%lld bytes)\n", path, (long long)len);
    }
}

static const ct_case cases[] = {{"props", t_props}, {"info", t_info}, {NULL, NULL}};

int main(int argc, char **argv) { return ct_main(argc, argv, cases); }
