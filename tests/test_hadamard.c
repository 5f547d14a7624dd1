// Hadamard transforms: against explicit matrices (fixtures from PyTorch with
// Quamba's H12), orthogonality, symmetry, weight fusion.
#include "testutil.h"

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double m = 0, scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m / (scale > 0 ? scale : 1);
}

START_TEST(test_fixtures) {
    qtk_safetensors st;
    tu_open(&st, "hadamard.safetensors");
    cJSON *cases = tu_meta_json(&st, "cases"), *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cases) {
        int n = tu_json_int(c, "n"), rows = tu_json_int(c, "rows");
        char name[32];
        snprintf(name, sizeof name, "n%d", n);
        size_t nx, ny;
        float *x = tu_load(&st, name, "x", &nx), *y = tu_load(&st, name, "y", &ny);
        ck_qtk(qtk_hadamard_rows(x, (size_t)rows, (size_t)n));
        double d = max_rel_diff(x, y, nx);
        ck_assert_msg(d < 2e-6, "had(x) for n = %d differs from H x / sqrt(n) by %g (relative)", n, d);
        qtk_aligned_free(x);
        qtk_aligned_free(y);
        n_cases++;
    }
    ck_assert_int_eq(n_cases, 8);
    cJSON_Delete(cases);
    qtk_st_close(&st);
}
END_TEST

// Every supported size up to 8192 (and the unsupported ones in between).
START_TEST(test_supported_sizes) {
    int supported = 0;
    for (size_t n = 1; n <= 8192; n++) {
        size_t m;
        int expect = 0;
        const size_t bases[] = {1, 12, 20, 28, 40};
        for (int b = 0; b < 5; b++)
            if (n % bases[b] == 0 && ((n / bases[b]) & (n / bases[b] - 1)) == 0) expect = 1;
        ck_assert_int_eq(qtk_hadamard_supported(n, &m), expect);
        supported += expect;
    }
    // 2^k: 14, 12*2^k: 10, 20*2^k: 9 (40*2^k is among them), 28*2^k: 9
    ck_assert_int_eq(supported, 14 + 10 + 9 + 9);
    size_t m;
    ck_assert(qtk_hadamard_supported(768, &m) && m == 12);
    ck_assert(qtk_hadamard_supported(2560, &m) && m == 40); // Mamba-2.8B
    ck_assert(qtk_hadamard_supported(5120, &m) && m == 40);
    ck_assert(!qtk_hadamard_supported(0, &m));
    float x[36];
    ck_assert_int_eq(qtk_hadamard_rows(x, 1, 36), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "36"));
}
END_TEST

// H H^T = n I and H = H^T for every supported n <= 320 (explicit matrices).
START_TEST(test_orthogonal_symmetric) {
    for (size_t n = 1; n <= 320; n++) {
        if (!qtk_hadamard_supported(n, NULL)) continue;
        float *H = malloc(n * n * sizeof *H);
        ck_qtk(qtk_hadamard_matrix(n, H));
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                ck_assert_msg(H[i * n + j] == 1.0f || H[i * n + j] == -1.0f, "n=%zu: entry not +-1", n);
                ck_assert_msg(H[i * n + j] == H[j * n + i], "n=%zu: H not symmetric at (%zu,%zu)", n, i, j);
                double d = 0;
                for (size_t k = 0; k < n; k++) d += H[i * n + k] * H[j * n + k];
                ck_assert_msg(d == (i == j ? (double)n : 0.0), "n=%zu: (H H^T)[%zu][%zu] = %g", n, i, j, d);
            }
        free(H);
    }
}
END_TEST

// had(had(x)) = x and ||had(x)|| = ||x|| for every supported n <= 8192;
// had(x) = H x / sqrt(n) for the non-power-of-two bases against the matrix.
START_TEST(test_involution_and_matrix) {
    qtk_rng r;
    qtk_rng_seed(&r, 42, 0);
    float *x = malloc(2 * 8192 * sizeof *x), *y = malloc(2 * 8192 * sizeof *y);
    for (size_t n = 1; n <= 8192; n++) {
        if (!qtk_hadamard_supported(n, NULL)) continue;
        tu_fill_normal(&r, x, 2 * n, 1.0f);
        memcpy(y, x, 2 * n * sizeof *x);
        ck_qtk(qtk_hadamard_rows(y, 2, n));
        double nx = 0, ny = 0;
        for (size_t i = 0; i < n; i++) {
            nx += (double)x[i] * x[i];
            ny += (double)y[i] * y[i];
        }
        ck_assert_msg(fabs(nx - ny) <= 1e-5 * nx, "n=%zu: norm %g -> %g", n, nx, ny);
        ck_qtk(qtk_hadamard_rows(y, 2, n));
        double d = max_rel_diff(y, x, 2 * n);
        ck_assert_msg(d < 1e-5, "n=%zu: had(had(x)) differs from x by %g", n, d);
    }
    const size_t ns[] = {12, 20, 28, 40, 80, 112, 160, 2560};
    for (int t = 0; t < 8; t++) {
        size_t n = ns[t];
        float *H = malloc(n * n * sizeof *H);
        ck_qtk(qtk_hadamard_matrix(n, H));
        tu_fill_normal(&r, x, n, 1.0f);
        memcpy(y, x, n * sizeof *x);
        ck_qtk(qtk_hadamard_rows(y, 1, n));
        for (size_t i = 0; i < n; i++) {
            double acc = 0;
            for (size_t j = 0; j < n; j++) acc += (double)H[i * n + j] * x[j];
            acc /= sqrt((double)n);
            ck_assert_msg(fabs(acc - y[i]) < 1e-5 * (1 + fabs(acc)), "n=%zu row %zu: %g vs %g", n, i, y[i], acc);
        }
        free(H);
    }
    free(x);
    free(y);
}
END_TEST

// Fusing into a Linear W (O, I): W_in had(x) = W x; W_out x = had(W x).
START_TEST(test_fuse) {
    enum { O = 40, I = 24 };
    float W[O * I], Wi[O * I], Wo[O * I], x[I], hx[I], y[O], y2[O], hy[O];
    qtk_rng r;
    qtk_rng_seed(&r, 8, 0);
    tu_fill_normal(&r, W, O * I, 1.0f);
    tu_fill_normal(&r, x, I, 1.0f);
    memcpy(Wi, W, sizeof W);
    memcpy(Wo, W, sizeof W);
    ck_qtk(qtk_hadamard_fuse_input(Wi, O, I));
    ck_qtk(qtk_hadamard_fuse_output(Wo, O, I));
    memcpy(hx, x, sizeof x);
    ck_qtk(qtk_hadamard_rows(hx, 1, I));
    for (int o = 0; o < O; o++) {
        double a = 0, b = 0, c = 0;
        for (int i = 0; i < I; i++) {
            a += (double)W[o * I + i] * x[i];
            b += (double)Wi[o * I + i] * hx[i];
            c += (double)Wo[o * I + i] * x[i];
        }
        y[o] = (float)a;
        y2[o] = (float)b;
        hy[o] = (float)c;
    }
    ck_assert_msg(max_rel_diff(y2, y, O) < 1e-5, "input fusion broke W x");
    ck_qtk(qtk_hadamard_rows(y, 1, O));
    ck_assert_msg(max_rel_diff(hy, y, O) < 1e-5, "output fusion is not had(W x)");
    float bad[3 * 36];
    ck_assert_int_eq(qtk_hadamard_fuse_output(bad, 3, 36), QTK_ERR_ARG);
}
END_TEST

int main(void) {
    Suite *s = suite_create("hadamard");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fixtures);
    tcase_add_test(tc, test_supported_sizes);
    tcase_add_test(tc, test_orthogonal_symmetric);
    tcase_add_test(tc, test_involution_and_matrix);
    tcase_add_test(tc, test_fuse);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
