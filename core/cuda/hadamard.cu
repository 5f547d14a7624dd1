// CUDA twin of qtk_hadamard_rows (hadamard.c): one block per row in shared
// memory, the CPU's butterflies and base-matrix mixing in the CPU's order for
// every element, so the result is bit-identical.
#include <math.h>

#include "../hadamard.h"
#include "cuda_check.h"
#include "qtk_cuda.h"

__global__ void k_hadamard(float *x, size_t n, size_t m, const signed char *__restrict__ base, float norm) {
    extern __shared__ float sh[];
    float *v = sh, *t = sh + n;
    float *row = x + (size_t)blockIdx.x * n;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) v[i] = row[i];
    __syncthreads();
    size_t P = n / m;
    // Sylvester butterflies within each of the m segments of length P
    for (size_t h = 1; h < P; h *= 2) {
        for (size_t p = threadIdx.x; p < n / 2; p += blockDim.x) {
            size_t seg = p / (P / 2), k = p % (P / 2);
            size_t i = seg * P + (k / h) * 2 * h + k % h;
            float u = v[i], w = v[i + h];
            v[i] = u + w;
            v[i + h] = u - w;
        }
        __syncthreads();
    }
    if (m > 1) {
        // y[a*P + r] = +-t[r] +- t[P + r] ... in the order b = 0..m-1, as the CPU
        for (size_t e = threadIdx.x; e < n; e += blockDim.x) {
            size_t a = e / P, r = e % P;
            float o = base[a * m] > 0 ? v[r] : -v[r];
            for (size_t b = 1; b < m; b++) o = base[a * m + b] > 0 ? o + v[b * P + r] : o - v[b * P + r];
            t[e] = o;
        }
        __syncthreads();
        v = t;
    }
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
