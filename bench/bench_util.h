// Shared by the benchmarks: models with random weights (PCG32) of a given shape, through a temporary
// checkpoint (speed does not depend on the values).
#ifndef QTK_BENCH_UTIL_H
#define QTK_BENCH_UTIL_H

#include <stdlib.h>
#include <unistd.h>

#include "qtk.h"
#include "timer.h"
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
