// The Quamba forward on the CPU (spec mamba-quamba.md section 5.2): the reference of the quantized block,
// each step under the line of the reference it implements. Integer sums are exact; every float expression
// keeps the reference's association, so the GPU's kernels can be checked code for code.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/blas.h"
#include "../core/hadamard.h"
#include "../core/ops.h"
#include "../core/qparams.h"
#include "../core/scalar.h"
#include "../core/tensor.h"
#include "quamba.h"
#include "quamba_internal.h"


// the workspace of `rows` tokens, carved in 64-byte pieces
typedef struct {
    float *h, *t, *y;   // the residual stream (rows, D), a (rows, D) temporary, the scan's output (rows, E)
    int32_t *acc;       // (rows, max(2E, R + 2N, D))
    int8_t *uq, *xz, *xq, *dbl, *dtq, *yq;
} qws;

static size_t up64(size_t b) { return (b + 63) & ~(size_t)63; }

static size_t carve(const qtk_mamba_config *c, size_t rows, void *base, qws *w) {
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, IN = (size_t)qtk_mamba_in_proj_out(c),
                 CD = (size_t)qtk_mamba_conv_dim(c);
    // Mamba1: xz (2E), xq (E), dbl (R + 2N), dtq (E); Mamba2: xz the whole in_proj output (IN), xq the conv's (CD)
    const size_t XD = c->arch == QTK_MAMBA2 ? 0 : (size_t)(c->dt_rank + 2 * c->d_state);
    size_t W = IN > XD ? IN : XD;
    W = W > D ? W : D;
    const size_t sizes[] = {rows * D * 4, rows * D * 4, rows * E * 4, rows * W * 4, rows * D, rows * IN,
                            rows * CD,    rows * XD,    c->arch == QTK_MAMBA2 ? 0 : rows * E, rows * E};
    void **dst[] = {(void **)&w->h,  (void **)&w->t,   (void **)&w->y,   (void **)&w->acc, (void **)&w->uq,
                    (void **)&w->xz, (void **)&w->xq, (void **)&w->dbl, (void **)&w->dtq, (void **)&w->yq};
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        if (base) *dst[i] = (char *)base + off;
        off += up64(sizes[i]);
    }
    return off;
}

static qtk_status ensure_ws(qtk_quamba_state *s, size_t bytes) {
    if (bytes <= s->ws_cap) return QTK_OK;
    void *p = qtk_aligned_alloc(bytes);
    if (!p) return qtk_fail(QTK_ERR_NOMEM, "quamba: out of memory for a %zu-byte workspace", bytes);
    qtk_aligned_free(s->ws);
    s->ws = p;
    s->ws_cap = bytes;
    return QTK_OK;
}

qtk_status qtk_quamba_state_init(qtk_quamba_state *s, const qtk_quamba *q, int B) {
    memset(s, 0, sizeof *s);
    const qtk_mamba_config *c = &q->cfg;
    if (B < 1) return qtk_fail(QTK_ERR_ARG, "Quamba state for %d sequences", B);
    s->B = B;
    s->n_layers = c->n_layers;
    if (q->fp) return qtk_mamba_state_init(&s->fs, q->fp, B); // dynamic: the float model's state
    const int m2 = c->arch == QTK_MAMBA2;
    s->conv_per_layer = (size_t)B * qtk_mamba_conv_dim(c) * c->d_conv;
    s->ssm_per_layer = (size_t)B * c->d_inner * c->d_state;
    s->conv = qtk_aligned_alloc(s->conv_per_layer * c->n_layers);
    if (m2) s->ssm8 = qtk_aligned_alloc(s->ssm_per_layer * c->n_layers);
    else s->ssm = qtk_aligned_alloc(s->ssm_per_layer * c->n_layers * sizeof(float));
    if (!s->conv || !(m2 ? (void *)s->ssm8 : (void *)s->ssm) || ensure_ws(s, carve(c, (size_t)B, NULL, &(qws){0})) != QTK_OK) {
        qtk_quamba_state_free(s);
        return qtk_fail(QTK_ERR_NOMEM, "Quamba state for %d sequences: out of memory", B);
    }
    qtk_quamba_state_reset(s);
    return QTK_OK;
}

void qtk_quamba_state_reset(qtk_quamba_state *s) {
    if (s->conv) memset(s->conv, 0, s->conv_per_layer * s->n_layers);
    if (s->ssm) memset(s->ssm, 0, s->ssm_per_layer * s->n_layers * sizeof(float));
    if (s->ssm8) memset(s->ssm8, 0, s->ssm_per_layer * s->n_layers);
    if (s->fs.conv) qtk_mamba_state_reset(&s->fs);
    s->pos = 0;
}

void qtk_quamba_state_free(qtk_quamba_state *s) {
    qtk_aligned_free(s->conv);
    qtk_aligned_free(s->ssm);
    qtk_aligned_free(s->ssm8);
    qtk_aligned_free(s->ws);
    qtk_mamba_state_free(&s->fs);
    memset(s, 0, sizeof *s);
}

// --- the block's steps ------------------------------------------------------------------------------

void quamba_conv_q8_ranges(const quamba_conv_args *a, uint64_t sat[3]) {
    uint64_t s0 = 0, s1 = 0, s2 = 0;
#pragma omp parallel for collapse(2) reduction(+ : s0, s1, s2) schedule(static) if ((size_t)a->B * a->L * a->E * a->K >= 262144)
    for (int b = 0; b < a->B; b++)
        for (int c = 0; c < a->E; c++) {
            const unsigned n = quamba_conv_channel(a, b, c);
            if (a->x_end == 0 || c < a->x_end) s0 += n;
            else if (c < a->b_end) s1 += n;
            else s2 += n;
        }
    sat[0] = s0, sat[1] = s1, sat[2] = s2;
}

uint64_t quamba_conv_q8(const quamba_conv_args *a) {
    uint64_t sat[3];
    quamba_conv_q8_ranges(a, sat);
    return sat[0] + sat[1] + sat[2];
}

void quamba_scan(const quamba_scan_args *a) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)a->B * a->L * a->E * a->N >= 262144)
    for (int b = 0; b < a->B; b++)
        for (int ch = 0; ch < a->E; ch++) quamba_scan_channel(a, b, ch);
}

quamba_scan_args quamba_scan_operands(const qtk_quamba *q, int l, int B, int L, const int8_t *xq, const int8_t *dtq,
                                      const int8_t *dbl, const int8_t *xz, float *h, float *y) {
    const qtk_mamba_config *c = &q->cfg;
    const qtk_quamba_layer *ly = &q->layers[l];
    const int E = c->d_inner;
    quamba_scan_args a = {B, L, E, c->d_state, c->dt_rank, xq, dtq, dbl, xz + E, 2 * E, ly->A_log, ly->Dq, ly->dt_b,
                          ly->act[QTK_MAMBA_Q_X_PROJ_IN], ly->act[QTK_MAMBA_Q_DT_PROJ_OUT], ly->act[QTK_MAMBA_Q_X_PROJ_OUT],
                          ly->act[QTK_MAMBA_Q_IN_PROJ_OUT], ly->A_s, ly->D_s, ly->dt_bs, h, y};
    return a;
}

void quamba_out_resid(const int32_t *acc, size_t n, float s_y, float s_w, float *h) {
    // out = s_in (s_w acc) in fp16; residual = residual + out
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) h[i] += quamba_f16(s_y * (s_w * (float)acc[i]));
}

// q = clamp(roundf((H_E y) mu)), mu = fl32((1/sqrt(E)) / s) with the Hadamard, fl32(1 / s) without; y is
// overwritten. The reference's kernel casts without clamping; qtk saturates and counts.
qtk_status quamba_had_q8(float *y, size_t rows, int E, int had, float s, int8_t *q, uint64_t *sat) {
    if (had) QTK_TRY(qtk_hadamard_rows_raw(y, rows, (size_t)E));
    const float mu = quamba_had_mu(E, had, s);
    uint64_t n = 0;
#pragma omp parallel for reduction(+ : n) schedule(static) if (rows * (size_t)E >= 65536)
    for (size_t i = 0; i < rows * (size_t)E; i++) {
        const float v = roundf(y[i] * mu);
        n += quamba_clips(v);
        q[i] = qtk_sat_s8(v);
    }
    *sat += n;
    return QTK_OK;
}

#define TAP(kind, data, n)                                                                                            \
    if (s->tap) s->tap(s->tap_ctx, l, kind, data, n)

// The block's end, both generations: had(y) quantized with out_proj's input scale (point p), out_proj with fp16
// output, the residual; y (rows, E) is overwritten
static qtk_status block_out(const qtk_quamba *q, int l, qtk_quamba_state *s, size_t rows, int p, const qws *w) {
    const qtk_quamba_layer *y = &q->layers[l];
    const int D = q->cfg.d_model, E = q->cfg.d_inner;
    const float s_y = y->act[p];
    // y = had(y), quantized
    QTK_TRY(quamba_had_q8(w->y, rows, E, qtk_quamba_uses_hadamard(q->opts.variant), s_y, w->yq,
                          &q->sat[(size_t)l * QTK_QUAMBA_NPT + p]));
    q->seen[(size_t)l * QTK_QUAMBA_NPT + p] += rows * E;
    TAP(p, w->yq, rows * E);
    // out = self.out_proj(y): fp16 = s_in (s_w acc); residual = residual + out
    qtk_gemm_s8(w->yq, (size_t)E, y->out_w, w->acc, rows, D, E);
    quamba_out_resid(w->acc, rows * (size_t)D, s_y, y->out_ws, w->h);
    TAP(QTK_QUAMBA_TAP_H, w->h, rows * D);
    return QTK_OK;
}

static qtk_status layer_fwd(const qtk_quamba *q, int l, qtk_quamba_state *s, int L, const qws *w) {
    const qtk_mamba_config *c = &q->cfg;
    const qtk_quamba_layer *y = &q->layers[l];
    const int B = s->B, D = c->d_model, E = c->d_inner, N = c->d_state, R = c->dt_rank, XD = R + 2 * N;
    const size_t rows = (size_t)B * L;
    const float *A = y->act;
    uint64_t *sat = q->sat + (size_t)l * QTK_QUAMBA_NPT, *seen = q->seen + (size_t)l * QTK_QUAMBA_NPT;
    // one row: the decode GEMV; a prefill: in_proj and dt_proj write sequence-last
    const quamba_epi epi = rows == 1 ? QUAMBA_EPI_GEMV : QUAMBA_EPI_GEMM;
    const quamba_epi epi_t = rows == 1 ? QUAMBA_EPI_GEMV : L > 1 ? QUAMBA_EPI_GEMM_T : QUAMBA_EPI_GEMM;
    // hidden_states = self.norm(residual), quantized: clamp(roundf(u / s))
    qtk_op_rmsnorm(w->h, NULL, y->norm_w, w->t, rows, (size_t)D, c->eps);
    sat[QTK_MAMBA_Q_IN_PROJ_IN] += quamba_q8_div(w->t, rows, (size_t)D, (size_t)D, A[QTK_MAMBA_Q_IN_PROJ_IN], w->uq, (size_t)D);
    seen[QTK_MAMBA_Q_IN_PROJ_IN] += rows * D;
    TAP(QTK_MAMBA_Q_IN_PROJ_IN, w->uq, rows * D);
    // xz = self.in_proj(hidden_states): W8A8, int8 x | z
    qtk_gemm_s8(w->uq, (size_t)D, y->in_w, w->acc, rows, 2 * E, D);
    sat[QTK_MAMBA_Q_IN_PROJ_OUT] += quamba_requant(w->acc, rows, 2 * E, y->in_ws, A[QTK_MAMBA_Q_IN_PROJ_IN],
                                                   A[QTK_MAMBA_Q_IN_PROJ_OUT], epi_t, w->xz, 2 * (size_t)E);
    seen[QTK_MAMBA_Q_IN_PROJ_OUT] += rows * 2 * E;
    TAP(QTK_MAMBA_Q_IN_PROJ_OUT, w->xz, rows * 2 * E);
    // x = silu(conv1d(x)): int8 in, int8 out
    quamba_conv_args ca = {B, L, E, c->d_conv, w->xz, 2 * (size_t)E, y->conv_w, y->conv_b, y->conv_ws, y->conv_bs,
                           A[QTK_MAMBA_Q_IN_PROJ_OUT], A[QTK_MAMBA_Q_X_PROJ_IN], s->conv + s->conv_per_layer * l, w->xq, .x_end = 0};
    sat[QTK_MAMBA_Q_X_PROJ_IN] += quamba_conv_q8(&ca);
    seen[QTK_MAMBA_Q_X_PROJ_IN] += rows * E;
    TAP(QTK_MAMBA_Q_X_PROJ_IN, w->xq, rows * E);
    // x_dbl = self.x_proj(x): int8 dt | B | C with one scale
    qtk_gemm_s8(w->xq, (size_t)E, y->x_w, w->acc, rows, XD, E);
    sat[QTK_MAMBA_Q_X_PROJ_OUT] += quamba_requant(w->acc, rows, XD, y->x_ws, A[QTK_MAMBA_Q_X_PROJ_IN],
                                                  A[QTK_MAMBA_Q_X_PROJ_OUT], epi, w->dbl, (size_t)XD);
    seen[QTK_MAMBA_Q_X_PROJ_OUT] += rows * XD;
    TAP(QTK_MAMBA_Q_X_PROJ_OUT, w->dbl, rows * XD);
    // dt = self.dt_proj(dt) without its bias; the input scale is x_proj's output scale
    qtk_gemm_s8(w->dbl, (size_t)XD, y->dt_w, w->acc, rows, E, R);
    sat[QTK_MAMBA_Q_DT_PROJ_OUT] += quamba_requant(w->acc, rows, E, y->dt_ws, A[QTK_MAMBA_Q_X_PROJ_OUT],
                                                   A[QTK_MAMBA_Q_DT_PROJ_OUT], epi_t, w->dtq, (size_t)E);
    seen[QTK_MAMBA_Q_DT_PROJ_OUT] += rows * E;
    TAP(QTK_MAMBA_Q_DT_PROJ_OUT, w->dtq, rows * E);
    // y = selective_scan(x, dt, A, B, C, D, z, delta_bias, delta_softplus=True): fp16
    quamba_scan_args sa = quamba_scan_operands(q, l, B, L, w->xq, w->dtq, w->dbl, w->xz, s->ssm + s->ssm_per_layer * l, w->y);
    quamba_scan(&sa);
    TAP(QTK_QUAMBA_TAP_Y, w->y, rows * E);
    return block_out(q, l, s, rows, QTK_MAMBA_Q_OUT_PROJ_IN, w);
}
// Mamba2's block (spec 6.5 W8A8 with per-tensor scales): the reference's line above each step
static qtk_status layer_fwd2(const qtk_quamba *q, int l, qtk_quamba_state *s, int L, const qws *w) {
    const qtk_mamba_config *c = &q->cfg;
    const qtk_quamba_layer *y = &q->layers[l];
    const int B = s->B, D = c->d_model, E = c->d_inner, N = c->d_state, H = c->n_heads, P = c->head_dim,
              G = c->n_groups, GN = G * N, IN = qtk_mamba_in_proj_out(c), CD = qtk_mamba_conv_dim(c);
    const size_t rows = (size_t)B * L;
    const float *A = y->act;
    uint64_t *sat = q->sat + (size_t)l * QTK_QUAMBA_NPT, *seen = q->seen + (size_t)l * QTK_QUAMBA_NPT;
    const int gemv = rows == 1;
    // residual = hidden_states + residual; hidden_states = norm(residual), q = clamp(rint(y / s)) (Triton)
    qtk_op_rmsnorm(w->h, NULL, y->norm_w, w->t, rows, (size_t)D, c->eps);
    sat[QTK_QUAMBA2_IN] += quamba_q8_div_rne(w->t, rows, (size_t)D, (size_t)D, A[QTK_QUAMBA2_IN], w->uq, (size_t)D);
    seen[QTK_QUAMBA2_IN] += rows * D;
    TAP(QTK_QUAMBA2_IN, w->uq, rows * D);
    // zxbcdt = self.in_proj(u): W8A8, each split z | x | B | C | dt its weight scale and output scale
    qtk_gemm_s8(w->uq, (size_t)D, y->in_w, w->acc, rows, IN, D);
    const int at[6] = {0, E, 2 * E, 2 * E + GN, 2 * E + 2 * GN, IN};
    for (int k = 0; k < 5; k++) {
        // b = weight_scale / o_scale (double, stored fp32); a = input_scale
        const float b = (float)((double)y->in_ws5[k] / (double)A[QTK_QUAMBA2_Z + k]), si = A[QTK_QUAMBA2_IN];
        uint64_t n = 0;
#pragma omp parallel for reduction(+ : n) schedule(static) if (rows * (size_t)IN >= 65536)
        for (size_t r = 0; r < rows; r++)
            for (int j = at[k]; j < at[k + 1]; j++) {
                const float v = quamba2_epi(w->acc[r * IN + j], b, si, gemv);
                n += quamba_clips(v);
                w->xz[r * IN + j] = qtk_sat_s8(v);
            }
        sat[QTK_QUAMBA2_Z + k] += n;
        seen[QTK_QUAMBA2_Z + k] += rows * (size_t)(at[k + 1] - at[k]);
    }
    TAP(QTK_QUAMBA2_Z, w->xz, rows * IN);
    // x, B, C = self.conv1d(xBC): int8 in and out, each channel range its scales, SiLU fused
    quamba_conv_args ca = {B, L, CD, c->d_conv, w->xz + E, (size_t)IN, y->conv_w, y->conv_b, y->conv_ws, y->conv_bs,
                           A[QTK_QUAMBA2_X_IN], A[QTK_QUAMBA2_X_OUT], s->conv + s->conv_per_layer * l, w->xq, E, E + GN,
                           {y->conv_ws_bc[0], y->conv_ws_bc[1]}, {y->conv_bs_bc[0], y->conv_bs_bc[1]},
                           {A[QTK_QUAMBA2_B_IN], A[QTK_QUAMBA2_C_IN]}, {A[QTK_QUAMBA2_B_OUT], A[QTK_QUAMBA2_C_OUT]}};
    uint64_t cs[3];
    quamba_conv_q8_ranges(&ca, cs);
    for (int k = 0; k < 3; k++) sat[QTK_QUAMBA2_X_OUT + k] += cs[k];
    seen[QTK_QUAMBA2_X_OUT] += rows * E, seen[QTK_QUAMBA2_B_OUT] += rows * GN, seen[QTK_QUAMBA2_C_OUT] += rows * GN;
    TAP(QTK_QUAMBA2_X_OUT, w->xq, rows * CD);
    // y = self.qchunk_scan(x, dt, B, C): int8 operands, fp32 state, fp16 y; the state kept as int8 codes
    quamba2_ssd_args sa = {B, L, H, P, N, G, w->xq, (size_t)CD, w->xz + 2 * E + 2 * GN, (size_t)IN, y->A_log, y->Dq,
                           y->dt_bias, A[QTK_QUAMBA2_X_OUT], A[QTK_QUAMBA2_B_OUT], A[QTK_QUAMBA2_C_OUT], A[QTK_QUAMBA2_DT],
                           y->A_s, y->D_s, A[QTK_QUAMBA2_STATE], c->dt_min, c->dt_max, s->ssm8 + s->ssm_per_layer * l,
                           w->y};
    uint64_t ns = 0;
#pragma omp parallel for collapse(3) reduction(+ : ns) schedule(static) if ((size_t)B * L * E * N >= 65536)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int p = 0; p < P; p++) ns += quamba2_ssd_row(&sa, b, h, p);
    sat[QTK_QUAMBA2_STATE] += ns;
    seen[QTK_QUAMBA2_STATE] += (size_t)B * E * N;
    TAP(QTK_QUAMBA_TAP_Y, w->y, rows * E);
    // y = self.norm(y, z): the gated RMSNorm, fp16 out
#pragma omp parallel for schedule(static) if (rows * (size_t)E >= 65536)
    for (size_t r = 0; r < rows; r++)
        quamba2_gnorm_row(w->y + r * E, w->xz + r * IN, A[QTK_QUAMBA2_Z], y->gnorm_w, E, G, c->eps, w->y + r * E);
    return block_out(q, l, s, rows, QTK_QUAMBA2_OUT_IN, w);
}
#undef TAP

// --- dynamic: the float forward with int8 projections, each input row quantized on the fly -------------

// the weight scale of output column j (Mamba2's in_proj: its split's)
static float col_scale(const qtk_mamba_config *c, const qtk_quamba_layer *y, int which, float sw, int j) {
    if (c->arch != QTK_MAMBA2 || which != QTK_MAMBA_LIN_IN) return sw;
    const int E = c->d_inner, GN = c->n_groups * c->d_state;
    return y->in_ws5[j < E ? 0 : j < 2 * E ? 1 : j < 2 * E + GN ? 2 : j < 2 * E + 2 * GN ? 3 : 4];
}

static int dyn_linear(void *ctx, int layer, int which, const float *x, int ldx, size_t rows, float *out) {
    const qtk_quamba *q = ctx;
    const qtk_mamba_config *c = &q->cfg;
    const qtk_quamba_layer *y = &q->layers[layer];
    const int D = c->d_model, E = c->d_inner, XD = c->dt_rank + 2 * c->d_state;
    const int8_t *W;
    float sw;
    int N, K;
    switch (which) {
    case QTK_MAMBA_LIN_IN: W = y->in_w, sw = y->in_ws, N = qtk_mamba_in_proj_out(c), K = D; break;
    case QTK_MAMBA_LIN_X: W = y->x_w, sw = y->x_ws, N = XD, K = E; break;
    case QTK_MAMBA_LIN_DT: W = y->dt_w, sw = y->dt_ws, N = E, K = c->dt_rank; break;
    default: W = y->out_w, sw = y->out_ws, N = D, K = E; break;
    }
    int8_t *xq = malloc(rows * (size_t)K);
    float *sx = malloc(rows * sizeof *sx);
    int32_t *acc = malloc(rows * (size_t)N * sizeof *acc);
    if (!xq || !sx || !acc) {
        free(xq), free(sx), free(acc);
        qtk_fail(QTK_ERR_NOMEM, "quamba dynamic: out of memory for %zu rows", rows);
        return -1;
    }
#pragma omp parallel for schedule(static) if (rows * (size_t)K >= 65536)
    for (size_t r = 0; r < rows; r++) {
        // per token: s = max(max|x|, 1e-5) / 127, q = clamp(RNE(x / s))
        const float *xr = x + r * ldx;
        float amax = 0.0f;
        for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(xr[k]));
        sx[r] = qtk_scale_absmax(fmaxf(amax, 1e-5f), 8);
        for (int k = 0; k < K; k++) xq[r * K + k] = qtk_sat_s8(rintf(xr[k] / sx[r]));
    }
    qtk_gemm_s8(xq, (size_t)K, W, acc, rows, N, K);
#pragma omp parallel for schedule(static) if (rows * (size_t)N >= 65536)
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < N; j++) out[r * N + j] = sx[r] * (col_scale(c, y, which, sw, j) * (float)acc[r * N + j]);
    free(xq), free(sx), free(acc);
    return 1;
}

// --- the model ----------------------------------------------------------------------------------------

qtk_status qtk_quamba_prefill(const qtk_quamba *q, qtk_quamba_state *s, const int32_t *tokens, int L, float *logits) {
    if (q->fp) {
        qtk_mamba_hooks hk = {.ctx = (void *)q, .linear = dyn_linear};
        QTK_TRY(qtk_mamba_prefill_hooked(q->fp, &s->fs, tokens, L, logits, QTK_SCAN_AUTO, &hk));
        s->pos += L;
        return QTK_OK;
    }
    const qtk_mamba_config *c = &q->cfg;
    if (L < 1) return qtk_fail(QTK_ERR_ARG, "Quamba prefill of %d tokens", L);
    const int B = s->B, D = c->d_model, V = c->vocab;
    const size_t rows = (size_t)B * L;
    for (size_t i = 0; i < rows; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return qtk_fail(QTK_ERR_ARG, "token %d at sequence %zu, position %zu is outside the vocabulary (0..%d)",
                            tokens[i], i / L, i % L, V - 1);
    QTK_TRY(ensure_ws(s, carve(c, rows, NULL, &(qws){0})));
    qws w;
    carve(c, rows, s->ws, &w);
    // hidden_states = self.embedding(input_ids) (fp16 values)
    for (size_t r = 0; r < rows; r++) memcpy(w.h + r * D, q->emb + (size_t)tokens[r] * D, (size_t)D * sizeof(float));
    for (int l = 0; l < c->n_layers; l++)
        QTK_TRY(c->arch == QTK_MAMBA2 ? layer_fwd2(q, l, s, L, &w) : layer_fwd(q, l, s, L, &w));
    if (logits) {
        // logits = self.lm_head(self.norm_f(hidden_states)): fp16 values, float32 sums
        qtk_op_rmsnorm(w.h, NULL, q->norm_f, w.t, rows, (size_t)D, c->eps);
        for (size_t i = 0; i < rows * (size_t)D; i++) w.t[i] = quamba_f16(w.t[i]);
        if (rows == 1) qtk_sgemv(V, D, q->lm_head, D, w.t, logits);
        else qtk_sgemm(false, true, (int)rows, V, D, 1.0f, w.t, D, q->lm_head, D, 0.0f, logits, V);
    }
    s->pos += L;
    return QTK_OK;
}

qtk_status qtk_quamba_decode(const qtk_quamba *q, qtk_quamba_state *s, const int32_t *tokens, float *logits) {
    return qtk_quamba_prefill(q, s, tokens, 1, logits);
}

typedef struct {
    const qtk_quamba *q;
    qtk_quamba_state s;
} q_lm;

static qtk_status q_windows(void *ud, const int32_t *tokens, int B, int L, float *logits) {
    q_lm *c = ud;
    if (c->s.B != B) {
        qtk_quamba_state_free(&c->s);
        QTK_TRY(qtk_quamba_state_init(&c->s, c->q, B));
    } else qtk_quamba_state_reset(&c->s);
    return qtk_quamba_prefill(c->q, &c->s, tokens, L, logits);
}

qtk_status qtk_quamba_perplexity(const qtk_quamba *q, const int32_t *tokens, size_t n, int ctx, int stride,
                                 int max_windows, int batch, double *ppl, size_t *n_scored) {
    q_lm c = {q, {0}};
    qtk_status st = qtk_lm_perplexity(q_windows, &c, q->cfg.vocab, tokens, n, ctx, stride, max_windows, batch, ppl,
                                      n_scored);
    qtk_quamba_state_free(&c.s);
    return st;
}
