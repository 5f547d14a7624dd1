// Quamba's int8 building blocks, shared by its calibration, forward and checkpoint files (ssm/quamba*.c);
// each is the CPU reference of the GPU kernel that does the same.
#ifndef QTK_QUAMBA_INTERNAL_H
#define QTK_QUAMBA_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/qpoint.h"
#include "quamba.h"
#include "quamba_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

// The association of a W8A8 epilogue (spec 5.2 step 2), r = fl32(s_in / s_out) and a = fl32(s_w s_in / s_out)
// computed in double:
typedef enum {
    QUAMBA_EPI_GEMM = 0, // r (s_w acc): the GEMM
    QUAMBA_EPI_GEMM_T,   // s_w (r acc): the prefill GEMM writing sequence-last (in_proj, dt_proj)
    QUAMBA_EPI_GEMV,     // a acc: the decode GEMV of one row
} quamba_epi;

// Per-tensor int8 weight: s = max(max|w|, 1e-5) / 127, q = clamp(RNE(w / s)); returns s.
float quamba_weight_q8(const float *w, size_t n, int8_t *q);
// q = clamp(roundf(v / s)) over rows of cols (strides ld, ldq); returns the codes that saturated.
uint64_t quamba_q8_div(const float *v, size_t rows, size_t cols, size_t ld, float s, int8_t *q, size_t ldq);
// the same with rint (round half to even: Mamba2's Triton RMSNorm)
uint64_t quamba_q8_div_rne(const float *v, size_t rows, size_t cols, size_t ld, float s, int8_t *q, size_t ldq);
// q (rows, N; stride ldq) = clamp(RNE(epilogue(acc))); returns the codes that saturated.
uint64_t quamba_requant(const int32_t *acc, size_t rows, int N, float s_w, float s_in, float s_out, quamba_epi e,
                        int8_t *q, size_t ldq);
// r = fl32(s_in / s_out), a = fl32(s_w s_in / s_out), the quotients in double
static inline void quamba_epi_factors(float s_w, float s_in, float s_out, float *r, float *a) {
    *r = (float)((double)s_in / (double)s_out);
    *a = (float)((double)s_w * (double)s_in / (double)s_out);
}
// The Hadamard quantizer's multiplier: fl32((1/sqrt(E)) / s) with the Hadamard, fl32(1 / s) without
static inline float quamba_had_mu(int E, int had, float s) {
    return (float)((had ? 1.0 / sqrt((double)E) : 1.0) / (double)s);
}
// A calibration's observers (ssm/quamba.c): one registry point per layer and point (id layer * np + point; Mamba1's
// points QTK_MAMBA_Q_*, Mamba2's QTK_QUAMBA2_*), and the outlier statistics; fed by the CPU's hooked forward or
// (Mamba1) by the GPU's (quamba_observe_cuda)
typedef struct {
    const qtk_mamba *m;
    qtk_qreg reg;
    int np;               // points per layer (qtk_quamba_npoints)
    float *split;         // Mamba2: a column range of in_proj's or the conv's output, contiguous
    size_t split_cap;
    int hadamard;         // out_proj's observer sees its input rotated
    int fp16_check;
    int seq;              // the sequence being observed (CPU)
    float *rot;           // out_proj's input rotated (CPU)
    size_t rot_cap;
    // outlier statistics: per layer the SSM input's max |x|, out_proj's input's per-channel max |y| (E), plain
    // and rotated
    float *x_max, *y_ch, *y_ch_had;
} quamba_obs;
qtk_status quamba_obs_init(quamba_obs *c, const qtk_mamba *m, const qtk_quamba_opts *o);
void quamba_obs_free(quamba_obs *c);
// The n calibration sequences through the GPU's float forward (ssm/cuda/quamba_calib.cu): the registry's
// points observed on the device, the outlier statistics into c's arrays; the last sequence closes the points
qtk_status quamba_observe_cuda(quamba_obs *c, const qtk_quamba_calib *cal);
// int8 conv1d + SiLU over every (sequence, channel); returns the codes that saturated
uint64_t quamba_conv_q8(const quamba_conv_args *a);
// the same, the saturated codes counted per channel range (x, B, C: quamba_conv_args' x_end, b_end)
void quamba_conv_q8_ranges(const quamba_conv_args *a, uint64_t sat[3]);
// the selective scan over every (sequence, channel)
void quamba_scan(const quamba_scan_args *a);
// layer l's scan operands for B x L tokens: the codes xq, dtq, dbl, xz (x | z, z read at E) and h, y
quamba_scan_args quamba_scan_operands(const qtk_quamba *q, int l, int B, int L, const int8_t *xq, const int8_t *dtq,
                                      const int8_t *dbl, const int8_t *xz, float *h, float *y);
// y (rows, E) through the unnormalized Hadamard (had: else left), then q = clamp(roundf(y mu)); *sat += the
// codes that saturated. y is overwritten.
qtk_status quamba_had_q8(float *y, size_t rows, int E, int had, float s, int8_t *q, uint64_t *sat);
// h += fp16(s_y (s_w acc)) over n values: out_proj's fp16 output into the residual stream
void quamba_out_resid(const int32_t *acc, size_t n, float s_y, float s_w, float *h);
// Carves q's allocations from q->cfg (tied decides whether lm_head has its own copy).
qtk_status quamba_alloc(qtk_quamba *q);

#ifdef __cplusplus
}
#endif

#endif
