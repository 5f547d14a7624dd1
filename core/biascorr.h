// Bias correction of fake-quantized weights (spec vit-baseline.md section 5,
// the reference's quantizer/base.py bias_correction): per output row, match
// the quantized row's mean and (unbiased) std to the float row's.
#ifndef QTK_BIASCORR_H
#define QTK_BIASCORR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// W (O, K): float weights; Wq (O, K): their fake-quantized values, replaced in
// place by the corrected weights. Means and stds use double accumulators,
// rounded to float32 once [QTK]; the elementwise steps are the reference's
// float32 operations in its order, (t2 + mu_q) - mu_q included.
void qtk_bias_correct(const float *W, float *Wq, size_t O, size_t K);

#ifdef __cplusplus
}
#endif

#endif
