// Vision Transformers (timm VisionTransformer / DeiT, incl. distilled) loaded
// from timm safetensors checkpoints, with an FP32 forward pass that matches
// timm (spec vit-baseline.md section 2).
//
// Use: qtk_vit_load(&m, path, desc), then qtk_vit_plan(&plan, &m, B) once per
// batch size, then qtk_vit_forward(&m, &plan, images, B, logits) as often as
// needed: the forward allocates nothing.
#ifndef QTK_VIT_H
#define QTK_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char name[64];       // preset or "custom"
    int img_size;        // square input side
    int patch;           // square patch side
    int in_chans;
    int dim;             // C
    int depth;
    int heads;           // H (not inferable from shapes: preset or description)
    int mlp_hidden;      // fc1 outputs
    int n_classes;
    int n_prefix;        // 1 (cls) or 2 (cls + dist for distilled DeiT)
    float ln_eps;        // 1e-6 for timm ViT/DeiT
    // evaluation preprocessing and quantization defaults carried with the model
    float crop_pct;      // 0.875 DeiT (reference), 0.9 ViT
    char interpolation[16];
    float mean[3], std[3];
    int input_quant;     // quantize the normalized image (DeiT yes, ViT no)
} qtk_vit_config;

// Built-in presets: deit_tiny/small/base_patch16_224, vit_small/base_patch16_224.
// Returns QTK_ERR_NOT_FOUND (with the list of presets) for an unknown name.
qtk_status qtk_vit_preset(const char *name, qtk_vit_config *cfg);

typedef struct {
    float *ln1_w, *ln1_b;   // (C)
    float *qkv_w, *qkv_b;   // (3C, C), (3C)
    float *proj_w, *proj_b; // (C, C), (C)
    float *ln2_w, *ln2_b;   // (C)
    float *fc1_w, *fc1_b;   // (M, C), (M)
    float *fc2_w, *fc2_b;   // (C, M), (C)
} qtk_vit_block;

typedef struct {
    qtk_vit_config cfg;
    int grid;                // patches per side
    int n_tokens;            // T = n_prefix + grid^2
    float *patch_w;          // (C, in_chans*P*P), conv weight flattened
    float *patch_b;          // (C)
    float *cls_token;        // (C)
    float *dist_token;       // (C) or NULL
    float *pos_embed;        // (T, C)
    qtk_vit_block *blocks;   // (depth)
    float *norm_w, *norm_b;  // (C)
    float *head_w, *head_b;  // (classes, C), (classes)
    float *head_dist_w, *head_dist_b; // distilled only
    float *mem;              // one allocation holding every tensor above
    size_t n_params;
    char source[1024];       // the checkpoint file it was loaded from
} qtk_vit;

// desc: NULL (heads from the checkpoint's __metadata__ "qtk.vit.heads" or
// dim/64), a preset name, or a JSON object such as
// {"preset": "deit_tiny_patch16_224", "heads": 3, "crop_pct": 0.875}. The
// architecture is inferred from tensor shapes; the description supplies what
// shapes cannot (heads, preprocessing) and is checked against them.
qtk_status qtk_vit_load(qtk_vit *m, const char *path, const char *desc);
void qtk_vit_free(qtk_vit *m);

// Buffers for one batch size, planned once.
typedef struct {
    int B;
    float *x;       // (B, T, C) residual stream
    float *h;       // (B, T, C) LayerNorm output
    float *qkv;     // (B, T, 3C)
    float *att;     // (B, H, T, T) scores / probabilities
    float *ctx;     // (B, T, C) attention output before proj
    float *mlp;     // (B, T, M)
    float *cols;    // (B, G*G, in_chans*P*P) im2col of the image
    float *feat;    // (B, n_prefix, C) final-norm prefix tokens
    float *patch;   // (B, G*G, C) patch-embedding output
    float *pos;     // (T, C) the (quantized) position embedding
    float *img;     // (B, in_chans, img, img) the (quantized) input
    float *mem;
} qtk_vit_plan;

qtk_status qtk_vit_plan_init(qtk_vit_plan *p, const qtk_vit *m, int B);
void qtk_vit_plan_free(qtk_vit_plan *p);

// images: (B, in_chans, img, img) normalized; logits: (B, classes).
// B <= plan->B.
qtk_status qtk_vit_forward(const qtk_vit *m, qtk_vit_plan *p, const float *images, int B, float *logits);

// Quantization points of spec vit-baseline.md section 6, in forward order.
// Model-level points, then QTK_VIT_PB points per block (block i's point k is
// QTK_VIT_P_BLOCK0 + i * QTK_VIT_PB + k), then the head points.
enum {
    QTK_VIT_P_INPUT = 0,   // #0 normalized image (DeiT only)
    QTK_VIT_P_PATCH_W,     // #1 patch_embed.proj.weight
    QTK_VIT_P_PATCH_OUT,   // #2 conv output as tokens
    QTK_VIT_P_CLS_CONCAT,  // #3 cat(cls, tokens)
    QTK_VIT_P_POS,         // #4 the pos_embed parameter
    QTK_VIT_P_EMBED_OUT,   // #5 #3 + #4 (PTF)
    QTK_VIT_P_BLOCK0
};
enum {
    QTK_VIT_B_NORM1_OUT = 0, // #7
    QTK_VIT_B_QKV_W,         // #8
    QTK_VIT_B_QKV_OUT,       // #9
    QTK_VIT_B_SCORES,        // #10 (q k^T) d^-1/2
    QTK_VIT_B_SOFTMAX,       // #11
    QTK_VIT_B_CONTEXT,       // #12 P v
    QTK_VIT_B_PROJ_W,        // #13
    QTK_VIT_B_PROJ_OUT,      // #14
    QTK_VIT_B_RESID1,        // #15 (PTF)
    QTK_VIT_B_NORM2_OUT,     // #17
    QTK_VIT_B_FC1_W,         // #18
    QTK_VIT_B_ACT_OUT,       // #19 GELU(fc1)
    QTK_VIT_B_FC2_W,         // #20
    QTK_VIT_B_FC2_OUT,       // #20b
    QTK_VIT_B_RESID2,        // #21 (PTF)
    QTK_VIT_PB
};
// after the blocks (relative to QTK_VIT_P_BLOCK0 + depth * QTK_VIT_PB)
enum { QTK_VIT_H_NORM_OUT = 0, QTK_VIT_H_HEAD_W, QTK_VIT_H_HEAD_OUT, QTK_VIT_PH };

// LayerNorms: norm1 of block i is 2i, norm2 is 2i+1, the final norm is 2*depth.

// Hooks that turn the FP forward into the calibrating or quantized forward.
typedef struct {
    void *ctx;
    // Observe and/or fake-quantize an activation in place.
    qtk_status (*act)(void *ctx, int point, float *x, int ndim, const int64_t *shape);
    // The weight to multiply with (fake-quantized, bias-corrected), or NULL for the float one.
    const float *(*weight)(void *ctx, int point);
    // Runs LayerNorm `ln` on rows of x; returns 0 to let the forward use float LayerNorm.
    int (*layernorm)(void *ctx, int ln, const float *x, float *y, size_t rows, size_t C, const float *w,
                     const float *b);
} qtk_vit_hooks;

// The forward with hooks (NULL: the plain FP forward). The quantized and
// calibrating forwards of vit_quant.h are this with their hooks.
qtk_status qtk_vit_forward_hooked(const qtk_vit *m, qtk_vit_plan *p, const float *images, int B, float *logits,
                                  const qtk_vit_hooks *hooks);

// The residual stream entering block `block` (0..depth): x_out (B, T, C).
qtk_status qtk_vit_block_input_hooked(const qtk_vit *m, qtk_vit_plan *p, const float *images, int B, int block,
                                      float *x_out, const qtk_vit_hooks *hooks);
// The forward from a cached block input (as qtk_vit_block_input_hooked made it) to the logits.
qtk_status qtk_vit_forward_from_hooked(const qtk_vit *m, qtk_vit_plan *p, const float *x_in, int B, int block,
                                       float *logits, const qtk_vit_hooks *hooks);

// Index of the first point after the blocks.
static inline int qtk_vit_head_base(const qtk_vit *m) { return QTK_VIT_P_BLOCK0 + m->cfg.depth * QTK_VIT_PB; }

// Writes a checkpoint with cfg's shapes and random weights (PCG32 from seed;
// matrices uniform within +-0.035, timm's init std) for benchmarks, tests and
// demos; heads go into __metadata__ "qtk.vit".
qtk_status qtk_vit_write_random(const char *path, const qtk_vit_config *cfg, uint64_t seed);

// FLOPs of the GEMMs (incl. attention products) for one image, for benchmarks.
double qtk_vit_gemm_flops(const qtk_vit *m);

#ifdef __cplusplus
}
#endif

#endif
