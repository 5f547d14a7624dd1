// Quamba W8A8 on one NVIDIA GPU (sm_90 and the rest: nothing is limited to sm80-sm89): the CPU reference of
// quamba.h with real int8 arithmetic. int8 x int8 -> int32 GEMMs on the tensor cores (cuBLASLt IMMA) for
// prefill, an int8 GEMV (dp4a, one pass over the int8 weights, the epilogue fused) for decode at up to
// 8 sequences; the residual add + RMSNorm, the quantizers, the int8 conv1d + SiLU, the selective scan on int8
// operands and the fused Hadamard + quantize as kernels that evaluate ssm/quamba_kernels.h's expressions;
// the fp16 head on the tensor cores. Decode of a fixed batch is captured once as a CUDA graph.
//
// Use: qtk_quamba_cuda_create (the int8 weights to the GPU, buffers for max_batch x max_len tokens),
// qtk_quamba_cuda_reset(B), then prefill / decode as the CPU's. A build without CUDA returns
// QTK_ERR_UNSUPPORTED from every call.
#ifndef QTK_QUAMBA_CUDA_H
#define QTK_QUAMBA_CUDA_H

#include "quamba.h"
#include "quamba_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qtk_quamba_cuda qtk_quamba_cuda;

// Static variants only (dynamic runs on the CPU). d_model, d_inner, dt_rank and R + 2N must be multiples of 4
// (the int8 GEMMs' alignment), d_inner at most 29056 (the Hadamard's shared memory).
qtk_status qtk_quamba_cuda_create(qtk_quamba_cuda **out, const qtk_quamba *q, int max_batch, int max_len);
void qtk_quamba_cuda_destroy(qtk_quamba_cuda *g);
qtk_status qtk_quamba_cuda_reset(qtk_quamba_cuda *g, int B);
// tokens (B, L) on the host, L <= max_len; logits (B, L, V) to the host, or NULL
qtk_status qtk_quamba_cuda_prefill(qtk_quamba_cuda *g, const int32_t *tokens, int L, float *logits);
// one token per sequence; use_graph: replay the decode step's CUDA graph (captured on first use)
qtk_status qtk_quamba_cuda_decode(qtk_quamba_cuda *g, const int32_t *tokens, float *logits, int use_graph);
// Adds the saturated codes counted on the GPU since the last call to q->sat (q->seen too) and clears them.
qtk_status qtk_quamba_cuda_collect_saturation(qtk_quamba_cuda *g);
// Bytes of the GPU's weights (int8 codes, the fp16 embedding and head, norms): the memory figure of a benchmark
size_t qtk_quamba_cuda_weight_bytes(const qtk_quamba_cuda *g);
// on 1: a decode step of up to 8 sequences fuses the conv into in_proj's GEMV epilogue and dt_proj into the scan
// (5 kernels per layer instead of 8); 0, the default, launches every stage: the fused form ran slower on the H100
// (run 35, results/ssm/quamba_gpu_runs.txt). The benchmark measures both in one run.
void qtk_quamba_cuda_set_fusion(qtk_quamba_cuda *g, int on);
// Stage profile: on = 1 times each stage of the forwards that follow with events (a graph decode step is
// captured anew with an event node after each stage, and the graph is not kept);
// ms (QTK_QUAMBA_STAGES) gets the milliseconds summed since the last call (then cleared). Stages: norm +
// quantize, in_proj, conv, x_proj, dt_proj, scan, Hadamard + quantize, out_proj, embedding + head.
#define QTK_QUAMBA_STAGES 9
qtk_status qtk_quamba_cuda_profile(qtk_quamba_cuda *g, int on, double *ms);
// Kernel times: each stage of layer 0 for a decode step of the current batch (and the final norm + head),
// launched reps times back to back; us (QTK_QUAMBA_STAGES) gets the microseconds per launch. Stages fused
// into another (a decode step of at most 8 sequences: conv into in_proj, dt_proj into the scan) read 0. The
// states and the residual change; reset before a forward that matters.
qtk_status qtk_quamba_cuda_stage_times(qtk_quamba_cuda *g, int reps, double *us);
// Perplexity as qtk_quamba_perplexity, on the GPU
qtk_status qtk_quamba_cuda_perplexity(const qtk_quamba *q, const int32_t *tokens, size_t n, int ctx, int stride,
                                      int max_windows, int batch, double *ppl, size_t *n_scored);

// --- the kernels alone, on device memory (the backend test) -------------------------------------------
// int8 conv1d + SiLU; *sat gets the saturated codes
qtk_status qtk_quamba_conv_q8_cuda(const quamba_conv_args *a, uint64_t *sat);
qtk_status qtk_quamba_scan_cuda(const quamba_scan_args *a);
// y (rows, E) through the unnormalized Hadamard (had) then q = clamp(roundf(y mu)); y overwritten
qtk_status qtk_quamba_had_q8_cuda(float *y, size_t rows, int E, int had, float s, int8_t *q, uint64_t *sat);
// q = clamp(roundf(v / s)) over n values
qtk_status qtk_quamba_q8_div_cuda(const float *v, size_t n, float s, int8_t *q, uint64_t *sat);
// q (rows, N) = clamp(RNE(epilogue e of acc)) (quamba_internal.h's quamba_epi)
qtk_status qtk_quamba_requant_cuda(const int32_t *acc, size_t rows, int N, float s_w, float s_in, float s_out, int e,
                                   int8_t *q, uint64_t *sat);
// The decode GEMV, int8 x int8 with the epilogue fused: rows <= 8 of x (row stride ldx) times W (N, K)^T;
// out_q != NULL: int8 codes with epilogue e; else h (rows, N) += fp16(s_in (s_w acc)) (out_proj). K % 4 == 0.
qtk_status qtk_quamba_gemv_cuda(const int8_t *x, int ldx, const int8_t *W, int rows, int N, int K, float s_w, float s_in,
                                float s_out, int e, int8_t *out_q, float *h, uint64_t *sat);

#ifdef __cplusplus
}
#endif

#endif
