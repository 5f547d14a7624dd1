// The quantized ViT baseline: quantizer registry, calibration, quantized forward.
#include "vit_quant.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/biascorr.h"
#include "../core/fakequant.h"
#include "../core/intlayernorm.h"
#include "../core/qtk.h"
#include "../core/safetensors.h"
#include "../core/tensor.h"

void qtk_vit_qconfig_default(qtk_vit_qconfig *qc) {
    qc->w_bits = 4;
    qc->a_bits = 8;
    qc->bias_corr = 1;
    qc->int_layernorm = 1;
    qc->quant_input = -1;
}

static const char *block_names[QTK_VIT_PB] = {
    "norm1.out",        "attn.qkv.weight", "attn.qkv.out", "attn.scores",    "attn.softmax",
    "attn.context",     "attn.proj.weight", "attn.proj.out", "resid1",         "norm2.out",
    "mlp.fc1.weight",   "mlp.act.out",      "mlp.fc2.weight", "mlp.fc2.out",    "resid2",
};

static int is_ptf_point(int k) { return k == QTK_VIT_B_RESID1 || k == QTK_VIT_B_RESID2; }

// Registers one quantizer at `point`.
static qtk_status add(qtk_vit_quant *qv, int point, const char *name, int weight, int ptf, const float *w, size_t O,
                      size_t K, float **wq_next) {
    qtk_vit_quantizer *q = &qv->q[point];
    snprintf(q->name, sizeof q->name, "%s", name);
    q->is_weight = weight;
    q->enabled = 1;
    if (weight) {
        q->w = w;
        q->O = O;
        q->K = K;
        q->wq = *wq_next;
        *wq_next += O * K;
        return qtk_observer_init(&q->ob, QTK_OBS_MINMAX, qv->qc.w_bits, false, true, 0);
    }
    if (ptf) return qtk_observer_init(&q->ob, QTK_OBS_PTF, qv->qc.a_bits, false, true, -1);
    return qtk_observer_init(&q->ob, QTK_OBS_OMSE, qv->qc.a_bits, false, false, 0);
}

// --- hooks -------------------------------------------------------------------

// the report's squared error of one chunk of a quantizer's input
typedef struct {
    const qtk_qlayout *L;
    const qtk_qparams *qp;
    const float *x;
    int lo, hi;
} report_ctx;

static double report_chunk(const void *ctx, size_t a, size_t b) {
    const report_ctx *c = ctx;
    double e = 0;
    for (size_t i = a; i < b; i++) {
        size_t k = qtk_qlayout_index(c->L, i);
        double d = (double)c->x[i] - qtk_fake_quant_scalar(c->x[i], c->qp->scale[k], c->qp->zero[k], c->lo, c->hi, c->qp->formula);
        e += d * d;
    }
    return e;
}

static qtk_status hook_act(void *ctx, int point, float *x, int ndim, const int64_t *shape) {
    qtk_vit_quant *qv = ctx;
    qtk_vit_quantizer *q = &qv->q[point];
    if (!q->name[0] || q->is_weight) return QTK_OK;
    if (qv->mode == QTK_VQ_CALIB) {
        qtk_status st = qtk_observer_update(&q->ob, x, ndim, shape);
        if (st == QTK_OK && qv->last_batch) {
            qtk_qparams_free(&q->qp);
            st = qtk_observer_params(&q->ob, x, ndim, shape, &q->qp);
            q->calibrated = st == QTK_OK;
        }
        if (st != QTK_OK) return qtk_fail(st, "quantizer %s: %s", q->name, qtk_last_error());
        return QTK_OK;
    }
    if (qv->mode != QTK_VQ_QUANT || !q->enabled || !q->calibrated) return QTK_OK;
    if (qv->report) {
        qtk_qlayout L;
        QTK_TRY(qtk_qlayout_make(&q->qp, ndim, shape, &L));
        int lo, hi;
        qtk_qrange(q->qp.bits, q->qp.is_signed, &lo, &hi);
        report_ctx rc = {&L, &q->qp, x, lo, hi};
        q->err_sum += qtk_sum_chunked(L.numel, 0, report_chunk, &rc);
        q->n_seen += (double)L.numel;
    }
    return qtk_fake_quant(&q->qp, x, x, ndim, shape);
}

static const float *hook_weight(void *ctx, int point) {
    qtk_vit_quant *qv = ctx;
    const qtk_vit_quantizer *q = &qv->q[point];
    return qv->mode == QTK_VQ_QUANT && q->name[0] && q->enabled && q->calibrated ? q->wq : NULL;
}

static int hook_layernorm(void *ctx, int ln, const float *x, float *y, size_t rows, size_t C, const float *w,
                          const float *b) {
    qtk_vit_quant *qv = ctx;
    if (!((qv->mode == QTK_VQ_QUANT && qv->qc.int_layernorm) || qv->mode == QTK_VQ_FP_INTLN)) return 0;
    int depth = qv->m->cfg.depth, l = ln / 2, in, out;
    if (ln == 2 * depth) {
        in = QTK_VIT_P_BLOCK0 + (depth - 1) * QTK_VIT_PB + QTK_VIT_B_RESID2;
        out = qtk_vit_head_base(qv->m) + QTK_VIT_H_NORM_OUT;
    } else if (ln % 2 == 0) {
        in = l == 0 ? QTK_VIT_P_EMBED_OUT : QTK_VIT_P_BLOCK0 + (l - 1) * QTK_VIT_PB + QTK_VIT_B_RESID2;
        out = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB + QTK_VIT_B_NORM1_OUT;
    } else {
        in = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB + QTK_VIT_B_RESID1;
        out = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB + QTK_VIT_B_NORM2_OUT;
    }
    const qtk_vit_quantizer *qi = &qv->q[in], *qo = &qv->q[out];
    if (!qi->calibrated || !qo->calibrated) return 0;
    // QIntLayerNorm: input scale of the PTF quantizer before it, output scale of the quantizer after it
    qtk_int_layernorm(x, y, rows, C, qi->qp.scale, qi->qp.n > 1, qo->qp.scale[0], w, b);
    return 1;
}

// --- lifecycle -----------------------------------------------------------------

qtk_status qtk_vit_quant_init(qtk_vit_quant *qv, const qtk_vit *m, const qtk_vit_qconfig *qc) {
    memset(qv, 0, sizeof *qv);
    int lo, hi;
    QTK_TRY(qtk_qrange(qc->w_bits, false, &lo, &hi));
    QTK_TRY(qtk_qrange(qc->a_bits, false, &lo, &hi));
    if (m->cfg.n_prefix != 1)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "the quantized baseline is defined for ViT/DeiT without a distillation "
                        "token (the reference quantizes none); %s has one", m->cfg.name);
    qv->m = m;
    qv->qc = *qc;
    const qtk_vit_config *c = &m->cfg;
    size_t C = (size_t)c->dim, M = (size_t)c->mlp_hidden, K = (size_t)(c->in_chans * c->patch * c->patch);
    size_t NC = (size_t)c->n_classes;
    size_t wtotal = C * K + (size_t)c->depth * (3 * C * C + C * C + M * C + C * M) + NC * C;
    qv->n = qtk_vit_head_base(m) + QTK_VIT_PH;
    qv->q = calloc((size_t)qv->n, sizeof *qv->q);
    qv->wq_mem = qtk_aligned_alloc(wtotal * sizeof(float));
    if (!qv->q || !qv->wq_mem) {
        qtk_vit_quant_free(qv);
        return qtk_fail(QTK_ERR_NOMEM, "cannot allocate the quantized copy of %zu weights", wtotal);
    }
    float *wn = qv->wq_mem;
    int quant_input = qc->quant_input < 0 ? c->input_quant : qc->quant_input;
    qtk_status st = QTK_OK;
    if (quant_input) st = add(qv, QTK_VIT_P_INPUT, "input", 0, 0, NULL, 0, 0, &wn);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_PATCH_W, "patch_embed.proj.weight", 1, 0, m->patch_w, C, K, &wn);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_PATCH_OUT, "patch_embed.out", 0, 0, NULL, 0, 0, &wn);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_CLS_CONCAT, "embed.cls_concat", 0, 0, NULL, 0, 0, &wn);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_POS, "pos_embed", 0, 0, NULL, 0, 0, &wn);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_EMBED_OUT, "embed.out", 0, 1, NULL, 0, 0, &wn);
    for (int l = 0; l < c->depth && st == QTK_OK; l++) {
        const qtk_vit_block *b = &m->blocks[l];
        const float *wts[QTK_VIT_PB] = {0};
        size_t rows[QTK_VIT_PB] = {0}, cols[QTK_VIT_PB] = {0};
        wts[QTK_VIT_B_QKV_W] = b->qkv_w, rows[QTK_VIT_B_QKV_W] = 3 * C, cols[QTK_VIT_B_QKV_W] = C;
        wts[QTK_VIT_B_PROJ_W] = b->proj_w, rows[QTK_VIT_B_PROJ_W] = C, cols[QTK_VIT_B_PROJ_W] = C;
        wts[QTK_VIT_B_FC1_W] = b->fc1_w, rows[QTK_VIT_B_FC1_W] = M, cols[QTK_VIT_B_FC1_W] = C;
        wts[QTK_VIT_B_FC2_W] = b->fc2_w, rows[QTK_VIT_B_FC2_W] = C, cols[QTK_VIT_B_FC2_W] = M;
        for (int k = 0; k < QTK_VIT_PB && st == QTK_OK; k++) {
            char name[64];
            snprintf(name, sizeof name, "blocks.%d.%s", l, block_names[k]);
            st = add(qv, QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB + k, name, wts[k] != NULL, is_ptf_point(k), wts[k], rows[k],
                     cols[k], &wn);
        }
    }
    int hb = qtk_vit_head_base(m);
    if (st == QTK_OK) st = add(qv, hb + QTK_VIT_H_NORM_OUT, "norm.out", 0, 0, NULL, 0, 0, &wn);
    if (st == QTK_OK) st = add(qv, hb + QTK_VIT_H_HEAD_W, "head.weight", 1, 0, m->head_w, NC, C, &wn);
    if (st == QTK_OK) st = add(qv, hb + QTK_VIT_H_HEAD_OUT, "head.out", 0, 0, NULL, 0, 0, &wn);
    if (st != QTK_OK) {
        qtk_vit_quant_free(qv);
        return st;
    }
    QTK_CHECK((size_t)(wn - qv->wq_mem) == wtotal);
    qv->hooks = (qtk_vit_hooks){qv, hook_act, hook_weight, hook_layernorm};
    return QTK_OK;
}

void qtk_vit_quant_free(qtk_vit_quant *qv) {
    for (int i = 0; qv->q && i < qv->n; i++) {
        qtk_observer_free(&qv->q[i].ob);
        qtk_qparams_free(&qv->q[i].qp);
    }
    free(qv->q);
    qtk_aligned_free(qv->wq_mem);
    memset(qv, 0, sizeof *qv);
}

qtk_status qtk_vit_quant_requantize(qtk_vit_quant *qv, int point) {
    if (point < 0 || point >= qv->n || !qv->q[point].is_weight)
        return qtk_fail(QTK_ERR_ARG, "point %d is not a weight quantizer", point);
    qtk_vit_quantizer *q = &qv->q[point];
    int64_t shape[2] = {(int64_t)q->O, (int64_t)q->K};
    QTK_TRY(qtk_fake_quant(&q->qp, q->w, q->wq, 2, shape));
    if (qv->qc.bias_corr) qtk_bias_correct(q->w, q->wq, q->O, q->K);
    q->wq_stale = 0;
    return QTK_OK;
}

qtk_status qtk_vit_quant_sync_weights(qtk_vit_quant *qv) {
    for (int i = 0; i < qv->n; i++)
        if (qv->q[i].is_weight && qv->q[i].wq_stale) QTK_TRY(qtk_vit_quant_requantize(qv, i));
    return QTK_OK;
}

qtk_status qtk_vit_calibrate_weights(qtk_vit_quant *qv) {
    // weights: min-max per output channel (their observers see the same tensor on every batch)
    for (int i = 0; i < qv->n; i++) {
        qtk_vit_quantizer *q = &qv->q[i];
        if (!q->is_weight) continue;
        int64_t shape[2] = {(int64_t)q->O, (int64_t)q->K};
        qtk_qparams_free(&q->qp);
        QTK_TRY(qtk_observer_update(&q->ob, q->w, 2, shape));
        QTK_TRY(qtk_observer_params(&q->ob, NULL, 2, shape, &q->qp));
        QTK_TRY(qtk_vit_quant_requantize(qv, i));
        q->calibrated = 1;
    }
    return QTK_OK;
}

qtk_status qtk_vit_calibrate(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int n, int batch) {
    if (batch < 1 || batch > plan->B)
        return qtk_fail(QTK_ERR_ARG, "calibration batch %d does not fit the plan (batch <= %d)", batch, plan->B);
    int nb = n / batch; // drop_last=True
    if (nb < 1) return qtk_fail(QTK_ERR_ARG, "%d calibration images are fewer than one batch of %d", n, batch);
    QTK_TRY(qtk_vit_calibrate_weights(qv));
    const qtk_vit_config *c = &qv->m->cfg;
    size_t img = (size_t)c->in_chans * c->img_size * c->img_size;
    float *logits = malloc((size_t)batch * c->n_classes * sizeof *logits);
    if (!logits) return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
    qtk_status st = QTK_OK;
    qv->mode = QTK_VQ_CALIB;
    for (int b = 0; b < nb && st == QTK_OK; b++) {
        qv->last_batch = b == nb - 1;
        st = qtk_vit_forward_hooked(qv->m, plan, images + (size_t)b * batch * img, batch, logits, &qv->hooks);
        if (st == QTK_OK && qv->progress) qv->progress(qv->progress_ctx, (b + 1) * batch, nb * batch);
    }
    qv->last_batch = 0;
    qv->mode = st == QTK_OK ? QTK_VQ_QUANT : QTK_VQ_FP;
    free(logits);
    return st;
}

qtk_status qtk_vit_quant_forward(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int B, float *logits) {
    if (qv->mode != QTK_VQ_QUANT) return qtk_fail(QTK_ERR_ARG, "quantized forward before calibration");
    QTK_TRY(qtk_vit_quant_sync_weights(qv));
    return qtk_vit_forward_hooked(qv->m, plan, images, B, logits, &qv->hooks);
}

qtk_vit_quantizer *qtk_vit_quant_find(qtk_vit_quant *qv, const char *name) {
    for (int i = 0; i < qv->n; i++)
        if (qv->q[i].name[0] && strcmp(qv->q[i].name, name) == 0) return &qv->q[i];
    return NULL;
}

int qtk_vit_quant_set_enabled(qtk_vit_quant *qv, const char *pattern, int on) {
    int k = 0;
    for (int i = 0; i < qv->n; i++)
        if (qv->q[i].name[0] && fnmatch(pattern, qv->q[i].name, 0) == 0) {
            qv->q[i].enabled = on;
            k++;
        }
    return k;
}

qtk_status qtk_vit_quant_report(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int n, int batch,
                                FILE *out) {
    if (qv->mode != QTK_VQ_QUANT) return qtk_fail(QTK_ERR_ARG, "quant-report before calibration");
    QTK_TRY(qtk_vit_quant_sync_weights(qv));
    if (batch < 1 || batch > plan->B) return qtk_fail(QTK_ERR_ARG, "report batch %d does not fit the plan", batch);
    for (int i = 0; i < qv->n; i++) qv->q[i].err_sum = qv->q[i].n_seen = 0;
    const qtk_vit_config *c = &qv->m->cfg;
    size_t img = (size_t)c->in_chans * c->img_size * c->img_size;
    float *logits = malloc((size_t)batch * c->n_classes * sizeof *logits);
    if (!logits) return qtk_fail(QTK_ERR_NOMEM, "quant-report: out of memory");
    qv->report = 1;
    qtk_status st = QTK_OK;
    for (int b = 0; b + batch <= n && st == QTK_OK; b += batch)
        st = qtk_vit_quant_forward(qv, plan, images + (size_t)b * img, batch, logits);
    qv->report = 0;
    free(logits);
    QTK_TRY(st);
    fprintf(out, "%-28s %4s %-11s %-25s %-11s %s\n", "quantizer", "bits", "granularity", "scale range",
            "zero range", "MSE");
    for (int i = 0; i < qv->n; i++) {
        qtk_vit_quantizer *q = &qv->q[i];
        if (!q->name[0]) continue;
        if (!q->calibrated) {
            fprintf(out, "%-28s (not calibrated)\n", q->name);
            continue;
        }
        float smin = INFINITY, smax = -INFINITY, zmin = INFINITY, zmax = -INFINITY;
        for (size_t k = 0; k < q->qp.n; k++) {
            smin = fminf(smin, q->qp.scale[k]);
            smax = fmaxf(smax, q->qp.scale[k]);
            zmin = fminf(zmin, q->qp.zero[k]);
            zmax = fmaxf(zmax, q->qp.zero[k]);
        }
        double mse;
        if (q->is_weight) {
            // weights: the fake-quantization error before bias correction
            int lo, hi;
            qtk_qrange(q->qp.bits, false, &lo, &hi);
            double e = 0;
            for (size_t r = 0; r < q->O; r++)
                for (size_t k = 0; k < q->K; k++) {
                    float w = q->w[r * q->K + k];
                    double d = (double)w - qtk_fake_quant_scalar(w, q->qp.scale[r], q->qp.zero[r], lo, hi, QTK_FQ_REF);
                    e += d * d;
                }
            mse = e / (double)(q->O * q->K);
        } else {
            mse = q->n_seen > 0 ? q->err_sum / q->n_seen : NAN;
        }
        const char *gran = q->is_weight ? "channel" : q->qp.n > 1 ? "channel-ptf" : "tensor";
        char srange[48], zrange[48];
        snprintf(srange, sizeof srange, "%.3e..%.3e", smin, smax);
        snprintf(zrange, sizeof zrange, "%g..%g", zmin, zmax);
        fprintf(out, "%-28s %4d %-11s %-25s %-11s %.4e%s\n", q->name, q->qp.bits, gran, srange, zrange, mse,
                q->enabled ? "" : "  (off)");
    }
    return QTK_OK;
}

// --- qtk_model -------------------------------------------------------------------

static const char *m_qname(const qtk_model *mm, int i) {
    const qtk_vit_quant *qv = mm->self;
    return i >= 0 && i < qv->n && qv->q[i].name[0] ? qv->q[i].name : NULL;
}

static int m_is_weight(const qtk_model *mm, int i) {
    const qtk_vit_quant *qv = mm->self;
    return i >= 0 && i < qv->n && qv->q[i].is_weight;
}

static qtk_qparams *m_qparams(qtk_model *mm, int i) {
    qtk_vit_quant *qv = mm->self;
    return i >= 0 && i < qv->n && qv->q[i].calibrated ? &qv->q[i].qp : NULL;
}

static qtk_status m_requantize(qtk_model *mm, int i) {
    qtk_vit_quant *qv = mm->self;
    if (i < 0 || i >= qv->n || !qv->q[i].name[0]) return qtk_fail(QTK_ERR_ARG, "no quantizer %d", i);
    // activation scales are read by the forward directly; only weights have derived state
    return qv->q[i].is_weight ? qtk_vit_quant_requantize(qv, i) : QTK_OK;
}

static int m_block_vectors(qtk_model *mm, int block, qtk_model_vec *out, int max) {
    qtk_vit_quant *qv = mm->self;
    if (block < 0 || block >= qv->m->cfg.depth) return 0;
    static const struct { unsigned flag; int k; } order[] = {
        {QTK_VIT_VEC_QKV, QTK_VIT_B_QKV_W},          {QTK_VIT_VEC_PROJ, QTK_VIT_B_PROJ_W},
        {QTK_VIT_VEC_FC1, QTK_VIT_B_FC1_W},          {QTK_VIT_VEC_FC2, QTK_VIT_B_FC2_W},
        {QTK_VIT_VEC_ACT, QTK_VIT_B_NORM1_OUT},      {QTK_VIT_VEC_ACT, QTK_VIT_B_QKV_OUT},
        {QTK_VIT_VEC_ACT, QTK_VIT_B_SCORES},         {QTK_VIT_VEC_ACT, QTK_VIT_B_SOFTMAX},
        {QTK_VIT_VEC_ACT, QTK_VIT_B_CONTEXT},        {QTK_VIT_VEC_ACT, QTK_VIT_B_PROJ_OUT},
        {QTK_VIT_VEC_ACT, QTK_VIT_B_NORM2_OUT},      {QTK_VIT_VEC_ACT, QTK_VIT_B_ACT_OUT},
        {QTK_VIT_VEC_ACT, QTK_VIT_B_FC2_OUT},
    };
    int n = 0;
    for (size_t j = 0; j < sizeof order / sizeof *order; j++) {
        if (!(qv->model_vectors & order[j].flag)) continue;
        int i = QTK_VIT_P_BLOCK0 + block * QTK_VIT_PB + order[j].k;
        if (!qv->q[i].calibrated) continue;
        if (n < max) out[n] = (qtk_model_vec){qv->q[i].qp.scale, qv->q[i].qp.n, i};
        n++;
    }
    return n;
}

static qtk_status m_block_input(qtk_model *mm, const float *inputs, int B, int block, float *cache) {
    qtk_vit_quant *qv = mm->self;
    if (qv->mode != QTK_VQ_QUANT) return qtk_fail(QTK_ERR_ARG, "block inputs of an uncalibrated model");
    QTK_TRY(qtk_vit_quant_sync_weights(qv));
    return qtk_vit_block_input_hooked(qv->m, qv->model_plan, inputs, B, block, cache, &qv->hooks);
}

static qtk_status m_forward_from(qtk_model *mm, const float *cache, int B, int block, float *out) {
    qtk_vit_quant *qv = mm->self;
    if (qv->mode != QTK_VQ_QUANT) return qtk_fail(QTK_ERR_ARG, "forward of an uncalibrated model");
    QTK_TRY(qtk_vit_quant_sync_weights(qv));
    return qtk_vit_forward_from_hooked(qv->m, qv->model_plan, cache, B, block, out, &qv->hooks);
}

static qtk_status m_forward(qtk_model *mm, const float *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_quant_forward(qv, qv->model_plan, inputs, B, out);
}

static qtk_status m_forward_fp(qtk_model *mm, const float *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_forward(qv->m, qv->model_plan, inputs, B, out);
}

static qtk_status m_forward_targets(qtk_model *mm, const float *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    if (qv->targets_float || qv->mode != QTK_VQ_QUANT) return m_forward_fp(mm, inputs, B, out);
    // model_dequant() in the reference leaves the LayerNorms in integer mode
    qv->mode = QTK_VQ_FP_INTLN;
    qtk_status st = qtk_vit_forward_hooked(qv->m, qv->model_plan, inputs, B, out, &qv->hooks);
    qv->mode = QTK_VQ_QUANT;
    return st;
}

qtk_status qtk_vit_quant_model(qtk_vit_quant *qv, qtk_vit_plan *plan, unsigned vectors, qtk_model *out) {
    const qtk_vit_config *c = &qv->m->cfg;
    qv->model_plan = plan;
    qv->model_vectors = vectors ? vectors : QTK_VIT_VEC_DEFAULT;
    *out = (qtk_model){
        .self = qv,
        .name = c->name,
        .n_blocks = c->depth,
        .n_outputs = c->n_classes,
        .input_floats = (size_t)c->in_chans * c->img_size * c->img_size,
        .block_input_floats = (size_t)qv->m->n_tokens * c->dim,
        .n_quantizers = qv->n,
        .quantizer_name = m_qname,
        .quantizer_is_weight = m_is_weight,
        .quantizer_params = m_qparams,
        .requantize = m_requantize,
        .block_vectors = m_block_vectors,
        .block_input = m_block_input,
        .forward_from = m_forward_from,
        .forward = m_forward,
        .forward_fp = m_forward_fp,
        .forward_targets = m_forward_targets,
    };
    return QTK_OK;
}

// The layout qtk_observer_params gives each kind of quantizer here (add()).
static qtk_status import_one(qtk_vit_quant *qv, qtk_vit_quantizer *q, const qtk_safetensors *st, const char *path) {
    char sn[80], zn[80];
    snprintf(sn, sizeof sn, "%s.scale", q->name);
    snprintf(zn, sizeof zn, "%s.zero_point", q->name);
    const qtk_st_tensor *ts = qtk_st_find(st, sn), *tz = qtk_st_find(st, zn);
    if (!ts || !tz)
        return qtk_fail(QTK_ERR_FORMAT, "%s: no %s / %s: not an export of this model (%s)", path, sn, zn, qv->m->cfg.name);
    size_t n = ts->ndim == 1 ? (size_t)ts->shape[0] : 0;
    size_t want = q->is_weight ? q->O : q->ob.kind == QTK_OBS_PTF ? (size_t)qv->m->cfg.dim : 1;
    if (n != want || tz->ndim != 1 || (size_t)tz->shape[0] != n)
        return qtk_fail(QTK_ERR_FORMAT, "%s: %s has %zu values, quantizer %s needs %zu", path, sn, n, q->name, want);
    qtk_qparams p;
    bool sym = q->ob.kind == QTK_OBS_MINMAX && (q->ob.symmetric || q->ob.pct_abs);
    QTK_TRY(qtk_qparams_init(&p, q->ob.bits, q->ob.is_signed, sym, n > 1 ? QTK_PER_CHANNEL : QTK_PER_TENSOR,
                             n > 1 && !q->is_weight ? -1 : 0, 0, n));
    int64_t shp[1] = {(int64_t)n};
    qtk_status r = qtk_st_read_f32(st, sn, 1, shp, p.scale);
    if (r == QTK_OK) r = qtk_st_read_f32(st, zn, 1, shp, p.zero);
    int lo = 0, hi = 0;
    if (r == QTK_OK) r = qtk_qrange(p.bits, p.is_signed, &lo, &hi);
    for (size_t i = 0; r == QTK_OK && i < n; i++)
        if (!(p.scale[i] > 0) || !isfinite(p.scale[i]))
            r = qtk_fail(QTK_ERR_FORMAT, "%s: %s[%zu] = %g (zero point %g): scales must be finite and > 0", path, sn, i,
                         (double)p.scale[i], (double)p.zero[i]);
        // the reference rounds and clamps its zero points into the code range
        else if (!(p.zero[i] >= lo && p.zero[i] <= hi) || p.zero[i] != floorf(p.zero[i]))
            r = qtk_fail(QTK_ERR_FORMAT, "%s: %s[%zu] = %g is not an integer in the %d-bit code range %d..%d", path, zn, i,
                         (double)p.zero[i], p.bits, lo, hi);
    if (r != QTK_OK) {
        qtk_qparams_free(&p);
        return r;
    }
    qtk_qparams_free(&q->qp);
    q->qp = p;
    q->calibrated = 1;
    return QTK_OK;
}

qtk_status qtk_vit_quant_import(qtk_vit_quant *qv, const char *path) {
    qtk_safetensors st;
    QTK_TRY(qtk_st_open(&st, path));
    qtk_status r = QTK_OK;
    // the bit widths must be the model's: scales of another width mean nothing here
    const char *cj = qtk_st_meta(&st, "config");
    cJSON *c = cj ? cJSON_Parse(cj) : NULL;
    const cJSON *wb = cJSON_GetObjectItemCaseSensitive(c, "w_bits"), *ab = cJSON_GetObjectItemCaseSensitive(c, "a_bits");
    if (!cJSON_IsNumber(wb) || !cJSON_IsNumber(ab))
        r = qtk_fail(QTK_ERR_FORMAT, "%s: no qtk quantization config in the metadata (not a qtk export)", path);
    else if (wb->valueint != qv->qc.w_bits || ab->valueint != qv->qc.a_bits)
        r = qtk_fail(QTK_ERR_ARG, "%s holds W%dA%d scales; the model is set up as W%dA%d", path, wb->valueint, ab->valueint,
                     qv->qc.w_bits, qv->qc.a_bits);
    cJSON_Delete(c);
    for (int i = 0; r == QTK_OK && i < qv->n; i++) {
        qtk_vit_quantizer *q = &qv->q[i];
        if (!q->name[0]) continue;
        r = import_one(qv, q, &st, path);
        if (r == QTK_OK && q->is_weight) r = qtk_vit_quant_requantize(qv, i);
    }
    qtk_st_close(&st);
    if (r == QTK_OK) qv->mode = QTK_VQ_QUANT;
    return r;
}

qtk_status qtk_vit_quant_export(const qtk_vit_quant *qv, const char *path, const char *const (*extra)[2], size_t n_extra) {
    int nq = 0;
    for (int i = 0; i < qv->n; i++) nq += qv->q[i].calibrated;
    if (nq == 0) return qtk_fail(QTK_ERR_ARG, "%s: nothing to export: the model is not calibrated", path);
    qtk_st_entry *e = calloc((size_t)nq * 2, sizeof *e);
    char (*names)[80] = calloc((size_t)nq * 2, sizeof *names);
    int64_t *lens = calloc((size_t)nq, sizeof *lens);
    cJSON *list = cJSON_CreateArray(), *cfg = cJSON_CreateObject();
    if (!e || !names || !lens || !list || !cfg) {
        free(e);
        free(names);
        free(lens);
        cJSON_Delete(list);
        cJSON_Delete(cfg);
        return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < qv->n; i++) {
        const qtk_vit_quantizer *q = &qv->q[i];
        if (!q->calibrated) continue;
        lens[k / 2] = (int64_t)q->qp.n;
        snprintf(names[k], sizeof names[k], "%s.scale", q->name);
        e[k] = (qtk_st_entry){names[k], QTK_F32, 1, &lens[k / 2], q->qp.scale};
        k++;
        snprintf(names[k], sizeof names[k], "%s.zero_point", q->name);
        e[k] = (qtk_st_entry){names[k], QTK_F32, 1, &lens[k / 2], q->qp.zero};
        k++;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", q->name);
        cJSON_AddNumberToObject(o, "bits", q->qp.bits);
        cJSON_AddStringToObject(o, "granularity", q->is_weight ? "channel" : q->qp.n > 1 ? "channel-ptf" : "tensor");
        cJSON_AddBoolToObject(o, "enabled", q->enabled);
        cJSON_AddItemToArray(list, o);
    }
    cJSON_AddStringToObject(cfg, "model", qv->m->cfg.name);
    cJSON_AddNumberToObject(cfg, "w_bits", qv->qc.w_bits);
    cJSON_AddNumberToObject(cfg, "a_bits", qv->qc.a_bits);
    cJSON_AddBoolToObject(cfg, "bias_corr", qv->qc.bias_corr);
    cJSON_AddBoolToObject(cfg, "int_layernorm", qv->qc.int_layernorm);
    cJSON_AddBoolToObject(cfg, "quant_input", qv->q[QTK_VIT_P_INPUT].name[0] != 0);
    char *lj = cJSON_PrintUnformatted(list), *cj = cJSON_PrintUnformatted(cfg);
    const char *(*meta)[2] = calloc(3 + n_extra, sizeof *meta);
    qtk_status st = QTK_OK;
    if (!lj || !cj || !meta) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    else {
        meta[0][0] = "qtk_version", meta[0][1] = QTK_VERSION;
        meta[1][0] = "config", meta[1][1] = cj;
        meta[2][0] = "quantizers", meta[2][1] = lj;
        for (size_t i = 0; i < n_extra; i++) meta[3 + i][0] = extra[i][0], meta[3 + i][1] = extra[i][1];
        st = qtk_st_write(path, e, (size_t)k, (const char *const(*)[2])meta, 3 + n_extra);
    }
    free(meta);
    free(lj);
    free(cj);
    cJSON_Delete(list);
    cJSON_Delete(cfg);
    free(e);
    free(names);
    free(lens);
    return st;
}
