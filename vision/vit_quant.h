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
#include "../core/qpoint.h"
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
    const qtk_vit *m;
    qtk_vit_qconfig qc;
    qtk_qreg reg;          // the quantization points, indexed by point id (vit.h)
    // a forward with the points off but the LayerNorms integer with the calibrated scales: the
    // reference's "FP" search targets (spec evolq-search.md section 3)
    int fp_intln;
    qtk_vit_hooks hooks;
    qtk_vit_plan *model_plan; // set by qtk_vit_quant_model
    char **targets;        // search targets: globs over point names (qtk_vit_quant_targets)
    int n_targets;
    int targets_float;     // search targets: 0 = reference (integer LN), 1 = the true FP model
    size_t *block_elems;   // (depth) the qtk_model's block_input_elems (set by qtk_vit_quant_model)
    // called after every calibration batch (NULL: none)
    void (*progress)(void *ctx, int done_images, int total_images);
    void *progress_ctx;
    struct qtk_vit_cuda *gpu; // set by qtk_vit_quant_model_cuda: the model's forwards run there
    int gpu_streaming;        // the search's set does not fit the GPU: batches through host memory
} qtk_vit_quant;

// The scale vectors the search perturbs per block: globs over point names ("blocks.*.mlp.fc1.weight"),
// or the short names qkv, proj, fc1, fc2 (those weights, per output channel) and act (the block's
// per-tensor activation scales, not the PTF ones). Short names come first, in that fixed order, then
// the globs in the order given; none: qkv and proj. A glob that matches no point is an error.
qtk_status qtk_vit_quant_targets(qtk_vit_quant *qv, const char *const *targets, int n);

// Distilled models are refused: the reference quantizes no distillation head.
qtk_status qtk_vit_quant_init(qtk_vit_quant *qv, const qtk_vit *m, const qtk_vit_qconfig *qc);
void qtk_vit_quant_free(qtk_vit_quant *qv);

// images: (n, in_chans, img, img) normalized. Runs floor(n / batch) batches
// (the reference's drop_last) with quantization off; weights are observed
// first; OMSE and PTF parameters come from the last batch. plan->B >= batch.
qtk_status qtk_vit_calibrate(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int n, int batch);

// Quantized forward (after calibration).
qtk_status qtk_vit_quant_forward(qtk_vit_quant *qv, qtk_vit_plan *plan, const float *images, int B, float *logits);

// The points an integer LayerNorm reads: the PTF point before it (its input scales) and the point
// after it (its output scale). ln: 2l = norm1 of block l, 2l+1 = norm2, 2 depth = the final norm.
void qtk_vit_ln_points(const qtk_vit *m, int ln, int *in, int *out);

// Quantizer by name, or NULL (qtk_qreg_find on qv->reg gives its id; qtk_qreg_set_enabled
// switches points by glob).
qtk_qpoint *qtk_vit_quant_find(qtk_vit_quant *qv, const char *name);

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
// The settings an export was made with (its "config" metadata: bit widths, bias correction,
// integer LayerNorm), so that a model can be set up to import it.
qtk_status qtk_vit_quant_read_config(const char *path, qtk_vit_qconfig *qc);

// The calibrated model behind the qtk_model interface (for the search), with the search
// targets of qtk_vit_quant_targets (qkv and proj if it was not called; set them before this call: the
// model points at them).
// plan: buffers for batches up to plan->B.
qtk_status qtk_vit_quant_model(qtk_vit_quant *qv, qtk_vit_plan *plan, qtk_model *out);

#ifdef __cplusplus
}
#endif

#endif
