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

// Observer twins: per-channel and per-tensor min/max (NaN skipped) equal the CPU's; the error sums
// OMSE and PTF score with agree with the CPU's double sums to rounding; the GPU-scored OMSE / PTF
// parameters equal the CPU's.
START_TEST(test_observer_twins) {
    if (!have_gpu) return;
    qtk_rng r;
    qtk_rng_seed(&r, 21, 0);
    const size_t outer = 3000, C = 96, n = outer * C;
    float *x = malloc(n * 4), *dx;
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(&r, -3.0f, 3.0f) * (1.0f + (float)(i % C) / 8.0f);
    x[17] = NAN;
    x[5 * C + 3] = 40.0f;
    ck_qtk(qtk_cuda_malloc((void **)&dx, n * 4));
    ck_qtk(qtk_cuda_memcpy_h2d(dx, x, n * 4));
    float mn[96], mx[96], gmn[96], gmx[96];
    ck_qtk(qtk_channel_minmax(x, outer, C, 1, mn, mx));
    ck_qtk(qtk_channel_minmax_cuda(dx, outer, C, 1, gmn, gmx));
    ck_assert(!memcmp(mn, gmn, sizeof mn) && !memcmp(mx, gmx, sizeof mx));
    ck_qtk(qtk_channel_minmax(x, 1, 1, n, mn, mx));
    ck_qtk(qtk_channel_minmax_cuda(dx, 1, 1, n, gmn, gmx));
    ck_assert(mn[0] == gmn[0] && mx[0] == gmx[0] && mx[0] == 40.0f);
    x[17] = 0.5f; // the error sums below see no NaN
    ck_qtk(qtk_cuda_memcpy_h2d(dx, x, n * 4));
    float s[3] = {0.03f, 0.05f, 0.2f}, z[3] = {128.0f, 100.0f, 17.0f};
    double sse[3];
    ck_qtk(qtk_fake_quant_sse_multi_cuda(dx, n, s, z, 3, 0, 255, sse));
    for (int j = 0; j < 3; j++) {
        double ref = qtk_fake_quant_sse(x, n, s[j], z[j], 0, 255);
        ck_assert_msg(fabs(sse[j] - ref) <= 1e-12 * ref, "candidate %d: %.17g vs %.17g", j, sse[j], ref);
    }
    // OMSE and PTF observers: the parameters chosen from GPU scores equal the CPU's
    qtk_observer om, pt;
    ck_qtk(qtk_observer_init(&om, QTK_OBS_OMSE, 8, false, false, 0));
    ck_qtk(qtk_observer_init(&pt, QTK_OBS_PTF, 8, false, true, -1));
    int64_t shape[2] = {(int64_t)outer, (int64_t)C};
    ck_qtk(qtk_observer_update(&om, x, 2, shape));
    ck_qtk(qtk_observer_update(&pt, x, 2, shape));
    qtk_qparams a, b;
    ck_qtk(qtk_observer_params(&om, x, 2, shape, &a));
    ck_qtk(qtk_observer_params_cuda(&om, dx, 2, shape, &b));
    ck_assert(a.scale[0] == b.scale[0] && a.zero[0] == b.zero[0]);
    qtk_qparams_free(&a);
    qtk_qparams_free(&b);
    ck_qtk(qtk_observer_params(&pt, x, 2, shape, &a));
    ck_qtk(qtk_observer_params_cuda(&pt, dx, 2, shape, &b));
    ck_assert_uint_eq(a.n, C);
    ck_assert(!memcmp(a.scale, b.scale, C * 4) && !memcmp(a.zero, b.zero, C * 4));
    int factors[4] = {0, 0, 0, 0};
    for (size_t c = 0; c < C; c++) factors[(int)log2f(a.scale[c] / a.scale[0] + 0.5f) & 3]++;
    printf("observer twins: OMSE scale %.6g, PTF factors used:", b.scale[0]);
    for (int k = 0; k < 4; k++) printf(" %d", factors[k]);
    printf("\n");
    qtk_qparams_free(&a);
    qtk_qparams_free(&b);
    qtk_observer_free(&om);
    qtk_observer_free(&pt);
    qtk_cuda_free(dx);
    free(x);
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
    tcase_add_test(tc, test_observer_twins);
    suite_add_tcase(s, tc);
    return tu_run_mode(s, 0);
}
