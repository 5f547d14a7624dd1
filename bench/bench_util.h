// Shared by the benchmarks: models with random weights (PCG32) of a given shape, through a temporary
// checkpoint (speed does not depend on the values).
#ifndef QTK_BENCH_UTIL_H
#define QTK_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "qtk.h"
#include "timer.h"
#include "../ssm/mamba.h"
#include "../vision/vit.h"

static inline qtk_status bench_random_vit(const qtk_vit_config *cfg, const char *desc, qtk_vit *m) {
    char path[] = "/tmp/qtk_bench_vit_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return qtk_fail(QTK_ERR_IO, "cannot create a temporary file");
    close(fd);
    qtk_status st = qtk_vit_write_random(path, cfg, 1);
    if (st == QTK_OK) st = qtk_vit_load(m, path, desc);
    unlink(path);
    return st;
}

// A float32 Mamba of shape c with random weights (seed 1), through a temporary checkpoint folder
static inline qtk_status bench_random_mamba(const qtk_mamba_config *c, qtk_mamba *m) {
    char dir[] = "/tmp/qtk_bench_mamba_XXXXXX";
    if (!mkdtemp(dir)) return qtk_fail(QTK_ERR_IO, "cannot create a temporary folder");
    qtk_status st = qtk_mamba_write_random(dir, c, 1, "F32");
    if (st == QTK_OK) st = qtk_mamba_load(m, dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return st;
}

// The HF shapes the benchmarks use, with n_layers layers: mamba-130m (24 in full), mamba-2.8b (64) and
// mamba2-130m (24)
static inline qtk_mamba_config bench_mamba_130m(int n_layers) {
    qtk_mamba_config c = {.arch = QTK_MAMBA1, .d_model = 768, .d_inner = 1536, .d_state = 16, .d_conv = 4,
                          .n_layers = n_layers, .vocab = 50280, .dt_rank = 48, .eps = 1e-5f, .conv_bias = 1, .tied = 1};
    return c;
}
static inline qtk_mamba_config bench_mamba_2p8b(int n_layers) {
    qtk_mamba_config c = bench_mamba_130m(n_layers);
    c.d_model = 2560, c.d_inner = 5120, c.dt_rank = 160;
    return c;
}
static inline qtk_mamba_config bench_mamba2_130m(int n_layers) {
    qtk_mamba_config c = {.arch = QTK_MAMBA2, .d_model = 768, .d_inner = 1536, .d_state = 128, .d_conv = 4,
                          .n_layers = n_layers, .vocab = 50288, .head_dim = 64, .n_heads = 24, .n_groups = 1,
                          .chunk_size = 256, .eps = 1e-5f, .conv_bias = 1, .tied = 1};
    return c;
}

// The device-to-device copy bandwidth in GB/s (read + write; the best of 3 after a warm-up of 1 GiB copies): the
// GPU benchmarks' weight-bandwidth floor. 0 when the GPU cannot hold the buffers.
static inline double bench_d2d_gbs(void) {
    size_t n = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    if (qtk_cuda_malloc(&a, n) != QTK_OK || qtk_cuda_malloc(&b, n) != QTK_OK) return 0;
    double best = 0;
    for (int i = 0; i < 4; i++) {
        double t = qtk_now();
        if (qtk_cuda_memcpy_d2d(b, a, n) != QTK_OK) break;
        t = qtk_now() - t;
        if (i && 2.0 * n / t > best) best = 2.0 * n / t; // read + write
    }
    qtk_cuda_free(a);
    qtk_cuda_free(b);
    return best / 1e9;
}

#endif
