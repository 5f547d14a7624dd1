// The GPU ViT's setup (vit_cuda.h): buffer plan and sizes, create / destroy, and the quantization state
// uploaded from a qtk_vit_quant (scales of every point, integer LayerNorm parameters, quantized weights),
// kept current as the search changes a scale. Host code only: the kernels and the forward are in vit.cu.
#include "vit_internal.h"

// --- setup ---------------------------------------------------------------------

static void plan_sizes(const qtk_vit *m, int B, size_t *sz) {
    const qtk_vit_config *c = &m->cfg;
    size_t T = (size_t)m->n_tokens, C = (size_t)c->dim, G2 = (size_t)m->grid * m->grid, b = (size_t)B;
    size_t K = (size_t)c->in_chans * c->patch * c->patch, img = (size_t)c->in_chans * c->img_size * c->img_size;
    size_t NC = (size_t)c->n_classes;
    size_t v[] = {b * T * C, b * T * C, b * T * 3 * C, b * c->heads * T * T, b * T * C, b * T * c->mlp_hidden, b * G2 * K,
                  b * c->n_prefix * C, b * G2 * C, T * C, b * img, b * NC, b * NC};
    memcpy(sz, v, sizeof v);
}
enum { NBUF = 13 };

// the int8 path's buffers: codes (rows x max(C, M)) and int32 sums (rows x (max(3C, M) + 4))
// and the attention's fp16 operands: qkvh (rows x 3C) and atth (B x heads x T x T) halves
static void int_sizes(const qtk_vit *m, int B, size_t *codes, size_t *acc, size_t *halves) {
    const qtk_vit_config *c = &m->cfg;
    size_t rows = (size_t)B * m->n_tokens, C = (size_t)c->dim, M = (size_t)c->mlp_hidden, T = (size_t)m->n_tokens;
    *codes = rows * (C > M ? C : M);
    *acc = rows * ((3 * C > M ? 3 * C : M) + 4);
    *halves = rows * 3 * C + (size_t)B * c->heads * T * T;
}

size_t qtk_vit_cuda_bytes(const qtk_vit *m, int B, qtk_vit_gemm gemm) {
    size_t sz[NBUF], t = 0;
    plan_sizes(m, B, sz);
    for (int i = 0; i < NBUF; i++) t += (sz[i] + 63) / 64 * 64;
    t *= sizeof(float);
    if (gemm == QTK_VIT_GEMM_INT8) {
        size_t nc, na, nh;
        int_sizes(m, B, &nc, &na, &nh);
        t += nc + na * sizeof(int32_t) + nh * 2 + m->n_params * 2 + 6 * (size_t)B * m->cfg.heads * sizeof(void *);
    }
    t += m->n_params * sizeof(float) * 2;                           // the parameters and the quantized weights
    t += 6 * (size_t)B * m->cfg.heads * sizeof(float *);           // batched-GEMM pointers
    return t + ((size_t)96 << 20);                                  // cuBLAS(Lt) workspaces and per-channel scales
}

static qtk_status check_fits(const qtk_vit *m, int B, qtk_vit_gemm gemm) {
    size_t fr = 0, tot = 0;
    QTK_CUDA_TRY(cudaMemGetInfo(&fr, &tot));
    size_t need = qtk_vit_cuda_bytes(m, B, gemm);
    if (need > fr)
        return qtk_fail(QTK_ERR_NOMEM, "%s at batch %d needs %.2f GiB of GPU memory, %.2f GiB of %.2f GiB free: use a "
                        "smaller batch", m->cfg.name, B, need / 1073741824.0, fr / 1073741824.0, tot / 1073741824.0);
    return QTK_OK;
}

extern "C" void qtk_vit_cuda_destroy(qtk_vit_cuda *g) {
    if (!g) return;
    qtk_gemm_free(&g->gm);
    if (g->st) cudaStreamDestroy(g->st);
    cudaFree(g->d_cal);
    cudaFree(g->d_slots);
    cudaFree(g->d_params);
    qtk_qreg_dev_free(&g->qd);
    cudaFree(g->d_ln);
    cudaFree(g->mem);
    cudaFree(g->ptr);
    cudaFree(g->codes);
    cudaFree(g->qkvh); // atth lies inside it
    cudaFree(g->hptr);
    cudaFree(g->acc);
    cudaFree(g->wi_mem);
    free(g->wi);
    free(g);
}


static qtk_status create(qtk_vit_cuda *g, const qtk_vit *m, int B, qtk_vit_gemm gemm) {
    const qtk_vit_config *c = &m->cfg;
    if (B < 1) return qtk_fail(QTK_ERR_ARG, "GPU plan for batch %d", B);
    if (2 * c->depth + 1 > 256) return qtk_fail(QTK_ERR_UNSUPPORTED, "more than 127 blocks");
    if ((unsigned)gemm > QTK_VIT_GEMM_INT8) return qtk_fail(QTK_ERR_ARG, "GPU GEMM arithmetic %d", (int)gemm);
    QTK_TRY(check_fits(m, B, gemm));
    const int tf32 = gemm == QTK_VIT_GEMM_TF32;
    g->m = m;
    g->maxB = B;
    g->gemm = gemm;
    QTK_CUDA_TRY(cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking));
    QTK_TRY(qtk_gemm_init(&g->gm, g->st, tf32, (size_t)32 << 20, 0));
    QTK_CUDA_TRY(cudaMalloc((void **)&g->d_params, m->n_params * sizeof(float)));
    QTK_CUDA_TRY(cudaMemcpy(g->d_params, m->mem, m->n_params * sizeof(float), cudaMemcpyHostToDevice));
    size_t sz[NBUF], t = 0;
    plan_sizes(m, B, sz);
    for (int i = 0; i < NBUF; i++) {
        if (sz[i] >= 0xffffffffu)
            return qtk_fail(QTK_ERR_ARG, "GPU forward: batch %d makes a buffer of %zu elements (at most 2^32 - 1)", B, sz[i]);
        t += (sz[i] + 63) / 64 * 64;
    }
    QTK_CUDA_TRY(cudaMalloc(&g->mem, t * sizeof(float)));
    if (gemm == QTK_VIT_GEMM_INT8) {
        size_t nc, na, nh;
        int_sizes(m, B, &nc, &na, &nh);
        if (na >= 0xffffffffu || nh >= 0xffffffffu)
            return qtk_fail(QTK_ERR_ARG, "GPU forward: batch %d makes an int8 buffer of %zu elements (at most 2^32 - 1)", B,
                            na > nh ? na : nh);
        QTK_CUDA_TRY(cudaMalloc((void **)&g->codes, nc));
        QTK_CUDA_TRY(cudaMalloc((void **)&g->acc, na * sizeof(int32_t)));
        QTK_CUDA_TRY(cudaMalloc((void **)&g->qkvh, nh * sizeof(__half)));
        g->atth = g->qkvh + (size_t)B * m->n_tokens * 3 * c->dim;
    }
    float **dst[NBUF] = {&g->x, &g->hbuf, &g->qkv, &g->att, &g->ctx, &g->mlp, &g->cols, &g->feat, &g->patch, &g->pos,
                         &g->img, &g->logits, &g->ld};
    float *p = (float *)g->mem;
    for (int i = 0; i < NBUF; i++) {
        *dst[i] = p;
        p += (sz[i] + 63) / 64 * 64;
    }
    // batched attention GEMMs: per (image, head) pointers into qkv, att and ctx
    const size_t T = (size_t)m->n_tokens, C = (size_t)c->dim, H = (size_t)c->heads, d = C / H, BH = (size_t)B * H;
    const float **hp = (const float **)malloc(6 * BH * sizeof *hp);
    if (!hp) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    for (size_t bh = 0; bh < BH; bh++) {
        size_t b = bh / H, h = bh % H;
        const float *q = g->qkv + b * T * 3 * C + h * d;
        hp[0 * BH + bh] = q + C;              // k
        hp[1 * BH + bh] = q;                  // q
        hp[2 * BH + bh] = g->att + bh * T * T; // scores / probabilities
        hp[3 * BH + bh] = q + 2 * C;          // v
        hp[4 * BH + bh] = g->att + bh * T * T;
        hp[5 * BH + bh] = g->ctx + b * T * C + h * d;
    }
    cudaError_t e = cudaMalloc((void **)&g->ptr, 6 * BH * sizeof *hp);
    if (e == cudaSuccess) e = cudaMemcpy(g->ptr, hp, 6 * BH * sizeof *hp, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && g->qkvh) { // the same for the fp16 operands (element offsets kept)
        for (size_t i = 0; i < 5 * BH; i++) {
            size_t off = i / BH == 2 || i / BH == 4 ? (size_t)(hp[i] - g->att) : (size_t)(hp[i] - g->qkv);
            hp[i] = (const float *)((i / BH == 2 || i / BH == 4 ? g->atth : g->qkvh) + off);
        }
        e = cudaMalloc((void **)&g->hptr, 5 * BH * sizeof *hp);
        if (e == cudaSuccess) e = cudaMemcpy(g->hptr, hp, 5 * BH * sizeof *hp, cudaMemcpyHostToDevice);
    }
    free(hp);
    QTK_CUDA_TRY(e);
    g->npoints = qtk_vit_head_base(m) + QTK_VIT_PH;
    g->wi = (struct wint *)calloc((size_t)g->npoints, sizeof *g->wi);
    if (!g->wi) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    if (gemm == QTK_VIT_GEMM_INT8) QTK_TRY(vitc_fp16_sums_exact(g, &g->fp16_exact));
    return QTK_OK;
}

extern "C" qtk_status qtk_vit_cuda_create(qtk_vit_cuda **out, const qtk_vit *m, int max_batch, qtk_vit_gemm gemm) {
    *out = NULL;
    qtk_vit_cuda *g = (qtk_vit_cuda *)calloc(1, sizeof *g);
    if (!g) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    qtk_status st = create(g, m, max_batch, gemm);
    if (st != QTK_OK) {
        qtk_vit_cuda_destroy(g);
        return st;
    }
    *out = g;
    return QTK_OK;
}

// --- quantization state ------------------------------------------------------------

qtk_status vitc_qd_ready(qtk_vit_cuda *g, const qtk_vit_quant *qv) {
    if (qv->reg.n != g->npoints) return qtk_fail(QTK_ERR_ARG, "GPU forward: %d quantization points, expected %d", qv->reg.n, g->npoints);
    return g->qd.n ? QTK_OK : qtk_qreg_dev_init(&g->qd, &qv->reg, g->st);
}

extern "C" qtk_status qtk_vit_cuda_set_quant(qtk_vit_cuda *g, qtk_vit_quant *qv) {
    if (qv->m != g->m) return qtk_fail(QTK_ERR_ARG, "GPU forward: the quantized model is of another ViT");
    QTK_TRY(vitc_qd_ready(g, qv));
    g->quant_ready = 0;
    QTK_TRY(qtk_qreg_dev_upload(&g->qd, &qv->reg)); // every point: quantized weights, activation quantizers
    // integer LayerNorms where the CPU hook would use them (whether or not those quantizers are enabled)
    g->int_ln = qv->qc.int_layernorm;
    size_t need = 0, used = 0;
    for (int ln = 0; ln <= 2 * g->m->cfg.depth; ln++) {
        int in, out;
        qtk_vit_ln_points(g->m, ln, &in, &out);
        need += qv->reg.p[in].calibrated ? qv->reg.p[in].qp.n : 0;
    }
    if (need > g->ln_cap) {
        cudaFree(g->d_ln);
        g->d_ln = NULL;
        g->ln_cap = 0;
        QTK_CUDA_TRY(cudaMalloc((void **)&g->d_ln, need * sizeof(float)));
        g->ln_cap = need;
    }
    for (int ln = 0; ln <= 2 * g->m->cfg.depth; ln++) {
        int in, out;
        qtk_vit_ln_points(g->m, ln, &in, &out);
        const qtk_qpoint *qi = &qv->reg.p[in], *qo = &qv->reg.p[out];
        g->ln_on[ln] = qi->calibrated && qo->calibrated;
        if (!g->ln_on[ln]) continue;
        size_t n = qi->qp.n;
        float s1 = qi->qp.scale[0];
        for (size_t c = 1; c < n; c++) s1 = qi->qp.scale[c] < s1 ? qi->qp.scale[c] : s1;
        g->ln_s1[ln] = s1;
        g->ln_pc[ln] = n > 1;
        g->ln_sout[ln] = qo->qp.scale[0];
        float *ds = g->d_ln + used;
        used += n;
        QTK_CUDA_TRY(cudaMemcpyAsync(ds, qi->qp.scale, n * sizeof(float), cudaMemcpyHostToDevice, g->st));
        g->ln_s[ln] = ds;
    }
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    QTK_TRY(vitc_int_weights(g, qv));
    g->n_int8 = g->n_linear = g->n_att16 = g->n_att = 0;
    g->quant_ready = 1;
    memset(g->slot_valid, 0, sizeof g->slot_valid); // cached block inputs are of the old parameters
    g->cur_block = -1;
    return QTK_OK;
}

extern "C" qtk_status qtk_vit_cuda_update_weight(qtk_vit_cuda *g, const qtk_vit_quant *qv, int point) {
    if (!g->quant_ready) return qtk_fail(QTK_ERR_ARG, "GPU forward: set_quant first");
    if (point < 0 || point >= qv->reg.n || qv->reg.p[point].kind != QTK_QPOINT_WEIGHT)
        return qtk_fail(QTK_ERR_ARG, "point %d is not a weight quantizer", point);
    QTK_TRY(qtk_qreg_dev_update_weight(&g->qd, &qv->reg, point));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    if (vitc_int_point(g, point) && g->wi[point].codes) {
        QTK_TRY(qtk_qreg_dev_weight_params(&g->qd, &qv->reg.p[point]));
        QTK_TRY(vitc_int_weight(g, qv, point));
        QTK_CUDA_TRY(cudaDeviceSynchronize());
    }
    return QTK_OK;
}

extern "C" qtk_status qtk_vit_cuda_update_act(qtk_vit_cuda *g, const qtk_vit_quant *qv, int point) {
    if (!g->quant_ready) return qtk_fail(QTK_ERR_ARG, "GPU forward: set_quant first");
    if (point < 0 || point >= qv->reg.n || qv->reg.p[point].kind == QTK_QPOINT_WEIGHT)
        return qtk_fail(QTK_ERR_ARG, "point %d is not an activation quantizer", point);
    const qtk_qpoint *q = &qv->reg.p[point];
    for (int ln = 0; ln <= 2 * g->m->cfg.depth; ln++) { // an integer LayerNorm's output scale
        int in, out;
        qtk_vit_ln_points(g->m, ln, &in, &out);
        if (out == point && g->ln_on[ln]) g->ln_sout[ln] = q->qp.scale[0];
    }
    return qtk_qreg_dev_update_act(&g->qd, &qv->reg, point);
}

extern "C" int qtk_vit_cuda_max_batch(const qtk_vit_cuda *g) { return g->maxB; }

extern "C" void qtk_vit_cuda_int8_count(const qtk_vit_cuda *g, int *int8_layers, int *linear_layers, int *fp16_attention,
                             int *attention_blocks) {
    *int8_layers = g->n_int8;
    *linear_layers = g->n_linear;
    *fp16_attention = g->n_att16;
    *attention_blocks = g->n_att;
}
