// The quantized ViT baseline that Evol-Q starts from (spec vit-baseline.md):
// FQ-ViT style, every quantization point of section 6 with its quantizer,
// calibrated in the reference's stage order (section 11).
//
// Use: qtk_vit_quant_init (after qtk_vit_load), qtk_vit_calibrate on N
// images, then qtk_vit_quant_forward. Every quantizer is addressable by name
// ("blocks.3.attn.qkv.weight", "blocks.3.attn.softmax", ...).
#ifndef QTK_VIT_QUANT_H
#define QTK_VIT_QUANT_H

#include <stdio.h>

#include "../core/model.h"
#include "../core/observer.h"
#include "../core/qparams.h"
#include "vit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int w_bits;        // weight bits (3, 4, 8; any 2..8): unsigned asymmetric, per output channel, min-max
    int a_bits;        // activation bits (8): unsigned asymmetric, per tensor OMSE; PTF before LayerNorms
    int bias_corr;     // bias correction of the fake-quantized weights (on)
    int int_layernorm; // integer LayerNorm in quantized mode (on); off: float LayerNorm, its output still quantized
    int quant_input;   // -1: from the model description (DeiT yes, ViT no); 0 / 1 to override
} qtk_vit_qconfig;

void qtk_vit_qconfig_default(qtk_vit_qconfig *qc);

typedef struct {
    char name[64];      // "" where the model has no quantizer (e.g. the input of a ViT)
    int is_weight;
    int enabled;        // off: the tensor passes through unquantized
    int calibrated;
    qtk_observer ob;
    qtk_qparams qp;     // per channel (weights, PTF) or per tensor
    // weights
    const float *w;     // (O, K) float weights
    float *wq;          // (O, K) fake-quantized (+ bias-corrected) weights used by the forward
    size_t O, K;
    int wq_stale;       // wq is behind qp (re-quantized on the GPU): qtk_vit_quant_sync_weights
    // quant-report accumulators: sum (x - fq(x))^2 and element count
    double err_sum;
    double n_seen;
} qtk_vit_quantizer;

// FP_INTLN: every quantizer off, LayerNorms in integer mode with the calibrated
// scales: the reference's "FP" search targets (spec evolq-search.md section 3).
enum { QTK_VQ_FP = 0, QTK_VQ_CALIB, QTK_VQ_QUANT, QTK_VQ_FP_INTLN };

typedef struct {
    const qtk_vit *m;
    qtk_vit_qconfig qc;
    int n;                 // number of point ids
    qtk_vit_quantizer *q;  // indexed by point id (vit.h)
    int mode;
    int last_batch;        // calibration: this batch computes OMSE / PTF parameters
    int report;            // quantized forward accumulates per-quantizer MSE
    float *wq_mem;
    qtk_vit_hooks hooks;
    qtk_vit_plan *model_plan; // set by qtk_vit_quant_model
    unsigned model_vectors;
    int targets_float;        // search targets: 0 = reference (integer LN), 1 = the true FP model
    // called after every calibration batch (NULL: none)
    void (*progress)(void *ctx, int done_images, int total_images);
    void *progress_ctx;
    struct qtk_vit_cuda *gpu; // set by qtk_vit_quant_model_cuda: the model's forwards run there
    int gpu_streaming;        // the search's set does not fit the GPU: batches through host memory
} qtk_vit_quant;

// Which scales qtk_model's block_vectors exposes per block (default: qkv and proj weights, per output channel).
enum {
    QTK_VIT_VEC_QKV = 1u << 0,
    QTK_VIT_VEC_PROJ = 1u << 1,
    QTK_VIT_VEC_FC1 = 1u << 2,
    QTK_VIT_VEC_FC2 = 1u << 3,
    QTK_VIT_VEC_ACT = 1u << 4, // the block's per-tensor activation scales (not the PTF ones)
    QTK_VIT_VEC_DEFAULT = QTK_VIT_VEC_QKV | QTK_VIT_VEC_PROJ,
};

// Distilled models are refused: the reference quantizes no distillation head.
qtk_status qtk_vit_quant_init(qtk_vit_quant *qv, const qtk_vit *m, const qtk_vit_qconfig *qc);
void qtk_vit_quant_free(qtk_vit_quant *qv);

// images: (n, in_chans, img, img) normalized. Runs floor(n / batch) batches
// (the reference's drop_last) with quantization off; weights are observed
// first; OMSE and PTF parameters come from the last batch. plan->B >= batch.
qtk_status qtk_vit_calibrate(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int n, int batch);
// Re-quantizes the weights whose wq fell behind their parameters (after a search on the GPU);
// the CPU forwards call it themselves.
qtk_status qtk_vit_quant_sync_weights(qtk_vit_quant *qv);

// The weight half of calibration (min-max per output channel, then fake quantization and bias
// correction); qtk_vit_calibrate and the GPU calibration call it first.
qtk_status qtk_vit_calibrate_weights(qtk_vit_quant *qv);

// Quantized forward (after calibration).
qtk_status qtk_vit_quant_forward(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int B, float *logits);

// Quantizer by name, or NULL.
qtk_vit_quantizer *qtk_vit_quant_find(qtk_vit_quant *qv, const char *name);
// Switches every quantizer whose name matches the glob pattern (fnmatch, e.g.
// "blocks.*.attn.softmax"); returns how many matched.
int qtk_vit_quant_set_enabled(qtk_vit_quant *qv, const char *pattern, int on);
// Re-derives a weight quantizer's effective weights after its scales or
// zero points changed (fake quantization, then bias correction).
qtk_status qtk_vit_quant_requantize(qtk_vit_quant *qv, int point);

// Runs the quantized forward over images, accumulating each quantizer's
// MSE (x - fq(x))^2 on the tensors it sees, then prints one line per
// quantizer: name, bits, granularity, scale range, zero point range, MSE.
qtk_status qtk_vit_quant_report(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int n, int batch, FILE *out);

// Writes every calibrated quantizer as "<name>.scale" and "<name>.zero_point"
// (F32) with __metadata__: qtk_version, config (JSON), quantizers (JSON list of
// {name, bits, granularity, enabled}) plus the caller's extra (key, value) pairs.
qtk_status qtk_vit_quant_export(const qtk_vit_quant *qv, const char *path, const char *const (*extra)[2], size_t n_extra);

// Loads every quantizer's scales and zero points from an export of the same
// model and bit widths (qtk_vit_quant_export: a calibration, a search result),
// re-quantizes the weights and leaves the model ready for the quantized
// forward: no calibration needed. Errors name the file and the quantizer.
qtk_status qtk_vit_quant_import(qtk_vit_quant *qv, const char *path);

// The calibrated model behind the qtk_model interface (for the search).
// plan: buffers for batches up to plan->B; vectors: QTK_VIT_VEC_* flags.
qtk_status qtk_vit_quant_model(qtk_vit_quant *qv, qtk_vit_plan *plan, unsigned vectors, qtk_model *out);

#ifdef __cplusplus
}
#endif

#endif
