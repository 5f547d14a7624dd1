// Fake quantization: bit-exact with PyTorch (fixtures), optimized kernels
// equal to the scalar reference, and the quantizer's properties.
#include <omp.h>

#include "testutil.h"

static qtk_granularity gran_of(const char *s) {
    return !strcmp(s, "channel") ? QTK_PER_CHANNEL : !strcmp(s, "group") ? QTK_PER_GROUP : QTK_PER_TENSOR;
}

// Every fixture case, both formulas, through the dispatcher and the reference.
START_TEST(test_fixtures_bit_exact) {
    qtk_safetensors st;
    tu_open(&st, "fakequant.safetensors");
    cJSON *cases = tu_meta_json(&st, "cases");
    int n_cases = 0, n_torch = 0, n_ties_even = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int ndim;
        int64_t shape[8];
        tu_json_shape(c, &ndim, shape);
        size_t nx, ns, nz, ny;
        float *x = tu_load(&st, name, "x", &nx), *s = tu_load(&st, name, "scale", &ns);
        float *z = tu_load(&st, name, "zero", &nz), *y_ref = tu_load(&st, name, "y_ref", &ny);
        qtk_qparams p;
        ck_qtk(qtk_qparams_init(&p, tu_json_int(c, "bits"), tu_json_int(c, "signed"), false,
                                gran_of(cJSON_GetObjectItem(c, "gran")->valuestring), tu_json_int(c, "axis"),
                                tu_json_int(c, "group"), ns));
        memcpy(p.scale, s, ns * 4);
        memcpy(p.zero, z, nz * 4);
        float *y = malloc(nx * 4);
        for (int pass = 0; pass < 2; pass++) {
            p.formula = QTK_FQ_REF;
            ck_qtk(pass ? qtk_fake_quant_ref(&p, x, y, ndim, shape) : qtk_fake_quant(&p, x, y, ndim, shape));
            long d = tu_first_diff(y, y_ref, nx);
            ck_assert_msg(d < 0, "%s (%s): y[%ld] = %a, PyTorch %a (x = %a)", name, pass ? "ref" : "fast", d,
                          d >= 0 ? y[d] : 0, d >= 0 ? y_ref[d] : 0, d >= 0 ? x[d] : 0);
        }
        if (strstr(name, "ties")) {
            // ties must have gone to even: (x/s + z) = k + 0.5 and the code is even
            int lo, hi;
            qtk_qrange(p.bits, p.is_signed, &lo, &hi);
            for (size_t i = 0; i < nx; i++) {
                float q = y_ref[i] / s[0] + z[0];
                if (q > lo && q < hi) {
                    ck_assert_msg(fmodf(fabsf(q), 2.0f) == 0.0f, "%s: tie not rounded to even", name);
                    n_ties_even++;
                }
            }
        }
        {
            char tn[256];
            snprintf(tn, sizeof tn, "%s.y_torch", name);
            if (qtk_st_find(&st, tn)) {
                float *y_t = tu_load(&st, name, "y_torch", &ny);
                p.formula = QTK_FQ_TORCH;
                for (int pass = 0; pass < 2; pass++) {
                    ck_qtk(pass ? qtk_fake_quant_ref(&p, x, y, ndim, shape) : qtk_fake_quant(&p, x, y, ndim, shape));
                    long d = tu_first_diff(y, y_t, nx);
                    ck_assert_msg(d < 0, "%s torch form (%s): y[%ld] = %a, torch.fake_quantize %a (x = %a)", name,
                                  pass ? "ref" : "fast", d, d >= 0 ? y[d] : 0, d >= 0 ? y_t[d] : 0, d >= 0 ? x[d] : 0);
                }
                qtk_aligned_free(y_t);
                n_torch++;
            }
        }
        free(y);
        qtk_qparams_free(&p);
        qtk_aligned_free(x);
        qtk_aligned_free(s);
        qtk_aligned_free(z);
        qtk_aligned_free(y_ref);
        n_cases++;
    }
    ck_assert_int_ge(n_cases, 30);
    ck_assert_int_ge(n_torch, 30);
    ck_assert_int_ge(n_ties_even, 1000);
    cJSON_Delete(cases);
    qtk_st_close(&st);
}
END_TEST

// The two formulas really differ somewhere (else the torch fixture proves nothing).
START_TEST(test_formulas_differ) {
    qtk_rng r;
    qtk_rng_seed(&r, 7, 0);
    int diffs = 0;
    for (int i = 0; i < 200000 && !diffs; i++) {
        float s = qtk_rng_range(&r, 0.001f, 1.0f), x = qtk_rng_range(&r, -50.0f, 50.0f);
        float z = (float)qtk_rng_below(&r, 256);
        diffs += !tu_same(qtk_fake_quant_scalar(x, s, z, 0, 255, QTK_FQ_REF),
                          qtk_fake_quant_scalar(x, s, z, 0, 255, QTK_FQ_TORCH));
    }
    ck_assert_int_gt(diffs, 0);
}
END_TEST

static void fill_with_specials(qtk_rng *r, float *x, size_t n, float range) {
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(r, -range, range);
    const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e30f, -1e30f, 3e6f, -5e6f, 1e-30f, -1e-30f};
    for (size_t i = 0; i < sizeof sp / sizeof *sp && i * 7 < n; i++) x[i * 7] = sp[i];
}

// Optimized kernels == scalar reference, bit for bit, for every bits/sign/
// formula/granularity, sizes that exercise the SIMD tails and OpenMP, in place.
START_TEST(test_fast_equals_reference) {
    qtk_rng r;
    qtk_rng_seed(&r, 1234, 0);
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 1}, {64, 768, 1}, {2, 96, 130}};
    for (int si = 0; si < 5; si++) {
        const int64_t *shape = shapes[si];
        size_t n = (size_t)(shape[0] * shape[1] * shape[2]);
        float *x = malloc(n * 4), *y = malloc(n * 4), *yr = malloc(n * 4);
        for (int bits = 2; bits <= 8; bits++)
            for (int sg = 0; sg < 2; sg++)
                for (int f = 0; f < 2; f++)
                    for (int g = 0; g < 3; g++) {
                        int axis = g == QTK_PER_GROUP ? 1 : (int)qtk_rng_below(&r, 3);
                        int group = 1;
                        if (g == QTK_PER_GROUP) {
                            if (shape[1] % 32 == 0) group = 32;
                            else if (shape[1] % 3 == 0) group = 3;
                        }
                        size_t np = g == QTK_PER_TENSOR ? 1
                                    : g == QTK_PER_CHANNEL ? (size_t)shape[axis]
                                                           : (size_t)(shape[0] * (shape[1] / group) * shape[2]);
                        qtk_qparams p;
                        ck_qtk(qtk_qparams_init(&p, bits, sg, false, (qtk_granularity)g, axis, group, np));
                        p.formula = (qtk_fq_formula)f;
                        int lo, hi;
                        qtk_qrange(bits, sg, &lo, &hi);
                        for (size_t k = 0; k < np; k++) {
                            p.scale[k] = qtk_rng_range(&r, 1e-3f, 0.5f);
                            p.zero[k] = (float)(lo + (int)qtk_rng_below(&r, (uint32_t)(hi - lo + 1)));
                        }
                        fill_with_specials(&r, x, n, 0.7f * (float)(hi - lo) * 0.5f);
                        ck_qtk(qtk_fake_quant_ref(&p, x, yr, 3, shape));
                        ck_qtk(qtk_fake_quant(&p, x, y, 3, shape));
                        long d = tu_first_diff(y, yr, n);
                        ck_assert_msg(d < 0, "bits %d signed %d formula %d gran %d shape %d: y[%ld]=%a ref %a x=%a",
                                      bits, sg, f, g, si, d, d >= 0 ? y[d] : 0, d >= 0 ? yr[d] : 0, d >= 0 ? x[d] : 0);
                        memcpy(y, x, n * 4);
                        ck_qtk(qtk_fake_quant(&p, y, y, 3, shape)); // in place
                        ck_assert_int_lt(tu_first_diff(y, yr, n), 0);
                        qtk_qparams_free(&p);
                    }
        free(x);
        free(y);
        free(yr);
    }
}
END_TEST

// Exact .5 ties through the fast path (power-of-two scales make x/s exact).
START_TEST(test_fast_ties) {
    float x[4096], y[4096], yr[4096];
    for (int i = 0; i < 4096; i++) x[i] = ((float)(i % 300) - 20.5f) * 0.125f;
    for (int z = 0; z < 3; z++)
        for (int f = 0; f < 2; f++) {
            qtk_fake_quant_per_tensor(x, y, 4096, 0.125f, (float)z, 0, 255, (qtk_fq_formula)f);
            for (int i = 0; i < 4096; i++) yr[i] = qtk_fake_quant_scalar(x[i], 0.125f, (float)z, 0, 255, (qtk_fq_formula)f);
            ck_assert_int_lt(tu_first_diff(y, yr, 4096), 0);
        }
    // 2.5 -> 2, 3.5 -> 4, -0.5 -> -0 (signed), 0.5 -> 0
    ck_assert(qtk_fake_quant_scalar(2.5f, 1.0f, 0.0f, -128, 127, QTK_FQ_REF) == 2.0f);
    ck_assert(qtk_fake_quant_scalar(3.5f, 1.0f, 0.0f, -128, 127, QTK_FQ_REF) == 4.0f);
    ck_assert(signbit(qtk_fake_quant_scalar(-0.5f, 1.0f, 0.0f, -128, 127, QTK_FQ_REF)));
    float neg_small = -0.1f, out;
    qtk_fake_quant_per_tensor(&neg_small, &out, 1, 1.0f, 0.0f, -128, 127, QTK_FQ_REF);
    ck_assert_msg(signbit(out) && out == 0.0f, "round(-0.1) must stay -0.0 as in PyTorch");
}
END_TEST

// |x - fq(x)| <= s/2 inside the representable range; fq(fq(x)) == fq(x).
START_TEST(test_error_bound_and_idempotence) {
    qtk_rng r;
    qtk_rng_seed(&r, 99, 0);
    enum { N = 20000 };
    static float x[N], y[N], y2[N];
    for (int bits = 2; bits <= 8; bits++)
        for (int sg = 0; sg < 2; sg++) {
            int lo, hi;
            qtk_qrange(bits, sg, &lo, &hi);
            float s = qtk_rng_range(&r, 0.01f, 0.3f), z = sg ? 0.0f : (float)(hi / 3);
            float xmin = ((float)lo - z) * s, xmax = ((float)hi - z) * s;
            for (int i = 0; i < N; i++) x[i] = qtk_rng_range(&r, xmin, xmax);
            qtk_fake_quant_per_tensor(x, y, N, s, z, lo, hi, QTK_FQ_REF);
            for (int i = 0; i < N; i++)
                ck_assert_msg(fabsf(x[i] - y[i]) <= 0.5f * s * (1 + 1e-5f), "bits %d: |%g - %g| > s/2 = %g", bits, x[i],
                              y[i], 0.5f * s);
            // idempotent as values; a -0.0 output becomes +0.0 (-0/s + 0 = +0), as in PyTorch
            qtk_fake_quant_per_tensor(y, y2, N, s, z, lo, hi, QTK_FQ_REF);
            for (int i = 0; i < N; i++) ck_assert_msg(y[i] == y2[i], "fq(fq(x)) != fq(x) at %d", i);
        }
}
END_TEST

// Per-channel on a (C, K) matrix == per-tensor applied to each row with its (s, z).
START_TEST(test_per_channel_equals_rows) {
    enum { C = 37, K = 301 };
    static float x[C * K], y[C * K], row[K];
    qtk_rng r;
    qtk_rng_seed(&r, 5, 0);
    tu_fill_normal(&r, x, C * K, 2.0f);
    qtk_qparams p;
    int64_t shape[2] = {C, K};
    ck_qtk(qtk_qparams_init(&p, 4, false, false, QTK_PER_CHANNEL, 0, 0, C));
    for (int c = 0; c < C; c++) {
        p.scale[c] = 0.05f + 0.01f * (float)c;
        p.zero[c] = (float)(c % 16);
    }
    ck_qtk(qtk_fake_quant(&p, x, y, 2, shape));
    for (int c = 0; c < C; c++) {
        qtk_fake_quant_per_tensor(x + c * K, row, K, p.scale[c], p.zero[c], 0, 15, QTK_FQ_REF);
        ck_assert_int_lt(tu_first_diff(row, y + c * K, K), 0);
    }
    // and along the last axis: the transpose
    static float xt[K * C], yt[K * C];
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++) xt[k * C + c] = x[c * K + k];
    p.axis = -1;
    int64_t tshape[2] = {K, C};
    ck_qtk(qtk_fake_quant(&p, xt, yt, 2, tshape));
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++) ck_assert(tu_same(yt[k * C + c], y[c * K + k]));
    qtk_qparams_free(&p);
}
END_TEST

START_TEST(test_off_and_errors) {
    float x[6] = {1.1f, -2.2f, 3.3f, 0, 5, 6}, y[6];
    int64_t shape[2] = {2, 3};
    qtk_qparams p;
    ck_qtk(qtk_qparams_init(&p, QTK_BITS_OFF, false, false, QTK_PER_TENSOR, 0, 0, 1));
    ck_qtk(qtk_fake_quant(&p, x, y, 2, shape));
    ck_assert_int_lt(tu_first_diff(x, y, 6), 0);
    qtk_qparams_free(&p);
    // wrong number of scales for the shape
    ck_qtk(qtk_qparams_init(&p, 8, false, false, QTK_PER_CHANNEL, 0, 0, 3));
    ck_assert_int_eq(qtk_fake_quant(&p, x, y, 2, shape), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "needs 2 scales"));
    p.axis = 5;
    ck_assert_int_eq(qtk_fake_quant(&p, x, y, 2, shape), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "axis 5"));
    qtk_qparams_free(&p);
    // group size must divide the axis
    ck_qtk(qtk_qparams_init(&p, 4, false, false, QTK_PER_GROUP, 1, 2, 2));
    ck_assert_int_eq(qtk_fake_quant(&p, x, y, 2, shape), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "group size 2"));
    qtk_qparams_free(&p);
    ck_assert_int_eq(qtk_qparams_init(&p, 9, false, false, QTK_PER_TENSOR, 0, 0, 1), QTK_ERR_ARG);
    ck_assert_int_eq(qtk_qparams_init(&p, 1, false, false, QTK_PER_TENSOR, 0, 0, 1), QTK_ERR_ARG);
    ck_assert_int_eq(qtk_qparams_init(&p, 4, false, false, QTK_PER_TENSOR, 0, 0, 2), QTK_ERR_ARG);
    ck_assert_int_eq(qtk_qparams_init(&p, 4, false, false, QTK_PER_GROUP, 0, 0, 2), QTK_ERR_ARG);
}
END_TEST

// The vectorized sum of squared errors == the scalar reference's sum.
START_TEST(test_sse_equals_reference) {
    enum { N = 100003 };
    static float x[N];
    qtk_rng r;
    qtk_rng_seed(&r, 21, 0);
    tu_fill_normal(&r, x, N, 3.0f);
    for (int bits = 2; bits <= 8; bits += 3) {
        int hi = (1 << bits) - 1;
        float s = 6.0f / (float)hi, z = (float)(hi / 2);
        double ref = 0;
        for (int i = 0; i < N; i++) {
            float d = x[i] - qtk_fake_quant_scalar(x[i], s, z, 0, hi, QTK_FQ_REF);
            ref += (double)(d * d);
        }
        double got = qtk_fake_quant_sse(x, N, s, z, 0, hi);
        ck_assert_msg(fabs(got - ref) <= 1e-12 * ref, "bits %d: %.17g vs %.17g", bits, got, ref);
    }
}
END_TEST

// Many candidates in one pass == one qtk_fake_quant_sse per candidate, bit for bit, at 1, 3 and 16 threads
// (and on a tensor of one partial chunk)
START_TEST(test_sse_multi_equals_single) {
    enum { N = 100003, K = 90 };
    static float x[N];
    qtk_rng r;
    qtk_rng_seed(&r, 22, 0);
    tu_fill_normal(&r, x, N, 2.0f);
    float s[K], z[K];
    for (int j = 0; j < K; j++) s[j] = 0.01f + 0.003f * (float)j, z[j] = (float)(j % 256);
    const size_t sizes[] = {N, 1000};
    const int threads[] = {1, 3, 16};
    for (int a = 0; a < 2; a++)
        for (int t = 0; t < 3; t++) {
            omp_set_num_threads(threads[t]);
            double got[K];
            qtk_fake_quant_sse_multi(x, sizes[a], s, z, K, 0, 255, got);
            for (int j = 0; j < K; j++) {
                double want = qtk_fake_quant_sse(x, sizes[a], s[j], z[j], 0, 255);
                ck_assert_msg(got[j] == want, "n %zu, %d threads, candidate %d: %.17g vs %.17g", sizes[a], threads[t], j,
                              got[j], want);
            }
        }
    omp_set_num_threads(omp_get_num_procs());
}
END_TEST


// Index-mapped groups: element (o, c, i) uses pair index[c] (checked element by element against the scalar
// formula); per-slice parameters equal fake-quantizing each slice alone per tensor; bad maps are refused.
START_TEST(test_per_index) {
    qtk_rng r;
    qtk_rng_seed(&r, 11, 0);
    const int64_t shape[3] = {5, 24, 7};
    const size_t n = 5 * 24 * 7;
    float *x = malloc(n * 4), *y = malloc(n * 4), *ref = malloc(n * 4);
    for (size_t e = 0; e < n; e++) x[e] = qtk_rng_range(&r, -6.0f, 6.0f);
    int32_t idx[24];
    for (int c = 0; c < 24; c++) idx[c] = (c * 7 + 3) % 5; // 5 groups, interleaved, every one used
    for (int axis = 1; axis <= 2; axis++)
        for (int f = 0; f < 2; f++) {
            int64_t sh[3] = {5, 24, 7};
            if (axis == 2) sh[1] = 7, sh[2] = 24; // the map's axis is the last one
            const size_t len = 24, inner = axis == 1 ? 7 : 1;
            qtk_qparams p;
            ck_qtk(qtk_qparams_init_index(&p, 4, f, false, axis, idx, len, 5));
            p.formula = (qtk_fq_formula)f;
            int lo, hi;
            ck_qtk(qtk_qrange(4, f, &lo, &hi));
            for (int g = 0; g < 5; g++) {
                p.scale[g] = 0.05f + 0.1f * (float)g;
                p.zero[g] = (float)(lo + g);
            }
            ck_qtk(qtk_fake_quant(&p, x, y, 3, sh));
            for (size_t e = 0; e < n; e++) {
                const int g = idx[(e / inner) % len];
                ref[e] = qtk_fake_quant_scalar(x[e], p.scale[g], p.zero[g], lo, hi, p.formula);
            }
            ck_assert_int_eq(tu_first_diff(y, ref, n), -1);
            ck_qtk(qtk_fake_quant_ref(&p, x, ref, 3, sh));
            ck_assert_int_eq(tu_first_diff(y, ref, n), -1);
            // a deep copy quantizes the same, and owns its map
            qtk_qparams q;
            ck_qtk(qtk_qparams_copy(&q, &p));
            ck_assert_ptr_ne(q.index, p.index);
            qtk_qparams_free(&p);
            ck_qtk(qtk_fake_quant(&q, x, ref, 3, sh));
            ck_assert_int_eq(tu_first_diff(y, ref, n), -1);
            qtk_qparams_free(&q);
        }
    // per-slice: axis 1 cut 6 | 10 | 8, each slice its own per-tensor pair
    const size_t sizes[3] = {6, 10, 8};
    qtk_qparams p;
    ck_qtk(qtk_qparams_init_slices(&p, 8, true, true, 1, sizes, 3));
    ck_assert_int_eq(p.gran, QTK_PER_INDEX);
    ck_assert_uint_eq(p.n, 3);
    const float ss[3] = {0.01f, 0.05f, 0.2f};
    for (int k = 0; k < 3; k++) p.scale[k] = ss[k];
    ck_qtk(qtk_fake_quant(&p, x, y, 3, shape));
    for (size_t o = 0, c0 = 0; o < 5; o++, c0 = 0)
        for (int k = 0; k < 3; c0 += sizes[k], k++) {
            const size_t len = sizes[k] * 7, at = (o * 24 + c0) * 7;
            qtk_fake_quant_per_tensor(x + at, ref, len, ss[k], 0.0f, -128, 127, QTK_FQ_REF);
            ck_assert_int_eq(tu_first_diff(y + at, ref, len), -1);
        }
    qtk_qparams_free(&p);
    // refused: a map of another length than its axis, an index out of range, an unused group, no map
    ck_qtk(qtk_qparams_init_index(&p, 8, false, false, 1, idx, 24, 5));
    const int64_t wrong[3] = {5, 23, 7};
    ck_assert_int_eq(qtk_fake_quant(&p, x, y, 3, wrong), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "index map of 24 positions on axis 1 of length 23"));
    qtk_qparams_free(&p);
    idx[4] = 5;
    ck_assert_int_eq(qtk_qparams_init_index(&p, 8, false, false, 1, idx, 24, 5), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "index[4] = 5 is outside 0..4"));
    idx[4] = 0;
    ck_assert_int_eq(qtk_qparams_init_index(&p, 8, false, false, 1, idx, 24, 6), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "group 5 of 6 has no position"));
    ck_assert_int_eq(qtk_qparams_init(&p, 8, false, false, QTK_PER_INDEX, 1, 0, 5), QTK_ERR_ARG);
    const size_t zero_slice[2] = {4, 0};
    ck_assert_int_eq(qtk_qparams_init_slices(&p, 8, false, false, 1, zero_slice, 2), QTK_ERR_ARG);
    ck_assert_ptr_null(p.scale);
    free(x), free(y), free(ref);
}
END_TEST

int main(void) {
    Suite *s = suite_create("fakequant");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixtures_bit_exact);
    tcase_add_test(tc, test_formulas_differ);
    tcase_add_test(tc, test_fast_equals_reference);
    tcase_add_test(tc, test_fast_ties);
    tcase_add_test(tc, test_error_bound_and_idempotence);
    tcase_add_test(tc, test_per_channel_equals_rows);
    tcase_add_test(tc, test_off_and_errors);
    tcase_add_test(tc, test_sse_equals_reference);
    tcase_add_test(tc, test_sse_multi_equals_single);
    tcase_add_test(tc, test_per_index);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
