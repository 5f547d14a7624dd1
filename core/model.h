// qtk_model: the seam between a model (ViT, CNN, Mamba, ...) and the model-agnostic parts of qtk (the Evol-Q
// search, calibration, reports, exports). A model fills in this struct; search/ only ever sees this.
//
// Inputs are whole examples of the model's input type: f32 images, i32 token ids. Block b's cached input (the
// activations entering block b, always float) lets a candidate evaluation run blocks b..end only (Evol-Q visits
// blocks last to first and perturbs one block at a time); its size may differ per block (CNN stages).
//
// The model's quantization points live in its registry (core/qpoint.h): names, parameters, export. The
// search's vectors of a block are the block's calibrated points that match the model's target globs
// (qtk_model_block_vectors).
#ifndef QTK_MODEL_H
#define QTK_MODEL_H

#include <stddef.h>

#include "error.h"
#include "qparams.h"
#include "qpoint.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qtk_model qtk_model;

#define QTK_MODEL_MAX_VECS 16 // searchable vectors per block

// One searchable scale vector: a live pointer into a quantization point's scales.
typedef struct {
    float *scale;      // (n) perturb in place, then call requantize(point)
    size_t n;
    int point;         // the registry id (m->q)
} qtk_model_vec;

struct qtk_model {
    void *self;
    const char *name;
    int n_blocks;
    int n_outputs;                    // outputs (logits) per input
    qtk_dtype input_dtype;            // QTK_F32 (images) or QTK_I32 (token ids)
    size_t input_elems;               // elements of one input
    const size_t *block_input_elems;  // (n_blocks) floats of one input's cached input of block b
    qtk_qreg *q;                      // the model's quantization points
    const char *const *targets;       // globs over point names: what the search perturbs
    int n_targets;
    // calibrates every point on n inputs in batches of `batch` (weights, then activations)
    qtk_status (*calibrate)(qtk_model *m, const void *inputs, int n, int batch);
    // re-derives what depends on point i's parameters (for weights: fake quantization and bias correction of
    // that weight only; a GPU model also uploads)
    qtk_status (*requantize)(qtk_model *m, int point);
    // quantized forwards: inputs -> cached input of `block`; cache -> outputs; inputs -> outputs
    qtk_status (*block_input)(qtk_model *m, const void *inputs, int B, int block, float *cache);
    qtk_status (*forward_from)(qtk_model *m, const float *cache, int B, int block, float *out);
    qtk_status (*forward)(qtk_model *m, const void *inputs, int B, float *out);
    // Optional (NULL: the search calls the batch functions above): the same over the whole calibration set
    // (n inputs) at once, so that a model can keep the cached block inputs where it computes (GPU memory)
    // and reuse them across block steps. forward_from_all gets the cache that block_input_all last filled
    // for that block, unchanged; a model that keeps the inputs itself need not write them to cache.
    qtk_status (*block_input_all)(qtk_model *m, const void *inputs, int n, int block, float *cache);
    qtk_status (*forward_from_all)(qtk_model *m, const float *cache, int n, int block, float *out);
    // the floating-point model's outputs
    qtk_status (*forward_fp)(qtk_model *m, const void *inputs, int B, float *out);
    // the search targets: forward_fp, or the model's reference variant of it
    // (for the Evol-Q ViT: quantizers off but integer LayerNorm on, spec section 3)
    qtk_status (*forward_targets)(qtk_model *m, const void *inputs, int B, float *out);
};

// Bytes of one input.
size_t qtk_model_input_bytes(const qtk_model *m);
// Input i of an array of inputs.
const void *qtk_model_input_at(const qtk_model *m, const void *inputs, size_t i);
// The most floats one input's cached block input takes, over all blocks.
size_t qtk_model_max_block_input(const qtk_model *m);
// The searchable vectors of block b: its calibrated points matching the target globs, in glob order (each
// glob's matches in id order, no point twice). Writes up to max; returns how many there are.
int qtk_model_block_vectors(const qtk_model *m, int block, qtk_model_vec *out, int max);
// The name of point i (the registry's).
const char *qtk_model_point_name(const qtk_model *m, int point);

#ifdef __cplusplus
}
#endif

#endif
