// Quamba's int8 GPU kernels (quamba_ops.cuh): the conv, the selective scan, the fused Hadamard + quantize and the
// decode GEMV with their launchers, and the backend test's entries that run one kernel alone. Every element goes
// through ssm/quamba_kernels.h's expressions, the CPU reference's (ssm/quamba_fwd.c).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/cuda/hadamard.cuh"
#include "../../core/hadamard.h"
#include "../quamba_cuda.h"
#include "quamba_ops.cuh"

__global__ void k_q8_div(const float *__restrict__ v, size_t n, float s, int8_t *q, u64 *sat) {
    unsigned c = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float x = roundf(v[i] / s);
        c += quamba_clips(x);
        q[i] = qtk_sat_s8(x);
    }
    add_sat(sat, c);
}

// the conv's prefill: a thread per (token, channel), every output on its own (the int32 sums are exact in
// any order), then the states (k_conv_keep, after every output has read them)
__global__ void k_conv_q8_tok(const __grid_constant__ quamba_conv_args a, u64 *sat) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= a.E) return;
    const unsigned r = blockIdx.x;
    add_sat(sat, quamba_conv_token(&a, (int)(r / (unsigned)a.L), (int)(r % (unsigned)a.L), c));
}

__global__ void k_conv_keep(const __grid_constant__ quamba_conv_args a) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c < a.E) quamba_conv_keep(&a, blockIdx.x, c);
}

// a decode step: a thread per (sequence, channel)
__global__ void k_conv_step(const __grid_constant__ quamba_conv_args a, u64 *sat) {
    qtk_pdl_trigger();
    qtk_pdl_wait();
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c < a.E) add_sat(sat, quamba_conv_step(&a, blockIdx.x, c, a.x[(size_t)blockIdx.x * a.ld + c]));
}

qtk_status qb_conv_q8(cudaStream_t st, const quamba_conv_args *a, u64 *sat) {
    const unsigned ty = (unsigned)((a->E + 127) / 128);
    if (a->L == 1) {
        QTK_LAUNCH_PDL(k_conv_step, dim3((unsigned)a->B, ty), 128, 0, st, *a, sat);
        return QTK_OK;
    }
    QTK_LAUNCH(k_conv_q8_tok, dim3((unsigned)((size_t)a->B * a->L), ty), 128, 0, st, *a, sat);
    QTK_LAUNCH(k_conv_keep, dim3((unsigned)a->B, ty), 128, 0, st, *a);
    return QTK_OK;
}

__global__ void k_scan_q8(const __grid_constant__ quamba_scan_args a) {
    const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= (long)a.B * a.E) return;
    quamba_scan_channel(&a, (int)(i / a.E), (int)(i % a.E));
}

// The scan in tiles of SCAN_T tokens: a block of 128 threads holds 128 / S channels of one sequence, S lanes
// per channel (S a power of two >= N, 4..32), lane n keeping state n in a register. Per tile the block stages
// the operands in shared memory (u, delta and silu(z) per channel, computed once; B and C per token, shared by
// every channel), the lanes run the recurrence with no loads from global memory and leave each state's
// product h_n C_n, and then a thread per (token, channel) sums them in the order n = 0..N-1 as the CPU does:
// the same expressions in the same order as quamba_scan_channel.
#define SCAN_T 32
template <int S> __global__ void __launch_bounds__(128) k_scan_q8_tile(quamba_scan_args a, quamba_dt_fuse dt) {
    constexpr int C = 128 / S;
    __shared__ float su[SCAN_T][C], sd[SCAN_T][C], sz[SCAN_T][C], sB[SCAN_T][S], sC[SCAN_T][S];
    __shared__ float sp[SCAN_T][C][S + 1];
    __shared__ int8_t sdt[C];
    const int E = a.E, N = a.N, XD = a.R + 2 * a.N, b = blockIdx.y, ch0 = blockIdx.x * C;
    const int cl = threadIdx.x / S, n = threadIdx.x % S, ch = ch0 + cl, on = ch < E && n < N;
    const float A = on ? -expf(a.A_s * (float)a.A_log[(size_t)ch * N + n]) : 0.0f;
    qtk_pdl_trigger();
    qtk_pdl_wait();
    float *hp = a.h + ((size_t)b * E + (ch < E ? ch : 0)) * N;
    float hs = on ? hp[n] : 0.0f;
    unsigned dsat = 0;
    if (dt.w) { // a decode step (L = 1): this channel's dt code
        int acc = 0;
        if (ch < E) {
            const int *xw = (const int *)(a.dbl + (size_t)b * XD), *ww = (const int *)(dt.w + (size_t)ch * a.R);
            for (int k = n; k < a.R / 4; k += S) acc = __dp4a(ww[k], xw[k], acc);
        }
        for (int o = S >> 1; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o, S);
        if (n == 0 && ch < E) {
            const float v = rintf(quamba_epi_value(acc, dt.s_w, dt.r, dt.a, dt.e));
            dsat += quamba_clips(v);
            sdt[cl] = qtk_sat_s8(v);
        }
        __syncthreads();
    }
    for (int t0 = 0; t0 < a.L; t0 += SCAN_T) {
        const int nt = a.L - t0 < SCAN_T ? a.L - t0 : SCAN_T;
        const size_t r0 = (size_t)b * a.L + t0;
        for (int j = threadIdx.x; j < nt * C; j += 128) {
            const int tt = j / C, k = j % C, c = ch0 + k;
            if (c >= E) continue;
            const size_t r = r0 + tt;
            const int8_t dq = dt.w ? sdt[k] : a.dtq[r * E + c];
            su[tt][k] = a.s_u * (float)a.xq[r * E + c];
            sd[tt][k] = qtk_softplus(a.s_dt * (float)dq + a.dt_bs * (float)a.dt_b[c]);
            sz[tt][k] = qtk_silu(a.s_z * (float)a.z[r * a.ldz + c]);
        }
        for (int j = threadIdx.x; j < nt * N; j += 128) {
            const int tt = j / N, k = j % N;
            const int8_t *Bq = a.dbl + (r0 + tt) * XD + a.R;
            sB[tt][k] = a.s_bc * (float)Bq[k];
            sC[tt][k] = a.s_bc * (float)Bq[N + k];
        }
        __syncthreads();
        if (on)
            for (int tt = 0; tt < nt; tt++) {
                const float d = sd[tt][cl];
                hs = expf(d * A) * hs + (d * sB[tt][n]) * su[tt][cl];
                sp[tt][cl][n] = hs * sC[tt][n];
            }
        __syncthreads();
        for (int j = threadIdx.x; j < nt * C; j += 128) {
            const int tt = j / C, k = j % C, c = ch0 + k;
            if (c >= E) continue;
            float acc = 0.0f;
            for (int i = 0; i < N; i++) acc += sp[tt][k][i];
            const float Dc = a.D_s * (float)a.Dq[c];
            a.y[(r0 + tt) * E + c] = quamba_f16((acc + Dc * su[tt][k]) * sz[tt][k]);
        }
        __syncthreads();
    }
    if (on) hp[n] = quamba_f16(hs);
    add_sat(dt.sat, dsat);
}

// the scan; dt (may be NULL) fuses dt_proj into a decode step (L = 1, N <= 32)
qtk_status qb_scan_q8(cudaStream_t st, const quamba_scan_args *a, const quamba_dt_fuse *dt) {
    const quamba_dt_fuse none = {NULL, 0, 0, 0, 0, NULL};
    if (dt && (a->L != 1 || a->N > 32)) return qtk_fail(QTK_ERR_ARG, "GPU Quamba: dt_proj fuses into a decode step's scan only");
    if (a->N > 32) {
        QTK_LAUNCH(k_scan_q8, qtk_grid_for((size_t)a->B * a->E, 128), 128, 0, st, *a);
        return QTK_OK;
    }
    int S = 4; // at least 4 lanes: 128 channels a block would not fit the tile in shared memory
    while (S < a->N) S *= 2;
#define TILE(s)                                                                                                        \
    QTK_LAUNCH_PDL(k_scan_q8_tile<s>, dim3((unsigned)((a->E + 128 / s - 1) / (128 / s)), (unsigned)a->B), 128, 0, st, \
                   *a, dt ? *dt : none)
    switch (S) {
    case 4: TILE(4); break;
    case 8: TILE(8); break;
    case 16: TILE(16); break;
    default: TILE(32); break;
    }
#undef TILE
    return QTK_OK;
}

// blockIdx.x: a row; blockIdx.y of gridDim.y: a share of its m output segments (few rows: more blocks per row).
// The row's butterflies in shared memory (hadamard.cuh's order), then this block's segments mixed with the
// base matrix as the CPU does (b = 0..m-1 in order), then q = clamp(roundf(v mu)). had 0: v itself.
__global__ void k_had_q8(const float *__restrict__ y, int E, size_t m, const unsigned long long *__restrict__ mask, int had,
                         float mu, int8_t *q, u64 *sat) {
    extern __shared__ float sh[];
    qtk_pdl_trigger();
    qtk_pdl_wait();
    float *v = sh;
    const float *row = y + (size_t)blockIdx.x * E;
    for (int i = threadIdx.x; i < E; i += blockDim.x) v[i] = row[i];
    __syncthreads();
    const size_t P = had ? (size_t)E / m : (size_t)E, segs = had ? m : 1;
    if (had) qtk_had_butterflies(v, (size_t)E, P);
    const size_t a0 = segs * blockIdx.y / gridDim.y, a1 = segs * (blockIdx.y + 1) / gridDim.y;
    unsigned c = 0;
    for (size_t e = a0 * P + threadIdx.x; e < a1 * P; e += blockDim.x) {
        const float o = had && m > 1 ? qtk_had_mix_mask(v, e, P, m, mask) : v[e];
        const float x = roundf(o * mu);
        c += quamba_clips(x);
        q[(size_t)blockIdx.x * E + e] = qtk_sat_s8(x);
    }
    add_sat(sat, c);
}

// The decode GEMV: WPR warps per output row splitting K, each lane taking 16-byte (VEC) or 4-byte words of
// the int8 weights and dp4a products with the NR input rows; integer sums (exact in any order), then the
// epilogue: int8 codes (q) or h += fp16(s_in (s_w acc)) (out_proj). Launched dependent (QTK_LAUNCH_PDL): a
// lane's first PF weight words are loaded before the wait for the kernel that writes x, so the weight stream
// starts while that kernel finishes.
#define GEMV_PF 8
template <int WPR, bool VEC, int NR>
__global__ void __launch_bounds__(256) k_gemv_s8(const int8_t *__restrict__ x, int ldx, const int8_t *__restrict__ W,
                                                 int N, int K, float s_w, float r, float a, int e, int8_t *q, float *h,
                                                 float s_in, u64 *sat, const __grid_constant__ quamba_conv_args cv, u64 *csat) {
    __shared__ int red[8][NR];
    qtk_pdl_trigger();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, part = warp % WPR;
    const int o = blockIdx.x * (8 / WPR) + warp / WPR;
    const int8_t *wr = W + (size_t)(o < N ? o : 0) * K;
    int acc[NR];
#pragma unroll
    for (int b = 0; b < NR; b++) acc[b] = 0;
    if (VEC) {
        const int k0 = (part * 32 + lane) * 16, step = WPR * 32 * 16;
        int4 pre[GEMV_PF];
#pragma unroll
        for (int i = 0; i < GEMV_PF; i++)
            pre[i] = o < N && k0 + i * step < K ? __ldg((const int4 *)(wr + k0 + i * step)) : make_int4(0, 0, 0, 0);
        qtk_pdl_wait();
#pragma unroll
        for (int i = 0; i < GEMV_PF; i++) {
            const int k = k0 + i * step;
            if (o >= N || k >= K) break;
#pragma unroll
            for (int b = 0; b < NR; b++) {
                const int4 xv = *(const int4 *)(x + (size_t)b * ldx + k);
                acc[b] = __dp4a(pre[i].x, xv.x, acc[b]);
                acc[b] = __dp4a(pre[i].y, xv.y, acc[b]);
                acc[b] = __dp4a(pre[i].z, xv.z, acc[b]);
                acc[b] = __dp4a(pre[i].w, xv.w, acc[b]);
            }
        }
        if (o < N) {
#pragma unroll 4
            for (int k = k0 + GEMV_PF * step; k < K; k += step) {
                const int4 wv = __ldg((const int4 *)(wr + k));
#pragma unroll
                for (int b = 0; b < NR; b++) {
                    const int4 xv = *(const int4 *)(x + (size_t)b * ldx + k);
                    acc[b] = __dp4a(wv.x, xv.x, acc[b]);
                    acc[b] = __dp4a(wv.y, xv.y, acc[b]);
                    acc[b] = __dp4a(wv.z, xv.z, acc[b]);
                    acc[b] = __dp4a(wv.w, xv.w, acc[b]);
                }
            }
        }
    } else {
        qtk_pdl_wait();
        if (o < N) {
#pragma unroll 4
            for (int k = (part * 32 + lane) * 4; k < K; k += WPR * 32 * 4) {
                const int wv = __ldg((const int *)(wr + k));
#pragma unroll
                for (int b = 0; b < NR; b++) acc[b] = __dp4a(wv, *(const int *)(x + (size_t)b * ldx + k), acc[b]);
            }
        }
    }
#pragma unroll
    for (int b = 0; b < NR; b++) acc[b] = qtk_warp_sum(acc[b]);
    if (WPR > 1) {
        if (lane == 0)
            for (int b = 0; b < NR; b++) red[warp][b] = acc[b];
        __syncthreads();
        if (part == 0 && lane == 0)
            for (int b = 0; b < NR; b++) {
                int s = 0;
                for (int w = 0; w < WPR; w++) s += red[warp + w][b];
                acc[b] = s;
            }
    }
    if (o >= N || part != 0 || lane != 0) return;
    unsigned c = 0, cc = 0;
#pragma unroll
    for (int b = 0; b < NR; b++) {
        if (q) {
            const float v = rintf(quamba_epi_value(acc[b], s_w, r, a, e));
            c += quamba_clips(v);
            q[(size_t)b * N + o] = qtk_sat_s8(v);
            // in_proj of a decode step: output o < E is channel o's new code, and its conv step is this thread's
            if (cv.K && o < cv.E) cc += quamba_conv_step(&cv, b, o, qtk_sat_s8(v));
        } else h[(size_t)b * N + o] += quamba_f16(s_in * (s_w * (float)acc[b]));
    }
    add_sat(sat, c);
    add_sat(csat, cc);
}

// --- launchers ----------------------------------------------------------------------------------------------

// cv (may be NULL): the conv step fused into in_proj's epilogue (a decode step), its saturation to csat
qtk_status qb_gemv(cudaStream_t st, const int8_t *x, int ldx, const int8_t *W, int rows, int N, int K, float s_w,
                       float s_in, float s_out, int e, int8_t *q, float *h, u64 *sat, const quamba_conv_args *cv, u64 *csat) {
    if (rows < 1 || rows > 8 || K % 4 || ldx % 4)
        return qtk_fail(QTK_ERR_ARG, "int8 GEMV: %d rows (1..8), K %d and row stride %d (multiples of 4)", rows, K, ldx);
    float r = 0, a = 0;
    if (q) quamba_epi_factors(s_w, s_in, s_out, &r, &a);
    quamba_conv_args nc;
    memset(&nc, 0, sizeof nc);
    if (cv && (!q || cv->L != 1 || cv->B != rows)) return qtk_fail(QTK_ERR_ARG, "int8 GEMV: the conv fuses into a decode step");
    const quamba_conv_args ca = cv ? *cv : nc;
    const bool vec = K % 16 == 0 && ldx % 16 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)W & 15) == 0;
    // few outputs: a block per output row, splitting K (a choice by the shape's warps per SM ran out_proj 25% slower
    // on the H100: run 35, results/ssm/quamba_gpu_runs.txt)
    const int wpr = N < 4096 ? 8 : 1;
    const unsigned grid = (unsigned)((N + 8 / wpr - 1) / (8 / wpr));
#define GEMV(WPR, V, NR)                                                                                               \
    QTK_LAUNCH_PDL((k_gemv_s8<WPR, V, NR>), grid, 256, 0, st, x, ldx, W, N, K, s_w, r, a, e, q, h, s_in, sat, ca, csat)
#define ROWS(WPR, V)                                                                                                   \
    switch (rows) {                                                                                                    \
    case 1: GEMV(WPR, V, 1); break;                                                                                    \
    case 2: GEMV(WPR, V, 2); break;                                                                                    \
    case 3: GEMV(WPR, V, 3); break;                                                                                    \
    case 4: GEMV(WPR, V, 4); break;                                                                                    \
    case 5: GEMV(WPR, V, 5); break;                                                                                    \
    case 6: GEMV(WPR, V, 6); break;                                                                                    \
    case 7: GEMV(WPR, V, 7); break;                                                                                    \
    default: GEMV(WPR, V, 8); break;                                                                                   \
    }
    if (wpr == 8 && vec) ROWS(8, true)
    else if (wpr == 8) ROWS(8, false)
    else if (vec) ROWS(1, true)
    else ROWS(1, false)
#undef ROWS
#undef GEMV
    return QTK_OK;
}

// k_had_q8's shared memory for rows of E (set once, outside any graph capture)
qtk_status qb_had_smem(int E) {
    const size_t smem = (size_t)E * sizeof(float);
    if (smem > 48 * 1024) QTK_CUDA_TRY(cudaFuncSetAttribute(k_had_q8, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    return QTK_OK;
}

qtk_status qb_had_q8(cudaStream_t st, const float *y, size_t rows, int E, size_t m, const unsigned long long *mask, int had,
                         float s, int8_t *q, u64 *sat) {
    const size_t smem = (size_t)E * sizeof(float);
    // few rows (decode): the segments of a row over several blocks, so more SMs share the base-matrix mixing
    const unsigned split = had && m > 1 && rows < 64 ? (unsigned)(m < 8 ? m : 8) : 1;
    for (size_t r = 0; r < rows; r += 65535) {
        const unsigned nb = (unsigned)(rows - r < 65535 ? rows - r : 65535);
        QTK_LAUNCH_PDL(k_had_q8, dim3(nb, split), rows < 64 ? 1024 : 256, smem, st, y + r * E, E, m, mask, had, quamba_had_mu(E, had, s),
                   q + r * E, sat);
    }
    return QTK_OK;
}

// --- the kernels alone (the backend test) ---------------------------------------------------------------------

qtk_status qb_sat_to_host(u64 *d, uint64_t *out) {
    u64 h = 0;
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
    cudaFree(d);
    QTK_CUDA_TRY(e);
    if (out) *out = h;
    return QTK_OK;
}

qtk_status qb_sat_alloc(u64 **d) {
    QTK_CUDA_TRY(cudaMalloc((void **)d, sizeof(u64)));
    QTK_CUDA_TRY(cudaMemset(*d, 0, sizeof(u64)));
    return QTK_OK;
}

extern "C" qtk_status qtk_quamba_conv_q8_cuda(const quamba_conv_args *a, uint64_t *sat) {
    u64 *d;
    QTK_TRY(qb_sat_alloc(&d));
    qtk_status st = qb_conv_q8(0, a, d);
    if (st != QTK_OK) {
        cudaFree(d);
        return st;
    }
    return qb_sat_to_host(d, sat);
}

extern "C" qtk_status qtk_quamba_scan_cuda(const quamba_scan_args *a) {
    QTK_TRY(qb_scan_q8(0, a, NULL));
    QTK_CUDA_TRY(cudaDeviceSynchronize());
    return QTK_OK;
}

extern "C" qtk_status qtk_quamba_had_q8_cuda(float *y, size_t rows, int E, int had, float s, int8_t *q, uint64_t *sat) {
    size_t m = 1;
    signed char base[40 * 40];
    unsigned long long mask[40], *d_mask = NULL;
    if (had) {
        QTK_TRY(qtk_hadamard_base((size_t)E, &m, base));
        qtk_had_masks(base, m, mask);
        QTK_CUDA_TRY(cudaMalloc((void **)&d_mask, m * sizeof *mask));
        QTK_CUDA_TRY(cudaMemcpy(d_mask, mask, m * sizeof *mask, cudaMemcpyHostToDevice));
    }
    u64 *d;
    QTK_TRY(qb_had_smem(E));
    QTK_TRY(qb_sat_alloc(&d));
    qtk_status st = qb_had_q8(0, y, rows, E, m, d_mask, had, s, q, d);
    if (st == QTK_OK) st = qb_sat_to_host(d, sat);
    cudaFree(d_mask);
    return st;
}

extern "C" qtk_status qtk_quamba_q8_div_cuda(const float *v, size_t n, float s, int8_t *q, uint64_t *sat) {
    u64 *d;
    QTK_TRY(qb_sat_alloc(&d));
    k_q8_div<<<qtk_grid_for(n, 256), 256>>>(v, n, s, q, d);
    QTK_CUDA_TRY_LAUNCH("k_q8_div");
    return qb_sat_to_host(d, sat);
}

extern "C" qtk_status qtk_quamba_gemv_cuda(const int8_t *x, int ldx, const int8_t *W, int rows, int N, int K, float s_w,
                                           float s_in, float s_out, int e, int8_t *out_q, float *h, uint64_t *sat) {
    u64 *d;
    QTK_TRY(qb_sat_alloc(&d));
    qtk_status st = qb_gemv(0, x, ldx, W, rows, N, K, s_w, s_in, s_out, e, out_q, h, d, NULL, NULL);
    if (st != QTK_OK) {
        cudaFree(d);
        return st;
    }
    return qb_sat_to_host(d, sat);
}
