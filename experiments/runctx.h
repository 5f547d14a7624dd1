// What `qtk run`, `qtk calibrate` and `qtk eval` share: the model, the
// calibration sample and the evaluation set of a config, the quantized model,
// evaluation with top-1 / top-5, and the progress lines.
#ifndef QTK_RUNCTX_H
#define QTK_RUNCTX_H

#include "../vision/vit_quant.h"
#include "config.h"

typedef struct {
    float *x;     // (n, input_floats)
    int *y;       // (n) labels, or NULL
    int n;
} qtk_run_data;

typedef struct {
    qtk_run_config *cfg;
    const char *cfg_path;
    qtk_vit m;
    qtk_vit_plan plan;
    qtk_vit_qconfig qc;
    qtk_vit_quant qv;
    qtk_run_data cal, test;
    char sample[16];   // fingerprint of the calibration indices
    struct qtk_vit_cuda *gpu; // device: cuda (calibration, evaluation and the search on the GPU)
    qtk_model mm;             // the quantized model on that device (calibrate, forwards, the search)
} qtk_run_ctx;

typedef struct {
    double top1, top5; // percent
    int images;
    double seconds;
} qtk_run_acc;

// Loads the model and the data (want_cal: the calibration sample; the test set
// when data gives one), sets up the quantizers (quantization.*) without
// calibrating them. On error the message is in qtk_last_error().
qtk_status qtk_run_ctx_open(qtk_run_ctx *r, qtk_run_config *cfg, const char *cfg_path, int want_cal);
void qtk_run_ctx_close(qtk_run_ctx *r);

// Calibrates on the sample, with a progress line; returns the seconds.
qtk_status qtk_run_ctx_calibrate(qtk_run_ctx *r, double *seconds);
// After the quantizers changed wholesale (an import): uploads them to the GPU (no-op on the CPU).
qtk_status qtk_run_ctx_sync(qtk_run_ctx *r);
// The quantized model behind qtk_model for the search, on the config's device (r->mm).
qtk_status qtk_run_ctx_model(qtk_run_ctx *r, qtk_model *mm);
// Top-1 / top-5 on the test set: the FP model (quantized 0) or the quantized one.
qtk_status qtk_run_ctx_eval(qtk_run_ctx *r, int quantized, const char *label, qtk_run_acc *acc);
// The same, keeping every test input's logits in out ((test.n, classes)).
qtk_status qtk_run_ctx_eval_logits(qtk_run_ctx *r, int quantized, const char *label, qtk_run_acc *acc, float *out);


// `qtk run` of config c (read from cfg_path) into c->output.dir: resumes an interrupted run, skips a finished
// one unless force. fp_known: the FP32 accuracy of the same model on the same test set, measured earlier in
// this process (qtk demo runs several settings), taken instead of evaluating again; or NULL. Returns the
// exit status (errors printed); c stays the caller's.
int qtk_run_exec(qtk_run_config *c, const char *cfg_path, int force, const qtk_run_acc *fp_known);

#endif
