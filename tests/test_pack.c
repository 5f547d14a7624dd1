// Real quantization: int8 / uint8 / packed int4 codes, round trips.
#include "testutil.h"

// dequantize(quantize(x)) == fake_quant(x) for every code type and granularity.
START_TEST(test_round_trip_equals_fake_quant) {
    enum { R = 12, K = 64 };
    static float x[R * K], y[R * K], yf[R * K];
    static uint8_t codes[R * K];
    qtk_rng r;
    qtk_rng_seed(&r, 3, 0);
    tu_fill_normal(&r, x, R * K, 1.0f);
    x[0] = NAN; // NaN has no code: stored as lo
    const struct { qtk_dtype dt; int bits; int sg; } types[] = {
        {QTK_I8, 8, 1}, {QTK_U8, 8, 0}, {QTK_I8, 5, 1}, {QTK_U8, 3, 0}, {QTK_I4, 4, 1}, {QTK_U4, 4, 0}, {QTK_I4, 2, 1}};
    int64_t shape[2] = {R, K};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++)
        for (int g = 0; g < 3; g++)
            for (int f = 0; f < 2; f++) {
                size_t np = g == 0 ? 1 : g == 1 ? R : R * K / 16;
                qtk_qparams p;
                ck_qtk(qtk_qparams_init(&p, types[t].bits, types[t].sg, types[t].sg, (qtk_granularity)g, g == 2 ? 1 : 0,
                                        16, np));
                p.formula = (qtk_fq_formula)f;
                int lo, hi;
                qtk_qrange(p.bits, p.is_signed, &lo, &hi);
                for (size_t k = 0; k < np; k++) {
                    p.scale[k] = 2.5f / (float)(hi - lo) + 0.001f * (float)k;
                    p.zero[k] = types[t].sg ? 0.0f : (float)((hi + lo + 1) / 2);
                }
                ck_qtk(qtk_quantize(&p, x, 2, shape, types[t].dt, codes));
                ck_qtk(qtk_dequantize(&p, codes, types[t].dt, 2, shape, y));
                ck_qtk(qtk_fake_quant(&p, x, yf, 2, shape));
                for (int i = 1; i < R * K; i++)
                    ck_assert_msg(y[i] == yf[i], "%s %d-bit gran %d formula %d: [%d] %g != %g", qtk_dtype_name(types[t].dt),
                                  p.bits, g, f, i, y[i], yf[i]);
                // codes are in range
                for (int i = 0; i < R * K; i++) {
                    int q;
                    if (types[t].dt == QTK_I8) q = ((int8_t *)codes)[i];
                    else if (types[t].dt == QTK_U8) q = codes[i];
                    else {
                        int nib = (codes[i / 2] >> ((i & 1) * 4)) & 15;
                        q = types[t].dt == QTK_I4 && nib >= 8 ? nib - 16 : nib;
                    }
                    ck_assert_int_ge(q, lo);
                    ck_assert_int_le(q, hi);
                    if (i == 0) ck_assert_int_eq(q, lo);
                }
                qtk_qparams_free(&p);
            }
}
END_TEST

START_TEST(test_nibble_order) {
    int8_t v[5] = {1, 2, -1, 7, -8}, back[5];
    uint8_t packed[3] = {0xAA, 0xAA, 0xAA};
    qtk_pack_int4(v, 5, packed);
    // element 2i in the low nibble, 2i+1 in the high nibble, odd tail's high nibble 0
    ck_assert_uint_eq(packed[0], 0x21);
    ck_assert_uint_eq(packed[1], 0x7F);
    ck_assert_uint_eq(packed[2], 0x08);
    qtk_unpack_i4(packed, 5, back);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(back[i], v[i]);
    uint8_t u[4];
    qtk_unpack_u4(packed, 4, u);
    ck_assert_uint_eq(u[0], 1);
    ck_assert_uint_eq(u[2], 15);
}
END_TEST

START_TEST(test_pack_round_trip_random) {
    qtk_rng r;
    qtk_rng_seed(&r, 11, 0);
    for (size_t n = 1; n < 300; n += 37) {
        int8_t v[300], back[300];
        uint8_t packed[150];
        uint8_t u[300], ub[300];
        for (size_t i = 0; i < n; i++) {
            v[i] = (int8_t)((int)qtk_rng_below(&r, 16) - 8);
            u[i] = (uint8_t)qtk_rng_below(&r, 16);
        }
        qtk_pack_int4(v, n, packed);
        qtk_unpack_i4(packed, n, back);
        ck_assert_mem_eq(v, back, n);
        qtk_pack_int4((const int8_t *)u, n, packed);
        qtk_unpack_u4(packed, n, ub);
        ck_assert_mem_eq(u, ub, n);
    }
}
END_TEST

START_TEST(test_code_type_errors) {
    float x[4] = {0};
    uint8_t c[4];
    int64_t shape[1] = {4};
    qtk_qparams p;
    ck_qtk(qtk_qparams_init(&p, 8, true, true, QTK_PER_TENSOR, 0, 0, 1));
    ck_assert_int_eq(qtk_quantize(&p, x, 1, shape, QTK_I4, c), QTK_ERR_ARG); // 8 bits do not fit a nibble
    ck_assert_int_eq(qtk_quantize(&p, x, 1, shape, QTK_U8, c), QTK_ERR_ARG); // signed into unsigned
    ck_assert_int_eq(qtk_quantize(&p, x, 1, shape, QTK_F32, c), QTK_ERR_ARG);
    p.bits = QTK_BITS_OFF;
    ck_assert_int_eq(qtk_quantize(&p, x, 1, shape, QTK_I8, c), QTK_ERR_ARG);
    ck_assert_int_eq(qtk_dequantize(&p, c, QTK_I8, 1, shape, x), QTK_ERR_ARG);
    qtk_qparams_free(&p);
}
END_TEST


// Index-mapped groups: the codes and values of the map spelled out per channel (the per-channel path)
START_TEST(test_index_codes) {
    const int64_t shape[2] = {9, 12};
    float x[108], y1[108], y2[108];
    int8_t c1[108], c2[108];
    for (int e = 0; e < 108; e++) x[e] = (float)((e * 29) % 41 - 20) / 7.0f;
    const int32_t idx[12] = {2, 0, 1, 1, 0, 2, 2, 2, 0, 1, 0, 0};
    qtk_qparams p, q;
    ck_qtk(qtk_qparams_init_index(&p, 8, true, true, 1, idx, 12, 3));
    ck_qtk(qtk_qparams_init(&q, 8, true, true, QTK_PER_CHANNEL, 1, 0, 12));
    const float s[3] = {0.02f, 0.015f, 0.04f};
    for (int g = 0; g < 3; g++) p.scale[g] = s[g];
    qtk_qparams_expand_index(&p, q.scale, q.zero);
    for (int c = 0; c < 12; c++) ck_assert_float_eq(q.scale[c], s[idx[c]]);
    ck_qtk(qtk_quantize(&p, x, 2, shape, QTK_I8, c1));
    ck_qtk(qtk_quantize(&q, x, 2, shape, QTK_I8, c2));
    ck_assert_mem_eq(c1, c2, sizeof c1);
    ck_qtk(qtk_dequantize(&p, c1, QTK_I8, 2, shape, y1));
    ck_qtk(qtk_dequantize(&q, c2, QTK_I8, 2, shape, y2));
    ck_assert_int_eq(tu_first_diff(y1, y2, 108), -1);
    qtk_qparams_free(&p), qtk_qparams_free(&q);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pack");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_round_trip_equals_fake_quant);
    tcase_add_test(tc, test_nibble_order);
    tcase_add_test(tc, test_pack_round_trip_random);
    tcase_add_test(tc, test_code_type_errors);
    tcase_add_test(tc, test_index_codes);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
