/* Parallel loops that cost nothing when they run on one thread.
 *
 * libgomp builds a team for every parallel region it enters, even one whose if clause is false
 * or that asks for one thread: GOMP_parallel allocates the team, runs the body and frees it with
 * a futex wake, about 0.4 us on this project's machines. A small node's whole work (an Add of 64
 * floats) is a few nanoseconds, so a model of small nodes spent most of its time there.
 *
 * AMP_PAR_FOR(cond, clauses, for-statement) runs the loop as `#pragma omp parallel for clauses`
 * where cond holds, and otherwise as the plain loop in the calling thread, outside any region:
 *
 *     AMP_PAR_FOR(big, num_threads(k->threads) schedule(static),
 *     for (int64_t c = 0; c < chunks; c++) {
 *         ...
 *     });
 *
 * The loop is the macro's last argument, so its commas need no care; it must not hold
 * preprocessor directives. Reductions named in clauses are the loop's own variables, which the
 * serial copy updates directly. */
#ifndef AMP_BACKENDS_CPU_PAR_H
#define AMP_BACKENDS_CPU_PAR_H

#define AMP_PAR_PRAGMA_(x) _Pragma(#x)
#define AMP_PAR_FOR(cond, clauses, ...)                   \
    do {                                                  \
        if (cond) {                                       \
            AMP_PAR_PRAGMA_(omp parallel for clauses)     \
            __VA_ARGS__                                   \
        } else {                                          \
            __VA_ARGS__                                   \
        }                                                 \
    } while (0)

#endif
