/* Training progress: a redrawn bar on terminals, plain lines elsewhere. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "tools/amprt/progress.h"

#define BAR_WIDTH 24
/* Redraws faster than this only cost terminal time; nobody reads them. */
#define REDRAW_SECONDS 0.1

static double monotonic_seconds(void *user) {
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_init(cli_progress *p, FILE *f, cli_progress_mode mode, cli_clock_fn clock, void *clock_user) {
    memset(p, 0, sizeof *p);
    p->f = f;
    p->tty = mode == CLI_PROGRESS_TTY || (mode == CLI_PROGRESS_AUTO && isatty(fileno(f)));
    struct winsize ws;
    if (p->tty && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) p->columns = ws.ws_col;
    p->clock = clock ? clock : monotonic_seconds;
    p->clock_user = clock_user;
    p->n_epochs = 1;
    p->steps = 1;
}

void cli_progress_epoch_begin(cli_progress *p, int epoch, int n_epochs, int64_t steps, int64_t first_step) {
    p->epoch = epoch;
    p->n_epochs = n_epochs > epoch ? n_epochs : epoch + 1;
    p->steps = steps > 0 ? steps : 1;
    p->first_step = first_step > 0 && first_step <= p->steps ? first_step : 0;
    p->step = p->first_step;
    p->t_begin = p->clock(p->clock_user);
    p->t_drawn = -INFINITY;
    p->next_tenth = (int)(p->first_step * 10 / p->steps) + 1;
}

/* A number that may be NaN or infinite, printed the same way on every C library ("-nan" is
 * glibc's spelling of a NaN with its sign bit set). */
static void put_num(char *out, size_t cap, const char *fmt, double v) {
    if (isnan(v)) snprintf(out, cap, "nan");
    else if (isinf(v)) snprintf(out, cap, v > 0 ? "inf" : "-inf");
    else snprintf(out, cap, fmt, v);
}

static void put_duration(char *out, size_t cap, double s) {
    if (!isfinite(s) || s < 0 || s > 1e8) {
        snprintf(out, cap, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

/* The part shared by both styles: rate, loss, scale and time left for the whole run. */
static void stats_text(const cli_progress *p, double now, double loss, double scale, char *out, size_t cap) {
    double elapsed = now - p->t_begin;
    int64_t done = p->step - p->first_step;
    double rate = elapsed > 0 && done > 0 ? (double)done / elapsed : NAN;
    int64_t left = (p->steps - p->step) + (int64_t)(p->n_epochs - p->epoch - 1) * p->steps;
    char r[32], l[32], sc[48] = "", eta[32];
    if (isfinite(rate)) snprintf(r, sizeof r, "%.1f step/s", rate);
    else snprintf(r, sizeof r, "- step/s");
    put_num(l, sizeof l, "%.4f", loss);
    if (scale > 0 && !isnan(scale)) {
        char v[32];
        put_num(v, sizeof v, "%g", scale);
        snprintf(sc, sizeof sc, "  scale %s", v);
    }
    put_duration(eta, sizeof eta, isfinite(rate) ? (double)left / rate : NAN);
    snprintf(out, cap, "%s  loss %s%s  ETA %s", r, l, sc, eta);
}

void cli_progress_step(cli_progress *p, int64_t step, double loss, double loss_scale) {
    if (step < 0) step = 0;
    if (step > p->steps) step = p->steps;
    p->step = step;
    double now = p->clock(p->clock_user);
    char stats[160];
    if (p->tty) {
        bool last = step == p->steps;
        if (!last && now - p->t_drawn < REDRAW_SECONDS) return;
        p->t_drawn = now;
        stats_text(p, now, loss, loss_scale, stats, sizeof stats);
        char bar[BAR_WIDTH + 4];
        int64_t fill = step * BAR_WIDTH / p->steps;
        bar[0] = '[';
        for (int i = 0; i < BAR_WIDTH; i++) bar[1 + i] = i < fill ? '#' : '.';
        snprintf(bar + 1 + BAR_WIDTH, 3, "] ");
        char line[320];
        int n = snprintf(line, sizeof line, "epoch %d/%d %s%lld/%lld  %s", p->epoch + 1, p->n_epochs, bar,
                         (long long)step, (long long)p->steps, stats);
        /* A line longer than the terminal wraps, and \r then redraws only its last part, leaving
         * a trail of lines: drop the bar first, then cut the tail. */
        if (p->columns > 0 && n >= p->columns) {
            n = snprintf(line, sizeof line, "epoch %d/%d %lld/%lld  %s", p->epoch + 1, p->n_epochs, (long long)step,
                         (long long)p->steps, stats);
            if (n >= p->columns && p->columns - 1 < (int)sizeof line) line[p->columns - 1] = 0;
        }
        /* \r back to column 0, ESC[K clears what a longer previous line left behind */
        fprintf(p->f, "\r%s\033[K", line);
        p->line_open = true;
        fflush(p->f);
        return;
    }
    int tenth = (int)(step * 10 / p->steps);
    /* the tenth tenth is the epoch's end, which has its own line */
    if (tenth < p->next_tenth || tenth >= 10) return;
    p->next_tenth = tenth + 1;
    stats_text(p, now, loss, loss_scale, stats, sizeof stats);
    fprintf(p->f, "epoch %d/%d step %lld/%lld (%d%%)  %s\n", p->epoch + 1, p->n_epochs, (long long)step,
            (long long)p->steps, tenth * 10, stats);
    fflush(p->f);
}

static void clear_bar(cli_progress *p) {
    if (p->tty && p->line_open) fputs("\r\033[K", p->f);
    p->line_open = false;
}

void cli_progress_note(cli_progress *p, const char *fmt, ...) {
    clear_bar(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
    fputc('\n', p->f);
    /* the bar comes back at the next step, whatever the throttle says */
    p->t_drawn = -INFINITY;
    fflush(p->f);
}

void cli_progress_epoch_end(cli_progress *p, double train_loss, double test_acc) {
    clear_bar(p);
    double now = p->clock(p->clock_user);
    double elapsed = now - p->t_begin;
    int64_t done = p->step - p->first_step;
    char t[32], rate[32] = "", loss[32], acc[48] = "";
    if (elapsed >= 0 && elapsed < 60) snprintf(t, sizeof t, "%.1f s", elapsed);
    else put_duration(t, sizeof t, elapsed);
    if (elapsed > 0 && done > 0) snprintf(rate, sizeof rate, ", %.1f step/s", (double)done / elapsed);
    put_num(loss, sizeof loss, "%.4f", train_loss);
    if (!isnan(test_acc)) {
        char v[32];
        put_num(v, sizeof v, "%.2f%%", test_acc * 100.0);
        snprintf(acc, sizeof acc, ", test accuracy %s", v);
    }
    fprintf(p->f, "epoch %d/%d done in %s%s: train loss %s%s\n", p->epoch + 1, p->n_epochs, t, rate, loss, acc);
    fflush(p->f);
}
