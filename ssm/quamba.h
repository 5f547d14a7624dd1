// Quamba (spec mamba-quamba.md sections 4-5): static per-tensor W8A8 quantization of a Mamba1 model,
// calibrated on token sequences, run with real int8 arithmetic, saved and reloaded as a checkpoint folder.
//
// Use: qtk_quamba_calibrate (a float model and calibration sequences -> a quantized model), then
// qtk_quamba_state_init and qtk_quamba_prefill / qtk_quamba_decode as the float model's; qtk_quamba_save
// writes the folder (docs/quamba.md), qtk_quamba_load reads it back, and the reloaded model computes the
// same logits bit for bit.
//
// The forward is the CPU reference of spec section 5.2, step by step: residual + RMSNorm then int8 (roundf),
// int8 GEMMs with int32 sums and the reference's epilogue association per call (prefill GEMM, the
// sequence-last GEMM of in_proj and dt_proj, decode GEMV), int8 conv1d + SiLU, x_proj and dt_proj sharing
// x_proj's output scale, the selective scan on dequantized int8 operands (fp16 output), the fused
// Hadamard + quantize (saturating, counted), out_proj with fp16 output. The embedding, the norms and the head
// hold fp16 values; the residual stream is float32; decode keeps int8 conv states and fp16 SSM states.
#ifndef QTK_QUAMBA_H
#define QTK_QUAMBA_H

#include <stdint.h>
#include <stdio.h>

#include "../core/error.h"
#include "mamba.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    QTK_QUAMBA_V1 = 0,     // percentile-clipped SSM input + Hadamard before out_proj (the paper's Quamba)
    QTK_QUAMBA_STATIC,     // per-tensor absmax everywhere, no percentile, no Hadamard (the paper's "static")
    QTK_QUAMBA_DYNAMIC,    // int8 weights; each projection's input quantized per token at run time (absmax of
                           // the row), float conv, scan and outputs (the paper's "dynamic"); nothing calibrated
    QTK_QUAMBA_PERCENTILE, // ablation: v1 without the Hadamard
    QTK_QUAMBA_HADAMARD,   // ablation: v1 without the percentile (absmax at the SSM input)
    QTK_QUAMBA_N_VARIANTS
} qtk_quamba_variant;

// "v1", "static", "dynamic", "percentile", "hadamard"
const char *qtk_quamba_variant_name(qtk_quamba_variant v);
// The name (or -1 with the list of names in the error)
qtk_status qtk_quamba_variant_parse(const char *name, qtk_quamba_variant *v);

typedef struct {
    qtk_quamba_variant variant;
    float alpha;    // the SSM input's percentile of |x| (0.99999)
    float momentum; // its EMA across calibration sequences (0.01)
    double sat_warn; // share of saturated codes of one tensor above which the report warns (1e-3)
    int fp16_check;  // calibration refuses activations outside fp16's range (1; 0 for random-weight benchmarks)
} qtk_quamba_opts;

void qtk_quamba_opts_default(qtk_quamba_opts *o);
int qtk_quamba_uses_percentile(qtk_quamba_variant v);
int qtk_quamba_uses_hadamard(qtk_quamba_variant v);

// A Mamba2 layer's activation scales (act[]), named as the reference's observers (spec 6.4-6.5, per tensor)
enum {
    QTK_QUAMBA2_IN = 0, // in_proj:input, the normed residual
    QTK_QUAMBA2_Z,      // z_act: in_proj's z, the gated norm's gate
    QTK_QUAMBA2_X_IN,   // x_conv_in: in_proj's x, the conv's input
    QTK_QUAMBA2_B_IN,   // B_conv_in
    QTK_QUAMBA2_C_IN,   // C_conv_in
    QTK_QUAMBA2_DT,     // dt_act: in_proj's dt
    QTK_QUAMBA2_X_OUT,  // x_conv_out: the conv's SiLU'd x, the SSD's input (the percentile where the variant has it)
    QTK_QUAMBA2_B_OUT,  // B_conv_out
    QTK_QUAMBA2_C_OUT,  // C_conv_out
    QTK_QUAMBA2_STATE,  // ssm_state_act: the final SSM state, the int8 decode state's scale (percentile likewise)
    QTK_QUAMBA2_OUT_IN, // out_proj:input (rotated where the variant has the Hadamard)
    QTK_QUAMBA2_NP
};
// activation scales per layer (act[]), and the stride of sat / seen: Mamba1 uses QTK_MAMBA_QL of them (its points are
// mamba.h's QTK_MAMBA_Q_*), Mamba2 QTK_QUAMBA2_NP
#define QTK_QUAMBA_NPT 11
int qtk_quamba_npoints(const qtk_mamba_config *c);

// One layer: int8 codes with one scale each (q * s), and the calibrated activation scales
typedef struct {
    int8_t *in_w, *conv_w, *conv_b, *x_w, *dt_w, *dt_b, *A_log, *Dq, *out_w; // out_w: Hadamard-fused where used
    float in_ws, conv_ws, conv_bs, x_ws, dt_ws, dt_bs, A_s, D_s, out_ws;
    float *norm_w;            // (D) fp16 values
    float act[QTK_QUAMBA_NPT]; // activation scales by point (Mamba1: QTK_MAMBA_Q_*, Mamba2: QTK_QUAMBA2_*)
    // Mamba2: in_proj's weight scale per output split z, x, B, C, dt (in_ws unused); conv1d's weight and bias
    // scales of the B and C channels (conv_ws / conv_bs: the x channels'); A_log and D (H); dt_bias and the
    // gated norm's weight stay fp16
    float in_ws5[5], conv_ws_bc[2], conv_bs_bc[2];
    float *dt_bias, *gnorm_w; // (H), (E) fp16 values
} qtk_quamba_layer;

#define QTK_QUAMBA_FORMAT 1

typedef struct {
    qtk_mamba_config cfg;
    qtk_quamba_opts opts;
    float *emb, *norm_f, *lm_head; // fp16 values; lm_head == emb when tied
    qtk_quamba_layer *layers;
    int8_t *i8;                    // every int8 tensor, one allocation
    float *f32;                    // every float tensor
    size_t n_i8, n_f32;
    char fingerprint[160];         // the calibration's: sequences x length, the data and its FNV-1a hash
    // codes that saturated, and codes written, per layer and point (QTK_MAMBA_Q_*): counted by every forward
    uint64_t *sat, *seen;          // (n_layers * QTK_QUAMBA_NPT) each
    const qtk_mamba *fp;           // dynamic only: the float model it runs with (not owned)
    // the outliers Quamba is built on, per layer, from the calibration (not saved; 0 after a load):
    // QTK_QUAMBA_OUT_*: the SSM input's max |x| and its percentile (the EMA the scale came from), and out_proj's
    // input: the largest channel's max |y| over the median channel's, before and after the Hadamard
    float *outliers;               // (n_layers * QTK_QUAMBA_NOUT)
} qtk_quamba;

enum { QTK_QUAMBA_OUT_X_MAX = 0, QTK_QUAMBA_OUT_X_PCT, QTK_QUAMBA_OUT_Y_RATIO, QTK_QUAMBA_OUT_Y_RATIO_HAD, QTK_QUAMBA_NOUT };

// Calibration data: n sequences of len tokens each (row-major), one forward each, as the reference's
// one document per forward. data_name: what the fingerprint names (a file); may be NULL.
typedef struct {
    const int32_t *tokens;
    int n, len;
    const char *data_name;
    void (*progress)(void *ctx, int done, int total); // after each sequence (NULL: none)
    void *progress_ctx;
    // device 1: the forwards on the GPU (qtk_mamba_cuda in fp16: fp16 projection weights and inputs, FP32
    // sums, the reference's fp16 model), batch sequences at a time (0: 8), observers fed on the device; the
    // scales agree with the CPU's within fp16's rounding of the activations (docs/quamba.md)
    int device, batch;
} qtk_quamba_calib;

// Calibrates m (Mamba1 or Mamba2) and builds the quantized model. Activations that overflow fp16
// during calibration are errors naming the layer and tensor; a hidden size the Hadamard cannot take is
// an error naming the size and the supported forms. The dynamic variant keeps a pointer to m.
qtk_status qtk_quamba_calibrate(qtk_quamba *q, const qtk_mamba *m, const qtk_quamba_opts *o, const qtk_quamba_calib *c);
void qtk_quamba_free(qtk_quamba *q);

// Writes dir/config.json (the model's config with "quantization_config") and dir/model.safetensors
// (docs/quamba.md); dir is created. The dynamic variant is refused: it has no static scales to save.
qtk_status qtk_quamba_save(const qtk_quamba *q, const char *dir);
// Reads a folder qtk_quamba_save wrote; checks format_version, every tensor's dtype and shape, and every
// scale (finite, positive), naming the tensor.
qtk_status qtk_quamba_load(qtk_quamba *q, const char *dir);
// 1 when dir's config.json has a quantization_config naming quamba (a folder qtk_quamba_load reads)
int qtk_quamba_is_folder(const char *dir);

typedef struct {
    int B, n_layers;
    size_t conv_per_layer; // B * conv_dim * K
    size_t ssm_per_layer;  // B * E * N
    int8_t *conv;          // (layers, B, conv_dim, K): the last K x (Mamba2: xBC) codes, oldest first
    float *ssm;            // Mamba1 (layers, B, E, N): fp16 values
    int8_t *ssm8;          // Mamba2 (layers, B, H, P, N): int8 codes of the layer's QTK_QUAMBA2_STATE scale
    long pos;
    void *ws;              // the forward's workspace, grown by a longer prefill
    size_t ws_cap;         // bytes
    qtk_mamba_state fs;    // dynamic: the float model's state
    // a tap on every intermediate of the CPU forward (tests against the PyTorch transcription; NULL: none):
    // kind QTK_MAMBA_Q_* (Mamba2: QTK_QUAMBA2_*) for that point's int8 codes (rows x its columns; Mamba2's
    // in_proj: all of its rows x in_proj_out codes under QTK_QUAMBA2_Z, the conv's x | B | C under QTK_QUAMBA2_X_OUT),
    // QTK_QUAMBA_TAP_Y for the scan's fp16 output (Mamba2: the SSD's, before the gated norm) and QTK_QUAMBA_TAP_H for the residual stream after the layer (float, rows x E or rows x D)
    void (*tap)(void *ctx, int layer, int kind, const void *data, size_t n);
    void *tap_ctx;
} qtk_quamba_state;

enum { QTK_QUAMBA_TAP_Y = QTK_QUAMBA_NPT, QTK_QUAMBA_TAP_H };

qtk_status qtk_quamba_state_init(qtk_quamba_state *s, const qtk_quamba *q, int B);
void qtk_quamba_state_reset(qtk_quamba_state *s);
void qtk_quamba_state_free(qtk_quamba_state *s);

// tokens (B, L); logits (B, L, V) or NULL. As qtk_mamba_prefill; L = 1 is one decode step.
qtk_status qtk_quamba_prefill(const qtk_quamba *q, qtk_quamba_state *s, const int32_t *tokens, int L, float *logits);
qtk_status qtk_quamba_decode(const qtk_quamba *q, qtk_quamba_state *s, const int32_t *tokens, float *logits);

// Perplexity as qtk_mamba_perplexity, with the quantized forward.
qtk_status qtk_quamba_perplexity(const qtk_quamba *q, const int32_t *tokens, size_t n, int ctx, int stride,
                                 int max_windows, int batch, double *ppl, size_t *n_scored);

// Saturation report: one line per tensor that saturated at all ("layers.3.x_proj:input: 12 of 1048576 codes
// (0.0011%)"), a warning prefix above opts.sat_warn; returns the number of tensors above it.
int qtk_quamba_saturation_report(const qtk_quamba *q, FILE *out);
void qtk_quamba_saturation_reset(const qtk_quamba *q);

// The name of point p of an arch's layer as the reference's observers name it: "in_proj:input", ...
const char *qtk_quamba_point_name(qtk_mamba_arch a, int p);

#ifdef __cplusplus
}
#endif

#endif
