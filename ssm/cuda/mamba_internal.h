// Private to ssm/cuda: the GPU Mamba's state (mamba.cu) and the kernels the other files of this
// folder add to it: the chunked SSD (ssd.cu). Projections go through core/cuda/gemm.cuh.
#ifndef QTK_MAMBA_INTERNAL_H
#define QTK_MAMBA_INTERNAL_H

#include <cuda_fp16.h>

#include "../../core/cuda/common.cuh"
#include "../../core/cuda/gemm.cuh"
#include "../mamba_cuda.h"

struct qtk_mamba_cuda {
    const qtk_mamba *m;
    int maxB, maxL, B;
    cudaStream_t st;
    qtk_gemm gm;           // cuBLAS handle gm.h, its workspace set explicitly (graph capture allocates nothing)
    float *d_params;       // m->mem on the GPU: device pointer = d_params + (host pointer - m->mem)
    int fp16;              // projections (in, x, dt, out, head) with fp16 weights and inputs, FP32 sums
    __half *d_half;        // the same offsets as d_params, in fp16 (only the projection weights are filled)
    __half *xh;            // a GEMM input in fp16
    float *conv, *ssm;     // states: (layers, maxB, conv_dim, K), (layers, maxB, E * N); for B < maxB sequences,
                           // sequence b of layer l at conv + conv_per_layer * l + b * conv_dim * K (likewise ssm;
                           // Mamba2's (H, P, N) per sequence)
    size_t conv_per_layer, ssm_per_layer;
    qtk_scan_mode scan;    // Mamba2 prefill: chunked SSD (AUTO, CHUNKED) or the recurrence
    // chunked SSD workspace (Mamba2): per (sequence, chunk): C B^T (G, Q, Q) and the chunk's state (H, P, N);
    // per (sequence, head): dt and its cumulative sum within the chunk (L)
    float *cb, *chs, *dtc, *cum;
    // activations for maxB * maxL rows
    int32_t *tok;
    float *hres, *u, *mix, *proj, *xc, *y, *extra, *logits; // residual, normed, mixer output, in_proj output, ...
    cudaGraphExec_t graph;
    int graph_B;
    qtk_mamba_cuda_act_fn hook; // calibration (qtk_mamba_cuda_set_hook): sees the tensors of a prefill
    void *hook_ctx;
};

#define DEV(g, hp) ((g)->d_params + ((hp) - (g)->m->mem))
#define DEVH(g, hp) ((g)->d_half + ((hp) - (g)->m->mem))

// Mamba2 chunked SSD for layer ly over B sequences of L tokens (spec section 3): xbc (rows, CD) the conv
// output [x | B | C], dt_raw the in_proj's dt columns (row stride ld_dt), state (B, H, P, N) read and
// written, y (rows, E) = the SSD output + D x (before the gated norm).
qtk_status qtk_mamba_ssd_chunked(qtk_mamba_cuda *g, int layer, int L, const float *xbc, const float *dt_raw, int ld_dt,
                                 float *state, float *y);

#endif
