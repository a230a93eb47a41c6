/* amprt: checks on the files a command reads and writes, made before any work starts. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/amprt/cli.h"

/* A file the library reads only after the model and the data are loaded: checked first. */
int cli_check_regular(const char *path, const char *what) {
    struct stat st;
    if (stat(path, &st) != 0) return 0; /* the reader names a missing file itself */
    if (S_ISREG(st.st_mode)) return 0;
    fprintf(stderr, "amprt: %s '%s' is %s, not a regular file\n", what, path,
            S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO" : "a device or socket");
    return 1;
}

int cli_check_data_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "amprt: --data '%s': %s\n", dir, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "amprt: --data '%s' is not a folder\n", dir);
        return 1;
    }
    /* the files in it are opened by the dataset loader, which refuses FIFOs and folders */
    return 0;
}

/* Split path into its folder (malloc'd, "." when there is none) and its last component. */
static char *folder_of(const char *path, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!slash) return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = 0;
    }
    return d;
}

/* Writes are atomic: PATH.tmp.PID, then a rename. A run killed in between leaves the temporary
 * behind; remove those whose process is gone (a live PID may be another run writing now). */
static void remove_stale_tmp(const char *folder, const char *base) {
    DIR *d = opendir(folder);
    if (!d) return;
    size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp.", 5) != 0) continue;
        const char *digits = n + bl + 5;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (!*digits || *end || errno || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        size_t len = strlen(folder) + strlen(n) + 2;
        char *p = malloc(len);
        if (!p) break;
        snprintf(p, len, "%s/%s", folder, n);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && unlink(p) == 0)
            fprintf(stderr, "amprt: removed '%s', left by a run that was stopped\n", p);
        free(p);
    }
    closedir(d);
}

int cli_check_writable(const char *path, const char *what) {
    struct stat st;
    if (!path[0] || path[strlen(path) - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
        fprintf(stderr, "amprt: %s '%s' is a folder, not a file name\n", what, path);
        return 1;
    }
    const char *base;
    char *folder = folder_of(path, &base);
    if (!folder) {
        fprintf(stderr, "amprt: out of memory\n");
        return 1;
    }
    size_t n = strlen(folder) + 64;
    char *probe = malloc(n);
    int rc = 1;
    if (!probe) {
        fprintf(stderr, "amprt: out of memory\n");
        goto done;
    }
    snprintf(probe, n, "%s/.amprt-probe.%ld", folder, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "amprt: %s '%s' cannot be written: folder '%s': %s\n", what, path, folder, strerror(errno));
        goto done;
    }
    close(fd);
    unlink(probe);
    remove_stale_tmp(folder, base);
    rc = 0;
done:
    free(probe);
    free(folder);
    return rc;
}

/* All of stdin into a malloc'd buffer (doubling, so the memory is at most twice what stdin
 * held). NULL after a message. */
static unsigned char *read_stdin(size_t *size) {
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "amprt: out of memory reading the model from stdin\n");
        return NULL;
    }
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            unsigned char *nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                fprintf(stderr, "amprt: out of memory reading the model from stdin (%zu bytes so far)\n", n);
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "amprt: cannot read the model from stdin: %s\n", strerror(errno));
        free(buf);
        return NULL;
    }
    *size = n;
    return buf;
}

int cli_load_model(amp_context *ctx, const char *path, amp_model **m) {
    amp_status s;
    if (strcmp(path, "-") != 0) {
        s = amp_model_load(ctx, path, m);
    } else {
        size_t n = 0;
        unsigned char *buf = read_stdin(&n);
        if (!buf) return 1;
        /* no folder to find external data in: a model read from stdin must hold its tensors */
        s = amp_model_load_buffer(ctx, buf, n, NULL, m);
        free(buf);
    }
    if (s) fprintf(stderr, "amprt: cannot load the model: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
    return s ? 1 : 0;
}

int cli_save_model(amp_context *ctx, amp_model *m, const char *path) {
    amp_status s;
    if (strcmp(path, "-") != 0) {
        s = amp_model_save(m, path);
        if (s) fprintf(stderr, "amprt: cannot write '%s': %s: %s\n", path, amp_status_name(s), amp_context_last_error(ctx));
        return s ? 1 : 0;
    }
    /* the library writes files (temporary name, then rename); stdout gets a finished one, so a
     * failed conversion writes nothing to the pipe */
    const char *dir = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/amprt-out-XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        fprintf(stderr, "amprt: cannot make a temporary file '%s': %s\n", tmpl, strerror(errno));
        return 1;
    }
    close(fd);
    int rc = 0;
    s = amp_model_save(m, tmpl);
    if (s) {
        fprintf(stderr, "amprt: cannot write the model: %s: %s\n", amp_status_name(s), amp_context_last_error(ctx));
        rc = 1;
    }
    FILE *f = rc ? NULL : fopen(tmpl, "rb");
    if (!rc && !f) {
        fprintf(stderr, "amprt: cannot reopen '%s': %s\n", tmpl, strerror(errno));
        rc = 1;
    }
    if (f) {
        char buf[1 << 16];
        size_t got;
        while (!rc && (got = fread(buf, 1, sizeof buf, f)) > 0)
            if (fwrite(buf, 1, got, stdout) != got) rc = 1;
        if (ferror(f) || fflush(stdout) != 0) rc = 1;
        if (rc) fprintf(stderr, "amprt: cannot write the model to stdout: %s\n", strerror(errno));
        fclose(f);
    }
    unlink(tmpl);
    return rc;
}
