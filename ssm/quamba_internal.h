// Quamba's int8 building blocks, shared by its calibration, forward and checkpoint files (ssm/quamba*.c);
// each is the CPU reference of the GPU kernel that does the same.
#ifndef QTK_QUAMBA_INTERNAL_H
#define QTK_QUAMBA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "quamba.h"

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
// q (rows, N; stride ldq) = clamp(RNE(epilogue(acc))); returns the codes that saturated.
uint64_t quamba_requant(const int32_t *acc, size_t rows, int N, float s_w, float s_in, float s_out, quamba_epi e,
                        int8_t *q, size_t ldq);
// Carves q's allocations from q->cfg (tied decides whether lm_head has its own copy).
qtk_status quamba_alloc(qtk_quamba *q);

#endif
