// The built-in demo model (models/fashion_vit.safetensors, trained by
// tools/train_fashion_vit.py) on the built-in Fashion-MNIST test split: qtk's
// FP32 forward reproduces PyTorch's logits and accuracy; the quantized
// baselines are measured. Skips visibly without the data (make fashion-mnist).
#include "../datasets/idx.h"
#include "../vision/vit_quant.h"
#include "testutil.h"

#define MODEL "models/fashion_vit.safetensors"

static float *to_input(const uint8_t *px, size_t n) {
    float *x = malloc(n * 784 * sizeof *x);
    for (size_t i = 0; i < n * 784; i++) x[i] = ((float)px[i] / 255.0f - 0.5f) / 0.5f;
    return x;
}

// Top-1 over images 0, step, 2*step, ... (n images scanned; n / step scored).
static double top1(qtk_vit *m, qtk_vit_plan *p, qtk_vit_quant *qv, const float *x, const uint8_t *y, int n, int step) {
    float logits[100 * 10], *batch = malloc(100 * 784 * sizeof *batch);
    uint8_t yb[100];
    int correct = 0, scored = 0;
    for (int i = 0; i < n; i += 100 * step) {
        for (int b = 0; b < 100; b++) {
            memcpy(batch + (size_t)b * 784, x + (size_t)(i + b * step) * 784, 784 * sizeof *batch);
            yb[b] = y[i + b * step];
        }
        if (qv) ck_qtk(qtk_vit_quant_forward(qv, p, batch, 100, logits));
        else ck_qtk(qtk_vit_forward(m, p, batch, 100, logits));
        for (int b = 0; b < 100; b++) {
            int a = 0;
            for (int j = 1; j < 10; j++)
                if (logits[b * 10 + j] > logits[b * 10 + a]) a = j; // ties: lowest index
            correct += a == yb[b];
        }
        scored += 100;
    }
    free(batch);
    return 100.0 * correct / scored;
}

START_TEST(test_fashion_vit) {
    qtk_vit m;
    ck_qtk(qtk_vit_load(&m, MODEL, NULL)); // heads and preprocessing from the checkpoint's metadata
    ck_assert_int_eq(m.cfg.heads, 3);
    ck_assert(m.cfg.img_size == 28 && m.cfg.patch == 4 && m.cfg.in_chans == 1 && m.cfg.depth == 6);
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, MODEL));
    double want_acc = atof(qtk_st_meta(&st, "fp32_test_top1"));
    qtk_st_close(&st);
    const char *cache = getenv("QTK_CACHE") ? getenv("QTK_CACHE") : "build/cache";
    char pi[512], pl[512], ptr[512];
    snprintf(pi, sizeof pi, "%s/fashion-mnist/t10k-images-idx3-ubyte", cache);
    snprintf(pl, sizeof pl, "%s/fashion-mnist/t10k-labels-idx1-ubyte", cache);
    snprintf(ptr, sizeof ptr, "%s/fashion-mnist/train-images-idx3-ubyte", cache);
    qtk_idx im, lb, tr;
    if (qtk_idx_read(pi, &im) != QTK_OK || qtk_idx_read(pl, &lb) != QTK_OK || qtk_idx_read(ptr, &tr) != QTK_OK) {
        qtk_vit_free(&m);
        TU_SKIP("Fashion-MNIST not fetched (make fashion-mnist)");
    }
    float *x = to_input(im.data, 10000);
    qtk_vit_plan plan;
    ck_qtk(qtk_vit_plan_init(&plan, &m, 100));
    // logits of the first 100 test images vs PyTorch
    float logits[1000];
    ck_qtk(qtk_vit_forward(&m, &plan, x, 100, logits));
    qtk_safetensors fx;
    ck_qtk(qtk_st_open(&fx, "tests/fixtures/vision/fashion_vit.logits100.safetensors"));
    float want[1000];
    ck_qtk(qtk_st_read_f32(&fx, "logits", 2, (int64_t[]){100, 10}, want));
    qtk_st_close(&fx);
    double md = 0, mv = 0;
    for (int i = 0; i < 1000; i++) {
        md = fmax(md, fabs((double)logits[i] - want[i]));
        mv = fmax(mv, fabs((double)want[i]));
    }
    ck_assert_msg(md <= 1e-4 * mv, "logits differ from PyTorch by %g (relative)", md / mv);
    double acc = top1(&m, &plan, NULL, x, lb.data, 10000, 1);
    printf("fashion_vit FP32 test top-1: qtk %.2f%%, PyTorch %.2f%%\n", acc, want_acc);
    ck_assert_msg(fabs(acc - want_acc) <= 0.03, "FP32 top-1 %.2f%% vs PyTorch %.2f%%", acc, want_acc);
    // quantized baselines, calibrated on 1,000 training images (10 x 100, seed-free: the first 1,000 of a fixed sample)
    float *cal = malloc(1000 * 784 * sizeof *cal);
    for (int i = 0; i < 1000; i++) // every 60th training image: all classes (the file is ordered by class)
        for (int k = 0; k < 784; k++) cal[(size_t)i * 784 + k] = ((float)tr.data[(size_t)i * 60 * 784 + k] / 255.0f - 0.5f) / 0.5f;
    const int wb[2] = {8, 3};
    for (int i = 0; i < 2; i++) {
        qtk_vit_quant qv;
        qtk_vit_qconfig qc;
        qtk_vit_qconfig_default(&qc);
        qc.w_bits = wb[i];
        ck_qtk(qtk_vit_quant_init(&qv, &m, &qc));
        ck_qtk(qtk_vit_calibrate(&qv, &plan, cal, 1000, 100));
        // every 5th test image (2,000, all classes: the file is ordered by class); the full numbers are in make bench
        double qa = top1(&m, &plan, &qv, x, lb.data, 10000, 5);
        printf("fashion_vit W%dA8 baseline top-1 on 2,000 test images: %.2f%%\n", wb[i], qa);
        ck_assert_msg(qa > 10.0, "W%dA8 collapsed to %.2f%%", wb[i], qa);
        if (wb[i] == 8) ck_assert_msg(qa > acc - 2.0, "W8A8 lost %.2f points", acc - qa);
        qtk_vit_quant_free(&qv);
    }
    free(cal);
    free(x);
    qtk_idx_free(&im);
    qtk_idx_free(&lb);
    qtk_idx_free(&tr);
    qtk_vit_plan_free(&plan);
    qtk_vit_free(&m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("fashion_model");
    TCase *tc = tcase_create("vision");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_fashion_vit);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
