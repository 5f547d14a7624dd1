// Mamba1 (selective scan) and Mamba2 (SSD) language models from HuggingFace
// checkpoints (spec mamba-quamba.md sections 1-3): the loader, prefill and
// token-by-token decode with conv and SSM states, on the CPU (OpenBLAS for
// the projections, OpenMP across channels and heads for conv and scan).
//
// Use: qtk_mamba_load once; qtk_mamba_state_init for B sequences; then
// qtk_mamba_prefill (continues from the state: a fresh state is the empty
// prefix) and qtk_mamba_decode one token per sequence at a time. Every
// computation is float32, whatever the checkpoint's dtype (fp32, fp16, bf16).
#ifndef QTK_MAMBA_H
#define QTK_MAMBA_H

#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { QTK_MAMBA1 = 1, QTK_MAMBA2 = 2 } qtk_mamba_arch;

typedef struct {
    qtk_mamba_arch arch;
    int d_model;      // D (hidden_size)
    int d_inner;      // E = expand * D (intermediate_size)
    int d_state;      // N (state_size)
    int d_conv;       // K (conv_kernel)
    int n_layers;     // num_hidden_layers
    int vocab;        // vocab_size (padded, as the embedding)
    int dt_rank;      // Mamba1: R (time_step_rank)
    int head_dim;     // Mamba2: P
    int n_heads;      // Mamba2: H = E / P
    int n_groups;     // Mamba2: G
    int chunk_size;   // Mamba2: Q
    float dt_min, dt_max; // Mamba2: time_step_limit (0, inf by default)
    float eps;        // layer_norm_epsilon
    int use_bias;     // in_proj / out_proj bias
    int conv_bias;    // use_conv_bias
    int residual_in_fp32;
    int tied;         // no lm_head.weight in the checkpoint: the embedding is the head
} qtk_mamba_config;

// derived sizes
int qtk_mamba_in_proj_out(const qtk_mamba_config *c); // Mamba1 2E; Mamba2 2E + 2GN + H
int qtk_mamba_conv_dim(const qtk_mamba_config *c);    // Mamba1 E; Mamba2 E + 2GN

typedef struct {
    const float *norm_w;     // (D)
    const float *in_proj_w;  // (in_proj_out, D)
    const float *in_proj_b;  // (in_proj_out) or NULL
    const float *conv_w;     // (conv_dim, K)
    const float *conv_b;     // (conv_dim) or NULL
    const float *x_proj_w;   // Mamba1: (R + 2N, E)
    const float *dt_proj_w;  // Mamba1: (E, R)
    const float *dt_proj_b;  // Mamba1: (E)
    const float *dt_bias;    // Mamba2: (H)
    const float *A_log;      // Mamba1: (E, N); Mamba2: (H)
    const float *A;          // -exp(A_log), computed once at load (the CPU scans read it every token)
    const float *Dskip;      // Mamba1: (E); Mamba2: (H)  (the checkpoint's "D")
    const float *gnorm_w;    // Mamba2: (E) gated RMSNorm weight
    const float *out_proj_w; // (D, E)
    const float *out_proj_b; // (D) or NULL
} qtk_mamba_layer;

typedef struct {
    qtk_mamba_config cfg;
    const float *emb;      // (V, D)
    const float *norm_f;   // (D)
    const float *lm_head;  // (V, D): emb when tied
    qtk_mamba_layer *layers;
    float *mem;            // every parameter, float32, one allocation
    float *derived;        // the layers' A = -exp(A_log)
    size_t n_params;
    char source_dtype[8];  // "F32", "F16" or "BF16" (the embedding's)
    float *half_mem;       // NULL, or qtk_mamba_fp16_reference's copy of mem
} qtk_mamba;

// path: a folder with config.json and model.safetensors (or model.safetensors.index.json and its shards), or
// a .safetensors file with config.json beside it. HF names (backbone.embeddings.weight, ...) and the
// mamba_ssm names (backbone.embedding.weight) are accepted, and so are mamba_ssm's config.json keys
// (d_model, n_layer, ssm_cfg). Errors name the file and the key or tensor.
qtk_status qtk_mamba_load(qtk_mamba *m, const char *path);
void qtk_mamba_free(qtk_mamba *m);

// The projection weights (in, x, dt, out per layer; lm_head first): the matrices the GPU's fp16 path
// (qtk_mamba_cuda_create with fp16) holds in fp16. Fills up to max pointers and element counts; returns
// how many there are.
int qtk_mamba_projections(const qtk_mamba *m, const float **w, size_t *n, int max);

// The CPU reference of the GPU's fp16 path (on = 1): the CPU forward then rounds every projection's input
// rows and weights to fp16 and sums in float32, as the GPU's tensor-core GEMMs and fp16 GEMVs do (a copy
// of the parameters holds the rounded weights; the embedding stays float32). on = 0: the float32 forward.
qtk_status qtk_mamba_fp16_reference(qtk_mamba *m, int on);
// A checkpoint folder (config.json in HF form, model.safetensors in dtype F32 / F16 / BF16) of random
// weights in plausible ranges (PCG32 from seed), for benchmarks and tests: speed does not depend on
// the values. The folder must exist.
qtk_status qtk_mamba_write_random(const char *dir, const qtk_mamba_config *c, uint64_t seed, const char *dtype);
// config.json text in HF form for c (malloc'd; NULL when out of memory), with key: raw JSON (a nested object)
// added when key is not NULL.
char *qtk_mamba_config_json(const qtk_mamba_config *c, const char *key, const char *raw);
// The config from config.json text alone (tests, tools); file names the source in errors.
qtk_status qtk_mamba_config_parse(const char *json, const char *file, qtk_mamba_config *c);

// Per-sequence recurrent state for B sequences.
typedef struct {
    int B, n_layers;
    size_t conv_per_layer; // B * conv_dim * K
    size_t ssm_per_layer;  // Mamba1 B * E * N; Mamba2 B * H * P * N
    float *conv;           // (layers, B, conv_dim, K): the last K conv inputs, oldest first
    float *ssm;            // (layers, B, E, N) or (layers, B, H, P, N)
    long pos;              // tokens consumed so far
    // the forward's workspace, kept: sized for one decode step at init, grown (never shrunk) by a
    // longer prefill, so decoding allocates nothing
    float *ws;
    size_t ws_cap;         // floats
    float *scr;            // Mamba2 chunked SSD: one scratch per OpenMP thread
    size_t scr_cap;        // floats
} qtk_mamba_state;

qtk_status qtk_mamba_state_init(qtk_mamba_state *s, const qtk_mamba *m, int B);
void qtk_mamba_state_reset(qtk_mamba_state *s); // back to the empty prefix
void qtk_mamba_state_free(qtk_mamba_state *s);

typedef enum {
    QTK_SCAN_AUTO = 0,      // Mamba1: the recurrence; Mamba2: chunked SSD
    QTK_SCAN_RECURRENT = 1, // the plain recurrence (the test oracle)
    QTK_SCAN_CHUNKED = 2    // Mamba2 only: chunked SSD
} qtk_scan_mode;

// tokens (B, L) int32 in [0, vocab); logits (B, L, V) or NULL (only the state advances).
qtk_status qtk_mamba_prefill(const qtk_mamba *m, qtk_mamba_state *s, const int32_t *tokens, int L, float *logits,
                             qtk_scan_mode mode);
// What a hooked forward shows and lets replace (a calibration, a quantized projection), per layer: the
// tensors of spec mamba-quamba.md section 5.1, each (rows = B*L, cols) contiguous.
enum {
    QTK_MAMBA_Q_IN_PROJ_IN = 0, // in_proj's input, the normed residual (rows, D)
    QTK_MAMBA_Q_IN_PROJ_OUT,    // in_proj's output before any bias (rows, in_proj_out)
    QTK_MAMBA_Q_X_PROJ_IN,      // the conv's SiLU output: Mamba1 x' (rows, E), the SSM input; Mamba2 xBC (rows, conv_dim)
    QTK_MAMBA_Q_X_PROJ_OUT,     // Mamba1: x_proj's output dt | B | C (rows, R + 2N)
    QTK_MAMBA_Q_DT_PROJ_OUT,    // Mamba1: dt_proj's output before its bias (rows, E)
    QTK_MAMBA_Q_OUT_PROJ_IN,    // out_proj's input y (rows, E)
    QTK_MAMBA_QL                // points per layer
};
// Mamba2's SSM state after a prefill (rows = B sequences, cols = H P N): shown to the act hook only, after the points
// above (Quamba's calibration of the int8 decode state)
#define QTK_MAMBA_Q_SSM_STATE QTK_MAMBA_QL
// The projections a hook may take over (without their bias, which the forward adds)
enum { QTK_MAMBA_LIN_IN = 0, QTK_MAMBA_LIN_X, QTK_MAMBA_LIN_DT, QTK_MAMBA_LIN_OUT };

typedef struct {
    void *ctx;
    // sees tensor `point` of layer `layer` (NULL: none); an error stops the forward
    qtk_status (*act)(void *ctx, int layer, int point, const float *x, size_t rows, int cols);
    // y (rows, N) = x (rows, K; row stride ldx) W^T of projection `which` of layer `layer`: returns 1 when it
    // wrote y, 0 to leave it to the float projection, -1 on an error it has set (qtk_fail)
    int (*linear)(void *ctx, int layer, int which, const float *x, int ldx, size_t rows, float *y);
} qtk_mamba_hooks;

// qtk_mamba_prefill with hooks (NULL: none)
qtk_status qtk_mamba_prefill_hooked(const qtk_mamba *m, qtk_mamba_state *s, const int32_t *tokens, int L, float *logits,
                                    qtk_scan_mode mode, const qtk_mamba_hooks *hk);

// One token per sequence: tokens (B), logits (B, V).
qtk_status qtk_mamba_decode(const qtk_mamba *m, qtk_mamba_state *s, const int32_t *tokens, float *logits);

// Perplexity over tokens[0..n) with a fixed context length and stride (transformers' sliding-window
// recipe): windows [begin, begin + ctx) for begin = 0, stride, 2 stride, ... (the last one may be
// shorter), each scoring only the tokens no earlier window scored, every window from an empty state.
// max_windows > 0 stops after that many windows. batch: windows run together. *ppl = exp(mean NLL),
// *n_scored: the tokens predicted.
qtk_status qtk_mamba_perplexity(const qtk_mamba *m, const int32_t *tokens, size_t n, int ctx, int stride, int max_windows,
                                int batch, double *ppl, size_t *n_scored);

// The same recipe over any forward: fwd(ud, tokens (B, L), B, L, logits (B, L, V)) runs B windows of L
// tokens, each from an empty state (the GPU's, for one). qtk_mamba_perplexity is this with the CPU forward.
typedef qtk_status (*qtk_lm_windows_fn)(void *ud, const int32_t *tokens, int B, int L, float *logits);
qtk_status qtk_lm_perplexity(qtk_lm_windows_fn fwd, void *ud, int V, const int32_t *tokens, size_t n, int ctx, int stride,
                             int max_windows, int batch, double *ppl, size_t *n_scored);

// Next-token choice from logits (V): top_k <= 1 greedy (the first maximum), else sampling among the
// top_k at temperature T with u uniform in [0, 1).
int32_t qtk_sample_token(const float *logits, int V, int top_k, float temperature, double u);

#ifdef __cplusplus
}
#endif

#endif
