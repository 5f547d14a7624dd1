#include "qparams.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

qtk_status qtk_qrange(int bits, bool is_signed, int *lo, int *hi) {
    if (bits < 2 || bits > 8)
        return qtk_fail(QTK_ERR_ARG, "bits = %d out of range (expected 2..8, or 16 for off)", bits);
    if (is_signed) {
        *lo = -(1 << (bits - 1));
        *hi = (1 << (bits - 1)) - 1;
    } else {
        *lo = 0;
        *hi = (1 << bits) - 1;
    }
    return QTK_OK;
}

qtk_status qtk_qparams_init(qtk_qparams *p, int bits, bool is_signed, bool symmetric,
                            qtk_granularity gran, int axis, int group_size, size_t n) {
    memset(p, 0, sizeof *p);
    int lo, hi;
    if (bits != QTK_BITS_OFF) QTK_TRY(qtk_qrange(bits, is_signed, &lo, &hi));
    if (gran == QTK_PER_INDEX)
        return qtk_fail(QTK_ERR_ARG, "index-mapped groups need their map: qtk_qparams_init_index");
    if (gran < QTK_PER_TENSOR || gran > QTK_PER_GROUP)
        return qtk_fail(QTK_ERR_ARG, "invalid granularity %d", (int)gran);
    if (gran == QTK_PER_TENSOR && n != 1)
        return qtk_fail(QTK_ERR_ARG, "per-tensor quantization has 1 scale, got %zu", n);
    if (gran == QTK_PER_GROUP && group_size < 1)
        return qtk_fail(QTK_ERR_ARG, "per-group quantization needs group_size >= 1, got %d", group_size);
    if (n == 0) return qtk_fail(QTK_ERR_ARG, "quant params need at least one scale");
    p->scale = qtk_aligned_alloc(n * sizeof(float));
    p->zero = qtk_aligned_alloc(n * sizeof(float));
    if (!p->scale || !p->zero) {
        qtk_qparams_free(p);
        return qtk_fail(QTK_ERR_NOMEM, "cannot allocate %zu quant params", n);
    }
    for (size_t i = 0; i < n; i++) p->scale[i] = 1.0f;
    p->bits = bits;
    p->is_signed = is_signed;
    p->symmetric = symmetric;
    p->gran = gran;
    p->axis = axis;
    p->group_size = group_size;
    p->formula = QTK_FQ_REF;
    p->n = n;
    return QTK_OK;
}

qtk_status qtk_qparams_init_index(qtk_qparams *p, int bits, bool is_signed, bool symmetric, int axis,
                                  const int32_t *index, size_t len, size_t n) {
    memset(p, 0, sizeof *p);
    if (n == 0 || len == 0 || n > len)
        return qtk_fail(QTK_ERR_ARG, "index-mapped groups: %zu groups over %zu positions (need 1 <= groups <= positions)",
                        n, len);
    if (!index) return qtk_fail(QTK_ERR_ARG, "index-mapped groups: no index map");
    // every group used: a pair no position uses could never be calibrated
    unsigned char *used = calloc(n, 1);
    if (!used) return qtk_fail(QTK_ERR_NOMEM, "index-mapped groups: out of memory");
    for (size_t c = 0; c < len; c++) {
        if (index[c] < 0 || (size_t)index[c] >= n) {
            free(used);
            return qtk_fail(QTK_ERR_ARG, "index-mapped groups: index[%zu] = %d is outside 0..%zu", c, (int)index[c], n - 1);
        }
        used[index[c]] = 1;
    }
    for (size_t g = 0; g < n; g++)
        if (!used[g]) {
            free(used);
            return qtk_fail(QTK_ERR_ARG, "index-mapped groups: group %zu of %zu has no position", g, n);
        }
    free(used);
    QTK_TRY(qtk_qparams_init(p, bits, is_signed, symmetric, QTK_PER_CHANNEL, axis, 0, n));
    if (!(p->index = qtk_aligned_alloc(len * sizeof *p->index))) {
        qtk_qparams_free(p);
        return qtk_fail(QTK_ERR_NOMEM, "cannot allocate an index map of %zu positions", len);
    }
    memcpy(p->index, index, len * sizeof *index);
    p->index_len = len;
    p->gran = QTK_PER_INDEX;
    return QTK_OK;
}

qtk_status qtk_qparams_init_slices(qtk_qparams *p, int bits, bool is_signed, bool symmetric, int axis,
                                   const size_t *sizes, size_t n_slices) {
    memset(p, 0, sizeof *p);
    size_t len = 0;
    for (size_t k = 0; k < n_slices; k++) {
        if (sizes[k] == 0 || sizes[k] > ((size_t)1 << 40) || len > ((size_t)1 << 40))
            return qtk_fail(QTK_ERR_ARG, "per-slice parameters: slice %zu has %zu positions", k, sizes[k]);
        len += sizes[k];
    }
    if (n_slices == 0) return qtk_fail(QTK_ERR_ARG, "per-slice parameters: no slices");
    int32_t *idx = malloc(len * sizeof *idx);
    if (!idx || n_slices > INT32_MAX) {
        free(idx);
        return qtk_fail(QTK_ERR_NOMEM, "per-slice parameters: cannot allocate a map of %zu positions", len);
    }
    for (size_t k = 0, c = 0; k < n_slices; k++)
        for (size_t i = 0; i < sizes[k]; i++) idx[c++] = (int32_t)k;
    qtk_status st = qtk_qparams_init_index(p, bits, is_signed, symmetric, axis, idx, len, n_slices);
    free(idx);
    return st;
}

void qtk_qparams_expand_index(const qtk_qparams *p, float *s, float *z) {
    for (size_t c = 0; c < p->index_len; c++) {
        s[c] = p->scale[p->index[c]];
        z[c] = p->zero[p->index[c]];
    }
}

qtk_status qtk_qparams_copy(qtk_qparams *dst, const qtk_qparams *src) {
    qtk_status st = src->gran == QTK_PER_INDEX
                        ? qtk_qparams_init_index(dst, src->bits, src->is_signed, src->symmetric, src->axis, src->index,
                                                 src->index_len, src->n)
                        : qtk_qparams_init(dst, src->bits, src->is_signed, src->symmetric, src->gran, src->axis,
                                           src->group_size, src->n);
    if (st != QTK_OK) return st;
    dst->formula = src->formula;
    memcpy(dst->scale, src->scale, src->n * sizeof *src->scale);
    memcpy(dst->zero, src->zero, src->n * sizeof *src->zero);
    return QTK_OK;
}

void qtk_qparams_free(qtk_qparams *p) {
    qtk_aligned_free(p->scale);
    qtk_aligned_free(p->zero);
    qtk_aligned_free(p->index);
    memset(p, 0, sizeof *p);
}

qtk_status qtk_qlayout_make(const qtk_qparams *p, int ndim, const int64_t *shape, qtk_qlayout *L) {
    memset(L, 0, sizeof *L);
    L->gran = p->gran;
    int64_t numel = qtk_numel(ndim, shape);
    if (numel < 0) {
        char buf[160];
        return qtk_fail(QTK_ERR_ARG, "invalid shape %s", qtk_shape_str(ndim, shape, buf, sizeof buf));
    }
    L->numel = (size_t)numel;
    if (p->gran == QTK_PER_TENSOR) {
        L->outer = L->len = L->inner = 1;
        L->nparams = 1;
    } else {
        QTK_TRY(qtk_axis_view(ndim, shape, p->axis, &L->outer, &L->len, &L->inner));
        if (p->gran == QTK_PER_CHANNEL) {
            L->nparams = L->len;
        } else if (p->gran == QTK_PER_INDEX) {
            if (p->index_len != L->len)
                return qtk_fail(QTK_ERR_ARG, "an index map of %zu positions on axis %d of length %zu", p->index_len,
                                p->axis, L->len);
            L->index = p->index;
            L->nparams = p->n;
        } else {
            L->group = (size_t)p->group_size;
            if (L->group == 0 || L->len % L->group != 0)
                return qtk_fail(QTK_ERR_ARG, "group size %d does not divide axis %d of length %zu",
                                p->group_size, p->axis, L->len);
            L->nparams = L->outer * (L->len / L->group) * L->inner;
        }
    }
    if (L->nparams != p->n) {
        char buf[160];
        return qtk_fail(QTK_ERR_ARG, "a tensor of shape %s needs %zu scales for this granularity, params have %zu",
                        qtk_shape_str(ndim, shape, buf, sizeof buf), L->nparams, p->n);
    }
    return QTK_OK;
}

void qtk_params_asym(float mn, float mx, int lo, int hi, float *s, float *z) {
    // scale = (max_val - min_val) / float(qmax - qmin)  (a reciprocal multiply on CUDA)
    float r = 1.0f / (float)(hi - lo);
    float sc = (mx - mn) * r;
    // scale.clamp_(self.eps)
    sc = fmaxf(sc, QTK_FLT_EPS);
    // zero_point = qmin - torch.round(min_val / scale); zero_point.clamp_(qmin, qmax)
    float zp = (float)lo - rintf(mn / sc);
    zp = fminf(fmaxf(zp, (float)lo), (float)hi);
    *s = sc;
    *z = zp;
}

void qtk_params_sym(float mn, float mx, int lo, int hi, float *s, float *z) {
    // max_val = torch.max(-min_val, max_val); scale = max_val / (float(qmax - qmin) / 2)
    float m = fmaxf(-mn, mx);
    float r = 1.0f / ((float)(hi - lo) / 2.0f);
    *s = fmaxf(m * r, QTK_FLT_EPS);
    *z = 0.0f;
}

float qtk_scale_absmax(float absmax, int bits) {
    // value / 127 on a CUDA tensor: a multiply by the float32 reciprocal
    float r = 1.0f / (float)((1 << (bits - 1)) - 1);
    return absmax * r;
}
