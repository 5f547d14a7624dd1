// CUDA twins against the CPU scalar reference. Without a device (or in a
// CPU-only build) the suite prints "skipped: no CUDA device" and checks that
// the API says so instead of failing obscurely.
#include "testutil.h"
#include "../core/comm.h"

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

// Hadamard, real quantization / packing and quantile twins: bit-identical to the CPU.
START_TEST(test_hadamard_pack_quantile_twins) {
    if (!have_gpu) return;
    qtk_rng r;
    qtk_rng_seed(&r, 33, 0);
    const size_t sizes[] = {64, 96, 80, 56, 640, 4096, 12};
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        size_t n = sizes[t], rows = 37, len = rows * n;
        float *x = malloc(len * 4), *y = malloc(len * 4), *dx;
        for (size_t i = 0; i < len; i++) x[i] = qtk_rng_range(&r, -5.0f, 5.0f);
        ck_qtk(qtk_cuda_malloc((void **)&dx, len * 4));
        ck_qtk(qtk_cuda_memcpy_h2d(dx, x, len * 4));
        ck_qtk(qtk_hadamard_rows(x, rows, n));
        ck_qtk(qtk_hadamard_rows_cuda(dx, rows, n));
        ck_qtk(qtk_cuda_memcpy_d2h(y, dx, len * 4));
        ck_assert_msg(!memcmp(x, y, len * 4), "Hadamard %zu: GPU differs from the CPU", n);
        qtk_cuda_free(dx);
        free(x);
        free(y);
    }
    float *dummy;
    ck_qtk(qtk_cuda_malloc((void **)&dummy, 4 * 14));
    ck_assert_int_eq(qtk_hadamard_rows_cuda(dummy, 1, 14), QTK_ERR_ARG); // 14 has no Hadamard matrix
    qtk_cuda_free(dummy);
    // bias correction of fake-quantized weights
    {
        const size_t O = 50, K = 384;
        float *w = malloc(O * K * 4), *wq = malloc(O * K * 4), *gq = malloc(O * K * 4), *dw, *dq;
        for (size_t i = 0; i < O * K; i++) {
            w[i] = qtk_rng_range(&r, -0.1f, 0.1f);
            wq[i] = rintf(w[i] / 0.013f) * 0.013f;
        }
        ck_qtk(qtk_cuda_malloc((void **)&dw, O * K * 4));
        ck_qtk(qtk_cuda_malloc((void **)&dq, O * K * 4));
        ck_qtk(qtk_cuda_memcpy_h2d(dw, w, O * K * 4));
        ck_qtk(qtk_cuda_memcpy_h2d(dq, wq, O * K * 4));
        qtk_bias_correct(w, wq, O, K);
        ck_qtk(qtk_bias_correct_cuda(dw, dq, O, K));
        ck_qtk(qtk_cuda_memcpy_d2h(gq, dq, O * K * 4));
        ck_assert_msg(!memcmp(wq, gq, O * K * 4), "bias correction: GPU differs from the CPU");
        qtk_cuda_free(dw);
        qtk_cuda_free(dq);
        free(w);
        free(wq);
        free(gq);
    }
    // the affine integer form of the bias-corrected weights: codes and row sums equal, alpha / gamma within
    // float32 rounding of the row statistics
    {
        const size_t O = 40, K = 300, ldc = 304;
        float *w = malloc(O * K * 4), sz[80], *dw, *dsz;
        for (size_t i = 0; i < O * K; i++) w[i] = qtk_rng_range(&r, -0.1f, 0.1f) * (float)(1 + i % 7);
        for (size_t o = 0; o < O; o++) sz[o] = 0.011f + 0.001f * (float)o, sz[O + o] = (float)(o % 16);
        int8_t *c1 = malloc(O * ldc), *c2 = malloc(O * ldc), *dc;
        double a1[40], a2[40], g1[40], g2[40], *dd;
        int32_t b1[40], b2[40], *db;
        ck_qtk(qtk_cuda_malloc((void **)&dw, O * K * 4));
        ck_qtk(qtk_cuda_malloc((void **)&dsz, 2 * O * 4));
        ck_qtk(qtk_cuda_malloc((void **)&dc, O * ldc));
        ck_qtk(qtk_cuda_malloc((void **)&dd, 2 * O * 8));
        ck_qtk(qtk_cuda_malloc((void **)&db, O * 4));
        ck_qtk(qtk_cuda_memcpy_h2d(dw, w, O * K * 4));
        ck_qtk(qtk_cuda_memcpy_h2d(dsz, sz, 2 * O * 4));
        for (int hi = 15; hi <= 255; hi += 240)
            for (int f = 0; f < 2; f++)
                for (int bc = 0; bc < 2; bc++) {
                    qtk_fq_formula fm = f ? QTK_FQ_TORCH : QTK_FQ_REF;
                    ck_qtk(qtk_weight_affine(w, O, K, sz, sz + O, 0, hi, fm, bc, c1, ldc, a1, g1, b1));
                    ck_qtk(qtk_weight_affine_cuda(dw, O, K, dsz, dsz + O, 0, hi, fm, bc, dc, ldc, dd, dd + O, db));
                    ck_qtk(qtk_cuda_memcpy_d2h(c2, dc, O * ldc));
                    ck_qtk(qtk_cuda_memcpy_d2h(a2, dd, O * 8));
                    ck_qtk(qtk_cuda_memcpy_d2h(g2, dd + O, O * 8));
                    ck_qtk(qtk_cuda_memcpy_d2h(b2, db, O * 4));
                    for (size_t o = 0; o < O; o++) {
                        ck_assert_msg(!memcmp(c1 + o * ldc, c2 + o * ldc, K), "weight codes of row %zu differ", o);
                        ck_assert_int_eq(b1[o], b2[o]);
                        ck_assert_msg(fabs(a1[o] - a2[o]) <= 1e-6 * fabs(a1[o]), "alpha[%zu] %.9g vs %.9g", o, a1[o], a2[o]);
                        ck_assert_msg(fabs(g1[o] - g2[o]) <= 1e-6 * (fabs(g1[o]) + 128 * fabs(a1[o])), "gamma[%zu] %.9g vs %.9g",
                                      o, g1[o], g2[o]);
                    }
                }
        ck_assert_int_eq(qtk_weight_affine_cuda(dw, O, K, dsz, dsz + O, -129, 15, QTK_FQ_REF, 1, dc, ldc, dd, dd + O, db),
                         QTK_ERR_ARG);
        qtk_cuda_free(dw);
        qtk_cuda_free(dsz);
        qtk_cuda_free(dc);
        qtk_cuda_free(dd);
        qtk_cuda_free(db);
        free(w);
        free(c1);
        free(c2);
    }
    // quantize / dequantize: every code dtype and granularity
    const int64_t shape[3] = {6, 40, 9};
    const size_t n = 6 * 40 * 9;
    float *x = malloc(n * 4), *y1 = malloc(n * 4), *y2 = malloc(n * 4), *dx, *dy;
    uint8_t *c1 = malloc(n), *c2 = malloc(n), *dc;
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(&r, -3.0f, 3.0f);
    x[3] = NAN;
    ck_qtk(qtk_cuda_malloc((void **)&dx, n * 4));
    ck_qtk(qtk_cuda_malloc((void **)&dy, n * 4));
    ck_qtk(qtk_cuda_malloc((void **)&dc, n));
    ck_qtk(qtk_cuda_memcpy_h2d(dx, x, n * 4));
    const struct { qtk_dtype dt; int bits, sg; } kinds[] = {{QTK_I8, 8, 1}, {QTK_U8, 8, 0}, {QTK_I4, 4, 1}, {QTK_U4, 3, 0}};
    const struct { qtk_granularity g; int axis, group; size_t np; } grans[] = {
        {QTK_PER_TENSOR, 0, 0, 1}, {QTK_PER_CHANNEL, 1, 0, 40}, {QTK_PER_GROUP, 1, 8, 6 * 5 * 9}};
    int cases = 0;
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 3; b++)
            for (int f = 0; f < 2; f++) {
                qtk_qparams p;
                ck_qtk(qtk_qparams_init(&p, kinds[a].bits, kinds[a].sg, false, grans[b].g, grans[b].axis, grans[b].group,
                                        grans[b].np));
                p.formula = f ? QTK_FQ_TORCH : QTK_FQ_REF;
                int lo, hi;
                qtk_qrange(p.bits, p.is_signed, &lo, &hi);
                for (size_t k = 0; k < p.n; k++) {
                    p.scale[k] = qtk_rng_range(&r, 0.01f, 0.6f);
                    p.zero[k] = (float)(lo + (int)qtk_rng_below(&r, (uint32_t)(hi - lo + 1)));
                }
                size_t bytes = kinds[a].dt == QTK_I4 || kinds[a].dt == QTK_U4 ? (n + 1) / 2 : n;
                ck_qtk(qtk_quantize(&p, x, 3, shape, kinds[a].dt, c1));
                ck_qtk(qtk_quantize_cuda(&p, dx, 3, shape, kinds[a].dt, dc));
                ck_qtk(qtk_cuda_memcpy_d2h(c2, dc, bytes));
                ck_assert_msg(!memcmp(c1, c2, bytes), "codes differ: dtype %d, granularity %d, formula %d", (int)kinds[a].dt,
                              (int)grans[b].g, f);
                ck_qtk(qtk_dequantize(&p, c1, kinds[a].dt, 3, shape, y1));
                ck_qtk(qtk_dequantize_cuda(&p, dc, kinds[a].dt, 3, shape, dy));
                ck_qtk(qtk_cuda_memcpy_d2h(y2, dy, n * 4));
                ck_assert(!memcmp(y1, y2, n * 4));
                qtk_qparams_free(&p);
                cases++;
            }
    ck_assert_int_eq(cases, 24);
    // int4 packing of an odd count, both signs
    int8_t v[7] = {-8, 7, 0, -1, 5, 3, -4}, vu[7], *dv;
    uint8_t pk1[4], pk2[4], *dp;
    qtk_pack_int4(v, 7, pk1);
    ck_qtk(qtk_cuda_malloc((void **)&dv, 7));
    ck_qtk(qtk_cuda_malloc((void **)&dp, 4));
    ck_qtk(qtk_cuda_memcpy_h2d(dv, v, 7));
    ck_qtk(qtk_pack_int4_cuda(dv, 7, dp));
    ck_qtk(qtk_cuda_memcpy_d2h(pk2, dp, 4));
    ck_assert(!memcmp(pk1, pk2, 4));
    ck_qtk(qtk_unpack_i4_cuda(dp, 7, dv));
    ck_qtk(qtk_cuda_memcpy_d2h(vu, dv, 7));
    ck_assert(!memcmp(v, vu, 7));
    uint8_t uu[7], ur[7];
    qtk_unpack_u4(pk1, 7, ur);
    ck_qtk(qtk_unpack_u4_cuda(dp, 7, (uint8_t *)dv));
    ck_qtk(qtk_cuda_memcpy_d2h(uu, dv, 7));
    ck_assert(!memcmp(ur, uu, 7));
    // quantiles (the percentile observers), of x and of |x|
    x[3] = 0.25f;
    ck_qtk(qtk_cuda_memcpy_h2d(dx, x, n * 4));
    const float qs[4] = {0.99999f, 0.00001f, 0.5f, 0.9f};
    float gq[4], ga[4];
    ck_qtk(qtk_quantiles_cuda(dx, n, 0, qs, 4, gq));
    ck_qtk(qtk_quantiles_cuda(dx, n, 1, qs, 4, ga));
    for (int j = 0; j < 4; j++) {
        memcpy(y1, x, n * 4);
        float cq = qtk_quantile_inplace(y1, n, qs[j]);
        for (size_t i = 0; i < n; i++) y1[i] = fabsf(x[i]);
        float ca = qtk_quantile_inplace(y1, n, qs[j]);
        ck_assert_msg(cq == gq[j] && ca == ga[j], "quantile %g: %g / %g (CPU) vs %g / %g (GPU)", (double)qs[j], (double)cq,
                      (double)ca, (double)gq[j], (double)ga[j]);
    }
    qtk_cuda_free(dx);
    qtk_cuda_free(dy);
    qtk_cuda_free(dc);
    qtk_cuda_free(dv);
    qtk_cuda_free(dp);
    free(x);
    free(y1);
    free(y2);
    free(c1);
    free(c2);
}
END_TEST

// The NCCL transport of core/comm.h with one rank (all a one-GPU machine allows): libnccl loaded at run
// time, the id exchanged over the host transport, an all-gather through the GPU. Without NCCL: a clear error.
START_TEST(test_nccl_one_rank) {
    if (!have_gpu) {
        printf("NCCL transport: skipped: no CUDA device\n");
        return;
    }
    qtk_comm host, nc;
    ck_qtk(qtk_comm_host_fork(1, &host));
    qtk_status st = qtk_comm_nccl_init(&host, 0, &nc);
    if (st != QTK_OK) {
        ck_assert_int_eq(st, QTK_ERR_UNSUPPORTED);
        printf("NCCL transport: skipped: %s\n", qtk_last_error());
        qtk_comm_close(&host);
        return;
    }
    double mine[3] = {1.5, -2.25, 1e300}, all[3] = {0};
    ck_qtk(nc.allgather(&nc, mine, all, 3));
    ck_assert(!memcmp(mine, all, sizeof mine));
    printf("NCCL transport: one rank, an all-gather of 3 doubles through the GPU\n");
    qtk_comm_close(&nc);
    qtk_comm_close(&host);
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
    tcase_add_test(tc, test_nccl_one_rank);
    tcase_add_test(tc, test_fake_quant_gpu_equals_cpu);
    tcase_add_test(tc, test_observer_twins);
    tcase_add_test(tc, test_hadamard_pack_quantile_twins);
    suite_add_tcase(s, tc);
    return tu_run_mode(s, 0);
}
