// The device half of the quantization-point registry (core/qpoint.h): per-point records a GPU forward
// reads, the weights' device copies, and calibration on the device. Model-agnostic, as the host half.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../biascorr.h"
#include "../observer.h"
#include "../qpoint.h"
#include "common.cuh"
#include "qtk_cuda.h"

#define STREAM(d) ((cudaStream_t)(d)->stream)

extern "C" qtk_status qtk_qreg_dev_init(qtk_qreg_dev *d, const qtk_qreg *r, void *stream) {
    memset(d, 0, sizeof *d);
    d->n = r->n;
    d->stream = stream;
    d->q = (qtk_outq *)calloc((size_t)r->n, sizeof *d->q);
    d->w_on = (int *)calloc((size_t)r->n, sizeof *d->w_on);
    d->wq_off = (size_t *)malloc((size_t)r->n * sizeof *d->wq_off);
    d->d_mm = (float **)calloc((size_t)r->n, sizeof *d->d_mm);
    if (!d->q || !d->w_on || !d->wq_off || !d->d_mm) {
        qtk_qreg_dev_free(d);
        return qtk_fail(QTK_ERR_NOMEM, "registry on the GPU: out of memory");
    }
    size_t total = 0; // one region per weight point, 64-float aligned
    for (int i = 0; i < r->n; i++) {
        d->wq_off[i] = SIZE_MAX;
        if (r->p[i].name[0] && r->p[i].kind == QTK_QPOINT_WEIGHT) {
            d->wq_off[i] = total;
            total += (r->p[i].O * r->p[i].K + 63) / 64 * 64;
        }
    }
    cudaError_t e = total ? cudaMalloc((void **)&d->d_wq, total * sizeof(float)) : cudaSuccess;
    if (e != cudaSuccess) {
        qtk_qreg_dev_free(d);
        return qtk_fail(QTK_ERR_NOMEM, "registry on the GPU: %zu quantized weights: %s", total, cudaGetErrorString(e));
    }
    return QTK_OK;
}

extern "C" void qtk_qreg_dev_free(qtk_qreg_dev *d) {
    for (int i = 0; d->d_mm && i < d->n; i++) cudaFree(d->d_mm[i]);
    free(d->d_mm);
    cudaFree(d->mm_scratch);
    cudaFree(d->d_wq);
    cudaFree(d->d_qp);
    cudaFree(d->d_sz);
    free(d->q);
    free(d->w_on);
    free(d->wq_off);
    memset(d, 0, sizeof *d);
}

extern "C" float *qtk_qreg_dev_weight(const qtk_qreg_dev *d, int id) {
    return id >= 0 && id < d->n && d->w_on[id] ? d->d_wq + d->wq_off[id] : NULL;
}

extern "C" qtk_status qtk_qreg_dev_update_weight(qtk_qreg_dev *d, const qtk_qreg *r, int id) {
    const qtk_qpoint *p = &r->p[id];
    if (id < 0 || id >= d->n || d->wq_off[id] == SIZE_MAX) return qtk_fail(QTK_ERR_ARG, "point %d is not a weight quantizer", id);
    d->w_on[id] = p->name[0] && p->enabled && p->calibrated;
    if (d->w_on[id])
        QTK_CUDA_TRY(cudaMemcpyAsync(d->d_wq + d->wq_off[id], p->wq, p->O * p->K * sizeof(float), cudaMemcpyHostToDevice,
                                     STREAM(d)));
    return QTK_OK;
}

// the (s, z) pairs of an activation point as its kernels read them: per channel (an index map spelled out)
static size_t act_pairs(const qtk_qparams *qp) { return qp->gran == QTK_PER_INDEX ? qp->index_len : qp->n; }

// per-channel (s, z) slots activation point i needs on the device (0: per tensor, off or a weight)
static size_t slot_pairs(const qtk_qreg *r, int i) {
    const qtk_qpoint *p = &r->p[i];
    if (!p->name[0] || p->kind == QTK_QPOINT_WEIGHT) return 0;
    const qtk_qpoint *src = p->shares >= 0 ? &r->p[p->shares] : p;
    return src->calibrated && src->qp.gran != QTK_PER_TENSOR && src->qp.n > 1 ? act_pairs(&src->qp) : 0;
}

// point id's record; per-channel arrays at `at` (NULL: keep the slots it has)
static qtk_status set_act(qtk_qreg_dev *d, const qtk_qreg *r, int id, float *at) {
    const qtk_qpoint *p = &r->p[id];
    qtk_outq *o = &d->q[id];
    const float *keep_s = o->s_c, *keep_z = o->z_c;
    memset(o, 0, sizeof *o);
    if (!p->name[0] || p->kind == QTK_QPOINT_WEIGHT || !p->enabled) return QTK_OK;
    const qtk_qpoint *src = p->shares >= 0 ? &r->p[p->shares] : p;
    if (!src->calibrated) return QTK_OK;
    const qtk_qparams *qp = &src->qp;
    int lo, hi;
    QTK_TRY(qtk_qrange(qp->bits, qp->is_signed, &lo, &hi));
    o->on = 1;
    o->lo = (float)lo;
    o->hi = (float)hi;
    o->torch = qp->formula == QTK_FQ_TORCH;
    if (qp->gran == QTK_PER_TENSOR || qp->n == 1) {
        o->s = qp->scale[0];
        o->z = qp->zero[0];
        return QTK_OK;
    }
    if (qp->gran == QTK_PER_GROUP)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU forward: activation point %s has per-group parameters", p->name);
    const size_t n = act_pairs(qp);
    float *ds = at ? at : (float *)keep_s, *dz = at ? at + n : (float *)keep_z;
    if (!ds) return qtk_fail(QTK_ERR_ARG, "GPU forward: point %s has no per-channel slots (upload first)", p->name);
    float *h = NULL;
    const float *s = qp->scale, *z = qp->zero;
    if (qp->gran == QTK_PER_INDEX) {
        if (!(h = (float *)malloc(2 * n * sizeof(float)))) return qtk_fail(QTK_ERR_NOMEM, "GPU forward: out of memory");
        qtk_qparams_expand_index(qp, h, h + n);
        s = h, z = h + n;
    }
    cudaError_t e = cudaMemcpyAsync(ds, s, n * sizeof(float), cudaMemcpyHostToDevice, STREAM(d));
    if (e == cudaSuccess) e = cudaMemcpyAsync(dz, z, n * sizeof(float), cudaMemcpyHostToDevice, STREAM(d));
    if (e == cudaSuccess && h) e = cudaStreamSynchronize(STREAM(d)); // before h goes
    free(h);
    if (e != cudaSuccess) return qtk_fail(QTK_ERR_CUDA, "GPU forward: point %s: %s", p->name, cudaGetErrorString(e));
    o->per_channel = 1;
    o->s_c = ds;
    o->z_c = dz;
    return QTK_OK;
}

extern "C" qtk_status qtk_qreg_dev_update_act(qtk_qreg_dev *d, const qtk_qreg *r, int id) {
    if (id < 0 || id >= d->n || r->p[id].kind == QTK_QPOINT_WEIGHT)
        return qtk_fail(QTK_ERR_ARG, "point %d is not an activation quantizer", id);
    if (!d->q[id].on) return QTK_OK;
    QTK_TRY(set_act(d, r, id, NULL));
    QTK_CUDA_TRY(cudaStreamSynchronize(STREAM(d)));
    return QTK_OK;
}

extern "C" qtk_status qtk_qreg_dev_upload(qtk_qreg_dev *d, qtk_qreg *r) {
    if (r->n != d->n) return qtk_fail(QTK_ERR_ARG, "GPU forward: %d quantization points, expected %d", r->n, d->n);
    QTK_TRY(qtk_qreg_sync_weights(r)); // the host's quantized weights are what gets uploaded
    size_t chans = 0;
    for (int i = 0; i < r->n; i++) chans += 2 * slot_pairs(r, i);
    if (chans > d->qp_cap) {
        cudaFree(d->d_qp);
        d->d_qp = NULL;
        d->qp_cap = 0;
        QTK_CUDA_TRY(cudaMalloc((void **)&d->d_qp, chans * sizeof(float)));
        d->qp_cap = chans;
    }
    d->qp_used = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->p[i].name[0] && r->p[i].kind == QTK_QPOINT_WEIGHT) {
            QTK_TRY(qtk_qreg_dev_update_weight(d, r, i));
            continue;
        }
        const size_t n = slot_pairs(r, i); // per-channel slots of its own, also where it shares another's parameters
        float *at = n ? d->d_qp + d->qp_used : NULL;
        d->qp_used += 2 * n;
        QTK_TRY(set_act(d, r, i, at));
    }
    QTK_CUDA_TRY(cudaStreamSynchronize(STREAM(d)));
    return QTK_OK;
}

extern "C" qtk_status qtk_qreg_dev_weight_params(qtk_qreg_dev *d, const qtk_qpoint *p) {
    size_t n = p->qp.n;
    QTK_CUDA_TRY(cudaDeviceSynchronize()); // kernels of the twins (default stream) may still read the old ones
    if (2 * n > d->sz_cap) {
        cudaFree(d->d_sz);
        d->d_sz = NULL;
        d->sz_cap = 0;
        QTK_CUDA_TRY(cudaMalloc((void **)&d->d_sz, 2 * n * sizeof(float)));
        d->sz_cap = 2 * n;
    }
    QTK_CUDA_TRY(cudaMemcpyAsync(d->d_sz, p->qp.scale, n * sizeof(float), cudaMemcpyHostToDevice, STREAM(d)));
    QTK_CUDA_TRY(cudaMemcpyAsync(d->d_sz + n, p->qp.zero, n * sizeof(float), cudaMemcpyHostToDevice, STREAM(d)));
    QTK_CUDA_TRY(cudaStreamSynchronize(STREAM(d)));
    return QTK_OK;
}

extern "C" qtk_status qtk_qreg_dev_requantize(qtk_qreg_dev *d, qtk_qreg *r, int id, const float *d_w) {
    if (id < 0 || id >= d->n || d->wq_off[id] == SIZE_MAX) return qtk_fail(QTK_ERR_ARG, "point %d is not a weight quantizer", id);
    qtk_qpoint *p = &r->p[id];
    d->w_on[id] = p->name[0] && p->enabled && p->calibrated;
    if (!d->w_on[id]) return QTK_OK;
    int lo, hi;
    QTK_TRY(qtk_qrange(p->qp.bits, p->qp.is_signed, &lo, &hi));
    if (p->qp.gran != QTK_PER_CHANNEL || p->qp.axis != 0 || p->qp.n != p->O)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "GPU re-quantization: %s is not per output channel", p->name);
    QTK_TRY(qtk_qreg_dev_weight_params(d, p));
    float *wq = d->d_wq + d->wq_off[id];
    // qtk_qreg_requantize on the device: fake quantization per output channel, then bias correction
    QTK_TRY(qtk_fake_quant_per_channel_cuda(d_w, wq, 1, p->O, p->K, d->d_sz, d->d_sz + p->O, lo, hi, p->qp.formula));
    if (r->bias_corr) QTK_TRY(qtk_bias_correct_cuda(d_w, wq, p->O, p->K));
    p->wq_stale = 1; // the host copy catches up when a CPU forward needs it (qtk_qreg_sync_weights)
    return QTK_OK;
}

extern "C" qtk_status qtk_qreg_observe_cuda(qtk_qreg_dev *d, qtk_qreg *r, int id, const float *d_x, size_t outer, size_t C,
                                            int first, int last) {
    qtk_qpoint *q = &r->p[id];
    if (!q->name[0] || q->kind == QTK_QPOINT_WEIGHT || q->shares >= 0) return QTK_OK;
    size_t nc = q->ob.channel_wise ? C : 1;
    float *mn = NULL;
    qtk_status st = QTK_OK;
    if (q->ob.kind != QTK_OBS_EMA && q->ob.kind != QTK_OBS_PERCENTILE) { // running min / max: kept on the device
        size_t need = 2 * qtk_minmax_scratch(nc);
        if (need > d->mm_cap) {
            QTK_CUDA_TRY(cudaStreamSynchronize(STREAM(d)));
            cudaFree(d->mm_scratch);
            d->mm_scratch = NULL;
            d->mm_cap = 0;
            QTK_CUDA_TRY(cudaMalloc((void **)&d->mm_scratch, need * sizeof(float)));
            d->mm_cap = need;
        }
        if (!d->d_mm[id]) QTK_CUDA_TRY(cudaMalloc((void **)&d->d_mm[id], 2 * C * sizeof(float)));
        float *run = d->d_mm[id];
        QTK_TRY(nc == 1 ? qtk_channel_minmax_fold_cuda(d_x, 1, 1, outer * C, run, run + 1, first, d->mm_scratch, d->stream)
                        : qtk_channel_minmax_fold_cuda(d_x, outer, C, 1, run, run + nc, first, d->mm_scratch, d->stream));
        if (!last) return QTK_OK;
        if (!(mn = (float *)malloc(2 * nc * sizeof(float)))) return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
        cudaError_t e = cudaMemcpyAsync(mn, run, 2 * nc * sizeof(float), cudaMemcpyDeviceToHost, STREAM(d));
        if (e == cudaSuccess) e = cudaStreamSynchronize(STREAM(d)); // (the twins below run on the default stream)
        st = e == cudaSuccess ? QTK_OK : qtk_fail(QTK_ERR_CUDA, "calibration: %s", cudaGetErrorString(e));
    } else { // EMA statistics: every batch's own, on the host
        QTK_CUDA_TRY(cudaStreamSynchronize(STREAM(d))); // the twins run on the default stream
        if (!(mn = (float *)malloc(2 * nc * sizeof(float)))) return qtk_fail(QTK_ERR_NOMEM, "calibration: out of memory");
        if (q->ob.kind == QTK_OBS_PERCENTILE) { // the batch's quantiles (per tensor), as qtk_observer_update
            const float lv[2] = {q->ob.q_hi, q->ob.q_lo};
            float v[2];
            st = qtk_quantiles_cuda(d_x, outer * C, q->ob.pct_abs, lv, q->ob.pct_abs ? 1 : 2, v);
            mn[1] = v[0];
            mn[0] = q->ob.pct_abs ? -v[0] : v[1];
        } else
            st = nc == 1 ? qtk_channel_minmax_cuda(d_x, 1, 1, outer * C, mn, mn + 1)
                         : qtk_channel_minmax_cuda(d_x, outer, C, 1, mn, mn + nc);
    }
    if (st == QTK_OK) st = qtk_observer_update_minmax(&q->ob, mn, mn + nc, nc);
    free(mn);
    if (st == QTK_OK && last) {
        int64_t shape[2] = {(int64_t)outer, (int64_t)C};
        qtk_qparams_free(&q->qp);
        st = q->group_index ? qtk_observer_params_index(&q->ob, q->group_index, q->index_len, q->channels, &q->qp)
                            : qtk_observer_params_cuda(&q->ob, d_x, 2, shape, &q->qp);
        q->calibrated = st == QTK_OK;
    }
    if (st != QTK_OK) return qtk_fail(st, "quantizer %s: %s", q->name, qtk_last_error());
    return QTK_OK;
}
