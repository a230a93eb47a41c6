/* SVG training curves: two panels (loss, accuracy) over epochs, legend, nice ticks. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "runtime/internal.h"
#include "tools/amprt/plot.h"

/* ---- a growing text buffer; the first failure sticks and is reported once at the end ---- */

typedef struct sbuf {
    amp_context *ctx;
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static bool sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) cap *= 2;
    /* alloc + copy rather than realloc: a context's allocator may not provide realloc */
    char *p = amp_alloc(b->ctx, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    if (b->len) memcpy(p, b->p, b->len);
    p[b->len] = 0;
    amp_dealloc(b->ctx, b->p);
    b->p = p;
    b->cap = cap;
    return true;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n >= sizeof tmp) {
        /* longer than the scratch: print again straight into the buffer */
        if (!sb_reserve(b, (size_t)n)) return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    } else {
        if (!sb_reserve(b, (size_t)n)) return;
        memcpy(b->p + b->len, tmp, (size_t)n + 1);
    }
    b->len += (size_t)n;
}

/* Text content or attribute value: the five XML specials escaped, and the control characters
 * XML 1.0 forbids replaced, so a run name can never break the file. */
static void sb_text(sbuf *b, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default: sb_printf(b, "%c", c < 0x20 ? '?' : (char)c);
        }
    }
}

/* ---- axes ------------------------------------------------------------------------------------ */

typedef struct axis {
    double lo, hi, step; /* covered range and tick spacing; ticks at lo, lo + step, ... hi */
    int decimals;        /* for the tick labels */
} axis;

/* 1, 2 or 5 times a power of ten, near range / target. */
static double nice_step(double range, int target) {
    double raw = range / target;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * mag;
}

static axis make_axis(double lo, double hi, int target) {
    axis a;
    if (!(lo <= hi)) { /* no finite value at all */
        lo = 0;
        hi = 1;
    }
    if (hi - lo <= 1e-12 * fmax(fabs(lo), fabs(hi))) {
        /* a constant series still needs a range to sit in the middle of */
        double pad = lo != 0 ? fabs(lo) * 0.1 : 1.0;
        lo -= pad;
        hi += pad;
    }
    a.step = nice_step(hi - lo, target);
    a.lo = floor(lo / a.step) * a.step;
    a.hi = ceil(hi / a.step) * a.step;
    int d = (int)-floor(log10(a.step) + 1e-9);
    a.decimals = d > 0 ? d : 0;
    return a;
}

typedef struct panel {
    double x0, x1, y0, y1; /* pixel box: left, right, top, bottom */
    axis ya;
    double xlo, xhi;       /* epoch range across the box */
} panel;

static double px(const panel *p, double epoch) { return p->x0 + (epoch - p->xlo) / (p->xhi - p->xlo) * (p->x1 - p->x0); }
static double py(const panel *p, double v) { return p->y1 - (v - p->ya.lo) / (p->ya.hi - p->ya.lo) * (p->y1 - p->y0); }

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
#define N_PALETTE ((int)(sizeof palette / sizeof palette[0]))

static double value_at(const cli_plot_series *s, bool acc, int i) {
    return acc ? s->acc[i] * 100.0 : s->loss[i];
}

/* Frame, grid, ticks and labels; the group stays open for the series drawn into it. */
static void draw_panel(sbuf *b, const panel *p, const char *id, const char *label, int max_epochs, int xstep) {
    sb_printf(b, "<g class=\"panel\" id=\"%s\">\n", id);
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", p->x0,
              p->y0, p->x1 - p->x0, p->y1 - p->y0);
    int nt = (int)floor((p->ya.hi - p->ya.lo) / p->ya.step + 0.5);
    for (int k = 0; k <= nt; k++) {
        double v = p->ya.lo + k * p->ya.step;
        if (fabs(v) < p->ya.step * 1e-9) v = 0; /* no "-0.00" label */
        double y = py(p, v);
        sb_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", p->x0,
                  y, p->x1, y);
        sb_printf(b, "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", p->x0 - 6,
                  y + 4, p->ya.decimals, v);
    }
    for (int e = 1; e <= max_epochs; e += xstep) {
        double x = px(p, e);
        sb_printf(b, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x,
                  p->y1, x, p->y1 + 5);
        sb_printf(b, "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x, p->y1 + 18,
                  e);
    }
    sb_printf(b, "<text class=\"xlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n",
              (p->x0 + p->x1) / 2, p->y1 + 36);
    double ly = (p->y0 + p->y1) / 2;
    sb_printf(b,
              "<text class=\"ylabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
              "transform=\"rotate(-90 %.1f %.1f)\">%s</text>\n",
              p->x0 - 48, ly, p->x0 - 48, ly, label);
}

/* One series in one panel: polylines through runs of finite values, a marker per value. */
static void draw_series(sbuf *b, const panel *p, const cli_plot_series *s, int si, bool acc) {
    const char *kind = acc ? "acc" : "loss";
    const char *color = palette[si % N_PALETTE];
    int i = 0;
    while (i < s->n) {
        while (i < s->n && !isfinite(value_at(s, acc, i))) i++;
        int start = i;
        while (i < s->n && isfinite(value_at(s, acc, i))) i++;
        if (i - start >= 2) {
            sb_printf(b, "<polyline class=\"line s%d %s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", si,
                      kind, color);
            for (int k = start; k < i; k++)
                sb_printf(b, "%s%.1f,%.1f", k > start ? " " : "", px(p, k + 1), py(p, value_at(s, acc, k)));
            sb_printf(b, "\"/>\n");
        }
    }
    for (int k = 0; k < s->n; k++) {
        double v = value_at(s, acc, k);
        if (!isfinite(v)) continue;
        sb_printf(b, "<circle class=\"pt s%d %s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>", si, kind,
                  px(p, k + 1), py(p, v), color);
        sb_text(b, s->name ? s->name : "series");
        sb_printf(b, ", epoch %d: %.4g%s</title></circle>\n", k + 1, v, acc ? "%" : "");
    }
}

/* The legend text of a series: its name and, when values were left out, how many. */
static void legend_note(const cli_plot_series *s, char *note, size_t cap) {
    int bad = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->loss && !isfinite(s->loss[i])) bad++;
        if (s->acc && !isfinite(s->acc[i] * 100.0)) bad++;
    }
    if (bad) snprintf(note, cap, " (%d non-finite value%s not drawn)", bad, bad == 1 ? "" : "s");
    else note[0] = 0;
}

/* Width of a legend item, from an average glyph width (no font metrics in plain C). */
static double legend_width(const cli_plot_series *s) {
    char note[64];
    legend_note(s, note, sizeof note);
    return 46 + 7.0 * (double)(strlen(s->name ? s->name : "series") + strlen(note));
}

amp_status cli_plot_svg(amp_context *ctx, const char *title, const cli_plot_series *series, int n_series, char **svg,
                        size_t *len) {
    if (!ctx || !series || !svg || !len || n_series < 1)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "plot: no series to draw");
    int max_epochs = 0;
    double llo = INFINITY, lhi = -INFINITY, alo = INFINITY, ahi = -INFINITY;
    for (int si = 0; si < n_series; si++) {
        const cli_plot_series *s = &series[si];
        if (s->n < 1) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "plot: series %d has %d epochs", si, s->n);
        if (s->n > max_epochs) max_epochs = s->n;
        for (int i = 0; i < s->n; i++) {
            if (s->loss && isfinite(s->loss[i])) {
                llo = fmin(llo, s->loss[i]);
                lhi = fmax(lhi, s->loss[i]);
            }
            if (s->acc && isfinite(s->acc[i] * 100.0)) {
                alo = fmin(alo, s->acc[i] * 100.0);
                ahi = fmax(ahi, s->acc[i] * 100.0);
            }
        }
    }

    const double width = 960;
    /* legend items flow left to right and wrap; measure with an average glyph width */
    double lx = 70, legend_rows = 1;
    for (int si = 0; si < n_series; si++) {
        double w = legend_width(&series[si]);
        if (lx + w > width - 20 && lx > 70) {
            legend_rows++;
            lx = 70;
        }
        lx += w;
    }
    double top = 48 + 20 * legend_rows + 24;
    double height = top + 280 + 56;

    panel pl = {70, 450, top, top + 280, make_axis(llo, lhi, 5), 0, 0};
    if (!(alo <= ahi)) { /* no accuracy at all: an empty 0..100% frame rather than 0..1 */
        alo = 0;
        ahi = 100;
    }
    panel pa = {560, 940, top, top + 280, make_axis(alo, ahi, 5), 0, 0};
    /* one epoch has no extent of its own: centre it; otherwise a small margin on each side */
    double xpad = max_epochs == 1 ? 0.5 : (max_epochs - 1) * 0.03;
    pl.xlo = pa.xlo = 1 - xpad;
    pl.xhi = pa.xhi = max_epochs + xpad;
    int xstep = max_epochs <= 1 ? 1 : (int)nice_step(max_epochs - 1, 8);
    if (xstep < 1) xstep = 1;

    sbuf b = {ctx, NULL, 0, 0, false};
    sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    sb_printf(&b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
              "font-family=\"sans-serif\" font-size=\"12\">\n",
              width, height, width, height);
    sb_printf(&b, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", width, height);
    sb_printf(&b, "<text class=\"title\" x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", width / 2);
    sb_text(&b, title ? title : "Training");
    sb_printf(&b, "</text>\n");

    sb_printf(&b, "<g class=\"legend\">\n");
    lx = 70;
    double ly = 54;
    for (int si = 0; si < n_series; si++) {
        const cli_plot_series *s = &series[si];
        char note[64];
        legend_note(s, note, sizeof note);
        double w = legend_width(s);
        if (lx + w > width - 20 && lx > 70) {
            ly += 20;
            lx = 70;
        }
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", lx,
                  ly - 4, lx + 24, ly - 4, palette[si % N_PALETTE]);
        sb_printf(&b, "<text class=\"name\" x=\"%.1f\" y=\"%.1f\">", lx + 30, ly);
        sb_text(&b, s->name ? s->name : "series");
        sb_text(&b, note);
        sb_printf(&b, "</text>\n");
        lx += w;
    }
    sb_printf(&b, "</g>\n");

    draw_panel(&b, &pl, "loss", "training loss", max_epochs, xstep);
    for (int si = 0; si < n_series; si++)
        if (series[si].loss) draw_series(&b, &pl, &series[si], si, false);
    sb_printf(&b, "</g>\n");
    draw_panel(&b, &pa, "accuracy", "test accuracy (%)", max_epochs, xstep);
    for (int si = 0; si < n_series; si++)
        if (series[si].acc) draw_series(&b, &pa, &series[si], si, true);
    sb_printf(&b, "</g>\n");
    sb_printf(&b, "</svg>\n");

    if (b.oom) {
        amp_dealloc(ctx, b.p);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "plot: out of memory");
    }
    *svg = b.p;
    *len = b.len;
    return AMP_OK;
}

amp_status cli_plot_write(amp_context *ctx, const char *path, const char *title, const cli_plot_series *series,
                          int n_series) {
    if (!ctx || !path) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "plot: no file name");
    char *svg = NULL;
    size_t len = 0;
    amp_status st = cli_plot_svg(ctx, title, series, n_series, &svg, &len);
    if (st) return st;
    st = amp_write_file_atomic(ctx, path, svg, len);
    amp_dealloc(ctx, svg);
    return st;
}
