/* Device properties for cuDNN's heuristics and plan finalisation (conv.h).
 *
 * cuDNN 9 builds a CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR either from a handle (a real device) or
 * from its own JSON description; heuristics and execution plans that are given one need no
 * handle, which is how the emulator chooses engines and sizes workspaces with no GPU. */
#include <string.h>

#include "backends/cuda/conv.h"

amp_status amp_cuda_devprop_create(amp_cuda *cu) {
    cudnnBackendDescriptor_t d = NULL;
    amp_status s = AMP_CUDA_DNN(cu->ctx, cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &d));
    if (s) return s;
#if defined(AMP_CUDA_EMULATED)
    s = AMP_CUDA_DNN(cu->ctx, cudnnBackendSetAttribute(d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
                                                       (int64_t)amp_cuda_h100_devprop_len, amp_cuda_h100_devprop));
#else
    int32_t id = cu->device; /* INT32, as cuDNN's own frontend sets it */
    s = AMP_CUDA_DNN(cu->ctx, cudnnBackendSetAttribute(d, CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, 1, &cu->dnn));
    if (!s)
        s = AMP_CUDA_DNN(cu->ctx,
                         cudnnBackendSetAttribute(d, CUDNN_ATTR_DEVICEPROP_DEVICE_ID, CUDNN_TYPE_INT32, 1, &id));
#endif
    if (!s) s = AMP_CUDA_DNN(cu->ctx, cudnnBackendFinalize(d));
    if (s) {
        cudnnBackendDestroyDescriptor(d);
        return s;
    }
    cu->devprop = d;
    return AMP_OK;
}

void amp_cuda_devprop_destroy(amp_cuda *cu) {
    if (!cu || !cu->devprop) return;
    cudnnBackendDestroyDescriptor(cu->devprop);
    cu->devprop = NULL;
}

amp_status amp_cuda_devprop_json(amp_cuda *cu, char **json) {
    if (!cu->devprop) return amp_seterr(cu->ctx, AMP_ERR_INVALID_ARG, "no cuDNN device properties to read");
    int64_t n = 0;
    amp_status s = AMP_CUDA_DNN(cu->ctx, cudnnBackendGetAttribute(cu->devprop, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                                                                  CUDNN_TYPE_CHAR, 0, &n, NULL));
    if (s) return s;
    if (n <= 0 || n > (int64_t)1 << 24)
        return amp_seterr(cu->ctx, AMP_ERR_BACKEND, "cuDNN device properties: JSON of %lld bytes", (long long)n);
    char *buf = amp_alloc(cu->ctx, (size_t)n + 1);
    if (!buf) return amp_seterr(cu->ctx, AMP_ERR_NO_MEMORY, "cuDNN device properties: %lld bytes", (long long)n);
    int64_t got = 0;
    s = AMP_CUDA_DNN(cu->ctx, cudnnBackendGetAttribute(cu->devprop, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                                                       CUDNN_TYPE_CHAR, n, &got, buf));
    if (s) {
        amp_dealloc(cu->ctx, buf);
        return s;
    }
    if (got < 0 || got > n) got = n;
    buf[got] = '\0';
    *json = buf;
    return AMP_OK;
}
