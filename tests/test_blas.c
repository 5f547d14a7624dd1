// qtk_sgemm / qtk_sgemv (core/blas.h): the same bits at 1, 2, 3, 5 and 16 threads, and row blocks equal to
// one unsplit single-threaded OpenBLAS call (the arithmetic the reference fixtures were checked against),
// down to blocks of one row unit of the kernel family this machine runs.
#include <cblas.h>
#include <omp.h>

#include "blas.h"
#include "testutil.h"

static float *rnd(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof *x);
    qtk_rng r;
    qtk_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(&r, -1, 1);
    return x;
}

START_TEST(test_sgemm_threads_and_unsplit) {
    // (M, N, K, trans_a, trans_b): row blocks, column blocks (few rows), one call (small), odd sizes
    const int cases[][5] = {{6304, 384, 384, 0, 1}, {1703, 256, 64, 0, 1}, {400, 192, 64, 1, 0},
                            {401, 1000, 33, 1, 1},  {512, 3072, 768, 0, 1}, {8, 3072, 768, 0, 1},
                            {100, 100, 64, 0, 1},   {17, 17, 64, 0, 0}};
    const int threads[] = {1, 2, 3, 5, 16};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int M = cases[c][0], N = cases[c][1], K = cases[c][2];
        bool ta = cases[c][3], tb = cases[c][4];
        float *A = rnd((size_t)M * K, 1 + c), *B = rnd((size_t)K * N, 100 + c), *C0 = rnd((size_t)M * N, 7);
        float *ref = malloc((size_t)M * N * sizeof *ref), *got = malloc((size_t)M * N * sizeof *got);
        int lda = ta ? M : K, ldb = tb ? K : N;
        for (int t = 0; t < 5; t++) {
            omp_set_num_threads(threads[t]);
            memcpy(got, C0, (size_t)M * N * sizeof *got);
            qtk_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, got, N);
            if (t == 0) memcpy(ref, got, (size_t)M * N * sizeof *ref);
            long d = tu_first_diff(ref, got, (size_t)M * N);
            ck_assert_msg(d < 0, "%dx%dx%d: element %ld differs between 1 and %d threads", M, N, K, d, threads[t]);
        }
        if (M >= 2 * QTK_GEMM_BLOCK) { // row blocks: the bits of one unsplit call
            memcpy(got, C0, (size_t)M * N * sizeof *got);
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 0.5f, A, lda,
                        B, ldb, 0.25f, got, N);
            long d = tu_first_diff(ref, got, (size_t)M * N);
            ck_assert_msg(d < 0, "%dx%dx%d: row blocks differ from one unsplit call at element %ld", M, N, K, d);
        }
        free(A), free(B), free(C0), free(ref), free(got);
    }
    omp_set_num_threads(omp_get_num_procs());
}
END_TEST

// qtk_blas_row_unit is right for this machine's kernel family: blocks of one unit (the 16-thread split of
// a 512-token prefill uses 3) give the unsplit call's bits, in both layouts of B
START_TEST(test_row_unit) {
    qtk_blas_single_thread(); // the unsplit reference is one single-threaded call
    const int unit = qtk_blas_row_unit();
    ck_assert_msg(unit >= 1 && QTK_GEMM_BLOCK % unit == 0, "row unit %d of %s", unit, qtk_blas_core());
    const int shapes[][3] = {{512, 3072, 768}, {200, 1701, 333}, {37, 1000, 384}};
    for (int s = 0; s < 3; s++)
        for (int tb = 0; tb < 2; tb++) {
            const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldb = tb ? K : N;
            float *A = rnd((size_t)M * K, 11 + s), *B = rnd((size_t)K * N, 21 + s);
            float *ref = calloc((size_t)M * N, sizeof *ref), *got = calloc((size_t)M * N, sizeof *got);
            const enum CBLAS_TRANSPOSE t = tb ? CblasTrans : CblasNoTrans;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, t, M, N, K, 1.0f, A, K, B, ldb, 0.0f, ref, N);
            for (int o = 0; o < M; o += unit)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, t, M - o < unit ? M - o : unit, N, K, 1.0f, A + (size_t)o * K, K, B,
                            ldb, 0.0f, got + (size_t)o * N, N);
            long d = tu_first_diff(ref, got, (size_t)M * N);
            ck_assert_msg(d < 0, "%s kernels: blocks of %d rows differ from one call at element %ld of %dx%dx%d",
                          qtk_blas_core(), unit, d, M, N, K);
            free(A), free(B), free(ref), free(got);
        }
}
END_TEST

START_TEST(test_sgemv_threads) {
    const int N = 3072, K = 768;
    float *W = rnd((size_t)N * K, 3), *x = rnd(K, 4), y1[3072], y[3072];
    const int threads[] = {1, 2, 3, 5};
    for (int t = 0; t < 4; t++) {
        omp_set_num_threads(threads[t]);
        qtk_sgemv(N, K, W, K, x, t ? y : y1);
        if (t) ck_assert_msg(tu_first_diff(y1, y, N) < 0, "sgemv differs at %d threads", threads[t]);
    }
    // against the plain product in double, within float rounding
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += (double)W[(size_t)i * K + k] * x[k];
        ck_assert_msg(fabs(s - y1[i]) <= 1e-4 * (1 + fabs(s)), "row %d: %g vs %g", i, y1[i], s);
    }
    free(W), free(x);
    omp_set_num_threads(omp_get_num_procs());
}
END_TEST

int main(void) {
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("blas");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sgemm_threads_and_unsplit);
    tcase_add_test(tc, test_row_unit);
    tcase_add_test(tc, test_sgemv_threads);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
