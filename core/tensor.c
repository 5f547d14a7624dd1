#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int bits;
} dtype_info[QTK_DTYPE_COUNT] = {
    [QTK_F32] = {"F32", 32}, [QTK_F16] = {"F16", 16}, [QTK_BF16] = {"BF16", 16},
    [QTK_I8] = {"I8", 8},    [QTK_U8] = {"U8", 8},    [QTK_I32] = {"I32", 32},
    [QTK_I64] = {"I64", 64}, [QTK_I4] = {"I4", 4},    [QTK_U4] = {"U4", 4},    [QTK_F64] = {"F64", 64},
};

const char *qtk_dtype_name(qtk_dtype dt) {
    return (unsigned)dt < QTK_DTYPE_COUNT ? dtype_info[dt].name : "?";
}

qtk_status qtk_dtype_from_name(const char *name, qtk_dtype *out) {
    for (int i = 0; i < QTK_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (qtk_dtype)i;
            return QTK_OK;
        }
    return qtk_fail(QTK_ERR_FORMAT,
                    "unknown dtype \"%s\" (expected F32, F16, BF16, F64, I8, U8, I32, I64, I4 or U4)",
                    name);
}

size_t qtk_dtype_nbytes(qtk_dtype dt, int64_t n) {
    if ((unsigned)dt >= QTK_DTYPE_COUNT || n < 0) return 0;
    int bits = dtype_info[dt].bits;
    return bits == 4 ? (size_t)(n + 1) / 2 : (size_t)n * (size_t)(bits / 8);
}

int qtk_dtype_is_float(qtk_dtype dt) { return dt == QTK_F32 || dt == QTK_F16 || dt == QTK_BF16 || dt == QTK_F64; }

int64_t qtk_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

qtk_status qtk_axis_view(int ndim, const int64_t *shape, int axis,
                         size_t *outer, size_t *len, size_t *inner) {
    if (ndim < 1 || ndim > QTK_MAX_DIMS)
        return qtk_fail(QTK_ERR_ARG, "tensor rank %d out of range 1..%d", ndim, QTK_MAX_DIMS);
    int a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim)
        return qtk_fail(QTK_ERR_ARG, "axis %d out of range for a rank-%d tensor", axis, ndim);
    if (qtk_numel(ndim, shape) < 0) {
        char buf[160];
        return qtk_fail(QTK_ERR_ARG, "invalid shape %s", qtk_shape_str(ndim, shape, buf, sizeof buf));
    }
    size_t o = 1, in = 1;
    for (int i = 0; i < a; i++) o *= (size_t)shape[i];
    for (int i = a + 1; i < ndim; i++) in *= (size_t)shape[i];
    *outer = o;
    *len = (size_t)shape[a];
    *inner = in;
    return QTK_OK;
}

void *qtk_aligned_alloc(size_t nbytes) {
    size_t n = (nbytes + QTK_ALIGN - 1) / QTK_ALIGN * QTK_ALIGN;
    if (n == 0) n = QTK_ALIGN;
    void *p = aligned_alloc(QTK_ALIGN, n);
    if (p) memset(p, 0, n);
    return p;
}

void qtk_aligned_free(void *p) { free(p); }

qtk_status qtk_tensor_alloc(qtk_tensor *t, qtk_dtype dt, int ndim, const int64_t *shape) {
    memset(t, 0, sizeof *t);
    if ((unsigned)dt >= QTK_DTYPE_COUNT) return qtk_fail(QTK_ERR_ARG, "invalid dtype %d", (int)dt);
    if (ndim < 0 || ndim > QTK_MAX_DIMS)
        return qtk_fail(QTK_ERR_ARG, "tensor rank %d out of range 0..%d", ndim, QTK_MAX_DIMS);
    int64_t n = qtk_numel(ndim, shape);
    if (n < 0) {
        char buf[160];
        return qtk_fail(QTK_ERR_ARG, "invalid shape %s", qtk_shape_str(ndim, shape, buf, sizeof buf));
    }
    size_t nbytes = qtk_dtype_nbytes(dt, n);
    void *p = qtk_aligned_alloc(nbytes);
    if (!p) return qtk_fail(QTK_ERR_NOMEM, "cannot allocate %zu bytes for a tensor", nbytes);
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = p;
    t->nbytes = nbytes;
    t->owns = 1;
    return QTK_OK;
}

void qtk_tensor_free(qtk_tensor *t) {
    if (t->owns) qtk_aligned_free(t->data);
    memset(t, 0, sizeof *t);
}

int64_t qtk_tensor_numel(const qtk_tensor *t) { return qtk_numel(t->ndim, t->shape); }

const char *qtk_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t qtk_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) // inf stays inf; NaN stays a quiet NaN with its top payload bits
        return sign | 0x7c00u | (ax > 0x7f800000u ? (uint16_t)(0x200u | ((ax >> 13) & 0x3ffu)) : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00u; // >= 65520 rounds to inf
    if (ax < 0x38800000u) {
        // below 2^-14: the half is subnormal (or zero); its code is |f|*2^24
        // rounded to nearest even, which the FPU does exactly (the scaling is exact)
        return sign | (uint16_t)rintf(bits_f32(ax) * 0x1p24f);
    }
    // normal: round the 13 dropped mantissa bits to nearest even, then rebias
    // the exponent from 127 to 15; a carry out of the mantissa bumps the exponent
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float qtk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * 0x1p-24f; // subnormal or zero, exact
        return sign ? -v : v;
    }
    // inf, or NaN made quiet (as F16C's vcvtph2ps and CUDA do)
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0u));
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t qtk_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); // quiet NaN
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float qtk_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

qtk_status qtk_convert_to_f32(qtk_dtype dt, const void *src, float *dst, size_t n) {
    switch (dt) {
    case QTK_F32: memmove(dst, src, n * 4); break;
    case QTK_F16:
        for (size_t i = 0; i < n; i++) dst[i] = qtk_f16_to_f32(((const uint16_t *)src)[i]);
        break;
    case QTK_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = qtk_bf16_to_f32(((const uint16_t *)src)[i]);
        break;
    case QTK_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const int8_t *)src)[i];
        break;
    case QTK_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)src)[i];
        break;
    case QTK_I32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i];
        break;
    case QTK_I64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const int64_t *)src)[i];
        break;
    case QTK_F64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const double *)src)[i];
        break;
    default:
        return qtk_fail(QTK_ERR_UNSUPPORTED, "cannot convert %s to F32 element-wise (use qtk_unpack_int4)",
                        qtk_dtype_name(dt));
    }
    return QTK_OK;
}

qtk_status qtk_convert_from_f32(const float *src, qtk_dtype dt, void *dst, size_t n) {
    switch (dt) {
    case QTK_F32: memmove(dst, src, n * 4); break;
    case QTK_F16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = qtk_f32_to_f16(src[i]);
        break;
    case QTK_BF16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = qtk_f32_to_bf16(src[i]);
        break;
    default:
        return qtk_fail(QTK_ERR_UNSUPPORTED, "cannot convert F32 to %s (quantize instead)", qtk_dtype_name(dt));
    }
    return QTK_OK;
}

double qtk_sum_chunked(size_t n, size_t par_min, double (*chunk)(const void *ctx, size_t lo, size_t hi), const void *ctx) {
    size_t nc = (n + QTK_SUM_CHUNK - 1) / QTK_SUM_CHUNK;
    double local[64], *part = nc <= 64 ? local : malloc(nc * sizeof *part);
    double acc = 0.0;
    if (!part) { // the same chunks in the same order, one thread
        for (size_t c = 0; c < nc; c++)
            acc += chunk(ctx, c * QTK_SUM_CHUNK, c + 1 < nc ? (c + 1) * QTK_SUM_CHUNK : n);
        return acc;
    }
#pragma omp parallel for schedule(static) if (n >= par_min)
    for (size_t c = 0; c < nc; c++) part[c] = chunk(ctx, c * QTK_SUM_CHUNK, c + 1 < nc ? (c + 1) * QTK_SUM_CHUNK : n);
    for (size_t c = 0; c < nc; c++) acc += part[c];
    if (part != local) free(part);
    return acc;
}
