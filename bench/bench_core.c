// Core benchmarks (make bench). Every number is printed beside a baseline
// measured in the same run:
//   fake-quant GB/s (bytes read + written) vs memcpy GB/s, both on all cores;
//   Hadamard rows/s vs a dense H x matrix-vector product (sgemv per row) and
//   vs the same dense product batched as one sgemm.
// Median of 7 repetitions after a warm-up.
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qtk.h"
#include "timer.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define REPS 7
#define TIME_IT(out, stmt)                                                                                             \
    do {                                                                                                               \
        double ts_[REPS];                                                                                              \
        stmt;                                                                                                          \
        for (int r_ = 0; r_ < REPS; r_++) {                                                                            \
            double t0_ = qtk_now();                                                                                        \
            stmt;                                                                                                      \
            ts_[r_] = qtk_now() - t0_;                                                                                     \
        }                                                                                                              \
        qsort(ts_, REPS, sizeof(double), cmp_d);                                                                       \
        out = ts_[REPS / 2];                                                                                           \
    } while (0)

static void par_memcpy(float *dst, const float *src, size_t n) {
    const size_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < (n + chunk - 1) / chunk; c++) {
        size_t b = c * chunk, e = b + chunk < n ? b + chunk : n;
        memcpy(dst + b, src + b, (e - b) * sizeof *dst);
    }
}

int main(void) {
    const size_t n = (size_t)64 << 20; // 64 Mi floats = 256 MiB per buffer
    float *x = qtk_aligned_alloc(n * 4), *y = qtk_aligned_alloc(n * 4);
    if (!x || !y) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    qtk_rng rng;
    qtk_rng_seed(&rng, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(&rng, -4.0f, 4.0f);
    printf("qtk core benchmarks: %d OpenMP threads, qtk %s\n\n", omp_get_max_threads(), QTK_VERSION);

    double t_mem, t;
    TIME_IT(t_mem, par_memcpy(y, x, n));
    double gb = 8.0 * (double)n / 1e9; // bytes read + written
    double bw_mem = gb / t_mem;
    printf("%-52s %8.2f GB/s  (baseline)\n", "memcpy 256 MiB, all threads", bw_mem);

    struct {
        const char *name;
        qtk_granularity g;
        int64_t shape[2];
        int axis;
    } cases[] = {
        {"fake-quant per-tensor u8, [64Mi]", QTK_PER_TENSOR, {1, (int64_t)n}, 0},
        {"fake-quant per-channel u4, weight [4096, 16384] axis 0", QTK_PER_CHANNEL, {4096, 16384}, 0},
        {"fake-quant per-channel u8, act [16384, 4096] axis -1", QTK_PER_CHANNEL, {16384, 4096}, -1},
        {"fake-quant per-group-128 u4, [4096, 16384]", QTK_PER_GROUP, {4096, 16384}, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int bits = strstr(cases[c].name, "u4") ? 4 : 8;
        size_t np = cases[c].g == QTK_PER_TENSOR ? 1
                    : cases[c].g == QTK_PER_CHANNEL ? (size_t)cases[c].shape[cases[c].axis < 0 ? 1 : 0]
                                                    : (size_t)(cases[c].shape[0] * cases[c].shape[1] / 128);
        qtk_qparams p;
        if (qtk_qparams_init(&p, bits, false, false, cases[c].g, cases[c].axis, 128, np) != QTK_OK) {
            fprintf(stderr, "bench: %s\n", qtk_last_error());
            return 1;
        }
        for (size_t k = 0; k < np; k++) {
            p.scale[k] = 0.03f + 1e-6f * (float)(k % 1000);
            p.zero[k] = (float)((1 << bits) / 2);
        }
        TIME_IT(t, qtk_fake_quant(&p, x, y, 2, cases[c].shape));
        double bw = gb / t;
        printf("%-52s %8.2f GB/s  %5.1f%% of memcpy\n", cases[c].name, bw, 100.0 * bw / bw_mem);
        // in place (y = x): no separate destination lines to fetch before writing
        memcpy(y, x, n * 4);
        TIME_IT(t, qtk_fake_quant(&p, y, y, 2, cases[c].shape));
        bw = gb / t;
        printf("%-52s %8.2f GB/s  %5.1f%% of memcpy\n", "  same, in place", bw, 100.0 * bw / bw_mem);
        qtk_qparams_free(&p);
    }
    {
        qtk_qparams p;
        int64_t shape[1] = {(int64_t)n};
        qtk_qparams_init(&p, 8, false, false, QTK_PER_TENSOR, 0, 0, 1);
        p.scale[0] = 0.03f;
        p.zero[0] = 128;
        p.formula = QTK_FQ_TORCH;
        TIME_IT(t, qtk_fake_quant(&p, x, y, 1, shape));
        printf("%-52s %8.2f GB/s  %5.1f%% of memcpy\n", "fake-quant per-tensor u8, torch formula", gb / t,
               100.0 * gb / t / bw_mem);
        qtk_qparams_free(&p);
    }

    printf("\n");
    const size_t ns[] = {4096, 1536};
    for (int k = 0; k < 2; k++) {
        size_t hn = ns[k], rows = ((size_t)8 << 20) / hn; // 32 MiB of rows
        float *H = qtk_aligned_alloc(hn * hn * 4);
        qtk_hadamard_matrix(hn, H);
        float inv = 1.0f / sqrtf((float)hn);
        for (size_t i = 0; i < hn * hn; i++) H[i] *= inv;
        double t_h, t_gemv, t_gemm;
        TIME_IT(t_h, qtk_hadamard_rows(x, rows, hn));
        // dense baseline: y_r = H x_r for every row; OpenBLAS uses all cores inside sgemv
        TIME_IT(t_gemv, for (size_t r = 0; r < rows; r++) cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)hn, (int)hn,
                                                                       1.0f, H, (int)hn, x + r * hn, 1, 0.0f,
                                                                       y + r * hn, 1));
        TIME_IT(t_gemm, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)hn, (int)hn, 1.0f, x,
                                    (int)hn, H, (int)hn, 0.0f, y, (int)hn));
        printf("hadamard n=%-5zu %6zu rows: %10.0f rows/s | dense sgemv %10.0f rows/s (%.1fx) | "
               "dense sgemm %10.0f rows/s (%.1fx)\n",
               hn, rows, rows / t_h, rows / t_gemv, t_gemv / t_h, rows / t_gemm, t_gemm / t_h);
        qtk_aligned_free(H);
    }
    qtk_aligned_free(x);
    qtk_aligned_free(y);
    return 0;
}
