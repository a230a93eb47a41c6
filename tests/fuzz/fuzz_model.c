/* libFuzzer target: model bytes -> load -> verify (link, type check) -> infer shapes -> plan,
 * and an autocast conversion of whatever loads. Limits keep one input cheap. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "amprt/amprt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    amp_context_desc d = {.struct_size = sizeof d, .max_tensor_elements = 1 << 20, .max_file_bytes = 1 << 22,
                          .max_nodes = 4096};
    amp_context *ctx = NULL;
    if (amp_context_create(&d, &ctx)) return 0;
    amp_model *m = NULL, *c = NULL;
    amp_session *s = NULL;
    if (amp_model_load_buffer(ctx, data, size, NULL, &m) == AMP_OK) {
        amp_autocast_options o = {.struct_size = sizeof o, .dtype = AMP_F16, .keep_io_types = 1};
        amp_model_autocast(m, &o, &c, NULL);
        if (amp_session_create(m, NULL, &s) == AMP_OK) {
            /* bind every symbolic dim of the inputs to 2 */
            amp_dim_binding b[32];
            int nb = 0;
            for (int i = 0; i < amp_model_input_count(m) && nb < 32; i++) {
                amp_value_info vi = {.struct_size = sizeof vi};
                if (amp_model_input_info(m, i, &vi)) continue;
                for (int k = 0; k < vi.rank && nb < 32; k++)
                    if (vi.dim_names[k]) {
                        bool seen = false;
                        for (int j = 0; j < nb; j++) seen |= strcmp(b[j].name, vi.dim_names[k]) == 0;
                        if (!seen) b[nb++] = (amp_dim_binding){vi.dim_names[k], 2};
                    }
            }
            amp_plan_stats ps = {.struct_size = sizeof ps};
            amp_session_plan(s, nb, b, &ps);
        }
    }
    amp_session_destroy(s);
    amp_model_destroy(c);
    amp_model_destroy(m);
    amp_context_destroy(ctx);
    return 0;
}
