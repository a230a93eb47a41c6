/* libFuzzer targets over file readers that take a path: the TensorProto reader used by
 * `amprt check` (FUZZ_TENSOR) and the IDX reader of the training data (FUZZ_IDX). Each input
 * is written to one temporary file per process and read back. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "amprt/amprt.h"
#include "runtime/data.h"

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) snprintf(path, sizeof path, "/tmp/amprt_fuzz_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    amp_context_desc d = {.struct_size = sizeof d, .max_tensor_elements = 1 << 22, .max_file_bytes = 1 << 24};
    amp_context *ctx = NULL;
    if (amp_context_create(&d, &ctx)) return 0;
    amp_tensor *t = NULL;
#if defined(FUZZ_TENSOR)
    char *name = NULL;
    if (amp_tensor_load_pb(ctx, path, &t, &name) == AMP_OK) amp_free(ctx, name);
#else
    if (amp_idx_load(ctx, path, &t) == AMP_OK && amp_tensor_rank(t) >= 1) {
        /* as a label file: a dataset from it must validate or fail cleanly */
        amp_image_dataset *ds = NULL;
        amp_tensor *img = NULL;
        int64_t dims[3] = {amp_tensor_dims(t)[0], 2, 2};
        if (amp_tensor_create(ctx, AMP_U8, 3, dims, &img) == AMP_OK &&
            amp_image_dataset_from_tensors(ctx, img, t, NULL, &ds) == AMP_OK)
            amp_image_dataset_destroy(ds);
        amp_tensor_destroy(img);
    }
#endif
    amp_tensor_destroy(t);
    amp_context_destroy(ctx);
    return 0;
}
