#include "sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "../core/rng.h"

qtk_status qtk_sample_indices(uint32_t total, uint32_t n, uint64_t seed, uint32_t *out) {
    if (n > total) return qtk_fail(QTK_ERR_ARG, "cannot sample %u items from a set of %u", n, total);
    uint32_t *scratch = malloc((size_t)total * sizeof *scratch);
    if (!scratch) return qtk_fail(QTK_ERR_NOMEM, "sampler: out of memory for %u indices", total);
    qtk_rng r;
    qtk_rng_seed(&r, seed, 0);
    qtk_rng_sample(&r, total, n, out, scratch);
    free(scratch);
    return QTK_OK;
}

void qtk_indices_fingerprint(const uint32_t *idx, size_t n, char out[16]) {
    uLong c = crc32(0L, Z_NULL, 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4] = {(unsigned char)idx[i], (unsigned char)(idx[i] >> 8), (unsigned char)(idx[i] >> 16),
                              (unsigned char)(idx[i] >> 24)};
        c = crc32(c, b, 4);
    }
    snprintf(out, 16, "crc32:%08lx", c);
}
