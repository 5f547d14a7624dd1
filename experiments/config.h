// Experiment configs: YAML through libcyaml with a schema. Unknown keys,
// wrong types, missing required keys, bad values and missing files give one
// error naming the file, the line and the key path. --set key=value
// overrides any scalar key.
#ifndef QTK_CONFIG_H
#define QTK_CONFIG_H

#include <stdbool.h>

#include "../core/error.h"

typedef struct {
    char *kind;           // vit | mamba (cnn comes with its issue)
    char *checkpoint;     // vit: timm ViT/DeiT safetensors; mamba: a HuggingFace Mamba / Mamba2 folder
    char *desc;           // preset or JSON; empty: from the checkpoint's metadata
} qtk_cfg_model;

typedef struct {          // kind vit: the images (required there)
    char *format;         // fashion-mnist | folder | tensor
    char *root;           // fashion-mnist: IDX folder; folder: train folder; tensor: file with images, labels
    char *test;           // folder / tensor: the evaluation set (optional: no eval without it)
    char *class_index;
    char *cache;          // preprocessed-tensor cache for folders
    char *on_bad_image;   // skip | fail
    int test_images;      // evaluate on the first N (0: all)
} qtk_cfg_data;

typedef struct {
    int images;           // vit: 1000
    int batch;            // vit: 100
    int samples, seq_len; // mamba: sequences of seq_len tokens, one forward each (512, 512)
    char *tokens, *text;  // mamba: the calibration stream (a token file, or a text file read as bytes)
} qtk_cfg_calibration;

typedef struct {
    char *method;         // mamba: none (the float model) | quamba (ssm/quamba.h); a vit's is FQ-ViT, implied
    char *variant;        // quamba: v1 | static | dynamic | percentile | hadamard
    double percentile;    // quamba: the SSM input's percentile of |x| (0.99999)
    double saturation_warn; // quamba: share of saturated codes of a tensor that the run warns about (0.001)
    int w_bits, a_bits;
    bool bias_corr, int_layernorm;
    char **off;           // glob patterns of quantizers to switch off
    unsigned off_count;
} qtk_cfg_quantization;

typedef struct {
    char *method;         // evolq | none
    int passes, cycles, population, tournament, group;
    double eps;           // 0: by weight bits
    double temperature;
    char *fp_targets;     // reference | float
    char *select_on;      // none | val (the reference's test-set selection, labelled)
    int validate_every;   // report test top-1 every k block steps (0: never); never changes the result
    int max_steps;        // stop after this many block steps per invocation (0: all); resumable
    char *init;           // CPT-V: start from this export's scales (qtk quant.safetensors) instead of calibrating
    char **targets;       // searchable scales: qkv, proj, fc1, fc2, act, or globs over point names (default qkv, proj)
    unsigned targets_count;
    int ranks;            // data-parallel search processes (0: one per GPU of `gpus` with device cuda, else 1)
    char *transport;      // auto | host | nccl: how the ranks combine their losses (core/comm.h)
} qtk_cfg_search;

typedef struct {          // kind mamba: perplexity as `qtk perplexity` computes it
    char *tokens, *text;  // the evaluation stream: a token file (datasets/tokens.h) or a text file read as bytes
    int ctx, stride;      // windows of ctx tokens every stride tokens (1024; stride: ctx)
    int max_windows;      // stop after this many windows (0: all)
    int batch;            // windows at once (8)
} qtk_cfg_perplexity;

typedef struct {          // kind mamba: what `qtk generate --config` reads
    char *prompt, *prompt_ids; // the prompt as bytes, or as token ids "1,2,3"
    int max_new, top_k, seed;  // 200, 0 (greedy), 0
    double temperature;        // 1.0
} qtk_cfg_generate;

typedef struct {
    qtk_cfg_perplexity perplexity;
    qtk_cfg_generate generate;
} qtk_cfg_eval;

typedef struct {
    char *dir;
    bool weights;         // exports also hold each weight's integer codes and the forward's weights (docs/export.md)
} qtk_cfg_output;

typedef struct {
    char *name;
    int seed;
    char *device;         // cpu
    char *gpu_gemm;       // fp32 (device: cuda): fp32 | tf32 | int8 (vit_cuda.h)
    char *gpus;           // device cuda: "1" (default), "all" or N GPUs of this host for the search
    char *task;           // classification (top-1 / top-5) | perplexity (language models); default: the kind's
    int fp16;             // kind mamba, device cuda: fp16 projection weights (0 | 1)
    qtk_cfg_model model;
    qtk_cfg_data data;
    qtk_cfg_calibration calibration;
    qtk_cfg_quantization quantization;
    qtk_cfg_search search;
    qtk_cfg_eval eval;
    qtk_cfg_output output;
} qtk_run_config;

// The task a model kind is evaluated by: classification for image models, perplexity for language models.
const char *qtk_kind_task(const char *kind);

// Loads, applies the overrides ("a.b=c"), expands ${VAR} and ${VAR:-default}
// in string values from the environment, fills defaults and validates.
qtk_status qtk_config_load(const char *path, char *const *sets, int n_sets, qtk_run_config **out);
// Writes the resolved config as YAML.
qtk_status qtk_config_save(const char *path, const qtk_run_config *c);
void qtk_config_free(qtk_run_config *c);

// Any YAML file through a libcyaml schema, with qtk's errors: unknown keys, wrong types and bad values
// name the file, the line and the key path. Free with qtk_yaml_free.
struct cyaml_schema_value;
qtk_status qtk_yaml_load(const char *path, const struct cyaml_schema_value *schema, void **out);
void qtk_yaml_free(const struct cyaml_schema_value *schema, void *data);

#endif
