/* The timed loop of amprt bench, inference and training alike: at least --iterations runs and,
 * with --duration, as many more as fill that time; then the order statistics of the times. */
#include <stdlib.h>
#include <string.h>

#include "tools/amprt/cli.h"

/* A bound on the runs --duration may add, so a fast model cannot fill memory with times. */
#define CLI_MAX_TIMED_RUNS 10000000

static int cmp_ms(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile p of n sorted values, interpolated between the closest ranks (numpy's default),
 * so the 50th is the median for an even count too. */
static double percentile(const double *v, int n, double p) {
    double pos = p / 100.0 * (double)(n - 1);
    int lo = (int)pos;
    if (lo >= n - 1) return v[n - 1];
    return v[lo] + (pos - (double)lo) * (v[lo + 1] - v[lo]);
}

int cli_time_runs(const cli_opts *o, cli_step_fn step, void *user, cli_times *t) {
    memset(t, 0, sizeof *t);
    int cap = o->runs > 0 ? o->runs : 1;
    t->ms = malloc(sizeof(double) * (size_t)cap);
    if (!t->ms) goto no_memory;
    const double budget_ms = o->duration_s * 1e3;
    const double begin = cli_now_ms();
    for (;;) {
        bool more = t->n < o->runs || (cli_now_ms() - begin < budget_ms && t->n < CLI_MAX_TIMED_RUNS);
        if (!more) break;
        if (t->n == cap) {
            int grown = cap > CLI_MAX_TIMED_RUNS / 2 ? CLI_MAX_TIMED_RUNS : 2 * cap;
            double *ms = realloc(t->ms, sizeof(double) * (size_t)grown);
            if (!ms) goto no_memory;
            t->ms = ms;
            cap = grown;
        }
        double t0 = cli_now_ms();
        t->status = step(user);
        t->ms[t->n] = cli_now_ms() - t0;
        if (t->status) {
            cli_times_free(t);
            return 1;
        }
        t->n++;
    }
    t->total_ms = cli_now_ms() - begin;
    qsort(t->ms, (size_t)t->n, sizeof(double), cmp_ms);
    t->min = t->ms[0];
    t->max = t->ms[t->n - 1];
    t->median = t->p50 = percentile(t->ms, t->n, 50);
    t->p90 = percentile(t->ms, t->n, 90);
    t->p99 = percentile(t->ms, t->n, 99);
    t->mean = t->total_ms / t->n;
    return 0;
no_memory:
    fprintf(stderr, "amprt: out of memory for the times of %d runs\n", t->n + 1);
    cli_times_free(t);
    return 1;
}

void cli_times_free(cli_times *t) {
    free(t->ms);
    t->ms = NULL;
    t->n = 0;
}

void cli_times_json(FILE *f, const cli_times *t) {
    fprintf(f, "\"runs\":%d,\"median_ms\":%.4f,\"min_ms\":%.4f,\"max_ms\":%.4f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,"
               "\"p99_ms\":%.4f,\"mean_ms\":%.4f,\"timed_s\":%.4f",
            t->n, t->median, t->min, t->max, t->p50, t->p90, t->p99, t->mean, t->total_ms / 1e3);
}

void cli_times_text(FILE *f, const cli_times *t) {
    fprintf(f, "median %.3f ms (min %.3f, max %.3f; p50 %.3f, p90 %.3f, p99 %.3f)", t->median, t->min, t->max, t->p50,
            t->p90, t->p99);
}
