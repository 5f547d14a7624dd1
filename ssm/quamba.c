// Quamba v1 on the CPU (spec mamba-quamba.md section 5): calibration through the float forward's hooks and
// core/qpoint.h's observers, the int8 model, and its forward, the reference of the quantized block. The
// reference's line sits above the C that implements it.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/blas.h"
#include "../core/hadamard.h"
#include "../core/ops.h"
#include "../core/qparams.h"
#include "../core/qpoint.h"
#include "../core/scalar.h"
#include "../core/tensor.h"
#include "quamba.h"
#include "quamba_internal.h"

static const char *variant_names[QTK_QUAMBA_N_VARIANTS] = {"v1", "static", "dynamic", "percentile", "hadamard"};
static const char *point_names[QTK_MAMBA_QL] = {"in_proj:input",  "in_proj:output", "x_proj:input",
                                                "x_proj:output", "dt_proj:output", "out_proj:input"};

const char *qtk_quamba_variant_name(qtk_quamba_variant v) {
    return v >= 0 && v < QTK_QUAMBA_N_VARIANTS ? variant_names[v] : "?";
}

qtk_status qtk_quamba_variant_parse(const char *name, qtk_quamba_variant *v) {
    for (int i = 0; i < QTK_QUAMBA_N_VARIANTS; i++)
        if (!strcmp(name, variant_names[i])) {
            *v = (qtk_quamba_variant)i;
            return QTK_OK;
        }
    return qtk_fail(QTK_ERR_ARG, "quamba variant '%s': one of v1, static, dynamic, percentile, hadamard", name);
}

const char *qtk_quamba_point_name(int p) { return p >= 0 && p < QTK_MAMBA_QL ? point_names[p] : "?"; }

void qtk_quamba_opts_default(qtk_quamba_opts *o) {
    memset(o, 0, sizeof *o);
    o->variant = QTK_QUAMBA_V1;
    o->alpha = 0.99999f;
    o->momentum = 0.01f;
    o->sat_warn = 1e-3;
    o->fp16_check = 1;
}

int qtk_quamba_uses_percentile(qtk_quamba_variant v) { return v == QTK_QUAMBA_V1 || v == QTK_QUAMBA_PERCENTILE; }
int qtk_quamba_uses_hadamard(qtk_quamba_variant v) { return v == QTK_QUAMBA_V1 || v == QTK_QUAMBA_HADAMARD; }

// --- int8 building blocks ----------------------------------------------------------------------

float quamba_weight_q8(const float *w, size_t n, int8_t *q) {
    // scales = w.abs().max().clamp(min=1e-5) / 127;  (w / scales).round().clamp(-128, 127)
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(w[i]));
    const float s = qtk_scale_absmax(fmaxf(amax, 1e-5f), 8);
    for (size_t i = 0; i < n; i++) q[i] = qtk_sat_s8(rintf(w[i] / s));
    return s;
}

uint64_t quamba_q8_div(const float *v, size_t rows, size_t cols, size_t ld, float s, int8_t *q, size_t ldq) {
    uint64_t sat = 0;
#pragma omp parallel for reduction(+ : sat) schedule(static) if (rows * cols >= 65536)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            // q = clamp(roundf(v / s), -128, 127)
            float x = roundf(v[r * ld + c] / s);
            sat += quamba_clips(x);
            q[r * ldq + c] = qtk_sat_s8(x);
        }
    return sat;
}

uint64_t quamba_requant(const int32_t *acc, size_t rows, int N, float s_w, float s_in, float s_out, quamba_epi e,
                        int8_t *q, size_t ldq) {
    // s_in / s_out in double, stored as fp32; the GEMV's alpha = s_w s_in / s_out likewise
    float r, a;
    quamba_epi_factors(s_w, s_in, s_out, &r, &a);
    uint64_t sat = 0;
#pragma omp parallel for reduction(+ : sat) schedule(static) if (rows * (size_t)N >= 65536)
    for (size_t i = 0; i < rows; i++)
        for (int j = 0; j < N; j++) {
            const float x = rintf(quamba_epi_value(acc[i * N + j], s_w, r, a, (int)e));
            sat += quamba_clips(x);
            q[i * ldq + j] = qtk_sat_s8(x);
        }
    return sat;
}

// --- calibration -----------------------------------------------------------------------------------

// per-channel max |x| of rows x cols into ch (running)
static void channel_absmax(const float *x, size_t rows, int cols, float *ch) {
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) ch[c] = fmaxf(ch[c], fabsf(x[r * cols + c]));
}

// the largest over the median of n channel magnitudes (reorders v)
static float max_over_median(float *v, size_t n) {
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, v[i]);
    const float med = qtk_quantile_inplace(v, n, 0.5f);
    return med > 0 ? mx / med : INFINITY;
}

static qtk_status calib_act(void *ctx, int layer, int point, const float *x, size_t rows, int cols) {
    quamba_obs *c = ctx;
    const size_t n = rows * (size_t)cols;
    // the reference calibrates the fp16 model: a value past fp16's range would be inf there
    for (size_t i = 0; c->fp16_check && i < n; i++)
        if (!(fabsf(x[i]) <= 65504.0f))
            return qtk_fail(QTK_ERR_ARG, "calibration sequence %d: layer %d %s holds %g at token %zu, channel %zu: "
                            "outside fp16's range (the quantized model keeps fp16 values)", c->seq, layer,
                            point_names[point], x[i], i / (size_t)cols, i % (size_t)cols);
    if (point == QTK_MAMBA_Q_X_PROJ_IN)
        for (size_t i = 0; i < n; i++) c->x_max[layer] = fmaxf(c->x_max[layer], fabsf(x[i]));
    if (point == QTK_MAMBA_Q_OUT_PROJ_IN) {
        const int E = c->m->cfg.d_inner;
        // out_proj = HadLinear(W H^T / sqrt(E)) after had(y): its observers see had(y); the outlier statistic
        // sees both (where the size has a Hadamard)
        if (n > c->rot_cap) {
            free(c->rot);
            if (!(c->rot = malloc(n * sizeof *c->rot))) return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
            c->rot_cap = n;
        }
        channel_absmax(x, rows, cols, c->y_ch + (size_t)layer * E);
        if (qtk_hadamard_supported((size_t)cols, NULL)) {
            memcpy(c->rot, x, n * sizeof *x);
            QTK_TRY(qtk_hadamard_rows(c->rot, rows, (size_t)cols));
            channel_absmax(c->rot, rows, cols, c->y_ch_had + (size_t)layer * E);
            if (c->hadamard) x = c->rot;
        }
    }
    int64_t shape[2] = {(int64_t)rows, cols};
    return qtk_qreg_act(&c->reg, layer * QTK_MAMBA_QL + point, (float *)x, 2, shape);
}

static qtk_status check_model(const qtk_mamba *m, const qtk_quamba_opts *o) {
    const qtk_mamba_config *c = &m->cfg;
    if (c->use_bias)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "quamba: in_proj / out_proj with a bias (use_bias) are outside Quamba's W8A8 "
                        "block");
    if (qtk_quamba_uses_hadamard(o->variant) && !qtk_hadamard_supported((size_t)c->d_inner, NULL))
        return qtk_fail(QTK_ERR_UNSUPPORTED, "quamba %s: d_inner %d has no Hadamard transform: supported sizes are 2^k, "
                        "12*2^k, 20*2^k, 28*2^k and 40*2^k", qtk_quamba_variant_name(o->variant), c->d_inner);
    if (!(o->alpha > 0.0f && o->alpha <= 1.0f)) return qtk_fail(QTK_ERR_ARG, "quamba: percentile %g outside (0, 1]", o->alpha);
    if (!(o->momentum > 0.0f && o->momentum <= 1.0f))
        return qtk_fail(QTK_ERR_ARG, "quamba: percentile momentum %g outside (0, 1]", o->momentum);
    return QTK_OK;
}

// FNV-1a over the calibration tokens
static uint64_t fnv1a(const int32_t *t, size_t n) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)t;
    for (size_t i = 0; i < n * sizeof *t; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

const char *quamba_point_name(int p) { return qtk_quamba_point_name(p); }

void quamba_obs_free(quamba_obs *c) {
    free(c->rot);
    free(c->x_max), free(c->y_ch), free(c->y_ch_had);
    qtk_qreg_free(&c->reg);
    memset(c, 0, sizeof *c);
}

qtk_status quamba_obs_init(quamba_obs *cx, const qtk_mamba *m, const qtk_quamba_opts *o) {
    const qtk_mamba_config *c = &m->cfg;
    memset(cx, 0, sizeof *cx);
    cx->m = m, cx->hadamard = qtk_quamba_uses_hadamard(o->variant), cx->fp16_check = o->fp16_check;
    const size_t Ls = (size_t)c->n_layers, E = (size_t)c->d_inner;
    cx->x_max = calloc(Ls, sizeof(float));
    cx->y_ch = calloc(Ls * E, sizeof(float));
    cx->y_ch_had = calloc(Ls * E, sizeof(float));
    qtk_status st = cx->x_max && cx->y_ch && cx->y_ch_had ? qtk_qreg_init(&cx->reg, c->n_layers * QTK_MAMBA_QL, 0)
                                                          : qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
    for (int l = 0; l < c->n_layers && st == QTK_OK; l++)
        for (int p = 0; p < QTK_MAMBA_QL && st == QTK_OK; p++) {
            char name[QTK_QPOINT_NAME];
            snprintf(name, sizeof name, "layers.%d.%s", l, point_names[p]);
            const int pct = p == QTK_MAMBA_Q_X_PROJ_IN && qtk_quamba_uses_percentile(o->variant);
            qtk_qpoint_desc d = {.name = name, .kind = QTK_QPOINT_ACT, .block = l,
                                 .observer = pct ? QTK_OBS_PERCENTILE : QTK_OBS_MINMAX, .bits = 8, .is_signed = true,
                                 .channels = 1, .input = -1, .shares = -1};
            st = qtk_qreg_add(&cx->reg, l * QTK_MAMBA_QL + p, &d);
            qtk_observer *ob = &cx->reg.p[l * QTK_MAMBA_QL + p].ob;
            ob->pct_abs = pct; // quantile(|x|, alpha): the SSM input's symmetric percentile
            ob->q_hi = o->alpha;
            ob->momentum = o->momentum;
        }
    cx->reg.mode = QTK_QREG_CALIB;
    if (st != QTK_OK) quamba_obs_free(cx);
    return st;
}

// the n sequences through the CPU's hooked float forward, one at a time
static qtk_status observe_cpu(quamba_obs *cx, const qtk_mamba *m, const qtk_quamba_calib *cal) {
    qtk_mamba_state s;
    QTK_TRY(qtk_mamba_state_init(&s, m, 1));
    qtk_mamba_hooks hk = {.ctx = cx, .act = calib_act};
    qtk_status st = QTK_OK;
    for (int i = 0; i < cal->n && st == QTK_OK; i++) {
        qtk_mamba_state_reset(&s);
        cx->seq = i;
        cx->reg.last_batch = i == cal->n - 1;
        st = qtk_mamba_prefill_hooked(m, &s, cal->tokens + (size_t)i * cal->len, cal->len, NULL, QTK_SCAN_AUTO, &hk);
        if (st == QTK_OK && cal->progress) cal->progress(cal->progress_ctx, i + 1, cal->n);
    }
    qtk_mamba_state_free(&s);
    return st;
}

static qtk_status observe(qtk_quamba *q, const qtk_mamba *m, const qtk_quamba_opts *o, const qtk_quamba_calib *cal) {
    const qtk_mamba_config *c = &m->cfg;
    const size_t E = (size_t)c->d_inner;
    quamba_obs cx;
    QTK_TRY(quamba_obs_init(&cx, m, o));
    qtk_status st = cal->device ? quamba_observe_cuda(&cx, cal) : observe_cpu(&cx, m, cal);
    // scale = max(running |max|, 1e-5) / 127 (min-max); the EMA of the quantiles (percentile)
    for (int l = 0; l < c->n_layers && st == QTK_OK; l++) {
        for (int p = 0; p < QTK_MAMBA_QL; p++) {
            const qtk_observer *ob = &cx.reg.p[l * QTK_MAMBA_QL + p].ob;
            const float amax = fmaxf(-ob->min_val[0], ob->max_val[0]);
            q->layers[l].act[p] = qtk_scale_absmax(fmaxf(amax, 1e-5f), 8);
        }
        // the outliers: max |x| against the percentile the scale would take; max / median channel of y
        float *os = q->outliers + (size_t)l * QTK_QUAMBA_NOUT;
        const qtk_qpoint *xp = &cx.reg.p[l * QTK_MAMBA_QL + QTK_MAMBA_Q_X_PROJ_IN];
        os[QTK_QUAMBA_OUT_X_MAX] = cx.x_max[l];
        os[QTK_QUAMBA_OUT_X_PCT] = xp->ob.kind == QTK_OBS_PERCENTILE ? xp->ob.max_val[0] : NAN;
        os[QTK_QUAMBA_OUT_Y_RATIO] = max_over_median(cx.y_ch + (size_t)l * E, E);
        os[QTK_QUAMBA_OUT_Y_RATIO_HAD] =
            qtk_hadamard_supported(E, NULL) ? max_over_median(cx.y_ch_had + (size_t)l * E, E) : NAN;
    }
    quamba_obs_free(&cx);
    return st;
}

// --- the int8 model ----------------------------------------------------------------------------------

static void f16_copy(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = quamba_f16(src[i]);
}

qtk_status quamba_alloc(qtk_quamba *q) {
    const qtk_mamba_config *c = &q->cfg;
    if (c->arch != QTK_MAMBA1)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "quamba: Mamba2 models are not quantized yet (Mamba1 only)");
    if (c->d_state > 256 || c->d_conv > 64)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "quamba: state_size %d / conv_kernel %d (at most 256 / 64)", c->d_state,
                        c->d_conv);
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, N = (size_t)c->d_state, K = (size_t)c->d_conv,
                 R = (size_t)c->dt_rank, V = (size_t)c->vocab, Ls = (size_t)c->n_layers;
    const size_t per_i8 = 2 * E * D + E * K + E + (R + 2 * N) * E + E * R + E + E * N + E + D * E;
    q->n_i8 = Ls * per_i8;
    q->n_f32 = V * D * (c->tied ? 1 : 2) + D + Ls * D;
    q->layers = calloc(Ls, sizeof *q->layers);
    q->i8 = qtk_aligned_alloc(q->n_i8);
    q->f32 = qtk_aligned_alloc(q->n_f32 * sizeof(float));
    q->sat = calloc(Ls * QTK_MAMBA_QL, sizeof *q->sat);
    q->seen = calloc(Ls * QTK_MAMBA_QL, sizeof *q->seen);
    q->outliers = calloc(Ls * QTK_QUAMBA_NOUT, sizeof *q->outliers);
    if (!q->layers || !q->i8 || !q->f32 || !q->sat || !q->seen || !q->outliers)
        return qtk_fail(QTK_ERR_NOMEM, "quamba: out of memory for %zu int8 and %zu float parameters", q->n_i8, q->n_f32);
    int8_t *b = q->i8;
    float *f = q->f32;
    q->emb = f, f += V * D;
    q->lm_head = c->tied ? q->emb : f;
    if (!c->tied) f += V * D;
    q->norm_f = f, f += D;
    for (size_t l = 0; l < Ls; l++) {
        qtk_quamba_layer *y = &q->layers[l];
        y->norm_w = f, f += D;
        y->in_w = b, b += 2 * E * D;
        y->conv_w = b, b += E * K;
        y->conv_b = b, b += E;
        y->x_w = b, b += (R + 2 * N) * E;
        y->dt_w = b, b += E * R;
        y->dt_b = b, b += E;
        y->A_log = b, b += E * N;
        y->Dq = b, b += E;
        y->out_w = b, b += D * E;
    }
    return QTK_OK;
}

static qtk_status quantize_weights(qtk_quamba *q, const qtk_mamba *m) {
    const qtk_mamba_config *c = &q->cfg;
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, N = (size_t)c->d_state, K = (size_t)c->d_conv,
                 R = (size_t)c->dt_rank, V = (size_t)c->vocab;
    // the embedding, the norms and the head stay fp16
    f16_copy(q->emb, m->emb, V * D);
    if (!c->tied) f16_copy(q->lm_head, m->lm_head, V * D);
    f16_copy(q->norm_f, m->norm_f, D);
    float *tmp = malloc(D * E * sizeof *tmp), *zero = calloc(E, sizeof *zero);
    if (!tmp || !zero) {
        free(tmp), free(zero);
        return qtk_fail(QTK_ERR_NOMEM, "quamba: out of memory");
    }
    const int had = qtk_quamba_uses_hadamard(q->opts.variant);
    qtk_status st = QTK_OK;
    for (int l = 0; l < c->n_layers && st == QTK_OK; l++) {
        const qtk_mamba_layer *x = &m->layers[l];
        qtk_quamba_layer *y = &q->layers[l];
        f16_copy(y->norm_w, x->norm_w, D);
        y->in_ws = quamba_weight_q8(x->in_proj_w, 2 * E * D, y->in_w);
        y->conv_ws = quamba_weight_q8(x->conv_w, E * K, y->conv_w);
        y->conv_bs = quamba_weight_q8(x->conv_b ? x->conv_b : zero, E, y->conv_b);
        y->x_ws = quamba_weight_q8(x->x_proj_w, (R + 2 * N) * E, y->x_w);
        y->dt_ws = quamba_weight_q8(x->dt_proj_w, E * R, y->dt_w);
        y->dt_bs = quamba_weight_q8(x->dt_proj_b, E, y->dt_b); // the bias leaves dt_proj for the scan
        y->A_s = quamba_weight_q8(x->A_log, E * N, y->A_log);
        y->D_s = quamba_weight_q8(x->Dskip, E, y->Dq);
        // out_proj: W H^T / sqrt(E) where the Hadamard rotates its input (in fp32; the reference fuses in fp16)
        memcpy(tmp, x->out_proj_w, D * E * sizeof *tmp);
        if (had) st = qtk_hadamard_fuse_input(tmp, D, E);
        y->out_ws = quamba_weight_q8(tmp, D * E, y->out_w);
    }
    free(tmp), free(zero);
    return st;
}

qtk_status qtk_quamba_calibrate(qtk_quamba *q, const qtk_mamba *m, const qtk_quamba_opts *o, const qtk_quamba_calib *cal) {
    memset(q, 0, sizeof *q);
    QTK_TRY(check_model(m, o));
    const int dynamic = o->variant == QTK_QUAMBA_DYNAMIC;
    if (!dynamic && (!cal || cal->n < 1 || cal->len < 1))
        return qtk_fail(QTK_ERR_ARG, "quamba %s: no calibration sequences", qtk_quamba_variant_name(o->variant));
    q->cfg = m->cfg;
    q->opts = *o;
    qtk_status st = quamba_alloc(q);
    if (st == QTK_OK) st = quantize_weights(q, m);
    if (st == QTK_OK && !dynamic) {
        st = observe(q, m, o, cal);
        snprintf(q->fingerprint, sizeof q->fingerprint, "%d x %d tokens of %s, fnv1a %016llx%s", cal->n, cal->len,
                 cal->data_name ? cal->data_name : "(memory)",
                 (unsigned long long)fnv1a(cal->tokens, (size_t)cal->n * cal->len),
                 cal->device ? ", GPU fp16 forward" : "");
    }
    if (dynamic) {
        q->fp = m;
        snprintf(q->fingerprint, sizeof q->fingerprint, "none (dynamic)");
    }
    if (st != QTK_OK) qtk_quamba_free(q);
    return st;
}

void qtk_quamba_free(qtk_quamba *q) {
    if (!q) return;
    free(q->layers);
    qtk_aligned_free(q->i8);
    qtk_aligned_free(q->f32);
    free(q->sat);
    free(q->seen);
    free(q->outliers);
    memset(q, 0, sizeof *q);
}

// --- saturation ------------------------------------------------------------------------------------

void qtk_quamba_saturation_reset(const qtk_quamba *q) {
    const size_t n = (size_t)q->cfg.n_layers * QTK_MAMBA_QL;
    memset(q->sat, 0, n * sizeof *q->sat);
    memset(q->seen, 0, n * sizeof *q->seen);
}

int qtk_quamba_saturation_report(const qtk_quamba *q, FILE *out) {
    int over = 0;
    for (int l = 0; l < q->cfg.n_layers; l++)
        for (int p = 0; p < QTK_MAMBA_QL; p++) {
            const uint64_t s = q->sat[l * QTK_MAMBA_QL + p], n = q->seen[l * QTK_MAMBA_QL + p];
            if (!s || !n) continue;
            const double share = (double)s / (double)n;
            over += share > q->opts.sat_warn;
            if (out)
                fprintf(out, "%slayers.%d.%s: %llu of %llu codes saturated (%.4f%%)\n",
                        share > q->opts.sat_warn ? "warning: " : "", l, point_names[p], (unsigned long long)s,
                        (unsigned long long)n, 100.0 * share);
        }
    return over;
}
