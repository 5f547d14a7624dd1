// safetensors files: an mmap reader that validates everything before use,
// and an atomic writer (temporary file, fsync, rename).
//
// Format: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"key": "value", ...}}, then the byte buffer. Offsets are
// relative to the buffer. The reader rejects, with a message naming the file
// and tensor: a file shorter than 8 bytes, a header length past the file or
// over 100 MB, invalid JSON, unknown dtypes, bad shapes, a byte span that does
// not equal shape x dtype size, spans past the end, overlapping spans, holes.
#ifndef QTK_SAFETENSORS_H
#define QTK_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QTK_ST_MAX_HEADER 100000000ull // the safetensors reference limit

typedef struct {
    char *name;
    qtk_dtype dtype;
    int ndim;
    int64_t shape[QTK_MAX_DIMS];
    const void *data; // inside the mapping; may be unaligned (use qtk_st_read_f32)
    size_t nbytes;
    size_t offset;    // from the start of the byte buffer
} qtk_st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    size_t n_tensors;
    qtk_st_tensor *tensors; // in header order
    size_t n_meta;
    char **meta_keys;
    char **meta_vals;
} qtk_safetensors;

qtk_status qtk_st_open(qtk_safetensors *st, const char *path);
void qtk_st_close(qtk_safetensors *st);
const qtk_st_tensor *qtk_st_find(const qtk_safetensors *st, const char *name);
const char *qtk_st_meta(const qtk_safetensors *st, const char *key); // NULL if absent

// Finds a tensor and checks its shape (ndim >= 0), reading nothing: the error names the file, the tensor
// and both shapes. out may be NULL.
qtk_status qtk_st_expect(const qtk_safetensors *st, const char *name, int ndim, const int64_t *shape,
                         const qtk_st_tensor **out);
// Converts a tensor to float32 (dst has numel floats). When ndim >= 0 the
// shape must match exactly; the error names the tensor and both shapes.
qtk_status qtk_st_read_f32(const qtk_safetensors *st, const char *name, int ndim,
                           const int64_t *shape, float *dst);
// Allocates (qtk_aligned_alloc) and reads a float32 copy of any float/int tensor.
qtk_status qtk_st_load_f32(const qtk_safetensors *st, const char *name, float **dst, size_t *numel);

// A checkpoint's files: one, or the shards of a model.safetensors.index.json (HuggingFace). With an
// index, every tensor lives in exactly the shard its weight_map names (checked at open): a tensor in
// two shards, or in a shard the map does not name for it, is an error, never a silent first-found choice.
typedef struct {
    qtk_safetensors *st;
    int n;
} qtk_st_shards;

// file: that one file; else dir/model.safetensors, else the shards of dir/model.safetensors.index.json.
qtk_status qtk_st_shards_open(qtk_st_shards *s, const char *dir, const char *file);
void qtk_st_shards_close(qtk_st_shards *s);
// The tensor and the file it is in (*in), or NULL.
const qtk_st_tensor *qtk_st_shards_find(const qtk_st_shards *s, const char *name, const qtk_safetensors **in);

typedef struct {
    const char *name;
    qtk_dtype dtype; // F32, F16, BF16, F64, I8, U8, I32, I64
    int ndim;
    const int64_t *shape;
    const void *data;
} qtk_st_entry;

// Writes atomically: a temporary file in the same folder, fsync, rename.
// meta: n_meta (key, value) pairs, may be NULL.
qtk_status qtk_st_write(const char *path, const qtk_st_entry *entries, size_t n,
                        const char *const (*meta)[2], size_t n_meta);

#ifdef __cplusplus
}
#endif

#endif
