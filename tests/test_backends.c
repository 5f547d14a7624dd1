// Every CPU/GPU twin of core/ as one row of a table: a name, the check its outputs must pass (BITWISE:
// the same bits, NaN equal to NaN; ULP(n): at most n units in the last place apart; NMSE(eps): normalized
// mean squared error at most eps) and a function that runs both backends on seeded inputs (with -0, +-Inf
// and NaN where the op defines them) and hands back the two outputs. A new kernel gets its cross-backend
// test by adding one row. Without a GPU each row is a SKIP, counted apart from passes (tests/run.sh).
#include "testutil.h"

typedef enum { BITWISE, ULP, NMSE } check_kind;
typedef enum { F32, F64, BYTES } elem_kind;

// the two outputs of one row, host memory; the row allocates, the runner frees
typedef struct {
    void *cpu, *gpu;
    size_t n; // elements
    elem_kind kind;
} outputs;

typedef struct {
    const char *name;
    check_kind check;
    double tol; // ULP: units; NMSE: the bound
    void (*run)(qtk_rng *r, outputs *o);
} backend_case;

static int have_gpu;

// --- helpers ----------------------------------------------------------------------------------

static void *dev_alloc(size_t bytes) {
    void *d = NULL;
    ck_qtk(qtk_cuda_malloc(&d, bytes ? bytes : 1));
    return d;
}

static void *dev_copy(const void *h, size_t bytes) {
    void *d = dev_alloc(bytes);
    ck_qtk(qtk_cuda_memcpy_h2d(d, h, bytes));
    return d;
}

static void out_alloc(outputs *o, size_t n, elem_kind k) {
    size_t e = k == F32 ? 4 : k == F64 ? 8 : 1;
    o->cpu = calloc(n ? n : 1, e);
    o->gpu = calloc(n ? n : 1, e);
    o->n = n;
    o->kind = k;
}

static void fill(qtk_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(r, lo, hi);
}

// -0, +Inf, -Inf and NaN at fixed places
static void specials(float *x, size_t n) {
    const float v[4] = {-0.0f, INFINITY, -INFINITY, NAN};
    for (int k = 0; k < 4 && (size_t)k * 97 + 3 < n; k++) x[(size_t)k * 97 + 3] = v[k];
}

// --- fake quantization: every width, signedness, formula, granularity ---------------------------

static void fake_quant_rows(qtk_rng *r, outputs *o, qtk_granularity g, int axis, int group) {
    const int64_t shape[3] = {8, 192, 130};
    const size_t n = 8 * 192 * 130, combos = 7 * 2 * 2;
    out_alloc(o, n * combos, F32);
    float *x = malloc(n * 4), *dx, *dy;
    size_t outer, L, inner;
    ck_qtk(qtk_axis_view(3, shape, axis, &outer, &L, &inner));
    const size_t np = g == QTK_PER_TENSOR ? 1 : g == QTK_PER_CHANNEL ? L : outer * (L / group) * inner;
    ck_qtk(qtk_cuda_malloc((void **)&dy, n * 4));
    size_t at = 0;
    for (int bits = 2; bits <= 8; bits++)
        for (int sg = 0; sg < 2; sg++)
            for (int f = 0; f < 2; f++, at += n) {
                qtk_qparams p;
                ck_qtk(qtk_qparams_init(&p, bits, sg, false, g, axis, group, np));
                p.formula = (qtk_fq_formula)f;
                int lo, hi;
                ck_qtk(qtk_qrange(bits, sg, &lo, &hi));
                for (size_t k = 0; k < np; k++) {
                    p.scale[k] = qtk_rng_range(r, 1e-3f, 0.5f);
                    p.zero[k] = (float)(lo + (int)qtk_rng_below(r, (uint32_t)(hi - lo + 1)));
                }
                fill(r, x, n, -40.0f, 40.0f);
                specials(x, n);
                ck_qtk(qtk_fake_quant_ref(&p, x, (float *)o->cpu + at, 3, shape));
                dx = dev_copy(x, n * 4);
                float *ds = dev_copy(p.scale, np * 4), *dz = dev_copy(p.zero, np * 4);
                if (g == QTK_PER_TENSOR) ck_qtk(qtk_fake_quant_per_tensor_cuda(dx, dy, n, p.scale[0], p.zero[0], lo, hi, p.formula));
                else if (g == QTK_PER_CHANNEL) ck_qtk(qtk_fake_quant_per_channel_cuda(dx, dy, outer, L, inner, ds, dz, lo, hi, p.formula));
                else ck_qtk(qtk_fake_quant_per_group_cuda(dx, dy, outer, L, inner, (size_t)group, ds, dz, lo, hi, p.formula));
                ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dy, n * 4));
                qtk_cuda_free(dx), qtk_cuda_free(ds), qtk_cuda_free(dz);
                qtk_qparams_free(&p);
            }
    qtk_cuda_free(dy);
    free(x);
}
static void fq_tensor(qtk_rng *r, outputs *o) { fake_quant_rows(r, o, QTK_PER_TENSOR, 0, 0); }
static void fq_channel_mid(qtk_rng *r, outputs *o) { fake_quant_rows(r, o, QTK_PER_CHANNEL, 1, 0); }
static void fq_channel_last(qtk_rng *r, outputs *o) { fake_quant_rows(r, o, QTK_PER_CHANNEL, 2, 0); }
static void fq_group(qtk_rng *r, outputs *o) { fake_quant_rows(r, o, QTK_PER_GROUP, 1, 64); }

// qtk_fake_quant_cuda, the dispatcher over a qtk_qparams, on every granularity, index-mapped groups (a map
// along the middle and the last axis) and per-slice parameters included
static void fq_dispatch(qtk_rng *r, outputs *o) {
    const int64_t shape[3] = {6, 48, 70};
    const size_t n = 6 * 48 * 70;
    enum { RUNS = 6 };
    out_alloc(o, n * RUNS * 2, F32);
    float *x = malloc(n * 4), *dx, *dy;
    ck_qtk(qtk_cuda_malloc((void **)&dy, n * 4));
    int32_t map[70];
    const size_t slices[3] = {10, 30, 8};
    for (int run = 0; run < RUNS * 2; run++) {
        const int kind = run % RUNS, f = run / RUNS;
        qtk_qparams p;
        if (kind < 3) {
            const qtk_granularity g[3] = {QTK_PER_TENSOR, QTK_PER_CHANNEL, QTK_PER_GROUP};
            ck_qtk(qtk_qparams_init(&p, 5, f, false, g[kind], 2, 7, kind == 0 ? 1 : kind == 1 ? 70 : 6 * 48 * 10));
        } else if (kind < 5) {
            const int axis = kind == 3 ? 1 : 2, len = (int)shape[axis], groups = 9;
            for (int c = 0; c < len; c++) map[c] = c < groups ? c : (int32_t)qtk_rng_below(r, groups);
            ck_qtk(qtk_qparams_init_index(&p, 5, f, false, axis, map, (size_t)len, groups));
        } else {
            ck_qtk(qtk_qparams_init_slices(&p, 5, f, false, 1, slices, 3));
        }
        p.formula = f ? QTK_FQ_TORCH : QTK_FQ_REF;
        int lo, hi;
        ck_qtk(qtk_qrange(5, f, &lo, &hi));
        for (size_t k = 0; k < p.n; k++) {
            p.scale[k] = qtk_rng_range(r, 1e-3f, 0.5f);
            p.zero[k] = (float)(lo + (int)qtk_rng_below(r, (uint32_t)(hi - lo + 1)));
        }
        fill(r, x, n, -9.0f, 9.0f);
        specials(x, n);
        ck_qtk(qtk_fake_quant_ref(&p, x, (float *)o->cpu + run * n, 3, shape));
        dx = dev_copy(x, n * 4);
        ck_qtk(qtk_fake_quant_cuda(&p, dx, dy, 3, shape));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + run * n, dy, n * 4));
        qtk_cuda_free(dx);
        qtk_qparams_free(&p);
    }
    qtk_cuda_free(dy);
    free(x);
}

// --- observers ------------------------------------------------------------------------------

// per-channel min / max of (outer, C) and of the whole tensor; NaN skipped, infinities kept
static void minmax(qtk_rng *r, outputs *o) {
    const size_t outer = 3000, C = 96, n = outer * C;
    float *x = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(r, -3.0f, 3.0f) * (1.0f + (float)(i % C) / 8.0f);
    specials(x, n);
    out_alloc(o, 2 * C + 2, F32);
    float *c = o->cpu, *g = o->gpu, *dx = dev_copy(x, n * 4);
    ck_qtk(qtk_channel_minmax(x, outer, C, 1, c, c + C));
    ck_qtk(qtk_channel_minmax_cuda(dx, outer, C, 1, g, g + C));
    ck_qtk(qtk_channel_minmax(x, 1, 1, n, c + 2 * C, c + 2 * C + 1));
    ck_qtk(qtk_channel_minmax_cuda(dx, 1, 1, n, g + 2 * C, g + 2 * C + 1));
    qtk_cuda_free(dx);
    free(x);
}

// OMSE's error sums of 90 candidates: double sums in another order
static void sse_multi(qtk_rng *r, outputs *o) {
    const size_t n = 288000;
    const int K = 90;
    float *x = malloc(n * 4), s[90], z[90];
    fill(r, x, n, -3.0f, 3.0f);
    for (int j = 0; j < K; j++) s[j] = 0.005f + 0.0005f * (float)j, z[j] = (float)(64 + j);
    out_alloc(o, K, F64);
    float *dx = dev_copy(x, n * 4);
    qtk_fake_quant_sse_multi(x, n, s, z, K, 0, 255, o->cpu);
    ck_qtk(qtk_fake_quant_sse_multi_cuda(dx, n, s, z, K, 0, 255, o->gpu));
    qtk_cuda_free(dx);
    free(x);
}

// OMSE and PTF parameters chosen from GPU-scored candidates: scales then zero points
static void omse_ptf_params(qtk_rng *r, outputs *o) {
    const size_t outer = 3000, C = 96, n = outer * C;
    float *x = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(r, -3.0f, 3.0f) * (1.0f + (float)(i % C) / 8.0f);
    x[5 * C + 3] = 40.0f;
    float *dx = dev_copy(x, n * 4);
    out_alloc(o, 2 + 2 * C, F32);
    float *c = o->cpu, *g = o->gpu;
    qtk_observer om, pt;
    ck_qtk(qtk_observer_init(&om, QTK_OBS_OMSE, 8, false, false, 0));
    ck_qtk(qtk_observer_init(&pt, QTK_OBS_PTF, 8, false, true, -1));
    int64_t shape[2] = {(int64_t)outer, (int64_t)C};
    ck_qtk(qtk_observer_update(&om, x, 2, shape));
    ck_qtk(qtk_observer_update(&pt, x, 2, shape));
    qtk_qparams a, b;
    ck_qtk(qtk_observer_params(&om, x, 2, shape, &a));
    ck_qtk(qtk_observer_params_cuda(&om, dx, 2, shape, &b));
    c[0] = a.scale[0], c[1] = a.zero[0], g[0] = b.scale[0], g[1] = b.zero[0];
    qtk_qparams_free(&a), qtk_qparams_free(&b);
    ck_qtk(qtk_observer_params(&pt, x, 2, shape, &a));
    ck_qtk(qtk_observer_params_cuda(&pt, dx, 2, shape, &b));
    ck_assert_uint_eq(a.n, C);
    ck_assert_uint_eq(b.n, C);
    memcpy(c + 2, a.scale, C * 4), memcpy(c + 2 + C, a.zero, C * 4);
    memcpy(g + 2, b.scale, C * 4), memcpy(g + 2 + C, b.zero, C * 4);
    qtk_qparams_free(&a), qtk_qparams_free(&b);
    qtk_observer_free(&om), qtk_observer_free(&pt);
    qtk_cuda_free(dx);
    free(x);
}

// the percentile observers' quantiles of x and of |x|
static void quantiles(qtk_rng *r, outputs *o) {
    const size_t n = 2160;
    const float qs[4] = {0.99999f, 0.00001f, 0.5f, 0.9f};
    float *x = malloc(n * 4), *v = malloc(n * 4);
    fill(r, x, n, -3.0f, 3.0f);
    x[7] = -0.0f;
    out_alloc(o, 8, F32);
    float *c = o->cpu, *g = o->gpu, *dx = dev_copy(x, n * 4);
    ck_qtk(qtk_quantiles_cuda(dx, n, 0, qs, 4, g));
    ck_qtk(qtk_quantiles_cuda(dx, n, 1, qs, 4, g + 4));
    for (int j = 0; j < 4; j++) {
        memcpy(v, x, n * 4);
        c[j] = qtk_quantile_inplace(v, n, qs[j]);
        for (size_t i = 0; i < n; i++) v[i] = fabsf(x[i]);
        c[4 + j] = qtk_quantile_inplace(v, n, qs[j]);
    }
    qtk_cuda_free(dx);
    free(x), free(v);
}

// --- Hadamard, bias correction, integer weights, real quantization ------------------------------

static void hadamard(qtk_rng *r, outputs *o) {
    const size_t sizes[] = {64, 96, 80, 56, 640, 4096, 12}, rows = 37;
    size_t total = 0;
    for (size_t t = 0; t < 7; t++) total += rows * sizes[t];
    out_alloc(o, total, F32);
    size_t at = 0;
    for (size_t t = 0; t < 7; t++) {
        const size_t len = rows * sizes[t];
        float *c = (float *)o->cpu + at;
        fill(r, c, len, -5.0f, 5.0f);
        specials(c, len);
        float *dx = dev_copy(c, len * 4);
        ck_qtk(qtk_hadamard_rows(c, rows, sizes[t]));
        ck_qtk(qtk_hadamard_rows_cuda(dx, rows, sizes[t]));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dx, len * 4));
        qtk_cuda_free(dx);
        at += len;
    }
    float *d = dev_alloc(14 * 4);
    ck_assert_int_eq(qtk_hadamard_rows_cuda(d, 1, 14), QTK_ERR_ARG); // 14 has no Hadamard matrix
    qtk_cuda_free(d);
}

static void bias_correct(qtk_rng *r, outputs *o) {
    const size_t O = 50, K = 384;
    float *w = malloc(O * K * 4);
    out_alloc(o, O * K, F32);
    float *wq = o->cpu;
    for (size_t i = 0; i < O * K; i++) {
        w[i] = qtk_rng_range(r, -0.1f, 0.1f);
        wq[i] = rintf(w[i] / 0.013f) * 0.013f;
    }
    float *dw = dev_copy(w, O * K * 4), *dq = dev_copy(wq, O * K * 4);
    qtk_bias_correct(w, wq, O, K);
    ck_qtk(qtk_bias_correct_cuda(dw, dq, O, K));
    ck_qtk(qtk_cuda_memcpy_d2h(o->gpu, dq, O * K * 4));
    qtk_cuda_free(dw), qtk_cuda_free(dq);
    free(w);
}

// qtk_weight_affine: the int8 codes and integer row sums (bytes), for 4- and 8-bit grids, both formulas,
// with and without bias correction; its double alpha / gamma in the next row
enum { WA_O = 40, WA_K = 300, WA_LDC = 304, WA_RUNS = 8 };
static void weight_affine_run(qtk_rng *r, outputs *codes, outputs *stats) {
    float *w = malloc(WA_O * WA_K * 4), sz[2 * WA_O];
    for (size_t i = 0; i < WA_O * WA_K; i++) w[i] = qtk_rng_range(r, -0.1f, 0.1f) * (float)(1 + i % 7);
    specials(w, WA_O * WA_K);
    for (size_t i = 0; i < WA_O * WA_K; i++) w[i] = isfinite(w[i]) ? w[i] : 0.0f; // weights are finite (checked at load)
    for (size_t q = 0; q < WA_O; q++) sz[q] = 0.011f + 0.001f * (float)q, sz[WA_O + q] = (float)(q % 16);
    const size_t per = WA_O * WA_LDC + WA_O * 4;
    if (codes) out_alloc(codes, per * WA_RUNS, BYTES);
    if (stats) out_alloc(stats, 2 * WA_O * WA_RUNS, F64);
    float *dw = dev_copy(w, WA_O * WA_K * 4), *dsz = dev_copy(sz, sizeof sz);
    int8_t *dc;
    double *dd;
    int32_t *db;
    ck_qtk(qtk_cuda_malloc((void **)&dc, WA_O * WA_LDC));
    ck_qtk(qtk_cuda_malloc((void **)&dd, 2 * WA_O * 8));
    ck_qtk(qtk_cuda_malloc((void **)&db, WA_O * 4));
    int run = 0;
    for (int hi = 15; hi <= 255; hi += 240)
        for (int f = 0; f < 2; f++)
            for (int bc = 0; bc < 2; bc++, run++) {
                qtk_fq_formula fm = f ? QTK_FQ_TORCH : QTK_FQ_REF;
                int8_t c1[WA_O * WA_LDC];
                int32_t b1[WA_O];
                double a1[WA_O], g1[WA_O];
                memset(c1, 0, sizeof c1);
                ck_qtk(qtk_cuda_memcpy_h2d(dc, c1, sizeof c1));
                ck_qtk(qtk_weight_affine(w, WA_O, WA_K, sz, sz + WA_O, 0, hi, fm, bc, c1, WA_LDC, a1, g1, b1));
                ck_qtk(qtk_weight_affine_cuda(dw, WA_O, WA_K, dsz, dsz + WA_O, 0, hi, fm, bc, dc, WA_LDC, dd, dd + WA_O, db));
                if (codes) {
                    uint8_t *c = (uint8_t *)codes->cpu + run * per, *g = (uint8_t *)codes->gpu + run * per;
                    memcpy(c, c1, sizeof c1), memcpy(c + sizeof c1, b1, sizeof b1);
                    ck_qtk(qtk_cuda_memcpy_d2h(g, dc, sizeof c1));
                    ck_qtk(qtk_cuda_memcpy_d2h(g + sizeof c1, db, sizeof b1));
                }
                if (stats) {
                    double *c = (double *)stats->cpu + run * 2 * WA_O, *g = (double *)stats->gpu + run * 2 * WA_O;
                    memcpy(c, a1, sizeof a1), memcpy(c + WA_O, g1, sizeof g1);
                    ck_qtk(qtk_cuda_memcpy_d2h(g, dd, 2 * WA_O * 8));
                }
            }
    ck_assert_int_eq(qtk_weight_affine_cuda(dw, WA_O, WA_K, dsz, dsz + WA_O, -129, 15, QTK_FQ_REF, 1, dc, WA_LDC, dd, dd + WA_O, db),
                     QTK_ERR_ARG);
    qtk_cuda_free(dw), qtk_cuda_free(dsz), qtk_cuda_free(dc), qtk_cuda_free(dd), qtk_cuda_free(db);
    free(w);
}
static void weight_affine_codes(qtk_rng *r, outputs *o) { weight_affine_run(r, o, NULL); }
static void weight_affine_stats(qtk_rng *r, outputs *o) { weight_affine_run(r, NULL, o); }

// qtk_quantize / qtk_dequantize: every code dtype and granularity, both formulas; codes then values
static void quantize(qtk_rng *r, outputs *o, int codes) {
    const int64_t shape[3] = {6, 40, 9};
    const size_t n = 6 * 40 * 9;
    const struct {
        qtk_dtype dt;
        int bits, sg;
    } kinds[] = {{QTK_I8, 8, 1}, {QTK_U8, 8, 0}, {QTK_I4, 4, 1}, {QTK_U4, 3, 0}};
    const struct {
        qtk_granularity g;
        int axis, group;
        size_t np;
    } grans[] = {{QTK_PER_TENSOR, 0, 0, 1}, {QTK_PER_CHANNEL, 1, 0, 40}, {QTK_PER_GROUP, 1, 8, 6 * 5 * 9},
                 {QTK_PER_INDEX, 1, 0, 5}};
    int32_t map[40];
    for (int c = 0; c < 40; c++) map[c] = (c * 3) % 5;
    out_alloc(o, 32 * n * (codes ? 1 : 4), codes ? BYTES : F32);
    float *x = malloc(n * 4), *dx, *dy;
    uint8_t *c1 = malloc(n), *dc;
    ck_qtk(qtk_cuda_malloc((void **)&dy, n * 4));
    ck_qtk(qtk_cuda_malloc((void **)&dc, n));
    int run = 0;
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++)
            for (int f = 0; f < 2; f++, run++) {
                fill(r, x, n, -3.0f, 3.0f);
                specials(x, n);
                dx = dev_copy(x, n * 4);
                qtk_qparams p;
                if (grans[b].g == QTK_PER_INDEX)
                    ck_qtk(qtk_qparams_init_index(&p, kinds[a].bits, kinds[a].sg, false, 1, map, 40, grans[b].np));
                else
                    ck_qtk(qtk_qparams_init(&p, kinds[a].bits, kinds[a].sg, false, grans[b].g, grans[b].axis,
                                            grans[b].group, grans[b].np));
                p.formula = f ? QTK_FQ_TORCH : QTK_FQ_REF;
                int lo, hi;
                ck_qtk(qtk_qrange(p.bits, p.is_signed, &lo, &hi));
                for (size_t k = 0; k < p.n; k++) {
                    p.scale[k] = qtk_rng_range(r, 0.01f, 0.6f);
                    p.zero[k] = (float)(lo + (int)qtk_rng_below(r, (uint32_t)(hi - lo + 1)));
                }
                const size_t bytes = kinds[a].dt == QTK_I4 || kinds[a].dt == QTK_U4 ? (n + 1) / 2 : n;
                memset(c1, 0, n);
                ck_qtk(qtk_cuda_memcpy_h2d(dc, c1, n));
                ck_qtk(qtk_quantize(&p, x, 3, shape, kinds[a].dt, c1));
                ck_qtk(qtk_quantize_cuda(&p, dx, 3, shape, kinds[a].dt, dc));
                if (codes) {
                    memcpy((uint8_t *)o->cpu + run * n, c1, bytes);
                    ck_qtk(qtk_cuda_memcpy_d2h((uint8_t *)o->gpu + run * n, dc, bytes));
                } else { // both dequantize the CPU's codes
                    ck_qtk(qtk_cuda_memcpy_h2d(dc, c1, bytes));
                    ck_qtk(qtk_dequantize(&p, c1, kinds[a].dt, 3, shape, (float *)o->cpu + run * n));
                    ck_qtk(qtk_dequantize_cuda(&p, dc, kinds[a].dt, 3, shape, dy));
                    ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + run * n, dy, n * 4));
                }
                qtk_qparams_free(&p);
                qtk_cuda_free(dx);
            }
    qtk_cuda_free(dy), qtk_cuda_free(dc);
    free(x), free(c1);
}
static void quantize_codes(qtk_rng *r, outputs *o) { quantize(r, o, 1); }
static void dequantize_values(qtk_rng *r, outputs *o) { quantize(r, o, 0); }

// int4 packing of an odd count, and both unpackings: packed bytes, then the signed and unsigned values
static void int4_pack(qtk_rng *r, outputs *o) {
    enum { N = 1001 };
    int8_t v[N];
    for (int i = 0; i < N; i++) v[i] = (int8_t)((int)qtk_rng_below(r, 16) - 8);
    const size_t pb = (N + 1) / 2;
    out_alloc(o, pb + 2 * N, BYTES);
    uint8_t *c = o->cpu, *g = o->gpu;
    qtk_pack_int4(v, N, c);
    memcpy(c + pb, v, N);
    qtk_unpack_u4(c, N, c + pb + N);
    int8_t *dv = dev_copy(v, N);
    uint8_t *dp = dev_alloc(pb);
    ck_qtk(qtk_pack_int4_cuda(dv, N, dp));
    ck_qtk(qtk_cuda_memcpy_d2h(g, dp, pb));
    ck_qtk(qtk_unpack_i4_cuda(dp, N, dv));
    ck_qtk(qtk_cuda_memcpy_d2h(g + pb, dv, N));
    ck_qtk(qtk_unpack_u4_cuda(dp, N, (uint8_t *)dv));
    ck_qtk(qtk_cuda_memcpy_d2h(g + pb + N, dv, N));
    qtk_cuda_free(dv), qtk_cuda_free(dp);
}


// --- the op library (core/ops.h): norms, softmax, conv1d, residual ------------------------------

// a per-tensor 8-bit output quantizer, and a per-channel one with its arrays on the host (h) or device (d)
static qtk_outq outq_tensor(float s, float z) { return (qtk_outq){1, 0, s, z, NULL, NULL, 0, 255, 0}; }

static void ops_norms(qtk_rng *r, outputs *o) {
    enum { ROWS = 300, C = 384, E = 512, G = 4 };
    const size_t n = (size_t)ROWS * C, ne = (size_t)ROWS * E;
    out_alloc(o, 4 * n + n + ne, F32); // layernorm (plain, quantized), softmax (plain, quantized), rmsnorm (+ add), gated
    float *x = malloc(n * 4), *w = malloc(E * 4), *b = malloc(C * 4), *add = malloc(n * 4), *y = malloc(ne * 4),
          *z = malloc(ne * 4), *h = malloc(n * 4);
    fill(r, x, n, -3.0f, 3.0f), fill(r, w, E, 0.5f, 1.5f), fill(r, b, C, -0.5f, 0.5f), fill(r, add, n, -1.0f, 1.0f);
    fill(r, y, ne, -2.0f, 2.0f), fill(r, z, ne, -4.0f, 4.0f);
    const qtk_outq q = outq_tensor(0.02f, 128.0f), qp = outq_tensor(1.0f / 255.0f, 0.0f);
    float *cpu = o->cpu, *gpu = o->gpu;
    float *dx = dev_copy(x, n * 4), *dw = dev_copy(w, E * 4), *db = dev_copy(b, C * 4), *dy = dev_alloc(ne * 4);
    float *dadd = dev_copy(add, n * 4), *dz = dev_copy(z, ne * 4), *dh = dev_alloc(n * 4);
    for (int k = 0; k < 2; k++) { // LayerNorm without and with its output quantizer
        qtk_op_layernorm(x, cpu + k * n, ROWS, C, w, b, 1e-6f, k ? &q : NULL);
        ck_qtk(qtk_op_layernorm_cuda(dx, dy, ROWS, C, dw, db, 1e-6f, k ? &q : NULL, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h(gpu + k * n, dy, n * 4));
    }
    for (int k = 0; k < 2; k++) { // softmax over rows of C
        memcpy(cpu + (2 + k) * n, x, n * 4);
        qtk_op_softmax(cpu + (2 + k) * n, ROWS, C, k ? &qp : NULL);
        ck_qtk(qtk_cuda_memcpy_h2d(dy, x, n * 4));
        ck_qtk(qtk_op_softmax_cuda(dy, ROWS, C, k ? &qp : NULL, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h(gpu + (2 + k) * n, dy, n * 4));
    }
    // RMSNorm with the residual add (h += add, then the norm)
    memcpy(h, x, n * 4);
    qtk_op_rmsnorm(h, add, w, cpu + 4 * n, ROWS, C, 1e-5f);
    ck_qtk(qtk_cuda_memcpy_h2d(dh, x, n * 4));
    ck_qtk(qtk_op_rmsnorm_cuda(dh, dadd, dw, dy, ROWS, C, 1e-5f, NULL));
    ck_qtk(qtk_cuda_memcpy_d2h(gpu + 4 * n, dy, n * 4));
    // gated RMSNorm: 4 groups, the gate in rows of stride E
    memcpy(cpu + 5 * n, y, ne * 4);
    qtk_op_gated_rmsnorm(cpu + 5 * n, z, E, w, ROWS, E, G, 1e-5f);
    ck_qtk(qtk_cuda_memcpy_h2d(dy, y, ne * 4));
    ck_qtk(qtk_op_gated_rmsnorm_cuda(dy, dz, E, dw, ROWS, E, G, 1e-5f, NULL));
    ck_qtk(qtk_cuda_memcpy_d2h(gpu + 5 * n, dy, ne * 4));
    qtk_cuda_free(dx), qtk_cuda_free(dw), qtk_cuda_free(db), qtk_cuda_free(dy), qtk_cuda_free(dadd), qtk_cuda_free(dz);
    qtk_cuda_free(dh);
    free(x), free(w), free(b), free(add), free(y), free(z), free(h);
}

// integer LayerNorm with per-channel power-of-two input factors (PTF) and per tensor, quantized output
static void ops_int_layernorm(qtk_rng *r, outputs *o) {
    enum { ROWS = 200, C = 192 };
    const size_t n = (size_t)ROWS * C;
    out_alloc(o, 2 * n, F32);
    float *x = malloc(n * 4), *g = malloc(C * 4), *b = malloc(C * 4), s_in[C];
    fill(r, x, n, -4.0f, 4.0f), fill(r, g, C, 0.5f, 1.5f), fill(r, b, C, -0.3f, 0.3f);
    // finite inputs only: the integer LayerNorm reads its input's grid points (a NaN has none)
    for (int c = 0; c < C; c++) s_in[c] = 0.01f * (float)(1 << (c % 4));
    const qtk_outq q = outq_tensor(0.03f, 120.0f);
    float *dx = dev_copy(x, n * 4), *dg = dev_copy(g, C * 4), *db = dev_copy(b, C * 4), *ds = dev_copy(s_in, C * 4),
          *dy = dev_alloc(n * 4);
    for (int k = 0; k < 2; k++) {
        float *c = (float *)o->cpu + k * n;
        qtk_int_layernorm(x, c, ROWS, C, s_in, !k, 0.05f, g, b);
        for (size_t i = 0; i < n; i++) c[i] = qtk_outq_apply(&q, c[i], 0);
        ck_qtk(qtk_op_int_layernorm_cuda(dx, dy, ROWS, C, ds, !k, 0.01f, 0.05f, dg, db, &q, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + k * n, dy, n * 4));
    }
    qtk_cuda_free(dx), qtk_cuda_free(dg), qtk_cuda_free(db), qtk_cuda_free(ds), qtk_cuda_free(dy);
    free(x), free(g), free(b);
}

// causal conv1d + SiLU: a prefill of 37 tokens from a nonzero state, then 3 decode steps (K = 4, the
// unrolled kernel) and a prefill with K = 3 (the general one); outputs and final states
static void ops_conv1d(qtk_rng *r, outputs *o) {
    enum { B = 3, L = 37, C = 80, LD = 96 };
    const size_t nin = (size_t)B * L * LD;
    float *in = malloc(nin * 4), w[C * 4], bias[C], st[B * C * 4], st0[B * C * 4], *out = malloc((size_t)B * L * C * 4);
    fill(r, in, nin, -2.0f, 2.0f), fill(r, w, C * 4, -1.0f, 1.0f), fill(r, bias, C, -0.2f, 0.2f);
    fill(r, st0, B * C * 4, -1.0f, 1.0f);
    const size_t per = (size_t)B * L * C + B * C * 4;
    out_alloc(o, 2 * per + 3 * ((size_t)B * C + B * C * 4), F32);
    float *din = dev_copy(in, nin * 4), *dw = dev_copy(w, sizeof w), *db = dev_copy(bias, sizeof bias), *dst = dev_alloc(sizeof st),
          *dout = dev_alloc((size_t)B * L * C * 4);
    size_t at = 0;
    for (int K = 4; K >= 3; K--) {
        memcpy(st, st0, sizeof st);
        ck_qtk(qtk_op_conv1d_silu(in, LD, B, L, C, K, w, K == 4 ? bias : NULL, st, out));
        ck_qtk(qtk_cuda_memcpy_h2d(dst, st0, sizeof st));
        ck_qtk(qtk_op_conv1d_silu_cuda(din, LD, B, L, C, K, dw, K == 4 ? db : NULL, dst, dout, NULL));
        memcpy((float *)o->cpu + at, out, (size_t)B * L * C * 4);
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dout, (size_t)B * L * C * 4));
        at += (size_t)B * L * C;
        memcpy((float *)o->cpu + at, st, (size_t)B * C * K * 4);
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dst, (size_t)B * C * K * 4));
        at += (size_t)B * C * 4;
        if (K == 3) break;
        for (int t = 0; t < 3; t++) { // decode steps continue from the states the prefill left (equal, checked above)
            ck_qtk(qtk_op_conv1d_silu(in + t * LD, L * LD, B, 1, C, K, w, bias, st, out));
            ck_qtk(qtk_op_conv1d_silu_cuda(din + t * LD, L * LD, B, 1, C, K, dw, db, dst, dout, NULL));
            memcpy((float *)o->cpu + at, out, (size_t)B * C * 4);
            ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dout, (size_t)B * C * 4));
            at += (size_t)B * C;
            memcpy((float *)o->cpu + at, st, sizeof st);
            ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dst, sizeof st));
            at += (size_t)B * C * 4;
        }
    }
    qtk_cuda_free(din), qtk_cuda_free(dw), qtk_cuda_free(db), qtk_cuda_free(dst), qtk_cuda_free(dout);
    free(in), free(out);
}

// x = qr(x + qh(h)) with a per-channel (PTF-like) residual quantizer
static void ops_residual(qtk_rng *r, outputs *o) {
    enum { ROWS = 500, C = 96 };
    const size_t n = (size_t)ROWS * C;
    out_alloc(o, n, F32);
    float *x = malloc(n * 4), *h = malloc(n * 4), s[C], z[C];
    fill(r, x, n, -5.0f, 5.0f), fill(r, h, n, -5.0f, 5.0f);
    specials(x, n);
    for (int c = 0; c < C; c++) s[c] = 0.01f * (float)(1 << (c % 4)), z[c] = (float)(100 + c % 7);
    float *dx = dev_copy(x, n * 4), *dh = dev_copy(h, n * 4), *ds = dev_copy(s, sizeof s), *dz = dev_copy(z, sizeof z);
    const qtk_outq qh = outq_tensor(0.05f, 127.0f);
    qtk_outq qr = {1, 1, 0, 0, s, z, 0, 255, 1}, dqr = qr;
    dqr.s_c = ds, dqr.z_c = dz;
    memcpy(o->cpu, x, n * 4);
    qtk_op_residual(o->cpu, h, n, C, &qh, &qr);
    ck_qtk(qtk_op_residual_cuda(dx, dh, n, C, &qh, &dqr, NULL));
    ck_qtk(qtk_cuda_memcpy_d2h(o->gpu, dx, n * 4));
    qtk_cuda_free(dx), qtk_cuda_free(dh), qtk_cuda_free(ds), qtk_cuda_free(dz);
    free(x), free(h);
}

// --- the GEMM module (core/cuda/gemm.h) against double sums on the CPU ---------------------------

// y (rows, N) = x (rows, K; stride ldx) W^T + b, in double then float; h16: x and W rounded to fp16 first
static void gemm_ref(const float *x, int ldx, const float *W, const float *b, float *y, int rows, int N, int K, int h16,
                     int softplus) {
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < N; o++) {
            double t = 0;
            for (int k = 0; k < K; k++) {
                float a = x[(size_t)r * ldx + k], w = W[(size_t)o * K + k];
                if (h16) a = qtk_f16_to_f32(qtk_f32_to_f16(a)), w = qtk_f16_to_f32(qtk_f32_to_f16(w));
                t += (double)a * w;
            }
            float v = (float)t;
            if (b) v += b[o];
            y[(size_t)r * N + o] = softplus ? qtk_softplus(v) : v;
        }
}

// cuBLASLt with the bias epilogue, with the residual accumulated, and cuBLAS where the caller adds the
// bias; the linear layer as GEMV (1 and 5 rows; float32, fp16, strided input, softplus) and as cuBLAS
// (40 rows; float32 and fp16 tensor cores)
static void gemm_float(qtk_rng *r, outputs *o) {
    enum { N = 200, K = 264, ROWS = 40, LDX = 272 };
    float *x = malloc((size_t)ROWS * LDX * 4), *W = malloc((size_t)N * K * 4), b[N],
          *res = malloc((size_t)ROWS * N * 4);
    uint16_t *Wh = malloc((size_t)N * K * 2);
    fill(r, x, (size_t)ROWS * LDX, -2.0f, 2.0f), fill(r, W, (size_t)N * K, -0.5f, 0.5f), fill(r, b, N, -1.0f, 1.0f);
    fill(r, res, (size_t)ROWS * N, -3.0f, 3.0f);
    for (size_t i = 0; i < (size_t)N * K; i++) Wh[i] = qtk_f32_to_f16(W[i]);
    const size_t per = (size_t)ROWS * N;
    enum { RUNS = 9 };
    out_alloc(o, RUNS * per, F32);
    float *dx = dev_copy(x, (size_t)ROWS * LDX * 4), *dW = dev_copy(W, (size_t)N * K * 4), *db = dev_copy(b, sizeof b),
          *dy = dev_alloc(per * 4);
    void *dWh = dev_copy(Wh, (size_t)N * K * 2), *dxh = dev_alloc((size_t)ROWS * K * 2);
    qtk_gemm *g = NULL;
    ck_qtk(qtk_gemm_create(&g, NULL, 0, (size_t)4 << 20, 0));
    float *xc = malloc((size_t)ROWS * K * 4); // x packed (stride K) for qtk_gemm_lt
    for (int i = 0; i < ROWS; i++) memcpy(xc + (size_t)i * K, x + (size_t)i * LDX, (size_t)K * 4);
    float *dxc = dev_copy(xc, (size_t)ROWS * K * 4);
    for (int run = 0; run < RUNS; run++) {
        float *cpu = (float *)o->cpu + run * per, *gpu = (float *)o->gpu + run * per;
        int rows = ROWS, done = 1;
        switch (run) {
        case 0: // cuBLASLt, bias in the epilogue
            gemm_ref(xc, K, W, b, cpu, ROWS, N, K, 0, 0);
            ck_qtk(qtk_gemm_lt(g, dxc, dW, db, dy, ROWS, N, K, 0, &done));
            break;
        case 1: // the residual as C: y = res + x W^T
            gemm_ref(xc, K, W, NULL, cpu, ROWS, N, K, 0, 0);
            for (size_t i = 0; i < per; i++) cpu[i] += res[i];
            ck_qtk(qtk_cuda_memcpy_h2d(dy, res, per * 4));
            ck_qtk(qtk_gemm_lt(g, dxc, dW, NULL, dy, ROWS, N, K, 1, &done));
            break;
        case 2: case 3: case 4: case 5: // GEMV: float32 1 row, fp16 5 rows, float32 5 rows + softplus, fp16 1 row
            rows = run == 2 || run == 5 ? 1 : 5;
            gemm_ref(x, LDX, W, b, cpu, rows, N, K, run & 1, run == 4);
            ck_qtk(qtk_gemv(NULL, run & 1 ? dWh : (void *)dW, run & 1, dx, LDX, db, dy, N, rows, N, K, run == 4));
            break;
        default: // the linear layer: GEMV (6), cuBLAS float32 (7) and fp16 tensor cores (8)
            rows = run == 6 ? 3 : ROWS;
            gemm_ref(x, LDX, W, b, cpu, rows, N, K, run == 8, run == 7);
            ck_qtk(qtk_gemm_linear(g, dx, LDX, run == 8 ? dWh : (void *)dW, run == 8, dxh, db, dy, (size_t)rows, N, K,
                                   run == 7));
        }
        ck_qtk(qtk_cuda_synchronize());
        ck_qtk(qtk_cuda_memcpy_d2h(gpu, dy, (size_t)rows * N * 4));
        if (!done) // plain cuBLAS ran: the bias is the caller's
            for (size_t i = 0; i < (size_t)rows * N; i++) gpu[i] += b[i % N];
    }
    qtk_gemm_destroy(g);
    qtk_cuda_free(dx), qtk_cuda_free(dW), qtk_cuda_free(db), qtk_cuda_free(dy), qtk_cuda_free(dWh), qtk_cuda_free(dxh);
    qtk_cuda_free(dxc);
    free(x), free(W), free(res), free(Wh), free(xc);
}

// int32 sums of int8 codes (IMMA) against exact integer sums: every product sign, the extremes -128 and 127
static void gemm_int8(qtk_rng *r, outputs *o) {
    enum { N = 132, K = 320, ROWS = 24 };
    int8_t *x = malloc((size_t)ROWS * K), *W = malloc((size_t)N * K);
    for (size_t i = 0; i < (size_t)ROWS * K; i++) x[i] = (int8_t)(qtk_rng_u32(r) & 0xff);
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (int8_t)(qtk_rng_u32(r) & 0xff);
    for (int k = 0; k < K; k++) x[k] = -128, W[k] = -128; // row 0 x row 0: 320 * 16384, the largest sum
    out_alloc(o, (size_t)ROWS * N, F64);
    int8_t *dx = dev_copy(x, (size_t)ROWS * K), *dW = dev_copy(W, (size_t)N * K);
    int32_t *dy = dev_alloc((size_t)ROWS * N * 4), *y = malloc((size_t)ROWS * N * 4);
    qtk_gemm *g = NULL;
    ck_qtk(qtk_gemm_create(&g, NULL, 0, (size_t)4 << 20, 0));
    ck_assert_msg(qtk_gemm_int8_ok(g, ROWS, N, K), "no cuBLASLt int8 algorithm for %dx%dx%d", N, ROWS, K);
    ck_qtk(qtk_gemm_int8(g, dx, dW, dy, ROWS, N, K));
    ck_qtk(qtk_cuda_synchronize());
    ck_qtk(qtk_cuda_memcpy_d2h(y, dy, (size_t)ROWS * N * 4));
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < N; j++) {
            int64_t t = 0;
            for (int k = 0; k < K; k++) t += (int64_t)x[(size_t)i * K + k] * W[(size_t)j * K + k];
            ((double *)o->cpu)[(size_t)i * N + j] = (double)t;
            ((double *)o->gpu)[(size_t)i * N + j] = (double)y[(size_t)i * N + j];
        }
    qtk_gemm_destroy(g);
    qtk_cuda_free(dx), qtk_cuda_free(dW), qtk_cuda_free(dy);
    free(x), free(W), free(y);
}

// --- CNN ops: dense conv (im2col + GEMM), depthwise, batch norm + activations -----------------------------

static qtk_outq outq_channels(const float *s, const float *z) { return (qtk_outq){1, 1, 0, 0, s, z, -128, 127, 0}; }

// dense convs (3x3 stride 2 pad 1 with bias + ReLU6, 1x1 pointwise, 7x7 stride 2 pad 3 without bias) against
// the CPU's im2col + OpenBLAS (no output quantizer: a sum in another order may cross a rounding boundary)
static void cnn_conv_dense(qtk_rng *r, outputs *o) {
    const qtk_conv2d_shape sh[3] = {{2, 16, 15, 17, 24, 3, 3, 2, 2, 1, 1, 1}, {2, 24, 8, 9, 40, 1, 1, 1, 1, 0, 0, 1},
                                    {1, 3, 33, 31, 16, 7, 7, 2, 2, 3, 3, 1}};
    size_t total = 0, off[3];
    int Ho, Wo;
    for (int i = 0; i < 3; i++) {
        ck_qtk(qtk_conv2d_out(&sh[i], &Ho, &Wo));
        off[i] = total;
        total += (size_t)sh[i].B * sh[i].O * Ho * Wo;
    }
    out_alloc(o, total, F32);
    qtk_gemm *g = NULL;
    ck_qtk(qtk_gemm_create(&g, NULL, 0, (size_t)4 << 20, 0));
    for (int i = 0; i < 3; i++) {
        const qtk_conv2d_shape *s = &sh[i];
        ck_qtk(qtk_conv2d_out(s, &Ho, &Wo));
        const size_t nx = (size_t)s->B * s->C * s->H * s->W, nw = (size_t)s->O * s->C * s->KH * s->KW,
                     ny = (size_t)s->B * s->O * Ho * Wo;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)s->O * 4);
        fill(r, x, nx, -2.0f, 2.0f), fill(r, w, nw, -0.3f, 0.3f), fill(r, b, (size_t)s->O, -0.5f, 0.5f);
        float *dx = dev_copy(x, nx * 4), *dw = dev_copy(w, nw * 4), *db = dev_copy(b, (size_t)s->O * 4), *dy = dev_alloc(ny * 4),
              *ws = dev_alloc(qtk_conv2d_ws_floats(s) * 4);
        const qtk_act act = i == 0 ? QTK_ACT_RELU6 : QTK_ACT_NONE;
        ck_qtk(qtk_op_conv2d(s, x, w, i == 2 ? NULL : b, act, NULL, (float *)o->cpu + off[i]));
        ck_qtk(qtk_op_conv2d_cuda(s, dx, dw, i == 2 ? NULL : db, act, NULL, dy, ws, g, NULL));
        ck_qtk(qtk_cuda_synchronize());
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + off[i], dy, ny * 4));
        qtk_cuda_free(dx), qtk_cuda_free(dw), qtk_cuda_free(db), qtk_cuda_free(dy), qtk_cuda_free(ws);
        free(x), free(w), free(b);
    }
    qtk_gemm_destroy(g);
}

// depthwise 3x3 (stride 1 and 2) and 5x5 with hardswish, and every activation after a batch norm (every other
// one with a per-channel output quantizer)
static void cnn_depthwise_bn(qtk_rng *r, outputs *o) {
    enum { B = 2, C = 32, H = 14, W = 13, HW = H * W };
    const qtk_conv2d_shape sh[3] = {{B, C, H, W, C, 3, 3, 1, 1, 1, 1, C}, {B, C, H, W, C, 3, 3, 2, 2, 1, 1, C},
                                    {B, C, H, W, C, 5, 5, 2, 2, 2, 2, C}};
    const qtk_act acts[] = {QTK_ACT_NONE, QTK_ACT_RELU, QTK_ACT_RELU6, QTK_ACT_HARDSWISH, QTK_ACT_HARDSIGMOID};
    const size_t nx = (size_t)B * C * HW, NA = sizeof acts / sizeof *acts;
    size_t total = NA * nx, off[3];
    int Ho, Wo;
    for (int i = 0; i < 3; i++) {
        ck_qtk(qtk_conv2d_out(&sh[i], &Ho, &Wo));
        off[i] = total;
        total += (size_t)B * C * Ho * Wo;
    }
    out_alloc(o, total, F32);
    float *x = malloc(nx * 4), w[C * 25], bias[C], gamma[C], beta[C], mean[C], var[C], a[C], b[C];
    fill(r, x, nx, -6.0f, 6.0f), fill(r, w, C * 25, -0.5f, 0.5f), fill(r, bias, C, -0.5f, 0.5f);
    fill(r, gamma, C, 0.5f, 1.5f), fill(r, beta, C, -0.5f, 0.5f), fill(r, mean, C, -1.0f, 1.0f), fill(r, var, C, 0.1f, 2.0f);
    specials(x, nx);
    qtk_bn_affine(gamma, beta, mean, var, 1e-5f, C, a, b);
    float *dx = dev_copy(x, nx * 4), *dw = dev_copy(w, sizeof w), *dbias = dev_copy(bias, sizeof bias),
          *da = dev_copy(a, sizeof a), *db = dev_copy(b, sizeof b), *dy = dev_alloc(nx * 4);
    const qtk_outq q = outq_tensor(0.05f, 127.0f);
    float sc[C], zc[C];
    for (int c = 0; c < C; c++) sc[c] = 0.02f + 0.002f * c, zc[c] = (float)(c % 5) - 2.0f;
    float *dsc = dev_copy(sc, sizeof sc), *dzc = dev_copy(zc, sizeof zc);
    const qtk_outq qc = outq_channels(sc, zc), dqc = outq_channels(dsc, dzc);
    for (size_t k = 0; k < NA; k++) {
        float *cpu = (float *)o->cpu + k * nx;
        memcpy(cpu, x, nx * 4);
        qtk_op_bn_act(cpu, B, C, HW, a, b, acts[k], k % 2 ? &qc : NULL);
        ck_qtk(qtk_cuda_memcpy_d2d(dy, dx, nx * 4));
        ck_qtk(qtk_op_bn_act_cuda(dy, B, C, HW, da, db, acts[k], k % 2 ? &dqc : NULL, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + k * nx, dy, nx * 4));
    }
    for (int i = 0; i < 3; i++) {
        ck_qtk(qtk_op_conv2d(&sh[i], x, w, i ? bias : NULL, QTK_ACT_HARDSWISH, i == 1 ? &q : NULL, (float *)o->cpu + off[i]));
        ck_qtk(qtk_op_conv2d_cuda(&sh[i], dx, dw, i ? dbias : NULL, QTK_ACT_HARDSWISH, i == 1 ? &q : NULL, dy, NULL, NULL, NULL));
        ck_qtk(qtk_conv2d_out(&sh[i], &Ho, &Wo));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + off[i], dy, (size_t)B * C * Ho * Wo * 4));
    }
    qtk_cuda_free(dx), qtk_cuda_free(dw), qtk_cuda_free(dbias), qtk_cuda_free(da), qtk_cuda_free(db), qtk_cuda_free(dy);
    qtk_cuda_free(dsc), qtk_cuda_free(dzc);
    free(x);
}

// SiLU (ULP: CUDA's expf) and GELU (NMSE: far below zero 1 + erf(v / sqrt 2) cancels, and CUDA's erff may
// reach -1 where the CPU's stops an ULP short, so a -1e-7 output can be -0 on the GPU) after a batch norm
static void cnn_bn_act_exp(qtk_rng *r, outputs *o, qtk_act act) {
    enum { B = 2, C = 24, HW = 300 };
    const size_t n = (size_t)B * C * HW;
    out_alloc(o, n, F32);
    float *x = malloc(n * 4), a[C], b[C];
    fill(r, x, n, -8.0f, 8.0f), fill(r, a, C, 0.5f, 1.5f), fill(r, b, C, -0.5f, 0.5f);
    float *dx = dev_copy(x, n * 4), *da = dev_copy(a, sizeof a), *db = dev_copy(b, sizeof b);
    memcpy(o->cpu, x, n * 4);
    qtk_op_bn_act(o->cpu, B, C, HW, a, b, act, NULL);
    ck_qtk(qtk_op_bn_act_cuda(dx, B, C, HW, da, db, act, NULL, NULL));
    ck_qtk(qtk_cuda_memcpy_d2h(o->gpu, dx, n * 4));
    qtk_cuda_free(dx), qtk_cuda_free(da), qtk_cuda_free(db);
    free(x);
}
static void cnn_bn_silu(qtk_rng *r, outputs *o) { cnn_bn_act_exp(r, o, QTK_ACT_SILU); }
static void cnn_bn_gelu(qtk_rng *r, outputs *o) { cnn_bn_act_exp(r, o, QTK_ACT_GELU); }

// --- the registry's device half (core/qpoint.h): calibration, the forward's records, re-quantization -----

// A toy registry: a per-tensor min-max point, a per-channel (PTF-like, min-max channel-wise) point, an
// index-mapped one and a weight. Calibrated over 3 batches on the CPU (qtk_qreg_act) and on the GPU
// (qtk_qreg_observe_cuda): the parameters; then each activation quantizer applied on the device from its
// uploaded record against the CPU hook; then a perturbed weight re-quantized on both.
enum { RT, RC, RI, RW, RN };
static void toy_registry(qtk_qreg *r, const float *w) {
    static const int32_t idx[24] = {0, 1, 2, 0, 1, 2, 2, 2, 1, 0, 0, 1, 3, 3, 0, 1, 2, 3, 0, 0, 1, 1, 2, 3};
    ck_qtk(qtk_qreg_init(r, RN, 1));
    const qtk_qpoint_desc d[RN] = {
        {.name = "t", .observer = QTK_OBS_MINMAX, .bits = 8, .channels = 1, .input = -1, .shares = -1},
        {.name = "c", .observer = QTK_OBS_MINMAX, .bits = 6, .channel_wise = true, .axis = -1, .channels = 24, .input = -1,
         .shares = -1},
        {.name = "i", .observer = QTK_OBS_MINMAX, .bits = 4, .is_signed = true, .channel_wise = true, .axis = -1, .channels = 4,
         .group_index = idx, .index_len = 24, .input = -1, .shares = -1},
        {.name = "w", .kind = QTK_QPOINT_WEIGHT, .observer = QTK_OBS_MINMAX, .bits = 4, .channel_wise = true, .w = w, .O = 24,
         .K = 40, .input = -1, .shares = -1},
    };
    for (int i = 0; i < RN; i++) ck_qtk(qtk_qreg_add(r, i, &d[i]));
}

static void registry_dev(qtk_rng *rg, outputs *o) {
    enum { T = 70, C = 24, NB = 3 };
    float w[24 * 40], x[NB][T * C];
    fill(rg, w, 24 * 40, -1.0f, 1.0f);
    for (int b = 0; b < NB; b++) fill(rg, x[b], T * C, -3.0f + b, 2.0f + b);
    qtk_qreg a, g;
    toy_registry(&a, w), toy_registry(&g, w);
    qtk_qreg_dev d;
    ck_qtk(qtk_qreg_dev_init(&d, &g, NULL));
    const int64_t shape[2] = {T, C};
    float *dx = dev_alloc(sizeof x[0]), *dz = dev_alloc(sizeof x[0]);
    ck_qtk(qtk_qreg_calibrate_weights(&a));
    ck_qtk(qtk_qreg_calibrate_weights(&g));
    a.mode = QTK_QREG_CALIB;
    for (int b = 0; b < NB; b++) {
        a.last_batch = b == NB - 1;
        float t[T * C];
        ck_qtk(qtk_cuda_memcpy_h2d(dx, x[b], sizeof x[b]));
        for (int i = RT; i <= RI; i++) {
            memcpy(t, x[b], sizeof t);
            ck_qtk(qtk_qreg_act(&a, i, t, 2, shape));
            ck_qtk(qtk_qreg_observe_cuda(&d, &g, i, dx, T, C, b == 0, b == NB - 1));
        }
    }
    a.mode = g.mode = QTK_QREG_QUANT;
    // outputs: every activation point's scales and zero points, each applied to a fresh batch, the weight
    const size_t np = 1 + 24 + 4, na = 3 * (size_t)T * C, nw = 24 * 40;
    out_alloc(o, 2 * np + na + 2 * nw, F32);
    float *oc = o->cpu, *og = o->gpu;
    for (int i = RT, k = 0; i <= RI; i++)
        for (size_t j = 0; j < a.p[i].qp.n; j++, k++) {
            oc[k] = a.p[i].qp.scale[j], oc[np + k] = a.p[i].qp.zero[j];
            og[k] = g.p[i].qp.scale[j], og[np + k] = g.p[i].qp.zero[j];
        }
    ck_qtk(qtk_qreg_dev_upload(&d, &g));
    float fresh[T * C];
    fill(rg, fresh, T * C, -4.0f, 4.0f);
    specials(fresh, T * C);
    float zero[T * C]; // -0: x + -0 is x for every x, signed zeros included (+0 would turn a -0 into +0)
    for (int i = 0; i < T * C; i++) zero[i] = -0.0f;
    ck_qtk(qtk_cuda_memcpy_h2d(dz, zero, sizeof zero));
    for (int i = RT; i <= RI; i++) {
        float *c = oc + 2 * np + (size_t)i * T * C;
        memcpy(c, fresh, sizeof fresh);
        ck_qtk(qtk_qreg_act(&a, i, c, 2, shape));
        // the device record as a kernel applies it: x = -0 + q(h)
        ck_qtk(qtk_cuda_memcpy_h2d(dx, zero, sizeof zero));
        ck_qtk(qtk_cuda_memcpy_h2d(dz, fresh, sizeof fresh));
        ck_qtk(qtk_op_residual_cuda(dx, dz, (size_t)T * C, C, &d.q[i], NULL, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h(og + 2 * np + (size_t)i * T * C, dx, sizeof fresh));
    }
    // the weight: the uploaded copy, then a perturbed scale re-quantized on the host and on the device
    ck_qtk(qtk_cuda_memcpy_d2h(og + 2 * np + na, qtk_qreg_dev_weight(&d, RW), nw * 4));
    memcpy(oc + 2 * np + na, qtk_qreg_weight(&a, RW), nw * 4);
    a.p[RW].qp.scale[5] *= 1.3f, g.p[RW].qp.scale[5] *= 1.3f;
    ck_qtk(qtk_qreg_requantize(&a, RW));
    float *dw = dev_copy(w, sizeof w);
    ck_qtk(qtk_qreg_dev_requantize(&d, &g, RW, dw));
    ck_qtk(qtk_cuda_synchronize());
    ck_assert(g.p[RW].wq_stale);
    ck_qtk(qtk_cuda_memcpy_d2h(og + 2 * np + na + nw, qtk_qreg_dev_weight(&d, RW), nw * 4));
    memcpy(oc + 2 * np + na + nw, qtk_qreg_weight(&a, RW), nw * 4);
    qtk_cuda_free(dx), qtk_cuda_free(dz), qtk_cuda_free(dw);
    qtk_qreg_dev_free(&d);
    qtk_qreg_free(&a), qtk_qreg_free(&g);
}

static const backend_case cases[] = {
    {"fake_quant per tensor", BITWISE, 0, fq_tensor},
    {"fake_quant per channel (middle axis)", BITWISE, 0, fq_channel_mid},
    {"fake_quant per channel (last axis)", BITWISE, 0, fq_channel_last},
    {"fake_quant per group", BITWISE, 0, fq_group},
    {"fake_quant dispatcher (index-mapped, per-slice, all)", BITWISE, 0, fq_dispatch},
    {"channel / tensor min-max", BITWISE, 0, minmax},
    {"OMSE error sums (90 candidates)", ULP, 64, sse_multi}, // double sums in another order (H100: 12 ULP)
    {"OMSE / PTF parameters", BITWISE, 0, omse_ptf_params},
    {"quantiles of x and |x|", BITWISE, 0, quantiles},
    {"Hadamard rows", BITWISE, 0, hadamard},
    {"bias correction", BITWISE, 0, bias_correct},
    {"weight_affine codes and row sums", BITWISE, 0, weight_affine_codes},
    {"weight_affine alpha / gamma", ULP, 16, weight_affine_stats}, // double row statistics (H100: equal)
    {"quantize codes", BITWISE, 0, quantize_codes},
    {"dequantize values", BITWISE, 0, dequantize_values},
    {"int4 pack / unpack", BITWISE, 0, int4_pack},
    {"LayerNorm, softmax, RMSNorm (+ add), gated RMSNorm", NMSE, 1e-12, ops_norms}, // row sums in another order
    {"integer LayerNorm (PTF and per tensor)", BITWISE, 0, ops_int_layernorm},
    {"causal conv1d + SiLU (prefill, decode, states)", ULP, 4, ops_conv1d}, // SiLU's expf: CUDA's is within 2 ULP (H100: 1)
    {"residual add with its quantizers", BITWISE, 0, ops_residual},
    {"GEMM: cuBLASLt (bias, residual), GEMV (f32, fp16), linear (GEMV, SGEMM, fp16)", NMSE, 1e-12, gemm_float}, // sum order
    {"int8 GEMM on tensor cores (IMMA)", BITWISE, 0, gemm_int8},
    {"conv2d dense (im2col + GEMM; bias, ReLU6)", NMSE, 1e-12, cnn_conv_dense}, // sum order
    {"conv2d depthwise; batch norm with ReLU, ReLU6, hardswish, hardsigmoid (+ output quantizers)", BITWISE, 0, cnn_depthwise_bn},
    {"batch norm with SiLU", ULP, 4, cnn_bn_silu},   // CUDA's expf
    {"batch norm with GELU", NMSE, 1e-12, cnn_bn_gelu}, // CUDA's erff (see cnn_bn_act_exp)
    {"registry on the device: calibration, records, re-quantization", BITWISE, 0, registry_dev},
};
enum { N_CASES = sizeof cases / sizeof *cases };

// --- the runner -------------------------------------------------------------------------------

static double value(const outputs *o, const void *p, size_t i) {
    return o->kind == F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

// units in the last place between a and b (same kind); NaN with NaN: 0
static double ulps(elem_kind k, double a, double b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
    if (a == b) return 0;
    if (k == F32) {
        int32_t ia, ib;
        float fa = (float)a, fb = (float)b;
        memcpy(&ia, &fa, 4), memcpy(&ib, &fb, 4);
        if (ia < 0) ia = INT32_MIN - ia;
        if (ib < 0) ib = INT32_MIN - ib;
        return fabs((double)ia - (double)ib);
    }
    int64_t ia, ib;
    memcpy(&ia, &a, 8), memcpy(&ib, &b, 8);
    if (ia < 0) ia = INT64_MIN - ia;
    if (ib < 0) ib = INT64_MIN - ib;
    return (double)(ia > ib ? (uint64_t)ia - (uint64_t)ib : (uint64_t)ib - (uint64_t)ia); // exact, then rounded
}

START_TEST(test_backend_case) {
    const backend_case *c = &cases[_i];
    if (!have_gpu) TU_SKIP("%s: no CUDA device", c->name);
    qtk_rng r;
    qtk_rng_seed(&r, 1000 + (uint64_t)_i, 0);
    outputs o = {0};
    c->run(&r, &o);
    ck_assert_msg(o.n > 0, "%s: no outputs", c->name);
    const size_t e = o.kind == F32 ? 4 : o.kind == F64 ? 8 : 1;
    if (c->check == BITWISE) {
        for (size_t i = 0; i < o.n; i++) {
            int same = o.kind == BYTES ? ((uint8_t *)o.cpu)[i] == ((uint8_t *)o.gpu)[i]
                       : o.kind == F32 ? tu_same(((float *)o.cpu)[i], ((float *)o.gpu)[i])
                                       : !memcmp((char *)o.cpu + i * e, (char *)o.gpu + i * e, e);
            ck_assert_msg(same, "%s: output %zu of %zu differs (CPU %.9g, GPU %.9g)", c->name, i, o.n,
                          o.kind == BYTES ? (double)((uint8_t *)o.cpu)[i] : value(&o, o.cpu, i),
                          o.kind == BYTES ? (double)((uint8_t *)o.gpu)[i] : value(&o, o.gpu, i));
        }
    } else if (c->check == ULP) {
        double worst = 0;
        size_t at = 0;
        for (size_t i = 0; i < o.n; i++) {
            double u = ulps(o.kind, value(&o, o.cpu, i), value(&o, o.gpu, i));
            if (u > worst) worst = u, at = i;
        }
        ck_assert_msg(worst <= c->tol, "%s: output %zu is %g ULP apart (CPU %.17g, GPU %.17g; at most %g)", c->name, at,
                      worst, value(&o, o.cpu, at), value(&o, o.gpu, at), c->tol);
        printf("%s: at most %g ULP apart\n", c->name, worst);
    } else {
        double num = 0, den = 0;
        for (size_t i = 0; i < o.n; i++) {
            double a = value(&o, o.cpu, i), b = value(&o, o.gpu, i);
            num += (a - b) * (a - b), den += a * a;
        }
        double nmse = den > 0 ? num / den : num;
        ck_assert_msg(nmse <= c->tol, "%s: NMSE %.3g (at most %g)", c->name, nmse, c->tol);
        printf("%s: NMSE %.3g\n", c->name, nmse);
    }
    free(o.cpu);
    free(o.gpu);
}
END_TEST

// the ULP measure itself: neighbours are 1 apart across zero and in both precisions
START_TEST(test_ulps) {
    ck_assert(ulps(F32, 1.0, (double)nextafterf(1.0f, 2.0f)) == 1);
    ck_assert(ulps(F32, 0.0, -0.0) == 0);
    ck_assert(ulps(F32, (double)nextafterf(0.0f, 1.0f), (double)nextafterf(0.0f, -1.0f)) == 2);
    ck_assert(ulps(F64, 1.0, nextafter(1.0, 0.0)) == 1);
    ck_assert(ulps(F64, NAN, NAN) == 0);
    ck_assert(isinf(ulps(F64, NAN, 1.0)));
}
END_TEST

int main(void) {
    have_gpu = qtk_cuda_device_count() > 0;
    Suite *s = suite_create("backends");
    TCase *tc = tcase_create("backends");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ulps);
    tcase_add_loop_test(tc, test_backend_case, 0, N_CASES);
    suite_add_tcase(s, tc);
    return tu_run_mode(s, 0); // a CUDA context does not survive fork()
}
