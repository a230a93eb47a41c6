/* Training progress on a stream. On a terminal: one line redrawn in place (bar, step/total,
 * steps per second, loss, loss scale, ETA). Elsewhere (a log file, a pipe, CI): a plain line
 * at every tenth of an epoch. Either way one line per finished epoch. */
#ifndef AMP_TOOLS_PROGRESS_H
#define AMP_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Seconds since any fixed origin, never decreasing. */
typedef double (*cli_clock_fn)(void *user_data);

typedef enum cli_progress_mode {
    CLI_PROGRESS_AUTO = 0, /* a redrawn line when the stream is a terminal, plain lines otherwise */
    CLI_PROGRESS_TTY = 1,
    CLI_PROGRESS_PLAIN = 2
} cli_progress_mode;

/* Caller-owned state; fill with cli_progress_init. Fields are private to progress.c, except
 * columns, which a caller may set after init (init reads it from the terminal). */
typedef struct cli_progress {
    FILE *f;
    bool tty;
    cli_clock_fn clock;
    void *clock_user;
    int epoch, n_epochs;   /* 0-based epoch; total epochs of the run */
    int64_t steps;         /* steps in an epoch */
    int64_t first_step;    /* steps already done when this epoch began here (a resumed run) */
    int64_t step;          /* last step reported */
    double t_begin;        /* clock at epoch begin */
    double t_drawn;        /* clock at the last redraw (terminal) */
    int next_tenth;        /* plain: the next tenth of the epoch to print a line at */
    bool line_open;        /* terminal: a bar is on screen without its newline */
    int columns;           /* terminal width; 0: unknown (lines are not shortened) */
} cli_progress;

/* f is borrowed for the reporter's life. clock NULL: the monotonic clock. */
void cli_progress_init(cli_progress *p, FILE *f, cli_progress_mode mode, cli_clock_fn clock, void *clock_user);

/* epoch is 0-based (shown 1-based) of n_epochs; steps per epoch; first_step is how many of this
 * epoch's steps were done before (0 normally, the batch index when resuming), so rates and ETA
 * count only what runs now. */
void cli_progress_epoch_begin(cli_progress *p, int epoch, int n_epochs, int64_t steps, int64_t first_step);

/* After step `step` (1..steps) of the epoch. loss_scale <= 0 or NaN: not shown (no scaling). */
void cli_progress_step(cli_progress *p, int64_t step, double loss, double loss_scale);

/* A message between updates (a loss-scale change, a checkpoint): clears a bar on screen first. */
void cli_progress_note(cli_progress *p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The epoch's summary line. NaN for a value not known (no test set: no accuracy). test_acc is
 * a fraction (0.87 for 87%). */
void cli_progress_epoch_end(cli_progress *p, double train_loss, double test_acc);

#endif
