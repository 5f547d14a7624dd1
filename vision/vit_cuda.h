// The ViT / DeiT forward on one NVIDIA GPU: the FP32 model and the FQ-ViT /
// Evol-Q quantized model of vit_quant.h, with the CPU forward's arithmetic
// (spec vit-baseline.md) on cuBLAS GEMMs and fused CUDA kernels.
//
// GEMMs run in exact FP32 by default (cuBLAS default math; the pedantic mode
// where NVIDIA_TF32_OVERRIDE is set, so TF32 is never used behind the
// caller's back). QTK_VIT_GEMM_TF32 allows TF32 tensor cores (labelled in
// every benchmark line). QTK_VIT_GEMM_INT8 runs the quantized model's four
// linear layers per block on int8 tensor cores: their inputs are integer
// codes of a per-tensor quantizer and their (bias-corrected) weights an
// affine map of integer codes per row (qtk_weight_affine), so the int32 sums
// are exact and one double-precision epilogue gives the fake-quant GEMM's
// value rounded once to float32 (where FP32 GEMMs round every addition).
// The attention's two GEMMs then run on fp16 tensor cores: q, k, v and the
// probabilities as grid point minus zero point (integers, exact in fp16),
// summed in FP32, exact while every sum stays below 2^24 (checked per
// block), times the two scales. Everything else stays FP32. Fake quantization, integer LayerNorm, softmax and
// GELU are elementwise the CPU's float arithmetic (built with --fmad=false),
// so differences from the CPU come from GEMM summation order only; a
// quantizer can then put an element on the neighbouring grid point.
//
// Use: qtk_vit_cuda_create once (weights and buffers for batches up to
// max_batch go to the GPU), qtk_vit_cuda_set_quant after calibration or an
// import (uploads the fake-quantized weights and every quantizer's
// parameters), qtk_vit_cuda_update_weight after re-quantizing one weight,
// then qtk_vit_cuda_forward as often as needed. A build without CUDA returns
// QTK_ERR_UNSUPPORTED from every call.
#ifndef QTK_VIT_CUDA_H
#define QTK_VIT_CUDA_H

#include "vit.h"
#include "vit_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qtk_vit_cuda qtk_vit_cuda;

// GEMM arithmetic (above).
typedef enum { QTK_VIT_GEMM_FP32 = 0, QTK_VIT_GEMM_TF32 = 1, QTK_VIT_GEMM_INT8 = 2 } qtk_vit_gemm;
// "fp32" | "tf32" | "int8" -> *out; QTK_ERR_ARG naming the choices otherwise.
qtk_status qtk_vit_gemm_parse(const char *name, qtk_vit_gemm *out);
const char *qtk_vit_gemm_name(qtk_vit_gemm g);

qtk_status qtk_vit_cuda_create(qtk_vit_cuda **out, const qtk_vit *m, int max_batch, qtk_vit_gemm gemm);
void qtk_vit_cuda_destroy(qtk_vit_cuda *g);

// qtk_vit_calibrate with the activations computed and observed on the GPU
// (min/max and OMSE / PTF scoring by the core/cuda observer twins; the
// choices made by the CPU's code), then set_quant. batch <= max_batch.
qtk_status qtk_vit_cuda_calibrate(qtk_vit_cuda *g, qtk_vit_quant *qv, const float *images, int n, int batch);

// The quantized model's state as it is now in qv (mode, enabled switches,
// parameters, fake-quantized weights, integer LayerNorm). qv must outlive
// the uploads only for the duration of the call.
qtk_status qtk_vit_cuda_set_quant(qtk_vit_cuda *g, qtk_vit_quant *qv);
// After qtk_vit_quant_requantize(qv, point): uploads that weight and its parameters.
// qtk_vit_cuda_requantize instead re-quantizes it on the GPU (fake quantization and bias correction)
// from qv's changed scales, and marks the host copy stale (qtk_vit_quant_sync_weights).
qtk_status qtk_vit_cuda_update_weight(qtk_vit_cuda *g, const qtk_vit_quant *qv, int point);
qtk_status qtk_vit_cuda_requantize(qtk_vit_cuda *g, qtk_vit_quant *qv, int point);

// After an activation quantizer's parameters changed (the search): refreshes them on the GPU.
qtk_status qtk_vit_cuda_update_act(qtk_vit_cuda *g, const qtk_vit_quant *qv, int point);

// images (host): (B, in_chans, img, img); logits (host): (B, classes).
// quantized: 0 the FP32 model, 1 the quantized one (after set_quant), 2 the
// search's reference targets (quantizers off, integer LayerNorm on: spec
// evolq-search.md section 3).
qtk_status qtk_vit_cuda_forward(qtk_vit_cuda *g, const float *images, int B, float *logits, int quantized);

// The same with d_images and d_logits in GPU memory (qtk_cuda_malloc): asynchronous on the
// model's stream; qtk_vit_cuda_synchronize waits for it.
qtk_status qtk_vit_cuda_forward_device(qtk_vit_cuda *g, const float *d_images, int B, float *d_logits, int quantized);
qtk_status qtk_vit_cuda_synchronize(qtk_vit_cuda *g);

// The residual stream entering `block` (host x_out: B, T, C), and the forward
// from such a cached input to the logits (host); mode as `quantized` above.
qtk_status qtk_vit_cuda_block_input(qtk_vit_cuda *g, const float *images, int B, int block, float *x_out, int mode);
qtk_status qtk_vit_cuda_forward_from(qtk_vit_cuda *g, const float *x_in, int B, int block, float *logits, int mode);

// The search's calibration set on the GPU: the n images stay resident, and
// so does every block's input computed from them (one slot per block, when
// memory allows), until a quantizer before that block changes (requantize
// through the qtk_model below, or qtk_vit_cuda_invalidate). block_input_all
// copies block `block`'s inputs to x_out (host; NULL: no copy);
// forward_from_all runs blocks `block`.. from them to the logits (host).
// Where the set does not fit, block_input_all fails with QTK_ERR_NOMEM (the search's qtk_model
// below then streams it through host memory in batches of max_batch).
qtk_status qtk_vit_cuda_block_input_all(qtk_vit_cuda *g, const float *images, int n, int block, float *x_out, int mode);
qtk_status qtk_vit_cuda_forward_from_all(qtk_vit_cuda *g, int n, int block, float *logits, int mode);
void qtk_vit_cuda_invalidate(qtk_vit_cuda *g, int point);

// The calibrated model behind qtk_model (for the search) with every forward on
// the GPU: as qtk_vit_quant_model, and requantize also uploads what changed.
// g must be planned for the search's batch and already hold qv (set_quant).
qtk_status qtk_vit_quant_model_cuda(qtk_vit_quant *qv, qtk_vit_cuda *g, qtk_model *out);

int qtk_vit_cuda_max_batch(const qtk_vit_cuda *g);

// Bytes of GPU memory the model and buffers for max_batch need (for messages and planning).
size_t qtk_vit_cuda_bytes(const qtk_vit *m, int max_batch, qtk_vit_gemm gemm);

// How many of the quantized forward's block linear layers ran on int8 tensor cores since the last
// set_quant (QTK_VIT_GEMM_INT8; the others fell back to FP32: a per-channel or disabled input
// quantizer, a weight not quantized per output channel, or no cuBLASLt algorithm for the shape), out
// of how many ran in all; and in how many blocks the attention's two GEMMs ran on fp16 tensor cores
// with exact integer sums (the qkv and softmax quantizers per tensor, every sum below 2^24), out of
// how many.
void qtk_vit_cuda_int8_count(const qtk_vit_cuda *g, int *int8_layers, int *linear_layers, int *fp16_attention,
                             int *attention_blocks);

#ifdef __cplusplus
}
#endif

#endif
