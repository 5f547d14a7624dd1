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
static const char *point_names2[QTK_QUAMBA2_NP] = {"in_proj:input", "z_act",      "x_conv_in",  "B_conv_in",
                                                   "C_conv_in",     "dt_act",     "x_conv_out", "B_conv_out",
                                                   "C_conv_out",    "ssm_state_act", "out_proj:input"};
_Static_assert(QTK_QUAMBA2_NP == QTK_QUAMBA_NPT && QTK_MAMBA_QL <= QTK_QUAMBA_NPT, "act[] holds every point");

int qtk_quamba_npoints(const qtk_mamba_config *c) { return c->arch == QTK_MAMBA2 ? QTK_QUAMBA2_NP : QTK_MAMBA_QL; }

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

const char *qtk_quamba_point_name(qtk_mamba_arch a, int p) {
    if (a == QTK_MAMBA2) return p >= 0 && p < QTK_QUAMBA2_NP ? point_names2[p] : "?";
    return p >= 0 && p < QTK_MAMBA_QL ? point_names[p] : "?";
}

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
#pragma omp parallel for reduction(max : amax) schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(w[i]));
    const float s = qtk_scale_absmax(fmaxf(amax, 1e-5f), 8);
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) q[i] = qtk_sat_s8(rintf(w[i] / s));
    return s;
}

static uint64_t q8_div(const float *v, size_t rows, size_t cols, size_t ld, float s, int8_t *q, size_t ldq, int rne) {
    uint64_t sat = 0;
#pragma omp parallel for reduction(+ : sat) schedule(static) if (rows * cols >= 65536)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            // q = clamp(roundf(v / s), -128, 127) (Mamba2: rint)
            float x = rne ? rintf(v[r * ld + c] / s) : roundf(v[r * ld + c] / s);
            sat += quamba_clips(x);
            q[r * ldq + c] = qtk_sat_s8(x);
        }
    return sat;
}

uint64_t quamba_q8_div(const float *v, size_t rows, size_t cols, size_t ld, float s, int8_t *q, size_t ldq) {
    return q8_div(v, rows, cols, ld, s, q, ldq, 0);
}

uint64_t quamba_q8_div_rne(const float *v, size_t rows, size_t cols, size_t ld, float s, int8_t *q, size_t ldq) {
    return q8_div(v, rows, cols, ld, s, q, ldq, 1);
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

// a float buffer of n floats, grown
static qtk_status grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return QTK_OK;
    free(*p);
    if (!(*p = malloc(n * sizeof **p))) {
        *cap = 0;
        return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory for %zu floats", n);
    }
    *cap = n;
    return QTK_OK;
}

// registry point p of the layer sees x (rows, cols)
static qtk_status feed(quamba_obs *c, int layer, int p, const float *x, size_t rows, int cols) {
    int64_t shape[2] = {(int64_t)rows, cols};
    return qtk_qreg_act(&c->reg, layer * c->np + p, (float *)x, 2, shape);
}

// registry point p sees columns [c0, c0 + n) of x (rows, ld)
static qtk_status feed_cols(quamba_obs *c, int layer, int p, const float *x, size_t rows, int ld, int c0, int n) {
    QTK_TRY(grow(&c->split, &c->split_cap, rows * (size_t)n));
    for (size_t r = 0; r < rows; r++) memcpy(c->split + r * n, x + r * ld + c0, (size_t)n * sizeof *x);
    return feed(c, layer, p, c->split, rows, n);
}

// what the float forward's hook point is, in errors
static const char *hook_name(const qtk_mamba_config *c, int point) {
    if (point == QTK_MAMBA_Q_SSM_STATE) return "ssm_state";
    if (c->arch == QTK_MAMBA2 && point == QTK_MAMBA_Q_X_PROJ_IN) return "conv1d:output (x | B | C)";
    return point >= 0 && point < QTK_MAMBA_QL ? point_names[point] : "?";
}

static qtk_status calib_act(void *ctx, int layer, int point, const float *x, size_t rows, int cols) {
    quamba_obs *c = ctx;
    const qtk_mamba_config *cf = &c->m->cfg;
    const size_t n = rows * (size_t)cols;
    const int m2 = cf->arch == QTK_MAMBA2, E = cf->d_inner;
    // the reference calibrates the fp16 model: a value past fp16's range would be inf there
    for (size_t i = 0; c->fp16_check && i < n; i++)
        if (!(fabsf(x[i]) <= 65504.0f))
            return qtk_fail(QTK_ERR_ARG, "calibration sequence %d: layer %d %s holds %g at %s %zu, channel %zu: "
                            "outside fp16's range (the quantized model keeps fp16 values)", c->seq, layer,
                            hook_name(cf, point), x[i], point == QTK_MAMBA_Q_SSM_STATE ? "sequence" : "token",
                            i / (size_t)cols, i % (size_t)cols);
    if (point == QTK_MAMBA_Q_X_PROJ_IN) // the SSM input x (Mamba2: xBC's first E columns)
        for (size_t r = 0; r < rows; r++)
            for (int j = 0; j < (m2 ? E : cols); j++) c->x_max[layer] = fmaxf(c->x_max[layer], fabsf(x[r * cols + j]));
    if (point == QTK_MAMBA_Q_OUT_PROJ_IN) {
        // out_proj = HadLinear(W H^T / sqrt(E)) after had(y): its observers see had(y); the outlier statistic
        // sees both (where the size has a Hadamard)
        QTK_TRY(grow(&c->rot, &c->rot_cap, n));
        channel_absmax(x, rows, cols, c->y_ch + (size_t)layer * E);
        if (qtk_hadamard_supported((size_t)cols, NULL)) {
            memcpy(c->rot, x, n * sizeof *x);
            QTK_TRY(qtk_hadamard_rows(c->rot, rows, (size_t)cols));
            channel_absmax(c->rot, rows, cols, c->y_ch_had + (size_t)layer * E);
            if (c->hadamard) x = c->rot;
        }
    }
    if (!m2) return point < QTK_MAMBA_QL ? feed(c, layer, point, x, rows, cols) : QTK_OK;
    // Mamba2: in_proj's output z | x | B | C | dt and the conv's x | B | C, each split its own observer
    const int GN = cf->n_groups * cf->d_state;
    switch (point) {
    case QTK_MAMBA_Q_IN_PROJ_IN: return feed(c, layer, QTK_QUAMBA2_IN, x, rows, cols);
    case QTK_MAMBA_Q_IN_PROJ_OUT: {
        const int at[6] = {0, E, 2 * E, 2 * E + GN, 2 * E + 2 * GN, cols};
        for (int k = 0; k < 5; k++) QTK_TRY(feed_cols(c, layer, QTK_QUAMBA2_Z + k, x, rows, cols, at[k], at[k + 1] - at[k]));
        return QTK_OK;
    }
    case QTK_MAMBA_Q_X_PROJ_IN: {
        const int at[4] = {0, E, E + GN, E + 2 * GN};
        for (int k = 0; k < 3; k++) QTK_TRY(feed_cols(c, layer, QTK_QUAMBA2_X_OUT + k, x, rows, cols, at[k], at[k + 1] - at[k]));
        return QTK_OK;
    }
    case QTK_MAMBA_Q_SSM_STATE: return feed(c, layer, QTK_QUAMBA2_STATE, x, rows, cols);
    case QTK_MAMBA_Q_OUT_PROJ_IN: return feed(c, layer, QTK_QUAMBA2_OUT_IN, x, rows, cols);
    default: return QTK_OK;
    }
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

// the GPU's calibration forward is Mamba1's; a Mamba2 calibrates on the CPU whatever the device
static int quamba_calib_on_gpu(const qtk_mamba_config *c, const qtk_quamba_calib *cal) {
    return cal->device && c->arch == QTK_MAMBA1;
}

// FNV-1a over the calibration tokens
static uint64_t fnv1a(const int32_t *t, size_t n) {
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)t;
    for (size_t i = 0; i < n * sizeof *t; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

void quamba_obs_free(quamba_obs *c) {
    free(c->rot), free(c->split);
    free(c->x_max), free(c->y_ch), free(c->y_ch_had);
    qtk_qreg_free(&c->reg);
    memset(c, 0, sizeof *c);
}

qtk_status quamba_obs_init(quamba_obs *cx, const qtk_mamba *m, const qtk_quamba_opts *o) {
    const qtk_mamba_config *c = &m->cfg;
    memset(cx, 0, sizeof *cx);
    cx->m = m, cx->hadamard = qtk_quamba_uses_hadamard(o->variant), cx->fp16_check = o->fp16_check;
    const int np = cx->np = qtk_quamba_npoints(c), m2 = c->arch == QTK_MAMBA2;
    const size_t Ls = (size_t)c->n_layers, E = (size_t)c->d_inner;
    cx->x_max = calloc(Ls, sizeof(float));
    cx->y_ch = calloc(Ls * E, sizeof(float));
    cx->y_ch_had = calloc(Ls * E, sizeof(float));
    qtk_status st = cx->x_max && cx->y_ch && cx->y_ch_had ? qtk_qreg_init(&cx->reg, c->n_layers * np, 0)
                                                          : qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
    for (int l = 0; l < c->n_layers && st == QTK_OK; l++)
        for (int p = 0; p < np && st == QTK_OK; p++) {
            char name[QTK_QPOINT_NAME];
            snprintf(name, sizeof name, "layers.%d.%s", l, qtk_quamba_point_name(c->arch, p));
            // the SSM input's percentile; Mamba2's (the newer code's Quamba) clips the SSM state's likewise
            const int pct = qtk_quamba_uses_percentile(o->variant) &&
                            (m2 ? p == QTK_QUAMBA2_X_OUT || p == QTK_QUAMBA2_STATE : p == QTK_MAMBA_Q_X_PROJ_IN);
            qtk_qpoint_desc d = {.name = name, .kind = QTK_QPOINT_ACT, .block = l,
                                 .observer = pct ? QTK_OBS_PERCENTILE : QTK_OBS_MINMAX, .bits = 8, .is_signed = true,
                                 .channels = 1, .input = -1, .shares = -1};
            st = qtk_qreg_add(&cx->reg, l * np + p, &d);
            qtk_observer *ob = &cx->reg.p[l * np + p].ob;
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
    qtk_status st = quamba_calib_on_gpu(c, cal) ? quamba_observe_cuda(&cx, cal) : observe_cpu(&cx, m, cal);
    // scale = max(running |max|, 1e-5) / 127 (min-max); the EMA of the quantiles (percentile)
    const int np = cx.np, xpt = c->arch == QTK_MAMBA2 ? QTK_QUAMBA2_X_OUT : QTK_MAMBA_Q_X_PROJ_IN;
    for (int l = 0; l < c->n_layers && st == QTK_OK; l++) {
        for (int p = 0; p < np; p++) {
            const qtk_observer *ob = &cx.reg.p[l * np + p].ob;
            const float amax = fmaxf(-ob->min_val[0], ob->max_val[0]);
            q->layers[l].act[p] = qtk_scale_absmax(fmaxf(amax, 1e-5f), 8);
        }
        // the outliers: max |x| against the percentile the scale would take; max / median channel of y
        float *os = q->outliers + (size_t)l * QTK_QUAMBA_NOUT;
        const qtk_qpoint *xp = &cx.reg.p[l * np + xpt];
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
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) dst[i] = quamba_f16(src[i]);
}

qtk_status quamba_alloc(qtk_quamba *q) {
    const qtk_mamba_config *c = &q->cfg;
    if (c->d_state > 256 || c->d_conv > 64)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "quamba: state_size %d / conv_kernel %d (at most 256 / 64)", c->d_state,
                        c->d_conv);
    const int m2 = c->arch == QTK_MAMBA2;
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, N = (size_t)c->d_state, K = (size_t)c->d_conv,
                 R = (size_t)c->dt_rank, V = (size_t)c->vocab, Ls = (size_t)c->n_layers, H = (size_t)c->n_heads,
                 IN = (size_t)qtk_mamba_in_proj_out(c), CD = (size_t)qtk_mamba_conv_dim(c);
    const size_t per_i8 = m2 ? IN * D + CD * K + CD + H + H + D * E
                             : 2 * E * D + E * K + E + (R + 2 * N) * E + E * R + E + E * N + E + D * E;
    q->n_i8 = Ls * per_i8;
    q->n_f32 = V * D * (c->tied ? 1 : 2) + D + Ls * (D + (m2 ? H + E : 0));
    q->layers = calloc(Ls, sizeof *q->layers);
    q->i8 = qtk_aligned_alloc(q->n_i8);
    q->f32 = qtk_aligned_alloc(q->n_f32 * sizeof(float));
    q->sat = calloc(Ls * QTK_QUAMBA_NPT, sizeof *q->sat);
    q->seen = calloc(Ls * QTK_QUAMBA_NPT, sizeof *q->seen);
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
        if (m2) {
            y->dt_bias = f, f += H;
            y->gnorm_w = f, f += E;
            y->in_w = b, b += IN * D;
            y->conv_w = b, b += CD * K;
            y->conv_b = b, b += CD;
            y->A_log = b, b += H;
            y->Dq = b, b += H;
            y->out_w = b, b += D * E;
            continue;
        }
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

// A Mamba1 layer's int8 weights (spec 5.2), every tensor per tensor. zero: E zeros
static void quantize_mamba1(const qtk_mamba_config *c, const qtk_mamba_layer *x, qtk_quamba_layer *y, const float *zero) {
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, N = (size_t)c->d_state, K = (size_t)c->d_conv,
                 R = (size_t)c->dt_rank;
    y->in_ws = quamba_weight_q8(x->in_proj_w, 2 * E * D, y->in_w);
    y->conv_ws = quamba_weight_q8(x->conv_w, E * K, y->conv_w);
    y->conv_bs = quamba_weight_q8(x->conv_b ? x->conv_b : zero, E, y->conv_b);
    y->x_ws = quamba_weight_q8(x->x_proj_w, (R + 2 * N) * E, y->x_w);
    y->dt_ws = quamba_weight_q8(x->dt_proj_w, E * R, y->dt_w);
    y->dt_bs = quamba_weight_q8(x->dt_proj_b, E, y->dt_b); // the bias leaves dt_proj for the scan
    y->A_s = quamba_weight_q8(x->A_log, E * N, y->A_log);
    y->D_s = quamba_weight_q8(x->Dskip, E, y->Dq);
}

// A Mamba2 layer's int8 weights (spec 6.5, W8A8): in_proj per output split z, x, B, C, dt; conv1d's weight and
// bias per channel range x, B, C; A_log and D per tensor; dt_bias and the gated norm's weight fp16. zero: CD zeros
static void quantize_mamba2(const qtk_mamba_config *c, const qtk_mamba_layer *x, qtk_quamba_layer *y, const float *zero) {
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, K = (size_t)c->d_conv, H = (size_t)c->n_heads,
                 GN = (size_t)c->n_groups * c->d_state;
    const size_t rows[5] = {E, E, GN, GN, H};
    size_t at = 0;
    for (int k = 0; k < 5; at += rows[k], k++) y->in_ws5[k] = quamba_weight_q8(x->in_proj_w + at * D, rows[k] * D, y->in_w + at * D);
    const float *cb = x->conv_b ? x->conv_b : zero;
    y->conv_ws = quamba_weight_q8(x->conv_w, E * K, y->conv_w);
    y->conv_bs = quamba_weight_q8(cb, E, y->conv_b);
    for (int k = 0; k < 2; k++) {
        const size_t c0 = E + k * GN;
        y->conv_ws_bc[k] = quamba_weight_q8(x->conv_w + c0 * K, GN * K, y->conv_w + c0 * K);
        y->conv_bs_bc[k] = quamba_weight_q8(cb + c0, GN, y->conv_b + c0);
    }
    y->A_s = quamba_weight_q8(x->A_log, H, y->A_log);
    y->D_s = quamba_weight_q8(x->Dskip, H, y->Dq);
    f16_copy(y->dt_bias, x->dt_bias, H);
    f16_copy(y->gnorm_w, x->gnorm_w, E);
}

static qtk_status quantize_weights(qtk_quamba *q, const qtk_mamba *m) {
    const qtk_mamba_config *c = &q->cfg;
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, V = (size_t)c->vocab;
    // the embedding, the norms and the head stay fp16
    f16_copy(q->emb, m->emb, V * D);
    if (!c->tied) f16_copy(q->lm_head, m->lm_head, V * D);
    f16_copy(q->norm_f, m->norm_f, D);
    float *tmp = malloc(D * E * sizeof *tmp), *zero = calloc((size_t)qtk_mamba_conv_dim(c), sizeof *zero);
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
        if (c->arch == QTK_MAMBA2) quantize_mamba2(c, x, y, zero);
        else quantize_mamba1(c, x, y, zero);
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
                 quamba_calib_on_gpu(&m->cfg, cal) ? ", GPU fp16 forward" : "");
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
    const size_t n = (size_t)q->cfg.n_layers * QTK_QUAMBA_NPT;
    memset(q->sat, 0, n * sizeof *q->sat);
    memset(q->seen, 0, n * sizeof *q->seen);
}

int qtk_quamba_saturation_report(const qtk_quamba *q, FILE *out) {
    int over = 0;
    for (int l = 0; l < q->cfg.n_layers; l++)
        for (int p = 0; p < qtk_quamba_npoints(&q->cfg); p++) {
            const uint64_t s = q->sat[l * QTK_QUAMBA_NPT + p], n = q->seen[l * QTK_QUAMBA_NPT + p];
            if (!s || !n) continue;
            const double share = (double)s / (double)n;
            over += share > q->opts.sat_warn;
            if (out)
                fprintf(out, "%slayers.%d.%s: %llu of %llu codes saturated (%.4f%%)\n",
                        share > q->opts.sat_warn ? "warning: " : "", l, qtk_quamba_point_name(q->cfg.arch, p), (unsigned long long)s,
                        (unsigned long long)n, 100.0 * share);
        }
    return over;
}
