/* SVG training curves: well-formed XML, one marker per finite value, nice ticks covering the
 * data, escaping, degenerate series, and atomic writing. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/amprt/plot.h"

static amp_context *ctx;
static char dir[64];

static void setup(void) {
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    snprintf(dir, sizeof dir, "/tmp/amp_plot_XXXXXX");
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

TestSuite(plot, .init = setup, .fini = teardown);

/* ---- a small XML checker: tags nest and match, attributes are quoted, text has no bare '<'
 * or '&' outside an entity ----------------------------------------------------------------- */

static int check_xml(const char *s, char *why, size_t cap) {
    char stack[64][32];
    int depth = 0, roots = 0;
    const char *p = s;
    if (strncmp(p, "<?xml ", 6) != 0) return snprintf(why, cap, "no XML declaration"), 0;
    p = strstr(p, "?>");
    if (!p) return snprintf(why, cap, "unterminated declaration"), 0;
    p += 2;
    while (*p) {
        if (*p == '&') {
            const char *ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            int ok = 0;
            for (int i = 0; i < 5; i++) ok |= strncmp(p, ents[i], strlen(ents[i])) == 0;
            if (!ok) return snprintf(why, cap, "bare '&' at %.20s", p), 0;
            p++;
            continue;
        }
        if (*p == '>') return snprintf(why, cap, "bare '>' in text at %.20s", p), 0;
        if (*p != '<') {
            if (depth == 0 && !strchr(" \n\r\t", *p)) return snprintf(why, cap, "text outside the root"), 0;
            p++;
            continue;
        }
        p++;
        int closing = *p == '/';
        if (closing) p++;
        char name[32];
        int n = 0;
        while (*p && (isalnum((unsigned char)*p) || *p == '-' || *p == ':') && n < 31) name[n++] = *p++;
        name[n] = 0;
        if (n == 0) return snprintf(why, cap, "empty tag name at %.20s", p), 0;
        /* attributes: name="value" with no '<' inside */
        for (;;) {
            while (*p == ' ' || *p == '\n') p++;
            if (*p == '>' || (*p == '/' && p[1] == '>') || !*p) break;
            while (*p && *p != '=' && *p != '>' && *p != ' ') p++;
            if (*p != '=' || p[1] != '"') return snprintf(why, cap, "unquoted attribute in <%s>", name), 0;
            p += 2;
            while (*p && *p != '"') {
                if (*p == '<') return snprintf(why, cap, "'<' in an attribute of <%s>", name), 0;
                p++;
            }
            if (!*p) return snprintf(why, cap, "unterminated attribute"), 0;
            p++;
        }
        if (!*p) return snprintf(why, cap, "unterminated tag <%s>", name), 0;
        int selfclose = *p == '/';
        p += selfclose ? 2 : 1;
        if (closing) {
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0)
                return snprintf(why, cap, "</%s> closes <%s>", name, depth ? stack[depth - 1] : "nothing"), 0;
            depth--;
        } else if (!selfclose) {
            if (depth == 0) roots++;
            if (depth == 64) return snprintf(why, cap, "too deep"), 0;
            snprintf(stack[depth++], 32, "%s", name);
        } else if (depth == 0) {
            roots++;
        }
    }
    if (depth) return snprintf(why, cap, "<%s> never closed", stack[depth - 1]), 0;
    if (roots != 1) return snprintf(why, cap, "%d root elements", roots), 0;
    return 1;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* The numbers of attribute attr of every element whose class is exactly cls. */
static int attr_values(const char *s, const char *cls, const char *attr, double *out, int cap) {
    char key[64], a[32];
    snprintf(key, sizeof key, "class=\"%s\"", cls);
    snprintf(a, sizeof a, " %s=\"", attr);
    int n = 0;
    for (const char *p = strstr(s, key); p && n < cap; p = strstr(p + 1, key)) {
        const char *end = strchr(p, '>');
        const char *q = strstr(p, a);
        cr_assert(q && q < end, "no %s in element of class %s", attr, cls);
        out[n++] = strtod(q + strlen(a), NULL);
    }
    return n;
}

/* Tick labels of class cls inside the panel group id. */
static int tick_labels(const char *s, const char *id, const char *cls, double *out, int cap) {
    char key[64];
    snprintf(key, sizeof key, "<g class=\"panel\" id=\"%s\">", id);
    const char *start = strstr(s, key);
    cr_assert(start, "no panel %s", id);
    const char *end = strstr(start, "</g>");
    char tk[64];
    snprintf(tk, sizeof tk, "class=\"%s\"", cls);
    int n = 0;
    for (const char *p = strstr(start, tk); p && p < end && n < cap; p = strstr(p + 1, tk)) {
        const char *gt = strchr(p, '>');
        out[n++] = strtod(gt + 1, NULL);
    }
    return n;
}

static char *render(const char *title, const cli_plot_series *s, int n) {
    char *svg = NULL;
    size_t len = 0;
    amp_status st = cli_plot_svg(ctx, title, s, n, &svg, &len);
    cr_assert_eq(st, AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(strlen(svg), len);
    char why[128] = "";
    cr_assert(check_xml(svg, why, sizeof why), "not well-formed: %s", why);
    return svg;
}

static int finite_count(const double *v, int n, double scale) {
    int k = 0;
    for (int i = 0; i < n; i++) k += isfinite(v[i] * scale);
    return k;
}

/* ---- tests ---------------------------------------------------------------------------------- */

Test(plot, two_series_with_nonfinite_values) {
    const double loss16[] = {2.30, 0.61, NAN, 0.42, 0.38, INFINITY};
    const double acc16[] = {0.71, 0.80, 0.83, -INFINITY, 0.86, 0.87};
    const double loss32[] = {2.28, 0.60, 0.49, 0.43, 0.37, 0.35};
    const double acc32[] = {0.72, 0.81, 0.84, 0.85, 0.87, 0.88};
    cli_plot_series s[2] = {{"FP16 AMP", loss16, acc16, 6}, {"FP32", loss32, acc32, 6}};
    char *svg = render("LeNet on Fashion-MNIST", s, 2);

    cr_expect(strncmp(svg, "<?xml", 5) == 0);
    cr_expect(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
    size_t len = strlen(svg);
    cr_expect(len > 7 && strcmp(svg + len - 7, "</svg>\n") == 0);
    cr_expect(strstr(svg, ">LeNet on Fashion-MNIST</text>") != NULL);
    /* one marker per finite value, per series and panel */
    cr_expect_eq(count(svg, "class=\"pt s0 loss\""), finite_count(loss16, 6, 1));
    cr_expect_eq(count(svg, "class=\"pt s0 acc\""), finite_count(acc16, 6, 100));
    cr_expect_eq(count(svg, "class=\"pt s1 loss\""), 6);
    cr_expect_eq(count(svg, "class=\"pt s1 acc\""), 6);
    /* the legend says what was left out; the clean series says nothing */
    cr_expect(strstr(svg, "FP16 AMP (3 non-finite values not drawn)") != NULL);
    cr_expect(strstr(svg, ">FP32</text>") != NULL);
    /* lines break at the gaps: FP16 loss runs {0,1} and {3,4}; FP32 loss one run */
    cr_expect_eq(count(svg, "class=\"line s0 loss\""), 2);
    cr_expect_eq(count(svg, "class=\"line s1 loss\""), 1);
    cr_expect(strstr(svg, "nan") == NULL && strstr(svg, "inf") == NULL, "a non-finite number reached the file");
    amp_free(ctx, svg);
}

Test(plot, points_follow_values_and_ticks_are_nice) {
    const double loss[] = {1.7, 0.9, 0.55, 0.41, 0.33, 0.29, 0.27, 0.26, 0.255, 0.25, 0.24, 0.237};
    const double acc[] = {0.62, 0.74, 0.80, 0.83, 0.85, 0.86, 0.87, 0.875, 0.88, 0.884, 0.887, 0.89};
    cli_plot_series s = {"run", loss, acc, 12};
    char *svg = render(NULL, &s, 1);

    double cx[16], cy[16];
    cr_assert_eq(attr_values(svg, "pt s0 loss", "cx", cx, 16), 12);
    cr_assert_eq(attr_values(svg, "pt s0 loss", "cy", cy, 16), 12);
    for (int i = 1; i < 12; i++) {
        cr_expect(cx[i] > cx[i - 1], "epochs go right");
        cr_expect(cy[i] > cy[i - 1], "a falling loss goes down the page (point %d)", i);
    }
    /* equal steps in value give equal steps on the page */
    double r = (cy[1] - cy[0]) / (loss[0] - loss[1]), r2 = (cy[11] - cy[10]) / (loss[10] - loss[11]);
    cr_expect(fabs(r - r2) / r < 0.05, "scale %g vs %g", r, r2);
    cr_assert_eq(attr_values(svg, "pt s0 acc", "cy", cy, 16), 12);
    for (int i = 1; i < 12; i++) cr_expect(cy[i] < cy[i - 1], "a rising accuracy goes up the page");

    const char *panels[2] = {"loss", "accuracy"};
    const double lo[2] = {0.237, 62.0}, hi[2] = {1.7, 89.0};
    for (int k = 0; k < 2; k++) {
        double t[32];
        int n = tick_labels(svg, panels[k], "ytick", t, 32);
        cr_assert(n >= 3 && n <= 12, "%s: %d ticks", panels[k], n);
        double step = t[1] - t[0];
        for (int i = 2; i < n; i++)
            cr_expect(fabs((t[i] - t[i - 1]) - step) <= 1e-6 * fabs(step), "%s: uneven ticks", panels[k]);
        double m = step / pow(10, floor(log10(step)));
        cr_expect(fabs(m - 1) < 1e-6 || fabs(m - 2) < 1e-6 || fabs(m - 5) < 1e-6, "%s: step %g is not 1, 2 or 5 "
                  "times a power of ten", panels[k], step);
        cr_expect(t[0] <= lo[k] + 1e-9 && t[n - 1] >= hi[k] - 1e-9, "%s: ticks %g..%g miss the data %g..%g",
                  panels[k], t[0], t[n - 1], lo[k], hi[k]);
    }
    double xt[32];
    int nx = tick_labels(svg, "loss", "xtick", xt, 32);
    cr_expect(nx >= 2 && xt[0] == 1, "epoch ticks start at 1");
    for (int i = 0; i < nx; i++) cr_expect(xt[i] == floor(xt[i]) && xt[i] <= 12, "epoch tick %g", xt[i]);
    amp_free(ctx, svg);
}

Test(plot, one_epoch_and_constant_series) {
    const double one_loss[] = {0.5}, one_acc[] = {0.9};
    const double flat[] = {0.3, 0.3, 0.3, 0.3};
    cli_plot_series s[2] = {{"one", one_loss, one_acc, 1}, {"flat", flat, NULL, 4}};
    char *svg = render("edge cases", s, 2);
    cr_expect_eq(count(svg, "class=\"pt s0 loss\""), 1);
    cr_expect_eq(count(svg, "class=\"line s0 loss\""), 0, "a single point needs no line");
    cr_expect_eq(count(svg, "class=\"pt s1 loss\""), 4);
    cr_expect_eq(count(svg, "class=\"pt s1 acc\""), 0);
    double cy[8];
    cr_assert_eq(attr_values(svg, "pt s1 loss", "cy", cy, 8), 4);
    for (int i = 1; i < 4; i++) cr_expect_eq(cy[i], cy[0]);
    amp_free(ctx, svg);

    /* alone, a constant series sits inside its panel, not on an edge */
    cli_plot_series f = {"flat", flat, flat, 4};
    svg = render("flat", &f, 1);
    double ry[2], rh[2];
    cr_assert_eq(attr_values(svg, "pt s0 loss", "cy", cy, 8), 4);
    const char *rect = strstr(strstr(svg, "id=\"loss\""), "<rect");
    ry[0] = strtod(strstr(rect, "y=\"") + 3, NULL);
    rh[0] = strtod(strstr(rect, "height=\"") + 8, NULL);
    cr_expect(cy[0] > ry[0] + 0.1 * rh[0] && cy[0] < ry[0] + 0.9 * rh[0], "flat line at %g in %g..%g", cy[0], ry[0],
              ry[0] + rh[0]);
    amp_free(ctx, svg);

    /* only one epoch: single points centred, and one epoch tick */
    cli_plot_series o = {"one", one_loss, one_acc, 1};
    svg = render("one", &o, 1);
    double cx[2], xt[8];
    cr_assert_eq(attr_values(svg, "pt s0 loss", "cx", cx, 2), 1);
    cr_expect_eq(tick_labels(svg, "loss", "xtick", xt, 8), 1);
    cr_expect(fabs(cx[0] - 260) < 1, "the single epoch at x=%g, the middle of the panel", cx[0]);
    amp_free(ctx, svg);
}

Test(plot, escaping_and_all_nonfinite) {
    const double bad[] = {NAN, NAN};
    cli_plot_series s = {"a<b & \"c\"\x01", bad, bad, 2};
    char *svg = render("<title> & more", &s, 1);
    cr_expect(strstr(svg, "&lt;title&gt; &amp; more") != NULL);
    cr_expect(strstr(svg, "a&lt;b &amp; &quot;c&quot;?") != NULL);
    cr_expect_eq(count(svg, "class=\"pt "), 0);
    cr_expect(strstr(svg, "(4 non-finite values not drawn)") != NULL);
    amp_free(ctx, svg);
}

Test(plot, bad_arguments) {
    const double v[] = {1};
    cli_plot_series s = {"x", v, v, 0};
    char *svg = NULL;
    size_t len = 0;
    cr_expect_eq(cli_plot_svg(ctx, "t", &s, 1, &svg, &len), AMP_ERR_INVALID_ARG);
    cr_expect_eq(cli_plot_svg(ctx, "t", &s, 0, &svg, &len), AMP_ERR_INVALID_ARG);
    cr_expect(svg == NULL);
}

Test(plot, written_atomically) {
    const double loss[] = {1.0, 0.5, 0.25}, acc[] = {0.5, 0.7, 0.8};
    cli_plot_series s = {"run", loss, acc, 3};
    char path[256];
    snprintf(path, sizeof path, "%s/curves.svg", dir);
    cr_assert_eq(cli_plot_write(ctx, path, "t", &s, 1), AMP_OK, "%s", amp_context_last_error(ctx));
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    static char got[1 << 16];
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    got[n] = 0;
    char *svg = render("t", &s, 1);
    cr_expect(strcmp(got, svg) == 0, "the file holds something else than the rendering");
    amp_free(ctx, svg);
    /* only the file itself: no temporary left behind */
    DIR *d = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            entries++;
            cr_expect_str_eq(e->d_name, "curves.svg");
        }
    closedir(d);
    cr_expect_eq(entries, 1);

    /* overwriting keeps a complete file; a folder that is not there is an I/O error naming it */
    const double loss2[] = {3.0};
    cli_plot_series s2 = {"other", loss2, NULL, 1};
    cr_assert_eq(cli_plot_write(ctx, path, "t2", &s2, 1), AMP_OK);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing/curves.svg", dir);
    cr_expect_eq(cli_plot_write(ctx, bad, "t", &s, 1), AMP_ERR_IO);
    cr_expect(strstr(amp_context_last_error(ctx), bad) != NULL, "%s", amp_context_last_error(ctx));
    cr_expect(access(bad, F_OK) != 0);
}
