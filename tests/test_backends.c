// core/'s CPU/GPU twins as rows of the backend table (tests/backends.h): fake quantization, observers,
// Hadamard, bias correction, integer weights, real quantization, and the registry's device half.
#include "backends.h"

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
    {"registry on the device: calibration, records, re-quantization", BITWISE, 0, registry_dev},
};

int main(void) { return backends_main("backends", cases, (int)(sizeof cases / sizeof *cases)); }
