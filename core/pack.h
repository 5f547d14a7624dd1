// Real quantization: float -> integer codes (int8/uint8, packed int4/uint4)
// and back.
//
// A code is the clamped integer q of the fake-quant formula (not q - z), so
// qtk_dequantize(qtk_quantize(x)) equals qtk_fake_quant(x) (as values: codes
// carry no sign of zero, so a -0.0 of fake-quant comes back as +0.0).
//
// Packed 4-bit layout (QTK_I4 / QTK_U4): element 2i sits in the LOW nibble
// (bits 0-3) of byte i and element 2i+1 in the HIGH nibble (bits 4-7); an odd
// count leaves the last high nibble 0. Signed nibbles are two's complement
// (-8..7), unsigned are 0..15. Element order is the tensor's row-major order,
// so rows of odd length share a byte across the row boundary.
#ifndef QTK_PACK_H
#define QTK_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "qparams.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// codes: I8 (signed p), U8 (unsigned p), I4 / U4 (bits <= 4, packed).
qtk_status qtk_quantize(const qtk_qparams *p, const float *x, int ndim, const int64_t *shape,
                        qtk_dtype code_dtype, void *codes);
qtk_status qtk_dequantize(const qtk_qparams *p, const void *codes, qtk_dtype code_dtype,
                          int ndim, const int64_t *shape, float *y);

// QTK_OK when codes of p fit code_dtype (the check both functions above make).
qtk_status qtk_code_dtype_check(const qtk_qparams *p, qtk_dtype code_dtype);

// Nibble packing of n small integers (each in -8..7 for signed, 0..15 unsigned).
void qtk_pack_int4(const int8_t *vals, size_t n, uint8_t *packed);
void qtk_unpack_i4(const uint8_t *packed, size_t n, int8_t *vals);  // sign-extends
void qtk_unpack_u4(const uint8_t *packed, size_t n, uint8_t *vals);

#ifdef __cplusplus
}
#endif

#endif
