// Device halves of the op library (core/ops.h) that model kernels fuse into their own: one row of an op
// computed by a warp or a block, each element handed to the caller's `out(i, v)` (a store, a quantizer, an
// int8 code). core/cuda/ops.cu's kernels are these with a qtk_outq store; vision/cuda/vit.cu's add the
// int8 and fp16 epilogues of its integer path. The arithmetic is the CPU reference's, step for step.
#ifndef QTK_CUDA_OPS_CUH
#define QTK_CUDA_OPS_CUH

#include "../intlayernorm.h"
#include "common.cuh"

// LayerNorm of one row of C by one warp (lane 0..31): statistics in double, as the CPU
template <class Out>
__device__ __forceinline__ void qtk_layernorm_warp(const float *__restrict__ xr, int C, const float *__restrict__ w,
                                                   const float *__restrict__ b, float eps, int lane, Out out) {
    double s = 0;
    for (int i = lane; i < C; i += 32) s += xr[i];
    double mean = qtk_warp_sum(s) / (double)C;
    double v = 0;
    for (int i = lane; i < C; i += 32) v += ((double)xr[i] - mean) * ((double)xr[i] - mean);
    double var = qtk_warp_sum(v) / (double)C;
    float mu = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)eps));
    for (int i = lane; i < C; i += 32) out(i, (xr[i] - mu) * rstd * w[i] + b[i]);
}

// Integer LayerNorm (core/intlayernorm.h) of one row by one warp; the integer sums are exact in any order
template <class Out>
__device__ __forceinline__ void qtk_int_layernorm_warp(const float *__restrict__ xr, int C, const float *__restrict__ s_in,
                                                       int per_channel, float s1, float s_out, float inv_c,
                                                       const float *__restrict__ gamma, const float *__restrict__ beta,
                                                       int lane, Out out) {
    long long S1 = 0, S2 = 0;
    for (int c = lane; c < C; c += 32) {
        long long iv = (long long)qtk_int_ln_in(xr[c], per_channel ? s_in[c] : s_in[0], s1, per_channel);
        S1 += iv;
        S2 += iv * iv;
    }
    S1 = qtk_warp_sum(S1);
    S2 = qtk_warp_sum(S2);
    float mean, sd;
    qtk_int_ln_stats(S1, S2, (size_t)C, s1, inv_c, &mean, &sd);
    for (int c = lane; c < C; c += 32) {
        float v = qtk_int_ln_in(xr[c], per_channel ? s_in[c] : s_in[0], s1, per_channel);
        out(c, qtk_int_ln_out(v, mean, sd, s1, gamma[c], beta[c], s_out));
    }
}

// softmax of one row of n in place by one warp: in(v) reads an element (a quantizer can be fused there),
// then out(j, p) gets each probability (the row holds exp(v - max) meanwhile)
template <class In, class Out>
__device__ __forceinline__ void qtk_softmax_warp(float *row, int n, int lane, In in, Out out) {
    float mx = -INFINITY, sum = 0.0f;
    for (int j = lane; j < n; j += 32) mx = fmaxf(mx, in(row[j]));
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    for (int j = lane; j < n; j += 32) {
        float e = expf(in(row[j]) - mx);
        row[j] = e;
        sum += e;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = 1.0f / sum;
    for (int j = lane; j < n; j += 32) out(j, row[j] * inv);
}

#endif
