// Quamba's int8 GPU kernels (quamba_ops.cu), shared by the model (quamba.cu) and the backend test's entries: the
// conv, the selective scan, the fused Hadamard + quantize and the decode GEMV, each launched on a stream with its
// saturated codes counted into a device counter. The elementwise steps are ssm/quamba_kernels.h's expressions.
#ifndef QTK_QUAMBA_OPS_CUH
#define QTK_QUAMBA_OPS_CUH

#include "../../core/cuda/common.cuh"
#include "../quamba_internal.h"

typedef unsigned long long u64;

// a thread's saturation count into the layer's counter (rarely nonzero: one atomic per thread that clipped)
__device__ __forceinline__ void add_sat(u64 *sat, unsigned n) {
    if (n && sat) atomicAdd(sat, (u64)n);
}

// 2-D grids: blockIdx.x a row (< 2^31), blockIdx.y and the threads its columns (no 64-bit division)
static inline dim3 grid_rows(size_t rows, int cols, int threads) {
    const int t = (cols + threads - 1) / threads;
    return dim3((unsigned)rows, (unsigned)(t < 65535 ? t : 65535));
}

// dt_proj fused into a decode step's scan (dt.w != NULL): each channel's lanes take its dot product of the R
// dt codes of x_proj's output with its int8 weight row (dp4a, integer sums: exact in any order), and the
// GEMV's epilogue gives the same dt code the separate projection would
typedef struct {
    const int8_t *w;
    float s_w, r, a;
    int e;
    u64 *sat;
} quamba_dt_fuse;

// int8 conv1d + SiLU (prefill: a thread per (token, channel), then the states; decode: a thread per channel)
qtk_status qb_conv_q8(cudaStream_t st, const quamba_conv_args *a, u64 *sat);
// the selective scan; dt (may be NULL) fuses dt_proj into a decode step (L = 1, N <= 32)
qtk_status qb_scan_q8(cudaStream_t st, const quamba_scan_args *a, const quamba_dt_fuse *dt);
// the decode GEMV of up to 8 rows: int8 codes q (epilogue e, quamba_internal.h) or h += out_proj's fp16 output;
// cv (may be NULL): the conv step fused into in_proj's epilogue, its saturation to csat
qtk_status qb_gemv(cudaStream_t st, const int8_t *x, int ldx, const int8_t *W, int rows, int N, int K, float s_w, float s_in,
                   float s_out, int e, int8_t *q, float *h, u64 *sat, const quamba_conv_args *cv, u64 *csat);
// k_had_q8's shared memory for rows of E (set once, outside any graph capture)
qtk_status qb_had_smem(int E);
// y (rows, E) through the Hadamard (base matrix m x m as sign masks; had 0: none), q = clamp(roundf(.. mu))
qtk_status qb_had_q8(cudaStream_t st, const float *y, size_t rows, int E, size_t m, const unsigned long long *mask, int had,
                     float s, int8_t *q, u64 *sat);
// a zeroed device counter; its value to the host (the device synchronized), the counter freed
qtk_status qb_sat_alloc(u64 **d);
qtk_status qb_sat_to_host(u64 *d, uint64_t *out);

#endif
