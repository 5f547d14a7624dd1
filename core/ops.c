// CPU references of the op library (ops.h). The PyTorch line each one computes sits above it.
#include "ops.h"

#include <math.h>
#include <string.h>

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
