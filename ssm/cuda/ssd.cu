// Mamba2's chunked SSD on the GPU (mamba_internal.h; spec section 3; the CPU's ssd_chunked in
// ssm/mamba.c, whose recurrence is the oracle). Per sequence b, chunk c of Q tokens and head h, with
// the cumulative log-decays c_i = cumsum(dt A) inside the chunk:
//   1. k_ssd_dt_cum: dt = clamp(softplus(dt_raw + dt_bias)) and c_i (a warp scan per chunk);
//   2. cuBLAS: C B^T (len x len) per chunk and group, strided-batched over chunks;
//   3. k_ssd_chunk_state: the chunk's own end state S_c = x^T (w B), w_j = exp(c_last - c_j) dt_j;
//   4. k_ssd_pass: the states entering each chunk, s_{c+1} = exp(c_last) s_c + S_c (from the cached
//      state), and the final state back to the cache;
//   5. k_ssd_y: y_i = sum_{j <= i} (C B^T)_ij exp(c_i - c_j) dt_j x_j + exp(c_i) C_i s_c^T + D x_i.
// 3 and 5 are 64 x 64 output tiles per block of 256 threads (4 x 4 each) over 32-deep shared tiles.
#include "mamba_internal.h"

#define TILE 64
#define DEPTH 32

// one warp per (sequence, head, chunk)
__global__ void k_ssd_dt_cum(const float *__restrict__ raw, int ld, const float *__restrict__ dt_bias,
                             const float *__restrict__ A_log, int B, int L, int H, int Q, int nc, float lo, float hi,
                             float *dtc, float *cum) {
    const long w = (blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (w >= (long)B * H * nc) return;
    const int c = (int)(w % nc), h = (int)(w / nc % H), b = (int)(w / nc / H);
    const float A = -expf(A_log[h]);
    const int t0 = c * Q, t1 = min(L, t0 + Q);
    float run = 0.0f;
    for (int base = t0; base < t1; base += 32) {
        const int t = base + lane;
        float d = 0.0f;
        if (t < t1) {
            d = qtk_clampf(qtk_softplus(raw[((size_t)b * L + t) * ld + h] + dt_bias[h]), lo, hi);
        }
        float v = d * A; // inclusive scan over the warp
        for (int o = 1; o < 32; o <<= 1) {
            float u = __shfl_up_sync(0xffffffffu, v, o);
            if (lane >= o) v += u;
        }
        if (t < t1) {
            const size_t i = ((size_t)b * H + h) * L + t;
            dtc[i] = d;
            cum[i] = run + v;
        }
        run += __shfl_sync(0xffffffffu, v, 31);
    }
}

// The chunked kernels' shape: xbc rows of stride ld ([x (E) | B (G N) | C (G N)]), L tokens per sequence,
// H heads of P channels, N states, G groups, chunks of Q tokens, nc chunks per sequence
struct ssd_shape {
    int ld, E, L, H, P, N, G, Q, nc;
};

// grid (B * nc * H, ceil(P / 64), ceil(N / 64)): chs[b, c, h] (P, N) = sum_j x_j[p] w_j B_j[n] over the chunk
__global__ void __launch_bounds__(256) k_ssd_chunk_state(ssd_shape sh, const float *__restrict__ xbc,
                                                          const float *__restrict__ dtc, const float *__restrict__ cum,
                                                          float *chs) {
    const int ld = sh.ld, E = sh.E, L = sh.L, H = sh.H, P = sh.P, N = sh.N, G = sh.G, Q = sh.Q, nc = sh.nc;
    __shared__ float xw[DEPTH][TILE + 4], bs[DEPTH][TILE + 4], wj[DEPTH];
    const int h = blockIdx.x % H, c = blockIdx.x / H % nc, b = blockIdx.x / H / nc, g = h / (H / G);
    const int p0 = blockIdx.y * TILE, n0 = blockIdx.z * TILE, tid = threadIdx.x, tp = tid % 16, tn = tid / 16;
    const int t0 = c * Q, len = min(L - t0, Q);
    const float *cm = cum + ((size_t)b * H + h) * L + t0, *dm = dtc + ((size_t)b * H + h) * L + t0;
    const float clast = cm[len - 1];
    float acc[4][4] = {};
    for (int j0 = 0; j0 < len; j0 += DEPTH) {
        if (tid < DEPTH) wj[tid] = j0 + tid < len ? expf(clast - cm[j0 + tid]) * dm[j0 + tid] : 0.0f;
        __syncthreads();
        for (int e = tid; e < DEPTH * TILE; e += 256) {
            const int jj = e / TILE, k = e % TILE, j = j0 + jj;
            const float *row = xbc + ((size_t)b * L + t0 + j) * ld;
            xw[jj][k] = j < len && p0 + k < P ? row[(size_t)h * P + p0 + k] * wj[jj] : 0.0f;
            bs[jj][k] = j < len && n0 + k < N ? row[E + (size_t)g * N + n0 + k] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int jj = 0; jj < DEPTH; jj++) {
            const float4 a = *(const float4 *)&xw[jj][tp * 4], v = *(const float4 *)&bs[jj][tn * 4];
            const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int k = 0; k < 4; k++) acc[i][k] = __fmaf_rn(av[i], bv[k], acc[i][k]);
        }
        __syncthreads();
    }
    float *out = chs + ((size_t)b * nc + c) * H * (size_t)P * N + (size_t)h * P * N;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            const int p = p0 + tp * 4 + i, n = n0 + tn * 4 + k;
            if (p < P && n < N) out[(size_t)p * N + n] = acc[i][k];
        }
}

// one thread per (sequence, head, p, n): chs[b, c] becomes the state entering chunk c
__global__ void k_ssd_pass(int B, int L, int H, int PN, int Q, int nc, const float *__restrict__ cum, float *chs,
                           float *state) {
    const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= (long)B * H * PN) return;
    const int b = (int)(i / ((long)H * PN)), h = (int)(i / PN % H);
    const size_t hk = i % ((size_t)H * PN);
    float s = state[i];
    for (int c = 0; c < nc; c++) {
        float *ch = chs + ((size_t)b * nc + c) * H * PN + hk;
        const float own = *ch, decay = expf(cum[((size_t)b * H + h) * L + min(L, (c + 1) * Q) - 1]);
        *ch = s;
        s = decay * s + own;
    }
    state[i] = s;
}

// acc (this thread's 4 x 4 of a 64 x 64 tile) += ts (64 x DEPTH) ds (DEPTH x 64), rows ti * 4.., columns tp * 4..
__device__ __forceinline__ void tile_fma(const float (*ts)[DEPTH + 1], const float (*ds)[TILE + 4], int ti, int tp,
                                         float acc[4][4]) {
#pragma unroll 8
    for (int k = 0; k < DEPTH; k++) {
        const float4 v = *(const float4 *)&ds[k][tp * 4];
        const float bv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float a = ts[ti * 4 + i][k];
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][q] = __fmaf_rn(a, bv[q], acc[i][q]);
        }
    }
}

// grid (B * nc * H, ceil(Q / 64), ceil(P / 64)): y for 64 tokens x 64 p of one chunk and head
__global__ void __launch_bounds__(256) k_ssd_y(ssd_shape sh, const float *__restrict__ xbc, const float *__restrict__ dtc,
                                                const float *__restrict__ cum, const float *__restrict__ cb,
                                                const float *__restrict__ chs, const float *__restrict__ Dskip, float *y) {
    const int ld = sh.ld, E = sh.E, L = sh.L, H = sh.H, P = sh.P, N = sh.N, G = sh.G, Q = sh.Q, nc = sh.nc;
    __shared__ float ts[TILE][DEPTH + 1], ds[DEPTH][TILE + 4], ct[TILE], cj[DEPTH], dj[DEPTH];
    const int h = blockIdx.x % H, c = blockIdx.x / H % nc, b = blockIdx.x / H / nc, g = h / (H / G);
    const int i0 = blockIdx.y * TILE, p0 = blockIdx.z * TILE, tid = threadIdx.x, tp = tid % 16, ti = tid / 16;
    const int t0 = c * Q, len = min(L - t0, Q);
    if (i0 >= len) return;
    const float *cm = cum + ((size_t)b * H + h) * L + t0, *dm = dtc + ((size_t)b * H + h) * L + t0;
    const float *rows = xbc + ((size_t)b * L + t0) * ld;
    if (tid < TILE) ct[tid] = i0 + tid < len ? cm[i0 + tid] : 0.0f;
    // the state term: T = C s^T over n, s = the state entering the chunk (P, N)
    const float *s = chs + ((size_t)b * nc + c) * H * (size_t)P * N + (size_t)h * P * N;
    float accT[4][4] = {}, accY[4][4] = {};
    for (int n0 = 0; n0 < N; n0 += DEPTH) {
        for (int e = tid; e < TILE * DEPTH; e += 256) {
            const int r = e / DEPTH, k = e % DEPTH;
            ts[r][k] = i0 + r < len && n0 + k < N ? rows[(size_t)(i0 + r) * ld + E + (size_t)(G + g) * N + n0 + k] : 0.0f;
            const int p = e / DEPTH; // s (P, N) read along n, stored (n, p)
            ds[k][p] = p0 + p < P && n0 + k < N ? s[(size_t)(p0 + p) * N + n0 + k] : 0.0f;
        }
        __syncthreads();
        tile_fma(ts, ds, ti, tp, accT);
        __syncthreads();
    }
    // the diagonal block: W = (C B^T) exp(c_i - c_j) dt_j for j <= i, then W x
    const float *cbm = cb + ((size_t)b * nc + c) * G * (size_t)Q * Q + (size_t)g * Q * Q;
    const int jend = min(len, i0 + TILE);
    for (int j0 = 0; j0 < jend; j0 += DEPTH) {
        if (tid < DEPTH) {
            cj[tid] = j0 + tid < len ? cm[j0 + tid] : 0.0f;
            dj[tid] = j0 + tid < len ? dm[j0 + tid] : 0.0f;
        }
        __syncthreads();
        for (int e = tid; e < TILE * DEPTH; e += 256) {
            const int r = e / DEPTH, k = e % DEPTH, i = i0 + r, j = j0 + k;
            ts[r][k] = i < len && j <= i ? cbm[(size_t)i * Q + j] * expf(ct[r] - cj[k]) * dj[k] : 0.0f;
            const int jj = e / TILE, p = e % TILE;
            ds[jj][p] = j0 + jj < len && p0 + p < P ? rows[(size_t)(j0 + jj) * ld + (size_t)h * P + p0 + p] : 0.0f;
        }
        __syncthreads();
        tile_fma(ts, ds, ti, tp, accY);
        __syncthreads();
    }
    const float Dh = Dskip[h];
    for (int i = 0; i < 4; i++) {
        const int r = ti * 4 + i, t = i0 + r;
        if (t >= len) break;
        const float ei = expf(ct[r]);
        for (int q = 0; q < 4; q++) {
            const int p = p0 + tp * 4 + q;
            if (p >= P) break;
            const float xv = rows[(size_t)t * ld + (size_t)h * P + p];
            y[((size_t)b * L + t0 + t) * E + (size_t)h * P + p] = accY[i][q] + ei * accT[i][q] + Dh * xv;
        }
    }
}

qtk_status qtk_mamba_ssd_chunked(qtk_mamba_cuda *g, int layer, int L, const float *xbc, const float *dt_raw, int ld_dt,
                                 float *state, float *y) {
    const qtk_mamba_config *c = &g->m->cfg;
    const qtk_mamba_layer *ly = &g->m->layers[layer];
    const int B = g->B, H = c->n_heads, P = c->head_dim, N = c->d_state, G = c->n_groups, Q = c->chunk_size,
              E = c->d_inner, CD = qtk_mamba_conv_dim(c), nc = (L + Q - 1) / Q;
    const long warps = (long)B * H * nc;
    k_ssd_dt_cum<<<(unsigned)((warps + 7) / 8), 256, 0, g->st>>>(dt_raw, ld_dt, DEV(g, ly->dt_bias), DEV(g, ly->A_log), B, L,
                                                                  H, Q, nc, c->dt_min, c->dt_max, g->dtc, g->cum);
    QTK_CUDA_TRY_LAUNCH("ssd_dt_cum");
    // C B^T per (sequence, chunk, group), row-major (i, j) with row stride Q: column-major (j, i) = B_j . C_i
    const float one = 1.0f, zero = 0.0f;
    const long long sx = (long long)Q * CD, sc = (long long)G * Q * Q;
    for (int gg = 0; gg < G; gg++) {
        const float *Bp = xbc + E + (size_t)gg * N, *Cp = xbc + E + (size_t)(G + gg) * N;
        float *out = g->cb + (size_t)gg * Q * Q;
        if (L % Q == 0) // every chunk full: one batch over all (sequence, chunk)
            QTK_CUBLAS_TRY(cublasSgemmStridedBatched(g->gm.h, CUBLAS_OP_T, CUBLAS_OP_N, Q, Q, N, &one, Bp, CD, sx, Cp, CD, sx, &zero,
                                                     out, Q, sc, B * nc));
        else
            for (int b = 0; b < B; b++) {
                const size_t ro = (size_t)b * L * CD, oo = (size_t)b * nc * sc;
                if (nc > 1)
                    QTK_CUBLAS_TRY(cublasSgemmStridedBatched(g->gm.h, CUBLAS_OP_T, CUBLAS_OP_N, Q, Q, N, &one, Bp + ro, CD, sx,
                                                             Cp + ro, CD, sx, &zero, out + oo, Q, sc, nc - 1));
                const int lt = L - (nc - 1) * Q;
                const size_t rt = ro + (size_t)(nc - 1) * sx;
                QTK_CUBLAS_TRY(cublasSgemm(g->gm.h, CUBLAS_OP_T, CUBLAS_OP_N, lt, lt, N, &one, Bp + rt, CD, Cp + rt, CD, &zero,
                                           out + oo + (size_t)(nc - 1) * sc, Q));
            }
    }
    const unsigned blocks = (unsigned)((long)B * nc * H);
    const ssd_shape sh = {CD, E, L, H, P, N, G, Q, nc};
    k_ssd_chunk_state<<<dim3(blocks, (P + TILE - 1) / TILE, (N + TILE - 1) / TILE), 256, 0, g->st>>>(sh, xbc, g->dtc,
                                                                                                      g->cum, g->chs);
    QTK_CUDA_TRY_LAUNCH("ssd_chunk_state");
    const long n = (long)B * H * P * N;
    k_ssd_pass<<<(unsigned)((n + 255) / 256), 256, 0, g->st>>>(B, L, H, P * N, Q, nc, g->cum, g->chs, state);
    QTK_CUDA_TRY_LAUNCH("ssd_pass");
    k_ssd_y<<<dim3(blocks, (Q + TILE - 1) / TILE, (P + TILE - 1) / TILE), 256, 0, g->st>>>(sh, xbc, g->dtc, g->cum, g->cb,
                                                                                            g->chs, DEV(g, ly->Dskip), y);
    QTK_CUDA_TRY_LAUNCH("ssd_y");
    return QTK_OK;
}
