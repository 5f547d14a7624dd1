// Private to vision/cuda/: the GPU ViT's state and what its files share.
//   vit.cu          kernels, setup, the forward
//   vit_weights.cu  the int8 path's weight codes, the fp16 exactness check, re-quantization on the GPU
//   vit_search.cu   the search's calibration set and block inputs, resident on the GPU
#ifndef QTK_VIT_INTERNAL_H
#define QTK_VIT_INTERNAL_H

#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/biascorr.h"
#include "../../core/cuda/common.cuh"
#include "../../core/cuda/gemm.cuh"
#include "../../core/cuda/ops.cuh"
#include "../../core/qparams.h"
#include "../../core/cuda/qtk_cuda.h"
#include "../../core/observer.h"
#include "../../core/qpoint.h"
#include "../vit_cuda.h"

// One quantizer as the forward applies it: off, per tensor, or per channel of the last axis (PTF):
// core/scalar.h's output quantizer, its per-channel arrays on the device (the registry's device half).
typedef qtk_outq dquant;

// A weight as int8 codes for the integer GEMMs (qtk_weight_affine): rows 0..O-1 the codes, row O all
// ones (so the GEMM also yields each input row's code sum), rows O+1..O+3 zero (O + 4 rows: cuBLASLt's
// int8 alignment); value of row o = alpha[o] * code + gamma[o]; bsum[o] the codes' row sum.
struct wint {
    int8_t *codes;
    double *alpha, *gamma;
    int32_t *bsum;
    int ok;
};

struct qtk_vit_cuda {
    const qtk_vit *m;
    int maxB;
    qtk_vit_gemm gemm;
    // the int8 path: input codes (rows x max(C, M)) and int32 sums (rows x (max(3C, M) + 4)); weights
    int8_t *codes;
    int32_t *acc;
    struct wint *wi;      // per point
    void *wi_mem;
    size_t wi_cap;
    // attention on fp16 tensor cores: q, k, v and the probabilities as (grid point - zero point), small
    // integers exact in fp16, so FP32-accumulated sums below 2^24 are exact (att_int)
    __half *qkvh, *atth;
    const void **hptr;    // as ptr: k, q, (unused), v, probabilities
    int n_int8, n_linear; // counts since set_quant (qtk_vit_cuda_int8_count)
    int n_att16, n_att;
    int fp16_exact;       // this GPU's fp16 GEMMs sum integers below 2^24 exactly (checked at create)
    cudaStream_t st;
    qtk_gemm gm;          // cuBLAS(Lt) handles, workspace, plans (core/cuda/gemm.cuh); gm.h for the other cuBLAS calls
    float *d_params;      // a copy of m->mem: device pointer = d_params + (host pointer - m->mem)
    qtk_qreg_dev qd;      // the registry's device half: per point its quantizer or quantized weights, the
                          // scales of one weight (qd.d_sz), a calibration's running statistics (core/qpoint.h)
    float *d_ln;          // the integer LayerNorms' input scales (ln_s points into it)
    size_t ln_cap;
    int npoints;
    int quant_ready, int_ln;
    // integer LayerNorm ln (norm1 of block i is 2i, norm2 2i+1, the final one 2*depth): the scales of
    // the quantizer before it (d_ln_s: C or 1 values) and after it, as the CPU hook reads them
    int ln_on[256], ln_pc[256];
    const float *ln_s[256];
    float ln_s1[256], ln_sout[256];
    // activations
    float *x, *hbuf, *qkv, *att, *ctx, *mlp, *cols, *feat, *patch, *pos, *img, *logits, *ld;
    const float **ptr;    // batched-GEMM pointer arrays: 6 * maxB * heads
    void *mem;
    // the search's calibration set on the GPU: its images and every block's input (slot b: the input
    // of block b for all n images), valid until a quantizer of an earlier block changes
    float *d_cal, *d_slots;
    const float *cal_host;
    int cal_n, n_slots;      // n_slots: depth + 1, or 1 where memory is short (then nothing is reused)
    int slot_valid[257];
    int cur_block;           // the block whose inputs block_input_all last produced
};

#define DEV(g, hp) ((g)->d_params + ((hp) - (g)->m->mem))


typedef struct {
    qtk_vit_cuda *g;
    int qz;            // quantizers and quantized weights on
    int iln;           // integer LayerNorm where calibrated (the quantized forward, or the search targets)
    qtk_vit_quant *cal; // calibration: the FP forward feeds every activation observer of cal
    int cal_last;       // the last calibration batch: OMSE / PTF parameters from it
    int cal_first;      // the first calibration batch
} fwd;

// vit.cu
qtk_status vitc_fwd_embed(const fwd *f, const float *images, int B, int dev);
qtk_status vitc_fwd_blocks(const fwd *f, int B, int from, int to);
qtk_status vitc_fwd_head(const fwd *f, int B);
qtk_status vitc_range_checked(qtk_vit_cuda *g, int B, int block, int mode);
fwd vitc_fwd_for(qtk_vit_cuda *g, int mode);

// vit_setup.cu: the registry's device half, set up for qv's registry on first use
qtk_status vitc_qd_ready(qtk_vit_cuda *g, const qtk_vit_quant *qv);

// vit_weights.cu
int vitc_int_point(const qtk_vit_cuda *g, int i);
qtk_status vitc_int_weight(qtk_vit_cuda *g, const qtk_vit_quant *qv, int point);
qtk_status vitc_int_weights(qtk_vit_cuda *g, const qtk_vit_quant *qv);
qtk_status vitc_fp16_sums_exact(qtk_vit_cuda *g, int *exact);

#endif
