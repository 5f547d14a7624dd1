// The op library: the CPU reference of every op the models share (core/ops.c) and its CUDA twin
// (core/cuda/ops.cu: the same name with _cuda, device pointers, a stream; a CPU-only build returns
// QTK_ERR_UNSUPPORTED). Each twin is a row of tests/test_backends.c with the check it meets.
//
// An op that writes a tensor a quantizer follows takes that quantizer (qtk_outq, core/scalar.h; NULL or
// on = 0: none) and fake-quantizes each element as it writes it, which equals quantizing the whole
// output afterwards, element for element.
//
// Integer LayerNorm's CPU reference is core/intlayernorm.h; its twin is here.
#ifndef QTK_OPS_H
#define QTK_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "scalar.h"

#ifdef __cplusplus
extern "C" {
#endif

// y = q(LayerNorm(x)) over the last axis of rows of C: mean and variance in double, rounded once, then
// (x - mu) * rstd * w + b in float32 (nn.LayerNorm's result within its rounding; the GPU's bit for bit)
void qtk_op_layernorm(const float *x, float *y, size_t rows, size_t C, const float *w, const float *b, float eps,
                      const qtk_outq *q);
// x = q(softmax(x)) over the last axis of rows of n, in place: max-subtracted exp, then times 1/sum
void qtk_op_softmax(float *x, size_t rows, size_t n, const qtk_outq *q);
// RMSNorm (MambaRMSNorm): with add, h += add first (the residual add); then y = w * (h * rsqrt(mean(h^2) + eps)),
// the mean of squares in double
void qtk_op_rmsnorm(float *h, const float *add, const float *w, float *y, size_t rows, size_t D, float eps);
// Gated RMSNorm (MambaRMSNormGated, norm_before_gate = False), in place on y (rows, E): v = y * silu(z),
// per group of E/G channels v * rsqrt(mean(v^2) + eps), times w. z: rows of stride ldz.
void qtk_op_gated_rmsnorm(float *y, const float *z, size_t ldz, const float *w, size_t rows, size_t E, size_t G,
                          float eps);
// Causal depthwise conv1d + SiLU over C channels of `in` (B sequences of L rows, row stride ld), continuing
// from state (B, C, K: the last K inputs, oldest first), which then holds the last K inputs again.
// out (B*L, C) = silu(bias[c] + sum_k w[c, k] x_{t-K+1+k}[c]) (the sum in k order). K <= 64.
qtk_status qtk_op_conv1d_silu(const float *in, size_t ld, int B, int L, int C, int K, const float *w, const float *bias,
                              float *state, float *out);
// x = qr(x + qh(h)) over n elements of rows of C: a branch's output quantizer, the residual add, then the
// residual stream's quantizer
void qtk_op_residual(float *x, const float *h, size_t n, size_t C, const qtk_outq *qh, const qtk_outq *qr);

// The CUDA twins (stream: a cudaStream_t, NULL for the default stream). The qtk_outq's per-channel
// arrays are device pointers.
qtk_status qtk_op_layernorm_cuda(const float *x, float *y, size_t rows, size_t C, const float *w, const float *b,
                                 float eps, const qtk_outq *q, void *stream);
qtk_status qtk_op_softmax_cuda(float *x, size_t rows, size_t n, const qtk_outq *q, void *stream);
// core/intlayernorm.h's qtk_int_layernorm (s_in: device, (C) or (1); s1 = min(s_in), computed by the caller)
qtk_status qtk_op_int_layernorm_cuda(const float *x, float *y, size_t rows, size_t C, const float *s_in, int per_channel,
                                     float s1, float s_out, const float *gamma, const float *beta, const qtk_outq *q,
                                     void *stream);
qtk_status qtk_op_rmsnorm_cuda(float *h, const float *add, const float *w, float *y, size_t rows, size_t D, float eps,
                               void *stream);
qtk_status qtk_op_gated_rmsnorm_cuda(float *y, const float *z, size_t ldz, const float *w, size_t rows, size_t E,
                                     size_t G, float eps, void *stream);
qtk_status qtk_op_conv1d_silu_cuda(const float *in, size_t ld, int B, int L, int C, int K, const float *w,
                                   const float *bias, float *state, float *out, void *stream);
qtk_status qtk_op_residual_cuda(float *x, const float *h, size_t n, size_t C, const qtk_outq *qh, const qtk_outq *qr,
                                void *stream);

#ifdef __cplusplus
}
#endif

#endif
