// Integer LayerNorm (FQ-ViT's QIntLayerNorm, spec vit-baseline.md section 7):
// LayerNorm on the integer grid of the input quantizer, with per-channel
// power-of-two input factors (PTF), and the affine transform folded into
// 8-bit multipliers M_c with shifts N_c. No eps; the output is on the next
// quantizer's grid (y = yq * s_out), unclamped, without zero point.
#ifndef QTK_INTLAYERNORM_H
#define QTK_INTLAYERNORM_H

#include <stddef.h>

#include "error.h"
#include "scalar.h"

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
QTK_HD void qtk_int_ln_mn(float a, float *M, float *N) {
    // N = (bit - 1 - torch.floor(torch.log2(a))).clamp(0, 31); M = torch.floor(a * 2**N).clamp(0, 2**(bit+1) - 1)
    float n = 7.0f - floorf(log2f(a));
    n = n < 0.0f ? 0.0f : (n > 31.0f ? 31.0f : n);
    float m = floorf(a * exp2f(n));
    m = m < 0.0f ? 0.0f : (m > 255.0f ? 255.0f : m);
    *M = m;
    *N = n;
}

// The steps of one row, written once for the CPU reference and the CUDA kernel (QTK_HD):
// element c's integer x_q = round(x / s_c) * round(s_c / s1) (per channel; else round(x / s), m = 1)
QTK_HD float qtk_int_ln_in(float x, float sc, float s1, int per_channel) {
    // x_q = (x / in_scale).round() * round(in_scale / in_scale1)
    float v = rintf(x / sc);
    return v * (per_channel ? rintf(sc / s1) : 1.0f);
}

// mean = x_q.mean() * in_scale1 (the sum times fl32(1/C), then times s1); std = in_scale1 / C *
// sqrt(C * sum(x_q^2) - sum(x_q)^2), that difference rounded to float32 once from exact integers
QTK_HD void qtk_int_ln_stats(long long S1, long long S2, size_t C, float s1, float inv_c, float *mean, float *sd) {
    *mean = ((float)S1 * inv_c) * s1;
    float var_term = (float)((double)C * (double)S2 - (double)S1 * (double)S1);
    *sd = (s1 * inv_c) * sqrtf(var_term);
}

// y of the element with integer v: A = (in_scale1 / std) * weight / out_scale, (M, N) = get_MN(|A|),
// B = round((bias - mean / std * weight) / out_scale * 2^N), y_q = round((sign(A) * M * x_q + B) / 2^N),
// y = y_q * out_scale
QTK_HD float qtk_int_ln_out(float v, float mean, float sd, float s1, float gamma, float beta, float s_out) {
    float A = ((s1 / sd) * gamma) / s_out;
    float sgn = A > 0.0f ? 1.0f : (A < 0.0f ? -1.0f : 0.0f);
    float M, N;
    qtk_int_ln_mn(fabsf(A), &M, &N);
    float p2 = exp2f(N);
    float Bc = rintf(((beta - ((mean / sd) * gamma)) / s_out) * p2);
    float yq = rintf(((sgn * M) * v + Bc) / p2);
    return yq * s_out;
}

#ifdef __cplusplus
}
#endif

#endif
