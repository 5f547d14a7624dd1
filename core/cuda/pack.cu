// CUDA twins of pack.c (real quantization, int4 nibble packing) and of the
// percentile observer's torch.quantile (order statistics by a CUB radix sort).
#include <cub/device/device_radix_sort.cuh>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../pack.h"
#include "common.cuh"
#include "qtk_cuda.h"

// two elements per thread, so a packed byte is written by one thread
__global__ void k_quantize(const float *__restrict__ x, size_t n, const float *__restrict__ s, const float *__restrict__ z,
                           qtk_qlayout L, float lo, float hi, int torch, int dt, void *codes) {
    for (size_t e2 = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e2 < (n + 1) / 2; e2 += (size_t)gridDim.x * blockDim.x) {
        unsigned char byte = 0;
        for (size_t e = 2 * e2; e < 2 * e2 + 2 && e < n; e++) {
            size_t k = qtk_qlayout_index(&L, e);
            int qi = (int)qtk_fq_grid(x[e], s[k], z[k], lo, hi, torch);
            if (dt == QTK_I8) ((signed char *)codes)[e] = (signed char)qi;
            else if (dt == QTK_U8) ((unsigned char *)codes)[e] = (unsigned char)qi;
            else byte |= (unsigned char)((qi & 0x0f) << ((e & 1) * 4));
        }
        if (dt == QTK_I4 || dt == QTK_U4) ((unsigned char *)codes)[e2] = byte;
    }
}

__global__ void k_dequantize(const void *codes, size_t n, const float *__restrict__ s, const float *__restrict__ z,
                             qtk_qlayout L, int dt, float *y) {
    const unsigned char *b = (const unsigned char *)codes;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        int q;
        if (dt == QTK_I8) q = ((const signed char *)codes)[e];
        else if (dt == QTK_U8) q = b[e];
        else {
            int nib = (b[e / 2] >> ((e & 1) * 4)) & 0x0f;
            q = dt == QTK_I4 && nib >= 8 ? nib - 16 : nib;
        }
        size_t k = qtk_qlayout_index(&L, e);
        y[e] = ((float)q - z[k]) * s[k];
    }
}

// p's scales and zero points (and index map) on the device, in one allocation, and the layout pointing at
// the device map
static qtk_status upload_params(const qtk_qparams *p, int ndim, const int64_t *shape, qtk_dtype dt, qtk_qlayout *L,
                                float **d_sz) {
    QTK_TRY(qtk_qlayout_make(p, ndim, shape, L));
    QTK_TRY(qtk_code_dtype_check(p, dt));
    const size_t ni = p->gran == QTK_PER_INDEX ? p->index_len : 0;
    QTK_CUDA_TRY(cudaMalloc((void **)d_sz, 2 * p->n * sizeof(float) + ni * sizeof(int32_t)));
    cudaError_t e = cudaMemcpy(*d_sz, p->scale, p->n * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(*d_sz + p->n, p->zero, p->n * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess && ni) {
        L->index = (const int32_t *)(*d_sz + 2 * p->n);
        e = cudaMemcpy((void *)L->index, p->index, ni * sizeof(int32_t), cudaMemcpyHostToDevice);
    }
    if (e != cudaSuccess) cudaFree(*d_sz);
    QTK_CUDA_TRY(e);
    return QTK_OK;
}

extern "C" qtk_status qtk_quantize_cuda(const qtk_qparams *p, const float *d_x, int ndim, const int64_t *shape,
                                        qtk_dtype dt, void *d_codes) {
    qtk_qlayout L;
    float *d_sz;
    QTK_TRY(upload_params(p, ndim, shape, dt, &L, &d_sz));
    const size_t n = L.numel;
    int lo, hi;
    qtk_qrange(p->bits, p->is_signed, &lo, &hi);
    if (n) k_quantize<<<qtk_grid_for((n + 1) / 2, 256), 256>>>(d_x, n, d_sz, d_sz + p->n, L, (float)lo, (float)hi,
                                                   p->formula == QTK_FQ_TORCH, (int)dt, d_codes);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    cudaFree(d_sz);
    QTK_CUDA_TRY(e);
    return QTK_OK;
}

extern "C" qtk_status qtk_dequantize_cuda(const qtk_qparams *p, const void *d_codes, qtk_dtype dt, int ndim,
                                          const int64_t *shape, float *d_y) {
    qtk_qlayout L;
    float *d_sz;
    QTK_TRY(upload_params(p, ndim, shape, dt, &L, &d_sz));
    const size_t n = L.numel;
    if (n) k_dequantize<<<qtk_grid_for(n, 256), 256>>>(d_codes, n, d_sz, d_sz + p->n, L, (int)dt, d_y);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    cudaFree(d_sz);
    QTK_CUDA_TRY(e);
    return QTK_OK;
}

__global__ void k_pack4(const signed char *v, size_t n, unsigned char *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n + 1) / 2; i += (size_t)gridDim.x * blockDim.x)
        out[i] = (unsigned char)((v[2 * i] & 0x0f) | (2 * i + 1 < n ? (v[2 * i + 1] & 0x0f) << 4 : 0));
}

__global__ void k_unpack4(const unsigned char *b, size_t n, int sign, signed char *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int nib = (b[i / 2] >> ((i & 1) * 4)) & 0x0f;
        out[i] = (signed char)(sign && nib >= 8 ? nib - 16 : nib);
    }
}

extern "C" qtk_status qtk_pack_int4_cuda(const int8_t *d_vals, size_t n, uint8_t *d_packed) {
    if (n) k_pack4<<<qtk_grid_for((n + 1) / 2, 256), 256>>>((const signed char *)d_vals, n, d_packed);
    QTK_CUDA_TRY(cudaGetLastError());
    return QTK_OK;
}

extern "C" qtk_status qtk_unpack_i4_cuda(const uint8_t *d_packed, size_t n, int8_t *d_vals) {
    if (n) k_unpack4<<<qtk_grid_for(n, 256), 256>>>(d_packed, n, 1, (signed char *)d_vals);
    QTK_CUDA_TRY(cudaGetLastError());
    return QTK_OK;
}

extern "C" qtk_status qtk_unpack_u4_cuda(const uint8_t *d_packed, size_t n, uint8_t *d_vals) {
    if (n) k_unpack4<<<qtk_grid_for(n, 256), 256>>>(d_packed, n, 0, (signed char *)d_vals);
    QTK_CUDA_TRY(cudaGetLastError());
    return QTK_OK;
}

__global__ void k_copy_abs(const float *x, size_t n, int absolute, float *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = absolute ? fabsf(x[i]) : x[i];
}

extern "C" qtk_status qtk_quantiles_cuda(const float *d_x, size_t n, int absolute, const float *q, int k, float *out) {
    if (n == 0 || k < 1) return qtk_fail(QTK_ERR_ARG, "quantiles of %zu values at %d levels", n, k);
    if (n > 0x7fffffffu) return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU quantiles: %zu values (at most 2^31 - 1)", n);
    float *a = NULL, *b = NULL;
    void *tmp = NULL;
    size_t tmp_bytes = 0;
    QTK_CUDA_TRY(cudaMalloc((void **)&a, 2 * n * sizeof(float)));
    b = a + n;
    k_copy_abs<<<qtk_grid_for(n, 256), 256>>>(d_x, n, absolute, a);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cub::DeviceRadixSort::SortKeys(NULL, tmp_bytes, a, b, (int)n);
    if (e == cudaSuccess) e = cudaMalloc(&tmp, tmp_bytes);
    if (e == cudaSuccess) e = cub::DeviceRadixSort::SortKeys(tmp, tmp_bytes, a, b, (int)n);
    for (int j = 0; e == cudaSuccess && j < k; j++) {
        // as qtk_quantile_inplace: rank = q * (n - 1) in float32, then at::lerp of the two order statistics
        float rank = q[j] * (float)(n - 1);
        size_t below = (size_t)rank;
        if (below > n - 1) below = n - 1;
        float w = rank - (float)below, va, vb;
        e = cudaMemcpy(&va, b + below, sizeof va, cudaMemcpyDeviceToHost);
        vb = va;
        if (e == cudaSuccess && below + 1 < n) e = cudaMemcpy(&vb, b + below + 1, sizeof vb, cudaMemcpyDeviceToHost);
        out[j] = n == 1 ? va : (w < 0.5f ? va + w * (vb - va) : vb - (vb - va) * (1.0f - w));
    }
    cudaFree(tmp);
    cudaFree(a);
    QTK_CUDA_TRY(e);
    return QTK_OK;
}
