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
// acc (M, N) = A (M, K; row stride lda) B^T, B (N, K): int8 operands, exact int32 sums (K <= 2^17 keeps
// them in range); OpenMP across rows and columns. The CUDA side is qtk_gemm_int8 (core/cuda/gemm.h).
void qtk_gemm_s8(const int8_t *A, size_t lda, const int8_t *B, int32_t *acc, size_t M, int N, int K);
// x = qr(x + qh(h)) over n elements of rows of C: a branch's output quantizer, the residual add, then the
// residual stream's quantizer
void qtk_op_residual(float *x, const float *h, size_t n, size_t C, const qtk_outq *qh, const qtk_outq *qr);

// --- CNN ops: NCHW float32 tensors; a per-channel output quantizer is indexed by the channel (axis 1) ---

// A 2-D convolution's shape: B images of C channels, H x W; O output channels, KH x KW kernels, stride,
// zero padding, groups 1 (a dense conv) or C == O (depthwise). qtk_conv2d_out gives Ho, Wo.
typedef struct {
    int B, C, H, W, O, KH, KW, stride_h, stride_w, pad_h, pad_w, groups;
} qtk_conv2d_shape;
// Checks the shape (positive sizes, groups 1 or depthwise, an output of at least 1 x 1, sizes below 2^31);
// Ho and Wo of the output.
qtk_status qtk_conv2d_out(const qtk_conv2d_shape *s, int *Ho, int *Wo);
// y (B, O, Ho, Wo) = q(act(conv(x, w) + bias)), w (O, C / groups, KH, KW), bias (O) or NULL. Dense: im2col
// and one product per image (core/blas.h: the bits do not depend on the thread count); depthwise: each
// output the sum over (kh, kw) in order, from 0, then + bias. Element order of the epilogue as written.
qtk_status qtk_op_conv2d(const qtk_conv2d_shape *s, const float *x, const float *w, const float *bias, qtk_act act,
                         const qtk_outq *q, float *y);
// Eval-mode batch norm as a per-channel affine, as PyTorch's CPU kernel computes it: invstd = 1 / sqrt(var[c] +
// eps), a[c] = gamma[c] invstd, b[c] = fma(-mean[c], a[c], beta[c]); qtk_op_bn_act then y = fma(x, a, b), which
// equals F.batch_norm(training=False) bit for bit (tests/test_cnn_ops.c, PyTorch 2.11 fixtures)
void qtk_bn_affine(const float *gamma, const float *beta, const float *mean, const float *var, float eps, size_t C,
                   float *a, float *b);
// x (B, C, HW) = q(act(fma(x, a[c], b[c]))) in place; a NULL: x + b[c]; both NULL: q(act(x)) alone
void qtk_op_bn_act(float *x, size_t B, size_t C, size_t HW, const float *a, const float *b, qtk_act act, const qtk_outq *q);

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
// Dense convs run im2col into ws (qtk_conv2d_ws_floats(s) floats on the device; depthwise needs none) and
// a GEMM per image (gemm: a context from core/cuda/gemm.h, on the stream it was made with; NULL for
// depthwise). The sums' order differs from the CPU's for dense convs (test_backends: NMSE); depthwise
// is the CPU's bit for bit.
size_t qtk_conv2d_ws_floats(const qtk_conv2d_shape *s);
struct qtk_gemm;
qtk_status qtk_op_conv2d_cuda(const qtk_conv2d_shape *s, const float *x, const float *w, const float *bias, qtk_act act,
                              const qtk_outq *q, float *y, float *ws, struct qtk_gemm *gemm, void *stream);
qtk_status qtk_op_bn_act_cuda(float *x, size_t B, size_t C, size_t HW, const float *a, const float *b, qtk_act act,
                              const qtk_outq *q, void *stream);

#ifdef __cplusplus
}
#endif

#endif
