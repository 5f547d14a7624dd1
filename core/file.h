// Files from other people: open only regular files (a FIFO or a device would
// block or never end), read whole files under a stated size limit, and write
// temporaries for an atomic replace with the same permissions (umask) as any
// other output.
#ifndef QTK_FILE_H
#define QTK_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Opens path read-only without blocking on a FIFO; anything but a regular file is an error naming it and `what`
// (e.g. "config"). On success *fd is open (blocking mode) and *size is the file's length.
qtk_status qtk_file_open_regular(const char *path, const char *what, int *fd, size_t *size);

// The same as a stdio stream ("rb"); NULL with the error set.
FILE *qtk_file_fopen_regular(const char *path, const char *what);

// Reads a whole regular file into a NUL-terminated buffer (free() it). A file over max_bytes is an error
// naming the file, its size and the limit, never a silent cut. len may be NULL.
qtk_status qtk_file_read(const char *path, const char *what, size_t max_bytes, char **buf, size_t *len);

// Creates a temporary beside `path` for an atomic replace: "<path>.tmp.<pid>.<n>", created O_EXCL with mode
// 0666 less the umask, as fopen() would. tmp receives the name (tmp_cap bytes). Returns the fd, or -1 with the
// error set.
int qtk_file_create_tmp(const char *path, char *tmp, size_t tmp_cap);

// Removes "<path>.tmp.*" left by a killed writer: names of qtk_file_create_tmp whose process is gone, and
// names of other forms (older qtk). Returns the number removed.
int qtk_file_remove_stale_tmp(const char *path);

// zlib's CRC-32 of a regular file's bytes (read in 1 MiB pieces): a checkpoint's fingerprint in exports.
qtk_status qtk_file_crc32(const char *path, uint32_t *out);

#ifdef __cplusplus
}
#endif

#endif
