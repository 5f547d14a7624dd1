// Quantization points and their registry (qpoint.h).
#include "qpoint.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "biascorr.h"
#include "fakequant.h"
#include "pack.h"
#include "qtk.h"
#include "tensor.h"

qtk_status qtk_qreg_init(qtk_qreg *r, int n, int bias_corr) {
    memset(r, 0, sizeof *r);
    if (n < 1 || n > (1 << 20)) return qtk_fail(QTK_ERR_ARG, "a registry of %d quantization points", n);
    if (!(r->p = calloc((size_t)n, sizeof *r->p))) return qtk_fail(QTK_ERR_NOMEM, "%d quantization points: out of memory", n);
    r->n = n;
    r->bias_corr = bias_corr;
    for (int i = 0; i < n; i++) r->p[i].input = r->p[i].shares = r->p[i].block = -1;
    return QTK_OK;
}

void qtk_qreg_free(qtk_qreg *r) {
    for (int i = 0; r->p && i < r->n; i++) {
        qtk_observer_free(&r->p[i].ob);
        qtk_qparams_free(&r->p[i].qp);
        qtk_aligned_free(r->p[i].wq);
        free(r->p[i].group_index);
    }
    free(r->p);
    memset(r, 0, sizeof *r);
}

static int valid_ref(const qtk_qreg *r, int id) { return id >= -1 && id < r->n; }

// a checked copy of an index map (the checks of qtk_qparams_init_index)
static qtk_status set_index(qtk_qpoint *p, const int32_t *index, size_t len, size_t n_groups) {
    qtk_qparams chk;
    QTK_TRY(qtk_qparams_init_index(&chk, 8, false, false, 0, index, len, n_groups));
    qtk_qparams_free(&chk);
    int32_t *copy = malloc(len * sizeof *copy);
    if (!copy) return qtk_fail(QTK_ERR_NOMEM, "an index map of %zu channels: out of memory", len);
    memcpy(copy, index, len * sizeof *copy);
    free(p->group_index);
    p->group_index = copy;
    p->index_len = len;
    p->channels = n_groups;
    return QTK_OK;
}

qtk_status qtk_qreg_add(qtk_qreg *r, int id, const qtk_qpoint_desc *d) {
    if (id < 0 || id >= r->n) return qtk_fail(QTK_ERR_ARG, "quantization point %s: id %d outside 0..%d", d->name, id, r->n - 1);
    qtk_qpoint *p = &r->p[id];
    if (p->name[0]) return qtk_fail(QTK_ERR_ARG, "quantization point %s: id %d is taken by %s", d->name, id, p->name);
    if (!d->name || !d->name[0] || strlen(d->name) >= QTK_QPOINT_NAME)
        return qtk_fail(QTK_ERR_ARG, "quantization point %d: a name of 1..%d characters", id, QTK_QPOINT_NAME - 1);
    if (qtk_qreg_find(r, d->name) >= 0) return qtk_fail(QTK_ERR_ARG, "quantization point %s is declared twice", d->name);
    if (!valid_ref(r, d->input) || !valid_ref(r, d->shares) || d->shares == id)
        return qtk_fail(QTK_ERR_ARG, "quantization point %s: input %d / shares %d is no point id", d->name, d->input,
                        d->shares);
    if (d->kind == QTK_QPOINT_WEIGHT && (!d->w || d->O < 1 || d->K < 1))
        return qtk_fail(QTK_ERR_ARG, "quantization point %s: a weight point needs its (O, K) weights", d->name);
    if (d->kind == QTK_QPOINT_WEIGHT && d->shares >= 0)
        return qtk_fail(QTK_ERR_ARG, "quantization point %s: weights do not share parameters", d->name);
    qtk_qpoint np = {.kind = d->kind, .block = d->block, .input = d->input, .shares = d->shares, .enabled = 1};
    snprintf(np.name, sizeof np.name, "%s", d->name);
    if (d->kind == QTK_QPOINT_WEIGHT) {
        np.w = d->w;
        np.O = d->O;
        np.K = d->K;
        np.channels = d->O;
        if (d->O > SIZE_MAX / sizeof(float) / d->K || !(np.wq = qtk_aligned_alloc(d->O * d->K * sizeof(float))))
            return qtk_fail(QTK_ERR_NOMEM, "quantization point %s: cannot allocate %zu x %zu quantized weights", d->name,
                            d->O, d->K);
    } else {
        np.channels = d->channels ? d->channels : 1;
    }
    if (d->group_index && (d->kind != QTK_QPOINT_ACT || d->observer != QTK_OBS_MINMAX || !d->channel_wise))
        return qtk_fail(QTK_ERR_ARG, "quantization point %s: index-mapped groups are for activations with a "
                        "channel-wise min-max observer", d->name);
    qtk_status st = qtk_observer_init(&np.ob, d->observer, d->bits, d->is_signed, d->channel_wise, d->axis);
    if (st == QTK_OK && d->group_index) st = set_index(&np, d->group_index, d->index_len, np.channels);
    if (st != QTK_OK) {
        qtk_aligned_free(np.wq);
        qtk_observer_free(&np.ob);
        return qtk_fail(st, "quantization point %s: %s", d->name, qtk_last_error());
    }
    *p = np;
    return QTK_OK;
}

qtk_status qtk_qreg_set_index(qtk_qreg *r, int id, const int32_t *group_index, size_t len, size_t n_groups) {
    if (id < 0 || id >= r->n || !r->p[id].name[0] || !r->p[id].group_index)
        return qtk_fail(QTK_ERR_ARG, "point %d has no index-mapped groups", id);
    qtk_qpoint *p = &r->p[id];
    qtk_status st = set_index(p, group_index, len, n_groups);
    if (st == QTK_OK && p->calibrated && p->ob.n_updates > 0) {
        qtk_qparams_free(&p->qp);
        st = qtk_observer_params_index(&p->ob, p->group_index, p->index_len, p->channels, &p->qp);
        p->calibrated = st == QTK_OK;
    }
    if (st != QTK_OK) return qtk_fail(st, "quantizer %s: %s", p->name, qtk_last_error());
    return QTK_OK;
}

int qtk_qreg_find(const qtk_qreg *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (r->p[i].name[0] && strcmp(r->p[i].name, name) == 0) return i;
    return -1;
}

int qtk_qreg_set_enabled(qtk_qreg *r, const char *glob, int on) {
    int k = 0;
    for (int i = 0; i < r->n; i++)
        if (r->p[i].name[0] && fnmatch(glob, r->p[i].name, 0) == 0) {
            r->p[i].enabled = on;
            k++;
        }
    return k;
}

int qtk_qreg_select(const qtk_qreg *r, int block, const char *const *globs, int n_globs, int *ids, int max) {
    int n = 0;
    for (int g = 0; g < n_globs; g++)
        for (int i = 0; i < r->n; i++) {
            const qtk_qpoint *p = &r->p[i];
            if (!p->name[0] || p->block != block || !p->calibrated || fnmatch(globs[g], p->name, 0) != 0) continue;
            int seen = 0; // by an earlier glob
            for (int e = 0; e < g && !seen; e++) seen = fnmatch(globs[e], p->name, 0) == 0;
            if (seen) continue;
            if (n < max) ids[n] = i;
            n++;
        }
    return n;
}

// --- hooks -----------------------------------------------------------------------

// the report's squared error of one chunk of a point's input
typedef struct {
    const qtk_qlayout *L;
    const qtk_qparams *qp;
    const float *x;
    int lo, hi;
} err_ctx;

static double err_chunk(const void *ctx, size_t a, size_t b) {
    const err_ctx *c = ctx;
    double e = 0;
    for (size_t i = a; i < b; i++) {
        size_t k = qtk_qlayout_index(c->L, i);
        double d = (double)c->x[i] - qtk_fake_quant_scalar(c->x[i], c->qp->scale[k], c->qp->zero[k], c->lo, c->hi, c->qp->formula);
        e += d * d;
    }
    return e;
}

// sum (x - fq(x))^2 over a tensor: in fixed chunks (the same at any thread count), or in one
// sequential pass
static qtk_status sq_error(const qtk_qparams *qp, const float *x, int ndim, const int64_t *shape, int chunked,
                           double *sum, double *n) {
    qtk_qlayout L;
    QTK_TRY(qtk_qlayout_make(qp, ndim, shape, &L));
    int lo, hi;
    QTK_TRY(qtk_qrange(qp->bits, qp->is_signed, &lo, &hi));
    err_ctx c = {&L, qp, x, lo, hi};
    *sum += chunked ? qtk_sum_chunked(L.numel, 0, err_chunk, &c) : err_chunk(&c, 0, L.numel);
    *n += (double)L.numel;
    return QTK_OK;
}

qtk_status qtk_qreg_act(qtk_qreg *r, int id, float *x, int ndim, const int64_t *shape) {
    qtk_qpoint *p = &r->p[id];
    if (!p->name[0] || p->kind != QTK_QPOINT_ACT) return QTK_OK;
    if (r->mode == QTK_QREG_CALIB) {
        if (p->shares >= 0) return QTK_OK;
        qtk_status st = qtk_observer_update(&p->ob, x, ndim, shape);
        if (st == QTK_OK && r->last_batch) {
            qtk_qparams_free(&p->qp);
            st = p->group_index ? qtk_observer_params_index(&p->ob, p->group_index, p->index_len, p->channels, &p->qp)
                                : qtk_observer_params(&p->ob, x, ndim, shape, &p->qp);
            p->calibrated = st == QTK_OK;
        }
        if (st != QTK_OK) return qtk_fail(st, "quantizer %s: %s", p->name, qtk_last_error());
        return QTK_OK;
    }
    const qtk_qpoint *src = p->shares >= 0 ? &r->p[p->shares] : p;
    if (r->mode != QTK_QREG_QUANT || !p->enabled || !src->calibrated) return QTK_OK;
    if (r->report) QTK_TRY(sq_error(&src->qp, x, ndim, shape, 1, &p->err_sum, &p->n_seen));
    return qtk_fake_quant(&src->qp, x, x, ndim, shape);
}

const float *qtk_qreg_weight(const qtk_qreg *r, int id) {
    const qtk_qpoint *p = &r->p[id];
    return r->mode == QTK_QREG_QUANT && p->name[0] && p->enabled && p->calibrated ? p->wq : NULL;
}

// --- weights -----------------------------------------------------------------------

qtk_status qtk_qreg_requantize(qtk_qreg *r, int id) {
    if (id < 0 || id >= r->n || r->p[id].kind != QTK_QPOINT_WEIGHT || !r->p[id].name[0])
        return qtk_fail(QTK_ERR_ARG, "point %d is not a weight quantizer", id);
    qtk_qpoint *p = &r->p[id];
    int64_t shape[2] = {(int64_t)p->O, (int64_t)p->K};
    QTK_TRY(qtk_fake_quant(&p->qp, p->w, p->wq, 2, shape));
    if (r->bias_corr) qtk_bias_correct(p->w, p->wq, p->O, p->K);
    p->wq_stale = 0;
    return QTK_OK;
}

qtk_status qtk_qreg_sync_weights(qtk_qreg *r) {
    for (int i = 0; i < r->n; i++)
        if (r->p[i].kind == QTK_QPOINT_WEIGHT && r->p[i].wq_stale) QTK_TRY(qtk_qreg_requantize(r, i));
    return QTK_OK;
}

qtk_status qtk_qreg_calibrate_weights(qtk_qreg *r) {
    // their observers see the same tensor on every calibration, so once is enough
    for (int i = 0; i < r->n; i++) {
        qtk_qpoint *p = &r->p[i];
        if (!p->name[0] || p->kind != QTK_QPOINT_WEIGHT) continue;
        int64_t shape[2] = {(int64_t)p->O, (int64_t)p->K};
        qtk_qparams_free(&p->qp);
        QTK_TRY(qtk_observer_update(&p->ob, p->w, 2, shape));
        QTK_TRY(qtk_observer_params(&p->ob, NULL, 2, shape, &p->qp));
        QTK_TRY(qtk_qreg_requantize(r, i));
        p->calibrated = 1;
    }
    return QTK_OK;
}

// --- report ------------------------------------------------------------------------

const char *qtk_qpoint_granularity(const qtk_qpoint *p) {
    if (p->qp.gran == QTK_PER_GROUP) return "group";
    if (p->qp.gran == QTK_PER_INDEX) return "index";
    if (p->kind == QTK_QPOINT_WEIGHT) return "channel";
    return p->qp.n > 1 ? (p->ob.kind == QTK_OBS_PTF ? "channel-ptf" : "channel") : "tensor";
}

void qtk_qreg_report_begin(qtk_qreg *r) {
    for (int i = 0; i < r->n; i++) r->p[i].err_sum = r->p[i].n_seen = 0;
    r->report = 1;
}

void qtk_qreg_report_end(qtk_qreg *r) { r->report = 0; }

void qtk_qreg_report_print(const qtk_qreg *r, FILE *out) {
    fprintf(out, "%-28s %4s %-11s %-25s %-11s %s\n", "quantizer", "bits", "granularity", "scale range", "zero range",
            "MSE");
    for (int i = 0; i < r->n; i++) {
        const qtk_qpoint *p = &r->p[i];
        if (!p->name[0]) continue;
        const qtk_qpoint *src = p->shares >= 0 ? &r->p[p->shares] : p;
        if (!src->calibrated) {
            fprintf(out, "%-28s (not calibrated)\n", p->name);
            continue;
        }
        float smin = INFINITY, smax = -INFINITY, zmin = INFINITY, zmax = -INFINITY;
        for (size_t k = 0; k < src->qp.n; k++) {
            smin = fminf(smin, src->qp.scale[k]);
            smax = fmaxf(smax, src->qp.scale[k]);
            zmin = fminf(zmin, src->qp.zero[k]);
            zmax = fmaxf(zmax, src->qp.zero[k]);
        }
        double mse = NAN;
        if (p->kind == QTK_QPOINT_WEIGHT) { // the fake-quantization error before bias correction
            double e = 0, n = 0;
            int64_t shape[2] = {(int64_t)p->O, (int64_t)p->K};
            if (sq_error(&p->qp, p->w, 2, shape, 0, &e, &n) == QTK_OK) mse = e / n;
        } else if (p->n_seen > 0) {
            mse = p->err_sum / p->n_seen;
        }
        char srange[48], zrange[48];
        snprintf(srange, sizeof srange, "%.3e..%.3e", smin, smax);
        snprintf(zrange, sizeof zrange, "%g..%g", zmin, zmax);
        fprintf(out, "%-28s %4d %-11s %-25s %-11s %.4e%s\n", p->name, src->qp.bits, qtk_qpoint_granularity(src), srange,
                zrange, mse, p->enabled ? "" : "  (off)");
    }
}

// --- export / import -----------------------------------------------------------------

// the points with parameters of their own
static int exported(const qtk_qpoint *p) { return p->name[0] && p->calibrated && p->shares < 0; }

qtk_status qtk_qreg_export(const qtk_qreg *r, const char *path, const char *config_json, const char *const (*extra)[2],
                           size_t n_extra) {
    int nq = 0;
    for (int i = 0; i < r->n; i++) nq += exported(&r->p[i]);
    if (nq == 0) return qtk_fail(QTK_ERR_ARG, "%s: nothing to export: the model is not calibrated", path);
    qtk_st_entry *e = calloc((size_t)nq * 5, sizeof *e);
    char (*names)[QTK_QPOINT_NAME + 16] = calloc((size_t)nq * 5, sizeof *names);
    int64_t *lens = calloc((size_t)nq * 4, sizeof *lens); // per point: its pairs, its index map's length, (O, K)
    void **bufs = calloc((size_t)nq * 2, sizeof *bufs);   // weights: codes, and weights re-derived where stale
    int nb = 0;
    const char *(*meta)[2] = calloc(5 + n_extra, sizeof *meta);
    cJSON *list = cJSON_CreateArray();
    char *lj = NULL;
    qtk_status st = QTK_OK;
    if (!e || !names || !lens || !meta || !list || !bufs) st = qtk_fail(QTK_ERR_NOMEM, "%s: out of memory", path);
    int k = 0, np = 0;
    for (int i = 0; st == QTK_OK && i < r->n; i++) {
        const qtk_qpoint *p = &r->p[i];
        if (!exported(p)) continue;
        int64_t *len = &lens[4 * np++];
        len[0] = (int64_t)p->qp.n;
        len[1] = (int64_t)p->qp.index_len;
        len[2] = (int64_t)p->O, len[3] = (int64_t)p->K;
        snprintf(names[k], sizeof names[k], "%s.scale", p->name);
        e[k] = (qtk_st_entry){names[k], QTK_F32, 1, &len[0], p->qp.scale};
        k++;
        snprintf(names[k], sizeof names[k], "%s.zero_point", p->name);
        e[k] = (qtk_st_entry){names[k], QTK_F32, 1, &len[0], p->qp.zero};
        k++;
        if (p->qp.gran == QTK_PER_INDEX) {
            snprintf(names[k], sizeof names[k], "%s.group_index", p->name);
            e[k] = (qtk_st_entry){names[k], QTK_I32, 1, &len[1], p->qp.index};
            k++;
        }
        if (r->export_weights && p->kind == QTK_QPOINT_WEIGHT) {
            const qtk_dtype dt = p->qp.is_signed ? QTK_I8 : QTK_U8;
            const float *wq = p->wq;
            if (!(bufs[nb] = malloc(p->O * p->K))) st = qtk_fail(QTK_ERR_NOMEM, "%s: out of memory", path);
            if (st == QTK_OK) st = qtk_quantize(&p->qp, p->w, 2, &len[2], dt, bufs[nb]);
            snprintf(names[k], sizeof names[k], "%s.codes", p->name);
            e[k] = (qtk_st_entry){names[k], dt, 2, &len[2], bufs[nb++]};
            k++;
            if (st == QTK_OK && p->wq_stale) { // behind its parameters (re-quantized on a GPU): re-derive a copy
                float *w2 = malloc(p->O * p->K * sizeof *w2);
                bufs[nb++] = w2;
                st = w2 ? qtk_fake_quant(&p->qp, p->w, w2, 2, &len[2]) : qtk_fail(QTK_ERR_NOMEM, "%s: out of memory", path);
                if (st == QTK_OK && r->bias_corr) qtk_bias_correct(p->w, w2, p->O, p->K);
                wq = w2;
            }
            snprintf(names[k], sizeof names[k], "%s.weight_q", p->name);
            e[k] = (qtk_st_entry){names[k], QTK_F32, 2, &len[2], wq};
            k++;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON_AddNumberToObject(o, "bits", p->qp.bits);
        cJSON_AddStringToObject(o, "granularity", qtk_qpoint_granularity(p));
        cJSON_AddBoolToObject(o, "enabled", p->enabled);
        cJSON_AddItemToArray(list, o);
    }
    if (st == QTK_OK && !(lj = cJSON_PrintUnformatted(list))) st = qtk_fail(QTK_ERR_NOMEM, "%s: out of memory", path);
    if (st == QTK_OK) {
        meta[0][0] = "qtk_version", meta[0][1] = QTK_VERSION;
        meta[1][0] = "config", meta[1][1] = config_json;
        meta[2][0] = "quantizers", meta[2][1] = lj;
        meta[3][0] = "format_version", meta[3][1] = QTK_EXPORT_FORMAT;
        meta[4][0] = "qtk_commit", meta[4][1] = qtk_commit();
        for (size_t i = 0; i < n_extra; i++) meta[5 + i][0] = extra[i][0], meta[5 + i][1] = extra[i][1];
        st = qtk_st_write(path, e, (size_t)k, (const char *const(*)[2])meta, 5 + n_extra);
    }
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs);
    free(lj);
    cJSON_Delete(list);
    free(meta);
    free(e);
    free(names);
    free(lens);
    return st;
}

// The index map of a point with index-mapped groups: "<name>.group_index", I32, one per channel of its axis,
// each in 0..n-1 with every group used; q gets the map (its values are read by the caller)
static qtk_status import_index(const qtk_qpoint *p, const qtk_safetensors *st, const char *path, size_t n,
                               qtk_qparams *q) {
    char in[QTK_QPOINT_NAME + 16];
    snprintf(in, sizeof in, "%s.group_index", p->name);
    const qtk_st_tensor *t;
    int64_t shp[1] = {(int64_t)p->index_len};
    QTK_TRY(qtk_st_expect(st, in, 1, shp, &t));
    if (t->dtype != QTK_I32) return qtk_fail(QTK_ERR_FORMAT, "%s: %s is %s, not I32", path, in, qtk_dtype_name(t->dtype));
    int32_t *idx = malloc(p->index_len * sizeof *idx);
    if (!idx) return qtk_fail(QTK_ERR_NOMEM, "%s: %s: out of memory", path, in);
    memcpy(idx, t->data, p->index_len * sizeof *idx);
    bool sym = p->ob.symmetric || p->ob.pct_abs;
    qtk_status r = qtk_qparams_init_index(q, p->ob.bits, p->ob.is_signed, sym, p->ob.axis, idx, p->index_len, n);
    free(idx);
    if (r != QTK_OK) return qtk_fail(QTK_ERR_FORMAT, "%s: %s: %s", path, in, qtk_last_error());
    return QTK_OK;
}

// One point's parameters, laid out as its observer gives them (qtk_observer_params).
static qtk_status import_one(qtk_qpoint *p, const qtk_safetensors *st, const char *path, const char *model) {
    char sn[QTK_QPOINT_NAME + 16], zn[QTK_QPOINT_NAME + 16];
    snprintf(sn, sizeof sn, "%s.scale", p->name);
    snprintf(zn, sizeof zn, "%s.zero_point", p->name);
    const qtk_st_tensor *ts = qtk_st_find(st, sn), *tz = qtk_st_find(st, zn);
    if (!ts || !tz) return qtk_fail(QTK_ERR_FORMAT, "%s: no %s / %s: not an export of this model (%s)", path, sn, zn, model);
    size_t n = ts->ndim == 1 ? (size_t)ts->shape[0] : 0;
    if (n != p->channels || tz->ndim != 1 || (size_t)tz->shape[0] != n)
        return qtk_fail(QTK_ERR_FORMAT, "%s: %s has %zu values, quantizer %s needs %zu", path, sn, n, p->name, p->channels);
    qtk_qparams q;
    bool sym = p->ob.kind == QTK_OBS_MINMAX && (p->ob.symmetric || p->ob.pct_abs);
    if (p->group_index) QTK_TRY(import_index(p, st, path, n, &q));
    else
        QTK_TRY(qtk_qparams_init(&q, p->ob.bits, p->ob.is_signed, sym, n > 1 ? QTK_PER_CHANNEL : QTK_PER_TENSOR,
                                 n > 1 && p->kind == QTK_QPOINT_ACT ? -1 : 0, 0, n));
    int64_t shp[1] = {(int64_t)n};
    qtk_status r = qtk_st_read_f32(st, sn, 1, shp, q.scale);
    if (r == QTK_OK) r = qtk_st_read_f32(st, zn, 1, shp, q.zero);
    int lo = 0, hi = 0;
    if (r == QTK_OK) r = qtk_qrange(q.bits, q.is_signed, &lo, &hi);
    for (size_t i = 0; r == QTK_OK && i < n; i++)
        if (!(q.scale[i] > 0) || !isfinite(q.scale[i]))
            r = qtk_fail(QTK_ERR_FORMAT, "%s: %s[%zu] = %g (zero point %g): scales must be finite and > 0", path, sn, i,
                         (double)q.scale[i], (double)q.zero[i]);
        // the reference rounds and clamps its zero points into the code range
        else if (!(q.zero[i] >= lo && q.zero[i] <= hi) || q.zero[i] != floorf(q.zero[i]))
            r = qtk_fail(QTK_ERR_FORMAT, "%s: %s[%zu] = %g is not an integer in the %d-bit code range %d..%d", path, zn, i,
                         (double)q.zero[i], q.bits, lo, hi);
    if (r != QTK_OK) {
        qtk_qparams_free(&q);
        return r;
    }
    if (p->group_index) memcpy(p->group_index, q.index, p->index_len * sizeof *q.index); // the export's clustering
    qtk_qparams_free(&p->qp);
    p->qp = q;
    p->calibrated = 1;
    return QTK_OK;
}

qtk_status qtk_qreg_import(qtk_qreg *r, const qtk_safetensors *st, const char *path, const char *model) {
    for (int i = 0; i < r->n; i++) {
        qtk_qpoint *p = &r->p[i];
        if (!p->name[0] || p->shares >= 0) continue;
        QTK_TRY(import_one(p, st, path, model));
        if (p->kind == QTK_QPOINT_WEIGHT) QTK_TRY(qtk_qreg_requantize(r, i));
    }
    r->mode = QTK_QREG_QUANT;
    return QTK_OK;
}
