// Bias correction of fake-quantized weights (spec vit-baseline.md section 5,
// the reference's quantizer/base.py bias_correction): per output row, match
// the quantized row's mean and (unbiased) std to the float row's.
#ifndef QTK_BIASCORR_H
#define QTK_BIASCORR_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "qparams.h"

#ifdef __cplusplus
extern "C" {
#endif

// W (O, K): float weights; Wq (O, K): their fake-quantized values, replaced in
// place by the corrected weights. Means and stds use double accumulators,
// rounded to float32 once [QTK]; the elementwise steps are the reference's
// float32 operations in its order, (t2 + mu_q) - mu_q included.
void qtk_bias_correct(const float *W, float *Wq, size_t O, size_t K);

// The per-output-channel fake-quantized weights of W (O, K), bias-corrected
// when bias_corr, as an affine map of integer codes per row (for integer
// GEMMs): Wq[o, k] = alpha[o] * codes[o * ldc + k] + gamma[o] in exact
// arithmetic. codes = c - off, with c the grid point qtk_fake_quant_scalar
// picks in [lo, hi] for scale[o], zero[o] and off = 128 where hi > 127 (so
// the codes fit int8), else 0; bsum[o] = sum_k codes[o, k]. The row
// statistics are qtk_bias_correct's (float32 means, stds and variance
// correction), so alpha * code + gamma differs from qtk_bias_correct's
// result only by the float32 rounding of its elementwise steps.
// QTK_ERR_ARG where [lo - off, hi - off] does not fit int8.
qtk_status qtk_weight_affine(const float *W, size_t O, size_t K, const float *scale, const float *zero, int lo, int hi,
                             qtk_fq_formula f, int bias_corr, int8_t *codes, size_t ldc, double *alpha, double *gamma,
                             int32_t *bsum);
// The offset above: 128 where hi > 127, else 0.
static inline int qtk_code_offset(int hi) { return hi > 127 ? 128 : 0; }

#ifdef __cplusplus
}
#endif

#endif
