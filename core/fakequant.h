// Fake quantization: x -> (clamp(round(...)) - z) * s, float in, float out.
//
// Bit-exact with PyTorch for both formulas of qparams.h: the reference form
// divides (x / s), it never multiplies by a precomputed reciprocal; the torch
// form multiplies by fl32(1/s) exactly as ATen's kernels do. All functions
// accept y == x (in place).
#ifndef QTK_FAKEQUANT_H
#define QTK_FAKEQUANT_H

#include <math.h>
#include <stddef.h>

#include "qparams.h"
#include "scalar.h"

#ifdef __cplusplus
extern "C" {
#endif

// One element, the readable reference every kernel is tested against (core/scalar.h: qtk_fq_elem, the
// expression the CUDA kernels evaluate too).
static inline float qtk_fake_quant_scalar(float x, float s, float z, int lo, int hi, qtk_fq_formula f) {
    return qtk_fq_elem(x, s, z, (float)lo, (float)hi, f == QTK_FQ_TORCH);
}

// Scalar reference over a whole tensor (any granularity). Slow; for tests.
qtk_status qtk_fake_quant_ref(const qtk_qparams *p, const float *x, float *y,
                              int ndim, const int64_t *shape);

// Optimized (vectorized + OpenMP) kernels. lo/hi from qtk_qrange.
void qtk_fake_quant_per_tensor(const float *x, float *y, size_t n, float s, float z,
                               int lo, int hi, qtk_fq_formula f);
// x viewed as (outer, C, inner); channel c uses s[c], z[c].
void qtk_fake_quant_per_channel(const float *x, float *y, size_t outer, size_t C, size_t inner,
                                const float *s, const float *z, int lo, int hi, qtk_fq_formula f);
// x viewed as (outer, L, inner); groups of g consecutive elements along L;
// params laid out (outer, L/g, inner).
void qtk_fake_quant_per_group(const float *x, float *y, size_t outer, size_t L, size_t inner,
                              size_t g, const float *s, const float *z, int lo, int hi,
                              qtk_fq_formula f);

// Sum over n values of (x - fq(x))^2 for the reference formula, per tensor:
// the squares in float32 (as |x - x_q|^2), accumulated in double. Vectorized;
// equal to the scalar reference element by element.
double qtk_fake_quant_sse(const float *x, size_t n, float s, float z, int lo, int hi);
// sse[j] = qtk_fake_quant_sse(x, n, s[j], z[j], lo, hi) for k candidates, bit for bit, in one parallel
// pass over (candidate, chunk) pairs (a search over 90 candidates forks once, and keeps 16 threads busy
// where one tensor has fewer chunks than threads). The CPU twin of qtk_fake_quant_sse_multi_cuda.
void qtk_fake_quant_sse_multi(const float *x, size_t n, const float *s, const float *z, int k, int lo, int hi,
                              double *sse);

// Dispatcher: validates p against the shape and runs the matching kernel.
// bits == QTK_BITS_OFF copies x to y.
qtk_status qtk_fake_quant(const qtk_qparams *p, const float *x, float *y, int ndim,
                          const int64_t *shape);

#ifdef __cplusplus
}
#endif

#endif
