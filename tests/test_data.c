/* Training data: IDX files (good and malformed, raw and gzip), datasets, the real
 * Fashion-MNIST sets when installed, and the batcher's order, determinism and resume. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/data.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ---- a context whose allocator counts live blocks: every error path must free all ----- */

static long live_blocks;
static void *count_alloc(void *u, size_t n) {
    (void)u;
    void *p = malloc(n ? n : 1);
    if (p) live_blocks++;
    return p;
}
static void *count_realloc(void *u, void *p, size_t n) {
    (void)u;
    if (!p) return count_alloc(u, n);
    return realloc(p, n ? n : 1);
}
static void count_free(void *u, void *p) {
    (void)u;
    if (p) live_blocks--;
    free(p);
}

static amp_context *ctx;
static char dir[64];

static amp_context *counting_context(int64_t max_elements, int64_t max_bytes) {
    amp_context_desc d = {0};
    d.struct_size = sizeof d;
    d.allocator.alloc = count_alloc;
    d.allocator.realloc = count_realloc;
    d.allocator.free = count_free;
    d.max_tensor_elements = max_elements;
    d.max_file_bytes = max_bytes;
    amp_context *c = NULL;
    cr_assert_eq(amp_context_create(&d, &c), AMP_OK);
    return c;
}

static void setup(void) {
    live_blocks = 0;
    ctx = counting_context(0, 0);
    snprintf(dir, sizeof dir, "/tmp/amp_data_XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
}

static void teardown(void) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    rmdir(dir);
    amp_context_destroy(ctx);
}

TestSuite(data, .init = setup, .fini = teardown);

/* ---- building IDX bytes ------------------------------------------------------------------- */

typedef struct bytes {
    unsigned char b[8192];
    size_t n;
} bytes;

static void put(bytes *x, const void *p, size_t n) {
    cr_assert(x->n + n <= sizeof x->b);
    memcpy(x->b + x->n, p, n);
    x->n += n;
}
static void put_u8(bytes *x, unsigned v) {
    unsigned char c = (unsigned char)v;
    put(x, &c, 1);
}
static void put_be(bytes *x, uint64_t v, int width) {
    for (int i = width - 1; i >= 0; i--) put_u8(x, (unsigned)(v >> (8 * i)) & 0xff);
}
/* magic 00 00 type nd, then the dims */
static void put_header(bytes *x, unsigned type, int nd, const uint32_t *dims) {
    put_u8(x, 0);
    put_u8(x, 0);
    put_u8(x, type);
    put_u8(x, (unsigned)nd);
    for (int i = 0; i < nd; i++) put_be(x, dims[i], 4);
}

/* gzip-compress in into out (one member). */
static void gzip_bytes(const bytes *in, bytes *out) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    cr_assert_eq(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (unsigned char *)in->b;
    zs.avail_in = (uInt)in->n;
    zs.next_out = out->b + out->n;
    zs.avail_out = (uInt)(sizeof out->b - out->n);
    cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out->n = sizeof out->b - zs.avail_out;
    deflateEnd(&zs);
}

static char *write_file(const char *name, const bytes *x) {
    static char path[8][256];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    if (x->n) cr_assert_eq(fwrite(x->b, 1, x->n, f), x->n);
    fclose(f);
    return p;
}

static char *write_gz(const char *name, const bytes *x) {
    bytes z = {{0}, 0};
    gzip_bytes(x, &z);
    return write_file(name, &z);
}

/* ---- good files ----------------------------------------------------------------------------- */

static void load_ok(const char *path, amp_tensor **t) {
    amp_status s = amp_idx_load(ctx, path, t);
    cr_assert_eq(s, AMP_OK, "%s: %s", path, amp_context_last_error(ctx));
}

Test(data, idx_u8_raw_and_gzip) {
    bytes x = {{0}, 0};
    uint32_t dims[3] = {3, 2, 4};
    put_header(&x, 0x08, 3, dims);
    for (int i = 0; i < 24; i++) put_u8(&x, (unsigned)(i * 10 + 3));
    const char *raw = write_file("u8.idx", &x);
    const char *gz = write_gz("u8.idx.gz", &x);
    for (int k = 0; k < 2; k++) {
        amp_tensor *t = NULL;
        load_ok(k ? gz : raw, &t);
        cr_assert_eq(t->dtype, AMP_U8);
        cr_assert_eq(t->rank, 3);
        cr_expect_eq(t->dims[0], 3);
        cr_expect_eq(t->dims[1], 2);
        cr_expect_eq(t->dims[2], 4);
        const uint8_t *v = t->data;
        for (int i = 0; i < 24; i++) cr_expect_eq(v[i], i * 10 + 3, "element %d", i);
        amp_tensor_destroy(t);
    }
    cr_expect_eq(live_blocks, 1, "only the context is left allocated");
}

Test(data, idx_signed_and_float_types) {
    const int16_t i16[] = {-32768, -1, 0, 12345, 32767};
    const int32_t i32[] = {INT32_MIN, -7, 0, 65536, INT32_MAX};
    const int8_t i8[] = {-128, -1, 0, 1, 127};
    const float f32[] = {1.5f, -2.25f, 3.0e38f, 1e-40f, 0.0f};
    const double f64[] = {1.0 / 3.0, -2.5e300, 4.9e-324, 0.0, 7.0};
    const unsigned types[] = {0x09, 0x0B, 0x0C, 0x0D, 0x0E};
    const amp_dtype want[] = {AMP_I8, AMP_I32, AMP_I32, AMP_F32, AMP_F64};
    for (int k = 0; k < 5; k++) {
        bytes x = {{0}, 0};
        uint32_t n = 5;
        put_header(&x, types[k], 1, &n);
        for (int i = 0; i < 5; i++) {
            uint32_t u32;
            uint64_t u64;
            switch (types[k]) {
            case 0x09: put_u8(&x, (uint8_t)i8[i]); break;
            case 0x0B: put_be(&x, (uint16_t)i16[i], 2); break;
            case 0x0C: put_be(&x, (uint32_t)i32[i], 4); break;
            case 0x0D: memcpy(&u32, &f32[i], 4); put_be(&x, u32, 4); break;
            default: memcpy(&u64, &f64[i], 8); put_be(&x, u64, 8); break;
            }
        }
        char name[32];
        snprintf(name, sizeof name, "t%02x.idx%s", types[k], k % 2 ? ".gz" : "");
        const char *path = k % 2 ? write_gz(name, &x) : write_file(name, &x);
        amp_tensor *t = NULL;
        load_ok(path, &t);
        cr_assert_eq(t->dtype, want[k], "type 0x%02x", types[k]);
        cr_assert_eq(t->numel, 5);
        for (int i = 0; i < 5; i++) {
            switch (types[k]) {
            case 0x09: cr_expect_eq(((int8_t *)t->data)[i], i8[i]); break;
            case 0x0B: cr_expect_eq(((int32_t *)t->data)[i], i16[i], "i16 element %d", i); break;
            case 0x0C: cr_expect_eq(((int32_t *)t->data)[i], i32[i]); break;
            case 0x0D: cr_expect(memcmp(&((float *)t->data)[i], &f32[i], 4) == 0, "f32 element %d", i); break;
            default: cr_expect(memcmp(&((double *)t->data)[i], &f64[i], 8) == 0, "f64 element %d", i); break;
            }
        }
        amp_tensor_destroy(t);
    }
    cr_expect_eq(live_blocks, 1);
}

Test(data, idx_gzip_members_and_empty_dims) {
    /* header in one gzip member, data in the next: concatenated gzip files are one stream */
    bytes h = {{0}, 0}, d = {{0}, 0}, z = {{0}, 0};
    uint32_t dims[2] = {2, 3};
    put_header(&h, 0x08, 2, dims);
    for (int i = 0; i < 6; i++) put_u8(&d, (unsigned)(200 + i));
    gzip_bytes(&h, &z);
    gzip_bytes(&d, &z);
    amp_tensor *t = NULL;
    load_ok(write_file("two.gz", &z), &t);
    cr_assert_eq(t->numel, 6);
    for (int i = 0; i < 6; i++) cr_expect_eq(((uint8_t *)t->data)[i], 200 + i);
    amp_tensor_destroy(t);

    /* a zero dimension is an empty tensor, even beside a huge one */
    bytes e = {{0}, 0};
    uint32_t edims[2] = {0, 0xFFFFFFFFu};
    put_header(&e, 0x08, 2, edims);
    load_ok(write_file("empty.idx", &e), &t);
    cr_expect_eq(t->numel, 0);
    cr_expect_eq(t->dims[1], 0xFFFFFFFFll);
    amp_tensor_destroy(t);
    cr_expect_eq(live_blocks, 1);
}

/* ---- malformed files ------------------------------------------------------------------------ */

typedef enum { RAW, GZ } packing;

typedef struct bad_case {
    const char *name;
    amp_status want;
    const char *frag; /* a piece of the message besides the file name */
} bad_case;

static void expect_bad(amp_context *c, const char *path, const bad_case *bc) {
    long before = live_blocks;
    amp_tensor *t = (amp_tensor *)(uintptr_t)0x1;
    amp_status s = amp_idx_load(c, path, &t);
    const char *msg = amp_context_last_error(c);
    cr_expect_eq(s, bc->want, "%s: got %s (%s), want %s", bc->name, amp_status_name(s), msg,
                 amp_status_name(bc->want));
    cr_expect(t == (amp_tensor *)(uintptr_t)0x1, "%s: out-parameter written on failure", bc->name);
    cr_expect(strstr(msg, path) != NULL, "%s: message does not name the file: %s", bc->name, msg);
    cr_expect(strstr(msg, bc->frag) != NULL, "%s: message lacks '%s': %s", bc->name, bc->frag, msg);
    cr_expect_eq(live_blocks, before, "%s: %ld blocks leaked", bc->name, live_blocks - before);
}

static const uint32_t dims_3x4[2] = {3, 4};

static void u8_file(bytes *x, int data_bytes) {
    put_header(x, 0x08, 2, dims_3x4);
    for (int i = 0; i < data_bytes; i++) put_u8(x, (unsigned)i);
}

Test(data, idx_malformed_headers) {
    struct {
        bad_case c;
        unsigned char head[8];
        int n;
    } cases[] = {
        {{"bad magic", AMP_ERR_PARSE, "bad magic"}, {0x01, 0x00, 0x08, 0x01, 0, 0, 0, 1}, 8},
        {{"bad magic (second byte)", AMP_ERR_PARSE, "bad magic"}, {0x00, 0x07, 0x08, 0x01, 0, 0, 0, 1}, 8},
        {{"unknown type", AMP_ERR_PARSE, "type 0x0a"}, {0, 0, 0x0A, 1, 0, 0, 0, 1}, 8},
        {{"ndims 0", AMP_ERR_PARSE, "0 dimensions"}, {0, 0, 0x08, 0, 0, 0, 0, 1}, 8},
        {{"ndims 9", AMP_ERR_PARSE, "9 dimensions"}, {0, 0, 0x08, 9, 0, 0, 0, 1}, 8},
        {{"short magic", AMP_ERR_PARSE, "truncated header"}, {0, 0, 0x08}, 3},
        {{"empty file", AMP_ERR_PARSE, "truncated header"}, {0}, 0},
        {{"dims cut short", AMP_ERR_PARSE, "truncated header"}, {0, 0, 0x08, 2, 0, 0, 0, 3}, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int k = 0; k < 2; k++) {
            bytes x = {{0}, 0};
            put(&x, cases[i].head, (size_t)cases[i].n);
            char name[64];
            snprintf(name, sizeof name, "hdr%zu%s", i, k ? ".gz" : "");
            const char *p = k ? write_gz(name, &x) : write_file(name, &x);
            expect_bad(ctx, p, &cases[i].c);
        }
    }
}

Test(data, idx_truncated_and_trailing) {
    bytes x = {{0}, 0}, z = {{0}, 0};

    u8_file(&x, 11);
    bad_case short_raw = {"data one byte short", AMP_ERR_PARSE, "truncated data: 11 of 12"};
    expect_bad(ctx, write_file("short.idx", &x), &short_raw);
    expect_bad(ctx, write_gz("short.idx.gz", &x), &short_raw);

    x.n = 0;
    u8_file(&x, 13);
    bad_case trailing = {"a byte after the data", AMP_ERR_PARSE, "trailing bytes"};
    expect_bad(ctx, write_file("long.idx", &x), &trailing);
    expect_bad(ctx, write_gz("long.idx.gz", &x), &trailing);

    /* a whole, correct gzip member followed by bytes that are not another member */
    x.n = 0;
    u8_file(&x, 12);
    gzip_bytes(&x, &z);
    bytes zg = z;
    put(&zg, "junk", 4);
    bad_case after_gz = {"junk after the gzip stream", AMP_ERR_PARSE, "after the gzip stream"};
    expect_bad(ctx, write_file("junk.gz", &zg), &after_gz);

    /* the compressed bytes cut: the stream ends before its end marker */
    bytes zc = z;
    zc.n = z.n - 6;
    bad_case cut = {"gzip stream cut", AMP_ERR_PARSE, "cut short"};
    expect_bad(ctx, write_file("cut.gz", &zc), &cut);
    /* cut inside the deflate data, before all data came out */
    zc.n = 12;
    expect_bad(ctx, write_file("cut2.gz", &zc), &cut);

    /* the CRC in the gzip trailer does not match the data */
    bytes zb = z;
    zb.b[zb.n - 8] ^= 0x5a;
    bad_case crc = {"gzip CRC mismatch", AMP_ERR_PARSE, "corrupt gzip"};
    expect_bad(ctx, write_file("crc.gz", &zb), &crc);

    /* a corrupt deflate block header (reserved block type 3) */
    bytes zd = z;
    zd.b[10] = 0x07;
    bad_case deflate_bad = {"corrupt deflate data", AMP_ERR_PARSE, "corrupt gzip"};
    expect_bad(ctx, write_file("bad_deflate.gz", &zd), &deflate_bad);
}

Test(data, idx_sizes_and_limits) {
    bytes x = {{0}, 0};
    /* 8 dims of 2^32-1: the product does not fit 64 bits */
    uint32_t huge[8];
    for (int i = 0; i < 8; i++) huge[i] = 0xFFFFFFFFu;
    put_header(&x, 0x08, 8, huge);
    bad_case ovf = {"dims product overflows", AMP_ERR_OVERFLOW, "overflows"};
    expect_bad(ctx, write_file("ovf.idx", &x), &ovf);

    /* 2^32 elements: past the default element limit of 2^31, and nothing is allocated for it */
    x.n = 0;
    uint32_t big[2] = {65536, 65536};
    put_header(&x, 0x08, 2, big);
    bad_case lim = {"too many elements", AMP_ERR_LIMIT, "limit"};
    expect_bad(ctx, write_gz("big.gz", &x), &lim);

    /* limits of a context: elements, then decompressed bytes */
    amp_context *small = counting_context(100, 64);
    x.n = 0;
    uint32_t d1 = 101;
    put_header(&x, 0x08, 1, &d1);
    bad_case elems = {"101 elements, limit 100", AMP_ERR_LIMIT, "101 elements"};
    expect_bad(small, write_gz("e101.gz", &x), &elems);

    x.n = 0;
    uint32_t d2 = 8;
    put_header(&x, 0x0E, 1, &d2); /* 8 f64: 8 + 64 bytes > 64 */
    bad_case bytes_lim = {"72 bytes, limit 64", AMP_ERR_LIMIT, "72 bytes"};
    expect_bad(small, write_gz("b72.gz", &x), &bytes_lim);

    /* the byte limit also bounds what is read from the file: a tiny IDX header hidden behind
     * a large gzip member of nothing but empty stored blocks would otherwise be read forever */
    bytes z = {{0}, 0};
    const unsigned char gzhead[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    put(&z, gzhead, 10);
    for (int i = 0; i < 40; i++) put(&z, "\x00\x00\x00\xff\xff", 5); /* empty stored block, not final */
    bad_case read_lim = {"compressed input over the limit", AMP_ERR_LIMIT, "limit of 64 bytes"};
    expect_bad(small, write_file("stored.gz", &z), &read_lim);
    amp_context_destroy(small);

    /* a file of the right size under the same limits loads */
    amp_context *ok = counting_context(100, 64);
    x.n = 0;
    uint32_t d3 = 7;
    put_header(&x, 0x0E, 1, &d3); /* 8 + 56 bytes */
    for (int i = 0; i < 7; i++) put_be(&x, 0x3ff0000000000000ull, 8);
    amp_tensor *t = NULL;
    cr_expect_eq(amp_idx_load(ok, write_file("b64.idx", &x), &t), AMP_OK, "%s", amp_context_last_error(ok));
    amp_tensor_destroy(t);
    amp_context_destroy(ok);
}

/* ---- memory bounded by what the stream holds -------------------------------------------- */

/* an allocator that keeps each block's size in front of it and the peak of live bytes */
static size_t cur_bytes, peak_bytes;
static void *peak_alloc(void *u, size_t n) {
    (void)u;
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    cur_bytes += n;
    if (cur_bytes > peak_bytes) peak_bytes = cur_bytes;
    return (char *)p + 16;
}
static void peak_free(void *u, void *q) {
    (void)u;
    if (!q) return;
    size_t *p = (size_t *)((char *)q - 16);
    cur_bytes -= p[0];
    free(p);
}
static void *peak_realloc(void *u, void *q, size_t n) {
    if (!q) return peak_alloc(u, n);
    size_t *p = (size_t *)((char *)q - 16), old = p[0];
    size_t *np = realloc(p, n + 16);
    if (!np) return NULL;
    np[0] = n;
    cur_bytes = cur_bytes - old + n;
    if (cur_bytes > peak_bytes) peak_bytes = cur_bytes;
    return (char *)np + 16;
}

static amp_context *peak_context(void) {
    amp_context_desc d = {.struct_size = sizeof d};
    d.allocator.alloc = peak_alloc;
    d.allocator.realloc = peak_realloc;
    d.allocator.free = peak_free;
    amp_context *c = NULL;
    cr_assert_eq(amp_context_create(&d, &c), AMP_OK);
    cur_bytes = peak_bytes = 0;
    return c;
}

/* an IDX header, then fill bytes of value (i % 251) * mul, then extra zero bytes, gzip-compressed
 * or raw */
static char *write_big(const char *name, unsigned type, int nd, const uint32_t *dims, size_t fill, unsigned mul,
                       size_t extra, bool gz) {
    static char path[4][256];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    bytes h = {{0}, 0};
    put_header(&h, type, nd, dims);
    unsigned char *data = calloc(fill + extra + 1, 1);
    cr_assert(data);
    for (size_t i = 0; i < fill; i++) data[i] = (unsigned char)((i % 251) * mul);
    if (gz) {
        gzFile f = gzopen(p, "wb6");
        cr_assert(f);
        cr_assert_eq(gzwrite(f, h.b, (unsigned)h.n), (int)h.n);
        if (fill + extra) cr_assert_eq(gzwrite(f, data, (unsigned)(fill + extra)), (int)(fill + extra));
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        cr_assert(f);
        fwrite(h.b, 1, h.n, f);
        fwrite(data, 1, fill + extra, f);
        fclose(f);
    }
    free(data);
    return p;
}

Test(data, idx_memory_bounded_by_the_stream) {
    amp_context *c = peak_context();
    for (int gz = 0; gz < 2; gz++) {
        /* 256 MiB declared, 100 bytes there: a truncation error, and no 256 MiB allocation */
        uint32_t big[2] = {16384, 16384};
        char *p = write_big(gz ? "decl.gz" : "decl.idx", 0x08, 2, big, 100, 1, 0, gz);
        amp_tensor *t = NULL;
        cur_bytes = peak_bytes = 0;
        cr_expect_eq(amp_idx_load(c, p, &t), AMP_ERR_PARSE);
        cr_expect(strstr(amp_context_last_error(c), "truncated data: 100 of 268435456") != NULL, "%s",
                  amp_context_last_error(c));
        cr_expect_lt(peak_bytes, (size_t)4 << 20, "%s: peak %zu bytes for 100 bytes of data", p, peak_bytes);
        cr_expect_eq(cur_bytes, 0, "%zu bytes leaked", cur_bytes);

        /* 5 MiB there of the 256 declared: memory follows the bytes read (the buffer doubles) */
        p = write_big(gz ? "decl5.gz" : "decl5.idx", 0x08, 2, big, (size_t)5 << 20, 1, 0, gz);
        cur_bytes = peak_bytes = 0;
        cr_expect_eq(amp_idx_load(c, p, &t), AMP_ERR_PARSE);
        cr_expect(strstr(amp_context_last_error(c), "truncated data: 5242880 of 268435456") != NULL, "%s",
                  amp_context_last_error(c));
        cr_expect_lt(peak_bytes, (size_t)20 << 20, "%s: peak %zu bytes for 5 MiB of data", p, peak_bytes);
        cr_expect_eq(cur_bytes, 0);

        /* the payload, then 64 MiB more: an error after one byte past the payload */
        uint32_t d1[1] = {3000};
        p = write_big(gz ? "extra.gz" : "extra.idx", 0x08, 1, d1, 3000, 1, (size_t)64 << 20, gz);
        cur_bytes = peak_bytes = 0;
        cr_expect_eq(amp_idx_load(c, p, &t), AMP_ERR_PARSE);
        cr_expect(strstr(amp_context_last_error(c), "trailing bytes after the IDX data") != NULL, "%s",
                  amp_context_last_error(c));
        cr_expect_lt(peak_bytes, (size_t)2 << 20, "%s: peak %zu bytes", p, peak_bytes);

        /* a whole file past the first allocation: 3 MiB of i16 widened to 6 MiB of i32 */
        uint32_t d16[2] = {1024, 1536};
        p = write_big(gz ? "i16.gz" : "i16.idx", 0x0B, 2, d16, (size_t)3 << 20, 1, 0, gz);
        cur_bytes = peak_bytes = 0;
        cr_assert_eq(amp_idx_load(c, p, &t), AMP_OK, "%s", amp_context_last_error(c));
        cr_expect_eq(t->nbytes, (size_t)6 << 20);
        const int32_t *v = t->data;
        int bad = 0;
        for (size_t i = 0; i < (size_t)1536 * 1024; i++) {
            int hi = (int)((2 * i) % 251), lo = (int)((2 * i + 1) % 251);
            bad += v[i] != (int16_t)(uint16_t)(hi << 8 | lo);
        }
        cr_expect_eq(bad, 0, "%d elements differ", bad);
        cr_expect_lt(peak_bytes, (size_t)16 << 20, "peak %zu bytes for a 6 MiB tensor", peak_bytes);
        amp_tensor_destroy(t);
        cr_expect_eq(cur_bytes, 0);
    }
    amp_context_destroy(c);
}

Test(data, idx_io_errors) {
    char p[256];
    snprintf(p, sizeof p, "%s/no-such-file.gz", dir);
    bad_case missing = {"missing file", AMP_ERR_IO, "cannot open"};
    expect_bad(ctx, p, &missing);
    bad_case folder = {"a folder", AMP_ERR_IO, "read error"};
    expect_bad(ctx, dir, &folder);
    amp_tensor *t = NULL;
    cr_expect_eq(amp_idx_load(ctx, NULL, &t), AMP_ERR_INVALID_ARG);
}

/* ---- datasets ------------------------------------------------------------------------------- */

/* n images of 1x2 pixels encoding their index (low byte, high byte), label index % 10. */
static void index_files(int n, const char *prefix, bool gz, int bad_label_at) {
    bytes img = {{0}, 0}, lab = {{0}, 0};
    uint32_t idims[3] = {(uint32_t)n, 1, 2}, ldim = (uint32_t)n;
    put_header(&img, 0x08, 3, idims);
    put_header(&lab, 0x08, 1, &ldim);
    for (int i = 0; i < n; i++) {
        put_u8(&img, (unsigned)(i & 0xff));
        put_u8(&img, (unsigned)(i >> 8));
        put_u8(&lab, i == bad_label_at ? 10u : (unsigned)(i % 10));
    }
    char in[64], ln[64];
    snprintf(in, sizeof in, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    snprintf(ln, sizeof ln, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    if (gz) {
        write_gz(in, &img);
        write_gz(ln, &lab);
    } else {
        write_file(in, &img);
        write_file(ln, &lab);
    }
}

static int64_t decode_index(const float *px) {
    return (int64_t)lround(px[0] * 255.0) + 256 * (int64_t)lround(px[1] * 255.0);
}

Test(data, dataset_from_folder) {
    index_files(300, "train", true, -1);
    index_files(40, "t10k", false, -1);
    amp_image_dataset *tr = NULL, *te = NULL;
    cr_assert_eq(amp_image_dataset_load_dir(ctx, dir, AMP_SPLIT_TRAIN, NULL, &tr), AMP_OK, "%s",
                 amp_context_last_error(ctx));
    cr_assert_eq(amp_image_dataset_load_dir(ctx, dir, AMP_SPLIT_TEST, NULL, &te), AMP_OK, "%s",
                 amp_context_last_error(ctx));
    cr_expect_eq(tr->n, 300);
    cr_expect_eq(te->n, 40);
    cr_expect_eq(tr->h, 1);
    cr_expect_eq(tr->w, 2);
    cr_assert_eq(tr->images->rank, 4);
    cr_expect_eq(tr->images->dims[1], 1);
    cr_assert_eq(tr->labels->dtype, AMP_I64);
    const float *x = tr->images->data;
    const int64_t *y = tr->labels->data;
    for (int i = 0; i < 300; i++) {
        cr_expect_eq(decode_index(x + 2 * i), i);
        cr_expect_eq(y[i], i % 10);
    }
    amp_image_dataset_destroy(tr);
    amp_image_dataset_destroy(te);
    amp_image_dataset_destroy(NULL);
    cr_expect_eq(live_blocks, 1);
}

Test(data, dataset_normalisation) {
    int64_t dims[3] = {1, 2, 3}, n = 1;
    amp_tensor *img = NULL, *lab = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_U8, 3, dims, &img), AMP_OK);
    cr_assert_eq(amp_tensor_create(ctx, AMP_U8, 1, &n, &lab), AMP_OK);
    const uint8_t px[6] = {0, 1, 51, 128, 254, 255};
    memcpy(img->data, px, 6);
    amp_dataset_options o = {sizeof o, 0.25, 0.5, 0};
    amp_image_dataset *d = NULL;
    cr_assert_eq(amp_image_dataset_from_tensors(ctx, img, lab, &o, &d), AMP_OK, "%s", amp_context_last_error(ctx));
    const float *v = d->images->data;
    for (int i = 0; i < 6; i++) {
        double want = (px[i] / 255.0 - 0.25) / 0.5;
        cr_expect(fabs(v[i] - want) <= 1e-6 * fmax(1.0, fabs(want)), "pixel %d: %g, want %g", i, v[i], want);
    }
    amp_image_dataset_destroy(d);
    /* defaults: x / 255 */
    cr_assert_eq(amp_image_dataset_from_tensors(ctx, img, lab, NULL, &d), AMP_OK);
    v = d->images->data;
    cr_expect_eq(v[0], 0.0f);
    cr_expect_eq(v[5], 1.0f);
    cr_expect(fabs(v[2] - 0.2) < 1e-7);
    amp_image_dataset_destroy(d);
    /* a negative std is refused */
    amp_dataset_options neg = {sizeof neg, 0, -1, 0};
    d = NULL;
    cr_expect_eq(amp_image_dataset_from_tensors(ctx, img, lab, &neg, &d), AMP_ERR_INVALID_ARG);
    cr_expect(d == NULL);
    amp_tensor_destroy(img);
    amp_tensor_destroy(lab);
    cr_expect_eq(live_blocks, 1);
}

Test(data, dataset_bad_pairs) {
    char ip[256], lp[256];
    /* counts differ */
    index_files(20, "a", false, -1);
    index_files(19, "b", false, -1);
    snprintf(ip, sizeof ip, "%s/a-images-idx3-ubyte", dir);
    snprintf(lp, sizeof lp, "%s/b-labels-idx1-ubyte", dir);
    amp_image_dataset *d = NULL;
    cr_expect_eq(amp_image_dataset_load(ctx, ip, lp, NULL, &d), AMP_ERR_SHAPE);
    cr_expect(strstr(amp_context_last_error(ctx), "20 images") && strstr(amp_context_last_error(ctx), "19 labels"),
              "%s", amp_context_last_error(ctx));
    cr_expect(strstr(amp_context_last_error(ctx), lp), "%s", amp_context_last_error(ctx));

    /* a label out of range, named with its sample and file */
    index_files(20, "c", true, 7);
    snprintf(ip, sizeof ip, "%s/c-images-idx3-ubyte.gz", dir);
    snprintf(lp, sizeof lp, "%s/c-labels-idx1-ubyte.gz", dir);
    cr_expect_eq(amp_image_dataset_load(ctx, ip, lp, NULL, &d), AMP_ERR_INVALID_ARG);
    cr_expect(strstr(amp_context_last_error(ctx), "label 10 of sample 7"), "%s", amp_context_last_error(ctx));
    cr_expect(strstr(amp_context_last_error(ctx), lp), "%s", amp_context_last_error(ctx));
    /* ... which 11 classes accept */
    amp_dataset_options o11 = {sizeof o11, 0, 0, 11};
    cr_expect_eq(amp_image_dataset_load(ctx, ip, lp, &o11, &d), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_image_dataset_destroy(d);
    d = NULL;

    /* zero images; images in a file of the labels' shape; a broken labels file */
    bytes x = {{0}, 0};
    uint32_t zdims[3] = {0, 28, 28};
    put_header(&x, 0x08, 3, zdims);
    const char *zp = write_file("zero-images", &x);
    x.n = 0;
    uint32_t zl = 0;
    put_header(&x, 0x08, 1, &zl);
    const char *zlp = write_file("zero-labels", &x);
    cr_expect_eq(amp_image_dataset_load(ctx, zp, zlp, NULL, &d), AMP_ERR_SHAPE);
    cr_expect(strstr(amp_context_last_error(ctx), zp), "%s", amp_context_last_error(ctx));
    cr_expect_eq(amp_image_dataset_load(ctx, lp, lp, NULL, &d), AMP_ERR_SHAPE);
    x.n = 0;
    uint32_t l20 = 20;
    put_header(&x, 0x08, 1, &l20);
    const char *broken = write_file("broken-labels", &x);
    cr_expect_eq(amp_image_dataset_load(ctx, ip, broken, NULL, &d), AMP_ERR_PARSE);
    cr_expect(strstr(amp_context_last_error(ctx), broken), "%s", amp_context_last_error(ctx));
    /* pixels that are not bytes */
    x.n = 0;
    uint32_t fdims[3] = {20, 1, 2};
    put_header(&x, 0x0D, 3, fdims);
    for (int i = 0; i < 40; i++) put_be(&x, 0, 4);
    const char *fimg = write_file("float-images", &x);
    cr_expect_eq(amp_image_dataset_load(ctx, fimg, lp, NULL, &d), AMP_ERR_UNSUPPORTED);
    cr_expect(d == NULL);

    /* a folder without the files */
    char empty[300];
    snprintf(empty, sizeof empty, "%s/none", dir);
    cr_expect_eq(amp_image_dataset_load_dir(ctx, empty, AMP_SPLIT_TRAIN, NULL, &d), AMP_ERR_NOT_FOUND);
    cr_expect(strstr(amp_context_last_error(ctx), "train-images-idx3-ubyte"), "%s", amp_context_last_error(ctx));
    cr_expect_eq(live_blocks, 1);
}

/* ---- the real Fashion-MNIST ----------------------------------------------------------------- */

static bool have_fashion(void) {
    if (access(FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0) return true;
    cr_log_warn("SKIP: %s not installed (Debian package dataset-fashion-mnist)", FASHION_DIR);
    printf("SKIP: %s not installed\n", FASHION_DIR);
    return false;
}

static void check_split(amp_data_split split, int64_t n, int64_t per_class) {
    amp_image_dataset *d = NULL;
    cr_assert_eq(amp_image_dataset_load_dir(ctx, FASHION_DIR, split, NULL, &d), AMP_OK, "%s",
                 amp_context_last_error(ctx));
    cr_expect_eq(d->n, n);
    cr_expect_eq(d->h, 28);
    cr_expect_eq(d->w, 28);
    int64_t count[10] = {0};
    const int64_t *y = d->labels->data;
    for (int64_t i = 0; i < d->n; i++) {
        cr_assert(y[i] >= 0 && y[i] < 10, "label %lld at %lld", (long long)y[i], (long long)i);
        count[y[i]]++;
    }
    for (int c = 0; c < 10; c++) cr_expect_eq(count[c], per_class, "class %d: %lld", c, (long long)count[c]);
    double sum = 0;
    const float *x = d->images->data;
    for (int64_t i = 0; i < d->images->numel; i++) sum += x[i];
    double mean = sum / (double)d->images->numel;
    /* the published per-pixel mean of the training set is 0.2860; the test set's is 0.2868 */
    cr_expect(fabs(mean - 0.286) / 0.286 < 0.01, "pixel mean %.5f", mean);
    amp_image_dataset_destroy(d);
}

Test(data, fashion_mnist_train) {
    if (!have_fashion()) return;
    check_split(AMP_SPLIT_TRAIN, 60000, 6000);
    /* normalised with the set's published mean and std: mean 0 and std 1 come out */
    amp_dataset_options o = {sizeof o, 0.2860, 0.3530, 10};
    amp_image_dataset *d = NULL;
    cr_assert_eq(amp_image_dataset_load_dir(ctx, FASHION_DIR, AMP_SPLIT_TRAIN, &o, &d), AMP_OK);
    double s = 0, s2 = 0;
    const float *x = d->images->data;
    for (int64_t i = 0; i < d->images->numel; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    double m = s / (double)d->images->numel, var = s2 / (double)d->images->numel - m * m;
    cr_expect(fabs(m) < 0.005, "normalised mean %g", m);
    cr_expect(fabs(sqrt(var) - 1.0) < 0.005, "normalised std %g", sqrt(var));
    amp_image_dataset_destroy(d);
    cr_expect_eq(live_blocks, 1);
}

Test(data, fashion_mnist_test) {
    if (!have_fashion()) return;
    check_split(AMP_SPLIT_TEST, 10000, 1000);
}

/* ---- the batcher ---------------------------------------------------------------------------- */

enum { NS = 103, BS = 10 };

static amp_image_dataset *index_dataset(int n) {
    int64_t dims[3] = {n, 1, 2}, nn = n;
    amp_tensor *img = NULL, *lab = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_U8, 3, dims, &img), AMP_OK);
    cr_assert_eq(amp_tensor_create(ctx, AMP_I32, 1, &nn, &lab), AMP_OK);
    for (int i = 0; i < n; i++) {
        ((uint8_t *)img->data)[2 * i] = (uint8_t)(i & 0xff);
        ((uint8_t *)img->data)[2 * i + 1] = (uint8_t)(i >> 8);
        ((int32_t *)lab->data)[i] = i % 10;
    }
    amp_image_dataset *d = NULL;
    cr_assert_eq(amp_image_dataset_from_tensors(ctx, img, lab, NULL, &d), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(img);
    amp_tensor_destroy(lab);
    return d;
}

typedef struct batch_io {
    amp_tensor *x, *y;
} batch_io;

static batch_io batch_tensors(int64_t b, int64_t h, int64_t w) {
    batch_io io;
    int64_t xd[4] = {b, 1, h, w};
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 4, xd, &io.x), AMP_OK);
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, &b, &io.y), AMP_OK);
    return io;
}

static void free_io(batch_io io) {
    amp_tensor_destroy(io.x);
    amp_tensor_destroy(io.y);
}

/* Run one epoch; order[k] receives the dataset index of the k-th sample returned. Checks that
 * labels travel with their images and that rows after a short batch are zero. Returns the
 * samples seen. */
static int64_t run_epoch(amp_batcher *b, batch_io io, int64_t *order, int64_t *batches) {
    int64_t seen = 0, cnt = 0, nb = 0;
    for (;;) {
        cr_assert_eq(amp_batcher_next(b, io.x, io.y, &cnt), AMP_OK, "%s", amp_context_last_error(ctx));
        if (cnt == 0) break;
        nb++;
        const float *x = io.x->data;
        const int64_t *y = io.y->data;
        for (int64_t i = 0; i < cnt; i++) {
            int64_t k = decode_index(x + 2 * i);
            cr_assert_eq(y[i], k % 10, "label does not belong to sample %lld", (long long)k);
            order[seen++] = k;
        }
        for (int64_t i = cnt; i < io.y->dims[0]; i++) {
            cr_expect_eq(x[2 * i], 0.0f);
            cr_expect_eq(y[i], 0);
        }
    }
    if (batches) *batches = nb;
    return seen;
}

static void expect_permutation(const int64_t *order, int64_t seen, int64_t n) {
    cr_assert_eq(seen, n);
    char hit[NS] = {0};
    for (int64_t i = 0; i < seen; i++) {
        cr_assert(order[i] >= 0 && order[i] < n);
        cr_expect_eq(hit[order[i]], 0, "sample %lld twice", (long long)order[i]);
        hit[order[i]] = 1;
    }
}

static amp_batcher *make_batcher(const amp_image_dataset *d, uint64_t seed, bool drop_last, bool sequential) {
    amp_batcher_options o = {0};
    o.struct_size = sizeof o;
    o.batch = BS;
    o.seed = seed;
    o.drop_last = drop_last;
    o.sequential = sequential;
    amp_batcher *b = NULL;
    cr_assert_eq(amp_batcher_create(ctx, d, &o, &b), AMP_OK, "%s", amp_context_last_error(ctx));
    return b;
}

Test(data, batcher_every_sample_once_and_deterministic) {
    amp_image_dataset *d = index_dataset(NS);
    amp_batcher *a = make_batcher(d, 42, false, false), *b = make_batcher(d, 42, false, false);
    batch_io io = batch_tensors(BS, 1, 2);
    cr_expect_eq(amp_batcher_batches_per_epoch(a), 11);
    int64_t oa[3][NS], ob[NS], nb = 0;
    for (int e = 0; e < 3; e++) {
        cr_assert_eq(amp_batcher_seek(a, e, 0), AMP_OK);
        cr_assert_eq(amp_batcher_seek(b, e, 0), AMP_OK);
        expect_permutation(oa[e], run_epoch(a, io, oa[e], &nb), NS);
        cr_expect_eq(nb, 11);
        expect_permutation(ob, run_epoch(b, io, ob, NULL), NS);
        cr_expect(memcmp(oa[e], ob, sizeof ob) == 0, "same seed, epoch %d: different orders", e);
        for (int i = 0; i < NS; i++) cr_expect_eq(amp_batcher_order(a, e, i), oa[e][i]);
    }
    /* a shuffle, and a new one each epoch */
    int fixed = 0;
    for (int i = 0; i < NS; i++) fixed += oa[0][i] == i;
    cr_expect(fixed < NS / 4, "epoch 0 is hardly shuffled (%d fixed points)", fixed);
    cr_expect(memcmp(oa[0], oa[1], sizeof oa[0]) != 0);
    cr_expect(memcmp(oa[1], oa[2], sizeof oa[0]) != 0);
    /* another seed, another order */
    amp_batcher *c = make_batcher(d, 43, false, false);
    int64_t oc[NS];
    expect_permutation(oc, run_epoch(c, io, oc, NULL), NS);
    cr_expect(memcmp(oa[0], oc, sizeof oc) != 0);
    amp_batcher_destroy(c);
    amp_batcher_destroy(a);
    amp_batcher_destroy(b);
    amp_batcher_destroy(NULL);
    free_io(io);
    amp_image_dataset_destroy(d);
    cr_expect_eq(live_blocks, 1);
}

Test(data, batcher_sequential_and_drop_last) {
    amp_image_dataset *d = index_dataset(NS);
    batch_io io = batch_tensors(BS, 1, 2);
    amp_batcher *s = make_batcher(d, 7, false, true);
    int64_t o[NS];
    cr_assert_eq(run_epoch(s, io, o, NULL), NS);
    for (int i = 0; i < NS; i++) cr_expect_eq(o[i], i);
    amp_batcher_destroy(s);

    amp_batcher *b = make_batcher(d, 7, true, false);
    cr_expect_eq(amp_batcher_batches_per_epoch(b), NS / BS);
    int64_t nb = 0;
    int64_t seen = run_epoch(b, io, o, &nb);
    cr_expect_eq(seen, (NS / BS) * BS);
    cr_expect_eq(nb, NS / BS);
    char hit[NS] = {0};
    for (int64_t i = 0; i < seen; i++) {
        cr_expect_eq(hit[o[i]], 0);
        hit[o[i]] = 1;
    }
    amp_batcher_destroy(b);
    free_io(io);
    amp_image_dataset_destroy(d);
}

Test(data, batcher_resume_matches_continuing) {
    amp_image_dataset *d = index_dataset(NS);
    batch_io io = batch_tensors(BS, 1, 2);
    amp_batcher *a = make_batcher(d, 99, false, false);
    int64_t full[3][NS];
    for (int e = 0; e < 3; e++) {
        cr_assert_eq(amp_batcher_seek(a, e, 0), AMP_OK);
        cr_assert_eq(run_epoch(a, io, full[e], NULL), NS);
    }
    /* a fresh batcher, as in a new process, resumes at epoch 1 batch 4 */
    amp_batcher *r = make_batcher(d, 99, false, false);
    cr_assert_eq(amp_batcher_seek(r, 1, 4), AMP_OK);
    int64_t ep = -1, bi = -1;
    amp_batcher_position(r, &ep, &bi);
    cr_expect(ep == 1 && bi == 4);
    int64_t rest[NS];
    int64_t seen = run_epoch(r, io, rest, NULL);
    cr_assert_eq(seen, NS - 4 * BS);
    cr_expect(memcmp(rest, full[1] + 4 * BS, (size_t)seen * sizeof rest[0]) == 0, "resumed epoch differs");
    amp_batcher_position(r, &ep, &bi);
    cr_expect(ep == 1 && bi == 11, "position after the epoch: %lld %lld", (long long)ep, (long long)bi);
    cr_assert_eq(amp_batcher_seek(r, 2, 0), AMP_OK);
    cr_assert_eq(run_epoch(r, io, rest, NULL), NS);
    cr_expect(memcmp(rest, full[2], sizeof rest) == 0, "epoch after the resumed one differs");
    /* the end of an epoch is a valid position too, past it is not */
    cr_expect_eq(amp_batcher_seek(r, 0, 11), AMP_OK);
    int64_t cnt = -1;
    cr_expect_eq(amp_batcher_next(r, io.x, io.y, &cnt), AMP_OK);
    cr_expect_eq(cnt, 0);
    cr_expect_eq(amp_batcher_seek(r, 0, 12), AMP_ERR_INVALID_ARG);
    cr_expect_eq(amp_batcher_seek(r, -1, 0), AMP_ERR_INVALID_ARG);
    amp_batcher_destroy(a);
    amp_batcher_destroy(r);
    free_io(io);
    amp_image_dataset_destroy(d);
}

Test(data, batcher_shuffle_is_uniform) {
    /* where sample 0 lands over 20000 epochs: a biased shuffle (the classic swap-with-any
     * mistake, or modulo bias) shows up as a chi-square far above its 9 degrees of freedom */
    amp_image_dataset *d = index_dataset(10);
    amp_batcher_options o = {sizeof o, 10, 1234, false, false};
    amp_batcher *b = NULL;
    cr_assert_eq(amp_batcher_create(ctx, d, &o, &b), AMP_OK);
    int64_t pos[10] = {0};
    const int epochs = 20000;
    for (int e = 0; e < epochs; e++)
        for (int i = 0; i < 10; i++)
            if (amp_batcher_order(b, e, i) == 0) pos[i]++;
    double chi2 = 0, expct = epochs / 10.0;
    for (int i = 0; i < 10; i++) chi2 += (pos[i] - expct) * (pos[i] - expct) / expct;
    cr_expect(chi2 < 30, "chi-square %.1f (9 dof)", chi2);
    amp_batcher_destroy(b);
    amp_image_dataset_destroy(d);
}

Test(data, batcher_bad_arguments) {
    amp_image_dataset *d = index_dataset(NS);
    amp_batcher_options o = {sizeof o, 0, 1, false, false};
    amp_batcher *b = NULL;
    cr_expect_eq(amp_batcher_create(ctx, d, &o, &b), AMP_ERR_INVALID_ARG);
    o.batch = NS + 1;
    o.drop_last = true;
    cr_expect_eq(amp_batcher_create(ctx, d, &o, &b), AMP_ERR_INVALID_ARG);
    cr_expect(b == NULL);
    o.drop_last = false;
    cr_assert_eq(amp_batcher_create(ctx, d, &o, &b), AMP_OK);
    cr_expect_eq(amp_batcher_batches_per_epoch(b), 1);
    batch_io wrong = batch_tensors(BS, 1, 2); /* batch of 10 for a batcher of 104 */
    int64_t cnt = -1;
    cr_expect_eq(amp_batcher_next(b, wrong.x, wrong.y, &cnt), AMP_ERR_SHAPE);
    cr_expect_eq(cnt, -1);
    batch_io right = batch_tensors(NS + 1, 1, 2);
    cr_expect_eq(amp_batcher_next(b, right.x, wrong.y, &cnt), AMP_ERR_SHAPE);
    cr_expect_eq(amp_batcher_next(b, right.x, right.y, &cnt), AMP_OK);
    cr_expect_eq(cnt, NS);
    free_io(wrong);
    free_io(right);
    amp_batcher_destroy(b);
    amp_image_dataset_destroy(d);
    cr_expect_eq(live_blocks, 1);
}
