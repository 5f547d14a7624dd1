// Mamba1 / Mamba2 on one NVIDIA GPU, float32: the CPU forward of mamba.h with the projections on
// cuBLAS (GEMV kernels of one pass over the weights for decode at up to 8 sequences) and kernels for
// the embedding, the fused residual add + RMSNorm, the causal conv + SiLU, the selective scan (Mamba1),
// the chunked SSD for prefill and the SSD recurrence for decode, and the gated RMSNorm (Mamba2).
// Decode of a fixed batch is captured once as a CUDA graph and replayed per token.
//
// Use: qtk_mamba_cuda_create (weights to the GPU, buffers for max_batch x max_len tokens), then
// qtk_mamba_cuda_reset(B) for B sequences, qtk_mamba_cuda_prefill (continues from the state, as the
// CPU) and qtk_mamba_cuda_decode. A build without CUDA returns QTK_ERR_UNSUPPORTED from every call.
#ifndef QTK_MAMBA_CUDA_H
#define QTK_MAMBA_CUDA_H

#include "mamba.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qtk_mamba_cuda qtk_mamba_cuda;

// fp16: the projections (in, x, dt, out, lm_head) run with fp16 weights and fp16 inputs on tensor
// cores with FP32 sums (the decode weight traffic halves); everything else stays float32.
qtk_status qtk_mamba_cuda_create(qtk_mamba_cuda **out, const qtk_mamba *m, int max_batch, int max_len, int fp16);
void qtk_mamba_cuda_destroy(qtk_mamba_cuda *g);
// Mamba2 prefill: QTK_SCAN_AUTO / QTK_SCAN_CHUNKED (the default) or QTK_SCAN_RECURRENT (the oracle).
qtk_status qtk_mamba_cuda_set_scan(qtk_mamba_cuda *g, qtk_scan_mode mode);
// The empty prefix for B <= max_batch sequences.
qtk_status qtk_mamba_cuda_reset(qtk_mamba_cuda *g, int B);
// tokens (B, L) on the host, L <= max_len; logits (B, L, V) to the host, or NULL.
qtk_status qtk_mamba_cuda_prefill(qtk_mamba_cuda *g, const int32_t *tokens, int L, float *logits);
// One token per sequence (host tokens (B), host logits (B, V) or NULL). use_graph: replay the captured
// graph (captured on first use for this batch), else launch the kernels one by one.
qtk_status qtk_mamba_cuda_decode(qtk_mamba_cuda *g, const int32_t *tokens, float *logits, int use_graph);
// Calibration hook: fn sees layer l's tensor `point` (QTK_MAMBA_Q_*: the tensors the CPU's qtk_mamba_hooks
// act sees, dt_proj's output before its bias) in GPU memory, (rows, cols) row-major, during a prefill, in the
// order of the forward; the kernels that wrote it are queued on qtk_mamba_cuda_stream(g), not finished. fn
// NULL removes it. Decode steps do not call it.
typedef qtk_status (*qtk_mamba_cuda_act_fn)(void *ctx, int layer, int point, const float *d_x, size_t rows, int cols);
qtk_status qtk_mamba_cuda_set_hook(qtk_mamba_cuda *g, qtk_mamba_cuda_act_fn fn, void *ctx);
// The forward's stream (a cudaStream_t)
void *qtk_mamba_cuda_stream(qtk_mamba_cuda *g);
// The GPU's states copied into s (initialised for the same B), for tests.
qtk_status qtk_mamba_cuda_get_state(qtk_mamba_cuda *g, qtk_mamba_state *s);

#ifdef __cplusplus
}
#endif

#endif
