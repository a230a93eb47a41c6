/* RNN, GRU and LSTM attributes and workspace sizes, shared by inference (ir/ops/rnn.c), the
 * gradient builder (ir/ops/rnn_grad.c) and the CPU kernels (backends/cpu/rnn.c, rnn_grad.c). */
#ifndef AMP_IR_OPS_RNN_H
#define AMP_IR_OPS_RNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

/* Gate blocks of W and R per direction (RNN 1, GRU 3, LSTM 4); activations per direction
 * (RNN 1, GRU 2, LSTM 3); directions of n (1 or 2, 0 for an unknown direction string). */
int amp_rnn_ngates(amp_op op);
int amp_rnn_nacts(amp_op op);
int amp_rnn_directions(const amp_node *n);
/* The activation kinds (with alpha/beta) of every direction; false with a reason in why. */
bool amp_rnn_activations(const amp_node *n, int nd, int *kind, float *alpha, float *beta, char *why, size_t cap);
/* Compute-type elements of the forward and gradient kernels' workspaces; -1 on overflow. */
int64_t amp_rnn_fwd_ws_elems(amp_op op, bool wide16, int64_t S, int64_t B, int64_t I, int64_t H, int64_t D);
int64_t amp_rnn_grad_ws_elems(amp_op op, bool wide16, int64_t S, int64_t B, int64_t I, int64_t H, int64_t D);
/* Vectorised f32 sigmoid and tanh in place (backends/cpu/rnn.c). */
void amp_cpu_rnn_sigmoid_f32(float *v, int64_t n);
void amp_cpu_rnn_tanh_f32(float *v, int64_t n);

#endif
