/* Runs an ONNX model through the installed amprt library on seeded random inputs of the
 * declared shapes (symbolic dims bound to 1) and prints each output's shape and first values.
 * usage: run_model MODEL.onnx */
#include <amprt/amprt.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
        return 2;
    }
    amp_context *ctx = NULL;
    amp_model *model = NULL;
    amp_session *sess = NULL;
    amp_tensor *in[16] = {0}, *out[16] = {0};
    const char *in_names[16], *out_names[16];
    int rc = 1;
    if (amp_context_create(NULL, &ctx) != AMP_OK) return 1;
    amp_status s = amp_model_load(ctx, argv[1], &model);
    if (s != AMP_OK) {
        fprintf(stderr, "load: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        goto done;
    }
    int nin = amp_model_input_count(model), nout = amp_model_output_count(model);
    if (nin > 16 || nout > 16) goto done;
    unsigned seed = 1;
    for (int i = 0; i < nin; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        amp_model_input_info(model, i, &vi);
        int64_t dims[AMP_MAX_RANK];
        for (int d = 0; d < vi.rank; d++) dims[d] = vi.dims[d] >= 0 ? vi.dims[d] : 1;
        if (vi.dtype != AMP_F32 || amp_tensor_create(ctx, AMP_F32, vi.rank, dims, &in[i]) != AMP_OK) {
            fprintf(stderr, "input %s: only float32 inputs in this example\n", vi.name);
            goto done;
        }
        float *x = amp_tensor_data(in[i]);
        for (int64_t e = 0; e < amp_tensor_numel(in[i]); e++) {
            seed = seed * 1103515245u + 12345u;
            x[e] = (float)((seed >> 16) & 0x7fff) / 16384.0f - 1.0f;
        }
        in_names[i] = vi.name;
    }
    for (int i = 0; i < nout; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        amp_model_output_info(model, i, &vi);
        out_names[i] = vi.name;
    }
    amp_session_options opts = {.struct_size = sizeof opts, .backend = "auto", .threads = 1};
    s = amp_session_create(model, &opts, &sess);
    if (s == AMP_OK) s = amp_session_run(sess, nin, in_names, (const amp_tensor *const *)in, nout, out_names, out);
    if (s != AMP_OK) {
        fprintf(stderr, "run: %s: %s\n", amp_status_name(s), sess ? amp_session_last_error(sess) : amp_context_last_error(ctx));
        goto done;
    }
    for (int i = 0; i < nout; i++) {
        printf("%s [", out_names[i]);
        for (int d = 0; d < amp_tensor_rank(out[i]); d++) printf("%s%lld", d ? "," : "", (long long)amp_tensor_dims(out[i])[d]);
        printf("]");
        if (amp_tensor_dtype(out[i]) == AMP_F32) {
            const float *y = amp_tensor_data(out[i]);
            for (int64_t e = 0; e < amp_tensor_numel(out[i]) && e < 4; e++) printf(" %g", y[e]);
        }
        printf("\n");
    }
    rc = 0;
done:
    for (int i = 0; i < 16; i++) {
        amp_tensor_destroy(in[i]);
        amp_tensor_destroy(out[i]);
    }
    amp_session_destroy(sess);
    amp_model_destroy(model);
    amp_context_destroy(ctx);
    return rc;
}
