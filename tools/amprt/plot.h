/* Training curves as a standalone SVG file: per epoch, the training loss (left panel) and the
 * test accuracy (right panel), one coloured line per series, so runs such as FP16 AMP and FP32
 * can be drawn side by side. No dependencies beyond the C library. */
#ifndef AMP_TOOLS_PLOT_H
#define AMP_TOOLS_PLOT_H

#include <stddef.h>

#include "base/base.h"

typedef struct cli_plot_series {
    const char *name;   /* legend label; borrowed; NULL: "series N" */
    const double *loss; /* n training losses, value i for epoch i + 1; NULL: none */
    const double *acc;  /* n test accuracies as fractions (0.87 for 87%); NULL: none */
    int n;              /* epochs; at least 1 */
} cli_plot_series;

/* Render the chart. NaN and infinite values are left out (the line breaks there) and the
 * legend says how many each series lost; a constant series gets a padded axis; one epoch is
 * drawn as single points. title may be NULL. *svg is NUL-terminated, *len excludes the NUL;
 * *svg is owned by the caller (amp_free with ctx). AMP_ERR_INVALID_ARG on no series or a
 * series with n < 1. */
amp_status cli_plot_svg(amp_context *ctx, const char *title, const cli_plot_series *series, int n_series, char **svg,
                        size_t *len);

/* Render and write to path atomically (temporary name, then rename): path is either the whole
 * chart or untouched. AMP_ERR_IO names the file when it cannot be written. */
amp_status cli_plot_write(amp_context *ctx, const char *path, const char *title, const cli_plot_series *series,
                          int n_series);

#endif
