// Scalar functions that the CPU reference and the CUDA kernels both use, each written once: the
// fake-quant element, SiLU, softplus, GELU and the clamp. In C they are static inline; compiled by
// nvcc (core/cuda/common.cuh includes this file) they are __host__ __device__, so a kernel and its CPU
// reference evaluate the same expression. Both sides are built without contraction (-ffp-contract=off,
// --fmad=false) and with IEEE division, so the results agree bit for bit where the libm and CUDA
// functions they call do (rintf, division: always; expf, log1pf, erff: within their documented ULPs).
#ifndef QTK_SCALAR_H
#define QTK_SCALAR_H

#include <math.h>
#include <stddef.h>

#ifdef __CUDACC__
#define QTK_HD __host__ __device__ __forceinline__
#else
#define QTK_HD static inline
#endif

// A function built twice, for AVX2 and for baseline x86-64 (SSE2), the loader picking one for the CPU it
// runs on (GCC's target_clones): for integer loops, whose results do not depend on the instructions
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define QTK_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QTK_AVX2_CLONES
#endif

// The grid point before clamping: the reference form torch.round(x / s + z), or the torch form
// z + nearbyint(x * fl32(1 / s)) of ATen's kernels (qparams.h: qtk_fq_formula).
QTK_HD float qtk_fq_round(float x, float s, float z, int torch) {
    return torch ? rintf(x * (1.0f / s)) + z : rintf(x / s + z);
}

// Fake quantization of one element: (clamp(grid point, lo, hi) - z) * s; NaN stays NaN (torch.clamp).
QTK_HD float qtk_fq_elem(float x, float s, float z, float lo, float hi, int torch) {
    float q = qtk_fq_round(x, s, z, torch);
    q = q < lo ? lo : q;
    q = q > hi ? hi : q;
    return (q - z) * s;
}

// The clamped grid point, for integer codes: NaN goes to lo (a code must be a number).
QTK_HD float qtk_fq_grid(float x, float s, float z, float lo, float hi, int torch) {
    float q = qtk_fq_round(x, s, z, torch);
    q = !(q >= lo) ? lo : q;
    return q > hi ? hi : q;
}

// An output quantizer as an op applies it to every element it writes: off, one (s, z), or one per channel
// of the last axis. s_c / z_c: host pointers for the CPU ops (core/ops.h), device pointers for their CUDA
// twins. Passed to a kernel by value.
typedef struct {
    int on;
    int per_channel;
    float s, z;               // per tensor
    const float *s_c, *z_c;   // per channel
    float lo, hi;             // the code range
    int torch;                // the formula (qparams.h: qtk_fq_formula)
} qtk_outq;

// x through q (c: x's channel, the index along the last axis)
QTK_HD float qtk_outq_apply(const qtk_outq *q, float x, size_t c) {
    if (!q || !q->on) return x;
    return q->per_channel ? qtk_fq_elem(x, q->s_c[c], q->z_c[c], q->lo, q->hi, q->torch)
                          : qtk_fq_elem(x, q->s, q->z, q->lo, q->hi, q->torch);
}

// An int8 code from an already rounded value: saturated to [-128, 127], NaN to -128 (a code must be a number).
// Real int8 paths round first with roundf (half away from zero, Quamba's CUDA kernels) or rintf (half to even,
// CUTLASS epilogues and torch.round), each as its reference does.
QTK_HD signed char qtk_sat_s8(float q) {
    q = !(q >= -128.0f) ? -128.0f : q;
    return (signed char)(q > 127.0f ? 127.0f : q);
}

// v clamped to [lo, hi] (Mamba2's dt to time_step_limit); NaN stays NaN
QTK_HD float qtk_clampf(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

// F.silu
QTK_HD float qtk_silu(float v) { return v / (1.0f + expf(-v)); }

// F.softplus with PyTorch's threshold 20
QTK_HD float qtk_softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

// nn.GELU() (the erf form)
QTK_HD float qtk_gelu(float u) { return u * 0.5f * (1.0f + erff(u * 0.70710678118654752f)); }

// The activations of the CNNs (and the ones above), as one mode
typedef enum {
    QTK_ACT_NONE,
    QTK_ACT_RELU,        // max(x, 0)
    QTK_ACT_RELU6,       // min(max(x, 0), 6)
    QTK_ACT_HARDSWISH,   // x * min(max(x + 3, 0), 6) / 6 (F.hardswish)
    QTK_ACT_HARDSIGMOID, // min(max(x + 3, 0), 6) / 6 (F.hardsigmoid)
    QTK_ACT_SILU,
    QTK_ACT_GELU,
} qtk_act;

// x through activation a (NaN stays NaN)
QTK_HD float qtk_act_apply(qtk_act a, float x) {
    switch (a) {
    case QTK_ACT_RELU: return x < 0.0f ? 0.0f : x;
    case QTK_ACT_RELU6: return qtk_clampf(x, 0.0f, 6.0f);
    case QTK_ACT_HARDSWISH: return x * qtk_clampf(x + 3.0f, 0.0f, 6.0f) / 6.0f;
    case QTK_ACT_HARDSIGMOID: return qtk_clampf(x + 3.0f, 0.0f, 6.0f) / 6.0f;
    case QTK_ACT_SILU: return qtk_silu(x);
    case QTK_ACT_GELU: return qtk_gelu(x);
    default: return x;
    }
}

#endif
