#include "biascorr.h"

#include <math.h>
#include <stdlib.h>

#include "fakequant.h"

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

qtk_status qtk_weight_affine(const float *W, size_t O, size_t K, const float *scale, const float *zero, int lo, int hi,
                             qtk_fq_formula f, int bias_corr, int8_t *codes, size_t ldc, double *alpha, double *gamma,
                             int32_t *bsum) {
    const int off = qtk_code_offset(hi);
    if (lo > hi || lo - off < -128 || hi - off > 127)
        return qtk_fail(QTK_ERR_ARG, "weight codes in [%d, %d] do not fit int8", lo, hi);
    if (ldc < K) return qtk_fail(QTK_ERR_ARG, "weight codes: row stride %zu < %zu", ldc, K);
    float *fq = malloc((K ? K : 1) * sizeof *fq);
    if (!fq) return qtk_fail(QTK_ERR_NOMEM, "weight codes: out of memory");
    for (size_t r = 0; r < O; r++) {
        const float *w = W + r * K;
        const float s = scale[r], z = zero[r];
        int32_t sum = 0;
        for (size_t i = 0; i < K; i++) {
            fq[i] = qtk_fake_quant_scalar(w[i], s, z, lo, hi, f);
            // the grid point of qtk_fake_quant_scalar (NaN: lo)
            int c = (int)qtk_fq_grid(w[i], s, z, (float)lo, (float)hi, f == QTK_FQ_TORCH);
            codes[r * ldc + i] = (int8_t)(c - off);
            sum += c - off;
        }
        bsum[r] = sum;
        double a = s, g = (double)s * ((double)off - z);
        if (bias_corr) {
            float mu_o, sd_o, mu_q, sd_q;
            row_mean_std(w, K, &mu_o, &sd_o);
            row_mean_std(fq, K, &mu_q, &sd_q);
            float v = sd_o / (sd_q + 1e-8f);
            // v * (s (code + off - z) - mu_q) + mu_o
            a = (double)v * s;
            g = (double)mu_o - (double)v * mu_q + a * ((double)off - z);
        }
        alpha[r] = a;
        gamma[r] = g;
    }
    free(fq);
    return QTK_OK;
}
