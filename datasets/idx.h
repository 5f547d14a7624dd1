// IDX files (MNIST / Fashion-MNIST; gzip-compressed or plain, read through
// zlib) and CIFAR-10/100 binary batches.
#ifndef QTK_IDX_H
#define QTK_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int ndim;
    int dims[8];
    uint8_t *data; // unsigned bytes (type code 0x08)
    size_t n;      // number of elements
} qtk_idx;

// Reads an IDX file of unsigned bytes, gzip or not; errors name the file and
// what is wrong (magic, type, rank, size vs dims).
qtk_status qtk_idx_read(const char *path, qtk_idx *out);
// Writes an unsigned-byte IDX file (gzip when the name ends in .gz), atomically.
qtk_status qtk_idx_write(const char *path, int ndim, const int *dims, const uint8_t *data);
void qtk_idx_free(qtk_idx *x);

// CIFAR binary batches: records of 1 label byte (CIFAR-10) or 2 (CIFAR-100:
// coarse, fine) then 3072 pixel bytes (3, 32, 32). images: (n, 3, 32, 32);
// labels: the fine label. Both allocated; n records.
qtk_status qtk_cifar_read(const char *path, int cifar100, uint8_t **images, uint8_t **labels, size_t *n);

#ifdef __cplusplus
}
#endif

#endif
