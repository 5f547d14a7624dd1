// The GEMM module every GPU model shares (core/cuda/gemm.cu), callable from C: one context holding the
// cuBLAS and cuBLASLt handles, the workspace and the exact-FP32 policy, with
//   qtk_gemm_lt       y (rows, N) [+]= x W^T [+ bias] through a cuBLASLt plan cached per shape (the bias in
//                     the epilogue, the residual as C), plain cuBLAS where no plan exists
//   qtk_gemm_nn       C = A B, row-major float32 (the CNNs' convolutions after im2col)
//   qtk_gemm_int8     int32 sums of int8 codes on the tensor cores (IMMA), plans cached the same way
//   qtk_gemm_linear   y = act(x W^T + b) for float32 or fp16 weights: a small-batch GEMV at up to
//                     QTK_GEMV_MAX_ROWS rows (decode), cuBLAS (fp16 tensor cores, FP32 sums) above
//   qtk_gemv          the GEMV alone
// Every matrix is row-major and on the device; W (N, K) is a linear layer's weight. A build without CUDA
// links core/cuda/stub.c, where these return QTK_ERR_UNSUPPORTED. The GPU models embed the context
// (gemm.cuh, C++) and use its cuBLAS handle for their other calls.
#ifndef QTK_CUDA_GEMM_H
#define QTK_CUDA_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "../error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QTK_GEMV_MAX_ROWS 8

typedef struct qtk_gemm qtk_gemm;

// A context on `stream` (a cudaStream_t; NULL: the default stream) with a workspace of ws_bytes. tf32: TF32
// tensor cores for FP32 GEMMs; otherwise exact FP32, pedantic where NVIDIA_TF32_OVERRIDE asks for anything
// but 0 (so the override never turns a GEMM into TF32). cublas_ws: cuBLAS uses the workspace too (nothing
// allocated during graph capture).
qtk_status qtk_gemm_create(qtk_gemm **out, void *stream, int tf32, size_t ws_bytes, int cublas_ws);
void qtk_gemm_destroy(qtk_gemm *g);

// y (rows, N) [+]= x (rows, K) W^T [+ bias], all float32. acc: y += (the cuBLASLt plan only;
// QTK_ERR_UNSUPPORTED where none). *bias_done = 1 when the epilogue added the bias (one float32 rounding of
// sum + bias); 0 when plain cuBLAS ran and the caller still has to add it.
qtk_status qtk_gemm_lt(qtk_gemm *g, const float *x, const float *W, const float *bias, float *y, int rows, int N, int K,
                       int acc, int *bias_done);

// C (M, N) = A (M, K) B (K, N), all float32 row-major (plain cuBLAS SGEMM under the context's math mode).
qtk_status qtk_gemm_nn(qtk_gemm *g, const float *A, const float *B, float *C, int M, int N, int K);

// Whether the int8 GEMM of this shape has a cuBLASLt algorithm (making its plan; 0 on any error).
int qtk_gemm_int8_ok(qtk_gemm *g, int rows, int N, int K);
// y (rows, N) int32 = x (rows, K) int8 codes times W (N, K) int8 codes^T, exact. N and K multiples of 4
// (cuBLASLt's int8 alignment) are the caller's to provide.
qtk_status qtk_gemm_int8(qtk_gemm *g, const int8_t *x, const int8_t *W, int32_t *y, int rows, int N, int K);

// y (rows, N; row stride ldy) = act(x (rows, K; row stride ldx) W^T + b) for 1 <= rows <= QTK_GEMV_MAX_ROWS,
// one pass over W: float32 (w_half 0) or fp16 (x rounded to fp16 as the tensor-core path does); FP32 sums,
// each lane's products fused multiply-adds in K order, then a fixed tree. act: 0 none, 1 softplus. b may
// be NULL. stream: a cudaStream_t.
qtk_status qtk_gemv(void *stream, const void *W, int w_half, const float *x, int ldx, const float *b, float *y, int ldy,
                    int rows, int N, int K, int act);

// y (rows, N) = act(x (rows, K; row stride ldx) W^T (+ b)); act 1: softplus. W float32 (w_half 0) or fp16
// (then xh: rows * K fp16 values of scratch for x). Up to QTK_GEMV_MAX_ROWS rows one GEMV pass; more
// through cuBLAS (fp16 operands on tensor cores with FP32 sums, or FP32 SGEMM), bias and act after.
qtk_status qtk_gemm_linear(qtk_gemm *g, const float *x, int ldx, const void *W, int w_half, void *xh, const float *b,
                           float *y, size_t rows, int N, int K, int act);

#ifdef __cplusplus
}
#endif

#endif
