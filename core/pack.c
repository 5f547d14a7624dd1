#include "pack.h"

#include <math.h>
#include <string.h>

#include "scalar.h"

void qtk_pack_int4(const int8_t *vals, size_t n, uint8_t *packed) {
    for (size_t i = 0; i < n / 2; i++)
        packed[i] = (uint8_t)((vals[2 * i] & 0x0f) | ((vals[2 * i + 1] & 0x0f) << 4));
    if (n & 1) packed[n / 2] = (uint8_t)(vals[n - 1] & 0x0f);
}

void qtk_unpack_i4(const uint8_t *packed, size_t n, int8_t *vals) {
    for (size_t i = 0; i < n; i++) {
        int nib = (packed[i / 2] >> ((i & 1) * 4)) & 0x0f;
        vals[i] = (int8_t)(nib >= 8 ? nib - 16 : nib);
    }
}

void qtk_unpack_u4(const uint8_t *packed, size_t n, uint8_t *vals) {
    for (size_t i = 0; i < n; i++) vals[i] = (uint8_t)((packed[i / 2] >> ((i & 1) * 4)) & 0x0f);
}

qtk_status qtk_code_dtype_check(const qtk_qparams *p, qtk_dtype dt) {
    if (p->bits == QTK_BITS_OFF)
        return qtk_fail(QTK_ERR_ARG, "cannot store codes of a quantizer that is off (bits = 16)");
    int want_bits = (dt == QTK_I4 || dt == QTK_U4) ? 4 : 8;
    int want_signed = (dt == QTK_I8 || dt == QTK_I4);
    if (dt != QTK_I8 && dt != QTK_U8 && dt != QTK_I4 && dt != QTK_U4)
        return qtk_fail(QTK_ERR_ARG, "code dtype %s is not I8, U8, I4 or U4", qtk_dtype_name(dt));
    if (p->bits > want_bits || (int)p->is_signed != want_signed)
        return qtk_fail(QTK_ERR_ARG, "%d-bit %s codes do not fit %s", p->bits,
                        p->is_signed ? "signed" : "unsigned", qtk_dtype_name(dt));
    return QTK_OK;
}

// the grid point of fake quantization (NaN has no code: the lowest)
static inline int quantize_one(float x, float s, float z, int lo, int hi, qtk_fq_formula f) {
    return (int)qtk_fq_grid(x, s, z, (float)lo, (float)hi, f == QTK_FQ_TORCH);
}

qtk_status qtk_quantize(const qtk_qparams *p, const float *x, int ndim, const int64_t *shape,
                        qtk_dtype dt, void *codes) {
    qtk_qlayout L;
    QTK_TRY(qtk_qlayout_make(p, ndim, shape, &L));
    QTK_TRY(qtk_code_dtype_check(p, dt));
    int lo, hi;
    QTK_TRY(qtk_qrange(p->bits, p->is_signed, &lo, &hi));
    if (dt == QTK_I4 || dt == QTK_U4) memset(codes, 0, (L.numel + 1) / 2);
#pragma omp parallel for schedule(static) if (L.numel >= 65536)
    for (size_t e2 = 0; e2 < (L.numel + 1) / 2; e2++) {
        // two elements per iteration so a packed byte is written by one thread
        for (size_t e = 2 * e2; e < 2 * e2 + 2 && e < L.numel; e++) {
            size_t k = qtk_qlayout_index(&L, e);
            int q = quantize_one(x[e], p->scale[k], p->zero[k], lo, hi, p->formula);
            switch (dt) {
            case QTK_I8: ((int8_t *)codes)[e] = (int8_t)q; break;
            case QTK_U8: ((uint8_t *)codes)[e] = (uint8_t)q; break;
            default: ((uint8_t *)codes)[e / 2] |= (uint8_t)((q & 0x0f) << ((e & 1) * 4)); break;
            }
        }
    }
    return QTK_OK;
}

qtk_status qtk_dequantize(const qtk_qparams *p, const void *codes, qtk_dtype dt,
                          int ndim, const int64_t *shape, float *y) {
    qtk_qlayout L;
    QTK_TRY(qtk_qlayout_make(p, ndim, shape, &L));
    QTK_TRY(qtk_code_dtype_check(p, dt));
    const uint8_t *b = codes;
#pragma omp parallel for schedule(static) if (L.numel >= 65536)
    for (size_t e = 0; e < L.numel; e++) {
        int q;
        switch (dt) {
        case QTK_I8: q = ((const int8_t *)codes)[e]; break;
        case QTK_U8: q = b[e]; break;
        case QTK_I4: {
            int nib = (b[e / 2] >> ((e & 1) * 4)) & 0x0f;
            q = nib >= 8 ? nib - 16 : nib;
            break;
        }
        default: q = (b[e / 2] >> ((e & 1) * 4)) & 0x0f; break;
        }
        size_t k = qtk_qlayout_index(&L, e);
        // torch form: (q_int - z) is integer arithmetic, then times the scale
        y[e] = ((float)q - p->zero[k]) * p->scale[k];
    }
    return QTK_OK;
}
