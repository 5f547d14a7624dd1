#include "qparams.h"

#include <math.h>
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

void qtk_qparams_free(qtk_qparams *p) {
    qtk_aligned_free(p->scale);
    qtk_aligned_free(p->zero);
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
