// CUDA twin of qtk_bias_correct (biascorr.c): one warp per output row, the
// row statistics in double (rounded to float32 once, as the CPU), the
// elementwise steps in the CPU's float32 order.
#include <math.h>

#include "common.cuh"
#include "qtk_cuda.h"


// mean and unbiased std of v(0..K-1), v a functor
template <class V> __device__ void row_mean_std(V v, size_t K, int lane, float *mean, float *sd) {
    double s = 0;
    for (size_t i = lane; i < K; i += 32) s += v(i);
    double mu = qtk_warp_sum(s) / (double)K, ss = 0;
    for (size_t i = lane; i < K; i += 32) ss += ((double)v(i) - mu) * ((double)v(i) - mu);
    ss = qtk_warp_sum(ss);
    *mean = (float)mu;
    *sd = (float)sqrt(ss / (double)(K > 1 ? K - 1 : 1)); // torch.std: unbiased
}

struct row_of {
    const float *p;
    __device__ float operator()(size_t i) const { return p[i]; }
};

__global__ void k_bias_correct(const float *__restrict__ W, float *Wq, size_t O, size_t K) {
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= O) return;
    const float *w = W + r * K;
    float *q = Wq + r * K;
    float mu_o, sd_o, mu_q, sd_q;
    row_mean_std(row_of{w}, K, lane, &mu_o, &sd_o);
    row_mean_std(row_of{q}, K, lane, &mu_q, &sd_q);
    float v = sd_o / (sd_q + 1e-8f);
    for (size_t i = lane; i < K; i += 32) {
        float t = q[i] - mu_q;
        t = t * v;
        t = t + mu_q;
        t = t - mu_q;
        q[i] = t + mu_o;
    }
}

extern "C" qtk_status qtk_bias_correct_cuda(const float *d_W, float *d_Wq, size_t O, size_t K) {
    if (O == 0 || K == 0) return QTK_OK;
    k_bias_correct<<<(unsigned)((O + 7) / 8), 256>>>(d_W, d_Wq, O, K);
    QTK_CUDA_TRY(cudaGetLastError());
    return QTK_OK;
}

// --- qtk_weight_affine's twin: one warp per output row ------------------------------

// the grid point of fake quantization (fakequant.h), NaN: lo
__device__ __forceinline__ int grid_point(float w, float s, float z, int lo, int hi, int torch) {
    return (int)qtk_fq_grid(w, s, z, (float)lo, (float)hi, torch);
}

struct fq_of {
    const float *w;
    float s, z;
    int lo, hi, torch;
    __device__ float operator()(size_t i) const { return ((float)grid_point(w[i], s, z, lo, hi, torch) - z) * s; }
};

__global__ void k_weight_affine(const float *__restrict__ W, size_t O, size_t K, const float *__restrict__ scale,
                                const float *__restrict__ zero, int lo, int hi, int torch, int bias_corr, int8_t *codes,
                                size_t ldc, double *alpha, double *gamma, int32_t *bsum) {
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= O) return;
    const float *w = W + r * K;
    const float s = scale[r], z = zero[r];
    const int off = hi > 127 ? 128 : 0;
    int sum = 0;
    for (size_t i = lane; i < K; i += 32) {
        int c = grid_point(w[i], s, z, lo, hi, torch) - off;
        codes[r * ldc + i] = (int8_t)c;
        sum += c;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    double a = s, g = (double)s * ((double)off - z);
    if (bias_corr) {
        float mu_o, sd_o, mu_q, sd_q;
        row_mean_std(row_of{w}, K, lane, &mu_o, &sd_o);
        row_mean_std(fq_of{w, s, z, lo, hi, torch}, K, lane, &mu_q, &sd_q);
        float v = sd_o / (sd_q + 1e-8f);
        a = (double)v * s;
        g = (double)mu_o - (double)v * mu_q + a * ((double)off - z);
    }
    if (lane == 0) {
        bsum[r] = sum;
        alpha[r] = a;
        gamma[r] = g;
    }
}

extern "C" qtk_status qtk_weight_affine_cuda(const float *d_W, size_t O, size_t K, const float *d_scale,
                                             const float *d_zero, int lo, int hi, qtk_fq_formula f, int bias_corr,
                                             int8_t *d_codes, size_t ldc, double *d_alpha, double *d_gamma,
                                             int32_t *d_bsum) {
    const int off = hi > 127 ? 128 : 0;
    if (lo > hi || lo - off < -128 || hi - off > 127)
        return qtk_fail(QTK_ERR_ARG, "weight codes in [%d, %d] do not fit int8", lo, hi);
    if (ldc < K) return qtk_fail(QTK_ERR_ARG, "weight codes: row stride %zu < %zu", ldc, K);
    if (O == 0 || K == 0) return QTK_OK;
    k_weight_affine<<<(unsigned)((O + 7) / 8), 256>>>(d_W, O, K, d_scale, d_zero, lo, hi, f == QTK_FQ_TORCH, bias_corr,
                                                      d_codes, ldc, d_alpha, d_gamma, d_bsum);
    QTK_CUDA_TRY(cudaGetLastError());
    return QTK_OK;
}
