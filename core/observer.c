#include "observer.h"

#include "cuda/qtk_cuda.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "fakequant.h"
#include "tensor.h"

static const char *kind_names[] = {"minmax", "ema", "percentile", "omse", "ptf"};

const char *qtk_observer_kind_name(qtk_observer_kind k) {
    return (unsigned)k <= QTK_OBS_PTF ? kind_names[k] : "?";
}

qtk_status qtk_observer_kind_from_name(const char *name, qtk_observer_kind *out) {
    for (int i = 0; i <= QTK_OBS_PTF; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (qtk_observer_kind)i;
            return QTK_OK;
        }
    return qtk_fail(QTK_ERR_ARG, "unknown observer \"%s\" (expected minmax, ema, percentile, omse or ptf)",
                    name);
}

qtk_status qtk_observer_init(qtk_observer *o, qtk_observer_kind kind, int bits, bool is_signed,
                             bool channel_wise, int axis) {
    memset(o, 0, sizeof *o);
    int lo, hi;
    if ((unsigned)kind > QTK_OBS_PTF) return qtk_fail(QTK_ERR_ARG, "invalid observer kind %d", (int)kind);
    QTK_TRY(qtk_qrange(bits, is_signed, &lo, &hi));
    if (kind == QTK_OBS_PTF) {
        channel_wise = true;
        axis = -1;
    }
    if ((kind == QTK_OBS_OMSE || kind == QTK_OBS_PERCENTILE) && channel_wise)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "the %s observer is per tensor only (the reference has no "
                        "channel-wise form)", kind_names[kind]);
    o->kind = kind;
    o->bits = bits;
    o->is_signed = is_signed;
    o->symmetric = is_signed;
    o->channel_wise = channel_wise;
    o->axis = axis;
    o->momentum = 0.01f;
    o->q_hi = 0.99999f;
    o->q_lo = 0.00001f;
    return QTK_OK;
}

void qtk_observer_free(qtk_observer *o) {
    qtk_aligned_free(o->min_val);
    qtk_aligned_free(o->max_val);
    memset(o, 0, sizeof *o);
}

qtk_status qtk_channel_minmax(const float *x, size_t outer, size_t C, size_t inner, float *mn, float *mx) {
    for (size_t c = 0; c < C; c++) {
        mn[c] = INFINITY;
        mx[c] = -INFINITY;
    }
    if (inner == 1) {
        // channels on the last axis: each thread reduces a slab of rows into
        // its own arrays, then they are merged (min/max are exact in any order)
        int nt = omp_get_max_threads();
        float *lmn = malloc((size_t)nt * C * sizeof *lmn), *lmx = malloc((size_t)nt * C * sizeof *lmx);
        if (!lmn || !lmx) {
            free(lmn);
            free(lmx);
            return qtk_fail(QTK_ERR_NOMEM, "observer: cannot allocate %d x %zu channel buffers", nt, C);
        }
        for (size_t i = 0; i < (size_t)nt * C; i++) {
            lmn[i] = INFINITY;
            lmx[i] = -INFINITY;
        }
#pragma omp parallel num_threads(nt) if (outer * C >= 65536)
        {
            float *tmn = lmn + (size_t)omp_get_thread_num() * C, *tmx = lmx + (size_t)omp_get_thread_num() * C;
#pragma omp for schedule(static)
            for (size_t r = 0; r < outer; r++) {
                const float *xr = x + r * C;
                for (size_t c = 0; c < C; c++) {
                    tmn[c] = xr[c] < tmn[c] ? xr[c] : tmn[c];
                    tmx[c] = xr[c] > tmx[c] ? xr[c] : tmx[c];
                }
            }
        }
        for (int t = 0; t < nt; t++)
            for (size_t c = 0; c < C; c++) {
                if (lmn[(size_t)t * C + c] < mn[c]) mn[c] = lmn[(size_t)t * C + c];
                if (lmx[(size_t)t * C + c] > mx[c]) mx[c] = lmx[(size_t)t * C + c];
            }
        free(lmn);
        free(lmx);
        return QTK_OK;
    }
#pragma omp parallel for schedule(static) if (outer * C * inner >= 65536)
    for (size_t c = 0; c < C; c++) {
        float a = INFINITY, b = -INFINITY;
        for (size_t r = 0; r < outer; r++) {
            const float *xr = x + (r * C + c) * inner;
            for (size_t i = 0; i < inner; i++) {
                a = xr[i] < a ? xr[i] : a;
                b = xr[i] > b ? xr[i] : b;
            }
        }
        mn[c] = a;
        mx[c] = b;
    }
    return QTK_OK;
}

// Hoare-style selection: afterwards v[k] holds the k-th smallest value, all
// v[<k] <= v[k] <= all v[>k].
static void select_kth(float *v, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        // median of three as pivot
        size_t mid = lo + (hi - lo) / 2;
        float a = v[lo], b = v[mid], c = v[hi];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
}

float qtk_quantile_inplace(float *v, size_t n, float q) {
    if (n == 1) return v[0];
    // ranks = q * (n - 1) in the input's dtype (float32); below = ranks.long()
    float rank = q * (float)(n - 1);
    size_t below = (size_t)rank;
    if (below > n - 1) below = n - 1;
    float w = rank - (float)below;
    select_kth(v, n, below);
    float a = v[below], b = a;
    if (below + 1 < n) {
        b = v[below + 1];
        for (size_t i = below + 2; i < n; i++) b = v[i] < b ? v[i] : b;
    }
    // at::lerp: weight < 0.5 ? a + w*(b-a) : b - (b-a)*(1-w)
    return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

float qtk_fq_mse(const float *x, size_t n, float s, float z, int lo, int hi) {
    return (float)(qtk_fake_quant_sse(x, n, s, z, lo, hi) / (double)n);
}

// OMSE's candidates: max and min shrunk by (1 - i/100), i < 90
static void omse_candidate(float mn, float mx, int lo, int hi, int i, float *s, float *z) {
    // new_max = max_val * (1.0 - i * 0.01): the factor is a Python float
    float f = (float)(1.0 - (double)i * 0.01);
    qtk_params_asym(mn * f, mx * f, lo, hi, s, z);
}

// The first candidate with the smallest float32 score sse / n.
static int omse_pick(const double *sse, size_t n, float mn, float mx, int lo, int hi, float *s, float *z) {
    float best = 1e10f;
    int best_i = 0;
    qtk_params_asym(mn, mx, lo, hi, s, z);
    for (int i = 0; i < QTK_OMSE_CANDIDATES; i++) {
        float score = (float)(sse[i] / (double)n);
        if (score < best) {
            best = score;
            best_i = i;
            omse_candidate(mn, mx, lo, hi, i, s, z);
        }
    }
    return best_i;
}

int qtk_omse_search(const float *x, size_t n, float mn, float mx, int lo, int hi, float *s, float *z) {
    double sse[QTK_OMSE_CANDIDATES];
    float sc[QTK_OMSE_CANDIDATES], zc[QTK_OMSE_CANDIDATES];
    for (int i = 0; i < QTK_OMSE_CANDIDATES; i++) omse_candidate(mn, mx, lo, hi, i, &sc[i], &zc[i]);
    qtk_fake_quant_sse_multi(x, n, sc, zc, QTK_OMSE_CANDIDATES, lo, hi, sse);
    return omse_pick(sse, n, mn, mx, lo, hi, s, z);
}

static qtk_status ensure_state(qtk_observer *o, size_t C) {
    if (o->min_val) {
        if (o->C != C)
            return qtk_fail(QTK_ERR_ARG, "observer saw %zu channels before and %zu now", o->C, C);
        return QTK_OK;
    }
    size_t n = o->channel_wise ? C : 1;
    o->min_val = qtk_aligned_alloc(n * sizeof(float));
    o->max_val = qtk_aligned_alloc(n * sizeof(float));
    if (!o->min_val || !o->max_val) return qtk_fail(QTK_ERR_NOMEM, "observer: cannot allocate %zu channels", n);
    o->C = C;
    return QTK_OK;
}

static qtk_status update_quantiles(qtk_observer *o, const float *x, size_t n, float *cur_mn, float *cur_mx) {
    float *v = malloc(n * sizeof *v);
    if (!v) return qtk_fail(QTK_ERR_NOMEM, "percentile observer: cannot copy %zu values", n);
    if (o->pct_abs) {
        for (size_t i = 0; i < n; i++) v[i] = fabsf(x[i]);
        *cur_mx = qtk_quantile_inplace(v, n, o->q_hi);
        *cur_mn = -*cur_mx;
    } else {
        memcpy(v, x, n * sizeof *v);
        *cur_mx = qtk_quantile_inplace(v, n, o->q_hi);
        *cur_mn = qtk_quantile_inplace(v, n, o->q_lo);
    }
    free(v);
    return QTK_OK;
}

qtk_status qtk_observer_update(qtk_observer *o, const float *x, int ndim, const int64_t *shape) {
    size_t outer, C, inner;
    int axis = o->channel_wise ? o->axis : 0;
    QTK_TRY(qtk_axis_view(ndim, shape, axis, &outer, &C, &inner));
    size_t n = outer * C * inner;
    if (n == 0) return qtk_fail(QTK_ERR_ARG, "observer update with an empty tensor");
    QTK_TRY(ensure_state(o, o->channel_wise ? C : 1));
    size_t nc = o->channel_wise ? C : 1;
    float one_mn, one_mx;
    float *cur_mn = &one_mn, *cur_mx = &one_mx;
    if (o->channel_wise) {
        cur_mn = malloc(C * sizeof *cur_mn);
        cur_mx = malloc(C * sizeof *cur_mx);
        if (!cur_mn || !cur_mx) {
            free(cur_mn);
            free(cur_mx);
            return qtk_fail(QTK_ERR_NOMEM, "observer: cannot allocate %zu channels", C);
        }
        qtk_status r = qtk_channel_minmax(x, outer, C, inner, cur_mn, cur_mx);
        if (r != QTK_OK) {
            free(cur_mn);
            free(cur_mx);
            return r;
        }
    } else if (o->kind == QTK_OBS_PERCENTILE) {
        QTK_TRY(update_quantiles(o, x, n, cur_mn, cur_mx));
    } else {
        // layer-wise: the per-channel reduction collapsed at once is the global min/max
        float a = INFINITY, b = -INFINITY;
#pragma omp parallel for reduction(min : a) reduction(max : b) schedule(static) if (n >= 65536)
        for (size_t i = 0; i < n; i++) {
            a = x[i] < a ? x[i] : a;
            b = x[i] > b ? x[i] : b;
        }
        one_mn = a;
        one_mx = b;
    }
    qtk_status r = qtk_observer_update_minmax(o, cur_mn, cur_mx, nc);
    if (o->channel_wise) {
        free(cur_mn);
        free(cur_mx);
    }
    return r;
}

qtk_status qtk_observer_update_minmax(qtk_observer *o, const float *cur_mn, const float *cur_mx, size_t nc) {
    QTK_TRY(ensure_state(o, nc));
    if (nc != (o->channel_wise ? o->C : 1))
        return qtk_fail(QTK_ERR_ARG, "observer update with %zu channels, statistics have %zu", nc, o->C);
    bool ema = o->kind == QTK_OBS_EMA || o->kind == QTK_OBS_PERCENTILE;
    for (size_t c = 0; c < nc; c++) {
        if (o->n_updates == 0) {
            o->min_val[c] = cur_mn[c];
            o->max_val[c] = cur_mx[c];
        } else if (ema) {
            // self.max_val = self.max_val + self.sigma * (cur_max - self.max_val)
            o->max_val[c] = o->max_val[c] + o->momentum * (cur_mx[c] - o->max_val[c]);
            o->min_val[c] = o->min_val[c] + o->momentum * (cur_mn[c] - o->min_val[c]);
        } else {
            o->max_val[c] = fmaxf(o->max_val[c], cur_mx[c]);
            o->min_val[c] = fminf(o->min_val[c], cur_mn[c]);
        }
    }
    o->n_updates++;
    return QTK_OK;
}

// PTF's candidates: one zero point and the scales s1 * 2^k (k = 0..3) from the channels' joint range
static void ptf_candidates(const qtk_observer *o, int lo, int hi, float sk[4], float *z) {
    float mx_t = -INFINITY, mn_t = INFINITY;
    for (size_t c = 0; c < o->C; c++) {
        mx_t = fmaxf(mx_t, o->max_val[c]);
        mn_t = fminf(mn_t, o->min_val[c]);
    }
    float s8;
    qtk_params_asym(mn_t, mx_t, lo, hi, &s8, z);
    sk[3] = s8;
    sk[2] = s8 / 2.0f;
    sk[1] = sk[2] / 2.0f;
    sk[0] = sk[1] / 2.0f;
}

// Per channel: the factor with the smallest float32 score acc / outer (acc: C x 4 sums of squares)
static qtk_status ptf_pick(const qtk_observer *o, const double *acc, size_t outer, const float sk[4], float z,
                           qtk_qparams *out) {
    QTK_TRY(qtk_qparams_init(out, o->bits, o->is_signed, false, QTK_PER_CHANNEL, -1, 0, o->C));
    for (size_t c = 0; c < o->C; c++) {
        // score.index(min(score)): the first minimum, i.e. ties to the smaller factor
        int best = 0;
        float bs = (float)(acc[c * 4] / (double)outer);
        for (int k = 1; k < 4; k++) {
            float sc = (float)(acc[c * 4 + k] / (double)outer);
            if (sc < bs) {
                bs = sc;
                best = k;
            }
        }
        out->scale[c] = sk[0] * (float)(1 << best);
        out->zero[c] = z;
    }
    return QTK_OK;
}

static qtk_status ptf_view(const qtk_observer *o, int ndim, const int64_t *shape, size_t *outer) {
    size_t C, inner;
    QTK_TRY(qtk_axis_view(ndim, shape, -1, outer, &C, &inner));
    if (C != o->C)
        return qtk_fail(QTK_ERR_ARG, "PTF observer: last batch has %zu channels, statistics have %zu", C, o->C);
    return QTK_OK;
}

static qtk_status ptf_params(const qtk_observer *o, const float *x, int ndim, const int64_t *shape,
                             int lo, int hi, qtk_qparams *out) {
    size_t outer, C = o->C;
    QTK_TRY(ptf_view(o, ndim, shape, &outer));
    float sk[4], z;
    ptf_candidates(o, lo, hi, sk, &z);
    double *acc = calloc(C * 4, sizeof *acc);
    if (!acc) return qtk_fail(QTK_ERR_NOMEM, "PTF observer: out of memory");
#pragma omp parallel for schedule(dynamic, 4) if (outer * C >= 65536)
    for (size_t c = 0; c < C; c++)
        for (size_t r = 0; r < outer; r++) {
            float v = x[r * C + c];
            for (int k = 0; k < 4; k++) {
                float d = v - qtk_fake_quant_scalar(v, sk[k], z, lo, hi, QTK_FQ_REF);
                acc[c * 4 + k] += (double)(d * d);
            }
        }
    qtk_status st = ptf_pick(o, acc, outer, sk, z, out);
    free(acc);
    return st;
}

// (s, z) of a range by the observer's formula: Quamba's absmax form, the symmetric or the asymmetric one
static void range_params(const qtk_observer *o, float mn, float mx, int lo, int hi, float *s, float *z) {
    if (o->pct_abs) {
        *s = qtk_scale_absmax(mx, o->bits);
        *z = 0.0f;
    } else if (o->symmetric) {
        qtk_params_sym(mn, mx, lo, hi, s, z);
    } else {
        qtk_params_asym(mn, mx, lo, hi, s, z);
    }
}

qtk_status qtk_observer_params(const qtk_observer *o, const float *x_last, int ndim,
                               const int64_t *shape, qtk_qparams *out) {
    memset(out, 0, sizeof *out);
    if (o->n_updates == 0)
        return qtk_fail(QTK_ERR_ARG, "%s observer has seen no data: call qtk_observer_update first",
                        kind_names[o->kind]);
    int lo, hi;
    QTK_TRY(qtk_qrange(o->bits, o->is_signed, &lo, &hi));
    if (o->kind == QTK_OBS_PTF || o->kind == QTK_OBS_OMSE) {
        if (!x_last)
            return qtk_fail(QTK_ERR_ARG, "%s observer needs the last batch's tensor to score candidates",
                            kind_names[o->kind]);
        if (o->kind == QTK_OBS_PTF) return ptf_params(o, x_last, ndim, shape, lo, hi, out);
        int64_t n = qtk_numel(ndim, shape);
        if (n <= 0) return qtk_fail(QTK_ERR_ARG, "OMSE observer: empty last-batch tensor");
        QTK_TRY(qtk_qparams_init(out, o->bits, o->is_signed, false, QTK_PER_TENSOR, 0, 0, 1));
        qtk_omse_search(x_last, (size_t)n, o->min_val[0], o->max_val[0], lo, hi, &out->scale[0], &out->zero[0]);
        return QTK_OK;
    }
    size_t nc = o->channel_wise ? o->C : 1;
    QTK_TRY(qtk_qparams_init(out, o->bits, o->is_signed, o->symmetric || o->pct_abs,
                             o->channel_wise ? QTK_PER_CHANNEL : QTK_PER_TENSOR, o->channel_wise ? o->axis : 0,
                             0, nc));
    for (size_t c = 0; c < nc; c++) range_params(o, o->min_val[c], o->max_val[c], lo, hi, &out->scale[c], &out->zero[c]);
    return QTK_OK;
}

qtk_status qtk_observer_params_index(const qtk_observer *o, const int32_t *index, size_t len, size_t n_groups,
                                     qtk_qparams *out) {
    memset(out, 0, sizeof *out);
    if (o->kind != QTK_OBS_MINMAX || !o->channel_wise)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "index-mapped groups need a channel-wise min-max observer (the %s%s "
                        "observer's statistics of a group are not those of its channels)",
                        o->channel_wise ? "" : "per-tensor ", kind_names[o->kind]);
    if (o->n_updates == 0) return qtk_fail(QTK_ERR_ARG, "minmax observer has seen no data");
    if (len != o->C)
        return qtk_fail(QTK_ERR_ARG, "an index map of %zu positions for an observer of %zu channels", len, o->C);
    int lo, hi;
    QTK_TRY(qtk_qrange(o->bits, o->is_signed, &lo, &hi));
    QTK_TRY(qtk_qparams_init_index(out, o->bits, o->is_signed, o->symmetric, o->axis, index, len, n_groups));
    // a group's range is the union of its channels' ranges: the min of their minima, the max of their maxima
    float *mn = malloc(n_groups * sizeof *mn), *mx = malloc(n_groups * sizeof *mx);
    if (!mn || !mx) {
        free(mn), free(mx);
        qtk_qparams_free(out);
        return qtk_fail(QTK_ERR_NOMEM, "index-mapped groups: out of memory");
    }
    for (size_t g = 0; g < n_groups; g++) mn[g] = INFINITY, mx[g] = -INFINITY;
    for (size_t c = 0; c < len; c++) {
        mn[index[c]] = fminf(mn[index[c]], o->min_val[c]);
        mx[index[c]] = fmaxf(mx[index[c]], o->max_val[c]);
    }
    for (size_t g = 0; g < n_groups; g++) range_params(o, mn[g], mx[g], lo, hi, &out->scale[g], &out->zero[g]);
    free(mn), free(mx);
    return QTK_OK;
}

qtk_status qtk_observer_params_cuda(const qtk_observer *o, const float *d_x_last, int ndim, const int64_t *shape,
                                    qtk_qparams *out) {
    if (o->kind != QTK_OBS_PTF && o->kind != QTK_OBS_OMSE) return qtk_observer_params(o, NULL, ndim, shape, out);
    memset(out, 0, sizeof *out);
    if (o->n_updates == 0) return qtk_fail(QTK_ERR_ARG, "%s observer has seen no data", kind_names[o->kind]);
    int lo, hi;
    QTK_TRY(qtk_qrange(o->bits, o->is_signed, &lo, &hi));
    if (o->kind == QTK_OBS_PTF) {
        size_t outer;
        QTK_TRY(ptf_view(o, ndim, shape, &outer));
        float sk[4], z;
        ptf_candidates(o, lo, hi, sk, &z);
        double *acc = calloc(o->C * 4, sizeof *acc);
        if (!acc) return qtk_fail(QTK_ERR_NOMEM, "PTF observer: out of memory");
        qtk_status st = qtk_fake_quant_sse_channels_cuda(d_x_last, outer, o->C, sk, 4, z, lo, hi, acc);
        if (st == QTK_OK) st = ptf_pick(o, acc, outer, sk, z, out);
        free(acc);
        return st;
    }
    int64_t n = qtk_numel(ndim, shape);
    if (n <= 0) return qtk_fail(QTK_ERR_ARG, "OMSE observer: empty last-batch tensor");
    float sc[QTK_OMSE_CANDIDATES], zc[QTK_OMSE_CANDIDATES];
    double sse[QTK_OMSE_CANDIDATES];
    for (int i = 0; i < QTK_OMSE_CANDIDATES; i++) omse_candidate(o->min_val[0], o->max_val[0], lo, hi, i, &sc[i], &zc[i]);
    QTK_TRY(qtk_fake_quant_sse_multi_cuda(d_x_last, (size_t)n, sc, zc, QTK_OMSE_CANDIDATES, lo, hi, sse));
    QTK_TRY(qtk_qparams_init(out, o->bits, o->is_signed, false, QTK_PER_TENSOR, 0, 0, 1));
    omse_pick(sse, (size_t)n, o->min_val[0], o->max_val[0], lo, hi, &out->scale[0], &out->zero[0]);
    return QTK_OK;
}
