// The CNN ops of the op library (core/ops.h) on the CPU: dense (im2col + BLAS) and depthwise convs against
// a direct convolution summed in double, the depthwise path against the dense one (a block-diagonal weight),
// batch norm + activations against their formulas, thread-count independence, and bad shapes refused.
#include <float.h>
#include <omp.h>

#include "testutil.h"

// y (B, O, Ho, Wo) = conv(x, w) + bias, each output a double sum over (c, kh, kw); mag: the sum of the terms'
// magnitudes (a float32 sum of them in any order is within a few K eps of it)
static void conv_ref(const qtk_conv2d_shape *s, const float *x, const float *w, const float *bias, int Ho, int Wo,
                     double *y, double *mag) {
    const int cpg = s->groups == 1 ? s->C : 1;
    for (int b = 0; b < s->B; b++)
        for (int o = 0; o < s->O; o++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    double t = bias ? bias[o] : 0.0, m = bias ? fabs(bias[o]) : 0.0;
                    for (int ci = 0; ci < cpg; ci++) {
                        const int c = s->groups == 1 ? ci : o;
                        for (int kh = 0; kh < s->KH; kh++)
                            for (int kw = 0; kw < s->KW; kw++) {
                                const int iy = oy * s->stride_h - s->pad_h + kh, ix = ox * s->stride_w - s->pad_w + kw;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                                const double p = (double)x[(((size_t)b * s->C + c) * s->H + iy) * s->W + ix] *
                                                 w[(((size_t)o * cpg + ci) * s->KH + kh) * s->KW + kw];
                                t += p, m += fabs(p);
                            }
                    }
                    y[(((size_t)b * s->O + o) * Ho + oy) * Wo + ox] = t;
                    mag[(((size_t)b * s->O + o) * Ho + oy) * Wo + ox] = m;
                }
}

START_TEST(test_conv_against_direct) {
    // dense 3x3/s2/p1, 1x1, 7x7/s2/p3, 5x3 kernel with unequal strides; depthwise 3x3, 5x5/s2
    const qtk_conv2d_shape sh[] = {{2, 16, 15, 17, 24, 3, 3, 2, 2, 1, 1, 1}, {2, 24, 8, 9, 40, 1, 1, 1, 1, 0, 0, 1},
                                   {1, 3, 33, 31, 16, 7, 7, 2, 2, 3, 3, 1},  {1, 5, 11, 12, 7, 5, 3, 2, 1, 2, 0, 1},
                                   {2, 32, 14, 13, 32, 3, 3, 1, 1, 1, 1, 32}, {2, 32, 14, 13, 32, 5, 5, 2, 2, 2, 2, 32}};
    qtk_rng r;
    qtk_rng_seed(&r, 51, 0);
    for (size_t i = 0; i < sizeof sh / sizeof *sh; i++) {
        const qtk_conv2d_shape *s = &sh[i];
        int Ho, Wo;
        ck_qtk(qtk_conv2d_out(s, &Ho, &Wo));
        ck_assert_int_eq(Ho, (s->H + 2 * s->pad_h - s->KH) / s->stride_h + 1);
        const size_t nx = (size_t)s->B * s->C * s->H * s->W, nw = (size_t)s->O * (s->groups == 1 ? s->C : 1) * s->KH * s->KW,
                     ny = (size_t)s->B * s->O * Ho * Wo;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)s->O * 4), *y = malloc(ny * 4);
        double *ref = malloc(ny * sizeof *ref), *mag = malloc(ny * sizeof *mag);
        tu_fill_normal(&r, x, nx, 1.0f), tu_fill_normal(&r, w, nw, 0.2f), tu_fill_normal(&r, b, (size_t)s->O, 0.5f);
        ck_qtk(qtk_op_conv2d(s, x, w, i % 2 ? NULL : b, QTK_ACT_NONE, NULL, y));
        conv_ref(s, x, w, i % 2 ? NULL : b, Ho, Wo, ref, mag);
        double worst = 0; // the error in units of eps times the terms' magnitude
        for (size_t k = 0; k < ny; k++) {
            double e = fabs(y[k] - ref[k]) / (mag[k] * FLT_EPSILON + 1e-30);
            if (e > worst) worst = e;
        }
        ck_assert_msg(worst < 16, "conv %zu: %g eps x the terms' magnitude from the direct double sum", i, worst);
        // ReLU6 + a per-tensor output quantizer: the epilogue is q(act(sum)), element by element
        const qtk_outq q = {1, 0, 0.05f, 0.0f, NULL, NULL, -128, 127, 0};
        float *yq = malloc(ny * 4);
        ck_qtk(qtk_op_conv2d(s, x, w, i % 2 ? NULL : b, QTK_ACT_RELU6, &q, yq));
        for (size_t k = 0; k < ny; k++)
            ck_assert_msg(tu_same(yq[k], qtk_fq_elem(qtk_clampf(y[k], 0.0f, 6.0f), 0.05f, 0.0f, -128, 127, 0)),
                          "conv %zu [%zu]: %a vs %a", i, k, yq[k], y[k]);
        free(x), free(w), free(b), free(y), free(yq), free(ref), free(mag);
    }
}
END_TEST

// depthwise = the dense conv of a block-diagonal weight (whose zero products add nothing), bit for bit
// except for the sum order: the dense path's BLAS may order the nine products differently, so within 1e-6
START_TEST(test_depthwise_is_block_diagonal_dense) {
    enum { B = 2, C = 12, H = 9, W = 10 };
    const qtk_conv2d_shape dw = {B, C, H, W, C, 3, 3, 2, 2, 1, 1, C}, dn = {B, C, H, W, C, 3, 3, 2, 2, 1, 1, 1};
    qtk_rng r;
    qtk_rng_seed(&r, 52, 0);
    float x[B * C * H * W], w[C * 9], wd[C * C * 9] = {0}, b[C];
    tu_fill_normal(&r, x, sizeof x / 4, 1.0f), tu_fill_normal(&r, w, C * 9, 0.3f), tu_fill_normal(&r, b, C, 0.3f);
    for (int c = 0; c < C; c++) memcpy(wd + ((size_t)c * C + c) * 9, w + c * 9, 9 * 4);
    int Ho, Wo;
    ck_qtk(qtk_conv2d_out(&dw, &Ho, &Wo));
    const size_t ny = (size_t)B * C * Ho * Wo;
    float *y1 = malloc(ny * 4), *y2 = malloc(ny * 4);
    ck_qtk(qtk_op_conv2d(&dw, x, w, b, QTK_ACT_HARDSWISH, NULL, y1));
    ck_qtk(qtk_op_conv2d(&dn, x, wd, b, QTK_ACT_HARDSWISH, NULL, y2));
    ck_assert_msg(tu_max_rel(y1, y2, ny) < 1e-5, "depthwise vs block-diagonal dense: %g", tu_max_rel(y1, y2, ny));
    free(y1), free(y2);
}
END_TEST

START_TEST(test_bn_act_formulas) {
    enum { B = 2, C = 5, HW = 40 };
    float x[B * C * HW], y[B * C * HW], g[C], be[C], mu[C], var[C], a[C], b[C];
    qtk_rng r;
    qtk_rng_seed(&r, 53, 0);
    tu_fill_normal(&r, x, sizeof x / 4, 4.0f);
    x[0] = -0.0f, x[1] = NAN, x[2] = INFINITY, x[3] = -INFINITY, x[4] = -3.0f, x[5] = 3.0f;
    for (int c = 0; c < C; c++) g[c] = 1.0f + 0.1f * c, be[c] = 0.2f * c - 0.3f, mu[c] = 0.1f * c, var[c] = 0.5f + c;
    qtk_bn_affine(g, be, mu, var, 1e-5f, C, a, b);
    for (int c = 0; c < C; c++) {
        ck_assert(tu_same(a[c], g[c] * (1.0f / sqrtf(var[c] + 1e-5f))));
        ck_assert(tu_same(b[c], fmaf(-mu[c], a[c], be[c])));
    }
    const qtk_act acts[] = {QTK_ACT_NONE, QTK_ACT_RELU, QTK_ACT_RELU6, QTK_ACT_HARDSWISH, QTK_ACT_HARDSIGMOID, QTK_ACT_SILU,
                            QTK_ACT_GELU};
    for (size_t k = 0; k < sizeof acts / sizeof *acts; k++) {
        memcpy(y, x, sizeof x);
        qtk_op_bn_act(y, B, C, HW, a, b, acts[k], NULL);
        for (size_t i = 0; i < sizeof x / 4; i++) {
            const size_t c = i / HW % C;
            const float v = fmaf(x[i], a[c], b[c]);
            float want;
            switch (acts[k]) {
            case QTK_ACT_RELU: want = v < 0 ? 0 : v; break;
            case QTK_ACT_RELU6: want = v != v ? v : v < 0 ? 0 : v > 6 ? 6 : v; break;
            case QTK_ACT_HARDSWISH: want = v * fminf(fmaxf(v + 3.0f, 0.0f), 6.0f) / 6.0f; break;
            case QTK_ACT_HARDSIGMOID: want = fminf(fmaxf(v + 3.0f, 0.0f), 6.0f) / 6.0f; break;
            case QTK_ACT_SILU: want = v / (1.0f + expf(-v)); break;
            case QTK_ACT_GELU: want = v * 0.5f * (1.0f + erff(v * 0.70710678118654752f)); break;
            default: want = v;
            }
            if (isnan(v) && acts[k] != QTK_ACT_HARDSIGMOID && acts[k] != QTK_ACT_HARDSWISH) ck_assert(isnan(y[i]));
            else if (!isnan(v)) ck_assert_msg(tu_same(y[i], want), "act %d [%zu]: %a, want %a", (int)acts[k], i, y[i], want);
        }
    }
    // hardswish at its corners: -3 -> 0, 3 -> 3, and the act after a and b alone (NULL affine)
    float e[4] = {-3.0f, 3.0f, -4.0f, 1.0f};
    qtk_op_bn_act(e, 1, 1, 4, NULL, NULL, QTK_ACT_HARDSWISH, NULL);
    ck_assert(e[0] == 0.0f && e[1] == 3.0f && e[2] == 0.0f && e[3] == 1.0f * 4.0f / 6.0f);
}
END_TEST

// the same bits at 1 and 2 threads (core/blas.h's blocks, OpenMP loops over whole channels)
START_TEST(test_threads) {
    const qtk_conv2d_shape s = {3, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1};
    int Ho, Wo;
    ck_qtk(qtk_conv2d_out(&s, &Ho, &Wo));
    const size_t nx = (size_t)s.B * s.C * s.H * s.W, nw = (size_t)s.O * s.C * 9, ny = (size_t)s.B * s.O * Ho * Wo;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *y1 = malloc(ny * 4), *y2 = malloc(ny * 4);
    qtk_rng r;
    qtk_rng_seed(&r, 54, 0);
    tu_fill_normal(&r, x, nx, 1.0f), tu_fill_normal(&r, w, nw, 0.1f);
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    ck_qtk(qtk_op_conv2d(&s, x, w, NULL, QTK_ACT_RELU, NULL, y1));
    omp_set_num_threads(nt > 1 ? nt : 2);
    ck_qtk(qtk_op_conv2d(&s, x, w, NULL, QTK_ACT_RELU, NULL, y2));
    omp_set_num_threads(nt);
    ck_assert_int_eq(tu_first_diff(y1, y2, ny), -1);
    free(x), free(w), free(y1), free(y2);
}
END_TEST

START_TEST(test_bad_shapes) {
    int Ho, Wo;
    const struct {
        qtk_conv2d_shape s;
        const char *msg;
    } bad[] = {
        {{0, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1}, "conv2d: sizes B 0"},
        {{1, 3, 8, 8, 4, 3, 3, 0, 1, 1, 1, 1}, "stride 0x1"},
        {{1, 3, 2, 8, 4, 5, 3, 1, 1, 1, 1, 1}, "a 5x3 kernel over a 2x8 input padded by 1x1"},
        {{1, 4, 8, 8, 8, 3, 3, 1, 1, 1, 1, 2}, "2 groups of 4 -> 8 channels (dense or depthwise only)"},
        {{1, 4, 8, 8, 8, 3, 3, 1, 1, 1, 1, 4}, "4 groups of 4 -> 8 channels"},
        {{60000, 1000, 100, 100, 8, 3, 3, 1, 1, 1, 1, 1}, "(at most 2^31 - 1)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_ne(qtk_conv2d_out(&bad[i].s, &Ho, &Wo), QTK_OK);
        ck_assert_msg(strstr(qtk_last_error(), bad[i].msg), "case %zu: %s", i, qtk_last_error());
        float x = 0, y = 0;
        ck_assert_int_ne(qtk_op_conv2d(&bad[i].s, &x, &x, NULL, QTK_ACT_NONE, NULL, &y), QTK_OK);
    }
}
END_TEST

// against PyTorch (tools/make_cnn_op_fixtures.py, F.conv2d / eval-mode F.batch_norm / the activations, float32
// on the CPU): convs within a few eps of the terms' magnitude (other sum orders, PyTorch's too), batch norm with
// ReLU / ReLU6 / hardswish / hardsigmoid bit for bit, with SiLU / GELU within PyTorch's exp / erf
static double ulp_dist(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return fabs((double)ia - (double)ib);
}

START_TEST(test_against_pytorch) {
    qtk_safetensors st;
    tu_open(&st, "cnn_ops.safetensors");
    cJSON *cases = tu_meta_json(&st, "cases"), *c;
    int convs = 0, bns = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring, *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
        const cJSON *sh = cJSON_GetObjectItem(c, "shape");
        int v[12];
        for (int i = 0; i < cJSON_GetArraySize(sh) && i < 12; i++) v[i] = cJSON_GetArrayItem(sh, i)->valueint;
        size_t n;
        float *x = tu_load(&st, name, "x", &n), *want = tu_load(&st, name, "y", &n);
        if (!strcmp(kind, "conv")) {
            const qtk_conv2d_shape s = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]};
            int Ho, Wo;
            ck_qtk(qtk_conv2d_out(&s, &Ho, &Wo));
            ck_assert_uint_eq(n, (size_t)s.B * s.O * Ho * Wo);
            float *w = tu_load(&st, name, "w", &n), *b = tu_load(&st, name, "b", &n), *y = malloc((size_t)s.B * s.O * Ho * Wo * 4);
            const int bias = cJSON_IsTrue(cJSON_GetObjectItem(c, "bias"));
            ck_qtk(qtk_op_conv2d(&s, x, w, bias ? b : NULL, QTK_ACT_NONE, NULL, y));
            double *ref = malloc((size_t)s.B * s.O * Ho * Wo * sizeof *ref), *mag = malloc((size_t)s.B * s.O * Ho * Wo * sizeof *mag);
            conv_ref(&s, x, w, bias ? b : NULL, Ho, Wo, ref, mag);
            double worst = 0, worst_torch = 0; // qtk and PyTorch, each against the double sum
            for (size_t k = 0; k < (size_t)s.B * s.O * Ho * Wo; k++) {
                worst = fmax(worst, fabs(y[k] - ref[k]) / (mag[k] * FLT_EPSILON + 1e-30));
                worst_torch = fmax(worst_torch, fabs(want[k] - ref[k]) / (mag[k] * FLT_EPSILON + 1e-30));
            }
            printf("%s: qtk %.2f eps, PyTorch %.2f eps x the terms' magnitude from the double sum\n", name, worst, worst_torch);
            ck_assert_msg(worst < 16 && worst_torch < 16, "%s: %g / %g eps", name, worst, worst_torch);
            free(y), free(ref), free(mag);
            qtk_aligned_free(w), qtk_aligned_free(b);
            convs++;
        } else {
            const size_t B = (size_t)v[0], C = (size_t)v[1], HW = (size_t)v[2] * v[3];
            float *g = tu_load(&st, name, "gamma", &n), *be = tu_load(&st, name, "beta", &n), *mu = tu_load(&st, name, "mean", &n),
                  *var = tu_load(&st, name, "var", &n), a[64], b[64];
            ck_assert_uint_le(C, 64);
            qtk_bn_affine(g, be, mu, var, (float)cJSON_GetObjectItem(c, "eps")->valuedouble, C, a, b);
            const char *act = cJSON_GetObjectItem(c, "act")->valuestring;
            const char *names[] = {"none", "relu", "relu6", "hardswish", "hardsigmoid", "silu", "gelu"};
            qtk_act mode = QTK_ACT_NONE;
            for (int k = 0; k < 7; k++)
                if (!strcmp(act, names[k])) mode = (qtk_act)k;
            float *y = malloc(B * C * HW * 4);
            memcpy(y, x, B * C * HW * 4);
            qtk_op_bn_act(y, B, C, HW, a, b, mode, NULL);
            double worst = 0, abs_worst = 0;
            for (size_t k = 0; k < B * C * HW; k++) {
                worst = fmax(worst, ulp_dist(y[k], want[k]));
                abs_worst = fmax(abs_worst, fabs((double)y[k] - want[k]));
            }
            printf("%s: at most %.0f ULP (%.2e absolute) from PyTorch\n", name, worst, abs_worst);
            // bit for bit, but for PyTorch's own exp / erf: SiLU within a few ULP, GELU within 4e-6 absolute (far
            // below zero its 1 + erf cancels, so ULPs of a near-zero output say nothing)
            if (mode == QTK_ACT_SILU) ck_assert_msg(worst <= 4, "%s: %g ULP from PyTorch", name, worst);
            else if (mode == QTK_ACT_GELU) ck_assert_msg(abs_worst <= 4e-6, "%s: %g from PyTorch", name, abs_worst);
            else ck_assert_msg(worst == 0, "%s: %g ULP from PyTorch (bit for bit expected)", name, worst);
            free(y);
            qtk_aligned_free(g), qtk_aligned_free(be), qtk_aligned_free(mu), qtk_aligned_free(var);
            bns++;
        }
        qtk_aligned_free(x), qtk_aligned_free(want);
    }
    ck_assert_int_eq(convs, 5);
    ck_assert_int_eq(bns, 7);
    cJSON_Delete(cases);
    qtk_st_close(&st);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cnn_ops");
    TCase *tc = tcase_create("cnn_ops");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_conv_against_direct);
    tcase_add_test(tc, test_depthwise_is_block_diagonal_dense);
    tcase_add_test(tc, test_bn_act_formulas);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_bad_shapes);
    tcase_add_test(tc, test_against_pytorch);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
