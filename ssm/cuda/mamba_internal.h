// Private to ssm/cuda: the GPU Mamba's state (mamba.cu) and the kernels the other files of this
// folder add to it: small-batch GEMVs for decode (gemv.cu) and the chunked SSD (ssd.cu).
#ifndef QTK_MAMBA_INTERNAL_H
#define QTK_MAMBA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_fp16.h>

#include "../../core/cuda/common.cuh"
#include "../mamba_cuda.h"

struct qtk_mamba_cuda {
    const qtk_mamba *m;
    int maxB, maxL, B;
    cublasHandle_t h;
    cudaStream_t st;
    void *ws;              // cuBLAS workspace (set explicitly so graph capture allocates nothing)
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
};

#define DEV(g, hp) ((g)->d_params + ((hp) - (g)->m->mem))
#define DEVH(g, hp) ((g)->d_half + ((hp) - (g)->m->mem))

// weight loads of the GEMVs (float32 or fp16 weights, read as float32): 8 at a time (16-byte aligned), one,
// and the GEMV input as the fp16 path sees it (rounded to fp16 for fp16 weights)
template <typename W> struct wvec;
template <> struct wvec<float> { // 8 float32 weights = two 16-byte loads
    static __device__ __forceinline__ void load(const float *p, float *o) {
        float4 a = __ldg((const float4 *)p), b = __ldg((const float4 *)p + 1);
        o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w, o[4] = b.x, o[5] = b.y, o[6] = b.z, o[7] = b.w;
    }
    static __device__ __forceinline__ float one(const float *p) { return __ldg(p); }
    static __device__ __forceinline__ float in(float x) { return x; }
};
template <> struct wvec<__half> { // 8 fp16 weights = one 16-byte load
    static __device__ __forceinline__ void load(const __half *p, float *o) {
        uint4 v = __ldg((const uint4 *)p);
        const __half2 *h = (const __half2 *)&v;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __half22float2(h[i]);
            o[2 * i] = f.x, o[2 * i + 1] = f.y;
        }
    }
    static __device__ __forceinline__ float one(const __half *p) { return __half2float(p[0]); }
    static __device__ __forceinline__ float in(float x) { return __half2float(__float2half_rn(x)); }
};

// y (rows, N; row stride ldy) = act(x (rows, K; row stride ldx) W^T + b) for rows <= QTK_GEMV_MAX_ROWS, one
// pass over W (float32, or fp16 with x rounded to fp16 as the tensor-core path does; FP32 sums). act:
// 0 none, 1 softplus. b may be NULL.
#define QTK_GEMV_MAX_ROWS 8
qtk_status qtk_mamba_gemv(cudaStream_t st, const void *W, int w_half, const float *x, int ldx, const float *b, float *y,
                          int ldy, int rows, int N, int K, int act);

// Mamba2 chunked SSD for layer ly over B sequences of L tokens (spec section 3): xbc (rows, CD) the conv
// output [x | B | C], dt_raw the in_proj's dt columns (row stride ld_dt), state (B, H, P, N) read and
// written, y (rows, E) = the SSD output + D x (before the gated norm).
qtk_status qtk_mamba_ssd_chunked(qtk_mamba_cuda *g, int layer, int L, const float *xbc, const float *dt_raw, int ld_dt,
                                 float *state, float *y);

#endif
