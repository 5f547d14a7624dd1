// Thread scaling of the CPU paths (make bench): at 1, 2, 4, 8, 16 threads (those up to the host's cores, or
// --threads LIST), in one process:
//   - DeiT-S FP32 forward, batch 32: images/s;
//   - calibration of the Fashion-sized ViT (28x28, dim 64, depth 3) on 1,000 images in batches of 100;
//   - Mamba1 (mamba-130m shape) and Mamba2 (mamba2-130m shape) prefill of 512 tokens, 4 layers: tokens/s;
//   - the baseline in the same run: a parallel streaming read at the same thread count (GB/s), which bounds
//     what the memory-bound parts can gain.
// Each line gives the speed-up over 1 thread and the efficiency (speed-up / threads), and the last line says
// whether any configuration got slower with more threads. Random weights (PCG32): speed does not depend on
// their values.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtk.h"
#include "bench_util.h"
#include "../ssm/mamba.h"
#include "../vision/vit_quant.h"
#include "timer.h"

enum { MAXT = 16, N_WORK = 5 };
static const char *work_name[N_WORK] = {"DeiT-S forward (img/s)", "Fashion-ViT calibration (1/s)",
                                        "Mamba1 prefill (tok/s)", "Mamba2 prefill (tok/s)", "streaming read (GB/s)"};

static void fill(float *x, size_t n, uint64_t seed) {
    qtk_rng r;
    qtk_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(&r, -1, 1);
}

// best of `reps` runs of f, in seconds
#define BEST(reps, expr)                                                                                              \
    ({                                                                                                                \
        double best_ = 1e30;                                                                                          \
        for (int r_ = 0; r_ < (reps); r_++) {                                                                         \
            double t_ = qtk_now();                                                                                    \
            if ((expr) != QTK_OK) {                                                                                   \
                fprintf(stderr, "bench_threads: %s\n", qtk_last_error());                                             \
                exit(1);                                                                                              \
            }                                                                                                         \
            t_ = qtk_now() - t_;                                                                                      \
            best_ = t_ < best_ ? t_ : best_;                                                                          \
        }                                                                                                             \
        best_;                                                                                                        \
    })

static qtk_status stream_read(const float *buf, size_t n, volatile float *sink) {
    float s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i += 16) s += buf[i]; // one float per 64-byte line: a pure read of every line
    *sink = s;
    return QTK_OK;
}

static qtk_status prefill(const qtk_mamba *m, const int32_t *tok, int L, float *logits) {
    qtk_mamba_state s;
    QTK_TRY(qtk_mamba_state_init(&s, m, 1));
    qtk_status st = qtk_mamba_prefill(m, &s, tok, L, logits, QTK_SCAN_AUTO);
    qtk_mamba_state_free(&s);
    return st;
}

int main(int argc, char **argv) {
    int threads[MAXT], nt = 0, cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (argc == 3 && !strcmp(argv[1], "--threads")) {
        for (char *p = strtok(argv[2], ","); p && nt < MAXT; p = strtok(NULL, ",")) threads[nt++] = atoi(p);
    } else if (argc != 1) return fprintf(stderr, "usage: bench_threads [--threads 1,2,4,8,16]\n"), 2;
    else
        for (int t = 1; t <= 16 && t <= cores; t *= 2) threads[nt++] = t;
    // DeiT-S, batch 32
    qtk_vit_config ds = {.img_size = 224, .patch = 16, .in_chans = 3, .dim = 384, .depth = 12, .heads = 6,
                         .mlp_hidden = 1536, .n_classes = 1000};
    qtk_vit deit, small;
    qtk_vit_plan pd, ps;
    qtk_vit_quant qv;
    qtk_vit_qconfig qc;
    qtk_vit_qconfig_default(&qc);
    qtk_vit_config fs = {.img_size = 28, .patch = 7, .in_chans = 1, .dim = 64, .depth = 3, .heads = 4, .mlp_hidden = 256,
                         .n_classes = 10};
    const int B = 32;
    qtk_mamba m1, m2;
    qtk_mamba_config c1 = {.arch = QTK_MAMBA1, .d_model = 768, .n_layers = 4, .vocab = 50280, .d_state = 16, .d_conv = 4,
                           .d_inner = 1536, .dt_rank = 48, .conv_bias = 1, .tied = 1, .eps = 1e-5f},
                     c2 = {.arch = QTK_MAMBA2, .d_model = 768, .n_layers = 4, .vocab = 50280, .d_state = 128,
                           .d_conv = 4, .d_inner = 1536, .head_dim = 64, .n_heads = 24, .n_groups = 1,
                           .chunk_size = 256, .conv_bias = 1, .tied = 1, .eps = 1e-5f};
    if (bench_random_vit(&ds, "deit_small_patch16_224", &deit) != QTK_OK || qtk_vit_plan_init(&pd, &deit, B) != QTK_OK ||
        bench_random_vit(&fs, "{\"heads\": 4}", &small) != QTK_OK || qtk_vit_plan_init(&ps, &small, 100) != QTK_OK ||
        qtk_vit_quant_init(&qv, &small, &qc) != QTK_OK || bench_random_mamba(&c1, &m1) != QTK_OK ||
        bench_random_mamba(&c2, &m2) != QTK_OK)
        return fprintf(stderr, "bench_threads: %s\n", qtk_last_error()), 1;
    const int L = 512;
    size_t n_img = (size_t)B * 3 * 224 * 224, n_cal = 1000 * 28 * 28, n_stream = (size_t)1 << 28; // 1 GiB read
    float *x = malloc(n_img * sizeof *x), *cal = malloc(n_cal * sizeof *cal), *logits = malloc((size_t)L * 50280 * 4);
    float *big = malloc(n_stream * sizeof *big);
    int32_t *tok = malloc((size_t)L * sizeof *tok);
    if (!x || !cal || !logits || !big || !tok) return fprintf(stderr, "bench_threads: out of memory\n"), 1;
    fill(x, n_img, 2);
    fill(cal, n_cal, 3);
    memset(big, 0, n_stream * sizeof *big);
    for (int i = 0; i < L; i++) tok[i] = (int32_t)((i * 7919u) % 50280u);
    volatile float sink;
    double rate[MAXT][N_WORK];
    printf("bench_threads: %d cores; OpenBLAS single-threaded, OpenMP over fixed blocks (core/blas.h)\n", cores);
    printf("| threads | %s | %s | %s | %s | %s |\n|---|---|---|---|---|---|\n", work_name[0], work_name[1], work_name[2],
           work_name[3], work_name[4]);
    for (int k = 0; k < nt; k++) {
        omp_set_num_threads(threads[k]);
        (void)qtk_vit_forward(&deit, &pd, x, B, logits); // warm-up at this thread count
        rate[k][0] = B / BEST(2, qtk_vit_forward(&deit, &pd, x, B, logits));
        rate[k][1] = 1.0 / BEST(2, qtk_vit_calibrate(&qv, &ps, cal, 1000, 100));
        rate[k][2] = L / BEST(2, prefill(&m1, tok, L, logits));
        rate[k][3] = L / BEST(2, prefill(&m2, tok, L, logits));
        rate[k][4] = (double)(n_stream * sizeof *big) / 1e9 / BEST(3, stream_read(big, n_stream, &sink));
        printf("| %d |", threads[k]);
        for (int w = 0; w < N_WORK; w++)
            printf(" %.2f (%.2fx, %.0f%%) |", rate[k][w], rate[k][w] / rate[0][w],
                   100.0 * rate[k][w] / rate[0][w] / threads[k] * threads[0]);
        printf("\n");
        fflush(stdout);
    }
    int slower = 0;
    for (int k = 1; k < nt; k++)
        for (int w = 0; w < N_WORK - 1; w++)
            if (rate[k][w] < rate[k - 1][w]) {
                printf("slower with more threads: %s at %d threads (%.2f) than at %d (%.2f)\n", work_name[w], threads[k],
                       rate[k][w], threads[k - 1], rate[k - 1][w]);
                slower = 1;
            }
    printf("cells: rate (speed-up over %d thread%s, efficiency); %s\n", threads[0], threads[0] == 1 ? "" : "s",
           slower ? "some configuration got slower with more threads" : "no configuration got slower with more threads");
    free(x), free(cal), free(logits), free(big), free(tok);
    qtk_vit_quant_free(&qv);
    qtk_vit_plan_free(&pd), qtk_vit_plan_free(&ps);
    qtk_vit_free(&deit), qtk_vit_free(&small);
    qtk_mamba_free(&m1), qtk_mamba_free(&m2);
    return 0;
}
