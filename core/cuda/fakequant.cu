// CUDA twins of core/fakequant.c. Built with --fmad=false and IEEE division
// (nvcc's default -prec-div=true), so every element equals the CPU scalar
// reference qtk_fake_quant_scalar bit for bit.
#include "common.cuh"
#include "qtk_cuda.h"

__global__ void fq_tensor_kernel(const float *__restrict__ x, float *y, size_t n, float s, float z,
                                 float lo, float hi, int torch) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = qtk_fq_elem(x[i], s, z, lo, hi, torch);
}

__global__ void fq_channel_kernel(const float *__restrict__ x, float *y, size_t n, size_t C, size_t inner,
                                  const float *__restrict__ s, const float *__restrict__ z, float lo, float hi,
                                  int torch) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t c = (i / inner) % C;
        y[i] = qtk_fq_elem(x[i], s[c], z[c], lo, hi, torch);
    }
}

__global__ void fq_group_kernel(const float *__restrict__ x, float *y, size_t n, size_t L, size_t inner, size_t g,
                                const float *__restrict__ s, const float *__restrict__ z, float lo, float hi,
                                int torch) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t in = i % inner, l = (i / inner) % L, o = i / (inner * L);
        size_t k = (o * (L / g) + l / g) * inner + in;
        y[i] = qtk_fq_elem(x[i], s[k], z[k], lo, hi, torch);
    }
}

extern "C" qtk_status qtk_fake_quant_per_tensor_cuda(const float *d_x, float *d_y, size_t n, float s, float z,
                                                     int lo, int hi, qtk_fq_formula f) {
    if (n == 0) return QTK_OK;
    QTK_LAUNCH(fq_tensor_kernel, qtk_grid_for(n, 256), 256, 0, 0, d_x, d_y, n, s, z, (float)lo, (float)hi,
               f == QTK_FQ_TORCH);
    return QTK_OK;
}

extern "C" qtk_status qtk_fake_quant_per_channel_cuda(const float *d_x, float *d_y, size_t outer, size_t C,
                                                      size_t inner, const float *d_s, const float *d_z, int lo,
                                                      int hi, qtk_fq_formula f) {
    size_t n = outer * C * inner;
    if (n == 0) return QTK_OK;
    QTK_LAUNCH(fq_channel_kernel, qtk_grid_for(n, 256), 256, 0, 0, d_x, d_y, n, C, inner, d_s, d_z, (float)lo,
               (float)hi, f == QTK_FQ_TORCH);
    return QTK_OK;
}

extern "C" qtk_status qtk_fake_quant_per_group_cuda(const float *d_x, float *d_y, size_t outer, size_t L,
                                                    size_t inner, size_t g, const float *d_s, const float *d_z,
                                                    int lo, int hi, qtk_fq_formula f) {
    size_t n = outer * L * inner;
    if (n == 0) return QTK_OK;
    if (g == 0 || L % g != 0)
        return qtk_fail(QTK_ERR_ARG, "group size %zu does not divide axis length %zu", g, L);
    QTK_LAUNCH(fq_group_kernel, qtk_grid_for(n, 256), 256, 0, 0, d_x, d_y, n, L, inner, g, d_s, d_z, (float)lo,
               (float)hi, f == QTK_FQ_TORCH);
    return QTK_OK;
}
