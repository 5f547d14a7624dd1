// Quamba's per-element and per-channel steps, written once for the CPU reference (ssm/quamba_fwd.c) and its
// CUDA twin (ssm/cuda/quamba.cu): static inline in C, __host__ __device__ under nvcc (core/scalar.h's QTK_HD),
// so both backends evaluate the same expressions in the same order. Both are built without contraction.
#ifndef QTK_QUAMBA_KERNELS_H
#define QTK_QUAMBA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/scalar.h"
#include "../core/tensor.h"
#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

// v rounded to fp16 and back (round to nearest even on both sides)
QTK_HD float quamba_f16(float v) {
#ifdef __CUDA_ARCH__
    return __half2float(__float2half_rn(v));
#else
    return qtk_f16_to_f32(qtk_f32_to_f16(v));
#endif
}

// 1 when the rounded value q lies outside the int8 codes
QTK_HD int quamba_clips(float q) { return !(q >= -128.0f && q <= 127.0f); }

// The W8A8 epilogue's value before rounding (quamba_internal.h: quamba_epi): e 0 r (s_w acc), 1 s_w (r acc),
// 2 a acc
QTK_HD float quamba_epi_value(int32_t acc, float s_w, float r, float a, int e) {
    const float v = (float)acc;
    return e == 0 ? r * (s_w * v) : e == 1 ? s_w * (r * v) : a * v;
}

// The selective scan's operands (spec 5.2 step 6): int8 codes and their scales, the state h (B, E, N) as
// float32 holding fp16 values between calls, the output y (rows, E) fp16 values
typedef struct {
    int B, L, E, N, R;
    const int8_t *xq;      // (rows, E) the conv's SiLU output, scale s_u
    const int8_t *dtq;     // (rows, E) dt_proj's output, scale s_dt
    const int8_t *dbl;     // (rows, R + 2N) x_proj's output dt | B | C, scale s_bc
    const int8_t *z;       // rows of stride ldz: the gate, scale s_z
    int ldz;
    const int8_t *A_log, *Dq, *dt_b; // (E, N), (E), (E) with scales A_s, D_s, dt_bs
    float s_u, s_dt, s_bc, s_z, A_s, D_s, dt_bs;
    float *h, *y;
} quamba_scan_args;

// One (sequence, channel) of the scan over its L tokens, N <= 256
QTK_HD void quamba_scan_channel(const quamba_scan_args *a, int b, int ch) {
    const int E = a->E, N = a->N, XD = a->R + 2 * a->N;
    float *hs = a->h + ((size_t)b * E + ch) * N, A[256];
    // A = -expf(s_A A_q); D = s_D D_q; the dt bias s_b b_q
    for (int n = 0; n < N; n++) A[n] = -expf(a->A_s * (float)a->A_log[(size_t)ch * N + n]);
    const float Dc = a->D_s * (float)a->Dq[ch], bias = a->dt_bs * (float)a->dt_b[ch];
    for (int t = 0; t < a->L; t++) {
        const size_t r = (size_t)b * a->L + t;
        const float u = a->s_u * (float)a->xq[r * E + ch];
        // delta = s_dt dt_q + s_b b_q;  delta = delta <= 20 ? log1pf(expf(delta)) : delta
        const float d = qtk_softplus(a->s_dt * (float)a->dtq[r * E + ch] + bias);
        const int8_t *Bq = a->dbl + r * XD + a->R, *Cq = Bq + N;
        float acc = 0.0f;
        for (int n = 0; n < N; n++) {
            hs[n] = expf(d * A[n]) * hs[n] + (d * (a->s_bc * (float)Bq[n])) * u;
            acc += hs[n] * (a->s_bc * (float)Cq[n]);
        }
        // out = (y + D u) * silu(z), stored fp16
        const float z = a->s_z * (float)a->z[r * a->ldz + ch];
        a->y[r * E + ch] = quamba_f16((acc + Dc * u) * qtk_silu(z));
    }
    for (int n = 0; n < N; n++) hs[n] = quamba_f16(hs[n]); // ssm_state is fp16 between calls
}

// The int8 conv1d + SiLU's operands (spec 5.2 step 3): x codes (rows of stride ld, scale s_in), weights (E, K)
// and bias with their scales, the state (B, E, K) of the last K codes, out (rows, E) with scale s_out
typedef struct {
    int B, L, E, K;
    const int8_t *x;
    size_t ld;
    const int8_t *w, *bias;
    float s_w, s_b, s_in, s_out;
    int8_t *state, *out;
    // Mamba2's xBC: channels [x_end, b_end) (B) and [b_end, E) (C) take their own scales s_*_bc[0] and [1];
    // x_end 0: every channel takes the scales above (Mamba1)
    int x_end, b_end;
    float s_w_bc[2], s_b_bc[2], s_in_bc[2], s_out_bc[2];
} quamba_conv_args;

// Channel c's weight, bias, input and output scales
typedef struct {
    float w, b, in, out;
} quamba_conv_sc;
QTK_HD quamba_conv_sc quamba_conv_scales(const quamba_conv_args *a, int c) {
    if (a->x_end == 0 || c < a->x_end) return (quamba_conv_sc){a->s_w, a->s_b, a->s_in, a->s_out};
    const int r = c < a->b_end ? 0 : 1;
    return (quamba_conv_sc){a->s_w_bc[r], a->s_b_bc[r], a->s_in_bc[r], a->s_out_bc[r]};
}

// v = SiLU'd and quantized into *out: q = clamp(roundf(silu(v) / s_out)); returns 1 when it saturated
QTK_HD unsigned quamba_conv_emit(float v, float s_out, int8_t *out) {
    const float q = roundf(qtk_silu(v) / s_out);
    *out = qtk_sat_s8(q);
    return (unsigned)quamba_clips(q);
}

// Prefill output of (sequence b, token t, channel c): v = (s_w s_in) sum_k w_q x_q + s_b b_q, the window's
// codes from x (positions >= 0) or from the state (the K codes before the sequence); the sum in int32, exact
// in any order, so every token is computed on its own. The state is left as it was (quamba_conv_keep).
QTK_HD unsigned quamba_conv_token(const quamba_conv_args *a, int b, int t, int c) {
    const int K = a->K;
    const int8_t *st = a->state + ((size_t)b * a->E + c) * K, *w = a->w + (size_t)c * K;
    int32_t acc = 0;
    for (int k = 0; k < K; k++) {
        const int pos = t - (K - 1) + k;
        acc += (int32_t)w[k] * (pos >= 0 ? a->x[((size_t)b * a->L + pos) * a->ld + c] : st[pos + K]);
    }
    const quamba_conv_sc s = quamba_conv_scales(a, c);
    return quamba_conv_emit(s.w * s.in * (float)acc + s.b * (float)a->bias[c], s.out,
                            &a->out[((size_t)b * a->L + t) * a->E + c]);
}

// After a prefill's outputs: the state of (b, c) becomes the last K codes (in place, ascending: a code moves
// only to a lower index)
QTK_HD void quamba_conv_keep(const quamba_conv_args *a, int b, int c) {
    const int K = a->K, L = a->L;
    int8_t *st = a->state + ((size_t)b * a->E + c) * K;
    for (int k = 0; k < K; k++) {
        const int pos = L - K + k;
        st[k] = pos >= 0 ? a->x[((size_t)b * L + pos) * a->ld + c] : st[pos + K];
    }
}

// A decode step (L = 1) of (b, c) with the new code x (a->x's, or in_proj's epilogue's where it is fused):
// v = s_b b_q + sum_k (s_w s_in) w_q x_q in float, in the order k = 0..K-1 (the reference's update kernel),
// then the state shifts by one code
QTK_HD unsigned quamba_conv_step(const quamba_conv_args *a, int b, int c, int8_t x) {
    const int K = a->K;
    int8_t *st = a->state + ((size_t)b * a->E + c) * K;
    const int8_t *w = a->w + (size_t)c * K;
    const quamba_conv_sc s = quamba_conv_scales(a, c);
    const float sw = s.w * s.in;
    float v = s.b * (float)a->bias[c];
    for (int k = 0; k + 1 < K; k++) v += sw * (float)w[k] * (float)st[k + 1];
    v += sw * (float)w[K - 1] * (float)x;
    for (int k = 0; k + 1 < K; k++) st[k] = st[k + 1];
    st[K - 1] = x;
    return quamba_conv_emit(v, s.out, &a->out[(size_t)b * a->E + c]);
}

// One (sequence, channel) over its L tokens; returns the codes that saturated
QTK_HD unsigned quamba_conv_channel(const quamba_conv_args *a, int b, int c) {
    if (a->L == 1) return quamba_conv_step(a, b, c, a->x[(size_t)b * a->ld + c]);
    unsigned sat = 0;
    for (int t = 0; t < a->L; t++) sat += quamba_conv_token(a, b, t, c);
    quamba_conv_keep(a, b, c);
    return sat;
}

// --- Mamba2 (spec 6.5 with per-tensor scales: the paper's Quamba on Mamba2) ------------------------------

// in_proj's epilogue for output split k (z, x, B, C, dt), b = fl32(s_w,k / s_out,k) computed in double: a GEMM
// writes sat(RNE(s_in (b acc))) (the scaled-mm epilogue), the decode GEMV sat(roundf(fl32(b s_in) acc))
QTK_HD float quamba2_epi(int32_t acc, float b, float s_in, int gemv) {
    return gemv ? roundf((b * s_in) * (float)acc) : rintf(s_in * (b * (float)acc));
}

// The SSD's operands: int8 x, B, C (the conv's outputs: rows of x (H P) | B (G N) | C (G N), stride ldx), dt
// (in_proj's, stride lddt), A_log and D int8 per tensor, dt_bias fp16 values; the state (B, H, P, N) as int8 codes
// of scale s_state between calls; y (rows, H P) fp16 values
typedef struct {
    int B, L, H, P, N, G;
    const int8_t *x;
    size_t ldx;
    const int8_t *dt;
    size_t lddt;
    const int8_t *A_log, *Dq;
    const float *dt_bias;
    float s_x, s_B, s_C, s_dt, A_s, D_s, s_state, dt_min, dt_max;
    int8_t *state;
    float *y;
} quamba2_ssd_args;

// One (sequence b, head h, channel p) over its L tokens, N <= 256 (the reference's state-update kernel, token by
// token): returns the state codes that saturated
QTK_HD unsigned quamba2_ssd_row(const quamba2_ssd_args *a, int b, int h, int p) {
    const int N = a->N, HP = a->H * a->P, g = h / (a->H / a->G);
    int8_t *sq = a->state + (((size_t)b * a->H + h) * a->P + p) * N;
    float st[256];
    // state = state_scale * q_state
    for (int n = 0; n < N; n++) st[n] = a->s_state * (float)sq[n];
    // A = -exp(A_log_scale * q_A_log); D = D_scale * q_D
    const float A = -expf(a->A_s * (float)a->A_log[h]), Dh = a->D_s * (float)a->Dq[h];
    for (int t = 0; t < a->L; t++) {
        const size_t r = (size_t)b * a->L + t;
        const int8_t *xr = a->x + r * a->ldx, *Bq = xr + HP + (size_t)g * N, *Cq = xr + HP + (size_t)a->G * N + (size_t)g * N;
        const float x = a->s_x * (float)xr[h * a->P + p];
        // dt = softplus(dt_scale * q_dt + dt_bias), clamped to dt_limit; dA = exp(A * dt)
        const float dt = qtk_clampf(qtk_softplus(a->s_dt * (float)a->dt[r * a->lddt + h] + a->dt_bias[h]), a->dt_min, a->dt_max);
        const float dA = expf(A * dt);
        float out = 0.0f;
        for (int n = 0; n < N; n++) {
            // state = state * dA + (B * dt) * x;  out = sum(state * C)
            st[n] = st[n] * dA + ((a->s_B * (float)Bq[n]) * dt) * x;
            out += st[n] * (a->s_C * (float)Cq[n]);
        }
        // out += x * D, stored fp16
        a->y[r * HP + h * a->P + p] = quamba_f16(out + x * Dh);
    }
    // q_state = clamp(rint((state * 1e2) / (state_scale * 1e2)))
    unsigned sat = 0;
    for (int n = 0; n < N; n++) {
        const float q = rintf((st[n] * 1e2f) / (a->s_state * 1e2f));
        sat += (unsigned)quamba_clips(q);
        sq[n] = qtk_sat_s8(q);
    }
    return sat;
}

// The gated RMSNorm of one row (spec 6.5 step 5): y (E, fp16 values) and the gate's codes z (scale s_z):
// v = y (z sigmoid(z)); per group of E/G channels v * rsqrt(mean(v^2) + eps) * w; fp16 into out
QTK_HD void quamba2_gnorm_row(const float *y, const int8_t *zq, float s_z, const float *w, int E, int G, float eps,
                              float *out) {
    const int gs = E / G;
    for (int g = 0; g < G; g++) {
        float ss = 0.0f;
        for (int i = g * gs; i < (g + 1) * gs; i++) {
            const float z = s_z * (float)zq[i];
            const float v = y[i] * (z * (1.0f / (1.0f + expf(-z))));
            out[i] = v;
            ss += v * v;
        }
        const float rstd = 1.0f / sqrtf(ss / (float)gs + eps);
        for (int i = g * gs; i < (g + 1) * gs; i++) out[i] = quamba_f16((out[i] * rstd) * w[i]);
    }
}

#endif
