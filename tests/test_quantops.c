// Integer LayerNorm and weight bias correction against the spec's PyTorch
// implementation (fixtures run on CUDA).
#include "testutil.h"

START_TEST(test_int_layernorm) {
    qtk_safetensors st;
    tu_open(&st, "quantops.safetensors");
    cJSON *cases = tu_meta_json(&st, "cases"), *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        if (strncmp(name, "intln_", 6) != 0) continue;
        size_t R = (size_t)tu_json_int(c, "rows"), C = (size_t)tu_json_int(c, "C"), n;
        int pc = tu_json_int(c, "per_channel");
        float *x = tu_load(&st, name, "x", &n), *s_in = tu_load(&st, name, "s_in", &n);
        float *s_out = tu_load(&st, name, "s_out", &n), *g = tu_load(&st, name, "gamma", &n);
        float *b = tu_load(&st, name, "beta", &n), *want = tu_load(&st, name, "y", &n);
        float *y = malloc(R * C * sizeof *y);
        qtk_int_layernorm(x, y, R, C, s_in, pc, s_out[0], g, b);
        // the spec allows +-1 code at rounding boundaries; count them
        size_t off_by_one = 0;
        for (size_t i = 0; i < R * C; i++) {
            float d = fabsf(y[i] - want[i]) / s_out[0];
            ck_assert_msg(d < 1.001f, "%s [%zu]: y = %a, reference %a (%.3f codes apart)", name, i, y[i], want[i], d);
            off_by_one += d > 0.5f;
        }
        ck_assert_msg(off_by_one <= R * C / 1000, "%s: %zu of %zu outputs off by one code", name, off_by_one, R * C);
        // in place gives the same
        memcpy(y, x, R * C * sizeof *y);
        qtk_int_layernorm(y, y, R, C, s_in, pc, s_out[0], g, b);
        for (size_t i = 0; i < R * C; i++) ck_assert(fabsf(y[i] - want[i]) / s_out[0] < 1.001f);
        free(y);
        float *bufs[] = {x, s_in, s_out, g, b, want};
        for (int i = 0; i < 6; i++) qtk_aligned_free(bufs[i]);
        checked++;
    }
    ck_assert_int_eq(checked, 3);
    cJSON_Delete(cases);
    qtk_st_close(&st);
}
END_TEST

START_TEST(test_mn_decomposition) {
    float M, N;
    qtk_int_ln_mn(1.0f, &M, &N); // 1 * 2^7 = 128
    ck_assert(M == 128.0f && N == 7.0f);
    qtk_int_ln_mn(0.0f, &M, &N); // log2(0) = -inf: N = 31, M = 0
    ck_assert(M == 0.0f && N == 31.0f);
    qtk_int_ln_mn(300.0f, &M, &N); // N clamps at 0
    ck_assert(M == 255.0f && N == 0.0f);
    // a few ulp below a power of two, float32 log2 rounds up to k: N one smaller, M = 127
    float a = 8.0f * (1.0f - 0x1p-24f);
    qtk_int_ln_mn(a, &M, &N);
    ck_assert_msg(N == 4.0f && M == 127.0f, "a = %a: M = %g, N = %g", a, M, N);
    for (float v = 0.001f; v < 200.0f; v *= 1.37f) {
        qtk_int_ln_mn(v, &M, &N);
        ck_assert(M >= 127.0f && M <= 255.0f);
        ck_assert(fabsf(M / exp2f(N) - v) <= v / 64.0f);
    }
}
END_TEST

START_TEST(test_bias_correction) {
    qtk_safetensors st;
    tu_open(&st, "quantops.safetensors");
    cJSON *cases = tu_meta_json(&st, "cases"), *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        if (strncmp(name, "bcorr_", 6) != 0) continue;
        int nd;
        int64_t shape[8];
        tu_json_shape(c, &nd, shape);
        size_t n;
        float *w = tu_load(&st, name, "w", &n), *wq = tu_load(&st, name, "wq", &n), *want = tu_load(&st, name, "out", &n);
        size_t O = (size_t)shape[0], K = n / O;
        qtk_bias_correct(w, wq, O, K);
        // GPU reductions vs double accumulators: a few ulp of the weights' magnitude
        for (size_t r = 0; r < O; r++) {
            float mx = 0;
            for (size_t k = 0; k < K; k++) mx = fmaxf(mx, fabsf(want[r * K + k]));
            for (size_t k = 0; k < K; k++)
                ck_assert_msg(fabsf(wq[r * K + k] - want[r * K + k]) <= 8 * 0x1p-23f * mx, "%s [%zu,%zu]: %a vs %a", name,
                              r, k, wq[r * K + k], want[r * K + k]);
        }
        // the corrected row has the float row's mean and std
        for (size_t r = 0; r < O; r++) {
            double m1 = 0, m2 = 0;
            for (size_t k = 0; k < K; k++) {
                m1 += w[r * K + k];
                m2 += wq[r * K + k];
            }
            ck_assert(fabs(m1 - m2) / (double)K < 1e-6);
        }
        qtk_aligned_free(w);
        qtk_aligned_free(wq);
        qtk_aligned_free(want);
        checked++;
    }
    ck_assert_int_eq(checked, 3);
    cJSON_Delete(cases);
    qtk_st_close(&st);
}
END_TEST

// The affine integer form of the (bias-corrected) fake-quantized weights against the float path.
START_TEST(test_weight_affine) {
    const size_t O = 9, K = 70, ldc = 72;
    float *w = malloc(O * K * sizeof *w), *fq = malloc(O * K * sizeof *fq), s[9], z[9];
    int8_t *codes = malloc(O * ldc);
    double alpha[9], gamma[9];
    int32_t bsum[9];
    unsigned seed = 7;
    for (size_t i = 0; i < O * K; i++) {
        seed = seed * 1103515245u + 12345u;
        w[i] = ((float)(seed >> 8) / 16777216.0f - 0.3f) * (float)(1 + i / K);
    }
    const int his[2] = {15, 255};
    for (int bits = 0; bits < 2; bits++)
        for (int f = 0; f < 2; f++)
            for (int bc = 0; bc < 2; bc++) {
                int hi = his[bits];
                for (size_t r = 0; r < O; r++) { // min-max per row, asymmetric unsigned
                    float mn = 0, mx = 0;
                    for (size_t k = 0; k < K; k++) mn = fminf(mn, w[r * K + k]), mx = fmaxf(mx, w[r * K + k]);
                    s[r] = (mx - mn) / (float)hi;
                    z[r] = rintf(-mn / s[r]);
                    for (size_t k = 0; k < K; k++)
                        fq[r * K + k] = qtk_fake_quant_scalar(w[r * K + k], s[r], z[r], 0, hi, f ? QTK_FQ_TORCH : QTK_FQ_REF);
                }
                if (bc) qtk_bias_correct(w, fq, O, K);
                ck_qtk(qtk_weight_affine(w, O, K, s, z, 0, hi, f ? QTK_FQ_TORCH : QTK_FQ_REF, bc, codes, ldc, alpha, gamma, bsum));
                for (size_t r = 0; r < O; r++) {
                    float mx = 0;
                    int32_t sum = 0;
                    for (size_t k = 0; k < K; k++) mx = fmaxf(mx, fabsf(fq[r * K + k]));
                    for (size_t k = 0; k < K; k++) {
                        int c = codes[r * ldc + k] + qtk_code_offset(hi);
                        ck_assert(c >= 0 && c <= hi);
                        sum += codes[r * ldc + k];
                        double v = alpha[r] * codes[r * ldc + k] + gamma[r];
                        ck_assert_msg(fabs(v - fq[r * K + k]) <= 8 * 0x1p-23 * mx, "hi %d f %d bc %d [%zu,%zu]: %.9g vs %.9g",
                                      hi, f, bc, r, k, v, (double)fq[r * K + k]);
                    }
                    ck_assert_int_eq(sum, bsum[r]);
                }
            }
    ck_assert_int_eq(qtk_weight_affine(w, O, K, s, z, -200, 15, QTK_FQ_REF, 1, codes, ldc, alpha, gamma, bsum), QTK_ERR_ARG);
    ck_assert_int_eq(qtk_weight_affine(w, O, K, s, z, 0, 15, QTK_FQ_REF, 1, codes, K - 1, alpha, gamma, bsum), QTK_ERR_ARG);
    free(w);
    free(fq);
    free(codes);
}
END_TEST

int main(void) {
    Suite *s = suite_create("quantops");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_int_layernorm);
    tcase_add_test(tc, test_mn_decomposition);
    tcase_add_test(tc, test_bias_correction);
    tcase_add_test(tc, test_weight_affine);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
