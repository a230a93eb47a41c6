/* Raw and NumPy .npy files for --input. A raw file holds the bytes alone: the model gives the
 * dtype, the command line (or the file's size, for one free dim) the shape. NumPy .npy files:
 * format 1.0 and 2.0, C order, little-endian. The header is a
 * Python dict literal, {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, read here
 * by a small scanner that accepts only that form; every size is checked against the file's
 * before anything of that size is allocated. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/amprt/cli.h"

/* The largest header read: numpy writes tens of bytes; a bigger one is not a plain array's. */
#define NPY_MAX_HEADER 65536

static const struct {
    const char *descr;
    amp_dtype dtype;
} npy_types[] = {
    {"<f4", AMP_F32}, {"<f2", AMP_F16}, {"<i8", AMP_I64}, {"<i4", AMP_I32}, {"|u1", AMP_U8}, {"|b1", AMP_BOOL},
};

typedef struct npy_scan {
    const char *p, *end;
} npy_scan;

static void skip_space(npy_scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* The character c, after spaces. */
static bool take(npy_scan *s, char c) {
    skip_space(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* A quoted string without escapes into buf (cap bytes, at most cap - 1 of them kept). */
static bool take_str(npy_scan *s, char *buf, size_t cap) {
    skip_space(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return false;
    char q = *s->p++;
    size_t n = 0;
    while (s->p < s->end && *s->p != q) {
        if (*s->p == '\\' || n + 1 >= cap) return false;
        buf[n++] = *s->p++;
    }
    if (s->p >= s->end) return false;
    s->p++;
    buf[n] = 0;
    return true;
}

static bool take_word(npy_scan *s, const char *w) {
    skip_space(s);
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return false;
    s->p += n;
    return true;
}

/* "(D0, D1, ...)" with an optional trailing comma (one-element tuples need it); Python 2's
 * "2L" too. false for anything else, a rank over AMP_MAX_RANK or a dim over 2^53. */
static bool take_shape(npy_scan *s, int *rank, int64_t *dims) {
    if (!take(s, '(')) return false;
    *rank = 0;
    for (;;) {
        if (take(s, ')')) return true;
        skip_space(s);
        if (*rank == AMP_MAX_RANK || s->p >= s->end || *s->p < '0' || *s->p > '9') return false;
        int64_t v = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            if (v > (INT64_C(1) << 53) / 10) return false;
            v = v * 10 + (*s->p++ - '0');
        }
        if (s->p < s->end && *s->p == 'L') s->p++;
        dims[(*rank)++] = v;
        if (!take(s, ',')) return take(s, ')');
    }
}

/* Parse the header dict into its three fields; NULL, or what is wrong with it. */
static const char *parse_header(npy_scan *s, char *descr, size_t cap, bool *fortran, int *rank, int64_t *dims) {
    bool have_descr = false, have_order = false, have_shape = false;
    if (!take(s, '{')) return "the header is not a dict";
    for (;;) {
        char key[32];
        if (take(s, '}')) break;
        if (!take_str(s, key, sizeof key) || !take(s, ':')) return "the header holds something other than 'key': value";
        if (strcmp(key, "descr") == 0 && !have_descr) {
            skip_space(s);
            if (s->p < s->end && *s->p == '[') return "structured dtypes (a list as descr) are not supported";
            if (!take_str(s, descr, cap)) return "descr is not a dtype string";
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (take_word(s, "True")) *fortran = true;
            else if (take_word(s, "False")) *fortran = false;
            else return "fortran_order is neither True nor False";
            have_order = true;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (!take_shape(s, rank, dims))
                return "shape is not a tuple of at most 8 dims from 0 to 2^53";
            have_shape = true;
        } else {
            return "the header has a key other than descr, fortran_order and shape, or one twice";
        }
        if (!take(s, ',')) {
            if (!take(s, '}')) return "the header dict is not closed";
            break;
        }
    }
    skip_space(s);
    if (s->p != s->end) return "the header holds more than its dict";
    if (!have_descr || !have_order || !have_shape) return "the header lacks descr, fortran_order or shape";
    return NULL;
}

static uint32_t le(const unsigned char *b, int n) {
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

/* Open an --input file for reading: a regular file on a little-endian machine (what is read
 * is little-endian), its size into *size. The descriptor, or -1 after a message. */
static int open_input(const char *path, const char *kind, int64_t *size) {
    if (cli_check_regular(path, "--input")) return -1;
    /* non-blocking, so a FIFO put in its place since is not waited on */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "amprt: cannot read '%s': %s\n", path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        return -1;
    }
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1) {
        fprintf(stderr, "amprt: '%s': %s input needs a little-endian machine\n", path, kind);
        close(fd);
        return -1;
    }
    *size = (int64_t)st.st_size;
    return fd;
}

/* Read need bytes at off into t's data (bools made 0 or 1): 0, or 1 after a message. */
static int read_data(int fd, const char *path, const char *kind, int64_t off, int64_t need, amp_tensor *t) {
    uint8_t *data = amp_tensor_data(t);
    if (need > 0 && pread(fd, data, (size_t)need, (off_t)off) != (ssize_t)need) {
        fprintf(stderr, "amprt: '%s': cannot read the %s data: %s\n", path, kind, strerror(errno));
        return 1;
    }
    if (amp_tensor_dtype(t) == AMP_BOOL)
        for (int64_t e = 0; e < need; e++) data[e] = data[e] != 0;
    return 0;
}

int cli_load_npy(amp_context *ctx, const char *path, amp_tensor **out) {
    int rc = 1;
    char *header = NULL;
    amp_tensor *t = NULL;
    int64_t size = 0;
    int fd = open_input(path, ".npy", &size);
    if (fd < 0) return 1;
    unsigned char pre[12];
    if (size < 10 || pread(fd, pre, 10, 0) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "amprt: '%s' is not a NumPy .npy file (no \\x93NUMPY magic)\n", path);
        goto done;
    }
    if ((pre[6] != 1 && pre[6] != 2) || pre[7] != 0) {
        fprintf(stderr, "amprt: '%s': .npy format version %d.%d is not supported (1.0 and 2.0 are)\n", path, pre[6],
                pre[7]);
        goto done;
    }
    int pre_len = pre[6] == 1 ? 10 : 12;
    if (pre_len == 12 && (size < 12 || pread(fd, pre + 10, 2, 10) != 2)) {
        fprintf(stderr, "amprt: '%s': the .npy file ends inside its header length\n", path);
        goto done;
    }
    uint32_t hlen = le(pre + 8, pre_len - 8);
    if (hlen > NPY_MAX_HEADER || (int64_t)hlen > size - pre_len) {
        fprintf(stderr, "amprt: '%s': the .npy header claims %lu bytes, but %s\n", path, (unsigned long)hlen,
                hlen > NPY_MAX_HEADER ? "at most 65536 are read" : "the file ends before");
        goto done;
    }
    header = malloc((size_t)hlen + 1);
    if (!header || pread(fd, header, hlen, pre_len) != (ssize_t)hlen) {
        fprintf(stderr, "amprt: '%s': cannot read the .npy header\n", path);
        goto done;
    }
    header[hlen] = 0;
    char descr[32] = "";
    bool fortran = false;
    int rank = 0;
    int64_t dims[AMP_MAX_RANK];
    npy_scan sc = {header, header + hlen};
    const char *bad = parse_header(&sc, descr, sizeof descr, &fortran, &rank, dims);
    if (bad) {
        fprintf(stderr, "amprt: '%s': malformed .npy header: %s\n", path, bad);
        goto done;
    }
    if (fortran) {
        fprintf(stderr, "amprt: '%s': Fortran-order .npy arrays are not supported (save np.ascontiguousarray(a))\n",
                path);
        goto done;
    }
    amp_dtype dt = AMP_UNDEFINED;
    for (size_t k = 0; k < sizeof npy_types / sizeof npy_types[0]; k++)
        if (strcmp(descr, npy_types[k].descr) == 0) dt = npy_types[k].dtype;
    if (!dt) {
        fprintf(stderr, "amprt: '%s': .npy dtype '%s' is not supported (%s; little-endian <f4, <f2, <i8, <i4, |u1 "
                        "and |b1 are)\n",
                path, descr, descr[0] == '>' ? "big-endian" : "not one of these");
        goto done;
    }
    /* the data must be exactly what the shape needs: counted before a byte is allocated */
    const int64_t avail = size - pre_len - (int64_t)hlen, es = (int64_t)amp_dtype_size(dt);
    int64_t need = es;
    bool over = false;
    for (int d = 0; d < rank; d++) {
        if (dims[d] != 0 && need > INT64_MAX / dims[d]) over = true;
        else need *= dims[d];
    }
    if (need == 0) over = false; /* a dim of 0 empties it, whatever the others */
    if (over || need != avail) {
        fprintf(stderr, "amprt: '%s': the .npy shape needs %s%lld bytes of data, the file holds %lld\n", path,
                over ? "more than " : "", (long long)(over ? INT64_MAX : need), (long long)avail);
        goto done;
    }
    amp_status s = amp_tensor_create(ctx, dt, rank, dims, &t);
    if (s) {
        fprintf(stderr, "amprt: '%s': %s: %s\n", path, amp_status_name(s), amp_context_last_error(ctx));
        goto done;
    }
    if (read_data(fd, path, ".npy", pre_len + (int64_t)hlen, need, t)) goto done;
    *out = t;
    t = NULL;
    rc = 0;
done:
    amp_tensor_destroy(t);
    free(header);
    if (fd >= 0) close(fd);
    return rc;
}

int cli_load_raw(amp_context *ctx, const amp_model *m, const cli_opts *o, const char *name, const char *path,
                 amp_tensor **out) {
    amp_value_info vi = {.struct_size = sizeof vi};
    bool found = false;
    for (int k = 0; k < amp_model_input_count(m) && !found; k++)
        found = amp_model_input_info(m, k, &vi) == AMP_OK && strcmp(vi.name, name) == 0;
    int64_t dims[AMP_MAX_RANK];
    int unbound = -1;
    if (!found || cli_input_dims(m, o, &vi, dims, &unbound)) return 1;
    const int64_t es = (int64_t)amp_dtype_size(vi.dtype);
    if (es <= 0) {
        fprintf(stderr, "amprt: --input %s: a raw file cannot hold the input's dtype %s\n", name, amp_dtype_name(vi.dtype));
        return 1;
    }
    int64_t size = 0;
    int fd = open_input(path, "raw", &size);
    if (fd < 0) return 1;
    /* the bytes the other dims need; the one dim nothing bound takes what the file holds */
    int64_t need = es;
    bool over = false;
    for (int d = 0; d < vi.rank; d++) {
        if (d == unbound) continue;
        if (dims[d] != 0 && need > INT64_MAX / dims[d]) over = true;
        else need *= dims[d];
    }
    if (need == 0) over = false;
    if (unbound >= 0 && !over && need > 0) {
        if (size == 0) {
            fprintf(stderr, "amprt: '%s' is empty: no rows of '%s' in it (--shapes with a 0 dim asks for none)\n", path,
                    name);
            close(fd);
            return 1;
        }
        if (size % need != 0) {
            fprintf(stderr, "amprt: '%s': %lld bytes are not a whole number of '%s' rows of %lld bytes (%s, dim %d "
                            "free)\n",
                    path, (long long)size, name, (long long)need, amp_dtype_name(vi.dtype), unbound);
            close(fd);
            return 1;
        }
        dims[unbound] = size / need;
        need = size;
    } else if (unbound >= 0) {
        dims[unbound] = 1; /* the others are empty or too large: the check below speaks */
    }
    if (over || need != size) {
        fprintf(stderr, "amprt: '%s': input '%s' as %s [", path, name, amp_dtype_name(vi.dtype));
        for (int d = 0; d < vi.rank; d++) fprintf(stderr, "%s%lld", d ? "," : "", (long long)dims[d]);
        fprintf(stderr, "] needs %s%lld bytes, the file holds %lld (give the shape with --shapes)\n",
                over ? "more than " : "", (long long)(over ? INT64_MAX : need), (long long)size);
        close(fd);
        return 1;
    }
    amp_tensor *t = NULL;
    amp_status s = amp_tensor_create(ctx, vi.dtype, vi.rank, dims, &t);
    if (s) {
        fprintf(stderr, "amprt: '%s': %s: %s\n", path, amp_status_name(s), amp_context_last_error(ctx));
        close(fd);
        return 1;
    }
    int rc = read_data(fd, path, "raw", 0, need, t);
    close(fd);
    if (rc) {
        amp_tensor_destroy(t);
        return 1;
    }
    *out = t;
    return 0;
}
