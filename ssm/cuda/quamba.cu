// Quamba W8A8 on the GPU (quamba_cuda.h), the model: its buffers, the layer's stages, prefill, decode (a CUDA graph),
// profiling and perplexity; the int8 kernels it launches are quamba_ops.cu's. The CPU reference (ssm/quamba_fwd.c)
// step for step, every element
// through ssm/quamba_kernels.h's expressions; integer sums are exact on both sides, so the codes differ only
// where CUDA's expf / log1pf differ from the CPU's by an ulp at a rounding boundary (and the norms' and the
// head's float sums, whose order differs).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/cuda/common.cuh"
#include "../../core/cuda/gemm.cuh"
#include "../../core/cuda/hadamard.cuh"
#include "../../core/hadamard.h"
#include "../../core/ops.h"
#include "../../core/tensor.h"
#include "../quamba_cuda.h"
#include "../quamba_internal.h"
#include "quamba_ops.cuh"


struct qtk_quamba_cuda {
    const qtk_quamba *q;
    int maxB, maxL, B;
    cudaStream_t st;
    qtk_gemm gm;
    int8_t *d_i8;            // q->i8 on the GPU, the same offsets
    float *d_norm;           // norm_f then each layer's norm weight (D each)
    __half *d_emb, *d_head;  // fp16; d_head == d_emb when tied
    int8_t *conv;            // (layers, maxB, E, K)
    float *ssm;              // (layers, maxB, E, N)
    size_t conv_per_layer, ssm_per_layer;
    int32_t *tok, *acc;
    float *h, *t, *y, *logits;
    int8_t *uq, *xz, *xq, *dbl, *dtq, *yq, *dlt;
    __half *xh;
    unsigned long long *d_mask; // the Hadamard's base matrix (m x m) as sign masks (qtk_had_masks)
    size_t had_m;
    u64 *d_sat;              // (layers, QTK_QUAMBA_NPT)
    uint64_t *seen;          // host: codes written since the last collect, same layout
    size_t weight_bytes;
    cudaGraphExec_t graph;
    int graph_B;
    // stage profile (qtk_quamba_cuda_profile): an event after each stage of the forwards run without the graph
    int prof, nev;
    int no_fuse;             // decode steps launch every stage (the default: qtk_quamba_cuda_set_fusion)
    cudaEvent_t *ev;
    int *evcat;
    double prof_ms[QTK_QUAMBA_STAGES];
};

#define MAXEV 4096

#define D8(g, p) ((g)->d_i8 + ((p) - (g)->q->i8))

// --- kernels ----------------------------------------------------------------------------------------------

__global__ void k_embed_h(const int32_t *__restrict__ tok, const __half *__restrict__ emb, float *h, int D) {
    const __half *e = emb + (size_t)tok[blockIdx.x] * D;
    for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < D; i += gridDim.y * blockDim.x)
        h[(size_t)blockIdx.x * D + i] = __half2float(e[i]);
}

// one block per row: y = w (h rsqrt(mean(h^2) + eps)), the mean of squares in double (the CPU's form; the sum
// in another order), then q = clamp(roundf(y / s)). 1024 threads: a decode step has one row per sequence, so
// the kernel's time is the latency of each thread's few loads.
#define NORM_T 1024
__global__ void __launch_bounds__(NORM_T) k_rmsnorm_q8(const float *__restrict__ h, const float *__restrict__ w, int D,
                                                       float eps, float s, int8_t *q, u64 *sat) {
    __shared__ double part[32];
    qtk_pdl_trigger();
    const float w0 = threadIdx.x < D ? w[threadIdx.x] : 0.0f; // a weight (no kernel writes it) before the wait
    qtk_pdl_wait();
    const float *hr = h + (size_t)blockIdx.x * D;
    double ss = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss += (double)hr[i] * hr[i];
    ss = qtk_warp_sum(ss);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        double v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0;
        v = qtk_warp_sum(v);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    const float rs = 1.0f / sqrtf((float)(part[0] / (double)D) + eps);
    unsigned c = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float x = roundf((i == threadIdx.x ? w0 : w[i]) * (hr[i] * rs) / s);
        c += quamba_clips(x);
        q[(size_t)blockIdx.x * D + i] = qtk_sat_s8(x);
    }
    add_sat(sat, c);
}

__global__ void k_requant(const int32_t *__restrict__ acc, int N, float s_w, float r, float a, int e, int8_t *q,
                          size_t ldq, u64 *sat) {
    unsigned c = 0;
    for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < N; i += gridDim.y * blockDim.x) {
        const float x = rintf(quamba_epi_value(acc[(size_t)blockIdx.x * N + i], s_w, r, a, e));
        c += quamba_clips(x);
        q[(size_t)blockIdx.x * ldq + i] = qtk_sat_s8(x);
    }
    add_sat(sat, c);
}

__global__ void k_out_resid(const int32_t *__restrict__ acc, size_t n, float s_y, float s_w, float *h) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        h[i] += quamba_f16(s_y * (s_w * (float)acc[i]));
}

__global__ void k_copy_cols(const int8_t *__restrict__ x, int ldx, int8_t *y, int K) {
    for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < K; i += gridDim.y * blockDim.x)
        y[(size_t)blockIdx.x * K + i] = x[(size_t)blockIdx.x * ldx + i];
}

// --- the projections ---------------------------------------------------------------------------------------

// y = x W^T in int8 -> int32 -> the epilogue (q != NULL: int8 codes; else h += out_proj's fp16 output): the
// GEMV up to 8 rows, cuBLASLt's IMMA GEMM above (the GEMV 8 rows at a time where it has no plan)
static qtk_status linear_q8(qtk_quamba_cuda *g, const int8_t *x, int ldx, const int8_t *W, size_t rows, int N, int K,
                            float s_w, float s_in, float s_out, int e, int8_t *q, float *h, u64 *sat) {
    if (rows <= 8) return qb_gemv(g->st, x, ldx, W, (int)rows, N, K, s_w, s_in, s_out, e, q, h, sat, NULL, NULL);
    if (!qtk_gemm_int8_ok(&g->gm, (int)rows, N, K)) {
        for (size_t r0 = 0; r0 < rows; r0 += 8)
            QTK_TRY(qb_gemv(g->st, x + r0 * ldx, ldx, W, (int)(rows - r0 < 8 ? rows - r0 : 8), N, K, s_w, s_in, s_out, e,
                         q ? q + r0 * N : NULL, h ? h + r0 * N : NULL, sat, NULL, NULL));
        return QTK_OK;
    }
    if (ldx != K) { // cuBLASLt reads packed rows: dt_proj's input is the first R columns of x_proj's output
        QTK_LAUNCH(k_copy_cols, grid_rows(rows, K, 256), 256, 0, g->st, x, ldx, g->dlt, K);
        x = g->dlt;
    }
    QTK_TRY(qtk_gemm_int8(&g->gm, x, W, g->acc, (int)rows, N, K));
    if (q) {
        float r, a;
        quamba_epi_factors(s_w, s_in, s_out, &r, &a);
        QTK_LAUNCH(k_requant, grid_rows(rows, N, 256), 256, 0, g->st, g->acc, N, s_w, r, a, e, q, (size_t)N, sat);
    } else QTK_LAUNCH(k_out_resid, qtk_grid_for(rows * N, 256), 256, 0, g->st, g->acc, rows * N, s_in, s_w, h);
    return QTK_OK;
}

// --- the model ----------------------------------------------------------------------------------------------

// the end of a stage (profiling only); inside a graph capture an event-record node, so a profiled decode step
// is timed as the graph runs it
static void mark(qtk_quamba_cuda *g, int stage) {
    if (!g->prof || g->nev >= MAXEV) return;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(g->st, &cs);
    if (cs == cudaStreamCaptureStatusActive) cudaEventRecordWithFlags(g->ev[g->nev], g->st, cudaEventRecordExternal);
    else cudaEventRecord(g->ev[g->nev], g->st);
    g->evcat[g->nev++] = stage;
}

// after a synchronized forward: the time between consecutive marks goes to the later mark's stage
static void prof_collect(qtk_quamba_cuda *g) {
    for (int i = 1; g->prof && i < g->nev; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, g->ev[i - 1], g->ev[i]) == cudaSuccess) g->prof_ms[g->evcat[i]] += ms;
    }
    g->nev = 0;
}

static void add_seen(qtk_quamba_cuda *g, size_t rows) {
    const qtk_mamba_config *c = &g->q->cfg;
    const size_t cols[QTK_MAMBA_QL] = {(size_t)c->d_model, 2 * (size_t)c->d_inner, (size_t)c->d_inner,
                                       (size_t)(c->dt_rank + 2 * c->d_state), (size_t)c->d_inner, (size_t)c->d_inner};
    for (int l = 0; l < c->n_layers; l++)
        for (int p = 0; p < QTK_MAMBA_QL; p++) g->seen[l * QTK_QUAMBA_NPT + p] += rows * cols[p];
}

// Stage s of layer l over B x L tokens (QTK_QUAMBA_STAGES' order). A decode step of at most 8 sequences (the
// GEMV path) fuses the conv into in_proj's epilogue and dt_proj into the scan: those stages launch nothing.
static qtk_status stage(qtk_quamba_cuda *g, int l, int L, int s) {
    const qtk_quamba *q = g->q;
    const qtk_mamba_config *c = &q->cfg;
    const qtk_quamba_layer *y = &q->layers[l];
    const int B = g->B, D = c->d_model, E = c->d_inner, N = c->d_state, R = c->dt_rank, XD = R + 2 * N;
    const size_t rows = (size_t)B * L;
    const float *A = y->act;
    u64 *sat = g->d_sat + (size_t)l * QTK_QUAMBA_NPT;
    const int epi = rows == 1 ? QUAMBA_EPI_GEMV : QUAMBA_EPI_GEMM;
    const int epi_t = rows == 1 ? QUAMBA_EPI_GEMV : L > 1 ? QUAMBA_EPI_GEMM_T : QUAMBA_EPI_GEMM;
    const int fuse = L == 1 && rows <= 8 && N <= 32 && !g->no_fuse;
    quamba_conv_args ca = {B, L, E, c->d_conv, g->xz, 2 * (size_t)E, D8(g, y->conv_w), D8(g, y->conv_b), y->conv_ws,
                           y->conv_bs, A[QTK_MAMBA_Q_IN_PROJ_OUT], A[QTK_MAMBA_Q_X_PROJ_IN], g->conv + g->conv_per_layer * l,
                           g->xq}; // one channel range (x_end 0)
    switch (s) {
    case 0: // hidden_states = self.norm(residual), quantized: one kernel
        QTK_LAUNCH_PDL(k_rmsnorm_q8, (unsigned)rows, NORM_T, 0, g->st, g->h, g->d_norm + (size_t)(l + 1) * D, D, c->eps,
                       A[QTK_MAMBA_Q_IN_PROJ_IN], g->uq, sat + QTK_MAMBA_Q_IN_PROJ_IN);
        return QTK_OK;
    case 1: // xz = self.in_proj(hidden_states)
        if (fuse)
            return qb_gemv(g->st, g->uq, D, D8(g, y->in_w), (int)rows, 2 * E, D, y->in_ws, A[QTK_MAMBA_Q_IN_PROJ_IN],
                        A[QTK_MAMBA_Q_IN_PROJ_OUT], epi_t, g->xz, NULL, sat + QTK_MAMBA_Q_IN_PROJ_OUT, &ca,
                        sat + QTK_MAMBA_Q_X_PROJ_IN);
        return linear_q8(g, g->uq, D, D8(g, y->in_w), rows, 2 * E, D, y->in_ws, A[QTK_MAMBA_Q_IN_PROJ_IN],
                         A[QTK_MAMBA_Q_IN_PROJ_OUT], epi_t, g->xz, NULL, sat + QTK_MAMBA_Q_IN_PROJ_OUT);
    case 2: // x = silu(conv1d(x))
        return fuse ? QTK_OK : qb_conv_q8(g->st, &ca, sat + QTK_MAMBA_Q_X_PROJ_IN);
    case 3: // x_dbl = self.x_proj(x)
        return linear_q8(g, g->xq, E, D8(g, y->x_w), rows, XD, E, y->x_ws, A[QTK_MAMBA_Q_X_PROJ_IN],
                         A[QTK_MAMBA_Q_X_PROJ_OUT], epi, g->dbl, NULL, sat + QTK_MAMBA_Q_X_PROJ_OUT);
    case 4: // dt = self.dt_proj(dt) without its bias
        if (fuse) return QTK_OK;
        return linear_q8(g, g->dbl, XD, D8(g, y->dt_w), rows, E, R, y->dt_ws, A[QTK_MAMBA_Q_X_PROJ_OUT],
                         A[QTK_MAMBA_Q_DT_PROJ_OUT], epi_t, g->dtq, NULL, sat + QTK_MAMBA_Q_DT_PROJ_OUT);
    case 5: { // y = selective_scan(...)
        quamba_scan_args sa = quamba_scan_operands(q, l, B, L, g->xq, g->dtq, g->dbl, g->xz, g->ssm + g->ssm_per_layer * l, g->y);
        sa.A_log = D8(g, y->A_log), sa.Dq = D8(g, y->Dq), sa.dt_b = D8(g, y->dt_b);
        quamba_dt_fuse dt = {D8(g, y->dt_w), y->dt_ws, 0, 0, epi_t, sat + QTK_MAMBA_Q_DT_PROJ_OUT};
        quamba_epi_factors(y->dt_ws, A[QTK_MAMBA_Q_X_PROJ_OUT], A[QTK_MAMBA_Q_DT_PROJ_OUT], &dt.r, &dt.a);
        return qb_scan_q8(g->st, &sa, fuse ? &dt : NULL);
    }
    case 6: // had(y) quantized
        return qb_had_q8(g->st, g->y, rows, E, g->had_m, g->d_mask, qtk_quamba_uses_hadamard(q->opts.variant),
                      A[QTK_MAMBA_Q_OUT_PROJ_IN], g->yq, sat + QTK_MAMBA_Q_OUT_PROJ_IN);
    default: // residual += self.out_proj(.) in fp16
        return linear_q8(g, g->yq, E, D8(g, y->out_w), rows, D, E, y->out_ws, A[QTK_MAMBA_Q_OUT_PROJ_IN], 0, 0, NULL,
                         g->h, NULL);
    }
}

static qtk_status layer(qtk_quamba_cuda *g, int l, int L) {
    for (int s = 0; s < QTK_QUAMBA_STAGES - 1; s++) {
        QTK_TRY(stage(g, l, L, s));
        mark(g, s);
    }
    return QTK_OK;
}

// logits = self.lm_head(self.norm_f(hidden_states)): fp16 operands, FP32 sums
static qtk_status forward_head(qtk_quamba_cuda *g, int L) {
    const qtk_mamba_config *c = &g->q->cfg;
    const size_t rows = (size_t)g->B * L;
    QTK_TRY(qtk_op_rmsnorm_cuda(g->h, NULL, g->d_norm, g->t, rows, (size_t)c->d_model, c->eps, g->st));
    return qtk_gemm_linear(&g->gm, g->t, c->d_model, g->d_head, 1, g->xh, NULL, g->logits, rows, c->vocab, c->d_model, 0);
}

// the forward of B x L tokens already in g->tok; logits to g->logits when want
static qtk_status forward(qtk_quamba_cuda *g, int L, int want) {
    const qtk_mamba_config *c = &g->q->cfg;
    const size_t rows = (size_t)g->B * L;
    g->nev = 0;
    mark(g, 8);
    QTK_LAUNCH(k_embed_h, grid_rows(rows, c->d_model, 256), 256, 0, g->st, g->tok, g->d_emb, g->h, c->d_model);
    for (int l = 0; l < c->n_layers; l++) QTK_TRY(layer(g, l, L));
    if (!want) return QTK_OK;
    QTK_TRY(forward_head(g, L));
    mark(g, 8);
    return QTK_OK;
}

static qtk_status check_shapes(const qtk_quamba *q) {
    const qtk_mamba_config *c = &q->cfg;
    if (q->fp) return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU Quamba: the dynamic variant runs on the CPU");
    if (c->arch != QTK_MAMBA1)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU Quamba: Mamba2's int8 kernels are not written yet; run a Mamba2 Quamba "
                        "model on the CPU (device: cpu)");
    if (c->d_model % 4 || c->d_inner % 4 || c->dt_rank % 4 || (c->dt_rank + 2 * c->d_state) % 4)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU Quamba: d_model %d, d_inner %d, dt_rank %d and dt_rank + 2 state_size %d "
                        "must be multiples of 4 (the int8 GEMMs' alignment)", c->d_model, c->d_inner, c->dt_rank,
                        c->dt_rank + 2 * c->d_state);
    if (c->d_inner > 29056) return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU Quamba: d_inner %d (at most 29056)", c->d_inner);
    return QTK_OK;
}

template <typename T> static qtk_status dalloc(T **p, size_t n) {
    QTK_CUDA_TRY(cudaMalloc((void **)p, (n ? n : 1) * sizeof(T)));
    return QTK_OK;
}

static qtk_status create(qtk_quamba_cuda *g, const qtk_quamba *q, int maxB, int maxL) {
    const qtk_mamba_config *c = &q->cfg;
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, N = (size_t)c->d_state, K = (size_t)c->d_conv,
                 V = (size_t)c->vocab, XD = (size_t)(c->dt_rank + 2 * c->d_state), Ls = (size_t)c->n_layers;
    const size_t rows = (size_t)maxB * maxL, W = 2 * E > XD ? (2 * E > D ? 2 * E : D) : (XD > D ? XD : D);
    QTK_CUDA_TRY(cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking));
    QTK_TRY(qtk_gemm_init(&g->gm, g->st, 0, 32u << 20, 1));
    // weights: int8 codes as stored, norms in float32, embedding and head in fp16
    QTK_TRY(dalloc(&g->d_i8, q->n_i8));
    QTK_CUDA_TRY(cudaMemcpy(g->d_i8, q->i8, q->n_i8, cudaMemcpyHostToDevice));
    QTK_TRY(dalloc(&g->d_norm, (Ls + 1) * D));
    QTK_CUDA_TRY(cudaMemcpy(g->d_norm, q->norm_f, D * sizeof(float), cudaMemcpyHostToDevice));
    for (size_t l = 0; l < Ls; l++)
        QTK_CUDA_TRY(cudaMemcpy(g->d_norm + (l + 1) * D, q->layers[l].norm_w, D * sizeof(float), cudaMemcpyHostToDevice));
    uint16_t *hb = (uint16_t *)malloc(V * D * 2);
    if (!hb) return qtk_fail(QTK_ERR_NOMEM, "GPU Quamba: out of host memory");
    qtk_status st = QTK_OK;
    const int tied = q->lm_head == q->emb;
    for (int k = 0; k < (tied ? 1 : 2) && st == QTK_OK; k++) {
        const float *src = k ? q->lm_head : q->emb;
        for (size_t i = 0; i < V * D; i++) hb[i] = qtk_f32_to_f16(src[i]);
        __half **dst = k ? &g->d_head : &g->d_emb;
        st = dalloc(dst, V * D);
        if (st == QTK_OK && cudaMemcpy(*dst, hb, V * D * 2, cudaMemcpyHostToDevice) != cudaSuccess)
            st = qtk_fail(QTK_ERR_CUDA, "GPU Quamba: cannot upload the embedding");
    }
    free(hb);
    QTK_TRY(st);
    if (tied) g->d_head = g->d_emb;
    g->weight_bytes = q->n_i8 + (Ls + 1) * D * 4 + V * D * 2 * (tied ? 1 : 2);
    // the Hadamard's base matrix
    signed char base[40 * 40];
    if (qtk_quamba_uses_hadamard(q->opts.variant)) {
        QTK_TRY(qtk_hadamard_base(E, &g->had_m, base));
        unsigned long long mask[40];
        qtk_had_masks(base, g->had_m, mask);
        QTK_TRY(dalloc(&g->d_mask, g->had_m));
        QTK_CUDA_TRY(cudaMemcpy(g->d_mask, mask, g->had_m * sizeof *mask, cudaMemcpyHostToDevice));
    } else g->had_m = 1;
    QTK_TRY(qb_had_smem((int)E));
    // states and activations
    g->conv_per_layer = (size_t)maxB * E * K;
    g->ssm_per_layer = (size_t)maxB * E * N;
    QTK_TRY(dalloc(&g->conv, g->conv_per_layer * Ls));
    QTK_TRY(dalloc(&g->ssm, g->ssm_per_layer * Ls));
    QTK_TRY(dalloc(&g->tok, rows));
    QTK_TRY(dalloc(&g->acc, rows * W));
    QTK_TRY(dalloc(&g->h, rows * D));
    QTK_TRY(dalloc(&g->t, rows * D));
    QTK_TRY(dalloc(&g->y, rows * E));
    QTK_TRY(dalloc(&g->logits, rows * V));
    QTK_TRY(dalloc(&g->uq, rows * D));
    QTK_TRY(dalloc(&g->xz, rows * 2 * E));
    QTK_TRY(dalloc(&g->xq, rows * E));
    QTK_TRY(dalloc(&g->dbl, rows * XD));
    QTK_TRY(dalloc(&g->dtq, rows * E));
    QTK_TRY(dalloc(&g->yq, rows * E));
    QTK_TRY(dalloc(&g->dlt, rows * (size_t)c->dt_rank));
    QTK_TRY(dalloc(&g->xh, rows * D));
    QTK_TRY(dalloc(&g->d_sat, Ls * QTK_QUAMBA_NPT));
    QTK_CUDA_TRY(cudaMemset(g->d_sat, 0, Ls * QTK_QUAMBA_NPT * sizeof(u64)));
    if (!(g->seen = (uint64_t *)calloc(Ls * QTK_QUAMBA_NPT, sizeof *g->seen)))
        return qtk_fail(QTK_ERR_NOMEM, "GPU Quamba: out of host memory");
    return QTK_OK;
}

extern "C" qtk_status qtk_quamba_cuda_create(qtk_quamba_cuda **out, const qtk_quamba *q, int max_batch, int max_len) {
    *out = NULL;
    QTK_TRY(check_shapes(q));
    if (max_batch < 1 || max_len < 1 || (double)max_batch * max_len > (double)(1 << 24))
        return qtk_fail(QTK_ERR_ARG, "GPU Quamba for %d x %d tokens", max_batch, max_len);
    qtk_quamba_cuda *g = (qtk_quamba_cuda *)calloc(1, sizeof *g);
    if (!g) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    g->q = q;
    g->maxB = max_batch, g->maxL = max_len;
    g->no_fuse = 1; // fused decode ran slower on the H100 (run 35); qtk_quamba_cuda_set_fusion(g, 1) for the benchmark
    qtk_status st = create(g, q, max_batch, max_len);
    if (st == QTK_OK) st = qtk_quamba_cuda_reset(g, max_batch);
    if (st != QTK_OK) {
        qtk_quamba_cuda_destroy(g);
        return st;
    }
    *out = g;
    return QTK_OK;
}

extern "C" qtk_status qtk_quamba_cuda_profile(qtk_quamba_cuda *g, int on, double *ms) {
    if (ms)
        for (int i = 0; i < QTK_QUAMBA_STAGES; i++) ms[i] = g->prof_ms[i];
    memset(g->prof_ms, 0, sizeof g->prof_ms);
    if (on && !g->ev) {
        g->ev = (cudaEvent_t *)calloc(MAXEV, sizeof *g->ev);
        g->evcat = (int *)calloc(MAXEV, sizeof *g->evcat);
        if (!g->ev || !g->evcat) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
        for (int i = 0; i < MAXEV; i++) QTK_CUDA_TRY(cudaEventCreate(&g->ev[i]));
    }
    g->prof = on;
    return QTK_OK;
}

extern "C" qtk_status qtk_quamba_cuda_stage_times(qtk_quamba_cuda *g, int reps, double *us) {
    if (reps < 1) return qtk_fail(QTK_ERR_ARG, "GPU Quamba stage times: %d repetitions", reps);
    cudaEvent_t e0, e1;
    QTK_CUDA_TRY(cudaEventCreate(&e0));
    QTK_CUDA_TRY(cudaEventCreate(&e1));
    qtk_status st = QTK_OK;
    for (int s = 0; s < QTK_QUAMBA_STAGES && st == QTK_OK; s++) {
        cudaEventRecord(e0, g->st);
        for (int i = 0; i < reps && st == QTK_OK; i++) st = s < QTK_QUAMBA_STAGES - 1 ? stage(g, 0, 1, s) : forward_head(g, 1);
        cudaEventRecord(e1, g->st);
        float ms = 0;
        if (st == QTK_OK && (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess))
            st = qtk_fail(QTK_ERR_CUDA, "GPU Quamba stage times: event failed");
        us[s] = ms * 1e3 / reps;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return st;
}

extern "C" void qtk_quamba_cuda_destroy(qtk_quamba_cuda *g) {
    if (!g) return;
    if (g->ev)
        for (int i = 0; i < MAXEV; i++) cudaEventDestroy(g->ev[i]);
    free(g->ev);
    free(g->evcat);
    if (g->graph) cudaGraphExecDestroy(g->graph);
    qtk_gemm_free(&g->gm);
    if (g->d_head != g->d_emb) cudaFree(g->d_head);
    void *bufs[] = {g->d_i8, g->d_norm, g->d_emb, g->conv, g->ssm, g->tok, g->acc, g->h, g->t, g->y, g->logits, g->uq,
                    g->xz, g->xq, g->dbl, g->dtq, g->yq, g->dlt, g->xh, g->d_mask, g->d_sat};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) cudaFree(bufs[i]);
    if (g->st) cudaStreamDestroy(g->st);
    free(g->seen);
    free(g);
}

extern "C" qtk_status qtk_quamba_cuda_reset(qtk_quamba_cuda *g, int B) {
    if (B < 1 || B > g->maxB) return qtk_fail(QTK_ERR_ARG, "GPU Quamba: %d sequences (1..%d)", B, g->maxB);
    g->B = B;
    QTK_CUDA_TRY(cudaMemsetAsync(g->conv, 0, g->conv_per_layer * g->q->cfg.n_layers, g->st));
    QTK_CUDA_TRY(cudaMemsetAsync(g->ssm, 0, g->ssm_per_layer * g->q->cfg.n_layers * sizeof(float), g->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

static qtk_status check_tokens(const qtk_quamba_cuda *g, const int32_t *tokens, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= g->q->cfg.vocab)
            return qtk_fail(QTK_ERR_ARG, "token %d at %zu is outside the vocabulary (0..%d)", tokens[i], i, g->q->cfg.vocab - 1);
    return QTK_OK;
}

extern "C" qtk_status qtk_quamba_cuda_prefill(qtk_quamba_cuda *g, const int32_t *tokens, int L, float *logits) {
    if (L < 1 || L > g->maxL) return qtk_fail(QTK_ERR_ARG, "GPU Quamba prefill of %d tokens (1..%d)", L, g->maxL);
    const size_t rows = (size_t)g->B * L, V = (size_t)g->q->cfg.vocab;
    QTK_TRY(check_tokens(g, tokens, rows));
    QTK_CUDA_TRY(cudaMemcpyAsync(g->tok, tokens, rows * sizeof(int32_t), cudaMemcpyHostToDevice, g->st));
    QTK_TRY(forward(g, L, logits != NULL));
    add_seen(g, rows);
    if (logits) QTK_CUDA_TRY(cudaMemcpyAsync(logits, g->logits, rows * V * sizeof(float), cudaMemcpyDeviceToHost, g->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    prof_collect(g);
    return QTK_OK;
}

extern "C" qtk_status qtk_quamba_cuda_decode(qtk_quamba_cuda *g, const int32_t *tokens, float *logits, int use_graph) {
    const size_t V = (size_t)g->q->cfg.vocab;
    QTK_TRY(check_tokens(g, tokens, (size_t)g->B));
    QTK_CUDA_TRY(cudaMemcpyAsync(g->tok, tokens, g->B * sizeof(int32_t), cudaMemcpyHostToDevice, g->st));
    cudaGraphExec_t ex = g->graph;
    if (use_graph && (g->prof || g->graph_B != g->B)) { // capture one decode step for this batch (profiled: anew)
        cudaGraph_t gr;
        QTK_CUDA_TRY(cudaStreamBeginCapture(g->st, cudaStreamCaptureModeThreadLocal));
        qtk_status st = forward(g, 1, 1);
        cudaError_t e = cudaStreamEndCapture(g->st, &gr);
        QTK_TRY(st);
        QTK_CUDA_TRY(e);
        e = cudaGraphInstantiate(&ex, gr, 0);
        cudaGraphDestroy(gr);
        QTK_CUDA_TRY(e);
        if (!g->prof) {
            if (g->graph) cudaGraphExecDestroy(g->graph);
            g->graph = ex, g->graph_B = g->B;
        }
    }
    qtk_status st = QTK_OK;
    if (use_graph) {
        if (cudaGraphLaunch(ex, g->st) != cudaSuccess) st = qtk_fail(QTK_ERR_CUDA, "GPU Quamba: decode graph launch failed");
    } else st = forward(g, 1, 1);
    if (st == QTK_OK) add_seen(g, (size_t)g->B);
    if (st == QTK_OK && logits &&
        cudaMemcpyAsync(logits, g->logits, g->B * V * sizeof(float), cudaMemcpyDeviceToHost, g->st) != cudaSuccess)
        st = qtk_fail(QTK_ERR_CUDA, "GPU Quamba: cannot copy the logits");
    if (cudaStreamSynchronize(g->st) != cudaSuccess && st == QTK_OK) st = qtk_fail(QTK_ERR_CUDA, "GPU Quamba: decode step failed");
    if (use_graph && g->prof) cudaGraphExecDestroy(ex);
    prof_collect(g);
    return st;
}

extern "C" qtk_status qtk_quamba_cuda_collect_saturation(qtk_quamba_cuda *g) {
    const size_t n = (size_t)g->q->cfg.n_layers * QTK_QUAMBA_NPT;
    u64 *h = (u64 *)malloc(n * sizeof *h);
    if (!h) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    cudaError_t e = cudaMemcpy(h, g->d_sat, n * sizeof *h, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemset(g->d_sat, 0, n * sizeof *h);
    for (size_t i = 0; e == cudaSuccess && i < n; i++) g->q->sat[i] += h[i], g->q->seen[i] += g->seen[i], g->seen[i] = 0;
    free(h);
    QTK_CUDA_TRY(e);
    return QTK_OK;
}

extern "C" size_t qtk_quamba_cuda_weight_bytes(const qtk_quamba_cuda *g) { return g->weight_bytes; }

extern "C" void qtk_quamba_cuda_set_fusion(qtk_quamba_cuda *g, int on) {
    if (g->no_fuse != !on) g->graph_B = 0; // a captured decode step keeps the old launches: capture anew
    g->no_fuse = !on;
}

static qtk_status gpu_windows(void *ud, const int32_t *tokens, int B, int L, float *logits) {
    qtk_quamba_cuda *g = (qtk_quamba_cuda *)ud;
    QTK_TRY(qtk_quamba_cuda_reset(g, B));
    return qtk_quamba_cuda_prefill(g, tokens, L, logits);
}

extern "C" qtk_status qtk_quamba_cuda_perplexity(const qtk_quamba *q, const int32_t *tokens, size_t n, int ctx, int stride,
                                                 int max_windows, int batch, double *ppl, size_t *n_scored) {
    qtk_quamba_cuda *g;
    QTK_TRY(qtk_quamba_cuda_create(&g, q, batch, ctx));
    qtk_status st = qtk_lm_perplexity(gpu_windows, g, q->cfg.vocab, tokens, n, ctx, stride, max_windows, batch, ppl, n_scored);
    if (st == QTK_OK) st = qtk_quamba_cuda_collect_saturation(g);
    qtk_quamba_cuda_destroy(g);
    return st;
}

// --- the kernels alone (the backend test; the others: quamba_ops.cu) ---------------------------------------

extern "C" qtk_status qtk_quamba_requant_cuda(const int32_t *acc, size_t rows, int N, float s_w, float s_in, float s_out,
                                              int e, int8_t *q, uint64_t *sat) {
    float r, a;
    quamba_epi_factors(s_w, s_in, s_out, &r, &a);
    u64 *d;
    QTK_TRY(qb_sat_alloc(&d));
    if (rows) k_requant<<<grid_rows(rows, N, 256), 256>>>(acc, N, s_w, r, a, e, q, (size_t)N, d);
    QTK_CUDA_TRY_LAUNCH("k_requant");
    return qb_sat_to_host(d, sat);
}
