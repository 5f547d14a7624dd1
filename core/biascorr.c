#include "biascorr.h"

#include <math.h>

static void row_mean_std(const float *v, size_t K, float *mean, float *std) {
    double s = 0;
    for (size_t i = 0; i < K; i++) s += v[i];
    double mu = s / (double)K, ss = 0;
    for (size_t i = 0; i < K; i++) ss += ((double)v[i] - mu) * ((double)v[i] - mu);
    *mean = (float)mu;
    *std = (float)sqrt(ss / (double)(K > 1 ? K - 1 : 1)); // torch.std: unbiased
}

void qtk_bias_correct(const float *W, float *Wq, size_t O, size_t K) {
#pragma omp parallel for schedule(static) if (O * K >= 16384)
    for (size_t r = 0; r < O; r++) {
        const float *w = W + r * K;
        float *q = Wq + r * K;
        float mu_o, sd_o, mu_q, sd_q;
        row_mean_std(w, K, &mu_o, &sd_o);
        row_mean_std(q, K, &mu_q, &sd_q);
        // variance_correction = std_orig / (std_quant + 1e-8)
        float v = sd_o / (sd_q + 1e-8f);
        for (size_t i = 0; i < K; i++) {
            float t = q[i] - mu_q; // w_q - mean_quant
            t = t * v;             // * variance_correction
            t = t + mu_q;          // + mean_quant  (the reference keeps this round trip)
            t = t - mu_q;
            q[i] = t + mu_o;       // + mean_orig
        }
    }
}
