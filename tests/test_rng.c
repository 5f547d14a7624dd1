// PCG32: the reference sequence, bounds, determinism, distribution sanity.
#include "testutil.h"

// pcg32-demo: pcg32_srandom_r(&rng, 42u, 54u), first six outputs.
START_TEST(test_reference_sequence) {
    qtk_rng r;
    qtk_rng_seed(&r, 42u, 54u);
    const uint32_t want[6] = {0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e};
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(qtk_rng_u32(&r), want[i]);
}
END_TEST

START_TEST(test_determinism_and_streams) {
    qtk_rng a, b, c;
    qtk_rng_seed(&a, 7, 0);
    qtk_rng_seed(&b, 7, 0);
    qtk_rng_seed(&c, 7, 1);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = qtk_rng_u32(&a);
        ck_assert_uint_eq(x, qtk_rng_u32(&b));
        same_c += x == qtk_rng_u32(&c);
    }
    ck_assert_int_lt(same_c, 5);
}
END_TEST

START_TEST(test_ranges_and_distribution) {
    qtk_rng r;
    qtk_rng_seed(&r, 1, 0);
    enum { N = 200000 };
    int counts[10] = {0};
    double sum = 0, sum2 = 0, usum = 0;
    for (int i = 0; i < N; i++) {
        uint32_t k = qtk_rng_below(&r, 10);
        ck_assert_uint_lt(k, 10);
        counts[k]++;
        float u = qtk_rng_uniform(&r);
        ck_assert(u >= 0.0f && u < 1.0f);
        usum += u;
        float v = qtk_rng_range(&r, -2.0f, 3.0f);
        ck_assert(v >= -2.0f && v < 3.0f);
        double g = qtk_rng_normal(&r);
        sum += g;
        sum2 += g * g;
    }
    // chi-square with 9 degrees of freedom: 27.9 is the 0.999 quantile
    double chi = 0;
    for (int k = 0; k < 10; k++) chi += (counts[k] - N / 10.0) * (counts[k] - N / 10.0) / (N / 10.0);
    ck_assert_msg(chi < 27.9, "chi-square %g", chi);
    ck_assert(fabs(usum / N - 0.5) < 0.005);
    ck_assert(fabs(sum / N) < 0.01);
    ck_assert(fabs(sum2 / N - 1.0) < 0.02);
    ck_assert_uint_eq(qtk_rng_below(&r, 1), 0);
}
END_TEST

START_TEST(test_sample_and_shuffle) {
    qtk_rng r;
    qtk_rng_seed(&r, 3, 0);
    uint32_t out[100], scratch[1000], seen[1000] = {0};
    qtk_rng_sample(&r, 1000, 100, out, scratch);
    for (int i = 0; i < 100; i++) {
        ck_assert_uint_lt(out[i], 1000);
        ck_assert_uint_eq(seen[out[i]], 0);
        seen[out[i]] = 1;
    }
    uint32_t v[50];
    for (uint32_t i = 0; i < 50; i++) v[i] = i;
    qtk_rng_shuffle(&r, v, 50);
    uint32_t total = 0;
    int moved = 0;
    for (uint32_t i = 0; i < 50; i++) {
        total += v[i];
        moved += v[i] != i;
    }
    ck_assert_uint_eq(total, 49 * 50 / 2);
    ck_assert_int_gt(moved, 25);
}
END_TEST

// The spec's test vectors (evolq-search.md section 6), measured with CPython and NumPy.
START_TEST(test_mt19937_reference_vectors) {
    qtk_mt19937 py, np_;
    qtk_mt_seed_python(&py, 0);
    const double want_py[10] = {0.8444218515250481, 0.7579544029403025, 0.420571580830845, 0.25891675029296335,
                                0.5112747213686085, 0.4049341374504143, 0.7837985890347726, 0.30331272607892745,
                                0.4765969541523558, 0.5833820394550312};
    const int idx[10] = {12, 11, 6, 3, 7, 6, 11, 4, 7, 8};
    for (int i = 0; i < 10; i++) {
        double r = qtk_mt_double(&py);
        ck_assert_msg(r == want_py[i], "random() #%d = %.17g, CPython %.17g", i, r, want_py[i]);
        ck_assert_int_eq((int)floor(r * 15.0), idx[i]); // random.choices over 15 entries
    }
    qtk_mt_seed_numpy(&np_, 0);
    const double want_u[4] = {9.762700785464953e-05, 4.303787327448389e-04, 2.0552675214328769e-04, 8.976636599379367e-05};
    for (int i = 0; i < 4; i++) {
        // np.random.uniform(-1e-3, 1e-3) = -eps + (2 eps) * U
        double u = -1e-3 + (2e-3) * qtk_mt_double(&np_);
        ck_assert_msg(u == want_u[i], "uniform #%d = %.17g, NumPy %.17g", i, u, want_u[i]);
    }
    qtk_mt_seed_numpy(&np_, 0);
    ck_assert(qtk_mt_double(&np_) == 0.5488135039273248); // np.random.random_sample()
    qtk_mt_seed_numpy(&np_, 0);
    ck_assert(-1e-4 + (2e-4) * qtk_mt_double(&np_) == 9.762700785464955e-06);
    ck_assert(-1e-4 + (2e-4) * qtk_mt_double(&np_) == 4.303787327448391e-05);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_reference_sequence);
    tcase_add_test(tc, test_determinism_and_streams);
    tcase_add_test(tc, test_ranges_and_distribution);
    tcase_add_test(tc, test_sample_and_shuffle);
    tcase_add_test(tc, test_mt19937_reference_vectors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
