#include "intlayernorm.h"

#include <math.h>
#include <stdint.h>

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
            float v = qtk_int_ln_in(xr[c], s_in_per_channel ? s_in[c] : s_in[0], s1, s_in_per_channel);
            q[c] = v;
            int64_t iv = (int64_t)v;
            S1 += iv;
            S2 += iv * iv;
        }
        float mean, std;
        qtk_int_ln_stats(S1, S2, C, s1, inv_c, &mean, &std);
        for (size_t c = 0; c < C; c++) yr[c] = qtk_int_ln_out(q[c], mean, std, s1, gamma[c], beta[c], s_out);
    }
}
