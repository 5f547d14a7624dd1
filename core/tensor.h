// Tensors: dtypes, shapes, 64-byte aligned buffers, f16/bf16 conversion.
#ifndef QTK_TENSOR_H
#define QTK_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QTK_MAX_DIMS 8
#define QTK_ALIGN 64

typedef enum {
    QTK_F32 = 0,
    QTK_F16,
    QTK_BF16,
    QTK_I8,
    QTK_U8,
    QTK_I32,
    QTK_I64,
    QTK_I4, // packed signed 4-bit, two per byte (see pack.h for nibble order)
    QTK_U4, // packed unsigned 4-bit, two per byte
    QTK_F64,
    QTK_DTYPE_COUNT
} qtk_dtype;

typedef struct {
    qtk_dtype dtype;
    int ndim;
    int64_t shape[QTK_MAX_DIMS];
    void *data;    // 64-byte aligned when owned
    size_t nbytes; // bytes of data (packed size for I4/U4)
    int owns;      // 1: qtk_tensor_free releases data
} qtk_tensor;

const char *qtk_dtype_name(qtk_dtype dt); // "F32", "F16", ... (safetensors names)
qtk_status qtk_dtype_from_name(const char *name, qtk_dtype *out);
// Bytes for n elements of dt (packed types round up to whole bytes).
size_t qtk_dtype_nbytes(qtk_dtype dt, int64_t n);
int qtk_dtype_is_float(qtk_dtype dt);

// Product of the dims; -1 when a dim is negative or the product overflows.
int64_t qtk_numel(int ndim, const int64_t *shape);

// View a tensor as (outer, len, inner) around `axis` (negative counts from
// the end): the element at (o, l, i) is at o*len*inner + l*inner + i.
qtk_status qtk_axis_view(int ndim, const int64_t *shape, int axis,
                         size_t *outer, size_t *len, size_t *inner);

void *qtk_aligned_alloc(size_t nbytes); // zeroed, QTK_ALIGN-aligned; NULL on failure
void qtk_aligned_free(void *p);

qtk_status qtk_tensor_alloc(qtk_tensor *t, qtk_dtype dt, int ndim, const int64_t *shape);
void qtk_tensor_free(qtk_tensor *t);
int64_t qtk_tensor_numel(const qtk_tensor *t);
// Writes "[3, 224, 224]" into buf.
// A sum over [0, n) whose value does not depend on the thread count: fixed chunks of QTK_SUM_CHUNK elements,
// each summed by chunk(ctx, lo, hi) in order, and the chunk sums added in chunk order (threads only decide
// who computes which chunk). Parallel when n >= par_min.
#define QTK_SUM_CHUNK 4096
double qtk_sum_chunked(size_t n, size_t par_min, double (*chunk)(const void *ctx, size_t lo, size_t hi), const void *ctx);

const char *qtk_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

// IEEE binary16 / bfloat16 <-> binary32, round-to-nearest-even, NaN kept NaN.
uint16_t qtk_f32_to_f16(float f);
float qtk_f16_to_f32(uint16_t h);
uint16_t qtk_f32_to_bf16(float f);
float qtk_bf16_to_f32(uint16_t h);

// Converts n elements of any non-packed dtype to float32 (integers exactly
// when |v| < 2^24, I64 rounded to nearest).
qtk_status qtk_convert_to_f32(qtk_dtype src_dt, const void *src, float *dst, size_t n);
// Converts float32 to F32, F16 or BF16.
qtk_status qtk_convert_from_f32(const float *src, qtk_dtype dst_dt, void *dst, size_t n);

#ifdef __cplusplus
}
#endif

#endif
