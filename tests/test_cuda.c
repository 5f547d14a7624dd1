// CUDA twins against the CPU scalar reference. Without a device (or in a
// CPU-only build) the suite prints "skipped: no CUDA device" and checks that
// the API says so instead of failing obscurely.
#include "testutil.h"

static int have_gpu;

START_TEST(test_no_device_behaviour) {
    if (have_gpu) return;
    void *p = (void *)1;
    ck_assert_int_eq(qtk_cuda_device_count(), 0);
    qtk_status st = qtk_cuda_malloc(&p, 16);
    ck_assert_int_ne(st, QTK_OK);
    ck_assert_ptr_null(p);
    ck_assert(strlen(qtk_last_error()) > 0);
}
END_TEST

static void compare_on_gpu(qtk_granularity g, int bits, int sg, qtk_fq_formula f, const int64_t *shape, int axis,
                           int group, qtk_rng *r) {
    size_t n = (size_t)(shape[0] * shape[1] * shape[2]);
    float *x = malloc(n * 4), *y = malloc(n * 4), *yr = malloc(n * 4);
    size_t outer, L, inner;
    ck_qtk(qtk_axis_view(3, shape, axis, &outer, &L, &inner));
    size_t np = g == QTK_PER_TENSOR ? 1 : g == QTK_PER_CHANNEL ? L : outer * (L / group) * inner;
    qtk_qparams p;
    ck_qtk(qtk_qparams_init(&p, bits, sg, false, g, axis, group, np));
    p.formula = f;
    int lo, hi;
    qtk_qrange(bits, sg, &lo, &hi);
    for (size_t k = 0; k < np; k++) {
        p.scale[k] = qtk_rng_range(r, 1e-3f, 0.5f);
        p.zero[k] = (float)(lo + (int)qtk_rng_below(r, (uint32_t)(hi - lo + 1)));
    }
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(r, -40.0f, 40.0f);
    x[0] = -0.0f;
    x[1] = INFINITY;
    x[2] = NAN;
    ck_qtk(qtk_fake_quant_ref(&p, x, yr, 3, shape));
    float *dx, *dy, *ds, *dz;
    ck_qtk(qtk_cuda_malloc((void **)&dx, n * 4));
    ck_qtk(qtk_cuda_malloc((void **)&dy, n * 4));
    ck_qtk(qtk_cuda_malloc((void **)&ds, np * 4));
    ck_qtk(qtk_cuda_malloc((void **)&dz, np * 4));
    ck_qtk(qtk_cuda_memcpy_h2d(dx, x, n * 4));
    ck_qtk(qtk_cuda_memcpy_h2d(ds, p.scale, np * 4));
    ck_qtk(qtk_cuda_memcpy_h2d(dz, p.zero, np * 4));
    if (g == QTK_PER_TENSOR) ck_qtk(qtk_fake_quant_per_tensor_cuda(dx, dy, n, p.scale[0], p.zero[0], lo, hi, f));
    else if (g == QTK_PER_CHANNEL) ck_qtk(qtk_fake_quant_per_channel_cuda(dx, dy, outer, L, inner, ds, dz, lo, hi, f));
    else ck_qtk(qtk_fake_quant_per_group_cuda(dx, dy, outer, L, inner, (size_t)group, ds, dz, lo, hi, f));
    ck_qtk(qtk_cuda_synchronize());
    ck_qtk(qtk_cuda_memcpy_d2h(y, dy, n * 4));
    long d = tu_first_diff(y, yr, n);
    ck_assert_msg(d < 0, "gran %d bits %d signed %d formula %d: GPU y[%ld] = %a, CPU %a (x = %a)", g, bits, sg, f, d,
                  d >= 0 ? y[d] : 0, d >= 0 ? yr[d] : 0, d >= 0 ? x[d] : 0);
    qtk_cuda_free(dx);
    qtk_cuda_free(dy);
    qtk_cuda_free(ds);
    qtk_cuda_free(dz);
    qtk_qparams_free(&p);
    free(x);
    free(y);
    free(yr);
}

START_TEST(test_fake_quant_gpu_equals_cpu) {
    if (!have_gpu) return;
    qtk_rng r;
    qtk_rng_seed(&r, 77, 0);
    const int64_t shape[3] = {8, 192, 130};
    int cases = 0;
    for (int bits = 2; bits <= 8; bits++)
        for (int sg = 0; sg < 2; sg++)
            for (int f = 0; f < 2; f++) {
                compare_on_gpu(QTK_PER_TENSOR, bits, sg, (qtk_fq_formula)f, shape, 0, 0, &r);
                compare_on_gpu(QTK_PER_CHANNEL, bits, sg, (qtk_fq_formula)f, shape, 1, 0, &r);
                compare_on_gpu(QTK_PER_CHANNEL, bits, sg, (qtk_fq_formula)f, shape, 2, 0, &r);
                compare_on_gpu(QTK_PER_GROUP, bits, sg, (qtk_fq_formula)f, shape, 1, 64, &r);
                cases += 4;
            }
    ck_assert_int_eq(cases, 112);
}
END_TEST

int main(void) {
    have_gpu = qtk_cuda_device_count() > 0;
    if (!have_gpu)
        printf("skipped: no CUDA device (%s build): GPU-vs-CPU checks not run\n",
               qtk_cuda_built() ? "CUDA" : "CPU-only");
    else {
        char info[256];
        qtk_cuda_device_info(0, info, sizeof info);
        printf("CUDA device 0: %s\n", info);
    }
    Suite *s = suite_create("cuda");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_no_device_behaviour);
    tcase_add_test(tc, test_fake_quant_gpu_equals_cpu);
    suite_add_tcase(s, tc);
    return tu_run_mode(s, 0);
}
