// Seeded calibration sampling: the same N indices for the same seed, on any
// machine (PCG32), with a fingerprint of the chosen list for export metadata.
#ifndef QTK_SAMPLER_H
#define QTK_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// n distinct indices from [0, total) in draw order (seed, stream 0).
qtk_status qtk_sample_indices(uint32_t total, uint32_t n, uint64_t seed, uint32_t *out);
// "crc32:xxxxxxxx" of the indices as little-endian u32 (zlib's CRC-32), for
// run metadata: a changed list is visible at a glance.
void qtk_indices_fingerprint(const uint32_t *idx, size_t n, char out[16]);

#ifdef __cplusplus
}
#endif

#endif
