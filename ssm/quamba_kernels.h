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
} quamba_conv_args;

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
    return quamba_conv_emit(a->s_w * a->s_in * (float)acc + a->s_b * (float)a->bias[c], a->s_out,
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
    const float sw = a->s_w * a->s_in;
    float v = a->s_b * (float)a->bias[c];
    for (int k = 0; k + 1 < K; k++) v += sw * (float)w[k] * (float)st[k + 1];
    v += sw * (float)w[K - 1] * (float)x;
    for (int k = 0; k + 1 < K; k++) st[k] = st[k + 1];
    st[K - 1] = x;
    return quamba_conv_emit(v, a->s_out, &a->out[(size_t)b * a->E + c]);
}

// One (sequence, channel) over its L tokens; returns the codes that saturated
QTK_HD unsigned quamba_conv_channel(const quamba_conv_args *a, int b, int c) {
    if (a->L == 1) return quamba_conv_step(a, b, c, a->x[(size_t)b * a->ld + c]);
    unsigned sat = 0;
    for (int t = 0; t < a->L; t++) sat += quamba_conv_token(a, b, t, c);
    quamba_conv_keep(a, b, c);
    return sat;
}

#endif
