// Quantization parameters: bits, sign, symmetry, granularity, scales and
// zero points, and the formulas that derive them from a range.
#ifndef QTK_QPARAMS_H
#define QTK_QPARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "scalar.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QTK_BITS_OFF 16 // bits == 16 means "not quantized": fake-quant is the identity

typedef enum {
    QTK_PER_TENSOR = 0, // one (s, z)
    QTK_PER_CHANNEL,    // one (s, z) per index along `axis`
    QTK_PER_GROUP,      // one (s, z) per `group_size` consecutive elements along `axis`
    QTK_PER_INDEX,      // index-mapped groups: position c along `axis` uses (s, z) number index[c], so any set of
                        // channels, in any order, can share one pair (Quamba2's sort-and-cluster groups) and the
                        // slices of one tensor can each have their own (Mamba2's in_proj output z | x | B | C | dt)
} qtk_granularity;

// Which rounding formula fake-quant and quantize use. Both are bit-exact with
// their PyTorch counterparts and differ on some inputs.
typedef enum {
    // q = clamp(RNE(x / s + z), lo, hi): the FQ-ViT / Evol-Q uniform quantizer
    // (a true division, then the zero point added before rounding).
    QTK_FQ_REF = 0,
    // q = clamp(RNE(x * fl32(1/s)) + z, lo, hi): torch.fake_quantize_per_tensor_affine
    // and fake_quantize_per_channel_affine (reciprocal multiply, integer zero point).
    QTK_FQ_TORCH,
} qtk_fq_formula;

typedef struct {
    int bits;               // 2..8, or QTK_BITS_OFF
    bool is_signed;         // codes in [-2^(b-1), 2^(b-1)-1], else [0, 2^b-1]
    bool symmetric;         // zero points are 0 (informational; the arrays hold them)
    qtk_granularity gran;
    int axis;               // channel axis (per-channel) or grouped axis (per-group); may be negative
    int group_size;         // per-group only
    qtk_fq_formula formula;
    size_t n;               // number of (scale, zero) pairs
    float *scale;           // (n)
    float *zero;            // (n) float zero points, as the reference stores them
    int32_t *index;         // per-index only: (index_len) values in 0..n-1, one per position along `axis`
    size_t index_len;
} qtk_qparams;

// Integer code range of a bit type.
qtk_status qtk_qrange(int bits, bool is_signed, int *lo, int *hi);

// Allocates n scales (1.0) and zero points (0.0). gran/axis/group_size as above.
qtk_status qtk_qparams_init(qtk_qparams *p, int bits, bool is_signed, bool symmetric,
                            qtk_granularity gran, int axis, int group_size, size_t n);
// Index-mapped groups (QTK_PER_INDEX): n pairs; position c along `axis` (len positions) uses pair index[c].
// Every index must lie in 0..n-1 and every pair must be used by some position. index is copied.
qtk_status qtk_qparams_init_index(qtk_qparams *p, int bits, bool is_signed, bool symmetric, int axis,
                                  const int32_t *index, size_t len, size_t n);
// Per-slice parameters of one tensor, a special case of the above: the axis is cut into n_slices
// consecutive slices of the given sizes, and slice k uses pair k.
qtk_status qtk_qparams_init_slices(qtk_qparams *p, int bits, bool is_signed, bool symmetric, int axis,
                                   const size_t *sizes, size_t n_slices);
// An index map spelled out per position: s[c] = scale[index[c]], z[c] = zero[index[c]] (index_len each).
void qtk_qparams_expand_index(const qtk_qparams *p, float *s, float *z);
// A deep copy of src (scales, zero points, index map).
qtk_status qtk_qparams_copy(qtk_qparams *dst, const qtk_qparams *src);
void qtk_qparams_free(qtk_qparams *p);

// How the (s, z) arrays map onto a tensor: element e (row-major) uses index
// qtk_qlayout_index(&L, e).
typedef struct {
    qtk_granularity gran;
    size_t outer, len, inner, group; // view around the axis; group size (per-group)
    size_t numel, nparams;
    const int32_t *index;            // per-index: the map (qtk_qparams.index; a device copy for a kernel)
} qtk_qlayout;

// Number of (s, z) pairs p needs for a tensor of this shape; checks that the
// axis exists, that group_size divides the grouped axis and that an index map
// has one entry per position of its axis.
qtk_status qtk_qlayout_make(const qtk_qparams *p, int ndim, const int64_t *shape, qtk_qlayout *L);

// The same function in the CUDA kernels (core/scalar.h's QTK_HD: __host__ __device__ under nvcc).
QTK_HD size_t qtk_qlayout_index(const qtk_qlayout *L, size_t e) {
    switch (L->gran) {
    case QTK_PER_CHANNEL: return (e / L->inner) % L->len;
    case QTK_PER_GROUP: {
        size_t i = e % L->inner, l = (e / L->inner) % L->len, o = e / (L->inner * L->len);
        return (o * (L->len / L->group) + l / L->group) * L->inner + i;
    }
    case QTK_PER_INDEX: return (size_t)L->index[(e / L->inner) % L->len];
    default: return 0;
    }
}

// --- Scale and zero point from a range, as the reference observers compute
// them on CUDA (spec vit-baseline §3.3): "divide by a constant" is a multiply
// by the float32 reciprocal; tensor/tensor divisions are true divisions.

#define QTK_FLT_EPS 1.1920928955078125e-07f // float32 machine epsilon, 2^-23

// Asymmetric: s = max((mx - mn) * fl32(1/(hi-lo)), eps); z = clamp(lo - RNE(mn / s), lo, hi).
void qtk_params_asym(float mn, float mx, int lo, int hi, float *s, float *z);
// Symmetric (reference form): s = max(max(-mn, mx) * fl32(1/((hi-lo)/2)), eps); z = 0.
// Note (hi-lo)/2 is 127.5 for int8.
void qtk_params_sym(float mn, float mx, int lo, int hi, float *s, float *z);
// Symmetric absmax form of the SSM papers (Quamba): s = absmax / (2^(b-1) - 1)
// with 127 for 8 bits, 7 for 4 bits. Quamba divides a CUDA tensor by the
// constant, which PyTorch computes as absmax * fl32(1/127); so does qtk.
float qtk_scale_absmax(float absmax, int bits);

#ifdef __cplusplus
}
#endif

#endif
