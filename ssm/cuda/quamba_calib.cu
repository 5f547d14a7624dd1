// Quamba's calibration on the GPU (quamba_internal.h: quamba_observe_cuda): the calibration sequences through
// the GPU's float forward (qtk_mamba_cuda in fp16, the reference's fp16 model), batch sequences a prefill,
// its hook feeding the registry's observers on the device (core/qpoint.h: qtk_qreg_observe_cuda) and the
// outlier statistics. What the CPU's calibration computes per sequence (the percentile observer's EMA of the
// per-sequence quantiles) is computed per sequence here too, in the same order; running maxima need no order.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/cuda/common.cuh"
#include "../../core/cuda/qtk_cuda.h"
#include "../../core/hadamard.h"
#include "../../core/observer.h"
#include "../mamba_cuda.h"
#include "../quamba_internal.h"

typedef struct {
    quamba_obs *c;
    const qtk_quamba_calib *cal;
    qtk_qreg_dev dev;
    cudaStream_t st;
    int L, B, seq0, first, last; // the batch: sequences seq0 .. seq0 + B - 1; the first / the last batch
    int had_ok;                  // d_inner has a Hadamard: the rotated outlier statistic
    float *d_mm;                 // (layers, QL, 2) each point's running min, max
    float *d_ych, *d_ych_had;    // (layers, 2, E) out_proj's input's per-channel min, max: plain, rotated
    float *d_rot;                // out_proj's input rotated (rows, E)
    float *d_scr;                // minmax scratch
} gcal;

// the running |x| of every point against fp16's range, after the batch (the CPU's check names the sequence;
// this one the batch)
static qtk_status check_fp16(gcal *x) {
    const qtk_mamba_config *c = &x->c->m->cfg;
    const size_t n = (size_t)c->n_layers * QTK_MAMBA_QL * 2;
    float *h = (float *)malloc(n * sizeof *h);
    if (!h) return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
    cudaError_t e = cudaMemcpyAsync(h, x->d_mm, n * sizeof *h, cudaMemcpyDeviceToHost, x->st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(x->st);
    qtk_status st = e == cudaSuccess ? QTK_OK : qtk_fail(QTK_ERR_CUDA, "calibration: %s", cudaGetErrorString(e));
    for (size_t i = 0; st == QTK_OK && i < n / 2; i++) {
        const float a = fmaxf(-h[2 * i], h[2 * i + 1]);
        if (!(a <= 65504.0f))
            st = qtk_fail(QTK_ERR_ARG, "calibration sequences %d..%d: layer %d %s reaches |x| = %g: outside fp16's range "
                          "(the quantized model keeps fp16 values)", x->seq0, x->seq0 + x->B - 1, (int)(i / QTK_MAMBA_QL),
                          qtk_quamba_point_name(QTK_MAMBA1, (int)(i % QTK_MAMBA_QL)), a);
    }
    free(h);
    return st;
}

static qtk_status hook(void *ctx, int layer, int point, const float *d_x, size_t rows, int cols) {
    gcal *x = (gcal *)ctx;
    quamba_obs *c = x->c;
    const int id = layer * QTK_MAMBA_QL + point, E = c->m->cfg.d_inner;
    float *mm = x->d_mm + 2 * (size_t)id;
    QTK_TRY(qtk_channel_minmax_fold_cuda(d_x, 1, 1, rows * (size_t)cols, mm, mm + 1, x->first, x->d_scr, x->st));
    if (x->last && c->fp16_check) QTK_TRY(check_fp16(x)); // before the observers take their last batch
    if (point == QTK_MAMBA_Q_OUT_PROJ_IN) {
        // out_proj = HadLinear(W H^T / sqrt(E)) after had(y): its observer sees had(y); the outlier statistic both
        float *ch = x->d_ych + 2 * (size_t)layer * E;
        QTK_TRY(qtk_channel_minmax_fold_cuda(d_x, rows, (size_t)E, 1, ch, ch + E, x->first, x->d_scr, x->st));
        if (x->had_ok) {
            QTK_CUDA_TRY(cudaMemcpyAsync(x->d_rot, d_x, rows * E * sizeof(float), cudaMemcpyDeviceToDevice, x->st));
            QTK_CUDA_TRY(cudaStreamSynchronize(x->st)); // the Hadamard runs on the default stream
            QTK_TRY(qtk_hadamard_rows_cuda(x->d_rot, rows, (size_t)E));
            float *cr = x->d_ych_had + 2 * (size_t)layer * E;
            QTK_TRY(qtk_channel_minmax_fold_cuda(x->d_rot, rows, (size_t)E, 1, cr, cr + E, x->first, x->d_scr, x->st));
            if (c->hadamard) d_x = x->d_rot;
        }
    }
    qtk_qreg *r = &c->reg;
    if (r->p[id].ob.kind == QTK_OBS_PERCENTILE) { // an EMA over the sequences' own quantiles, in order
        const size_t L = (size_t)x->L;
        for (int b = 0; b < x->B; b++) {
            const int s = x->seq0 + b;
            QTK_TRY(qtk_qreg_observe_cuda(&x->dev, r, id, d_x + (size_t)b * L * cols, L, (size_t)cols, s == 0,
                                          s == x->cal->n - 1));
        }
        return QTK_OK;
    }
    return qtk_qreg_observe_cuda(&x->dev, r, id, d_x, rows, (size_t)cols, x->first, x->last);
}

// per channel max(-min, max) of (layers, 2, E) min / max pairs into (layers, E)
static void channel_absmax(const float *mm, int layers, int E, float *out) {
    for (int l = 0; l < layers; l++)
        for (int e = 0; e < E; e++)
            out[(size_t)l * E + e] = fmaxf(-mm[(size_t)l * 2 * E + e], mm[(size_t)l * 2 * E + E + e]);
}

static qtk_status download(gcal *x) {
    const qtk_mamba_config *c = &x->c->m->cfg;
    const size_t Ls = (size_t)c->n_layers, E = (size_t)c->d_inner, npt = Ls * QTK_MAMBA_QL * 2;
    float *mm = (float *)malloc(npt * sizeof(float)), *ch = (float *)malloc(2 * Ls * 2 * E * sizeof(float));
    if (!mm || !ch) {
        free(mm), free(ch);
        return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
    }
    cudaError_t e = cudaMemcpy(mm, x->d_mm, npt * sizeof(float), cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(ch, x->d_ych, 2 * Ls * 2 * E * sizeof(float), cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) {
        for (size_t l = 0; l < Ls; l++) {
            const float *p = mm + (l * QTK_MAMBA_QL + QTK_MAMBA_Q_X_PROJ_IN) * 2;
            x->c->x_max[l] = fmaxf(-p[0], p[1]);
        }
        channel_absmax(ch, (int)Ls, (int)E, x->c->y_ch);
        if (x->had_ok) channel_absmax(ch + Ls * 2 * E, (int)Ls, (int)E, x->c->y_ch_had);
    }
    free(mm), free(ch);
    QTK_CUDA_TRY(e);
    return QTK_OK;
}

extern "C" qtk_status quamba_observe_cuda(quamba_obs *c, const qtk_quamba_calib *cal) {
    const qtk_mamba *m = c->m;
    const qtk_mamba_config *mc = &m->cfg;
    const int B = cal->batch > 0 ? (cal->batch < cal->n ? cal->batch : cal->n) : (cal->n < 8 ? cal->n : 8);
    const size_t Ls = (size_t)mc->n_layers, E = (size_t)mc->d_inner, rows = (size_t)B * cal->len;
    gcal x;
    memset(&x, 0, sizeof x);
    x.c = c, x.cal = cal, x.L = cal->len;
    x.had_ok = qtk_hadamard_supported(E, NULL);
    qtk_mamba_cuda *g = NULL;
    QTK_TRY(qtk_mamba_cuda_create(&g, m, B, cal->len, 1));
    x.st = (cudaStream_t)qtk_mamba_cuda_stream(g);
    const size_t scr = 2 * (qtk_minmax_scratch(E) > qtk_minmax_scratch(1) ? qtk_minmax_scratch(E) : qtk_minmax_scratch(1));
    qtk_status st = QTK_OK;
    if (cudaMalloc((void **)&x.d_mm, Ls * QTK_MAMBA_QL * 2 * sizeof(float)) != cudaSuccess ||
        cudaMalloc((void **)&x.d_ych, 2 * Ls * 2 * E * sizeof(float)) != cudaSuccess ||
        cudaMalloc((void **)&x.d_rot, rows * E * sizeof(float)) != cudaSuccess ||
        cudaMalloc((void **)&x.d_scr, scr * sizeof(float)) != cudaSuccess)
        st = qtk_fail(QTK_ERR_NOMEM, "GPU calibration: out of GPU memory for %d x %d tokens", B, cal->len);
    x.d_ych_had = x.d_ych ? x.d_ych + Ls * 2 * E : NULL;
    if (st == QTK_OK) st = qtk_qreg_dev_init(&x.dev, &c->reg, x.st);
    if (st == QTK_OK) st = qtk_mamba_cuda_set_hook(g, hook, &x);
    for (int s0 = 0; s0 < cal->n && st == QTK_OK; s0 += B) {
        x.seq0 = s0, x.B = cal->n - s0 < B ? cal->n - s0 : B;
        x.first = s0 == 0, x.last = s0 + x.B == cal->n;
        c->reg.last_batch = x.last;
        st = qtk_mamba_cuda_reset(g, x.B);
        if (st == QTK_OK) st = qtk_mamba_cuda_prefill(g, cal->tokens + (size_t)s0 * cal->len, cal->len, NULL);
        if (st == QTK_OK && c->fp16_check && !x.last) st = check_fp16(&x);
        if (st == QTK_OK && cal->progress) cal->progress(cal->progress_ctx, s0 + x.B, cal->n);
    }
    if (st == QTK_OK) st = download(&x);
    qtk_qreg_dev_free(&x.dev);
    qtk_mamba_cuda_destroy(g);
    cudaFree(x.d_mm), cudaFree(x.d_ych), cudaFree(x.d_rot), cudaFree(x.d_scr);
    return st;
}
