// Small-batch GEMVs for the GPU Mamba's decode (mamba_internal.h): at one to eight rows a projection is a
// pass over its weights, and cuBLAS's GEMM kernels (plus the fp16 conversion of the input and the bias
// and activation kernels around them) leave most of the bandwidth unused. Here `wpr` warps share one
// output row (splitting K; shared-memory reduction, so the sum order is fixed), each lane streaming
// 16-byte weight loads, the bias and softplus applied before the single store.
#include <math.h>

#include "mamba_internal.h"

// blockDim 256 = 8 warps; wpr warps per output row (1, 2, 4, 8), 8 / wpr rows per block.
// vec: K % 8 == 0 and W, x, ldx aligned for 16-byte loads.
template <typename W, int NB, bool VEC>
__global__ void __launch_bounds__(256) k_gemv(const W *__restrict__ w, const float *__restrict__ x, int ldx,
                                              const float *__restrict__ bias, float *y, int ldy, int N, int K, int wpr,
                                              int act) {
    __shared__ float red[8][NB];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, part = warp % wpr;
    const int o = blockIdx.x * (8 / wpr) + warp / wpr;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; b++) acc[b] = 0.0f;
    if (o < N) {
        const W *wr = w + (size_t)o * K;
        if (VEC) {
#pragma unroll 4
            for (int k = (part * 32 + lane) * 8; k < K; k += wpr * 256) {
                float wf[8];
                wvec<W>::load(wr + k, wf);
#pragma unroll
                for (int b = 0; b < NB; b++) {
                    const float4 *xp = (const float4 *)(x + (size_t)b * ldx + k);
                    const float4 a = __ldg(xp), c = __ldg(xp + 1);
                    const float xv[8] = {a.x, a.y, a.z, a.w, c.x, c.y, c.z, c.w};
#pragma unroll
                    for (int i = 0; i < 8; i++) acc[b] = __fmaf_rn(wf[i], wvec<W>::in(xv[i]), acc[b]);
                }
            }
        } else {
            for (int k = part * 32 + lane; k < K; k += wpr * 32) {
                const float wf = wvec<W>::one(wr + k);
#pragma unroll
                for (int b = 0; b < NB; b++) acc[b] = __fmaf_rn(wf, wvec<W>::in(__ldg(x + (size_t)b * ldx + k)), acc[b]);
            }
        }
    }
#pragma unroll
    for (int b = 0; b < NB; b++) {
        float v = acc[b];
        for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
        if (lane == 0) red[warp][b] = v;
    }
    __syncthreads();
    if (o >= N || part != 0 || lane >= NB) return;
    float v = 0.0f;
    for (int i = 0; i < wpr; i++) v += red[warp + i][lane];
    if (bias) v += bias[o];
    if (act == 1) v = qtk_softplus(v);
    y[(size_t)lane * ldy + o] = v;
}

// The warps per row. A GEMV of one pass is as slow as its last wave of blocks: with `slots` warps resident
// on the GPU at once, N * wpr warp tasks run in ceil(N * wpr / slots) waves, so wpr is chosen for the
// fullest last wave (the fewest warps per row among equals), each warp keeping at least 256 weights.
static int warps_per_row(int N, int K, long slots) {
    int best = 1;
    double best_eff = 0;
    for (int wpr = 1; wpr <= 8; wpr *= 2) {
        if (wpr > 1 && K < wpr * 256) break;
        const double waves = (double)N * wpr / slots, eff = waves / ceil(waves);
        if (eff > best_eff + 0.02) best = wpr, best_eff = eff;
    }
    return best;
}

template <typename W, int NB>
static qtk_status launch(cudaStream_t st, const W *w, const float *x, int ldx, const float *b, float *y, int ldy, int N,
                         int K, int act) {
    const bool vec = K % 8 == 0 && ldx % 4 == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;
    static long slots[2]; // resident warps on this GPU, per variant (queried once)
    if (!slots[vec]) {
        int dev = 0, sms = 0, per_sm = 0;
        QTK_CUDA_TRY(cudaGetDevice(&dev));
        QTK_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        QTK_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &per_sm, vec ? (const void *)k_gemv<W, NB, true> : (const void *)k_gemv<W, NB, false>, 256, 0));
        slots[vec] = (long)sms * (per_sm > 0 ? per_sm : 1) * 8;
    }
    const int wpr = warps_per_row(N, K, slots[vec]);
    const unsigned blocks = (unsigned)((N + 8 / wpr - 1) / (8 / wpr));
    if (vec) k_gemv<W, NB, true><<<blocks, 256, 0, st>>>(w, x, ldx, b, y, ldy, N, K, wpr, act);
    else k_gemv<W, NB, false><<<blocks, 256, 0, st>>>(w, x, ldx, b, y, ldy, N, K, wpr, act);
    QTK_CUDA_TRY_LAUNCH("gemv");
    return QTK_OK;
}

template <typename W>
static qtk_status dispatch(cudaStream_t st, const W *w, const float *x, int ldx, const float *b, float *y, int ldy, int rows,
                           int N, int K, int act) {
    switch (rows) {
    case 1: return launch<W, 1>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 2: return launch<W, 2>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 3: return launch<W, 3>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 4: return launch<W, 4>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 5: return launch<W, 5>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 6: return launch<W, 6>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 7: return launch<W, 7>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 8: return launch<W, 8>(st, w, x, ldx, b, y, ldy, N, K, act);
    default: return qtk_fail(QTK_ERR_ARG, "GEMV of %d rows (1..%d)", rows, QTK_GEMV_MAX_ROWS);
    }
}

qtk_status qtk_mamba_gemv(cudaStream_t st, const void *W, int w_half, const float *x, int ldx, const float *b, float *y,
                          int ldy, int rows, int N, int K, int act) {
    if (w_half) return dispatch(st, (const __half *)W, x, ldx, b, y, ldy, rows, N, K, act);
    return dispatch(st, (const float *)W, x, ldx, b, y, ldy, rows, N, K, act);
}
