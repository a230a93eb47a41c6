/* The backend interface: selection by name, the wrappers' defaults, and the checking backend
 * catching kernels that read what they did not write or write past their buffers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(backend, .init = setup, .fini = teardown, .timeout = 120);

Test(backend, create_by_name) {
    amp_backend *b = NULL;
    cr_assert_eq(amp_backend_create(ctx, "cpu", 2, &b), AMP_OK);
    cr_expect_str_eq(b->i.name, "cpu");
    cr_expect(b->i.host_memory);
    cr_expect_eq(b->threads, 2);
    amp_backend_destroy(b);
    cr_assert_eq(amp_backend_create(ctx, "auto", 1, &b), AMP_OK);
    cr_expect_str_eq(b->i.name, "cpu", "without a CUDA backend, auto settles on the CPU");
    amp_backend_destroy(b);
    cr_assert_eq(amp_backend_create(ctx, NULL, 1, &b), AMP_OK);
    cr_expect_str_eq(b->i.name, "cpu");
    amp_backend_destroy(b);
    cr_assert_eq(amp_backend_create(ctx, "cpu-check", 1, &b), AMP_OK);
    cr_expect_str_eq(b->i.name, "cpu-check");
    amp_backend_destroy(b);
    amp_backend_destroy(NULL);

    amp_backend *untouched = (amp_backend *)0x1;
    amp_status s = amp_backend_create(ctx, "cuda", 1, &untouched);
    cr_expect(s == AMP_ERR_NO_DEVICE || s == AMP_ERR_UNSUPPORTED, "got %s", amp_status_name(s));
    cr_expect_eq(untouched, (amp_backend *)0x1, "out-parameter changed on failure");
    cr_expect_eq(amp_backend_create(ctx, "tpu", 1, &untouched), AMP_ERR_INVALID_ARG);
    cr_expect(strstr(amp_context_last_error(ctx), "unknown backend 'tpu'"), "%s", amp_context_last_error(ctx));
    cr_expect_eq(amp_backend_create(ctx, "cpu", 0, &untouched), AMP_ERR_INVALID_ARG);
    for (int i = 0; amp_backend_names[i]; i++) {
        if (strcmp(amp_backend_names[i], "cuda") == 0) continue;
        cr_expect_eq(amp_backend_create(ctx, amp_backend_names[i], 1, &b), AMP_OK, "%s", amp_backend_names[i]);
        amp_backend_destroy(b);
    }
}

Test(backend, names_and_notes) {
    /* the public list is the list amp_backend_create takes */
    int n = 0;
    while (amp_backend_name(n)) {
        cr_expect_str_eq(amp_backend_name(n), amp_backend_names[n]);
        n++;
    }
    cr_expect_geq(n, 5);
    cr_expect_null(amp_backend_name(-1));
    cr_expect_null(amp_backend_name(n + 1));
    cr_expect_str_eq(amp_backend_name(0), "auto");

    amp_model *m = tt_load(ctx, "models/lenet/model.onnx");
    amp_session_options o = {.struct_size = sizeof o, .backend = "cpu", .threads = 1};
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, &o, &s), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_str_eq(amp_session_backend(s), "cpu");
    cr_expect_str_eq(amp_session_backend_note(s), "as asked");
    amp_session_destroy(s);
    /* auto says what it took and why: the device, or the CPU and what was missing */
    o.backend = "auto";
    cr_assert_eq(amp_session_create(m, &o, &s), AMP_OK, "%s", amp_context_last_error(ctx));
    const char *note = amp_session_backend_note(s);
    if (strcmp(amp_session_backend(s), "cuda") == 0)
        cr_expect(strncmp(note, "auto: a CUDA device", 19) == 0, "%s", note);
    else
        cr_expect(strncmp(note, "auto: the CPU, since ", 21) == 0 && strlen(note) > 30, "%s", note);
    amp_session_destroy(s);
    cr_expect_str_eq(amp_session_backend_note(NULL), "");
    cr_expect_null(amp_session_backend(NULL));
    amp_model_destroy(m);
}

/* ---- a host backend whose one kernel misbehaves on purpose -------------------------------- */

typedef enum fault { FAULT_NONE, FAULT_WRITE_PAST, FAULT_READ_OUTPUT, FAULT_READ_DEAD } fault;
typedef struct fault_state {
    fault f;
    size_t dead_offset; /* FAULT_READ_DEAD: arena byte offset of a dead buffer */
} fault_state;

/* y = x + 1 over floats, with the chosen mistake. */
static amp_status fault_run(amp_backend *b, amp_backend_step *st) {
    fault_state *fs = b->state;
    const float *x = st->k.in[0]->data;
    float *y = st->k.out[0]->data;
    int64_t n = st->k.out[0]->numel;
    for (int64_t i = 0; i < n; i++) {
        switch (fs->f) {
        case FAULT_READ_OUTPUT: y[i] += x[i] + 1.0f; break; /* reads y before writing it */
        case FAULT_READ_DEAD: {
            float d;
            memcpy(&d, st->layout->arena + fs->dead_offset, sizeof d);
            y[i] = x[i] + d;
            break;
        }
        default: y[i] = x[i] + 1.0f; break;
        }
    }
    if (fs->f == FAULT_WRITE_PAST) ((unsigned char *)y)[st->k.out[0]->nbytes] = 0;
    return AMP_OK;
}

static amp_status host_alloc(amp_backend *b, amp_mem_kind kind, size_t bytes, void **ptr) {
    (void)kind;
    *ptr = amp_alloc(b->ctx, bytes);
    return *ptr ? AMP_OK : AMP_ERR_NO_MEMORY;
}
static void host_free(amp_backend *b, amp_mem_kind kind, void *ptr) {
    (void)kind;
    amp_dealloc(b->ctx, ptr);
}
static amp_status host_copy(amp_backend *b, void *dst, const void *src, size_t n) {
    (void)b;
    memcpy(dst, src, n);
    return AMP_OK;
}
static void fault_destroy(amp_backend *b) { amp_dealloc(b->ctx, b); }

static amp_backend *fault_backend(fault_state *fs) {
    amp_backend *b = amp_calloc(ctx, 1, sizeof *b);
    cr_assert_not_null(b);
    /* only run, memory and destroy: the wrappers supply supports, prepare, release, synchronize */
    b->i = (amp_backend_i){.name = "fault", .host_memory = true, .run = fault_run, .mem_alloc = host_alloc,
                           .mem_free = host_free, .upload = host_copy, .download = host_copy,
                           .destroy = fault_destroy};
    b->state = fs;
    b->ctx = ctx;
    b->threads = 1;
    return b;
}

/* An arena of three buffers: x at 0 (live at steps 0-1), y at 512 (written by step 1), and a
 * dead one at 1024 (live at step 0 only). Runs step 1 (y = f(x)) through the checking wrapper. */
static amp_status run_faulty(fault f, float *y_out) {
    fault_state fs = {.f = f, .dead_offset = 1024};
    amp_backend *chk = NULL;
    cr_assert_eq(amp_backend_check_create(fault_backend(&fs), &chk), AMP_OK);
    void *arena = NULL;
    cr_assert_eq(chk->i.mem_alloc(chk, AMP_MEM_ARENA, 2048, &arena), AMP_OK);
    unsigned char *a = arena;
    for (int i = 0; i < 2048; i++) cr_assert_eq(a[i], AMP_POISON_BYTE, "fresh arenas are poisoned");
    amp_membuf bufs[3] = {{.size = 512, .first = 0, .last = 1}, {.size = 512, .first = 1, .last = 1},
                          {.size = 512, .first = 0, .last = 0}};
    size_t offsets[3] = {0, 512, 1024}, bytes[3] = {40, 40, 40};
    amp_backend_layout l = {.arena = a, .arena_bytes = 2048, .nbufs = 3, .bufs = bufs, .offsets = offsets,
                            .bytes = bytes};
    float *x = (float *)a;
    for (int i = 0; i < 10; i++) x[i] = (float)i * 0.5f - 1.0f;
    float dead_value = 3.0f;
    memcpy(a + 1024, &dead_value, sizeof dead_value); /* what a step-0 value left behind */
    int64_t dims[1] = {10};
    amp_tensor tx, ty;
    amp_tensor_view(&tx, AMP_F32, 1, dims, a);
    amp_tensor_view(&ty, AMP_F32, 1, dims, a + 512);
    amp_tensor *in[1] = {&tx}, *out[1] = {&ty};
    amp_node node = {.name = "faulty", .op_type = "Add", .domain = ""};
    amp_backend_step st = {.k = {.ctx = ctx, .n = &node, .opset = 17, .nin = 1, .nout = 1, .in = in, .out = out,
                                 .threads = 1},
                           .index = 1,
                           .layout = &l};
    amp_status s = amp_backend_run(chk, &st);
    memcpy(y_out, a + 512, 10 * sizeof(float));
    for (int i = 0; i < 10; i++) cr_expect_eq(x[i], (float)i * 0.5f - 1.0f, "the live input is left alone");
    chk->i.mem_free(chk, AMP_MEM_ARENA, arena);
    amp_backend_destroy(chk);
    return s;
}

Test(backend, check_passes_a_correct_kernel) {
    float y[10];
    cr_assert_eq(run_faulty(FAULT_NONE, y), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int i = 0; i < 10; i++) cr_expect_eq(y[i], (float)i * 0.5f, "y[%d] = %g", i, y[i]);
}

Test(backend, check_catches_a_write_past_the_buffer) {
    float y[10];
    cr_assert_eq(run_faulty(FAULT_WRITE_PAST, y), AMP_ERR_INTERNAL);
    const char *msg = amp_context_last_error(ctx);
    cr_expect(strstr(msg, "faulty") && strstr(msg, "arena byte 552"), "%s", msg);
}

Test(backend, check_makes_reading_the_output_nan) {
    float y[10];
    cr_assert_eq(run_faulty(FAULT_READ_OUTPUT, y), AMP_OK);
    for (int i = 0; i < 10; i++) cr_expect(isnan(y[i]), "y[%d] = %g read a poisoned output", i, y[i]);
}

Test(backend, check_makes_reading_a_dead_buffer_nan) {
    float y[10];
    cr_assert_eq(run_faulty(FAULT_READ_DEAD, y), AMP_OK);
    for (int i = 0; i < 10; i++) cr_expect(isnan(y[i]), "y[%d] = %g read a dead buffer", i, y[i]);
    /* without the wrapper the same kernel silently reads the stale 3.0 */
    fault_state fs = {.f = FAULT_READ_DEAD, .dead_offset = 0};
    amp_backend *raw = fault_backend(&fs);
    float xs[4] = {1, 2, 3, 4}, ys[4];
    int64_t dims[1] = {4};
    amp_tensor tx, ty;
    amp_tensor_view(&tx, AMP_F32, 1, dims, xs);
    amp_tensor_view(&ty, AMP_F32, 1, dims, ys);
    amp_tensor *in[1] = {&tx}, *out[1] = {&ty};
    amp_node node = {.name = "faulty", .op_type = "Add", .domain = ""};
    float stale = 3.0f;
    amp_backend_layout l = {.arena = (unsigned char *)&stale, .arena_bytes = sizeof stale};
    amp_backend_step st = {.k = {.ctx = ctx, .n = &node, .nin = 1, .nout = 1, .in = in, .out = out, .threads = 1},
                           .layout = &l};
    cr_assert_eq(amp_backend_run(raw, &st), AMP_OK);
    cr_expect_eq(ys[3], 7.0f);
    amp_backend_destroy(raw);
}

Test(backend, check_wraps_only_host_memory) {
    fault_state fs = {0};
    amp_backend *dev = fault_backend(&fs);
    dev->i.host_memory = false;
    amp_backend *out = (amp_backend *)0x1;
    cr_expect_eq(amp_backend_check_create(dev, &out), AMP_ERR_UNSUPPORTED); /* dev is destroyed */
    cr_expect_eq(out, (amp_backend *)0x1);
}

/* ---- sessions: every model in models/ gives the same bits on cpu and cpu-check ------------ */

static void run_model(const char *name, const char *backend, amp_tensor **outs, int *nout, size_t *arena) {
    char path[512], in_path[512];
    snprintf(path, sizeof path, AMP_SOURCE_DIR "/models/%s/model.onnx", name);
    amp_model *m = NULL;
    cr_assert_eq(amp_model_load(ctx, path, &m), AMP_OK, "%s: %s", name, amp_context_last_error(ctx));
    amp_session_options o = {.struct_size = sizeof o, .backend = backend, .threads = 2};
    amp_session *s = NULL;
    cr_assert_eq(amp_session_create(m, &o, &s), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_expect_str_eq(amp_session_backend(s), backend);
    int nin = amp_model_input_count(m);
    amp_tensor *ins[16] = {0};
    const char *names[16];
    cr_assert(nin <= 16);
    for (int i = 0; i < nin; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        cr_assert_eq(amp_model_input_info(m, i, &vi), AMP_OK);
        names[i] = vi.name;
        snprintf(in_path, sizeof in_path, AMP_SOURCE_DIR "/models/%s/test_data_set_0/input_%d.pb", name, i);
        cr_assert_eq(amp_tensor_load_pb(ctx, in_path, &ins[i], NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    }
    *nout = amp_model_output_count(m);
    const char *onames[16];
    cr_assert(*nout <= 16);
    for (int i = 0; i < *nout; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        cr_assert_eq(amp_model_output_info(m, i, &vi), AMP_OK);
        onames[i] = vi.name;
        outs[i] = NULL;
    }
    cr_assert_eq(amp_session_run(s, nin, names, (const amp_tensor *const *)ins, *nout, onames, outs), AMP_OK,
                 "%s on %s: %s", name, backend, amp_session_last_error(s));
    amp_plan_stats ps = {.struct_size = sizeof ps};
    cr_assert_eq(amp_session_last_plan(s, &ps), AMP_OK);
    *arena = ps.arena_bytes;
    for (int i = 0; i < nin; i++) amp_tensor_destroy(ins[i]);
    amp_session_destroy(s);
    amp_model_destroy(m);
}

/* Every model in models/ on the CPU and on `backend`: the same output bits; the same arena when
 * same_arena (the device stand-in stages inputs in the arena too, so its arena is larger). */
static void models_agree(const char *backend, bool same_arena) {
    static const char *const models[] = {"lenet", "mlp", "mlp_decomposed", "encoder", "gpt_block", "resnet",
                                         "mobilenetv2", "unet", "lstm_tagger", "overflow", "detector"};
    for (size_t mi = 0; mi < sizeof models / sizeof *models; mi++) {
        amp_tensor *a[16], *b[16];
        int na, nb;
        size_t arena_a, arena_b;
        run_model(models[mi], "cpu", a, &na, &arena_a);
        run_model(models[mi], backend, b, &nb, &arena_b);
        cr_assert_eq(na, nb);
        if (same_arena) cr_expect_eq(arena_a, arena_b, "%s: %s plans the same arena", models[mi], backend);
        else cr_expect_geq(arena_b, arena_a, "%s", models[mi]);
        for (int i = 0; i < na; i++) {
            cr_expect(tt_equal(a[i], b[i]), "%s output %d differs on %s", models[mi], i, backend);
            cr_expect(tt_nse(a[i], a[i]) == 0.0 && a[i]->numel > 0, "%s output %d is finite", models[mi], i);
            amp_tensor_destroy(a[i]);
            amp_tensor_destroy(b[i]);
        }
    }
}

Test(backend, models_agree_bit_for_bit_under_the_checking_backend) { models_agree("cpu-check", true); }

/* ---- the device-memory stand-in: sessions stage, upload and download for it ---------------- */

Test(backend, models_agree_bit_for_bit_behind_a_device_memory_boundary) { models_agree("cpu-device", false); }

Test(backend, the_device_stand_in_refuses_host_pointers) {
    amp_backend *b = NULL;
    cr_assert_eq(amp_backend_create(ctx, "cpu-device", 1, &b), AMP_OK);
    cr_expect_not(b->i.host_memory);
    /* a Relu whose tensors are host memory: the step must be refused, naming the input */
    amp_test_node *t = tn_new(ctx, "Relu");
    float x[4] = {1, -2, 3, -4}, y[4] = {0};
    int64_t dims[1] = {4};
    amp_tensor in, out;
    amp_tensor_view(&in, AMP_F32, 1, dims, x);
    amp_tensor_view(&out, AMP_F32, 1, dims, y);
    amp_tensor *pin[1] = {&in}, *pout[1] = {&out};
    amp_backend_step st = {.k = {.ctx = ctx, .n = &t->node, .opset = 17, .nin = 1, .nout = 1, .in = pin, .out = pout,
                                 .threads = 1},
                           .index = -1};
    cr_expect_eq(amp_backend_run(b, &st), AMP_ERR_INTERNAL);
    cr_expect(strstr(amp_context_last_error(ctx), "input 0") && strstr(amp_context_last_error(ctx), "cpu-device"),
              "%s", amp_context_last_error(ctx));
    cr_expect_eq(y[0], 0.0f, "nothing ran");
    /* the same step on device memory runs */
    void *dx = NULL, *dy = NULL;
    cr_assert_eq(b->i.mem_alloc(b, AMP_MEM_ARENA, sizeof x, &dx), AMP_OK);
    cr_assert_eq(b->i.mem_alloc(b, AMP_MEM_ARENA, sizeof y, &dy), AMP_OK);
    cr_assert_eq(b->i.upload(b, dx, x, sizeof x), AMP_OK);
    cr_expect_eq(b->i.upload(b, dx, dy, sizeof x), AMP_ERR_INTERNAL, "device to device is not an upload");
    in.data = dx;
    out.data = dy;
    cr_assert_eq(amp_backend_run(b, &st), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(b->i.download(b, y, dy, sizeof y), AMP_OK);
    cr_expect(y[0] == 1 && y[1] == 0 && y[2] == 3 && y[3] == 0);
    cr_expect_eq(b->i.download(b, y, x, sizeof y), AMP_ERR_INTERNAL, "host to host is not a download");
    b->i.mem_free(b, AMP_MEM_ARENA, dx);
    b->i.mem_free(b, AMP_MEM_ARENA, dy);
    tn_free(t);
    amp_backend_destroy(b);
}
