// CUDA twin of qtk_bias_correct (biascorr.c): one warp per output row, the
// row statistics in double (rounded to float32 once, as the CPU), the
// elementwise steps in the CPU's float32 order.
#include <math.h>

#include "cuda_check.h"
#include "qtk_cuda.h"

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ void row_mean_std(const float *v, size_t K, int lane, float *mean, float *sd) {
    double s = 0;
    for (size_t i = lane; i < K; i += 32) s += v[i];
    double mu = warp_sum_d(s) / (double)K, ss = 0;
    for (size_t i = lane; i < K; i += 32) ss += ((double)v[i] - mu) * ((double)v[i] - mu);
    ss = warp_sum_d(ss);
    *mean = (float)mu;
    *sd = (float)sqrt(ss / (double)(K > 1 ? K - 1 : 1)); // torch.std: unbiased
}

__global__ void k_bias_correct(const float *__restrict__ W, float *Wq, size_t O, size_t K) {
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= O) return;
    const float *w = W + r * K;
    float *q = Wq + r * K;
    float mu_o, sd_o, mu_q, sd_q;
    row_mean_std(w, K, lane, &mu_o, &sd_o);
    row_mean_std(q, K, lane, &mu_q, &sd_q);
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
