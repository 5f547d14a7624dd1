// The GEMM module (gemm.h, gemm.cuh): cuBLAS / cuBLASLt handles and the plan cache, the int8 GEMM on tensor cores,
// and the small-batch GEMV with the linear layer around it. Built with --fmad=false like the rest of the
// CUDA code; the GEMV's own multiply-adds are explicit __fmaf_rn (its documented order, see below).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"
#include "gemm.cuh"

// --- context -----------------------------------------------------------------------------------------

qtk_status qtk_gemm_init(qtk_gemm *g, cudaStream_t st, int tf32, size_t ws_bytes, int cublas_ws) {
    memset(g, 0, sizeof *g);
    g->st = st;
    QTK_CUBLAS_TRY(cublasCreate(&g->h));
    QTK_CUBLAS_TRY(cublasSetStream(g->h, st));
    // exact FP32 by default; NVIDIA_TF32_OVERRIDE=1 would turn the default math mode into TF32, the pedantic one never
    const char *ov = getenv("NVIDIA_TF32_OVERRIDE");
    cublasMath_t mm = tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : ov && strcmp(ov, "0") ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH;
    QTK_CUBLAS_TRY(cublasSetMathMode(g->h, mm));
    QTK_CUBLAS_TRY(cublasLtCreate(&g->lt));
    g->compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : mm == CUBLAS_PEDANTIC_MATH ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    g->ws_bytes = ws_bytes;
    QTK_CUDA_TRY(cudaMalloc(&g->ws, ws_bytes));
    if (cublas_ws) QTK_CUBLAS_TRY(cublasSetWorkspace(g->h, g->ws, ws_bytes));
    return QTK_OK;
}

void qtk_gemm_free(qtk_gemm *g) {
    for (int i = 0; i < g->n_plans; i++) {
        cublasLtMatmulDescDestroy(g->plans[i].op);
        if (g->plans[i].a) cublasLtMatrixLayoutDestroy(g->plans[i].a);
        if (g->plans[i].b) cublasLtMatrixLayoutDestroy(g->plans[i].b);
        if (g->plans[i].c) cublasLtMatrixLayoutDestroy(g->plans[i].c);
    }
    g->n_plans = 0;
    if (g->lt) cublasLtDestroy(g->lt);
    if (g->h) cublasDestroy(g->h);
    cudaFree(g->ws);
    g->lt = NULL, g->h = NULL, g->ws = NULL;
}

qtk_status qtk_gemm_create(qtk_gemm **out, void *stream, int tf32, size_t ws_bytes, int cublas_ws) {
    *out = NULL;
    qtk_gemm *g = (qtk_gemm *)calloc(1, sizeof *g);
    if (!g) return qtk_fail(QTK_ERR_NOMEM, "out of memory for a GEMM context");
    qtk_status st = qtk_gemm_init(g, (cudaStream_t)stream, tf32, ws_bytes, cublas_ws);
    if (st != QTK_OK) {
        qtk_gemm_destroy(g);
        return st;
    }
    *out = g;
    return QTK_OK;
}

void qtk_gemm_destroy(qtk_gemm *g) {
    if (!g) return;
    qtk_gemm_free(g);
    free(g);
}

// --- cuBLASLt plans ----------------------------------------------------------------------------------

// The plan for D (m x n, column-major) = W^T-view x: m = the weight's rows, n = the input's rows; with
// the bias epilogue and/or C = D accumulated (beta = 1). ok = 0: no algorithm. INT8: int8 codes in,
// int32 sums out (compute 32I), no epilogue. *out NULL when the cache is full.
static qtk_status plan_for(qtk_gemm *g, int m, int n, int k, int bias, int acc, qtk_gemm_plan_kind kind,
                           qtk_gemm_plan **out) {
    for (int i = 0; i < g->n_plans; i++) {
        qtk_gemm_plan *p = &g->plans[i];
        if (p->m == m && p->n == n && p->k == k && p->bias == bias && p->acc == acc && p->kind == kind) {
            *out = p;
            return QTK_OK;
        }
    }
    *out = NULL;
    if (g->n_plans == QTK_GEMM_MAX_PLANS) return QTK_OK;
    qtk_gemm_plan *p = &g->plans[g->n_plans];
    memset(p, 0, sizeof *p);
    p->m = m, p->n = n, p->k = k, p->bias = bias, p->acc = acc, p->kind = kind;
    const int int8 = kind == QTK_GEMM_PLAN_INT8;
    cudaDataType_t ab = int8 ? CUDA_R_8I : CUDA_R_32F, cd = int8 ? CUDA_R_32I : CUDA_R_32F;
    QTK_CUBLAS_TRY(cublasLtMatmulDescCreate(&p->op, int8 ? CUBLAS_COMPUTE_32I : g->compute, cd));
    g->n_plans++; // owns the descriptors from here on (qtk_gemm_free frees them)
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    QTK_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    QTK_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    QTK_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    QTK_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->a, ab, k, m, k));
    QTK_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->b, ab, k, n, k));
    QTK_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->c, cd, m, n, m));
    cublasLtMatmulPreference_t pref;
    QTK_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
    cublasStatus_t e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g->ws_bytes,
                                                            sizeof g->ws_bytes);
    cublasLtMatmulHeuristicResult_t r;
    int found = 0;
    if (e == CUBLAS_STATUS_SUCCESS)
        e = cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &r, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    p->ok = e == CUBLAS_STATUS_SUCCESS && found > 0;
    if (p->ok) p->algo = r.algo;
    *out = p;
    return QTK_OK;
}

// The bias is added in cuBLASLt's epilogue (one float32 rounding of acc + bias, as the CPU's separate add).
qtk_status qtk_gemm_lt(qtk_gemm *g, const float *x, const float *W, const float *bias, float *y, int rows, int N, int K,
                       int acc, int *bias_done) {
    const float one = 1.0f, zero = 0.0f;
    qtk_gemm_plan *p;
    QTK_TRY(plan_for(g, N, rows, K, bias != NULL, acc, QTK_GEMM_PLAN_F32, &p));
    if (p && p->ok) {
        if (bias) QTK_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        QTK_CUBLAS_TRY(cublasLtMatmul(g->lt, p->op, &one, W, p->a, x, p->b, acc ? &one : &zero, y, p->c, y, p->c, &p->algo,
                                      g->ws, g->ws_bytes, g->st));
        *bias_done = 1;
        return QTK_OK;
    }
    if (acc) return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU GEMM: no cuBLASLt algorithm for %dx%dx%d", N, rows, K);
    QTK_CUBLAS_TRY(cublasSgemm(g->h, CUBLAS_OP_T, CUBLAS_OP_N, N, rows, K, &one, W, K, x, K, &zero, y, N));
    *bias_done = 0;
    return QTK_OK;
}

// row-major C = A B is column-major C^T = B^T A^T
qtk_status qtk_gemm_nn(qtk_gemm *g, const float *A, const float *B, float *C, int M, int N, int K) {
    const float one = 1.0f, zero = 0.0f;
    QTK_CUBLAS_TRY(cublasSgemm(g->h, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, B, N, A, K, &zero, C, N));
    return QTK_OK;
}

int qtk_gemm_int8_ok(qtk_gemm *g, int rows, int N, int K) {
    qtk_gemm_plan *p;
    if (plan_for(g, N, rows, K, 0, 0, QTK_GEMM_PLAN_INT8, &p) != QTK_OK) return 0;
    return p && p->ok;
}

qtk_status qtk_gemm_int8(qtk_gemm *g, const int8_t *x, const int8_t *W, int32_t *y, int rows, int N, int K) {
    qtk_gemm_plan *p;
    QTK_TRY(plan_for(g, N, rows, K, 0, 0, QTK_GEMM_PLAN_INT8, &p));
    if (!p || !p->ok) return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU int8 GEMM: no cuBLASLt algorithm for %dx%dx%d", N, rows, K);
    const int32_t one = 1, zero = 0;
    QTK_CUBLAS_TRY(cublasLtMatmul(g->lt, p->op, &one, W, p->a, x, p->b, &zero, y, p->c, y, p->c, &p->algo, g->ws,
                                  g->ws_bytes, g->st));
    return QTK_OK;
}

// --- small-batch GEMV --------------------------------------------------------------------------------
// At one to eight rows a projection is a pass over its weights, and cuBLAS's GEMM kernels (plus the fp16
// conversion of the input and the bias and activation kernels around them) leave most of the bandwidth
// unused. Here `wpr` warps share one output row (splitting K; shared-memory reduction, so the sum order is
// fixed), each lane streaming 16-byte weight loads, the bias and softplus applied before the single store.

// blockDim 256 = 8 warps; wpr warps per output row (1, 2, 4, 8), 8 / wpr rows per block.
// vec: K % 8 == 0 and W, x, ldx aligned for 16-byte loads.
template <typename W, int NB, bool VEC>
__global__ void __launch_bounds__(256) k_gemv(const W *__restrict__ w, const float *__restrict__ x, int ldx,
                                              const float *__restrict__ bias, float *y, int ldy, int N, int K, int wpr,
                                              int act) {
    __shared__ float red[8][NB];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, part = warp % wpr;
    const int o = blockIdx.x * (8 / wpr) + warp / wpr;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; b++) acc[b] = 0.0f;
    if (o < N) {
        const W *wr = w + (size_t)o * K;
        if (VEC) {
#pragma unroll 4
            for (int k = (part * 32 + lane) * 8; k < K; k += wpr * 256) {
                float wf[8];
                qtk_wvec<W>::load(wr + k, wf);
#pragma unroll
                for (int b = 0; b < NB; b++) {
                    const float4 *xp = (const float4 *)(x + (size_t)b * ldx + k);
                    const float4 a = __ldg(xp), c = __ldg(xp + 1);
                    const float xv[8] = {a.x, a.y, a.z, a.w, c.x, c.y, c.z, c.w};
#pragma unroll
                    for (int i = 0; i < 8; i++) acc[b] = __fmaf_rn(wf[i], qtk_wvec<W>::in(xv[i]), acc[b]);
                }
            }
        } else {
            for (int k = part * 32 + lane; k < K; k += wpr * 32) {
                const float wf = qtk_wvec<W>::one(wr + k);
#pragma unroll
                for (int b = 0; b < NB; b++) acc[b] = __fmaf_rn(wf, qtk_wvec<W>::in(__ldg(x + (size_t)b * ldx + k)), acc[b]);
            }
        }
    }
#pragma unroll
    for (int b = 0; b < NB; b++) {
        float v = acc[b];
        for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
        if (lane == 0) red[warp][b] = v;
    }
    __syncthreads();
    if (o >= N || part != 0 || lane >= NB) return;
    float v = 0.0f;
    for (int i = 0; i < wpr; i++) v += red[warp + i][lane];
    if (bias) v += bias[o];
    if (act == 1) v = qtk_softplus(v);
    y[(size_t)lane * ldy + o] = v;
}

// The warps per row. A GEMV of one pass is as slow as its last wave of blocks: with `slots` warps resident
// on the GPU at once, N * wpr warp tasks run in ceil(N * wpr / slots) waves, so wpr is chosen for the
// fullest last wave (the fewest warps per row among equals), each warp keeping at least 256 weights.
static int warps_per_row(int N, int K, long slots) {
    int best = 1;
    double best_eff = 0;
    for (int wpr = 1; wpr <= 8; wpr *= 2) {
        if (wpr > 1 && K < wpr * 256) break;
        const double waves = (double)N * wpr / slots, eff = waves / ceil(waves);
        if (eff > best_eff + 0.02) best = wpr, best_eff = eff;
    }
    return best;
}

template <typename W, int NB>
static qtk_status gemv_launch(cudaStream_t st, const W *w, const float *x, int ldx, const float *b, float *y, int ldy,
                              int N, int K, int act) {
    const bool vec = K % 8 == 0 && ldx % 4 == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;
    static long slots[2]; // resident warps on this GPU, per variant (queried once)
    if (!slots[vec]) {
        int dev = 0, sms = 0, per_sm = 0;
        QTK_CUDA_TRY(cudaGetDevice(&dev));
        QTK_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        QTK_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &per_sm, vec ? (const void *)k_gemv<W, NB, true> : (const void *)k_gemv<W, NB, false>, 256, 0));
        slots[vec] = (long)sms * (per_sm > 0 ? per_sm : 1) * 8;
    }
    const int wpr = warps_per_row(N, K, slots[vec]);
    const unsigned blocks = (unsigned)((N + 8 / wpr - 1) / (8 / wpr));
    if (vec) k_gemv<W, NB, true><<<blocks, 256, 0, st>>>(w, x, ldx, b, y, ldy, N, K, wpr, act);
    else k_gemv<W, NB, false><<<blocks, 256, 0, st>>>(w, x, ldx, b, y, ldy, N, K, wpr, act);
    QTK_CUDA_TRY_LAUNCH("gemv");
    return QTK_OK;
}

template <typename W>
static qtk_status gemv_rows(cudaStream_t st, const W *w, const float *x, int ldx, const float *b, float *y, int ldy,
                            int rows, int N, int K, int act) {
    switch (rows) {
    case 1: return gemv_launch<W, 1>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 2: return gemv_launch<W, 2>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 3: return gemv_launch<W, 3>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 4: return gemv_launch<W, 4>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 5: return gemv_launch<W, 5>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 6: return gemv_launch<W, 6>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 7: return gemv_launch<W, 7>(st, w, x, ldx, b, y, ldy, N, K, act);
    case 8: return gemv_launch<W, 8>(st, w, x, ldx, b, y, ldy, N, K, act);
    default: return qtk_fail(QTK_ERR_ARG, "GEMV of %d rows (1..%d)", rows, QTK_GEMV_MAX_ROWS);
    }
}

qtk_status qtk_gemv(void *stream, const void *W, int w_half, const float *x, int ldx, const float *b, float *y, int ldy,
                    int rows, int N, int K, int act) {
    cudaStream_t st = (cudaStream_t)stream;
    if (w_half) return gemv_rows(st, (const __half *)W, x, ldx, b, y, ldy, rows, N, K, act);
    return gemv_rows(st, (const float *)W, x, ldx, b, y, ldy, rows, N, K, act);
}

// --- the linear layer --------------------------------------------------------------------------------

// xh (rows, K) = x (rows, K; row stride ld) in fp16
__global__ void k_to_half(const float *__restrict__ x, int ld, __half *xh, size_t rows, int K) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * K; i += (size_t)gridDim.x * blockDim.x)
        xh[i] = __float2half_rn(x[(i / K) * ld + i % K]);
}

// y[r, j] = act(y[r, j] + b[j]) (b may be NULL; act 1: softplus)
__global__ void k_bias_act(float *y, const float *__restrict__ b, size_t rows, int N, int act) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * N; i += (size_t)gridDim.x * blockDim.x) {
        float v = b ? y[i] + b[i % N] : y[i];
        y[i] = act == 1 ? qtk_softplus(v) : v;
    }
}

qtk_status qtk_gemm_linear(qtk_gemm *g, const float *x, int ldx, const void *W, int w_half, void *xhv, const float *b,
                           float *y, size_t rows, int N, int K, int act) {
    __half *xh = (__half *)xhv;
    const float one = 1.0f, zero = 0.0f;
    if (rows <= QTK_GEMV_MAX_ROWS) return qtk_gemv((void *)g->st, W, w_half, x, ldx, b, y, N, (int)rows, N, K, act);
    if (w_half) { // fp16 operands on tensor cores, FP32 sums and output
        QTK_LAUNCH(k_to_half, qtk_grid_for(rows * K, 256), 256, 0, g->st, x, ldx, xh, rows, K);
        QTK_CUBLAS_TRY(cublasGemmEx(g->h, CUBLAS_OP_T, CUBLAS_OP_N, N, (int)rows, K, &one, W, CUDA_R_16F, K, xh, CUDA_R_16F, K,
                                    &zero, y, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else
        QTK_CUBLAS_TRY(cublasSgemm(g->h, CUBLAS_OP_T, CUBLAS_OP_N, N, (int)rows, K, &one, (const float *)W, K, x, ldx, &zero,
                                   y, N));
    if (b || act) QTK_LAUNCH(k_bias_act, qtk_grid_for(rows * N, 256), 256, 0, g->st, y, b, rows, N, act);
    return QTK_OK;
}
