#include "intlayernorm.h"

#include <math.h>
#include <stdint.h>

void qtk_int_ln_mn(float a, float *M, float *N) {
    // N = (bit - 1 - torch.floor(torch.log2(a))).clamp(0, 31); M = torch.floor(a * 2**N).clamp(0, 2**(bit+1) - 1)
    float n = 7.0f - floorf(log2f(a));
    n = n < 0.0f ? 0.0f : (n > 31.0f ? 31.0f : n);
    float m = floorf(a * exp2f(n));
    m = m < 0.0f ? 0.0f : (m > 255.0f ? 255.0f : m);
    *M = m;
    *N = n;
}

void qtk_int_layernorm(const float *x, float *y, size_t rows, size_t C, const float *s_in, int s_in_per_channel,
                       float s_out, const float *gamma, const float *beta) {
    // per-channel integer multipliers m_c = round(s_c / min(s)) (1, 2, 4 or 8 for PTF)
    float s1 = s_in[0];
    if (s_in_per_channel)
        for (size_t c = 1; c < C; c++) s1 = s_in[c] < s1 ? s_in[c] : s1;
    float inv_c = 1.0f / (float)C;
#pragma omp parallel for schedule(static) if (rows * C >= 16384)
    for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * C;
            float *yr = y + r * C;
            int64_t S1 = 0, S2 = 0;
            // y's row holds the integers: element c is read (x[c], then q[c]) before
            // y[c] is written, so this is safe in place too, and needs no scratch
            float *q = yr;
            for (size_t c = 0; c < C; c++) {
                float sc = s_in_per_channel ? s_in[c] : s_in[0];
                // x_q = (x / in_scale).round() * round(in_scale / in_scale1)
                float v = rintf(xr[c] / sc);
                float mc = s_in_per_channel ? rintf(sc / s1) : 1.0f;
                v = v * mc;
                q[c] = v;
                int64_t iv = (int64_t)v;
                S1 += iv;
                S2 += iv * iv;
            }
            float fS1 = (float)S1;
            // mean = x_q.mean() * in_scale1: sum times fl32(1/C), then times s1
            float mean = (fS1 * inv_c) * s1;
            // std = in_scale1 / C * sqrt(C * sum(x_q^2) - sum(x_q)^2)
            float var_term = (float)((double)C * (double)S2 - (double)S1 * (double)S1);
            float std = (s1 * inv_c) * sqrtf(var_term);
            for (size_t c = 0; c < C; c++) {
                // A = (in_scale1 / std) * weight / out_scale
                float A = ((s1 / std) * gamma[c]) / s_out;
                float sgn = A > 0.0f ? 1.0f : (A < 0.0f ? -1.0f : 0.0f);
                float M, N;
                qtk_int_ln_mn(fabsf(A), &M, &N);
                float p2 = exp2f(N);
                // B = round((bias - mean / std * weight) / out_scale * 2^N)
                float B = rintf(((beta[c] - ((mean / std) * gamma[c])) / s_out) * p2);
                // y_q = round((sign * M * x_q + B) / 2^N); y = y_q * out_scale
                float yq = rintf(((sgn * M) * q[c] + B) / p2);
                yr[c] = yq * s_out;
            }
        }
}
