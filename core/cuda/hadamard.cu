// CUDA twin of qtk_hadamard_rows (hadamard.c): one block per row in shared
// memory (hadamard.cuh), so the result is bit-identical.
#include <math.h>

#include "../hadamard.h"
#include "cuda_check.h"
#include "hadamard.cuh"
#include "qtk_cuda.h"

__global__ void k_hadamard(float *x, size_t n, size_t m, const signed char *__restrict__ base, float norm) {
    extern __shared__ float sh[];
    float *v = sh, *t = sh + n;
    float *row = x + (size_t)blockIdx.x * n;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) v[i] = row[i];
    __syncthreads();
    v = qtk_had_block(v, t, n, m, base);
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) row[i] = v[i] * norm;
}

extern "C" qtk_status qtk_hadamard_rows_cuda(float *d_x, size_t rows, size_t n) {
    size_t m;
    signed char base[40 * 40];
    QTK_TRY(qtk_hadamard_base(n, &m, base));
    size_t smem = 2 * n * sizeof(float);
    if (smem > 227 * 1024) return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU Hadamard: rows of %zu are too long (at most 29056)", n);
    if (rows == 0) return QTK_OK;
    signed char *d_base = NULL;
    QTK_CUDA_TRY(cudaMalloc((void **)&d_base, m * m));
    cudaError_t e = cudaMemcpy(d_base, base, m * m, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && smem > 48 * 1024)
        e = cudaFuncSetAttribute(k_hadamard, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    float norm = (float)(1.0 / sqrt((double)n));
    for (size_t r = 0; e == cudaSuccess && r < rows; r += 65535) {
        unsigned nb = (unsigned)(rows - r < 65535 ? rows - r : 65535);
        k_hadamard<<<nb, 256, smem>>>(d_x + r * n, n, m, d_base, norm);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    cudaFree(d_base);
    QTK_CUDA_TRY(e);
    return QTK_OK;
}
