// Shared by the benchmarks: models with random weights (PCG32) of a given shape, through a temporary
// checkpoint (speed does not depend on the values).
#ifndef QTK_BENCH_UTIL_H
#define QTK_BENCH_UTIL_H

#include <stdlib.h>
#include <unistd.h>

#include "qtk.h"
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

#endif
