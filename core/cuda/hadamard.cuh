// The block-wide Hadamard transform of one row in shared memory, shared by k_hadamard (hadamard.cu) and the
// kernels that fuse a transform with what follows it (Quamba's Hadamard + quantize): the CPU's butterflies and
// base-matrix mixing (hadamard.c) in the CPU's order for every element, so the sums are bit-identical.
#ifndef QTK_CUDA_HADAMARD_CUH
#define QTK_CUDA_HADAMARD_CUH

#include <stddef.h>

// log2 of P, a power of two (the segment length n / m of every supported size)
__device__ __forceinline__ unsigned qtk_had_log2(size_t P) { return (unsigned)(__ffs((int)P) - 1); }

// Sylvester butterflies within each segment of P of the row v (n floats, shared memory, n < 2^31); ends
// synchronized. Indices in 32 bits with shifts and masks (P and h are powers of two): 64-bit divisions by a
// run-time divisor cost dozens of instructions each and made this loop the decode step's slowest kernel.
__device__ __forceinline__ void qtk_had_butterflies(float *v, size_t n, size_t P) {
    const unsigned half = (unsigned)(n / 2), lp = qtk_had_log2(P);
    for (unsigned lh = 0; lh < lp; lh++) {
        const unsigned h = 1u << lh;
        for (unsigned p = threadIdx.x; p < half; p += blockDim.x) {
            const unsigned seg = p >> (lp - 1), k = p & ((1u << (lp - 1)) - 1);
            const unsigned i = (seg << lp) + ((k >> lh) << (lh + 1)) + (k & (h - 1));
            const float u = v[i], w = v[i + h];
            v[i] = u + w;
            v[i + h] = u - w;
        }
        __syncthreads();
    }
}

// Output e of the base-matrix mixing after the butterflies: y[a*P + r] = +-v[r] +- v[P + r] ... in the order
// b = 0..m-1, as the CPU
__device__ __forceinline__ float qtk_had_mix(const float *v, size_t e, size_t P, size_t m, const signed char *__restrict__ base) {
    const unsigned lp = qtk_had_log2(P), a = (unsigned)e >> lp, r = (unsigned)e & ((1u << lp) - 1), mm = (unsigned)m;
    const signed char *row = base + a * mm;
    float o = row[0] > 0 ? v[r] : -v[r];
    for (unsigned b = 1; b < mm; b++) o = row[b] > 0 ? o + v[(b << lp) + r] : o - v[(b << lp) + r];
    return o;
}

// The base matrix's rows as sign masks for qtk_had_mix_mask (bit b of row a set where base[a][b] < 0; m <= 64)
static inline void qtk_had_masks(const signed char *base, size_t m, unsigned long long *mask) {
    for (size_t a = 0; a < m; a++) {
        mask[a] = 0;
        for (size_t b = 0; b < m; b++)
            if (base[a * m + b] < 0) mask[a] |= 1ull << b;
    }
}

// qtk_had_mix with the output's base row as a sign mask (row a = e / P of qtk_had_masks): the same additions
// in the same order, no loads of the matrix
__device__ __forceinline__ float qtk_had_mix_mask(const float *v, size_t e, size_t P, size_t m, const unsigned long long *mask) {
    const unsigned lp = qtk_had_log2(P), r = (unsigned)e & ((1u << lp) - 1), mm = (unsigned)m;
    const unsigned long long k = mask[(unsigned)e >> lp];
    float o = k & 1 ? -v[r] : v[r];
    for (unsigned b = 1; b < mm; b++) o = (k >> b) & 1 ? o - v[(b << lp) + r] : o + v[(b << lp) + r];
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
