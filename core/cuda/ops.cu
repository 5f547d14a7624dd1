// CUDA twins of the op library (core/ops.h). Built with --fmad=false and IEEE division/sqrt like the rest:
// elementwise steps round as the CPU's; row sums run in another order (tests/test_backends.c says how close).
#include "../ops.h"
#include "gemm.h"
#include "ops.cuh"

#define STREAM(s) ((cudaStream_t)(s))

// --- row ops: one warp per row ------------------------------------------------------------------

__global__ void k_layernorm(const float *__restrict__ x, float *y, size_t rows, int C, const float *__restrict__ w,
                            const float *__restrict__ b, float eps, qtk_outq q) {
    const size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    float *yr = y + r * C;
    qtk_layernorm_warp(x + r * C, C, w, b, eps, threadIdx.x & 31, [&](int i, float v) { yr[i] = qtk_outq_apply(&q, v, i); });
}

__global__ void k_int_layernorm(const float *__restrict__ x, float *y, size_t rows, int C, const float *__restrict__ s_in,
                                int per_channel, float s1, float s_out, float inv_c, const float *__restrict__ gamma,
                                const float *__restrict__ beta, qtk_outq q) {
    const size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    float *yr = y + r * C;
    qtk_int_layernorm_warp(x + r * C, C, s_in, per_channel, s1, s_out, inv_c, gamma, beta, threadIdx.x & 31,
                           [&](int c, float v) { yr[c] = qtk_outq_apply(&q, v, c); });
}

__global__ void k_softmax(float *x, size_t rows, int n, qtk_outq q) {
    const size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    float *row = x + r * n;
    qtk_softmax_warp(row, n, threadIdx.x & 31, [](float v) { return v; },
                     [&](int j, float p) { row[j] = qtk_outq_apply(&q, p, 0); });
}

static const qtk_outq OFF = {0, 0, 0, 0, NULL, NULL, 0, 0, 0};
#define OUTQ(q) ((q) ? *(q) : OFF)
#define WARP_ROWS(rows) ((unsigned)(((rows) + 7) / 8)) // 8 warps (256 threads) a block

extern "C" qtk_status qtk_op_layernorm_cuda(const float *x, float *y, size_t rows, size_t C, const float *w, const float *b,
                                            float eps, const qtk_outq *q, void *stream) {
    if (!rows) return QTK_OK;
    QTK_LAUNCH(k_layernorm, WARP_ROWS(rows), 256, 0, STREAM(stream), x, y, rows, (int)C, w, b, eps, OUTQ(q));
    return QTK_OK;
}

extern "C" qtk_status qtk_op_int_layernorm_cuda(const float *x, float *y, size_t rows, size_t C, const float *s_in,
                                                int per_channel, float s1, float s_out, const float *gamma,
                                                const float *beta, const qtk_outq *q, void *stream) {
    if (!rows) return QTK_OK;
    QTK_LAUNCH(k_int_layernorm, WARP_ROWS(rows), 256, 0, STREAM(stream), x, y, rows, (int)C, s_in, per_channel, s1, s_out,
               1.0f / (float)C, gamma, beta, OUTQ(q));
    return QTK_OK;
}

extern "C" qtk_status qtk_op_softmax_cuda(float *x, size_t rows, size_t n, const qtk_outq *q, void *stream) {
    if (!rows) return QTK_OK;
    QTK_LAUNCH(k_softmax, WARP_ROWS(rows), 256, 0, STREAM(stream), x, rows, (int)n, OUTQ(q));
    return QTK_OK;
}

// --- norms over long rows: one block of 1024 threads per row ----------------------------------

#define NORM_THREADS 1024

// the sum of v over the block (NORM_THREADS), returned to every thread
__device__ double block_sum(double v, double *red) {
    v = qtk_warp_sum(v);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < NORM_THREADS / 32; i++) t += red[i];
    __syncthreads(); // red is reused by the next call
    return t;
}

// add: h += add first; then y = w * (h * rsqrt(mean(h^2) + eps)). One block of 1024 threads per row: a decode
// step has one row per sequence, so the row's loads must all be in flight at once. h, add and y are
// distinct buffers, so the loads of the first loop need not wait for its stores.
__global__ void __launch_bounds__(NORM_THREADS) k_add_rmsnorm(float *__restrict__ h, const float *__restrict__ add,
                                                              const float *__restrict__ w, float *__restrict__ y, int D,
                                                              float eps) {
    __shared__ double red[NORM_THREADS / 32];
    const size_t r = blockIdx.x;
    float *hr = h + r * D;
    double ss = 0;
#pragma unroll 4
    for (int i = threadIdx.x; i < D; i += NORM_THREADS) {
        float v = add ? hr[i] + add[r * D + i] : hr[i];
        if (add) hr[i] = v;
        ss += (double)v * v;
    }
    ss = block_sum(ss, red);
    float rs = 1.0f / sqrtf((float)(ss / D) + eps);
    for (int i = threadIdx.x; i < D; i += NORM_THREADS) y[r * D + i] = w[i] * (hr[i] * rs);
}

__global__ void __launch_bounds__(NORM_THREADS) k_gated_rmsnorm(float *__restrict__ y, const float *__restrict__ z, size_t ldz,
                                                                const float *__restrict__ w, int E, int G, float eps) {
    __shared__ double red[NORM_THREADS / 32];
    const size_t r = blockIdx.x;
    float *yr = y + r * E;
    const int gs = E / G;
#pragma unroll 4
    for (int i = threadIdx.x; i < E; i += NORM_THREADS) yr[i] = yr[i] * qtk_silu(z[r * ldz + i]);
    for (int g = 0; g < G; g++) { // each thread reads back only the elements it wrote
        double ss = 0;
        for (int i = g * gs + threadIdx.x; i < (g + 1) * gs; i += NORM_THREADS) ss += (double)yr[i] * yr[i];
        ss = block_sum(ss, red);
        float rs = 1.0f / sqrtf((float)(ss / gs) + eps);
        for (int i = g * gs + threadIdx.x; i < (g + 1) * gs; i += NORM_THREADS) yr[i] = w[i] * (yr[i] * rs);
    }
}

extern "C" qtk_status qtk_op_rmsnorm_cuda(float *h, const float *add, const float *w, float *y, size_t rows, size_t D,
                                          float eps, void *stream) {
    if (!rows) return QTK_OK;
    if (rows > 0x7fffffffu) return qtk_fail(QTK_ERR_ARG, "RMSNorm of %zu rows", rows);
    QTK_LAUNCH(k_add_rmsnorm, (unsigned)rows, NORM_THREADS, 0, STREAM(stream), h, add, w, y, (int)D, eps);
    return QTK_OK;
}

extern "C" qtk_status qtk_op_gated_rmsnorm_cuda(float *y, const float *z, size_t ldz, const float *w, size_t rows, size_t E,
                                                size_t G, float eps, void *stream) {
    if (!rows) return QTK_OK;
    if (rows > 0x7fffffffu) return qtk_fail(QTK_ERR_ARG, "gated RMSNorm of %zu rows", rows);
    QTK_LAUNCH(k_gated_rmsnorm, (unsigned)rows, NORM_THREADS, 0, STREAM(stream), y, z, ldz, w, (int)E, (int)G, eps);
    return QTK_OK;
}

// --- causal conv1d + SiLU -------------------------------------------------------------------------

// one token (decode) for channel c of sequence b: the window is the state's last K - 1 inputs and the new
// one, which then shifts into the state. KT: K at compile time (0: Kr at run time).
template <int KT>
__global__ void k_conv_step(const float *__restrict__ in, size_t ld, int B, int C, int Kr, const float *__restrict__ w,
                            const float *__restrict__ bias, float *state, float *out) {
    const int K = KT ? KT : Kr, i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * C) return;
    const int b = i / C, c = i % C;
    float *st = state + (size_t)i * K;
    const float *wc = w + (size_t)c * K, xin = in[(size_t)b * ld + c];
    float acc = bias ? bias[c] : 0.0f;
#pragma unroll
    for (int k = 0; k + 1 < K; k++) {
        const float v = st[k + 1];
        acc += wc[k] * v;
        st[k] = v;
    }
    acc += wc[K - 1] * xin;
    st[K - 1] = xin;
    out[i] = qtk_silu(acc);
}

// L > 1, parallel over tokens: one thread per (sequence, token, channel) reading its K inputs (from the
// state before the first token); k_conv_state then keeps the last K inputs.
__global__ void k_conv_silu_par(const float *__restrict__ in, size_t ld, int B, int L, int C, int K,
                                const float *__restrict__ w, const float *__restrict__ bias, const float *__restrict__ state,
                                float *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)B * L * C; i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % C), t = (int)(i / C % L), b = (int)(i / C / L);
        float acc = bias ? bias[c] : 0.0f;
        for (int k = 0; k < K; k++) { // input t - (K - 1) + k; before the first token, the state's slot K + s
            const int s = t - (K - 1) + k;
            const float v = s >= 0 ? in[((size_t)b * L + s) * ld + c] : state[((size_t)b * C + c) * K + K + s];
            acc += w[(size_t)c * K + k] * v;
        }
        out[i] = qtk_silu(acc);
    }
}

__global__ void k_conv_state(const float *__restrict__ in, size_t ld, int B, int L, int C, int K, float *state) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * C) return;
    const int b = i / C, c = i % C;
    float *st = state + (size_t)i * K, win[64];
    for (int k = 0; k < K; k++) {
        const int s = L - K + k;
        win[k] = s >= 0 ? in[((size_t)b * L + s) * ld + c] : st[K + s];
    }
    for (int k = 0; k < K; k++) st[k] = win[k];
}

extern "C" qtk_status qtk_op_conv1d_silu_cuda(const float *in, size_t ld, int B, int L, int C, int K, const float *w,
                                              const float *bias, float *state, float *out, void *stream) {
    if (K < 1 || K > 64) return qtk_fail(QTK_ERR_UNSUPPORTED, "conv1d kernel of %d taps (1..64)", K);
    if (B < 1 || L < 1 || C < 1) return QTK_OK;
    const unsigned nb = (unsigned)(((size_t)B * C + 127) / 128);
    if (L == 1) { // decode: one kernel, each thread shifting its window
        if (K == 4) QTK_LAUNCH(k_conv_step<4>, nb, 128, 0, STREAM(stream), in, ld, B, C, K, w, bias, state, out);
        else QTK_LAUNCH(k_conv_step<0>, nb, 128, 0, STREAM(stream), in, ld, B, C, K, w, bias, state, out);
        return QTK_OK;
    }
    QTK_LAUNCH(k_conv_silu_par, qtk_grid_for((size_t)B * L * C, 256), 256, 0, STREAM(stream), in, ld, B, L, C, K, w, bias,
               state, out);
    QTK_LAUNCH(k_conv_state, nb, 128, 0, STREAM(stream), in, ld, B, L, C, K, state);
    return QTK_OK;
}

// --- residual -----------------------------------------------------------------------------------

__global__ void k_residual(float *x, const float *__restrict__ h, size_t n, size_t C, qtk_outq qh, qtk_outq qr) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t c = i % C;
        x[i] = qtk_outq_apply(&qr, x[i] + qtk_outq_apply(&qh, h[i], c), c);
    }
}

extern "C" qtk_status qtk_op_residual_cuda(float *x, const float *h, size_t n, size_t C, const qtk_outq *qh,
                                           const qtk_outq *qr, void *stream) {
    if (!n) return QTK_OK;
    QTK_LAUNCH(k_residual, qtk_grid_for(n, 256), 256, 0, STREAM(stream), x, h, n, C, OUTQ(qh), OUTQ(qr));
    return QTK_OK;
}

// --- CNN ops --------------------------------------------------------------------------------------------

// x (B, C, HW) = q(act(x a[c] + b[c])), the CPU's steps (a, b may be NULL)
__global__ void k_bn_act(float *x, size_t n, size_t C, size_t HW, const float *__restrict__ a, const float *__restrict__ b,
                         qtk_act act, qtk_outq q) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t c = i / HW % C;
        float v = x[i];
        if (a && b) v = fmaf(v, a[c], b[c]); // correctly rounded, as the CPU's fmaf
        else if (a) v = v * a[c];
        else if (b) v = v + b[c];
        x[i] = qtk_outq_apply(&q, qtk_act_apply(act, v), c);
    }
}

extern "C" qtk_status qtk_op_bn_act_cuda(float *x, size_t B, size_t C, size_t HW, const float *a, const float *b,
                                         qtk_act act, const qtk_outq *q, void *stream) {
    const size_t n = B * C * HW;
    QTK_LAUNCH(k_bn_act, qtk_grid_for(n, 256), 256, 0, STREAM(stream), x, n, C, HW, a, b, act, OUTQ(q));
    return QTK_OK;
}

// im2col of image x into col (C KH KW, Ho Wo), as the CPU's
__global__ void k_im2col(const float *__restrict__ x, qtk_conv2d_shape s, int Ho, int Wo, float *col) {
    const size_t HW = (size_t)Ho * Wo, n = (size_t)s.C * s.KH * s.KW * HW;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / HW), p = (int)(i % HW), oy = p / Wo, ox = p % Wo;
        const int c = r / (s.KH * s.KW), kh = r / s.KW % s.KH, kw = r % s.KW;
        const int iy = oy * s.stride_h - s.pad_h + kh, ix = ox * s.stride_w - s.pad_w + kw;
        col[i] = iy >= 0 && iy < s.H && ix >= 0 && ix < s.W ? x[((size_t)c * s.H + iy) * s.W + ix] : 0.0f;
    }
}

// depthwise: one thread per output, the sum over (kh, kw) in the CPU's order
__global__ void k_depthwise(const float *__restrict__ x, const float *__restrict__ w, const float *__restrict__ bias,
                            qtk_conv2d_shape s, int Ho, int Wo, qtk_act act, qtk_outq q, float *y) {
    const size_t HW = (size_t)Ho * Wo, n = (size_t)s.B * s.C * HW;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t bc = i / HW;
        const int c = (int)(bc % s.C), oy = (int)(i % HW) / Wo, ox = (int)(i % HW) % Wo;
        const float *xc = x + bc * s.H * s.W, *wc = w + (size_t)c * s.KH * s.KW;
        float acc = 0.0f;
        for (int kh = 0; kh < s.KH; kh++) {
            const int iy = oy * s.stride_h - s.pad_h + kh;
            if (iy < 0 || iy >= s.H) continue;
            for (int kw = 0; kw < s.KW; kw++) {
                const int ix = ox * s.stride_w - s.pad_w + kw;
                if (ix >= 0 && ix < s.W) acc += xc[(size_t)iy * s.W + ix] * wc[kh * s.KW + kw];
            }
        }
        if (bias) acc += bias[c];
        y[i] = qtk_outq_apply(&q, qtk_act_apply(act, acc), (size_t)c);
    }
}

extern "C" size_t qtk_conv2d_ws_floats(const qtk_conv2d_shape *s) {
    int Ho, Wo;
    if (s->groups != 1 || qtk_conv2d_out(s, &Ho, &Wo) != QTK_OK) return 0;
    return (size_t)s->C * s->KH * s->KW * Ho * Wo;
}

extern "C" qtk_status qtk_op_conv2d_cuda(const qtk_conv2d_shape *s, const float *x, const float *w, const float *bias,
                                         qtk_act act, const qtk_outq *q, float *y, float *ws, struct qtk_gemm *gemm,
                                         void *stream) {
    int Ho, Wo;
    QTK_TRY(qtk_conv2d_out(s, &Ho, &Wo));
    const size_t HWo = (size_t)Ho * Wo, K = (size_t)s->C * s->KH * s->KW;
    if (s->groups != 1) {
        QTK_LAUNCH(k_depthwise, qtk_grid_for((size_t)s->B * s->C * HWo, 256), 256, 0, STREAM(stream), x, w, bias, *s, Ho, Wo,
                   act, OUTQ(q), y);
        return QTK_OK;
    }
    if (!ws || !gemm) return qtk_fail(QTK_ERR_ARG, "conv2d on the GPU: a dense conv needs the im2col workspace and a GEMM context");
    for (int b = 0; b < s->B; b++) {
        QTK_LAUNCH(k_im2col, qtk_grid_for(K * HWo, 256), 256, 0, STREAM(stream), x + (size_t)b * s->C * s->H * s->W, *s, Ho,
                   Wo, ws);
        QTK_TRY(qtk_gemm_nn(gemm, w, ws, y + (size_t)b * s->O * HWo, s->O, (int)HWo, (int)K));
    }
    return qtk_op_bn_act_cuda(y, (size_t)s->B, (size_t)s->O, HWo, NULL, bias, act, q, stream);
}
