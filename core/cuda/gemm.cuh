// The GEMM module's context as the GPU models embed it (the C API is gemm.h), and the weight loads of
// GEMV-like kernels. C++ only: the handles are CUDA types.
#ifndef QTK_CUDA_GEMM_CUH
#define QTK_CUDA_GEMM_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "gemm.h"

#define QTK_GEMM_MAX_PLANS 64

typedef enum { QTK_GEMM_PLAN_F32 = 0, QTK_GEMM_PLAN_INT8 = 1 } qtk_gemm_plan_kind;

// One cuBLASLt plan: D (m x n, column-major) = A^T-view B for the transposed weight, with flags.
typedef struct {
    int m, n, k, bias, acc, ok;
    qtk_gemm_plan_kind kind;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} qtk_gemm_plan;

struct qtk_gemm {
    cublasHandle_t h;
    cublasLtHandle_t lt;
    cudaStream_t st;             // borrowed from the model
    void *ws;                    // cuBLASLt workspace (and cuBLAS's where init said so)
    size_t ws_bytes;
    cublasComputeType_t compute; // FP32 plans: exact FP32, pedantic or TF32
    qtk_gemm_plan plans[QTK_GEMM_MAX_PLANS];
    int n_plans;
};

// qtk_gemm_create / _destroy for a context the caller holds (as gemm.h describes them).
qtk_status qtk_gemm_init(qtk_gemm *g, cudaStream_t st, int tf32, size_t ws_bytes, int cublas_ws);
void qtk_gemm_free(qtk_gemm *g); // safe on a zeroed or half-made context

// Weight loads of the GEMV and of kernels with a GEMV inside (float32 or fp16 weights, read as float32):
// 8 at a time (16-byte aligned), one, and the input as the fp16 path sees it (rounded to fp16 for fp16
// weights)
template <typename W> struct qtk_wvec;
template <> struct qtk_wvec<float> { // 8 float32 weights = two 16-byte loads
    static __device__ __forceinline__ void load(const float *p, float *o) {
        float4 a = __ldg((const float4 *)p), b = __ldg((const float4 *)p + 1);
        o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w, o[4] = b.x, o[5] = b.y, o[6] = b.z, o[7] = b.w;
    }
    static __device__ __forceinline__ float one(const float *p) { return __ldg(p); }
    static __device__ __forceinline__ float in(float x) { return x; }
};
template <> struct qtk_wvec<__half> { // 8 fp16 weights = one 16-byte load
    static __device__ __forceinline__ void load(const __half *p, float *o) {
        uint4 v = __ldg((const uint4 *)p);
        const __half2 *h = (const __half2 *)&v;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __half22float2(h[i]);
            o[2 * i] = f.x, o[2 * i + 1] = f.y;
        }
    }
    static __device__ __forceinline__ float one(const __half *p) { return __half2float(p[0]); }
    static __device__ __forceinline__ float in(float x) { return __half2float(__float2half_rn(x)); }
};

#endif
