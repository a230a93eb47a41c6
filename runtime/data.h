/* Training data: IDX files (the MNIST file format), image-classification datasets built from
 * an images file and a labels file, and a seeded, resumable batcher. Internal to amprt.
 *
 * Everything here allocates through the context's allocator and reports failures as a status
 * with the message on the context; out-parameters are untouched on failure. */
#ifndef AMP_RUNTIME_DATA_H
#define AMP_RUNTIME_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/ir.h"

/* ---- IDX files ---------------------------------------------------------------------------- */

/* Constructor: read an IDX file, gzip-compressed (possibly several concatenated members) or
 * raw; the two are told apart by the content, not the name. Element types map to dtypes:
 * 0x08 u8 -> AMP_U8, 0x09 i8 -> AMP_I8, 0x0B i16 -> AMP_I32 (widened: amprt has no i16),
 * 0x0C i32 -> AMP_I32, 0x0D f32 -> AMP_F32, 0x0E f64 -> AMP_F64; multi-byte values are
 * big-endian in the file. The tensor's rank is the file's ndims (1..8); a zero dimension
 * gives an empty tensor (whether that makes sense is the caller's call: datasets refuse it).
 *
 * Errors, each naming the file: AMP_ERR_IO (cannot open, read error), AMP_ERR_PARSE (bad
 * magic, unknown type, ndims 0 or over 8, truncated header or data, bytes after the data,
 * corrupt gzip stream), AMP_ERR_OVERFLOW (dims product overflows), AMP_ERR_LIMIT (more than
 * ctx->max_tensor_elements elements, or more than ctx->max_file_bytes bytes decompressed or
 * read). *out is owned by the caller (amp_tensor_destroy). */
amp_status amp_idx_load(amp_context *ctx, const char *path, amp_tensor **out);

/* ---- image-classification datasets -------------------------------------------------------- */

typedef struct amp_dataset_options {
    size_t struct_size; /* sizeof(amp_dataset_options), or 0 */
    /* Pixels become (x / 255 - mean) / std. Zero mean and std mean x / 255. */
    double mean;
    double std;
    /* Labels must lie in 0..n_classes-1. 0 means 10. */
    int n_classes;
} amp_dataset_options;

typedef struct amp_image_dataset {
    amp_context *ctx;
    int64_t n;          /* samples */
    int64_t h, w;       /* image height and width (one channel) */
    int n_classes;
    amp_tensor *images; /* f32 [n, 1, h, w], normalised; owned */
    amp_tensor *labels; /* i64 [n]; owned */
} amp_image_dataset;

typedef enum amp_data_split { AMP_SPLIT_TRAIN = 0, AMP_SPLIT_TEST = 1 } amp_data_split;

/* Constructor: build a dataset from an IDX images tensor (u8, [n, h, w] or [n, 1, h, w]) and
 * a labels tensor (u8, i8, i32 or i64, [n]). Errors: AMP_ERR_UNSUPPORTED for other dtypes,
 * AMP_ERR_SHAPE when the shapes are wrong, the counts differ or n, h or w is zero,
 * AMP_ERR_INVALID_ARG for a label outside 0..n_classes-1 (the message names the sample) or a
 * negative or non-finite std. The inputs are only read. opts may be NULL. *out is owned by
 * the caller. */
amp_status amp_image_dataset_from_tensors(amp_context *ctx, const amp_tensor *images, const amp_tensor *labels,
                                          const amp_dataset_options *opts, amp_image_dataset **out);

/* Constructor: amp_idx_load both files, then amp_image_dataset_from_tensors. Messages name the
 * file at fault. */
amp_status amp_image_dataset_load(amp_context *ctx, const char *images_path, const char *labels_path,
                                  const amp_dataset_options *opts, amp_image_dataset **out);

/* Constructor: load a split from a folder laid out like the MNIST distribution (Debian's
 * dataset-fashion-mnist installs one in /usr/share/datasets/fashion-mnist):
 *   train: train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]
 *   test:  t10k-images-idx3-ubyte[.gz]  and t10k-labels-idx1-ubyte[.gz]
 * The .gz name is tried first. AMP_ERR_NOT_FOUND names the folder and the file names when
 * neither form exists. */
amp_status amp_image_dataset_load_dir(amp_context *ctx, const char *dir, amp_data_split split,
                                      const amp_dataset_options *opts, amp_image_dataset **out);

/* Destructor. NULL-safe. */
void amp_image_dataset_destroy(amp_image_dataset *d);

/* ---- the batcher --------------------------------------------------------------------------- */

typedef struct amp_batcher_options {
    size_t struct_size; /* sizeof(amp_batcher_options), or 0 */
    int64_t batch;      /* samples per batch; must be positive */
    uint64_t seed;      /* the shuffle of epoch e depends only on (seed, e) */
    bool sequential;    /* true: dataset order in every epoch (no shuffle) */
    bool drop_last;     /* true: a last batch of fewer than `batch` samples is skipped */
} amp_batcher_options;

/* One thread at a time: next and order rewrite the cached order of the epoch they read. */
typedef struct amp_batcher amp_batcher;

/* Constructor. opts is required (the batch size has no default). The batcher borrows d, which
 * must outlive it. It starts at (epoch 0, batch 0). AMP_ERR_INVALID_ARG when batch is not
 * positive, or when drop_last leaves no batch at all. *out is owned by the caller. */
amp_status amp_batcher_create(amp_context *ctx, const amp_image_dataset *d, const amp_batcher_options *opts,
                              amp_batcher **out);

/* Destructor. NULL-safe. */
void amp_batcher_destroy(amp_batcher *b);

/* Batches in one epoch (the short last one included unless drop_last). */
int64_t amp_batcher_batches_per_epoch(const amp_batcher *b);

/* Move to (epoch, batch): the next amp_batcher_next returns that batch, exactly as a batcher
 * that had run from the start would. This is how an epoch is begun and how a run resumes.
 * AMP_ERR_INVALID_ARG when epoch is negative or batch is outside 0..batches_per_epoch
 * (batches_per_epoch itself means "this epoch is done"). */
amp_status amp_batcher_seek(amp_batcher *b, int64_t epoch, int64_t batch);

/* Where the next amp_batcher_next reads: the pair to save in a checkpoint. Either pointer may
 * be NULL. */
void amp_batcher_position(const amp_batcher *b, int64_t *epoch, int64_t *batch);

/* Fill the next batch of the current epoch and advance. images must be f32 [B, 1, h, w] and
 * labels i64 [B], with B the batch size (AMP_ERR_SHAPE otherwise). *count receives the
 * samples written: B, fewer for a short last batch (the rows after it are zeroed; a view of
 * the first *count rows is the short batch), 0 when the epoch is done (nothing written; seek
 * to the next epoch to go on). */
amp_status amp_batcher_next(amp_batcher *b, amp_tensor *images, amp_tensor *labels, int64_t *count);

/* The dataset index of position i (0..n-1) of epoch's order; -1 when out of range. The same
 * permutation amp_batcher_next follows; for checks and for reports. */
int64_t amp_batcher_order(amp_batcher *b, int64_t epoch, int64_t i);

#endif
