// The ViT / DeiT forward on the GPU (vit_cuda.h): the CPU forward of vit.c
// step for step, GEMMs through cuBLAS, everything between them in kernels
// that fuse the bias, GELU, residual add and the quantizer that follows.
// Built with --fmad=false and IEEE division/sqrt, so every elementwise step
// rounds as the CPU's C code does.
#include "vit_internal.h"

// --- elementwise -------------------------------------------------------------

__device__ __forceinline__ float apply_q(const dquant &q, float x, size_t c) { return qtk_outq_apply(&q, x, c); }

// The int8 code of x under a per-tensor quantizer: its grid point (as fq) minus 128 where the grid
// reaches past 127 (qtk_code_offset), so x's fake-quantized value is s * (code - (z - offset)).
__device__ __forceinline__ float qgrid(const dquant &q, float x) { return qtk_fq_grid(x, q.s, q.z, q.lo, q.hi, q.torch); }
__device__ __forceinline__ int8_t qcode(const dquant &q, float x) {
    return (int8_t)((int)qgrid(q, x) - (q.hi > 127.0f ? 128 : 0));
}
// x's fake-quantized value over the scale: grid point - zero point (an integer; exact in fp16 up to 2048)
__device__ __forceinline__ __half qhalf(const dquant &q, float x) { return __float2half_rn(qgrid(q, x) - q.z); }

// Elementwise kernels index with 32 bits (create() checks every buffer fits): 64-bit division is slow.
// x[i] = q(x[i]) over n elements of rows of C
__global__ void k_quant(float *x, unsigned n, unsigned C, dquant q) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] = apply_q(q, x[i], i % C);
}

// y = q(GELU(y)) (erf form, as nn.GELU()); the bias is already in y (GEMM epilogue). codes: the
// int8 codes instead (q per tensor)
__global__ void k_gelu_quant(float *y, unsigned n, unsigned N, dquant q, int8_t *codes) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        if (codes) codes[i] = qcode(q, qtk_gelu(y[i]));
        else y[i] = apply_q(q, qtk_gelu(y[i]), i % N);
    }
}

// codes[i] = the int8 code of x[i] (q per tensor)
__global__ void k_quant_codes(const float *__restrict__ x, int8_t *codes, unsigned n, dquant q) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) codes[i] = qcode(q, x[i]);
}

// The int8 path's epilogue. acc (rows, ld): the int32 sums of input codes a (quantizer sx, zero
// point za in code units) times weight codes b, and in column N each row's code sum. y[r, o] =
// sum_k sx (a_k - za) (alpha_o b_ok + gamma_o) + bias_o, evaluated in double from exact integers and
// rounded once to float32.
struct iepi {
    const int32_t *acc;
    unsigned ld, N;
    double K, sx, za;
    const double *alpha, *gamma;
    const int32_t *bsum;
    const float *bias;
};

__device__ __forceinline__ float int_y(const iepi &e, unsigned r, unsigned o) {
    const int32_t *a = e.acc + (size_t)r * e.ld;
    double I = (double)a[o] - e.za * (double)e.bsum[o], S = (double)a[e.N] - e.K * e.za;
    return (float)(e.sx * (e.alpha[o] * I + e.gamma[o] * S) + (e.bias ? (double)e.bias[o] : 0.0));
}

// then as the FP32 path's kernels: POST (0 quantizer, 1 GELU + quantizer, 2 residual) (enum below)
// (POST 0 with h: q's fp16 grid values to h instead of floats to y). One block row per output row
// (blockIdx.x), blocks of columns along y: no index division per element.
template <int POST>
__global__ void k_int_post(iepi e, float *y, int8_t *codes, float *resid, dquant q, dquant qr, __half *h) {
    const unsigned r = blockIdx.x, o = blockIdx.y * blockDim.x + threadIdx.x;
    if (o < e.N) {
        const unsigned i = r * e.N + o;
        float v = int_y(e, r, o);
        if (POST == 0) {
            if (h) h[i] = qhalf(q, v);
            else y[i] = apply_q(q, v, o);
        }
        else if (POST == 1) {
            if (codes) codes[i] = qcode(q, qtk_gelu(v));
            else y[i] = apply_q(q, qtk_gelu(v), o);
        } else resid[i] = apply_q(qr, resid[i] + apply_q(q, v, o), o);
    }
}

// y = q(y + bias) (where the GEMM could not add the bias)
__global__ void k_bias_quant(float *y, const float *__restrict__ bias, unsigned n, unsigned N, dquant q) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        unsigned j = i % N;
        y[i] = apply_q(q, y[i] + bias[j], j);
    }
}

// x = qr(x + qh(h)): the branch output's quantizer, the residual add, then the PTF quantizer
__global__ void k_residual_quant(float *x, const float *__restrict__ h, unsigned n, unsigned C, dquant qh, dquant qr) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        unsigned c = i % C;
        x[i] = apply_q(qr, x[i] + apply_q(qh, h[i], c), c);
    }
}

// cols[b, gy*G+gx, ch*P*P + ky*P + kx] = img[b, ch, gy*P+ky, gx*P+kx]
__global__ void k_im2col(const float *__restrict__ img, float *cols, unsigned B, unsigned CH, unsigned S, unsigned P,
                         unsigned G) {
    unsigned K = CH * P * P, n = B * G * G * K;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        unsigned k = i % K, g = (i / K) % (G * G), b = i / (K * G * G);
        unsigned ch = k / (P * P), ky = (k / P) % P, kx = k % P, gy = g / G, gx = g % G;
        cols[i] = img[((b * CH + ch) * S + gy * P + ky) * S + gx * P + kx];
    }
}

// x[b, t] = cls | dist | patch[b, t - NP], then the concat quantizer
__global__ void k_concat(float *x, const float *__restrict__ patch, const float *__restrict__ cls,
                         const float *__restrict__ dist, unsigned B, unsigned T, unsigned NP, unsigned C, dquant q) {
    unsigned n = B * T * C;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        unsigned c = i % C, t = (i / C) % T, b = i / (C * T);
        float v = t == 0 ? cls[c] : (t == 1 && NP == 2) ? dist[c] : patch[(b * (T - NP) + t - NP) * C + c];
        x[i] = apply_q(q, v, c);
    }
}

// x[b, t, c] = q(x[b, t, c] + pos[t, c])
__global__ void k_add_pos(float *x, const float *__restrict__ pos, unsigned n, unsigned TC, unsigned C, dquant q) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        x[i] = apply_q(q, x[i] + pos[i % TC], i % C);
}

// the prefix tokens of every image: feat[b, t] = x[b, t] for t < NP
__global__ void k_prefix(const float *__restrict__ x, float *feat, int B, int T, int NP, int C) {
    size_t n = (size_t)B * NP * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t c = i % C, t = (i / C) % NP, b = i / ((size_t)C * NP);
        feat[i] = x[(b * T + t) * C + c];
    }
}

// logits = q((l + bias) [+ (ld + bias_d)] / 2)
__global__ void k_head(float *l, const float *__restrict__ ld, const float *__restrict__ b, const float *__restrict__ bd,
                       int B, int NC, dquant q) {
    size_t n = (size_t)B * NC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t j = i % NC;
        float v = l[i] + b[j];
        if (ld) v = (v + (ld[i] + bd[j])) / 2.0f;
        l[i] = apply_q(q, v, j);
    }
}

// --- row kernels: one block of 256 threads per row -------------------------------

// float LayerNorm (core/cuda/ops.cuh), then the quantizer after it or its int8 codes; one warp per row
__global__ void k_layernorm(const float *__restrict__ x, float *y, unsigned rows, int C, const float *__restrict__ w,
                            const float *__restrict__ b, float eps, dquant q, int8_t *codes) {
    unsigned r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    float *yr = y + (size_t)r * C;
    qtk_layernorm_warp(x + (size_t)r * C, C, w, b, eps, threadIdx.x & 31, [&](int i, float v) {
        if (codes) codes[(size_t)r * C + i] = qcode(q, v);
        else yr[i] = apply_q(q, v, i);
    });
}

// FQ-ViT's QIntLayerNorm (core/intlayernorm.h, core/cuda/ops.cuh), then the quantizer after it; one warp per row
__global__ void k_int_layernorm(const float *__restrict__ x, float *y, unsigned rows, int C, const float *__restrict__ s_in,
                                int per_channel, float s1, float s_out, float inv_c, const float *__restrict__ gamma,
                                const float *__restrict__ beta, dquant q, int8_t *codes) {
    unsigned r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    float *yr = y + (size_t)r * C;
    qtk_int_layernorm_warp(x + (size_t)r * C, C, s_in, per_channel, s1, s_out, inv_c, gamma, beta, threadIdx.x & 31,
                           [&](int c, float v) {
                               if (codes) codes[(size_t)r * C + c] = qcode(q, v);
                               else yr[c] = apply_q(q, v, c);
                           });
}

// softmax over rows of n (core/cuda/ops.cuh), then the quantizer; one warp per row
// the scores' quantizer qs is applied as the row is read (fused: the scores make one trip)
// ph: the probabilities' fp16 grid values (q per tensor) there instead of floats in x
__global__ void k_softmax(float *x, size_t rows, int n, dquant qs, dquant q, __half *ph) {
    size_t r = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    float *row = x + r * n;
    qtk_softmax_warp(row, n, threadIdx.x & 31, [&](float v) { return apply_q(qs, v, 0); }, [&](int j, float p) {
        if (ph) ph[r * n + j] = qhalf(q, p);
        else row[j] = apply_q(q, p, 0);
    });
}

// --- forward -------------------------------------------------------------------------

static const dquant NOQ = {0, 0, 0, 0, NULL, NULL, 0, 0, 0};

// Calibration: the activation at `point`, (outer, C) with C the last axis, feeds its observer through the
// registry's device half (core/qpoint.h: qtk_qreg_observe_cuda). As vit_quant.c's hook: every named
// activation quantizer, enabled or not.
static qtk_status observe(const fwd *f, int point, const float *d, size_t outer, size_t C) {
    if (!f->cal) return QTK_OK;
    return qtk_qreg_observe_cuda(&f->g->qd, &f->cal->reg, point, d, outer, C, f->cal_first, f->cal_last);
}

static const dquant *QP(const fwd *f, int point) { return f->qz ? &f->g->qd.q[point] : &NOQ; }

// Whether the linear with weight wpoint (N, K) over `rows` inputs quantized by xpoint runs on int8
// tensor cores: the int8 path, the quantized forward, the weight's codes ready, xpoint per tensor with
// its codes in int8, and a cuBLASLt algorithm for the shape. Producer and consumer both ask.
static int int_gemm(const fwd *f, int wpoint, int xpoint, int N, int K, int rows) {
    qtk_vit_cuda *g = f->g;
    if (g->gemm != QTK_VIT_GEMM_INT8 || !f->qz || f->cal || !g->wi[wpoint].ok || !g->qd.w_on[wpoint]) return 0;
    const dquant *q = &g->qd.q[xpoint];
    const int off = q->hi > 127.0f ? 128 : 0;
    if (!q->on || q->per_channel || q->lo - off < -128 || q->hi - off > 127 || q->s != q->s) return 0;
    return qtk_gemm_int8_ok(&g->gm, rows, N + 4, K);
}

// Whether block pb's attention GEMMs run on fp16 tensor cores with exact sums: the qkv and softmax
// quantizers per tensor with integral zero points, their grid values minus zero point within
// [-2048, 2048] (exact in fp16), and every sum below 2^24 in magnitude (exact in FP32 in any order):
// d * r_qkv^2 for the scores, T * r_softmax * r_qkv for the context.
static int att_int(const fwd *f, int pb, int T, int d) {
    const qtk_vit_cuda *g = f->g;
    if (g->gemm != QTK_VIT_GEMM_INT8 || !g->fp16_exact || !f->qz || f->cal) return 0;
    const dquant *qk = &g->qd.q[pb + QTK_VIT_B_QKV_OUT], *qp = &g->qd.q[pb + QTK_VIT_B_SOFTMAX];
    if (!qk->on || qk->per_channel || !qp->on || qp->per_channel) return 0;
    if (qk->z != rintf(qk->z) || qp->z != rintf(qp->z)) return 0;
    double rk = fmax(qk->hi - qk->z, qk->z - qk->lo), rp = fmax(qp->hi - qp->z, qp->z - qp->lo);
    return rk <= 2048 && rp <= 2048 && d * rk * rk < 16777216.0 && T * rp * rk < 16777216.0;
}

static const float *W(const fwd *f, int point, const float *host_w) {
    qtk_vit_cuda *g = f->g;
    if (f->qz && g->qd.w_on[point]) return qtk_qreg_dev_weight(&g->qd, point);
    return DEV(g, host_w);
}

#define LAUNCH(kernel, n, ...) QTK_LAUNCH(kernel, qtk_grid_for((n), 256), 256, 0, g->st, __VA_ARGS__)

enum { POST_Q, POST_GELU, POST_RESID };

// y = x W^T + b, then by `post`: POST_Q y = q(y); POST_GELU y = q(GELU(y)); POST_RESID
// resid = qr(resid + q(y)). In the FP32 forward the residual add is folded into the GEMM (C = resid).
// xint: the input is g->codes of quantizer xpoint (int_gemm said so), else x. codes: POST_GELU writes
// the int8 codes of its quantizer there (the next linear runs on int8) instead of floats to y.
static qtk_status linear(const fwd *f, const float *x, int xint, int xpoint, int wpoint, const float *hw, const float *hb,
                         float *y, int rows, int N, int K, int post, int qpoint, int rpoint, float *resid, int8_t *codes,
                         __half *hout) {
    qtk_vit_cuda *g = f->g;
    int done = 0;
    if (xint) {
        const dquant *qx = &g->qd.q[xpoint];
        const struct wint *w = &g->wi[wpoint];
        iepi e = {g->acc, (unsigned)(N + 4), (unsigned)N, (double)K, (double)qx->s,
                  (double)qx->z - (qx->hi > 127.0f ? 128.0 : 0.0), w->alpha, w->gamma, w->bsum, DEV(g, hb)};
        QTK_TRY(qtk_gemm_int8(&g->gm, g->codes, w->codes, g->acc, rows, N + 4, K)); // row N: the codes' row sums
        const dquant *q = QP(f, qpoint);
        const dim3 grid((unsigned)rows, (unsigned)(N + 127) / 128);
        g->n_int8++;
        if (post == POST_Q) k_int_post<POST_Q><<<grid, 128, 0, g->st>>>(e, y, NULL, NULL, *q, NOQ, hout);
        else if (post == POST_GELU) k_int_post<POST_GELU><<<grid, 128, 0, g->st>>>(e, y, codes, NULL, *q, NOQ, NULL);
        else k_int_post<POST_RESID><<<grid, 128, 0, g->st>>>(e, NULL, NULL, resid, *q, *QP(f, rpoint), NULL);
        QTK_CUDA_TRY_LAUNCH("int8 epilogue");
        return QTK_OK;
    }
    // residual folded into the GEMM when neither quantizer around the add is on (always in the FP32 forward)
    if (post == POST_RESID && !f->cal && !QP(f, qpoint)->on && !QP(f, rpoint)->on && qtk_gemm_lt(&g->gm, x, W(f, wpoint, hw), DEV(g, hb), resid, rows, N, K, 1, &done) == QTK_OK)
        return QTK_OK;
    QTK_TRY(qtk_gemm_lt(&g->gm, x, W(f, wpoint, hw), DEV(g, hb), y, rows, N, K, 0, &done));
    const unsigned n = (unsigned)rows * (unsigned)N;
    const dquant *q = QP(f, qpoint);
    if (!done) LAUNCH(k_bias_quant, n, y, DEV(g, hb), n, (unsigned)N, post == POST_Q ? *q : NOQ);
    if (post == POST_GELU) LAUNCH(k_gelu_quant, n, y, n, (unsigned)N, *q, codes);
    else if (post == POST_RESID) {
        QTK_TRY(observe(f, qpoint, y, (size_t)rows, (size_t)N));
        LAUNCH(k_residual_quant, n, resid, y, n, (unsigned)N, *q, *QP(f, rpoint));
        return observe(f, rpoint, resid, (size_t)rows, (size_t)N);
    } else if (done && q->on) LAUNCH(k_quant, n, y, n, (unsigned)N, *q);
    return observe(f, qpoint, y, (size_t)rows, (size_t)N);
}

// codes: the int8 codes of out_point's quantizer there instead of floats to y
static qtk_status norm(const fwd *f, int ln, const float *x, float *y, int rows, const float *w, const float *b,
                       int out_point, int8_t *codes) {
    qtk_vit_cuda *g = f->g;
    const int C = g->m->cfg.dim;
    if (f->iln && g->ln_on[ln])
        k_int_layernorm<<<(rows + 7) / 8, 256, 0, g->st>>>(x, y, (unsigned)rows, C, g->ln_s[ln], g->ln_pc[ln], g->ln_s1[ln], g->ln_sout[ln],
                                                 1.0f / (float)C, DEV(g, w), DEV(g, b), *QP(f, out_point), codes);
    else
        k_layernorm<<<(rows + 7) / 8, 256, 0, g->st>>>(x, y, (unsigned)rows, C, DEV(g, w), DEV(g, b), g->m->cfg.ln_eps,
                                                       *QP(f, out_point), codes);
    QTK_CUDA_TRY_LAUNCH("layernorm");
    return observe(f, out_point, y, (size_t)rows, (size_t)C);
}

// The forward in three parts, as vit.c: embed (images -> x), blocks [from, to), head (x -> g->logits).
// images: a host pointer, or a device pointer when dev.
qtk_status vitc_fwd_embed(const fwd *f, const float *images, int B, int dev) {
    qtk_vit_cuda *g = f->g;
    const qtk_vit *m = g->m;
    const qtk_vit_config *c = &m->cfg;
    const int C = c->dim, T = m->n_tokens, NP = c->n_prefix, G = m->grid, G2 = G * G;
    const int K = c->in_chans * c->patch * c->patch, rows = B * T;
    const size_t img = (size_t)c->in_chans * c->img_size * c->img_size;
    const float *src = images;
    if (!dev || (f->qz && g->qd.q[QTK_VIT_P_INPUT].on)) {
        QTK_CUDA_TRY(cudaMemcpyAsync(g->img, images, (size_t)B * img * sizeof(float),
                                     dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice, g->st));
        src = g->img;
    }
    if (f->qz && g->qd.q[QTK_VIT_P_INPUT].on) LAUNCH(k_quant, B * img, g->img, (unsigned)(B * img), 1u, *QP(f, QTK_VIT_P_INPUT));
    QTK_TRY(observe(f, QTK_VIT_P_INPUT, src, (size_t)B * c->in_chans * c->img_size, (size_t)c->img_size));
    LAUNCH(k_im2col, (size_t)B * G2 * K, src, g->cols, B, c->in_chans, c->img_size, c->patch, G);
    QTK_TRY(linear(f, g->cols, 0, 0, QTK_VIT_P_PATCH_W, m->patch_w, m->patch_b, g->patch, B * G2, C, K, POST_Q,
                   QTK_VIT_P_PATCH_OUT, 0, NULL, NULL, NULL));
    LAUNCH(k_concat, (size_t)rows * C, g->x, g->patch, DEV(g, m->cls_token), m->dist_token ? DEV(g, m->dist_token) : NULL,
           B, T, NP, C, *QP(f, QTK_VIT_P_CLS_CONCAT));
    QTK_TRY(observe(f, QTK_VIT_P_CLS_CONCAT, g->x, (size_t)rows, (size_t)C));
    const float *pos = DEV(g, m->pos_embed);
    QTK_TRY(observe(f, QTK_VIT_P_POS, pos, (size_t)T, (size_t)C));
    if (f->qz && g->qd.q[QTK_VIT_P_POS].on) {
        QTK_CUDA_TRY(cudaMemcpyAsync(g->pos, pos, (size_t)T * C * sizeof(float), cudaMemcpyDeviceToDevice, g->st));
        LAUNCH(k_quant, (size_t)T * C, g->pos, (unsigned)(T * C), (unsigned)C, *QP(f, QTK_VIT_P_POS));
        pos = g->pos;
    }
    LAUNCH(k_add_pos, (size_t)rows * C, g->x, pos, (unsigned)(rows * C), (unsigned)(T * C), (unsigned)C,
           *QP(f, QTK_VIT_P_EMBED_OUT));
    return observe(f, QTK_VIT_P_EMBED_OUT, g->x, (size_t)rows, (size_t)C);
}

qtk_status vitc_fwd_blocks(const fwd *f, int B, int from, int to) {
    qtk_vit_cuda *g = f->g;
    const qtk_vit *m = g->m;
    const qtk_vit_config *c = &m->cfg;
    const int C = c->dim, T = m->n_tokens, H = c->heads, d = C / H, M = c->mlp_hidden, rows = B * T;
    // blocks
    const float one = 1.0f, zero = 0.0f, scale = 1.0f / sqrtf((float)d);
    const size_t BH = (size_t)g->maxB * H;
    for (int l = from; l < to; l++) {
        const qtk_vit_block *bl = &m->blocks[l];
        const int pb = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB;
        // which linears run on int8 tensor cores (their inputs are then written as int8 codes)
        const int i_qkv = int_gemm(f, pb + QTK_VIT_B_QKV_W, pb + QTK_VIT_B_NORM1_OUT, 3 * C, C, rows),
                  i_proj = int_gemm(f, pb + QTK_VIT_B_PROJ_W, pb + QTK_VIT_B_CONTEXT, C, C, rows),
                  i_fc1 = int_gemm(f, pb + QTK_VIT_B_FC1_W, pb + QTK_VIT_B_NORM2_OUT, M, C, rows),
                  i_fc2 = int_gemm(f, pb + QTK_VIT_B_FC2_W, pb + QTK_VIT_B_ACT_OUT, C, M, rows);
        // the attention's two GEMMs on fp16 tensor cores, exact (att_int)
        const int i_att = i_qkv && att_int(f, pb, T, d);
        if (f->qz) g->n_linear += 4, g->n_att++, g->n_att16 += i_att;
        QTK_TRY(norm(f, 2 * l, g->x, g->hbuf, rows, bl->ln1_w, bl->ln1_b, pb + QTK_VIT_B_NORM1_OUT, i_qkv ? g->codes : NULL));
        QTK_TRY(linear(f, g->hbuf, i_qkv, pb + QTK_VIT_B_NORM1_OUT, pb + QTK_VIT_B_QKV_W, bl->qkv_w, bl->qkv_b, g->qkv, rows,
                       3 * C, C, POST_Q, pb + QTK_VIT_B_QKV_OUT, 0, NULL, NULL, i_att ? g->qkvh : NULL));
        // scores = (q k^T) * d^-1/2, per (image, head): column-major S^T = k q^T
        if (i_att) { // exact integer sums, times scale * s_qkv^2
            const float a = (float)((double)scale * g->qd.q[pb + QTK_VIT_B_QKV_OUT].s * g->qd.q[pb + QTK_VIT_B_QKV_OUT].s);
            QTK_CUBLAS_TRY(cublasGemmBatchedEx(g->gm.h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, d, &a, g->hptr, CUDA_R_16F, 3 * C,
                                               g->hptr + BH, CUDA_R_16F, 3 * C, &zero, (void *const *)(g->ptr + 2 * BH),
                                               CUDA_R_32F, T, B * H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        } else
            QTK_CUBLAS_TRY(cublasSgemmBatched(g->gm.h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, d, &scale, g->ptr, 3 * C, g->ptr + BH,
                                              3 * C, &zero, (float *const *)(g->ptr + 2 * BH), T, B * H));
        QTK_TRY(observe(f, pb + QTK_VIT_B_SCORES, g->att, (size_t)B * H * T, (size_t)T));
        k_softmax<<<(unsigned)(((size_t)B * H * T + 7) / 8), 256, 0, g->st>>>(
            g->att, (size_t)B * H * T, T, *QP(f, pb + QTK_VIT_B_SCORES), *QP(f, pb + QTK_VIT_B_SOFTMAX), i_att ? g->atth : NULL);
        QTK_CUDA_TRY_LAUNCH("softmax");
        QTK_TRY(observe(f, pb + QTK_VIT_B_SOFTMAX, g->att, (size_t)B * H * T, (size_t)T));
        // ctx = P v: column-major ctx^T = v^T P^T
        if (i_att) { // exact integer sums, times s_softmax * s_qkv
            const float a = (float)((double)g->qd.q[pb + QTK_VIT_B_SOFTMAX].s * g->qd.q[pb + QTK_VIT_B_QKV_OUT].s);
            QTK_CUBLAS_TRY(cublasGemmBatchedEx(g->gm.h, CUBLAS_OP_N, CUBLAS_OP_N, d, T, T, &a, g->hptr + 3 * BH, CUDA_R_16F,
                                               3 * C, g->hptr + 4 * BH, CUDA_R_16F, T, &zero,
                                               (void *const *)(g->ptr + 5 * BH), CUDA_R_32F, C, B * H, CUBLAS_COMPUTE_32F,
                                               CUBLAS_GEMM_DEFAULT));
        } else
            QTK_CUBLAS_TRY(cublasSgemmBatched(g->gm.h, CUBLAS_OP_N, CUBLAS_OP_N, d, T, T, &one, g->ptr + 3 * BH, 3 * C,
                                              g->ptr + 4 * BH, T, &zero, (float *const *)(g->ptr + 5 * BH), C, B * H));
        if (i_proj)
            LAUNCH(k_quant_codes, (size_t)rows * C, g->ctx, g->codes, (unsigned)(rows * C), *QP(f, pb + QTK_VIT_B_CONTEXT));
        else if (f->qz && g->qd.q[pb + QTK_VIT_B_CONTEXT].on)
            LAUNCH(k_quant, (size_t)rows * C, g->ctx, (unsigned)(rows * C), (unsigned)C, *QP(f, pb + QTK_VIT_B_CONTEXT));
        QTK_TRY(observe(f, pb + QTK_VIT_B_CONTEXT, g->ctx, (size_t)rows, (size_t)C));
        QTK_TRY(linear(f, g->ctx, i_proj, pb + QTK_VIT_B_CONTEXT, pb + QTK_VIT_B_PROJ_W, bl->proj_w, bl->proj_b, g->hbuf, rows,
                       C, C, POST_RESID, pb + QTK_VIT_B_PROJ_OUT, pb + QTK_VIT_B_RESID1, g->x, NULL, NULL));
        QTK_TRY(norm(f, 2 * l + 1, g->x, g->hbuf, rows, bl->ln2_w, bl->ln2_b, pb + QTK_VIT_B_NORM2_OUT, i_fc1 ? g->codes : NULL));
        QTK_TRY(linear(f, g->hbuf, i_fc1, pb + QTK_VIT_B_NORM2_OUT, pb + QTK_VIT_B_FC1_W, bl->fc1_w, bl->fc1_b, g->mlp, rows, M,
                       C, POST_GELU, pb + QTK_VIT_B_ACT_OUT, 0, NULL, i_fc2 ? g->codes : NULL, NULL));
        QTK_TRY(linear(f, g->mlp, i_fc2, pb + QTK_VIT_B_ACT_OUT, pb + QTK_VIT_B_FC2_W, bl->fc2_w, bl->fc2_b, g->hbuf, rows, C,
                       M, POST_RESID, pb + QTK_VIT_B_FC2_OUT, pb + QTK_VIT_B_RESID2, g->x, NULL, NULL));
    }
    return QTK_OK;
}

qtk_status vitc_fwd_head(const fwd *f, int B) {
    qtk_vit_cuda *g = f->g;
    const qtk_vit *m = g->m;
    const qtk_vit_config *c = &m->cfg;
    const int C = c->dim, T = m->n_tokens, NP = c->n_prefix, NC = c->n_classes;
    const float one = 1.0f, zero = 0.0f;
    // head: final norm on the prefix tokens, then the classifier(s)
    const int hb = qtk_vit_head_base(m);
    LAUNCH(k_prefix, (size_t)B * NP * C, g->x, g->hbuf, B, T, NP, C);
    QTK_TRY(norm(f, 2 * c->depth, g->hbuf, g->feat, B * NP, m->norm_w, m->norm_b, hb + QTK_VIT_H_NORM_OUT, NULL));
    QTK_CUBLAS_TRY(cublasSgemm(g->gm.h, CUBLAS_OP_T, CUBLAS_OP_N, NC, B, C, &one, W(f, hb + QTK_VIT_H_HEAD_W, m->head_w), C,
                               g->feat, NP * C, &zero, g->logits, NC));
    if (NP == 2)
        QTK_CUBLAS_TRY(cublasSgemm(g->gm.h, CUBLAS_OP_T, CUBLAS_OP_N, NC, B, C, &one, DEV(g, m->head_dist_w), C, g->feat + C,
                                   NP * C, &zero, g->ld, NC));
    LAUNCH(k_head, (size_t)B * NC, g->logits, NP == 2 ? g->ld : NULL, DEV(g, m->head_b),
           NP == 2 ? DEV(g, m->head_dist_b) : NULL, B, NC, *QP(f, hb + QTK_VIT_H_HEAD_OUT));
    return observe(f, hb + QTK_VIT_H_HEAD_OUT, g->logits, (size_t)B, (size_t)NC);
}

// images, logits: host pointers, or device pointers when dev (then nothing is copied back and nothing waited for)
static qtk_status forward(const fwd *f, const float *images, int B, float *logits_out, int dev) {
    qtk_vit_cuda *g = f->g;
    const size_t NC = (size_t)g->m->cfg.n_classes;
    QTK_TRY(vitc_fwd_embed(f, images, B, dev));
    QTK_TRY(vitc_fwd_blocks(f, B, 0, g->m->cfg.depth));
    QTK_TRY(vitc_fwd_head(f, B));
    QTK_CUDA_TRY(cudaMemcpyAsync(logits_out, g->logits, (size_t)B * NC * sizeof(float),
                                 dev ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost, g->st));
    if (!dev) QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

qtk_status vitc_range_checked(qtk_vit_cuda *g, int B, int block, int mode) {
    if (B < 1 || B > g->maxB) return qtk_fail(QTK_ERR_ARG, "GPU forward: batch of %d, planned for at most %d", B, g->maxB);
    if (block < 0 || block > g->m->cfg.depth) return qtk_fail(QTK_ERR_ARG, "block %d out of range 0..%d", block, g->m->cfg.depth);
    if (mode < 0 || mode > 2 || (mode && !g->quant_ready)) return qtk_fail(QTK_ERR_ARG, "GPU forward: mode %d (0 FP32, 1 quantized, 2 search targets): unknown, or quantized before set_quant", mode);
    return QTK_OK;
}

// mode 0: FP32; 1: quantized; 2: the search's targets (quantizers off, integer LayerNorm on)
fwd vitc_fwd_for(qtk_vit_cuda *g, int mode) {
    fwd f = {g, mode == 1, mode == 1 ? g->int_ln : mode == 2, NULL, 0, 0};
    return f;
}

static qtk_status forward_checked(qtk_vit_cuda *g, const float *images, int B, float *logits, int quantized, int dev) {
    QTK_TRY(vitc_range_checked(g, B, 0, quantized));
    fwd f = vitc_fwd_for(g, quantized);
    return forward(&f, images, B, logits, dev);
}

extern "C" qtk_status qtk_vit_cuda_forward(qtk_vit_cuda *g, const float *images, int B, float *logits, int quantized) {
    return forward_checked(g, images, B, logits, quantized, 0);
}

extern "C" qtk_status qtk_vit_cuda_forward_device(qtk_vit_cuda *g, const float *d_images, int B, float *d_logits,
                                                  int quantized) {
    return forward_checked(g, d_images, B, d_logits, quantized, 1);
}

extern "C" qtk_status qtk_vit_cuda_synchronize(qtk_vit_cuda *g) {
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

extern "C" qtk_status qtk_vit_cuda_block_input(qtk_vit_cuda *g, const float *images, int B, int block, float *x_out,
                                               int mode) {
    QTK_TRY(vitc_range_checked(g, B, block, mode));
    fwd f = vitc_fwd_for(g, mode);
    QTK_TRY(vitc_fwd_embed(&f, images, B, 0));
    QTK_TRY(vitc_fwd_blocks(&f, B, 0, block));
    size_t n = (size_t)B * g->m->n_tokens * g->m->cfg.dim;
    QTK_CUDA_TRY(cudaMemcpyAsync(x_out, g->x, n * sizeof(float), cudaMemcpyDeviceToHost, g->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

extern "C" qtk_status qtk_vit_cuda_forward_from(qtk_vit_cuda *g, const float *x_in, int B, int block, float *logits,
                                                int mode) {
    QTK_TRY(vitc_range_checked(g, B, block, mode));
    fwd f = vitc_fwd_for(g, mode);
    size_t n = (size_t)B * g->m->n_tokens * g->m->cfg.dim;
    QTK_CUDA_TRY(cudaMemcpyAsync(g->x, x_in, n * sizeof(float), cudaMemcpyHostToDevice, g->st));
    QTK_TRY(vitc_fwd_blocks(&f, B, block, g->m->cfg.depth));
    QTK_TRY(vitc_fwd_head(&f, B));
    QTK_CUDA_TRY(cudaMemcpyAsync(logits, g->logits, (size_t)B * g->m->cfg.n_classes * sizeof(float), cudaMemcpyDeviceToHost,
                                 g->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

extern "C" qtk_status qtk_vit_cuda_calibrate(qtk_vit_cuda *g, qtk_vit_quant *qv, const float *images, int n, int batch) {
    if (qv->m != g->m) return qtk_fail(QTK_ERR_ARG, "GPU calibration: the quantized model is of another ViT");
    if (batch < 1 || batch > g->maxB)
        return qtk_fail(QTK_ERR_ARG, "calibration batch %d does not fit the GPU plan (batch <= %d)", batch, g->maxB);
    int nb = n / batch; // drop_last=True, as the CPU calibration
    if (nb < 1) return qtk_fail(QTK_ERR_ARG, "%d calibration images are fewer than one batch of %d", n, batch);
    QTK_TRY(qtk_qreg_calibrate_weights(&qv->reg));
    QTK_TRY(vitc_qd_ready(g, qv));
    const qtk_vit_config *c = &g->m->cfg;
    size_t img = (size_t)c->in_chans * c->img_size * c->img_size;
    float *logits = (float *)malloc((size_t)batch * c->n_classes * sizeof(float));
    if (!logits) return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
    qtk_status st = QTK_OK;
    qv->reg.mode = QTK_QREG_CALIB;
    for (int b = 0; b < nb && st == QTK_OK; b++) {
        fwd f = {g, 0, 0, qv, b == nb - 1, b == 0};
        st = forward(&f, images + (size_t)b * batch * img, batch, logits, 0);
        if (st == QTK_OK && qv->progress) qv->progress(qv->progress_ctx, (b + 1) * batch, nb * batch);
    }
    free(logits);
    qv->reg.mode = st == QTK_OK ? QTK_QREG_QUANT : QTK_QREG_FP;
    if (st == QTK_OK) st = qtk_vit_cuda_set_quant(g, qv);
    return st;
}
