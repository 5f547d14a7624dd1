// The block-wide Hadamard transform of one row in shared memory, shared by k_hadamard (hadamard.cu) and the
// kernels that fuse a transform with what follows it (Quamba's Hadamard + quantize): the CPU's butterflies and
// base-matrix mixing (hadamard.c) in the CPU's order for every element, so the sums are bit-identical.
#ifndef QTK_CUDA_HADAMARD_CUH
#define QTK_CUDA_HADAMARD_CUH

#include <stddef.h>

// Sylvester butterflies within each segment of P of the row v (n floats, shared memory); ends synchronized.
__device__ __forceinline__ void qtk_had_butterflies(float *v, size_t n, size_t P) {
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
}

// Output e of the base-matrix mixing after the butterflies: y[a*P + r] = +-v[r] +- v[P + r] ... in the order
// b = 0..m-1, as the CPU
__device__ __forceinline__ float qtk_had_mix(const float *v, size_t e, size_t P, size_t m, const signed char *__restrict__ base) {
    size_t a = e / P, r = e % P;
    float o = base[a * m] > 0 ? v[r] : -v[r];
    for (size_t b = 1; b < m; b++) o = base[a * m + b] > 0 ? o + v[b * P + r] : o - v[b * P + r];
    return o;
}

// v: the row (n floats) in shared memory, t: n more floats of scratch; m, base: qtk_hadamard_base's order and
// +-1 matrix. Returns where the unnormalized H_n v is (v or t), after a __syncthreads.
__device__ __forceinline__ float *qtk_had_block(float *v, float *t, size_t n, size_t m, const signed char *__restrict__ base) {
    const size_t P = n / m;
    qtk_had_butterflies(v, n, P);
    if (m == 1) return v;
    for (size_t e = threadIdx.x; e < n; e += blockDim.x) t[e] = qtk_had_mix(v, e, P, m, base);
    __syncthreads();
    return t;
}

#endif
