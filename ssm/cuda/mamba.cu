// Mamba1 / Mamba2 on the GPU (mamba_cuda.h): the CPU forward of ssm/mamba.c step for step, float32,
// projections through cuBLAS (exact FP32), everything else in the kernels below. Built with
// --fmad=false like the rest of the CUDA code, so elementwise steps round as the CPU's.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/ops.h"
#include "../../core/tensor.h"
#include "mamba_internal.h"



// h[r] = emb[tok[r]]
__global__ void k_embed(const int32_t *__restrict__ tok, const float *__restrict__ emb, float *h, size_t rows, int D) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * D; i += (size_t)gridDim.x * blockDim.x)
        h[i] = emb[(size_t)tok[i / D] * D + i % D];
}

// The Mamba1 scan's arguments (k_scan1 for a prefill, k_scan1_step for one decode token): B sequences of
// L tokens, E channels, N states on S lanes (a power of two >= N, <= 32); x (rows, E) the conv output;
// xdbl (rows, ldbc) = [dt input (R) | B (N) | C (N)]; z (rows, ldz) the gate; h (B, E, N) the states, read
// and written; y (rows, E). Prefill: dt (rows, E) after dt_proj and softplus. Decode: dt_proj's weight
// dt_w (float or fp16, E x R) and bias dt_b (may be NULL) applied inside the step.
struct scan1_args {
    int B, L, E, N, S, R, ldbc, ldz;
    const float *x, *dt, *xdbl, *z, *A_log, *Dskip, *dt_b;
    const void *dt_w;
    float *h, *y;
};

// The Mamba2 recurrence's arguments (k_ssd2): B sequences of L tokens, H heads of P channels, N states, G
// groups; xbc (rows, ld) the conv output [x (E) | B (G N) | C (G N)]; dt_raw the in_proj's dt columns (row
// stride ld_dt), clamped to [lo, hi] after softplus(dt_raw + dt_bias); state (B, H, P, N) read and written;
// y (rows, E) = the SSD output + D x.
struct ssd2_args {
    int B, L, H, P, N, G, ld, E, ld_dt;
    const float *xbc, *dt_raw, *dt_bias, *A_log, *Dskip;
    float lo, hi;
    float *state, *y;
};

// Mamba1 selective scan: S lanes per (sequence, channel) (S: a power of two >= N, <= 32), lane n
// keeping state n; y is the sum of the S lanes' h_n C_n (a shuffle tree; the CPU sums in order)
__global__ void k_scan1(scan1_args a) {
    const int B = a.B, L = a.L, E = a.E, N = a.N, S = a.S, ldbc = a.ldbc, ldz = a.ldz;
    const float *__restrict__ x = a.x, *__restrict__ dt = a.dt, *__restrict__ Bm = a.xdbl + a.R,
                *__restrict__ Cm = a.xdbl + a.R + N, *__restrict__ z = a.z, *__restrict__ A_log = a.A_log,
                *__restrict__ Dskip = a.Dskip;
    float *h = a.h, *y = a.y;
    const int lane = threadIdx.x & 31, n = lane % S;
    const long idx = ((long)(blockIdx.x * blockDim.x + threadIdx.x) >> 5) * (32 / S) + lane / S;
    const int active = idx < (long)B * E, on = active && n < N;
    const int b = active ? (int)(idx / E) : 0, ch = active ? (int)(idx % E) : 0;
    float *hp = h + ((size_t)b * E + ch) * N;
    float hs = on ? hp[n] : 0.0f;
    const float A = on ? -expf(A_log[(size_t)ch * N + n]) : 0.0f;
    for (int t = 0; t < L; t++) { // every lane of the warp runs all L steps (the shuffles need them)
        size_t r = (size_t)b * L + t;
        const float d = active ? dt[r * E + ch] : 0.0f, u = active ? x[r * E + ch] : 0.0f;
        float part = 0.0f;
        if (on) {
            // x = deltaA * x + deltaB_u;  y = x . C
            hs = expf(d * A) * hs + (d * Bm[r * ldbc + n]) * u;
            part = hs * Cm[r * ldbc + n];
        }
        for (int o = S >> 1; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o, S);
        // out = (y + u D) * silu(z)
        if (active && n == 0) y[r * E + ch] = (part + u * Dskip[ch]) * qtk_silu(z[r * ldz + ch]);
    }
    if (on) hp[n] = hs;
}

// One decode step of the Mamba1 scan with dt_proj fused in: dt = softplus(x_dbl[:R] . W_dt[ch] + b_dt[ch]),
// the S lanes of a channel splitting the R products; then k_scan1's update for L = 1.
template <typename W> __global__ void k_scan1_step(scan1_args a) {
    const int B = a.B, E = a.E, N = a.N, S = a.S, R = a.R, ldbc = a.ldbc, ldz = a.ldz;
    const float *__restrict__ x = a.x, *__restrict__ xdbl = a.xdbl, *__restrict__ dtb = a.dt_b, *__restrict__ z = a.z,
                *__restrict__ A_log = a.A_log, *__restrict__ Dskip = a.Dskip;
    const W *__restrict__ dtw = (const W *)a.dt_w;
    float *h = a.h, *y = a.y;
    const int lane = threadIdx.x & 31, n = lane % S;
    const long idx = ((long)(blockIdx.x * blockDim.x + threadIdx.x) >> 5) * (32 / S) + lane / S;
    const int active = idx < (long)B * E, on = active && n < N;
    const int b = active ? (int)(idx / E) : 0, ch = active ? (int)(idx % E) : 0;
    const float *xr = xdbl + (size_t)b * ldbc;
    float *hp = h + ((size_t)b * E + ch) * N;
    // every load that does not depend on dt first, so that their latencies overlap the dt products'
    const float h0 = on ? hp[n] : 0.0f, Bn = on ? xr[R + n] : 0.0f, Cn = on ? xr[R + N + n] : 0.0f,
                A = on ? -expf(A_log[(size_t)ch * N + n]) : 0.0f, u = active ? x[(size_t)b * E + ch] : 0.0f,
                zv = active && n == 0 ? z[(size_t)b * ldz + ch] : 0.0f, Dv = active && n == 0 ? Dskip[ch] : 0.0f,
                bias = active && dtb ? dtb[ch] : 0.0f;
    float dd = 0.0f;
    if (active)
#pragma unroll 8
        for (int k = n; k < R; k += S) dd = __fmaf_rn(qtk_wvec<W>::one(dtw + (size_t)ch * R + k), qtk_wvec<W>::in(xr[k]), dd);
    for (int o = S >> 1; o > 0; o >>= 1) dd += __shfl_xor_sync(0xffffffffu, dd, o, S);
    const float d = active ? qtk_softplus(dtb ? dd + bias : dd) : 0.0f;
    float part = 0.0f;
    if (on) {
        const float hs = expf(d * A) * h0 + (d * Bn) * u;
        hp[n] = hs;
        part = hs * Cn;
    }
    for (int o = S >> 1; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o, S);
    if (active && n == 0) y[(size_t)b * E + ch] = (part + u * Dv) * qtk_silu(zv);
}

// Mamba2 SSD recurrence: grid (sequence x head, tiles of p); SSD_NG lanes per (head, p), lane q keeping
// the states n = q, q + SSD_NG, ... (N <= 32 SSD_NG) in registers; y[p] is the shuffle sum of the lanes.
// dt = clamp(softplus(dt_raw + dt_bias), lo, hi), dt_raw the in_proj's columns (row stride ld_dt).
#define SSD_NG 8
__global__ void k_ssd2(ssd2_args a) {
    const int L = a.L, H = a.H, P = a.P, N = a.N, G = a.G, ld = a.ld, E = a.E, ld_dt = a.ld_dt;
    const float *__restrict__ xbc = a.xbc, *__restrict__ dt_raw = a.dt_raw, *__restrict__ dt_bias = a.dt_bias,
                *__restrict__ A_log = a.A_log, *__restrict__ Dskip = a.Dskip;
    const float lo = a.lo, hi = a.hi;
    float *state = a.state, *y = a.y;
    const int b = blockIdx.x / H, hd = blockIdx.x % H, q = threadIdx.x % SSD_NG, g = hd / (H / G);
    const int p = blockIdx.y * (blockDim.x / SSD_NG) + threadIdx.x / SSD_NG, on = p < P;
    float s[32];
    float *gs = state + (((size_t)b * H + hd) * P + (on ? p : 0)) * N;
#pragma unroll
    for (int k = 0; k < 32; k++) {
        int n = q + k * SSD_NG;
        s[k] = on && n < N ? gs[n] : 0.0f;
    }
    const float A = -expf(A_log[hd]), Dh = Dskip[hd];
    for (int t = 0; t < L; t++) {
        size_t r = (size_t)b * L + t;
        const float d = qtk_clampf(qtk_softplus(dt_raw[r * ld_dt + hd] + dt_bias[hd]), lo, hi);
        const float dA = expf(d * A);
        const float xt = on ? xbc[r * ld + (size_t)hd * P + p] : 0.0f;
        const float *Bt = xbc + r * ld + E + (size_t)g * N, *Ct = xbc + r * ld + E + (size_t)G * N + (size_t)g * N;
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < 32; k++) {
            int n = q + k * SSD_NG;
            if (n < N) {
                // h_t = exp(dt A) h_{t-1} + dt B_t x_t;  y_t = C_t . h_t
                s[k] = dA * s[k] + (d * Bt[n]) * xt;
                acc += Ct[n] * s[k];
            }
        }
        for (int o = SSD_NG >> 1; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o, SSD_NG);
        if (on && q == 0) y[r * (size_t)E + (size_t)hd * P + p] = acc + Dh * xt;
    }
#pragma unroll
    for (int k = 0; k < 32; k++) {
        int n = q + k * SSD_NG;
        if (on && n < N) gs[n] = s[k];
    }
}

// y += b (per column): a projection's bias where a calibration hook saw its output first
__global__ void k_bias_add(float *y, size_t rows, int N, const float *__restrict__ b) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * N; i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % N];
}

// y += b (per column), then softplus: dt_proj's epilogue where a calibration hook saw its output first
__global__ void k_bias_softplus(float *y, size_t rows, int N, const float *__restrict__ b) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * N; i += (size_t)gridDim.x * blockDim.x)
        y[i] = qtk_softplus(b ? y[i] + b[i % N] : y[i]);
}

#define LAUNCH(kernel, n, ...) QTK_LAUNCH(kernel, qtk_grid_for((n), 256), 256, 0, g->st, __VA_ARGS__)

// y (rows, N) = act(x (rows, K; row stride ldx) W^T (+ b)); act 1: softplus (qtk_gemm_linear: a GEMV pass up to
// QTK_GEMV_MAX_ROWS rows, cuBLAS above; fp16 weights on the fp16 path)
static qtk_status linear(qtk_mamba_cuda *g, const float *x, int ldx, const float *hW, const float *hb, float *y, size_t rows,
                         int N, int K, int act = 0) {
    return qtk_gemm_linear(&g->gm, x, ldx, g->fp16 ? (const void *)DEVH(g, hW) : (const void *)DEV(g, hW), g->fp16, g->xh,
                           hb ? DEV(g, hb) : NULL, y, rows, N, K, act);
}

// causal conv + SiLU of C channels (input rows of stride ld) continuing from the conv state cs
static qtk_status conv(qtk_mamba_cuda *g, const qtk_mamba_layer *ly, const float *in, int ld, int L, int C, float *cs) {
    return qtk_op_conv1d_silu_cuda(in, (size_t)ld, g->B, L, C, g->m->cfg.d_conv, DEV(g, ly->conv_w),
                                   ly->conv_b ? DEV(g, ly->conv_b) : NULL, cs, g->xc, g->st);
}

// the forward of L tokens per sequence (tokens already in g->tok); logits into g->logits when want
// see: a prefill, which the calibration hook sees (decode steps do not call it; a captured graph could not)
static qtk_status forward(qtk_mamba_cuda *g, int L, int want, int see) {
    const qtk_mamba *m = g->m;
    const qtk_mamba_config *c = &m->cfg;
    const int B = g->B, D = c->d_model, E = c->d_inner, N = c->d_state, IN = qtk_mamba_in_proj_out(c),
              CD = qtk_mamba_conv_dim(c);
    const size_t rows = (size_t)B * L;
    LAUNCH(k_embed, rows * D, g->tok, DEV(g, m->emb), g->hres, rows, D);
    // a calibration hook's view of a tensor (prefill only)
#define SEE(point, x, cols)                                                                                           \
    if (hooked) QTK_TRY(g->hook(g->hook_ctx, l, point, x, rows, cols))
    const int hooked = see && g->hook != NULL;
    for (int l = 0; l < c->n_layers; l++) {
        const qtk_mamba_layer *ly = &m->layers[l];
        float *cs = g->conv + g->conv_per_layer * l, *ss = g->ssm + g->ssm_per_layer * l;
        // h += previous mixer output (g->mix, from layer l-1's out_proj); u = norm(h)
        QTK_TRY(qtk_op_rmsnorm_cuda(g->hres, l ? g->mix : NULL, DEV(g, ly->norm_w), g->u, rows, D, c->eps, g->st));
        SEE(QTK_MAMBA_Q_IN_PROJ_IN, g->u, D);
        QTK_TRY(linear(g, g->u, D, ly->in_proj_w, hooked ? NULL : ly->in_proj_b, g->proj, rows, IN, D));
        SEE(QTK_MAMBA_Q_IN_PROJ_OUT, g->proj, IN);
        if (hooked && ly->in_proj_b) LAUNCH(k_bias_add, rows * IN, g->proj, rows, IN, DEV(g, ly->in_proj_b));
        if (c->arch == QTK_MAMBA1) {
            const int R = c->dt_rank;
            float *xdbl = g->extra, *dt = xdbl + rows * (R + 2 * N);
            QTK_TRY(conv(g, ly, g->proj, IN, L, E, cs));
            SEE(QTK_MAMBA_Q_X_PROJ_IN, g->xc, E);
            QTK_TRY(linear(g, g->xc, E, ly->x_proj_w, NULL, xdbl, rows, R + 2 * N, E));
            SEE(QTK_MAMBA_Q_X_PROJ_OUT, xdbl, R + 2 * N);
            int S = 1;
            while (S < N) S <<= 1;
            const long threads = ((long)B * E + 32 / S - 1) / (32 / S) * 32;
            const unsigned blocks = (unsigned)((threads + 127) / 128);
            scan1_args a = {B, L, E, N, S, R, R + 2 * N, IN, g->xc, dt, xdbl, g->proj + E, DEV(g, ly->A_log),
                            DEV(g, ly->Dskip), NULL, NULL, ss, g->y};
            if (L == 1 && !hooked) { // decode: dt_proj inside the scan step
                a.dt_b = ly->dt_proj_b ? DEV(g, ly->dt_proj_b) : NULL;
                if (g->fp16) a.dt_w = DEVH(g, ly->dt_proj_w), k_scan1_step<__half><<<blocks, 128, 0, g->st>>>(a);
                else a.dt_w = DEV(g, ly->dt_proj_w), k_scan1_step<float><<<blocks, 128, 0, g->st>>>(a);
            } else {
                if (hooked) { // dt_proj's output before the bias to the hook, then bias + softplus
                    QTK_TRY(linear(g, xdbl, R + 2 * N, ly->dt_proj_w, NULL, dt, rows, E, R));
                    SEE(QTK_MAMBA_Q_DT_PROJ_OUT, dt, E);
                    LAUNCH(k_bias_softplus, rows * E, dt, rows, E, ly->dt_proj_b ? DEV(g, ly->dt_proj_b) : NULL);
                } else QTK_TRY(linear(g, xdbl, R + 2 * N, ly->dt_proj_w, ly->dt_proj_b, dt, rows, E, R, 1)); // softplus
                k_scan1<<<blocks, 128, 0, g->st>>>(a);
            }
            QTK_CUDA_TRY_LAUNCH("scan1");
        } else {
            const int H = c->n_heads, P = c->head_dim;
            QTK_TRY(conv(g, ly, g->proj + E, IN, L, CD, cs));
            SEE(QTK_MAMBA_Q_X_PROJ_IN, g->xc, CD);
            if (L > 1 && g->scan != QTK_SCAN_RECURRENT)
                QTK_TRY(qtk_mamba_ssd_chunked(g, l, L, g->xc, g->proj + E + CD, IN, ss, g->y));
            else {
                const int ptile = 16; // p values per block: 16 x SSD_NG = 128 threads
                const ssd2_args a = {B, L, H, P, N, c->n_groups, CD, E, IN, g->xc, g->proj + E + CD, DEV(g, ly->dt_bias),
                                     DEV(g, ly->A_log), DEV(g, ly->Dskip), c->dt_min, c->dt_max, ss, g->y};
                k_ssd2<<<dim3((unsigned)(B * H), (unsigned)((P + ptile - 1) / ptile)), ptile * SSD_NG, 0, g->st>>>(a);
                QTK_CUDA_TRY_LAUNCH("ssd2");
            }
            QTK_TRY(qtk_op_gated_rmsnorm_cuda(g->y, g->proj, IN, DEV(g, ly->gnorm_w), rows, E, c->n_groups, c->eps, g->st));
        }
        // mix = out_proj(y), added to h by the next layer's norm
        SEE(QTK_MAMBA_Q_OUT_PROJ_IN, g->y, E);
        QTK_TRY(linear(g, g->y, E, ly->out_proj_w, ly->out_proj_b, g->mix, rows, D, E));
    }
#undef SEE
    // h += last mixer output; logits = lm_head(norm_f(h))
    QTK_TRY(qtk_op_rmsnorm_cuda(g->hres, g->mix, DEV(g, m->norm_f), g->u, rows, D, c->eps, g->st));
    if (want) QTK_TRY(linear(g, g->u, D, m->lm_head, NULL, g->logits, rows, c->vocab, D));
    return QTK_OK;
}

extern "C" void qtk_mamba_cuda_destroy(qtk_mamba_cuda *g) {
    if (!g) return;
    if (g->graph) cudaGraphExecDestroy(g->graph);
    qtk_gemm_free(&g->gm);
    if (g->st) cudaStreamDestroy(g->st);
    cudaFree(g->d_params);
    cudaFree(g->d_half);
    cudaFree(g->xh);
    cudaFree(g->conv);
    cudaFree(g->ssm);
    cudaFree(g->tok);
    cudaFree(g->hres);
    cudaFree(g->cb);
    free(g);
}

// the projection weights in fp16 at their offsets in d_half
static qtk_status upload_half(qtk_mamba_cuda *g) {
    const qtk_mamba *m = g->m;
    QTK_CUDA_TRY(cudaMalloc((void **)&g->d_half, m->n_params * sizeof(__half)));
    const int np = qtk_mamba_projections(m, NULL, NULL, 0);
    const float **w = (const float **)malloc((size_t)np * sizeof *w);
    size_t *n = (size_t *)malloc((size_t)np * sizeof *n), cap = 0;
    uint16_t *tmp = NULL;
    qtk_status st = w && n ? QTK_OK : qtk_fail(QTK_ERR_NOMEM, "out of memory");
    if (st == QTK_OK) qtk_mamba_projections(m, w, n, np);
    for (int k = 0; k < np && st == QTK_OK; k++) {
        if (n[k] > cap) {
            free(tmp);
            cap = n[k];
            if (!(tmp = (uint16_t *)malloc(cap * sizeof *tmp))) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; st == QTK_OK && i < n[k]; i++) tmp[i] = qtk_f32_to_f16(w[k][i]);
        cudaError_t e = st == QTK_OK ? cudaMemcpy(DEVH(g, w[k]), tmp, n[k] * 2, cudaMemcpyHostToDevice) : cudaSuccess;
        if (e != cudaSuccess) st = qtk_fail(QTK_ERR_CUDA, "fp16 weights: %s", cudaGetErrorString(e));
    }
    free(tmp), free(w), free(n);
    return st;
}

static qtk_status create(qtk_mamba_cuda *g, const qtk_mamba *m, int maxB, int maxL, int fp16) {
    const qtk_mamba_config *c = &m->cfg;
    if (maxB < 1 || maxL < 1) return qtk_fail(QTK_ERR_ARG, "GPU Mamba for %d x %d tokens", maxB, maxL);
    if (c->d_conv > 64) return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU Mamba: conv_kernel %d (at most 64)", c->d_conv);
    if (c->d_state > (c->arch == QTK_MAMBA1 ? 32 : 32 * SSD_NG))
        return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU Mamba%d: state_size %d (at most %d)", c->arch, c->d_state,
                        c->arch == QTK_MAMBA1 ? 32 : 32 * SSD_NG);
    g->m = m;
    g->maxB = maxB;
    g->maxL = maxL;
    g->fp16 = fp16;
    const size_t rows = (size_t)maxB * maxL, D = c->d_model, E = c->d_inner, IN = qtk_mamba_in_proj_out(c),
                 CD = qtk_mamba_conv_dim(c), V = c->vocab;
    size_t extra = c->arch == QTK_MAMBA1 ? (size_t)(c->dt_rank + 2 * c->d_state) + E : 0;
    // Mamba2's chunked SSD workspace: C B^T and a state per (sequence, chunk), dt and its cumsum per (sequence, head)
    const size_t Q = c->chunk_size, nc = c->arch == QTK_MAMBA2 ? (maxL + Q - 1) / Q : 0;
    const size_t n_cb = (size_t)maxB * nc * c->n_groups * Q * Q, n_chs = (size_t)maxB * nc * E * c->d_state,
                 n_dt = c->arch == QTK_MAMBA2 ? (size_t)maxB * c->n_heads * maxL : 0;
    size_t act = rows * (3 * D + IN + CD + E + extra + V);
    size_t fr = 0, tot = 0;
    QTK_CUDA_TRY(cudaMemGetInfo(&fr, &tot));
    g->conv_per_layer = (size_t)maxB * CD * c->d_conv;
    g->ssm_per_layer = (size_t)maxB * E * c->d_state;
    size_t kmax = E > D ? E : D;
    size_t need = (m->n_params + act + n_cb + n_chs + 2 * n_dt + (g->conv_per_layer + g->ssm_per_layer) * c->n_layers) * sizeof(float) + rows * 4 +
                  (fp16 ? m->n_params * 2 + rows * kmax * 2 : 0) + ((size_t)64 << 20);
    if (need > fr)
        return qtk_fail(QTK_ERR_NOMEM, "GPU Mamba for %d x %d tokens needs %.2f GiB, %.2f GiB free: fewer tokens at once",
                        maxB, maxL, need / 1073741824.0, fr / 1073741824.0);
    QTK_CUDA_TRY(cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking));
    QTK_TRY(qtk_gemm_init(&g->gm, g->st, 0, (size_t)32 << 20, 1));
    QTK_CUDA_TRY(cudaMalloc((void **)&g->d_params, m->n_params * sizeof(float)));
    QTK_CUDA_TRY(cudaMemcpy(g->d_params, m->mem, m->n_params * sizeof(float), cudaMemcpyHostToDevice));
    QTK_CUDA_TRY(cudaMalloc((void **)&g->conv, g->conv_per_layer * c->n_layers * sizeof(float)));
    QTK_CUDA_TRY(cudaMalloc((void **)&g->ssm, g->ssm_per_layer * c->n_layers * sizeof(float)));
    QTK_CUDA_TRY(cudaMalloc((void **)&g->tok, rows * sizeof(int32_t)));
    QTK_CUDA_TRY(cudaMalloc((void **)&g->hres, act * sizeof(float)));
    g->u = g->hres + rows * D;
    g->mix = g->u + rows * D;
    g->proj = g->mix + rows * D;
    g->xc = g->proj + rows * IN;
    g->y = g->xc + rows * CD;
    g->extra = g->y + rows * E;
    g->logits = g->extra + rows * extra;
    if (c->arch == QTK_MAMBA2) {
        QTK_CUDA_TRY(cudaMalloc((void **)&g->cb, (n_cb + n_chs + 2 * n_dt) * sizeof(float)));
        g->chs = g->cb + n_cb;
        g->dtc = g->chs + n_chs;
        g->cum = g->dtc + n_dt;
    }
    if (fp16) {
        QTK_TRY(upload_half(g));
        QTK_CUDA_TRY(cudaMalloc((void **)&g->xh, rows * kmax * sizeof(__half)));
    }
    return QTK_OK;
}

extern "C" qtk_status qtk_mamba_cuda_create(qtk_mamba_cuda **out, const qtk_mamba *m, int max_batch, int max_len,
                                            int fp16) {
    *out = NULL;
    qtk_mamba_cuda *g = (qtk_mamba_cuda *)calloc(1, sizeof *g);
    if (!g) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    qtk_status st = create(g, m, max_batch, max_len, fp16);
    if (st != QTK_OK) {
        qtk_mamba_cuda_destroy(g);
        return st;
    }
    *out = g;
    return QTK_OK;
}

extern "C" qtk_status qtk_mamba_cuda_set_hook(qtk_mamba_cuda *g, qtk_mamba_cuda_act_fn fn, void *ctx) {
    g->hook = fn, g->hook_ctx = ctx;
    return QTK_OK;
}

extern "C" void *qtk_mamba_cuda_stream(qtk_mamba_cuda *g) { return g->st; }

extern "C" qtk_status qtk_mamba_cuda_set_scan(qtk_mamba_cuda *g, qtk_scan_mode mode) {
    if (mode != QTK_SCAN_AUTO && mode != QTK_SCAN_RECURRENT && mode != QTK_SCAN_CHUNKED)
        return qtk_fail(QTK_ERR_ARG, "GPU Mamba: scan mode %d", (int)mode);
    if (mode == QTK_SCAN_CHUNKED && g->m->cfg.arch != QTK_MAMBA2) return qtk_fail(QTK_ERR_ARG, "chunked SSD is Mamba2's");
    g->scan = mode;
    return QTK_OK;
}

extern "C" qtk_status qtk_mamba_cuda_reset(qtk_mamba_cuda *g, int B) {
    if (B < 1 || B > g->maxB) return qtk_fail(QTK_ERR_ARG, "GPU Mamba: %d sequences, planned for at most %d", B, g->maxB);
    g->B = B;
    const int layers = g->m->cfg.n_layers;
    QTK_CUDA_TRY(cudaMemsetAsync(g->conv, 0, g->conv_per_layer * layers * sizeof(float), g->st));
    QTK_CUDA_TRY(cudaMemsetAsync(g->ssm, 0, g->ssm_per_layer * layers * sizeof(float), g->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

static qtk_status tokens_in(qtk_mamba_cuda *g, const int32_t *tokens, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= g->m->cfg.vocab)
            return qtk_fail(QTK_ERR_ARG, "token %d at index %zu is outside the vocabulary (0..%d)", tokens[i], i,
                            g->m->cfg.vocab - 1);
    QTK_CUDA_TRY(cudaMemcpyAsync(g->tok, tokens, n * sizeof(int32_t), cudaMemcpyHostToDevice, g->st));
    return QTK_OK;
}

extern "C" qtk_status qtk_mamba_cuda_prefill(qtk_mamba_cuda *g, const int32_t *tokens, int L, float *logits) {
    if (!g->B) return qtk_fail(QTK_ERR_ARG, "GPU Mamba: reset first");
    if (L < 1 || L > g->maxL) return qtk_fail(QTK_ERR_ARG, "GPU Mamba: prefill of %d tokens, planned for at most %d", L, g->maxL);
    const size_t rows = (size_t)g->B * L;
    QTK_TRY(tokens_in(g, tokens, rows));
    QTK_TRY(forward(g, L, logits != NULL, 1));
    if (logits)
        QTK_CUDA_TRY(cudaMemcpyAsync(logits, g->logits, rows * g->m->cfg.vocab * sizeof(float), cudaMemcpyDeviceToHost, g->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

extern "C" qtk_status qtk_mamba_cuda_decode(qtk_mamba_cuda *g, const int32_t *tokens, float *logits, int use_graph) {
    if (!g->B) return qtk_fail(QTK_ERR_ARG, "GPU Mamba: reset first");
    QTK_TRY(tokens_in(g, tokens, (size_t)g->B));
    if (!use_graph) QTK_TRY(forward(g, 1, 1, 0));
    else {
        if (!g->graph || g->graph_B != g->B) {
            if (g->graph) cudaGraphExecDestroy(g->graph);
            g->graph = NULL;
            cudaGraph_t graph;
            QTK_CUDA_TRY(cudaStreamBeginCapture(g->st, cudaStreamCaptureModeThreadLocal));
            qtk_status st = forward(g, 1, 1, 0);
            cudaError_t e = cudaStreamEndCapture(g->st, &graph);
            QTK_TRY(st);
            QTK_CUDA_TRY(e);
            e = cudaGraphInstantiate(&g->graph, graph, 0);
            cudaGraphDestroy(graph);
            QTK_CUDA_TRY(e);
            g->graph_B = g->B;
        }
        QTK_CUDA_TRY(cudaGraphLaunch(g->graph, g->st));
    }
    if (logits)
        QTK_CUDA_TRY(cudaMemcpyAsync(logits, g->logits, (size_t)g->B * g->m->cfg.vocab * sizeof(float), cudaMemcpyDeviceToHost,
                                     g->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

extern "C" qtk_status qtk_mamba_cuda_get_state(qtk_mamba_cuda *g, qtk_mamba_state *s) {
    if (s->B != g->B) return qtk_fail(QTK_ERR_ARG, "GPU Mamba: state for %d sequences, the GPU has %d", s->B, g->B);
    for (int l = 0; l < g->m->cfg.n_layers; l++) {
        QTK_CUDA_TRY(cudaMemcpy(s->conv + s->conv_per_layer * l, g->conv + g->conv_per_layer * l,
                                s->conv_per_layer * sizeof(float), cudaMemcpyDeviceToHost));
        QTK_CUDA_TRY(cudaMemcpy(s->ssm + s->ssm_per_layer * l, g->ssm + g->ssm_per_layer * l, s->ssm_per_layer * sizeof(float),
                                cudaMemcpyDeviceToHost));
    }
    return QTK_OK;
}
