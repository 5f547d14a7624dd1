// CUDA twins of the observers' heavy parts (observer.h): per-channel min/max
// and the fake-quant error sums OMSE and PTF score their candidates with.
// Each square is a float32 product of a float32 difference, as on the CPU;
// the sums are double, so only their order differs from the CPU's.
#include <math.h>
#include <stdlib.h>

#include "common.cuh"
#include "qtk_cuda.h"

// partial min/max: thread (tx, ty) of block (bx, by) covers channel bx*32+tx and rows by*8+ty, +R, ...
#define MM_ROWS 512 // row partials per channel
__global__ void k_minmax_partial(const float *__restrict__ x, size_t outer, size_t C, size_t inner, float *pmn, float *pmx) {
    size_t c = blockIdx.x * 32 + threadIdx.x;
    unsigned r0 = blockIdx.y * 8 + threadIdx.y;
    if (c >= C) return;
    float a = INFINITY, b = -INFINITY;
    for (size_t o = r0; o < outer; o += MM_ROWS)
        for (size_t k = 0; k < inner; k++) {
            float v = x[(o * C + c) * inner + k];
            a = v < a ? v : a; // NaN is skipped, as the CPU's comparison does
            b = v > b ? v : b;
        }
    pmn[(size_t)r0 * C + c] = a;
    pmx[(size_t)r0 * C + c] = b;
}

// per-tensor (C = 1, inner = n): block partials over a grid-stride loop
__global__ void k_minmax_flat(const float *__restrict__ x, size_t n, float *pmn, float *pmx) {
    __shared__ float sa[256], sb[256];
    float a = INFINITY, b = -INFINITY;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i];
        a = v < a ? v : a;
        b = v > b ? v : b;
    }
    sa[threadIdx.x] = a;
    sb[threadIdx.x] = b;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            float a2 = sa[threadIdx.x + s], b2 = sb[threadIdx.x + s];
            sa[threadIdx.x] = a2 < sa[threadIdx.x] ? a2 : sa[threadIdx.x];
            sb[threadIdx.x] = b2 > sb[threadIdx.x] ? b2 : sb[threadIdx.x];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        pmn[blockIdx.x] = sa[0];
        pmx[blockIdx.x] = sb[0];
    }
}

extern "C" qtk_status qtk_channel_minmax_cuda(const float *d_x, size_t outer, size_t C, size_t inner, float *mn, float *mx) {
    if (outer == 0 || C == 0 || inner == 0) return qtk_fail(QTK_ERR_ARG, "min/max of an empty tensor");
    size_t parts = C == 1 ? 1024 : (size_t)MM_ROWS * C;
    float *d = NULL;
    QTK_CUDA_TRY(cudaMalloc((void **)&d, 2 * parts * sizeof(float)));
    if (C == 1) k_minmax_flat<<<1024, 256>>>(d_x, outer * inner, d, d + parts);
    else {
        dim3 grid((unsigned)((C + 31) / 32), MM_ROWS / 8), block(32, 8);
        k_minmax_partial<<<grid, block>>>(d_x, outer, C, inner, d, d + parts);
    }
    cudaError_t e = cudaGetLastError();
    float *h = e == cudaSuccess ? (float *)malloc(2 * parts * sizeof(float)) : NULL;
    if (e == cudaSuccess && !h) e = cudaErrorMemoryAllocation;
    if (e == cudaSuccess) e = cudaMemcpy(h, d, 2 * parts * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(d);
    if (e != cudaSuccess) {
        free(h);
        QTK_CUDA_TRY(e);
    }
    size_t rows = C == 1 ? parts : MM_ROWS;
    for (size_t c = 0; c < C; c++) {
        float a = INFINITY, b = -INFINITY;
        for (size_t r = 0; r < rows; r++) {
            float va = h[r * C + c], vb = h[parts + r * C + c];
            a = va < a ? va : a;
            b = vb > b ? vb : b;
        }
        mn[c] = a;
        mx[c] = b;
    }
    free(h);
    return QTK_OK;
}

// fold partial rows (rows x C) into the running min/max (first: replace)
__global__ void k_minmax_fold(const float *__restrict__ pmn, const float *__restrict__ pmx, size_t rows, size_t C,
                              float *mn, float *mx, int first) {
    size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    float a = INFINITY, b = -INFINITY;
    for (size_t r = 0; r < rows; r++) {
        float va = pmn[r * C + c], vb = pmx[r * C + c];
        a = va < a ? va : a;
        b = vb > b ? vb : b;
    }
    mn[c] = first ? a : fminf(mn[c], a);
    mx[c] = first ? b : fmaxf(mx[c], b);
}

extern "C" size_t qtk_minmax_scratch(size_t C) { return C == 1 ? 1024 : (size_t)MM_ROWS * C; }

extern "C" qtk_status qtk_channel_minmax_fold_cuda(const float *d_x, size_t outer, size_t C, size_t inner, float *d_mn,
                                                   float *d_mx, int first, float *d_scratch, void *stream) {
    if (outer == 0 || C == 0 || inner == 0) return qtk_fail(QTK_ERR_ARG, "min/max of an empty tensor");
    cudaStream_t st = (cudaStream_t)stream;
    size_t parts = qtk_minmax_scratch(C);
    float *pmn = d_scratch, *pmx = d_scratch + parts;
    if (C == 1) k_minmax_flat<<<1024, 256, 0, st>>>(d_x, outer * inner, pmn, pmx);
    else {
        dim3 grid((unsigned)((C + 31) / 32), MM_ROWS / 8), block(32, 8);
        k_minmax_partial<<<grid, block, 0, st>>>(d_x, outer, C, inner, pmn, pmx);
    }
    k_minmax_fold<<<(unsigned)((C + 255) / 256), 256, 0, st>>>(pmn, pmx, C == 1 ? parts : MM_ROWS, C, d_mn, d_mx, first);
    QTK_CUDA_TRY(cudaGetLastError());
    return QTK_OK;
}

// partial sums of squared fake-quant errors: grid.y = candidate, block partials over a grid-stride loop
// SSE_CPT candidates per thread (blockIdx.y: candidates SSE_CPT * y ..), so each element is read once
// per SSE_CPT candidates; double sums per candidate, block partials to part[candidate * gridDim.x + bx]
#define SSE_CPT 8
__global__ void k_sse_multi(const float *__restrict__ x, size_t n, const float *__restrict__ s, const float *__restrict__ z,
                            int k, float lo, float hi, double *part) {
    __shared__ double sh[SSE_CPT][256];
    const int j0 = blockIdx.y * SSE_CPT, nj = k - j0 < SSE_CPT ? k - j0 : SSE_CPT;
    float sj[SSE_CPT], zj[SSE_CPT];
    double acc[SSE_CPT];
#pragma unroll
    for (int j = 0; j < SSE_CPT; j++) {
        sj[j] = j < nj ? s[j0 + j] : 1.0f;
        zj[j] = j < nj ? z[j0 + j] : 0.0f;
        acc[j] = 0;
    }
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float v = x[i];
#pragma unroll
        for (int j = 0; j < SSE_CPT; j++) {
            float d = v - qtk_fq_elem(v, sj[j], zj[j], lo, hi, 0);
            acc[j] += (double)(d * d);
        }
    }
#pragma unroll
    for (int j = 0; j < SSE_CPT; j++) sh[j][threadIdx.x] = acc[j];
    __syncthreads();
    for (int t = 128; t > 0; t >>= 1) {
        if ((int)threadIdx.x < t)
#pragma unroll
            for (int j = 0; j < SSE_CPT; j++) sh[j][threadIdx.x] += sh[j][threadIdx.x + t];
        __syncthreads();
    }
    if ((int)threadIdx.x < nj) part[(size_t)(j0 + threadIdx.x) * gridDim.x + blockIdx.x] = sh[threadIdx.x][0];
}

extern "C" qtk_status qtk_fake_quant_sse_multi_cuda(const float *d_x, size_t n, const float *s, const float *z, int k,
                                                    int lo, int hi, double *sse) {
    if (k < 1 || n == 0) return qtk_fail(QTK_ERR_ARG, "fake-quant error sums: %d candidates over %zu values", k, n);
    const unsigned nb = 256;
    float *d_sz = NULL;
    double *d_part = NULL;
    QTK_CUDA_TRY(cudaMalloc((void **)&d_sz, 2 * (size_t)k * sizeof(float)));
    cudaError_t e = cudaMalloc((void **)&d_part, (size_t)k * nb * sizeof(double));
    if (e == cudaSuccess) e = cudaMemcpy(d_sz, s, (size_t)k * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(d_sz + k, z, (size_t)k * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess) {
        k_sse_multi<<<dim3(nb, (unsigned)((k + SSE_CPT - 1) / SSE_CPT)), 256>>>(d_x, n, d_sz, d_sz + k, k, (float)lo, (float)hi,
                                                                           d_part);
        e = cudaGetLastError();
    }
    double *h = e == cudaSuccess ? (double *)malloc((size_t)k * nb * sizeof(double)) : NULL;
    if (e == cudaSuccess && !h) e = cudaErrorMemoryAllocation;
    if (e == cudaSuccess) e = cudaMemcpy(h, d_part, (size_t)k * nb * sizeof(double), cudaMemcpyDeviceToHost);
    cudaFree(d_sz);
    cudaFree(d_part);
    if (e != cudaSuccess) {
        free(h);
        QTK_CUDA_TRY(e);
    }
    for (int j = 0; j < k; j++) {
        double t = 0;
        for (unsigned b = 0; b < nb; b++) t += h[(size_t)j * nb + b];
        sse[j] = t;
    }
    free(h);
    return QTK_OK;
}

// PTF: per channel and candidate, over the rows; thread (tx, ty): channel bx*32+tx, rows by*8+ty, +R, ...
__global__ void k_sse_channels(const float *__restrict__ x, size_t outer, size_t C, const float *__restrict__ s, int k,
                               float z, float lo, float hi, double *part) {
    size_t c = blockIdx.x * 32 + threadIdx.x;
    unsigned r0 = blockIdx.y * 8 + threadIdx.y;
    if (c >= C) return;
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t o = r0; o < outer; o += MM_ROWS) {
        float v = x[o * C + c];
        for (int j = 0; j < k; j++) {
            float d = v - qtk_fq_elem(v, s[j], z, lo, hi, 0);
            acc[j] += (double)(d * d);
        }
    }
    for (int j = 0; j < k; j++) part[((size_t)r0 * C + c) * k + j] = acc[j];
}

extern "C" qtk_status qtk_fake_quant_sse_channels_cuda(const float *d_x, size_t outer, size_t C, const float *s, int k,
                                                       float z, int lo, int hi, double *acc) {
    if (k < 1 || k > 8 || outer == 0 || C == 0)
        return qtk_fail(QTK_ERR_ARG, "per-channel error sums: %d candidates (1..8) over (%zu, %zu)", k, outer, C);
    size_t parts = (size_t)MM_ROWS * C * k;
    float *d_s = NULL;
    double *d_part = NULL;
    QTK_CUDA_TRY(cudaMalloc((void **)&d_s, (size_t)k * sizeof(float)));
    cudaError_t e = cudaMalloc((void **)&d_part, parts * sizeof(double));
    if (e == cudaSuccess) e = cudaMemcpy(d_s, s, (size_t)k * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess) {
        dim3 grid((unsigned)((C + 31) / 32), MM_ROWS / 8), block(32, 8);
        k_sse_channels<<<grid, block>>>(d_x, outer, C, d_s, k, z, (float)lo, (float)hi, d_part);
        e = cudaGetLastError();
    }
    double *h = e == cudaSuccess ? (double *)malloc(parts * sizeof(double)) : NULL;
    if (e == cudaSuccess && !h) e = cudaErrorMemoryAllocation;
    if (e == cudaSuccess) e = cudaMemcpy(h, d_part, parts * sizeof(double), cudaMemcpyDeviceToHost);
    cudaFree(d_s);
    cudaFree(d_part);
    if (e != cudaSuccess) {
        free(h);
        QTK_CUDA_TRY(e);
    }
    for (size_t i = 0; i < C * (size_t)k; i++) acc[i] = 0;
    for (size_t r = 0; r < MM_ROWS; r++)
        for (size_t i = 0; i < C * (size_t)k; i++) acc[i] += h[r * C * k + i];
    free(h);
    return QTK_OK;
}
