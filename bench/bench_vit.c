// ViT benchmark (make bench): DeiT-S FP32 forward images/s at batch 32 beside
// the GEMM-only floor = the model's GEMM FLOPs / sgemm GFLOP/s, where sgemm is
// measured in the same run on the model's own fc1 shape (B*T x 4C x C).
// Weights are random (PCG32): speed does not depend on their values.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qtk.h"
#include "../vision/vit_quant.h"
#include "timer.h"

// Calibration time for 1,000 images (10 batches of 100, the reference's
// protocol) of the small 28x28 model the built-in demo uses (dim 64, depth 3).
static int bench_calibration(void) {
    qtk_vit_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.img_size = 28, cfg.patch = 7, cfg.in_chans = 1, cfg.dim = 64, cfg.depth = 3, cfg.heads = 4;
    cfg.mlp_hidden = 256, cfg.n_classes = 10;
    char path[] = "/tmp/qtk_bench_small_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 1;
    close(fd);
    qtk_vit m;
    qtk_vit_plan plan;
    qtk_vit_quant qv;
    qtk_vit_qconfig qc;
    qtk_vit_qconfig_default(&qc);
    if (qtk_vit_write_random(path, &cfg, 1) != QTK_OK || qtk_vit_load(&m, path, "{\"heads\": 4}") != QTK_OK ||
        qtk_vit_plan_init(&plan, &m, 100) != QTK_OK || qtk_vit_quant_init(&qv, &m, &qc) != QTK_OK) {
        fprintf(stderr, "bench_vit: %s\n", qtk_last_error());
        unlink(path);
        return 1;
    }
    unlink(path);
    size_t n = 1000 * 28 * 28;
    float *x = malloc(n * sizeof *x), *logits = malloc(100 * 10 * sizeof *logits);
    qtk_rng r;
    qtk_rng_seed(&r, 3, 0);
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(&r, -2.0f, 2.0f);
    double t0 = qtk_now();
    for (int b = 0; b < 10; b++) qtk_vit_forward(&m, &plan, x + (size_t)b * 100 * 784, 100, logits);
    double t_fp = qtk_now() - t0;
    t0 = qtk_now();
    qtk_status st = qtk_vit_calibrate(&qv, &plan, x, 1000, 100);
    double t_cal = qtk_now() - t0;
    if (st != QTK_OK) fprintf(stderr, "bench_vit: %s\n", qtk_last_error());
    else
        printf("calibration, 1,000 images (10 x 100) of the 28x28 demo-size ViT (dim 64, depth 3): %.2f s "
               "(an FP pass over the same images: %.3f s)\n", t_cal, t_fp);
    free(x);
    free(logits);
    qtk_vit_quant_free(&qv);
    qtk_vit_plan_free(&plan);
    qtk_vit_free(&m);
    return st == QTK_OK ? 0 : 1;
}

int main(void) {
    const int B = 32;
    qtk_vit_config cfg;
    qtk_vit_preset("deit_small_patch16_224", &cfg);
    char path[] = "/tmp/qtk_bench_deit_small_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 1;
    close(fd);
    qtk_vit m;
    qtk_vit_plan plan;
    if (qtk_vit_write_random(path, &cfg, 1) != QTK_OK || qtk_vit_load(&m, path, "deit_small_patch16_224") != QTK_OK ||
        qtk_vit_plan_init(&plan, &m, B) != QTK_OK) {
        fprintf(stderr, "bench_vit: %s\n", qtk_last_error());
        unlink(path);
        return 1;
    }
    unlink(path);
    size_t nimg = (size_t)B * 3 * 224 * 224;
    float *x = malloc(nimg * sizeof *x), *logits = malloc((size_t)B * 1000 * sizeof *logits);
    qtk_rng r;
    qtk_rng_seed(&r, 2, 0);
    for (size_t i = 0; i < nimg; i++) x[i] = qtk_rng_range(&r, -2.0f, 2.0f);

    // sgemm GFLOP/s on the model's fc1 shape
    int Mr = B * m.n_tokens, N = cfg.mlp_hidden, K = cfg.dim;
    float *a = malloc((size_t)Mr * K * 4), *w = malloc((size_t)N * K * 4), *c = malloc((size_t)Mr * N * 4);
    for (size_t i = 0; i < (size_t)Mr * K; i++) a[i] = 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = 0.01f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Mr, N, K, 1.0f, a, K, w, K, 0.0f, c, N);
    double t0 = qtk_now();
    int reps = 5;
    for (int i = 0; i < reps; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Mr, N, K, 1.0f, a, K, w, K, 0.0f, c, N);
    double gflops = 2.0 * Mr * N * K * reps / (qtk_now() - t0) / 1e9;

    qtk_vit_forward(&m, &plan, x, B, logits); // warm-up
    double best = 1e30;
    for (int i = 0; i < 3; i++) {
        t0 = qtk_now();
        qtk_vit_forward(&m, &plan, x, B, logits);
        double t = qtk_now() - t0;
        best = t < best ? t : best;
    }
    double floor_s = qtk_vit_gemm_flops(&m) * B / (gflops * 1e9);
    printf("deit_small FP32 forward, batch %d: %.1f images/s (%.3f s/batch)\n", B, B / best, best);
    printf("  sgemm on the fc1 shape %dx%dx%d: %.1f GFLOP/s; model GEMMs %.2f GFLOP/image\n", Mr, N, K, gflops,
           qtk_vit_gemm_flops(&m) / 1e9);
    printf("  GEMM-only floor: %.1f images/s; forward reaches %.1f%% of it\n", B / floor_s, 100.0 * floor_s / best);

    // quantized forward (W4A8, all quantizers on, integer LayerNorm) over the FP forward, same batch
    qtk_vit_quant qv;
    qtk_vit_qconfig qc;
    qtk_vit_qconfig_default(&qc);
    double t_cal = 0;
    if (qtk_vit_quant_init(&qv, &m, &qc) == QTK_OK) {
        t0 = qtk_now();
        qtk_status st = qtk_vit_calibrate(&qv, &plan, x, 8, 8); // one small batch: only the forward speed matters here
        t_cal = qtk_now() - t0;
        double bq = 1e30;
        for (int i = 0; st == QTK_OK && i < 3; i++) {
            t0 = qtk_now();
            st = qtk_vit_quant_forward(&qv, &plan, x, B, logits);
            double t = qtk_now() - t0;
            bq = t < bq ? t : bq;
        }
        if (st != QTK_OK) fprintf(stderr, "bench_vit: %s\n", qtk_last_error());
        else
            printf("deit_small W4A8 quantized forward, batch %d: %.1f images/s; quantized / FP time = %.2fx "
                   "(calibration on 8 images took %.1f s)\n", B, B / bq, bq / best, t_cal);
        qtk_vit_quant_free(&qv);
    }
    free(a);
    free(w);
    free(c);
    free(x);
    free(logits);
    qtk_vit_plan_free(&plan);
    qtk_vit_free(&m);
    return bench_calibration();
}
