// Integer LayerNorm (FQ-ViT's QIntLayerNorm, spec vit-baseline.md section 7):
// LayerNorm on the integer grid of the input quantizer, with per-channel
// power-of-two input factors (PTF), and the affine transform folded into
// 8-bit multipliers M_c with shifts N_c. No eps; the output is on the next
// quantizer's grid (y = yq * s_out), unclamped, without zero point.
#ifndef QTK_INTLAYERNORM_H
#define QTK_INTLAYERNORM_H

#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

// x, y: (rows, C); y may equal x. s_in: (C) when s_in_per_channel, else one
// scalar (then m_c = 1). s_out: the following quantizer's scalar scale.
// gamma, beta: (C). Per row: S1, S2 are exact (int64), C*S2 - S1^2 is
// rounded to float32 once [QTK decision]; every other step is the
// reference's float32 arithmetic in its order.
void qtk_int_layernorm(const float *x, float *y, size_t rows, size_t C, const float *s_in, int s_in_per_channel,
                       float s_out, const float *gamma, const float *beta);

// get_MN (bit = 7) for one |A|: N = clamp(7 - floor(log2f(a)), 0, 31),
// M = clamp(floor(a * 2^N), 0, 255). Uses float32 log2f, as the reference.
void qtk_int_ln_mn(float a, float *M, float *N);

#ifdef __cplusplus
}
#endif

#endif
