// The quantized ViT baseline: its table of quantization points (core/qpoint.h), the integer
// LayerNorm hook, calibration and the quantized forward.
#include "vit_quant.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/file.h"
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

// Declares one point: weights min-max per output channel; activations OMSE per tensor, PTF (per
// channel, a shared zero point) before the LayerNorms; input: the activation point feeding a weight.
static qtk_status add(qtk_vit_quant *qv, int point, const char *name, int block, int ptf, const float *w, size_t O,
                      size_t K, int input) {
    qtk_qpoint_desc d = {.name = name, .block = block, .input = input, .shares = -1, .is_signed = false};
    if (w) {
        d.kind = QTK_QPOINT_WEIGHT, d.observer = QTK_OBS_MINMAX, d.bits = qv->qc.w_bits, d.channel_wise = true;
        d.w = w, d.O = O, d.K = K;
    } else if (ptf) {
        d.observer = QTK_OBS_PTF, d.bits = qv->qc.a_bits, d.channel_wise = true, d.axis = -1;
        d.channels = (size_t)qv->m->cfg.dim;
    } else {
        d.observer = QTK_OBS_OMSE, d.bits = qv->qc.a_bits, d.channels = 1;
    }
    return qtk_qreg_add(&qv->reg, point, &d);
}

// --- hooks -------------------------------------------------------------------

static qtk_status hook_act(void *ctx, int point, float *x, int ndim, const int64_t *shape) {
    qtk_vit_quant *qv = ctx;
    return qtk_qreg_act(&qv->reg, point, x, ndim, shape);
}

static const float *hook_weight(void *ctx, int point) {
    qtk_vit_quant *qv = ctx;
    return qtk_qreg_weight(&qv->reg, point);
}

// The LayerNorm's input (PTF) and output points (ln: 2l = norm1 of block l, 2l+1 = norm2, 2 depth = the final norm).
void qtk_vit_ln_points(const qtk_vit *m, int ln, int *in, int *out) {
    int depth = m->cfg.depth, l = ln / 2;
    if (ln == 2 * depth) {
        *in = QTK_VIT_P_BLOCK0 + (depth - 1) * QTK_VIT_PB + QTK_VIT_B_RESID2;
        *out = qtk_vit_head_base(m) + QTK_VIT_H_NORM_OUT;
    } else if (ln % 2 == 0) {
        *in = l == 0 ? QTK_VIT_P_EMBED_OUT : QTK_VIT_P_BLOCK0 + (l - 1) * QTK_VIT_PB + QTK_VIT_B_RESID2;
        *out = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB + QTK_VIT_B_NORM1_OUT;
    } else {
        *in = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB + QTK_VIT_B_RESID1;
        *out = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB + QTK_VIT_B_NORM2_OUT;
    }
}

static int hook_layernorm(void *ctx, int ln, const float *x, float *y, size_t rows, size_t C, const float *w,
                          const float *b) {
    qtk_vit_quant *qv = ctx;
    if (!((qv->reg.mode == QTK_QREG_QUANT && qv->qc.int_layernorm) || qv->fp_intln)) return 0;
    int in, out;
    qtk_vit_ln_points(qv->m, ln, &in, &out);
    const qtk_qpoint *qi = &qv->reg.p[in], *qo = &qv->reg.p[out];
    if (!qi->calibrated || !qo->calibrated) return 0;
    // QIntLayerNorm: input scale of the PTF quantizer before it, output scale of the quantizer after it
    qtk_int_layernorm(x, y, rows, C, qi->qp.scale, qi->qp.n > 1, qo->qp.scale[0], w, b);
    return 1;
}

// --- lifecycle -----------------------------------------------------------------

// The point table: id (vit.h), name, and for weights the tensor and the point that feeds it.
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
    QTK_TRY(qtk_qreg_init(&qv->reg, qtk_vit_head_base(m) + QTK_VIT_PH, qc->bias_corr));
    int quant_input = qc->quant_input < 0 ? c->input_quant : qc->quant_input;
    qtk_status st = QTK_OK;
    if (quant_input) st = add(qv, QTK_VIT_P_INPUT, "input", -1, 0, NULL, 0, 0, -1);
    if (st == QTK_OK)
        st = add(qv, QTK_VIT_P_PATCH_W, "patch_embed.proj.weight", -1, 0, m->patch_w, C, K,
                 quant_input ? QTK_VIT_P_INPUT : -1);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_PATCH_OUT, "patch_embed.out", -1, 0, NULL, 0, 0, -1);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_CLS_CONCAT, "embed.cls_concat", -1, 0, NULL, 0, 0, -1);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_POS, "pos_embed", -1, 0, NULL, 0, 0, -1);
    if (st == QTK_OK) st = add(qv, QTK_VIT_P_EMBED_OUT, "embed.out", -1, 1, NULL, 0, 0, -1);
    for (int l = 0; l < c->depth && st == QTK_OK; l++) {
        const qtk_vit_block *b = &m->blocks[l];
        static const int feeds[QTK_VIT_PB] = {
            [QTK_VIT_B_QKV_W] = QTK_VIT_B_NORM1_OUT, [QTK_VIT_B_PROJ_W] = QTK_VIT_B_CONTEXT,
            [QTK_VIT_B_FC1_W] = QTK_VIT_B_NORM2_OUT, [QTK_VIT_B_FC2_W] = QTK_VIT_B_ACT_OUT};
        const float *wts[QTK_VIT_PB] = {0};
        size_t rows[QTK_VIT_PB] = {0}, cols[QTK_VIT_PB] = {0};
        wts[QTK_VIT_B_QKV_W] = b->qkv_w, rows[QTK_VIT_B_QKV_W] = 3 * C, cols[QTK_VIT_B_QKV_W] = C;
        wts[QTK_VIT_B_PROJ_W] = b->proj_w, rows[QTK_VIT_B_PROJ_W] = C, cols[QTK_VIT_B_PROJ_W] = C;
        wts[QTK_VIT_B_FC1_W] = b->fc1_w, rows[QTK_VIT_B_FC1_W] = M, cols[QTK_VIT_B_FC1_W] = C;
        wts[QTK_VIT_B_FC2_W] = b->fc2_w, rows[QTK_VIT_B_FC2_W] = C, cols[QTK_VIT_B_FC2_W] = M;
        int pb = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB;
        for (int k = 0; k < QTK_VIT_PB && st == QTK_OK; k++) {
            char name[64];
            snprintf(name, sizeof name, "blocks.%d.%s", l, block_names[k]);
            st = add(qv, pb + k, name, l, is_ptf_point(k), wts[k], rows[k], cols[k], wts[k] ? pb + feeds[k] : -1);
        }
    }
    int hb = qtk_vit_head_base(m);
    if (st == QTK_OK) st = add(qv, hb + QTK_VIT_H_NORM_OUT, "norm.out", -1, 0, NULL, 0, 0, -1);
    if (st == QTK_OK)
        st = add(qv, hb + QTK_VIT_H_HEAD_W, "head.weight", -1, 0, m->head_w, (size_t)c->n_classes, C, hb + QTK_VIT_H_NORM_OUT);
    if (st == QTK_OK) st = add(qv, hb + QTK_VIT_H_HEAD_OUT, "head.out", -1, 0, NULL, 0, 0, -1);
    if (st != QTK_OK) {
        qtk_vit_quant_free(qv);
        return st;
    }
    qv->hooks = (qtk_vit_hooks){qv, hook_act, hook_weight, hook_layernorm};
    return QTK_OK;
}

static void free_targets(qtk_vit_quant *qv) {
    for (int i = 0; i < qv->n_targets; i++) free(qv->targets[i]);
    free(qv->targets);
    qv->targets = NULL;
    qv->n_targets = 0;
}

void qtk_vit_quant_free(qtk_vit_quant *qv) {
    qtk_qreg_free(&qv->reg);
    free_targets(qv);
    free(qv->block_elems);
    memset(qv, 0, sizeof *qv);
}

// search.targets' short names, in the order the search visits them
static const struct {
    const char *name;
    const char *globs[9];
} target_alias[] = {
    {"qkv", {"blocks.*.attn.qkv.weight"}},
    {"proj", {"blocks.*.attn.proj.weight"}},
    {"fc1", {"blocks.*.mlp.fc1.weight"}},
    {"fc2", {"blocks.*.mlp.fc2.weight"}},
    {"act",
     {"blocks.*.norm1.out", "blocks.*.attn.qkv.out", "blocks.*.attn.scores", "blocks.*.attn.softmax",
      "blocks.*.attn.context", "blocks.*.attn.proj.out", "blocks.*.norm2.out", "blocks.*.mlp.act.out",
      "blocks.*.mlp.fc2.out"}},
};
#define N_ALIAS ((int)(sizeof target_alias / sizeof *target_alias))

static int alias_of(const char *t) {
    for (int a = 0; a < N_ALIAS; a++)
        if (!strcmp(t, target_alias[a].name)) return a;
    return -1;
}

qtk_status qtk_vit_quant_targets(qtk_vit_quant *qv, const char *const *targets, int n) {
    static const char *const dflt[] = {"qkv", "proj"};
    if (n == 0) targets = dflt, n = 2;
    free_targets(qv);
    int cap = n * 9;
    if (!(qv->targets = calloc((size_t)cap, sizeof *qv->targets))) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    qtk_status st = QTK_OK;
    for (int a = 0; a < N_ALIAS && st == QTK_OK; a++) { // short names first, in their fixed order
        int used = 0;
        for (int i = 0; i < n; i++) used |= alias_of(targets[i]) == a;
        for (int g = 0; used && g < 9 && target_alias[a].globs[g] && st == QTK_OK; g++)
            if (!(qv->targets[qv->n_targets++] = strdup(target_alias[a].globs[g])))
                st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n && st == QTK_OK; i++) {
        if (alias_of(targets[i]) >= 0) continue;
        int hits = 0;
        for (int p = 0; p < qv->reg.n; p++)
            hits += qv->reg.p[p].name[0] && qv->reg.p[p].block >= 0 && fnmatch(targets[i], qv->reg.p[p].name, 0) == 0;
        if (!hits)
            st = qtk_fail(QTK_ERR_ARG, "search target \"%s\" matches no quantizer of a block (names look like "
                          "blocks.0.attn.qkv.weight; short names: qkv, proj, fc1, fc2, act)", targets[i]);
        else if (!(qv->targets[qv->n_targets++] = strdup(targets[i])))
            st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    if (st != QTK_OK) free_targets(qv);
    return st;
}

qtk_status qtk_vit_calibrate(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int n, int batch) {
    if (batch < 1 || batch > plan->B)
        return qtk_fail(QTK_ERR_ARG, "calibration batch %d does not fit the plan (batch <= %d)", batch, plan->B);
    int nb = n / batch; // drop_last=True
    if (nb < 1) return qtk_fail(QTK_ERR_ARG, "%d calibration images are fewer than one batch of %d", n, batch);
    QTK_TRY(qtk_qreg_calibrate_weights(&qv->reg));
    const qtk_vit_config *c = &qv->m->cfg;
    size_t img = (size_t)c->in_chans * c->img_size * c->img_size;
    float *logits = malloc((size_t)batch * c->n_classes * sizeof *logits);
    if (!logits) return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
    qtk_status st = QTK_OK;
    qv->reg.mode = QTK_QREG_CALIB;
    for (int b = 0; b < nb && st == QTK_OK; b++) {
        qv->reg.last_batch = b == nb - 1;
        st = qtk_vit_forward_hooked(qv->m, plan, images + (size_t)b * batch * img, batch, logits, &qv->hooks);
        if (st == QTK_OK && qv->progress) qv->progress(qv->progress_ctx, (b + 1) * batch, nb * batch);
    }
    qv->reg.last_batch = 0;
    qv->reg.mode = st == QTK_OK ? QTK_QREG_QUANT : QTK_QREG_FP;
    free(logits);
    return st;
}

qtk_status qtk_vit_quant_forward(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int B, float *logits) {
    if (qv->reg.mode != QTK_QREG_QUANT) return qtk_fail(QTK_ERR_ARG, "quantized forward before calibration");
    QTK_TRY(qtk_qreg_sync_weights(&qv->reg));
    return qtk_vit_forward_hooked(qv->m, plan, images, B, logits, &qv->hooks);
}

qtk_qpoint *qtk_vit_quant_find(qtk_vit_quant *qv, const char *name) {
    int i = qtk_qreg_find(&qv->reg, name);
    return i < 0 ? NULL : &qv->reg.p[i];
}

qtk_status qtk_vit_quant_report(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int n, int batch,
                                FILE *out) {
    if (qv->reg.mode != QTK_QREG_QUANT) return qtk_fail(QTK_ERR_ARG, "quant-report before calibration");
    if (batch < 1 || batch > plan->B) return qtk_fail(QTK_ERR_ARG, "report batch %d does not fit the plan", batch);
    const qtk_vit_config *c = &qv->m->cfg;
    size_t img = (size_t)c->in_chans * c->img_size * c->img_size;
    float *logits = malloc((size_t)batch * c->n_classes * sizeof *logits);
    if (!logits) return qtk_fail(QTK_ERR_NOMEM, "quant-report: out of memory");
    qtk_qreg_report_begin(&qv->reg);
    qtk_status st = QTK_OK;
    for (int b = 0; b + batch <= n && st == QTK_OK; b += batch)
        st = qtk_vit_quant_forward(qv, plan, images + (size_t)b * img, batch, logits);
    qtk_qreg_report_end(&qv->reg);
    free(logits);
    QTK_TRY(st);
    qtk_qreg_report_print(&qv->reg, out);
    return QTK_OK;
}

// --- qtk_model -------------------------------------------------------------------

static qtk_status m_requantize(qtk_model *mm, int i) {
    qtk_vit_quant *qv = mm->self;
    if (i < 0 || i >= qv->reg.n || !qv->reg.p[i].name[0]) return qtk_fail(QTK_ERR_ARG, "no quantizer %d", i);
    // activation scales are read by the forward directly; only weights have derived state
    return qv->reg.p[i].kind == QTK_QPOINT_WEIGHT ? qtk_qreg_requantize(&qv->reg, i) : QTK_OK;
}

static qtk_status m_calibrate(qtk_model *mm, const void *inputs, int n, int batch) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_calibrate(qv, qv->model_plan, inputs, n, batch);
}

static qtk_status m_block_input(qtk_model *mm, const void *inputs, int B, int block, float *cache) {
    qtk_vit_quant *qv = mm->self;
    if (qv->reg.mode != QTK_QREG_QUANT) return qtk_fail(QTK_ERR_ARG, "block inputs of an uncalibrated model");
    QTK_TRY(qtk_qreg_sync_weights(&qv->reg));
    return qtk_vit_block_input_hooked(qv->m, qv->model_plan, inputs, B, block, cache, &qv->hooks);
}

static qtk_status m_forward_from(qtk_model *mm, const float *cache, int B, int block, float *out) {
    qtk_vit_quant *qv = mm->self;
    if (qv->reg.mode != QTK_QREG_QUANT) return qtk_fail(QTK_ERR_ARG, "forward of an uncalibrated model");
    QTK_TRY(qtk_qreg_sync_weights(&qv->reg));
    return qtk_vit_forward_from_hooked(qv->m, qv->model_plan, cache, B, block, out, &qv->hooks);
}

static qtk_status m_forward(qtk_model *mm, const void *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_quant_forward(qv, qv->model_plan, inputs, B, out);
}

static qtk_status m_forward_fp(qtk_model *mm, const void *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_forward(qv->m, qv->model_plan, inputs, B, out);
}

static qtk_status m_forward_targets(qtk_model *mm, const void *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    if (qv->targets_float || qv->reg.mode != QTK_QREG_QUANT) return m_forward_fp(mm, inputs, B, out);
    // model_dequant() in the reference leaves the LayerNorms in integer mode
    qv->reg.mode = QTK_QREG_FP;
    qv->fp_intln = 1;
    qtk_status st = qtk_vit_forward_hooked(qv->m, qv->model_plan, inputs, B, out, &qv->hooks);
    qv->fp_intln = 0;
    qv->reg.mode = QTK_QREG_QUANT;
    return st;
}

qtk_status qtk_vit_quant_model(qtk_vit_quant *qv, qtk_vit_plan *plan, qtk_model *out) {
    const qtk_vit_config *c = &qv->m->cfg;
    qv->model_plan = plan;
    if (!qv->targets) QTK_TRY(qtk_vit_quant_targets(qv, NULL, 0));
    if (!qv->block_elems) {
        if (!(qv->block_elems = malloc((size_t)c->depth * sizeof *qv->block_elems)))
            return qtk_fail(QTK_ERR_NOMEM, "out of memory");
        for (int b = 0; b < c->depth; b++) qv->block_elems[b] = (size_t)qv->m->n_tokens * c->dim; // every block: tokens x dim
    }
    *out = (qtk_model){
        .self = qv,
        .name = c->name,
        .n_blocks = c->depth,
        .n_outputs = c->n_classes,
        .input_dtype = QTK_F32,
        .input_elems = (size_t)c->in_chans * c->img_size * c->img_size,
        .block_input_elems = qv->block_elems,
        .q = &qv->reg,
        .targets = (const char *const *)qv->targets,
        .n_targets = qv->n_targets,
        .calibrate = m_calibrate,
        .requantize = m_requantize,
        .block_input = m_block_input,
        .forward_from = m_forward_from,
        .forward = m_forward,
        .forward_fp = m_forward_fp,
        .forward_targets = m_forward_targets,
    };
    return QTK_OK;
}

// The quantization config in the metadata of the open export st (path: for messages).
static qtk_status parse_config(const qtk_safetensors *st, const char *path, qtk_vit_qconfig *qc) {
    const char *cj = qtk_st_meta(st, "config");
    cJSON *c = cj ? cJSON_Parse(cj) : NULL;
    const cJSON *wb = cJSON_GetObjectItemCaseSensitive(c, "w_bits"), *ab = cJSON_GetObjectItemCaseSensitive(c, "a_bits");
    const cJSON *bc = cJSON_GetObjectItemCaseSensitive(c, "bias_corr"), *il = cJSON_GetObjectItemCaseSensitive(c, "int_layernorm");
    qtk_status r = QTK_OK;
    if (!cJSON_IsNumber(wb) || !cJSON_IsNumber(ab) || !cJSON_IsBool(bc) || !cJSON_IsBool(il))
        r = qtk_fail(QTK_ERR_FORMAT, "%s: no qtk quantization config in the metadata (not a qtk export)", path);
    else {
        qtk_vit_qconfig_default(qc);
        qc->w_bits = wb->valueint;
        qc->a_bits = ab->valueint;
        qc->bias_corr = cJSON_IsTrue(bc);
        qc->int_layernorm = cJSON_IsTrue(il);
        int lo, hi;
        if (qtk_qrange(qc->w_bits, false, &lo, &hi) != QTK_OK || qtk_qrange(qc->a_bits, false, &lo, &hi) != QTK_OK)
            r = qtk_fail(QTK_ERR_FORMAT, "%s: W%dA%d in the metadata: bit widths outside 2..8", path, qc->w_bits, qc->a_bits);
    }
    cJSON_Delete(c);
    return r;
}

qtk_status qtk_vit_quant_read_config(const char *path, qtk_vit_qconfig *qc) {
    qtk_safetensors st;
    QTK_TRY(qtk_st_open(&st, path));
    qtk_status r = parse_config(&st, path, qc);
    qtk_st_close(&st);
    return r;
}

qtk_status qtk_vit_quant_import(qtk_vit_quant *qv, const char *path) {
    qtk_safetensors st;
    QTK_TRY(qtk_st_open(&st, path));
    // the bit widths must be the model's: scales of another width mean nothing here
    qtk_vit_qconfig qc;
    qtk_status r = parse_config(&st, path, &qc);
    if (r == QTK_OK && (qc.w_bits != qv->qc.w_bits || qc.a_bits != qv->qc.a_bits))
        r = qtk_fail(QTK_ERR_ARG, "%s holds W%dA%d scales; the model is set up as W%dA%d", path, qc.w_bits, qc.a_bits,
                     qv->qc.w_bits, qv->qc.a_bits);
    if (r == QTK_OK) r = qtk_qreg_import(&qv->reg, &st, path, qv->m->cfg.name);
    qtk_st_close(&st);
    return r;
}

qtk_status qtk_vit_quant_export(const qtk_vit_quant *qv, const char *path, const char *const (*extra)[2], size_t n_extra) {
    cJSON *cfg = cJSON_CreateObject();
    if (!cfg) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(cfg, "model", qv->m->cfg.name);
    cJSON_AddNumberToObject(cfg, "w_bits", qv->qc.w_bits);
    cJSON_AddNumberToObject(cfg, "a_bits", qv->qc.a_bits);
    cJSON_AddBoolToObject(cfg, "bias_corr", qv->qc.bias_corr);
    cJSON_AddBoolToObject(cfg, "int_layernorm", qv->qc.int_layernorm);
    cJSON_AddBoolToObject(cfg, "quant_input", qv->reg.p[QTK_VIT_P_INPUT].name[0] != 0);
    char *cj = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    // the checkpoint it belongs to: its path and CRC-32, then the caller's pairs
    uint32_t crc = 0;
    char crc_s[24] = "unknown";
    if (qv->m->source[0] && qtk_file_crc32(qv->m->source, &crc) == QTK_OK) snprintf(crc_s, sizeof crc_s, "crc32:%08x", crc);
    const char *(*meta)[2] = calloc(2 + n_extra, sizeof *meta);
    qtk_status st = cj && meta ? QTK_OK : qtk_fail(QTK_ERR_NOMEM, "out of memory");
    if (st == QTK_OK) {
        meta[0][0] = "checkpoint", meta[0][1] = qv->m->source;
        meta[1][0] = "checkpoint_crc32", meta[1][1] = crc_s;
        for (size_t i = 0; i < n_extra; i++) meta[2 + i][0] = extra[i][0], meta[2 + i][1] = extra[i][1];
        st = qtk_qreg_export(&qv->reg, path, cj, (const char *const(*)[2])meta, 2 + n_extra);
    }
    free(meta);
    free(cj);
    return st;
}
