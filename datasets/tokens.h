// Token files for the SSM path: flat little-endian uint16 or uint32 token ids
// (FILE) with a sidecar FILE.json {"dtype": "uint16"|"uint32", "count": N,
// "vocab_size": V}, memory-mapped, sliced into fixed-length samples.
#ifndef QTK_TOKENS_H
#define QTK_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// The most ids a sidecar may declare (2^48: a 1 PiB uint32 file); larger counts are errors, not wrapped sizes.
#define QTK_TOKENS_MAX_COUNT 281474976710656.0

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    int width;         // 2 or 4 bytes per id
    size_t count;
    uint32_t vocab_size;
} qtk_tokens;

// Opens FILE and FILE.json (at most 1 MiB); checks dtype, the byte size against count, and
// every id against vocab_size (errors name the file and the first bad position).
qtk_status qtk_tokens_open(qtk_tokens *t, const char *path);
void qtk_tokens_close(qtk_tokens *t);
uint32_t qtk_tokens_get(const qtk_tokens *t, size_t i);
// Samples of seq_len tokens starting every `stride` tokens (whole samples only).
size_t qtk_tokens_n_samples(const qtk_tokens *t, size_t seq_len, size_t stride);
qtk_status qtk_tokens_sample(const qtk_tokens *t, size_t i, size_t seq_len, size_t stride, int32_t *out);
// Writes ids (uint16 when vocab_size <= 65536, else uint32) and the sidecar, atomically.
qtk_status qtk_tokens_write(const char *path, const uint32_t *ids, size_t count, uint32_t vocab_size);

#ifdef __cplusplus
}
#endif

#endif
