// CUDA twins of core/fakequant.c. Built with --fmad=false and IEEE division
// (nvcc's default -prec-div=true), so every element equals the CPU scalar
// reference qtk_fake_quant_scalar bit for bit.
#include <stdlib.h>
#include <string.h>

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

extern "C" qtk_status qtk_fake_quant_cuda(const qtk_qparams *p, const float *d_x, float *d_y, int ndim,
                                         const int64_t *shape) {
    qtk_qlayout L;
    QTK_TRY(qtk_qlayout_make(p, ndim, shape, &L));
    if (p->bits == QTK_BITS_OFF) {
        if (d_y != d_x && L.numel) QTK_CUDA_TRY(cudaMemcpy(d_y, d_x, L.numel * sizeof(float), cudaMemcpyDeviceToDevice));
        return QTK_OK;
    }
    int lo, hi;
    QTK_TRY(qtk_qrange(p->bits, p->is_signed, &lo, &hi));
    if (p->gran == QTK_PER_TENSOR)
        return qtk_fake_quant_per_tensor_cuda(d_x, d_y, L.numel, p->scale[0], p->zero[0], lo, hi, p->formula);
    // the pairs on the device: as they are, or spelled out per channel for an index map
    const size_t np = p->gran == QTK_PER_INDEX ? L.len : p->n;
    float *h = (float *)malloc(2 * np * sizeof(float)), *d = NULL;
    if (!h) return qtk_fail(QTK_ERR_NOMEM, "fake quantization: %zu parameters: out of memory", np);
    if (p->gran == QTK_PER_INDEX) qtk_qparams_expand_index(p, h, h + np);
    else memcpy(h, p->scale, np * sizeof(float)), memcpy(h + np, p->zero, np * sizeof(float));
    cudaError_t e = cudaMalloc((void **)&d, 2 * np * sizeof(float));
    if (e == cudaSuccess) e = cudaMemcpy(d, h, 2 * np * sizeof(float), cudaMemcpyHostToDevice);
    free(h);
    qtk_status st = e == cudaSuccess ? QTK_OK : qtk_fail(QTK_ERR_CUDA, "fake quantization: %s", cudaGetErrorString(e));
    if (st == QTK_OK)
        st = p->gran == QTK_PER_GROUP
                 ? qtk_fake_quant_per_group_cuda(d_x, d_y, L.outer, L.len, L.inner, L.group, d, d + np, lo, hi, p->formula)
                 : qtk_fake_quant_per_channel_cuda(d_x, d_y, L.outer, L.len, L.inner, d, d + np, lo, hi, p->formula);
    if (st == QTK_OK && (e = cudaDeviceSynchronize()) != cudaSuccess)
        st = qtk_fail(QTK_ERR_CUDA, "fake quantization: %s", cudaGetErrorString(e));
    cudaFree(d);
    return st;
}
