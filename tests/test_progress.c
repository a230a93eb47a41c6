/* Training progress: plain lines at tenths of an epoch and at its end when the stream is not a
 * terminal; a throttled, redrawn bar when it is. Time comes from a fake clock. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/amprt/progress.h"

typedef struct fake_clock {
    double now;
} fake_clock;

static double fake_now(void *u) { return ((fake_clock *)u)->now; }

/* Everything written to f so far, NUL-terminated (static buffer). */
static const char *contents(FILE *f) {
    static char buf[1 << 16];
    fflush(f);
    long n = ftell(f);
    cr_assert(n >= 0 && n < (long)sizeof buf);
    rewind(f);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    fseek(f, 0, SEEK_END);
    return buf;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static int lines(const char *s, char out[][256], int cap) {
    int n = 0;
    while (*s && n < cap) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        snprintf(out[n++], 256, "%.*s", (int)len, s);
        s += len + (e ? 1 : 0);
    }
    return n;
}

Test(progress, plain_lines_at_tenths_and_epoch_end) {
    FILE *f = tmpfile();
    cr_assert(f);
    fake_clock c = {100.0};
    cli_progress p;
    /* AUTO on a file: not a terminal, so plain lines */
    cli_progress_init(&p, f, CLI_PROGRESS_AUTO, fake_now, &c);
    cli_progress_epoch_begin(&p, 0, 2, 100, 0);
    for (int s = 1; s <= 100; s++) {
        c.now += 0.01; /* 100 steps per second */
        cli_progress_step(&p, s, 1.0 / s, 65536);
    }
    cli_progress_epoch_end(&p, 0.5, 0.875);
    const char *out = contents(f);
    cr_expect(strchr(out, '\r') == NULL && strchr(out, '\033') == NULL, "terminal codes in a file:\n%s", out);
    char l[32][256];
    int n = lines(out, l, 32);
    cr_assert_eq(n, 10, "9 progress lines and 1 epoch line expected:\n%s", out);
    for (int k = 1; k <= 9; k++) {
        char want[64];
        snprintf(want, sizeof want, "epoch 1/2 step %d/100 (%d%%)", 10 * k, 10 * k);
        cr_expect(strncmp(l[k - 1], want, strlen(want)) == 0, "line %d: %s", k, l[k - 1]);
        cr_expect(strstr(l[k - 1], "100.0 step/s") != NULL, "rate: %s", l[k - 1]);
        cr_expect(strstr(l[k - 1], "scale 65536") != NULL, "%s", l[k - 1]);
        /* loss of the step that printed: 1 / step */
        char loss[32];
        snprintf(loss, sizeof loss, "loss %.4f", 1.0 / (10 * k));
        cr_expect(strstr(l[k - 1], loss) != NULL, "%s not in %s", loss, l[k - 1]);
    }
    /* at step 10: 90 steps left in this epoch and 100 in the next, at 100 step/s: 1.9 s */
    cr_expect(strstr(l[0], "ETA 0:02") != NULL, "%s", l[0]);
    /* at step 90: 110 steps left: 1.1 s */
    cr_expect(strstr(l[8], "ETA 0:01") != NULL, "%s", l[8]);
    cr_expect_str_eq(l[9], "epoch 1/2 done in 1.0 s, 100.0 step/s: train loss 0.5000, test accuracy 87.50%");
    fclose(f);
}

Test(progress, resumed_epoch_counts_only_new_steps) {
    FILE *f = tmpfile();
    fake_clock c = {0};
    cli_progress p;
    cli_progress_init(&p, f, CLI_PROGRESS_PLAIN, fake_now, &c);
    cli_progress_epoch_begin(&p, 4, 5, 200, 120);
    for (int s = 121; s <= 200; s++) {
        c.now += 0.02; /* 50 steps per second */
        cli_progress_step(&p, s, NAN, 0);
    }
    cli_progress_epoch_end(&p, NAN, NAN);
    char l[16][256];
    int n = lines(contents(f), l, 16);
    /* 60% was passed before the resume: lines at 70, 80, 90, then the end */
    cr_assert_eq(n, 4);
    cr_expect(strncmp(l[0], "epoch 5/5 step 140/200 (70%)", 28) == 0, "%s", l[0]);
    cr_expect(strstr(l[0], "50.0 step/s") != NULL, "%s", l[0]);
    cr_expect(strstr(l[0], "loss nan") != NULL, "%s", l[0]);
    cr_expect(strstr(l[0], "scale") == NULL, "no loss scale given: %s", l[0]);
    cr_expect_str_eq(l[3], "epoch 5/5 done in 1.6 s, 50.0 step/s: train loss nan");
    fclose(f);
}

Test(progress, small_epochs_and_notes) {
    FILE *f = tmpfile();
    fake_clock c = {0};
    cli_progress p;
    cli_progress_init(&p, f, CLI_PROGRESS_PLAIN, fake_now, &c);
    /* 3 steps: every step passes a tenth, but the last is the epoch line's */
    cli_progress_epoch_begin(&p, 0, 1, 3, 0);
    for (int s = 1; s <= 3; s++) {
        c.now += 1;
        cli_progress_step(&p, s, 0.25, 128);
        if (s == 2) cli_progress_note(&p, "loss scale lowered to %d", 64);
    }
    cli_progress_epoch_end(&p, 0.25, 0.5);
    char l[16][256];
    int n = lines(contents(f), l, 16);
    cr_assert_eq(n, 4, "%d lines", n);
    cr_expect(strncmp(l[0], "epoch 1/1 step 1/3 (30%)", 24) == 0, "%s", l[0]);
    cr_expect(strncmp(l[1], "epoch 1/1 step 2/3 (60%)", 24) == 0, "%s", l[1]);
    cr_expect_str_eq(l[2], "loss scale lowered to 64");
    cr_expect(strncmp(l[3], "epoch 1/1 done in 3.0 s", 23) == 0, "%s", l[3]);
    fclose(f);
}

Test(progress, terminal_bar_is_redrawn_and_throttled) {
    FILE *f = tmpfile();
    fake_clock c = {0};
    cli_progress p;
    cli_progress_init(&p, f, CLI_PROGRESS_TTY, fake_now, &c);
    cli_progress_epoch_begin(&p, 1, 3, 1000, 0);
    for (int s = 1; s <= 1000; s++) {
        c.now += 0.001; /* 1000 step/s, one redraw per 0.1 s at most */
        cli_progress_step(&p, s, 0.125, 1024);
    }
    const char *out = contents(f);
    cr_expect(strchr(out, '\n') == NULL, "a terminal bar has no newline before the epoch ends");
    int redraws = count(out, "\repoch 2/3 [");
    cr_expect(redraws >= 10 && redraws <= 12, "%d redraws for 1 s of steps", redraws);
    cr_expect_eq(count(out, "\033[K"), redraws, "each redraw clears the rest of the line");
    /* the last redraw shows the full bar and the last step */
    const char *last = strrchr(out, '\r');
    const char *want = "\repoch 2/3 [########################] 1000/1000  ";
    cr_expect(strncmp(last, want, strlen(want)) == 0, "%s", last + 1);
    cr_expect(strstr(last, "1000.0 step/s") != NULL, "%s", last + 1);
    cr_expect(strstr(last, "scale 1024") != NULL, "%s", last + 1);
    /* one more epoch of 1000 steps at 1000 step/s */
    cr_expect(strstr(last, "ETA 0:01") != NULL, "%s", last + 1);
    long before = (long)strlen(out);
    cli_progress_epoch_end(&p, 0.125, 0.9);
    out = contents(f);
    cr_expect(strcmp(out + before, "\r\033[Kepoch 2/3 done in 1.0 s, 1000.0 step/s: train loss 0.1250, test accuracy "
                                   "90.00%\n") == 0,
              "%s", out + before);
    fclose(f);
}

Test(progress, terminal_bar_half_way) {
    FILE *f = tmpfile();
    fake_clock c = {0};
    cli_progress p;
    cli_progress_init(&p, f, CLI_PROGRESS_TTY, fake_now, &c);
    cli_progress_epoch_begin(&p, 0, 1, 48, 0);
    c.now = 2;
    cli_progress_step(&p, 24, INFINITY, 0);
    const char *out = contents(f);
    const char *want = "\repoch 1/1 [############............] 24/48  ";
    cr_expect(strncmp(out, want, strlen(want)) == 0, "%s", out + 1);
    cr_expect(strstr(out, "12.0 step/s") != NULL, "%s", out + 1);
    cr_expect(strstr(out, "loss inf") != NULL, "%s", out + 1);
    cr_expect(strstr(out, "ETA 0:02") != NULL, "%s", out + 1);
    fclose(f);
}

Test(progress, terminal_line_fits_the_width) {
    FILE *f = tmpfile();
    fake_clock c = {0};
    cli_progress p;
    cli_progress_init(&p, f, CLI_PROGRESS_TTY, fake_now, &c);
    for (int cols = 100; cols >= 30; cols -= 35) {
        p.columns = cols;
        cli_progress_epoch_begin(&p, 8, 10, 1875, 0);
        c.now += 1;
        cli_progress_step(&p, 1875, 0.3125, 32768);
        const char *out = contents(f);
        const char *last = strrchr(out, '\r') + 1;
        const char *end = strstr(last, "\033[K");
        cr_assert(end);
        /* a line as wide as the terminal would wrap */
        cr_expect(end - last < cols, "%d columns, a line of %d: %.*s", cols, (int)(end - last), (int)(end - last),
                  last);
        cr_expect(strncmp(last, "epoch 9/10 ", 11) == 0, "%s", last);
    }
    fclose(f);
}
