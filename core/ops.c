// CPU references of the op library (ops.h). The PyTorch line each one computes sits above it.
#include "ops.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "scalar.h"

// nn.LayerNorm(C, eps)(x)
void qtk_op_layernorm(const float *x, float *y, size_t rows, size_t C, const float *w, const float *b, float eps,
                      const qtk_outq *q) {
#pragma omp parallel for schedule(static) if (rows * C >= 16384)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        double mean = 0, var = 0;
        for (size_t i = 0; i < C; i++) mean += xr[i];
        mean /= (double)C;
        for (size_t i = 0; i < C; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        var /= (double)C;
        float mu = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)eps));
        for (size_t i = 0; i < C; i++) yr[i] = qtk_outq_apply(q, (xr[i] - mu) * rstd * w[i] + b[i], i);
    }
}

// x.softmax(dim=-1)
void qtk_op_softmax(float *x, size_t rows, size_t n, const qtk_outq *q) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * n, mx = -INFINITY, sum = 0.0f;
        for (size_t j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
        for (size_t j = 0; j < n; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (size_t j = 0; j < n; j++) row[j] = qtk_outq_apply(q, row[j] * inv, 0);
    }
}

// residual + hidden_states; hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + eps) * weight
void qtk_op_rmsnorm(float *h, const float *add, const float *w, float *y, size_t rows, size_t D, float eps) {
#pragma omp parallel for schedule(static) if (rows * D >= 65536)
    for (size_t r = 0; r < rows; r++) {
        float *hr = h + r * D;
        if (add)
            for (size_t i = 0; i < D; i++) hr[i] += add[r * D + i];
        double ss = 0;
        for (size_t i = 0; i < D; i++) ss += (double)hr[i] * hr[i];
        float rs = 1.0f / sqrtf((float)(ss / (double)D) + eps);
        for (size_t i = 0; i < D; i++) y[r * D + i] = w[i] * (hr[i] * rs);
    }
}

// hidden_states = hidden_states * silu(gate); per group: h * rsqrt(h.pow(2).mean(-1) + eps); weight * h
void qtk_op_gated_rmsnorm(float *y, const float *z, size_t ldz, const float *w, size_t rows, size_t E, size_t G,
                          float eps) {
    const size_t gs = E / G;
#pragma omp parallel for schedule(static) if (rows * E >= 65536)
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * E;
        for (size_t i = 0; i < E; i++) yr[i] = yr[i] * qtk_silu(z[r * ldz + i]);
        for (size_t g = 0; g < G; g++) {
            double ss = 0;
            for (size_t i = g * gs; i < (g + 1) * gs; i++) ss += (double)yr[i] * yr[i];
            float rs = 1.0f / sqrtf((float)(ss / (double)gs) + eps);
            for (size_t i = g * gs; i < (g + 1) * gs; i++) yr[i] = w[i] * (yr[i] * rs);
        }
    }
}

// conv_state.roll(-1); conv_state[:, :, -1] = x_t; silu(F.conv1d(x, w, b, padding=K-1, groups=C)[..., :L])
qtk_status qtk_op_conv1d_silu(const float *in, size_t ld, int B, int L, int C, int K, const float *w, const float *bias,
                              float *state, float *out) {
    if (K < 1 || K > 64) return qtk_fail(QTK_ERR_UNSUPPORTED, "conv1d kernel of %d taps (1..64)", K);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * C * K >= 262144)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *st = state + ((size_t)b * C + c) * K;
            const float *wc = w + (size_t)c * K;
            float win[64]; // the last K inputs, oldest first
            memcpy(win, st, (size_t)K * sizeof(float));
            for (int t = 0; t < L; t++) {
                for (int k = 0; k + 1 < K; k++) win[k] = win[k + 1];
                win[K - 1] = in[((size_t)b * L + t) * ld + c];
                float acc = bias ? bias[c] : 0.0f;
                for (int k = 0; k < K; k++) acc += wc[k] * win[k];
                out[((size_t)b * L + t) * C + c] = qtk_silu(acc);
            }
            memcpy(st, win, (size_t)K * sizeof(float));
        }
    return QTK_OK;
}

// one int32 dot product of K int8 pairs (exact in any order; AVX2 where the CPU has it)
QTK_AVX2_CLONES static int32_t dot_s8(const int8_t *a, const int8_t *b, int K) {
    int32_t sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int k = 0; k < K; k++) sum += (int32_t)a[k] * (int32_t)b[k];
    return sum;
}

void qtk_gemm_s8(const int8_t *A, size_t lda, const int8_t *B, int32_t *acc, size_t M, int N, int K) {
    // blocks of 64 columns keep B's rows in cache while the rows of A stream past; one int32 dot each
    const int NB = 64;
    const int nb = (N + NB - 1) / NB;
#pragma omp parallel for collapse(2) schedule(static) if (M * (size_t)N * K >= 65536)
    for (int jb = 0; jb < nb; jb++)
        for (size_t i = 0; i < M; i++) {
            const int8_t *a = A + i * lda;
            const int j1 = (jb + 1) * NB < N ? (jb + 1) * NB : N;
            for (int j = jb * NB; j < j1; j++) {
                acc[i * N + j] = dot_s8(a, B + (size_t)j * K, K);
            }
        }
}

// x = x + h
void qtk_op_residual(float *x, const float *h, size_t n, size_t C, const qtk_outq *qh, const qtk_outq *qr) {
    if ((!qh || !qh->on) && (!qr || !qr->on)) { // no quantizer: the plain add, without a channel index per element
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) x[i] += h[i];
        return;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = qtk_outq_apply(qr, x[i] + qtk_outq_apply(qh, h[i], i % C), i % C);
}

// --- CNN ops --------------------------------------------------------------------------------------------

qtk_status qtk_conv2d_out(const qtk_conv2d_shape *s, int *Ho, int *Wo) {
    if (s->B < 1 || s->C < 1 || s->H < 1 || s->W < 1 || s->O < 1 || s->KH < 1 || s->KW < 1 || s->stride_h < 1 ||
        s->stride_w < 1 || s->pad_h < 0 || s->pad_w < 0)
        return qtk_fail(QTK_ERR_ARG, "conv2d: sizes B %d C %d H %d W %d O %d kernel %dx%d stride %dx%d padding %dx%d",
                        s->B, s->C, s->H, s->W, s->O, s->KH, s->KW, s->stride_h, s->stride_w, s->pad_h, s->pad_w);
    if (s->groups != 1 && !(s->groups == s->C && s->O == s->C))
        return qtk_fail(QTK_ERR_UNSUPPORTED, "conv2d: %d groups of %d -> %d channels (dense or depthwise only)", s->groups,
                        s->C, s->O);
    const long ho = ((long)s->H + 2L * s->pad_h - s->KH) / s->stride_h + 1, wo = ((long)s->W + 2L * s->pad_w - s->KW) / s->stride_w + 1;
    if ((long)s->H + 2L * s->pad_h < s->KH || (long)s->W + 2L * s->pad_w < s->KW)
        return qtk_fail(QTK_ERR_ARG, "conv2d: a %dx%d kernel over a %dx%d input padded by %dx%d", s->KH, s->KW, s->H, s->W,
                        s->pad_h, s->pad_w);
    // every tensor (and the im2col buffer of one image) below 2^31 elements
    const double big = 2147483647.0, in = (double)s->B * s->C * s->H * s->W, out = (double)s->B * s->O * ho * wo,
                 col = (double)s->C * s->KH * s->KW * ho * wo;
    if (in > big || out > big || col > big)
        return qtk_fail(QTK_ERR_ARG, "conv2d: %.0f input, %.0f output, %.0f im2col elements (at most 2^31 - 1)", in, out, col);
    *Ho = (int)ho, *Wo = (int)wo;
    return QTK_OK;
}

// col (C KH KW, Ho Wo) of image x (C, H, W): row (c, kh, kw), column (oy, ox) = x[c, oy s - p + kh, ox s - p + kw] or 0
static void im2col(const qtk_conv2d_shape *s, const float *x, int Ho, int Wo, float *col) {
    const size_t HW = (size_t)Ho * Wo;
#pragma omp parallel for schedule(static) if ((size_t)s->C * s->KH * s->KW * HW >= 65536)
    for (int r = 0; r < s->C * s->KH * s->KW; r++) {
        const int c = r / (s->KH * s->KW), kh = r / s->KW % s->KH, kw = r % s->KW;
        float *cr = col + (size_t)r * HW;
        for (int oy = 0; oy < Ho; oy++) {
            const int iy = oy * s->stride_h - s->pad_h + kh;
            for (int ox = 0; ox < Wo; ox++) {
                const int ix = ox * s->stride_w - s->pad_w + kw;
                cr[(size_t)oy * Wo + ox] = iy >= 0 && iy < s->H && ix >= 0 && ix < s->W ? x[((size_t)c * s->H + iy) * s->W + ix] : 0.0f;
            }
        }
    }
}

// nn.Conv2d(C, O, (KH, KW), stride, padding, groups=groups, bias=bias is not None), then the activation
qtk_status qtk_op_conv2d(const qtk_conv2d_shape *s, const float *x, const float *w, const float *bias, qtk_act act,
                         const qtk_outq *q, float *y) {
    int Ho, Wo;
    QTK_TRY(qtk_conv2d_out(s, &Ho, &Wo));
    const size_t HWo = (size_t)Ho * Wo, K = (size_t)s->C * s->KH * s->KW;
    if (s->groups == 1) {
        float *col = malloc(K * HWo * sizeof *col);
        if (!col) return qtk_fail(QTK_ERR_NOMEM, "conv2d: %zu floats of im2col", K * HWo);
        for (int b = 0; b < s->B; b++) {
            im2col(s, x + (size_t)b * s->C * s->H * s->W, Ho, Wo, col);
            qtk_sgemm(false, false, s->O, (int)HWo, (int)K, 1.0f, w, (int)K, col, (int)HWo, 0.0f, y + (size_t)b * s->O * HWo,
                      (int)HWo);
        }
        free(col);
        qtk_op_bn_act(y, (size_t)s->B, (size_t)s->O, HWo, NULL, bias, act, q);
        return QTK_OK;
    }
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < s->B; b++)
        for (int c = 0; c < s->C; c++) {
            const float *xc = x + ((size_t)b * s->C + c) * s->H * s->W, *wc = w + (size_t)c * s->KH * s->KW;
            float *yc = y + ((size_t)b * s->C + c) * HWo;
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    float acc = 0.0f;
                    for (int kh = 0; kh < s->KH; kh++) {
                        const int iy = oy * s->stride_h - s->pad_h + kh;
                        if (iy < 0 || iy >= s->H) continue;
                        for (int kw = 0; kw < s->KW; kw++) {
                            const int ix = ox * s->stride_w - s->pad_w + kw;
                            if (ix >= 0 && ix < s->W) acc += xc[(size_t)iy * s->W + ix] * wc[kh * s->KW + kw];
                        }
                    }
                    if (bias) acc += bias[c];
                    yc[(size_t)oy * Wo + ox] = qtk_outq_apply(q, qtk_act_apply(act, acc), (size_t)c);
                }
        }
    return QTK_OK;
}

void qtk_bn_affine(const float *gamma, const float *beta, const float *mean, const float *var, float eps, size_t C,
                   float *a, float *b) {
    for (size_t c = 0; c < C; c++) { // PyTorch's CPU kernel: invstd, alpha = gamma invstd, beta - mean alpha fused
        const float invstd = 1.0f / sqrtf(var[c] + eps);
        a[c] = gamma[c] * invstd;
        b[c] = fmaf(-mean[c], a[c], beta[c]);
    }
}

// act(bn(x)), bn in eval mode as an affine (qtk_bn_affine)
void qtk_op_bn_act(float *x, size_t B, size_t C, size_t HW, const float *a, const float *b, qtk_act act, const qtk_outq *q) {
#pragma omp parallel for schedule(static) collapse(2) if (B * C * HW >= 65536)
    for (size_t n = 0; n < B; n++)
        for (size_t c = 0; c < C; c++) {
            float *xc = x + (n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) {
                float v = xc[i];
                if (a && b) v = fmaf(v, a[c], b[c]); // one rounding, as PyTorch's vectorized batch norm
                else if (a) v = v * a[c];
                else if (b) v = v + b[c];
                xc[i] = qtk_outq_apply(q, qtk_act_apply(act, v), c);
            }
        }
}
