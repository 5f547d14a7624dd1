// qtk_model: the seam between a model (ViT, Swin, Mamba, ...) and the
// model-agnostic parts of qtk (the Evol-Q search, calibration reports,
// exports). A model fills in this struct; search/ only ever sees this.
//
// Block b's cached input lets a candidate evaluation run blocks b..end only
// (Evol-Q visits blocks last to first and perturbs one block at a time).
#ifndef QTK_MODEL_H
#define QTK_MODEL_H

#include <stddef.h>

#include "error.h"
#include "qparams.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qtk_model qtk_model;

// One searchable scale vector: a live pointer into a quantizer's scales.
typedef struct {
    float *scale;      // (n) perturb in place, then call requantize(quantizer)
    size_t n;
    int quantizer;     // index for quantizer_name / requantize
} qtk_model_vec;

struct qtk_model {
    void *self;
    const char *name;
    int n_blocks;
    int n_outputs;              // outputs (logits) per input
    size_t input_floats;        // floats per input (one image)
    size_t block_input_floats;  // floats of one input's cached block input
    int n_quantizers;
    // NULL where index i holds no quantizer
    const char *(*quantizer_name)(const qtk_model *m, int i);
    // 1 for a weight quantizer, 0 for an activation quantizer
    int (*quantizer_is_weight)(const qtk_model *m, int i);
    // live parameters (NULL before calibration)
    qtk_qparams *(*quantizer_params)(qtk_model *m, int i);
    // re-derives what depends on quantizer i's parameters (for weights: fake
    // quantization and bias correction of that weight only)
    qtk_status (*requantize)(qtk_model *m, int i);
    // writes up to max searchable vectors of block b; returns how many there are
    int (*block_vectors)(qtk_model *m, int block, qtk_model_vec *out, int max);
    // quantized forwards: inputs -> cached input of `block`; cache -> outputs; inputs -> outputs
    qtk_status (*block_input)(qtk_model *m, const float *inputs, int B, int block, float *cache);
    qtk_status (*forward_from)(qtk_model *m, const float *cache, int B, int block, float *out);
    qtk_status (*forward)(qtk_model *m, const float *inputs, int B, float *out);
    // Optional (NULL: the search calls the batch functions above): the same over the whole calibration set
    // (n inputs) at once, so that a model can keep the cached block inputs where it computes (GPU memory)
    // and reuse them across block steps. forward_from_all gets the cache that block_input_all last filled
    // for that block, unchanged; a model that keeps the inputs itself need not write them to cache.
    qtk_status (*block_input_all)(qtk_model *m, const float *inputs, int n, int block, float *cache);
    qtk_status (*forward_from_all)(qtk_model *m, const float *cache, int n, int block, float *out);
    // the floating-point model's outputs
    qtk_status (*forward_fp)(qtk_model *m, const float *inputs, int B, float *out);
    // the search targets: forward_fp, or the model's reference variant of it
    // (for the Evol-Q ViT: quantizers off but integer LayerNorm on, spec section 3)
    qtk_status (*forward_targets)(qtk_model *m, const float *inputs, int B, float *out);
};

#ifdef __cplusplus
}
#endif

#endif
