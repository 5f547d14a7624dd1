#include "fakequant.h"
#include "tensor.h"

#include <stdlib.h>
#include <string.h>

// Below this many elements a parallel region costs more than it saves.
#define QTK_FQ_PAR_MIN 32768

qtk_status qtk_fake_quant_ref(const qtk_qparams *p, const float *x, float *y,
                              int ndim, const int64_t *shape) {
    qtk_qlayout L;
    QTK_TRY(qtk_qlayout_make(p, ndim, shape, &L));
    if (p->bits == QTK_BITS_OFF) {
        memmove(y, x, L.numel * sizeof *x);
        return QTK_OK;
    }
    int lo, hi;
    QTK_TRY(qtk_qrange(p->bits, p->is_signed, &lo, &hi));
    for (size_t e = 0; e < L.numel; e++) {
        size_t k = qtk_qlayout_index(&L, e);
        y[e] = qtk_fake_quant_scalar(x[e], p->scale[k], p->zero[k], lo, hi, p->formula);
    }
    return QTK_OK;
}

// The fast element kernel: the reference's operation order, with rintf
// replaced by adding and subtracting 1.5*2^23, which rounds to the nearest
// integer, ties to even, for |v| <= 2^22 in the default rounding mode and,
// unlike rintf, vectorizes on baseline x86-64. Larger |v| may be off by the
// rounding of the add, but such values lie far outside [lo, hi] and are
// clamped the same. copysignf restores rintf's sign of zero (round(-0.1) is
// -0.0, which survives to the output when z == 0). Exactness against the
// scalar reference is tested in tests/test_fakequant.c.
#define QTK_RNE_MAGIC 12582912.0f
static inline float fq_fast(float x, float s, float inv, float z, float lo, float hi, int torch) {
    float v = torch ? x * inv : x / s + z;
    float q = copysignf((v + QTK_RNE_MAGIC) - QTK_RNE_MAGIC, v);
    if (torch) q = q + z;
    q = q < lo ? lo : q;
    q = q > hi ? hi : q;
    return (q - z) * s;
}

static void fq_span(const float *restrict x, float *restrict y, size_t n, float s, float z,
                    float lo, float hi, qtk_fq_formula f) {
    float inv = 1.0f / s;
    if (f == QTK_FQ_TORCH) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = fq_fast(x[i], s, inv, z, lo, hi, 1);
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = fq_fast(x[i], s, inv, z, lo, hi, 0);
    }
}

// In-place use (y == x) is allowed, so fq_span's restrict is honoured only
// because each element is read once before its own write.
void qtk_fake_quant_per_tensor(const float *x, float *y, size_t n, float s, float z,
                               int lo, int hi, qtk_fq_formula f) {
    const size_t chunk = 16384;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n >= QTK_FQ_PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        size_t b = c * chunk, e = b + chunk < n ? b + chunk : n;
        fq_span(x + b, y + b, e - b, s, z, (float)lo, (float)hi, f);
    }
}

// One row of channels-last data: channel c uses s[c], z[c]. restrict lets
// the compiler keep s and z in registers across the stores to y; in-place
// calls (y == x) are safe because each element is read before its own write.
static void fq_row_channels(const float *restrict x, float *restrict y, size_t C, const float *restrict s,
                            const float *restrict z, float lo, float hi, int torch) {
    if (torch) {
#pragma omp simd
        for (size_t c = 0; c < C; c++) y[c] = fq_fast(x[c], s[c], 1.0f / s[c], z[c], lo, hi, 1);
    } else {
#pragma omp simd
        for (size_t c = 0; c < C; c++) y[c] = fq_fast(x[c], s[c], 0.0f, z[c], lo, hi, 0);
    }
}

void qtk_fake_quant_per_channel(const float *x, float *y, size_t outer, size_t C, size_t inner,
                                const float *s, const float *z, int lo, int hi, qtk_fq_formula f) {
    size_t n = outer * C * inner;
    float flo = (float)lo, fhi = (float)hi;
    if (inner == 1) {
        // channels on the last axis (activations [tokens, C]): vectorize across channels
        int torch = f == QTK_FQ_TORCH;
#pragma omp parallel for schedule(static) if (n >= QTK_FQ_PAR_MIN)
        for (size_t o = 0; o < outer; o++) fq_row_channels(x + o * C, y + o * C, C, s, z, flo, fhi, torch);
        return;
    }
    // rows of `inner` contiguous values share one (s, z): weights [O, K], NCHW maps
#pragma omp parallel for schedule(static) if (n >= QTK_FQ_PAR_MIN)
    for (size_t r = 0; r < outer * C; r++) {
        size_t c = r % C;
        fq_span(x + r * inner, y + r * inner, inner, s[c], z[c], flo, fhi, f);
    }
}

void qtk_fake_quant_per_group(const float *x, float *y, size_t outer, size_t L, size_t inner,
                              size_t g, const float *s, const float *z, int lo, int hi,
                              qtk_fq_formula f) {
    size_t ng = L / g, n = outer * L * inner;
    float flo = (float)lo, fhi = (float)hi;
    if (inner == 1) {
        // groups along the last axis (weights [O, K], groups of g along K)
#pragma omp parallel for schedule(static) if (n >= QTK_FQ_PAR_MIN)
        for (size_t r = 0; r < outer * ng; r++)
            fq_span(x + r * g, y + r * g, g, s[r], z[r], flo, fhi, f);
        return;
    }
#pragma omp parallel for schedule(static) if (n >= QTK_FQ_PAR_MIN)
    for (size_t o = 0; o < outer; o++)
        for (size_t l = 0; l < L; l++) {
            const float *sp = s + (o * ng + l / g) * inner, *zp = z + (o * ng + l / g) * inner;
            const float *xr = x + (o * L + l) * inner;
            float *yr = y + (o * L + l) * inner;
            for (size_t i = 0; i < inner; i++)
                yr[i] = qtk_fake_quant_scalar(xr[i], sp[i], zp[i], lo, hi, f);
        }
}

typedef struct {
    const float *x;
    float s, z, lo, hi;
} sse_ctx;

static double sse_chunk(const void *ctx, size_t a, size_t b) {
    const sse_ctx *c = ctx;
    const float *restrict x = c->x + a;
    const float s = c->s, z = c->z, lo = c->lo, hi = c->hi;
    const size_t n = b - a;
    double acc = 0.0;
    // each square is a float32 product, as |x - x_q|^2 in the reference, summed in double (vectorized: the
    // lanes' order is fixed by the build, not by the thread count)
#pragma omp simd reduction(+ : acc)
    for (size_t i = 0; i < n; i++) {
        float d = x[i] - fq_fast(x[i], s, 0.0f, z, lo, hi, 0);
        acc += (double)(d * d);
    }
    return acc;
}

double qtk_fake_quant_sse(const float *x, size_t n, float s, float z, int lo, int hi) {
    sse_ctx c = {x, s, z, (float)lo, (float)hi};
    return qtk_sum_chunked(n, QTK_FQ_PAR_MIN, sse_chunk, &c);
}

void qtk_fake_quant_sse_multi(const float *x, size_t n, const float *s, const float *z, int k, int lo, int hi,
                              double *sse) {
    // the chunks and their order of qtk_sum_chunked, per candidate
    const size_t nc = (n + QTK_SUM_CHUNK - 1) / QTK_SUM_CHUNK, tasks = nc * (size_t)k;
    double *part = tasks <= ((size_t)1 << 20) ? malloc(tasks * sizeof *part) : NULL;
    if (!part) { // too many partial sums to hold (or no memory): one candidate at a time, the same bits
        for (int j = 0; j < k; j++) sse[j] = qtk_fake_quant_sse(x, n, s[j], z[j], lo, hi);
        return;
    }
#pragma omp parallel for schedule(static) if (n * (size_t)k >= QTK_FQ_PAR_MIN)
    for (size_t t = 0; t < tasks; t++) {
        const size_t j = t / nc, c = t % nc;
        const sse_ctx cx = {x, s[j], z[j], (float)lo, (float)hi};
        part[t] = sse_chunk(&cx, c * QTK_SUM_CHUNK, c + 1 < nc ? (c + 1) * QTK_SUM_CHUNK : n);
    }
    for (int j = 0; j < k; j++) {
        double acc = 0.0;
        for (size_t c = 0; c < nc; c++) acc += part[(size_t)j * nc + c];
        sse[j] = acc;
    }
    free(part);
}

qtk_status qtk_fake_quant(const qtk_qparams *p, const float *x, float *y, int ndim,
                          const int64_t *shape) {
    qtk_qlayout L;
    QTK_TRY(qtk_qlayout_make(p, ndim, shape, &L));
    if (p->bits == QTK_BITS_OFF) {
        if (y != x) memmove(y, x, L.numel * sizeof *x);
        return QTK_OK;
    }
    int lo, hi;
    QTK_TRY(qtk_qrange(p->bits, p->is_signed, &lo, &hi));
    switch (p->gran) {
    case QTK_PER_TENSOR:
        qtk_fake_quant_per_tensor(x, y, L.numel, p->scale[0], p->zero[0], lo, hi, p->formula);
        break;
    case QTK_PER_CHANNEL:
        qtk_fake_quant_per_channel(x, y, L.outer, L.len, L.inner, p->scale, p->zero, lo, hi, p->formula);
        break;
    case QTK_PER_GROUP:
        qtk_fake_quant_per_group(x, y, L.outer, L.len, L.inner, L.group, p->scale, p->zero, lo, hi,
                                 p->formula);
        break;
    case QTK_PER_INDEX: {
        // the map spelled out per channel: then it is the per-channel kernel, element for element
        float *s = malloc(L.len * sizeof *s), *z = malloc(L.len * sizeof *z);
        if (!s || !z) {
            free(s), free(z);
            return qtk_fail(QTK_ERR_NOMEM, "fake quantization: %zu index-mapped channels: out of memory", L.len);
        }
        qtk_qparams_expand_index(p, s, z);
        qtk_fake_quant_per_channel(x, y, L.outer, L.len, L.inner, s, z, lo, hi, p->formula);
        free(s), free(z);
        break;
    }
    }
    return QTK_OK;
}
