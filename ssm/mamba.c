// The Mamba1 / Mamba2 forward on the CPU (spec mamba-quamba.md sections 1-3): projections through
// OpenBLAS, the causal conv and the scans per channel / head with OpenMP. The reference PyTorch line
// (transformers' modeling_mamba*.py, mamba_ssm's selective_scan_ref) sits above the C that implements it.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../core/blas.h"
#include "../core/ops.h"
#include "../core/scalar.h"
#include "../core/tensor.h"
#include "mamba.h"

// y (rows, N) = x (rows, K) W^T (+ b), W (N, K) row-major. With m's fp16 reference on, x and W rounded to
// fp16 first (W from the rounded copy at the same offset), as the GPU's fp16 projections.
static void linear(const qtk_mamba *m, const float *x, const float *W, const float *b, float *y, size_t rows, int N, int K,
                   int ldx) {
    float *xh = NULL;
    if (m->half_mem) {
        W = m->half_mem + (W - m->mem);
        if ((xh = malloc(rows * (size_t)K * sizeof *xh))) { // a reference mode: allocates (its caller checked memory)
            for (size_t r = 0; r < rows; r++)
                for (int k = 0; k < K; k++) xh[r * K + k] = qtk_f16_to_f32(qtk_f32_to_f16(x[r * ldx + k]));
            x = xh, ldx = K;
        }
    }
    if (rows == 1) qtk_sgemv(N, K, W, K, x, y); // decode of one sequence: a matrix-vector product
    else qtk_sgemm(false, true, (int)rows, N, K, 1.0f, x, ldx, W, K, 0.0f, y, N);
    if (b)
#pragma omp parallel for schedule(static) if (rows * (size_t)N >= 65536)
        for (size_t r = 0; r < rows; r++)
            for (int j = 0; j < N; j++) y[r * N + j] += b[j];
    free(xh);
}

// --- Mamba1 mixer ---------------------------------------------------------------------------

// selective_scan_ref over the B*L rows: x (rows, E) conv output, dt (rows, E), Bm / Cm (rows of stride
// ldbc, N values each), z (rows of stride ldz) the gate; state h (B, E, N); y (rows, E)
static void scan1(const qtk_mamba_config *c, const qtk_mamba_layer *ly, int B, int L, const float *x, const float *dt,
                  const float *Bm, const float *Cm, int ldbc, const float *z, int ldz, float *h, float *y) {
    const int E = c->d_inner, N = c->d_state;
    // small work (decode) stays on this thread: waking OpenMP workers costs more, and their spinning
    // afterwards slows OpenBLAS's own threads
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * E * N >= 262144)
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < E; ch++) {
            float *hs = h + ((size_t)b * E + ch) * N;
            const float *A = ly->A + (size_t)ch * N; // -exp(A_log)
            for (int t = 0; t < L; t++) {
                size_t r = (size_t)b * L + t;
                const float d = dt[r * E + ch], u = x[r * E + ch];
                const float *Bt = Bm + r * ldbc, *Ct = Cm + r * ldbc;
                float acc = 0.0f;
                for (int n = 0; n < N; n++) {
                    // x = deltaA[:, :, i] * x + deltaB_u[:, :, i]; deltaA = exp(delta A), deltaB_u = delta B u
                    hs[n] = expf(d * A[n]) * hs[n] + (d * Bt[n]) * u;
                    // y = einsum('bdn,bn->bd', x, C[:, :, i])
                    acc += hs[n] * Ct[n];
                }
                // out = y + u * D;  out = out * F.silu(z)
                float o = acc + u * ly->Dskip[ch];
                y[r * E + ch] = o * qtk_silu(z[r * ldz + ch]);
            }
        }
}

// --- Mamba2 mixer ---------------------------------------------------------------------------

typedef struct {
    const float *x, *Bm, *Cm; // rows of stride ld: x (E = H x P), Bm / Cm (G x N)
    int ld;
    const float *dt;          // (rows, H), after softplus and clamp
    float *y;                 // (rows, E)
} ssd_io;

// The recurrence for head hd of sequence b over L tokens: state s (P, N)
static void ssd_recurrent(const qtk_mamba_config *c, const qtk_mamba_layer *ly, const ssd_io *io, int b, int L, int hd,
                          float *s) {
    const int P = c->head_dim, N = c->d_state, g = hd / (c->n_heads / c->n_groups);
    const float A = ly->A[hd], Dh = ly->Dskip[hd];
    for (int t = 0; t < L; t++) {
        size_t r = (size_t)b * L + t;
        const float d = io->dt[r * c->n_heads + hd], dA = expf(d * A);
        const float *xt = io->x + r * io->ld + (size_t)hd * P, *Bt = io->Bm + r * io->ld + (size_t)g * N,
                    *Ct = io->Cm + r * io->ld + (size_t)g * N;
        for (int p = 0; p < P; p++) {
            float *sp = s + (size_t)p * N, acc = 0.0f;
            for (int n = 0; n < N; n++) {
                // h_t = exp(dt A) h_{t-1} + dt B_t x_t;  y_t = C_t . h_t
                sp[n] = dA * sp[n] + (d * Bt[n]) * xt[p];
                acc += Ct[n] * sp[n];
            }
            io->y[r * c->d_inner + (size_t)hd * P + p] = acc + Dh * xt[p];
        }
    }
}

// Chunked SSD (spec section 3) for head hd of sequence b, the products as GEMMs: within a chunk of
// len tokens with cumulative log-decays c_i (cumsum of dt A),
//   W = (C B^T) * exp(c_i - c_j) * dt_j (j <= i, else 0);  y = W x + exp(c_i) C s_in^T + D x;
//   s_out = exp(c_last) s_in + x^T (w_j B),  w_j = exp(c_last - c_j) dt_j.
// The recurrence (ssd_recurrent) is the oracle. ws: Q * (Q + P + N + 2) floats.
static void ssd_chunked(const qtk_mamba_config *c, const qtk_mamba_layer *ly, const ssd_io *io, int b, int L, int hd,
                        float *s, float *ws) {
    const int P = c->head_dim, N = c->d_state, Q = c->chunk_size, H = c->n_heads, E = c->d_inner,
              g = hd / (H / c->n_groups);
    const float A = ly->A[hd], Dh = ly->Dskip[hd];
    float *W = ws, *T = W + (size_t)Q * Q, *Bw = T + (size_t)Q * P, *cum = Bw + (size_t)Q * N, *w = cum + Q;
    for (int t0 = 0; t0 < L; t0 += Q) {
        const int len = L - t0 < Q ? L - t0 : Q;
        const size_t r0 = (size_t)b * L + t0;
        const float *X = io->x + r0 * io->ld + (size_t)hd * P, *Bm = io->Bm + r0 * io->ld + (size_t)g * N,
                    *Cm = io->Cm + r0 * io->ld + (size_t)g * N, *dt = io->dt + r0 * H + hd;
        float *Y = io->y + r0 * E + (size_t)hd * P;
        float run = 0.0f;
        for (int i = 0; i < len; i++) cum[i] = run += dt[(size_t)i * H] * A; // A_cumsum = cumsum(A * dt)
        // W = C B^T, then the decay and dt_j below the diagonal
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, N, 1.0f, Cm, io->ld, Bm, io->ld, 0.0f, W, len);
        for (int i = 0; i < len; i++)
            for (int j = 0; j < len; j++)
                W[(size_t)i * len + j] = j <= i ? W[(size_t)i * len + j] * expf(cum[i] - cum[j]) * dt[(size_t)j * H] : 0.0f;
        // Y_diag = W x;  T = C s_in^T (the state entering the chunk)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, P, len, 1.0f, W, len, X, io->ld, 0.0f, Y, E);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, P, N, 1.0f, Cm, io->ld, s, N, 0.0f, T, P);
        for (int i = 0; i < len; i++) {
            const float ei = expf(cum[i]);
            for (int p = 0; p < P; p++)
                Y[(size_t)i * E + p] += ei * T[(size_t)i * P + p] + Dh * X[(size_t)i * io->ld + p];
        }
        // s_out = exp(c_last) s_in + x^T (w B)
        const float eQ = expf(cum[len - 1]);
        for (int j = 0; j < len; j++) {
            w[j] = expf(cum[len - 1] - cum[j]) * dt[(size_t)j * H];
            for (int n = 0; n < N; n++) Bw[(size_t)j * N + n] = w[j] * Bm[(size_t)j * io->ld + n];
        }
        for (size_t k = 0; k < (size_t)P * N; k++) s[k] *= eQ;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, N, len, 1.0f, X, io->ld, Bw, N, 1.0f, s, N);
    }
}

// --- model --------------------------------------------------------------------------------

// floats of the forward's workspace for `rows` tokens: the residual stream, the normed input, and the
// mixer's buffers
static size_t ws_floats(const qtk_mamba_config *c, size_t rows) {
    size_t IN = (size_t)qtk_mamba_in_proj_out(c), CD = (size_t)qtk_mamba_conv_dim(c), E = (size_t)c->d_inner;
    size_t extra = c->arch == QTK_MAMBA1 ? (size_t)(c->dt_rank + 2 * c->d_state) + E : (size_t)c->n_heads;
    return rows * (2 * (size_t)c->d_model + IN + CD + E + extra);
}

// makes the workspace hold at least `need` floats (grows it; decoding at the size it was made for
// allocates nothing)
static qtk_status ensure(float **buf, size_t *cap, size_t need) {
    if (need <= *cap) return QTK_OK;
    float *p = qtk_aligned_alloc(need * sizeof(float));
    if (!p) return QTK_ERR_NOMEM;
    qtk_aligned_free(*buf);
    *buf = p;
    *cap = need;
    return QTK_OK;
}

qtk_status qtk_mamba_state_init(qtk_mamba_state *s, const qtk_mamba *m, int B) {
    memset(s, 0, sizeof *s);
    const qtk_mamba_config *c = &m->cfg;
    if (B < 1) return qtk_fail(QTK_ERR_ARG, "Mamba state for %d sequences", B);
    s->B = B;
    s->n_layers = c->n_layers;
    s->conv_per_layer = (size_t)B * qtk_mamba_conv_dim(c) * c->d_conv;
    s->ssm_per_layer = (size_t)B * c->d_inner * c->d_state; // E x N (Mamba1) = H x P x N (Mamba2)
    s->conv = qtk_aligned_alloc(s->conv_per_layer * c->n_layers * sizeof(float));
    s->ssm = qtk_aligned_alloc(s->ssm_per_layer * c->n_layers * sizeof(float));
    if (!s->conv || !s->ssm || ensure(&s->ws, &s->ws_cap, ws_floats(c, (size_t)B)) != QTK_OK) {
        qtk_mamba_state_free(s);
        return qtk_fail(QTK_ERR_NOMEM, "Mamba state for %d sequences: out of memory", B);
    }
    return QTK_OK;
}

void qtk_mamba_state_reset(qtk_mamba_state *s) {
    memset(s->conv, 0, s->conv_per_layer * s->n_layers * sizeof(float));
    memset(s->ssm, 0, s->ssm_per_layer * s->n_layers * sizeof(float));
    s->pos = 0;
}

void qtk_mamba_state_free(qtk_mamba_state *s) {
    qtk_aligned_free(s->conv);
    qtk_aligned_free(s->ssm);
    qtk_aligned_free(s->ws);
    qtk_aligned_free(s->scr);
    memset(s, 0, sizeof *s);
}

// A projection of layer l through the hooks: y (rows, N) = x W^T + b, where hk's linear may take it over
// (without the bias, added here) and its act sees the output before the bias (point out_point, -1: none)
static qtk_status project(const qtk_mamba *m, const qtk_mamba_hooks *hk, int l, int which, const float *x, const float *W,
                       const float *b, float *y, size_t rows, int N, int K, int ldx, int out_point) {
    int done = hk && hk->linear ? hk->linear(hk->ctx, l, which, x, ldx, rows, y) : 0;
    if (done < 0) return QTK_ERR_ARG; // the hook has set the error
    if (!done) linear(m, x, W, NULL, y, rows, N, K, ldx);
    if (out_point >= 0 && hk && hk->act) QTK_TRY(hk->act(hk->ctx, l, out_point, y, rows, N));
    if (b)
#pragma omp parallel for schedule(static) if (rows * (size_t)N >= 65536)
        for (size_t r = 0; r < rows; r++)
            for (int j = 0; j < N; j++) y[r * N + j] += b[j];
    return QTK_OK;
}

// the hook's view of a tensor (calibration)
#define SEE(point, x, cols)                                                                                           \
    if (hk && hk->act) QTK_TRY(hk->act(hk->ctx, l, point, x, rows, cols))

// The mixer of layer l on u (rows = B*L, D) into out (rows, D); ws: scratch
static qtk_status mixer(const qtk_mamba *m, int l, qtk_mamba_state *s, int L, const float *u, float *out, float *ws,
                        qtk_scan_mode mode, const qtk_mamba_hooks *hk) {
    const qtk_mamba_config *c = &m->cfg;
    const qtk_mamba_layer *ly = &m->layers[l];
    const int B = s->B, D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, IN = qtk_mamba_in_proj_out(c),
              CD = qtk_mamba_conv_dim(c);
    const size_t rows = (size_t)B * L;
    float *conv_state = s->conv + s->conv_per_layer * l, *ssm_state = s->ssm + s->ssm_per_layer * l;
    float *proj = ws, *xc = proj + rows * IN, *y = xc + rows * CD, *extra = y + rows * E;
    // projected_states = self.in_proj(hidden_states)
    SEE(QTK_MAMBA_Q_IN_PROJ_IN, u, D);
    QTK_TRY(project(m, hk, l, QTK_MAMBA_LIN_IN, u, ly->in_proj_w, ly->in_proj_b, proj, rows, IN, D, D,
                 QTK_MAMBA_Q_IN_PROJ_OUT));
    if (c->arch == QTK_MAMBA1) {
        const int R = c->dt_rank;
        float *xdbl = extra, *dt = xdbl + rows * (R + 2 * N);
        // x, z = projected_states.chunk(2): x first; x = silu(causal_conv1d(x))
        QTK_TRY(qtk_op_conv1d_silu(proj, IN, B, L, E, K, ly->conv_w, ly->conv_b, conv_state, xc));
        // x_dbl = self.x_proj(x): dt | B | C
        SEE(QTK_MAMBA_Q_X_PROJ_IN, xc, E);
        QTK_TRY(project(m, hk, l, QTK_MAMBA_LIN_X, xc, ly->x_proj_w, NULL, xdbl, rows, R + 2 * N, E, E,
                     QTK_MAMBA_Q_X_PROJ_OUT));
        // dt = qtk_softplus(self.dt_proj.weight @ dt + dt_proj.bias)
        QTK_TRY(project(m, hk, l, QTK_MAMBA_LIN_DT, xdbl, ly->dt_proj_w, ly->dt_proj_b, dt, rows, E, R, R + 2 * N,
                     QTK_MAMBA_Q_DT_PROJ_OUT));
#pragma omp parallel for schedule(static) if (rows * (size_t)E >= 65536)
        for (size_t i = 0; i < rows * (size_t)E; i++) dt[i] = qtk_softplus(dt[i]);
        scan1(c, ly, B, L, xc, dt, xdbl + R, xdbl + R + N, R + 2 * N, proj + E, IN, ssm_state, y);
    } else {
        const int H = c->n_heads, GN = c->n_groups * N;
        float *dt = extra;
        // z | xBC | dt; xBC = qtk_silu(conv1d(xBC))
        QTK_TRY(qtk_op_conv1d_silu(proj + E, IN, B, L, CD, K, ly->conv_w, ly->conv_b, conv_state, xc));
        SEE(QTK_MAMBA_Q_X_PROJ_IN, xc, CD);
        // dt = qtk_softplus(dt + self.dt_bias), clamped to time_step_limit
        for (size_t r = 0; r < rows; r++)
            for (int h = 0; h < H; h++) {
                dt[r * H + h] = qtk_clampf(qtk_softplus(proj[r * IN + E + CD + h] + ly->dt_bias[h]), c->dt_min, c->dt_max);
            }
        ssd_io io = {xc, xc + E, xc + E + GN, CD, dt, y};
        const int chunked = mode != QTK_SCAN_RECURRENT && L > 1;
        const int Q = c->chunk_size;
        // one scratch per thread, kept in the state (the chunked form falls back to the recurrence, the
        // oracle, only where even that cannot be had)
        const size_t per = (size_t)Q * (Q + c->head_dim + N + 2);
        const int have_scr = chunked && ensure(&s->scr, &s->scr_cap, per * (size_t)omp_get_max_threads()) == QTK_OK;
        if (chunked) { // small GEMMs per sequence, head and chunk: single-threaded OpenBLAS, OpenMP across heads
            qtk_blas_single_thread();
#pragma omp parallel
            {
                float *scr = have_scr ? s->scr + per * (size_t)omp_get_thread_num() : NULL;
#pragma omp for collapse(2) schedule(dynamic, 1)
                for (int b = 0; b < B; b++)
                    for (int h = 0; h < H; h++) {
                        float *st = ssm_state + ((size_t)b * H + h) * c->head_dim * N;
                        if (scr) ssd_chunked(c, ly, &io, b, L, h, st, scr);
                        else ssd_recurrent(c, ly, &io, b, L, h, st);
                    }
            }
        } else {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * E * N >= 262144)
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++)
                    ssd_recurrent(c, ly, &io, b, L, h, ssm_state + ((size_t)b * H + h) * c->head_dim * N);
        }
        if (hk && hk->act) QTK_TRY(hk->act(hk->ctx, l, QTK_MAMBA_Q_SSM_STATE, ssm_state, (size_t)B, H * c->head_dim * N));
        qtk_op_gated_rmsnorm(y, proj, IN, ly->gnorm_w, rows, E, c->n_groups, c->eps);
    }
    // self.out_proj(y)
    SEE(QTK_MAMBA_Q_OUT_PROJ_IN, y, E);
    return project(m, hk, l, QTK_MAMBA_LIN_OUT, y, ly->out_proj_w, ly->out_proj_b, out, rows, D, E, E, -1);
}
#undef SEE

qtk_status qtk_mamba_prefill(const qtk_mamba *m, qtk_mamba_state *s, const int32_t *tokens, int L, float *logits,
                             qtk_scan_mode mode) {
    return qtk_mamba_prefill_hooked(m, s, tokens, L, logits, mode, NULL);
}

qtk_status qtk_mamba_prefill_hooked(const qtk_mamba *m, qtk_mamba_state *s, const int32_t *tokens, int L, float *logits,
                                    qtk_scan_mode mode, const qtk_mamba_hooks *hk) {
    const qtk_mamba_config *c = &m->cfg;
    if (L < 1) return qtk_fail(QTK_ERR_ARG, "Mamba prefill of %d tokens", L);
    if (c->d_conv > 64) return qtk_fail(QTK_ERR_UNSUPPORTED, "conv_kernel %d (at most 64)", c->d_conv);
    if (mode == QTK_SCAN_CHUNKED && c->arch != QTK_MAMBA2) return qtk_fail(QTK_ERR_ARG, "chunked SSD is Mamba2's");
    const int B = s->B, D = c->d_model, V = c->vocab;
    const size_t rows = (size_t)B * L;
    for (size_t i = 0; i < rows; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return qtk_fail(QTK_ERR_ARG, "token %d at sequence %zu, position %zu is outside the vocabulary (0..%d)",
                            tokens[i], i / L, i % L, V - 1);
    if (ensure(&s->ws, &s->ws_cap, ws_floats(c, rows)) != QTK_OK)
        return qtk_fail(QTK_ERR_NOMEM, "Mamba prefill of %d x %d tokens: out of memory", B, L);
    float *h = s->ws, *u = h + rows * D, *ws = u + rows * D;
    // hidden_states = self.embeddings(input_ids)
    for (size_t r = 0; r < rows; r++) memcpy(h + r * D, m->emb + (size_t)tokens[r] * D, D * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        // hidden_states = self.norm(hidden_states); residual + self.mixer(hidden_states)
        qtk_op_rmsnorm(h, NULL, m->layers[l].norm_w, u, rows, D, c->eps);
        QTK_TRY(mixer(m, l, s, L, u, u, ws, mode, hk));
#pragma omp parallel for schedule(static) if (rows * (size_t)D >= 65536)
        for (size_t i = 0; i < rows * (size_t)D; i++) h[i] += u[i];
    }
    if (logits) {
        // logits = self.lm_head(self.norm_f(hidden_states))
        qtk_op_rmsnorm(h, NULL, m->norm_f, u, rows, D, c->eps);
        linear(m, u, m->lm_head, NULL, logits, rows, V, D, D);
    }
    s->pos += L;
    return QTK_OK;
}

qtk_status qtk_mamba_decode(const qtk_mamba *m, qtk_mamba_state *s, const int32_t *tokens, float *logits) {
    return qtk_mamba_prefill(m, s, tokens, 1, logits, QTK_SCAN_RECURRENT);
}
