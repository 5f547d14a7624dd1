// Quantization points: the named places of a model where a tensor is quantized,
// and the registry that calibrates, applies, re-quantizes, reports, exports and
// imports them. Model-agnostic: a model declares its points (one qtk_qreg_add
// per point, at an id of its choosing) and calls two hooks from its forward:
//
//     // y = x @ W.T                      <- the forward reads W through the registry
//     const float *w = qtk_qreg_weight(r, P_FC1_W);   // NULL: use the float weight
//     ...
//     QTK_TRY(qtk_qreg_act(r, P_FC1_OUT, y, 2, shape)); // observe, or fake-quantize in place
//
// Weights: per output channel (O, K), min-max unless the model says otherwise;
// their fake-quantized (and bias-corrected) copy is what the forward reads.
// Activations: whatever observer the point names (OMSE, PTF, percentile, ...),
// fed on every calibration batch; the last batch derives the parameters.
#ifndef QTK_QPOINT_H
#define QTK_QPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "observer.h"
#include "qparams.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { QTK_QPOINT_ACT = 0, QTK_QPOINT_WEIGHT } qtk_qpoint_kind;

typedef enum {
    QTK_QREG_FP = 0, // every point passes its tensor through
    QTK_QREG_CALIB,  // activation points observe (all of them, enabled or not)
    QTK_QREG_QUANT,  // enabled, calibrated points fake-quantize
} qtk_qreg_mode;

#define QTK_QPOINT_NAME 64

typedef struct {
    char name[QTK_QPOINT_NAME]; // "" for an id the model leaves empty
    qtk_qpoint_kind kind;
    int block;                  // the model block it belongs to (-1: before or after the blocks)
    int input;                  // weights: the activation point that feeds the weight (-1: none)
    int shares;                 // activations: the point whose parameters this one uses (-1: its own);
                                // such a point observes nothing and stays calibrated = 0
    int enabled;                // off: the tensor passes through unquantized
    int calibrated;
    size_t channels;            // (s, z) pairs of its parameters: O for a weight, 1 per tensor, C per channel,
                                // the number of groups for index-mapped groups
    int32_t *group_index;       // activations with index-mapped groups: (index_len) group of each channel of the
    size_t index_len;           // observer's axis (qparams.h: QTK_PER_INDEX); NULL: none
    qtk_observer ob;
    qtk_qparams qp;             // live parameters (a search perturbs qp.scale, then requantize)
    // weights
    const float *w;             // (O, K) float weights (the model's)
    float *wq;                  // (O, K) fake-quantized (+ bias-corrected): what the forward reads
    size_t O, K;
    int wq_stale;               // wq is behind qp (re-quantized elsewhere, e.g. on a GPU): qtk_qreg_sync_weights
    // report accumulators: sum (x - fq(x))^2 and element count
    double err_sum, n_seen;
} qtk_qpoint;

// What a model declares per point.
typedef struct {
    const char *name;
    qtk_qpoint_kind kind;
    int block;
    qtk_observer_kind observer;
    int bits;
    bool is_signed;
    bool channel_wise;          // the observer keeps per-channel statistics (PTF: always)
    int axis;                   // its channel axis
    size_t channels;            // activations: (s, z) pairs an export holds (1 per tensor; groups with an index map)
    const int32_t *group_index; // activations: index-mapped groups (copied): channel c of `axis` is in group
    size_t index_len;           // group_index[c] < channels; needs a channel-wise min-max observer. NULL: none
    const float *w;             // weights: (O, K), per output channel
    size_t O, K;
    int input;                  // as in qtk_qpoint (-1: none)
    int shares;                 // as in qtk_qpoint (-1: none)
} qtk_qpoint_desc;

typedef struct {
    int n;                      // ids 0..n-1
    qtk_qpoint *p;              // indexed by id
    qtk_qreg_mode mode;
    int last_batch;             // calibration: this batch derives the activation parameters
    int report;                 // quantized forward: accumulate each point's squared error
    int bias_corr;              // weights: bias correction after fake quantization
    int export_weights;         // qtk_qreg_export also writes each weight's integer codes and the weights the
                                // forward multiplies (optional tensors, docs/export.md)
} qtk_qreg;

// n empty ids.
qtk_status qtk_qreg_init(qtk_qreg *r, int n, int bias_corr);
void qtk_qreg_free(qtk_qreg *r);
qtk_status qtk_qreg_add(qtk_qreg *r, int id, const qtk_qpoint_desc *d);

// Replaces an activation point's index map (a calibration result such as Quamba2's clustering); a point that
// has already seen its calibration data re-derives its parameters from the observer's channel statistics.
qtk_status qtk_qreg_set_index(qtk_qreg *r, int id, const int32_t *group_index, size_t len, size_t n_groups);

// Id of the point with this name, or -1.
int qtk_qreg_find(const qtk_qreg *r, const char *name);
// Switches every point whose name matches the glob (fnmatch); returns how many matched.
int qtk_qreg_set_enabled(qtk_qreg *r, const char *glob, int on);
// The calibrated points of `block` that match any of the globs, in glob order, each glob's matches in
// id order, no point twice. Writes up to max ids; returns how many there are.
int qtk_qreg_select(const qtk_qreg *r, int block, const char *const *globs, int n_globs, int *ids, int max);

// The activation hook: in CALIB mode the point's observer sees x (the last batch derives its
// parameters); in QUANT mode an enabled, calibrated point fake-quantizes x in place.
qtk_status qtk_qreg_act(qtk_qreg *r, int id, float *x, int ndim, const int64_t *shape);
// The weight hook: the fake-quantized weights of an enabled, calibrated point in QUANT mode, else NULL.
const float *qtk_qreg_weight(const qtk_qreg *r, int id);

// Weights: min-max (the point's observer) over the weight, then requantize; every weight point.
qtk_status qtk_qreg_calibrate_weights(qtk_qreg *r);
// Re-derives a weight point's wq from its parameters (fake quantization, then bias correction).
qtk_status qtk_qreg_requantize(qtk_qreg *r, int id);
// Re-quantizes the weights whose wq fell behind (wq_stale).
qtk_status qtk_qreg_sync_weights(qtk_qreg *r);

// "tensor", "channel", "channel-ptf", "group" or "index": how a point's parameters map onto its tensor.
const char *qtk_qpoint_granularity(const qtk_qpoint *p);

// Report: qtk_qreg_report_begin, the quantized forwards over some inputs, then qtk_qreg_report_print:
// one line per point: name, bits, granularity, scale range, zero point range, MSE (weights: the
// fake-quantization error before bias correction; activations: over the tensors they saw).
void qtk_qreg_report_begin(qtk_qreg *r);
void qtk_qreg_report_end(qtk_qreg *r);
void qtk_qreg_report_print(const qtk_qreg *r, FILE *out);

// Writes every calibrated point as "<name>.scale" and "<name>.zero_point" (F32, (channels)), and a point with
// index-mapped groups its map as "<name>.group_index" (I32, (index_len)); with export_weights, each weight
// point's integer codes "<name>.codes" (U8, or I8 for signed codes, (O, K): the grid points of the weights
// before bias correction) and "<name>.weight_q" (F32, (O, K): what the forward multiplies, bias-corrected
// where bias correction is on); with
// __metadata__: qtk_version, config (the model's JSON, as given), quantizers (JSON list of
// {name, bits, granularity, enabled}) and the caller's extra (key, value) pairs.
qtk_status qtk_qreg_export(const qtk_qreg *r, const char *path, const char *config_json, const char *const (*extra)[2],
                           size_t n_extra);
// Reads every point's parameters from an export (qtk_qreg_export) already open as st, checks them
// (count, finite positive scales, integral zero points in the code range) and re-quantizes the
// weights; on success the registry is in QUANT mode. model: named in the error of a missing tensor.
qtk_status qtk_qreg_import(qtk_qreg *r, const qtk_safetensors *st, const char *path, const char *model);

// --- the device half (core/cuda/qpoint.cu; a CPU-only build returns QTK_ERR_UNSUPPORTED) ---------------
//
// What a GPU forward reads per point, kept in step with the registry: each activation point as an output
// quantizer (qtk_outq, its per-channel arrays on the device; index-mapped groups spelled out per channel),
// each weight point as a device copy of its quantized weights; and a calibration's running statistics on the
// device. Per-channel activation parameters apply along the last axis of the tensor the forward passes.
typedef struct {
    int n;
    qtk_outq *q;          // (n) activation points: on = 0 where the point is off, uncalibrated, or a weight
    int *w_on;            // (n) weight points: their quantized weights are in use
    float *d_wq;          // the quantized weights, one region per weight point
    size_t *wq_off;       // (n) offsets into d_wq (SIZE_MAX: not a weight)
    float *d_qp;          // activation points' per-channel scales and zero points
    size_t qp_cap, qp_used;
    float *d_sz;          // one weight point's scales then zero points (qtk_qreg_dev_weight_params)
    size_t sz_cap;
    float **d_mm;         // (n) calibration: running min / max per point
    float *mm_scratch;
    size_t mm_cap;
    void *stream;         // the forward's cudaStream_t
} qtk_qreg_dev;

// Room for r's weights on the device; nothing uploaded yet.
qtk_status qtk_qreg_dev_init(qtk_qreg_dev *d, const qtk_qreg *r, void *stream);
void qtk_qreg_dev_free(qtk_qreg_dev *d);
// Every point (after a calibration or an import): the host's quantized weights (re-derived first where
// stale) and the activation points' parameters. Returns when the copies are done.
qtk_status qtk_qreg_dev_upload(qtk_qreg_dev *d, qtk_qreg *r);
// One point after its parameters changed: a weight's host wq, or an activation's scales (same slots).
qtk_status qtk_qreg_dev_update_weight(qtk_qreg_dev *d, const qtk_qreg *r, int id);
qtk_status qtk_qreg_dev_update_act(qtk_qreg_dev *d, const qtk_qreg *r, int id);
// The device copy of weight point id's quantized weights, or NULL where the forward reads the float ones.
float *qtk_qreg_dev_weight(const qtk_qreg_dev *d, int id);
// Weight point id's scales and zero points into d->d_sz (O each), after every kernel that may still read them.
qtk_status qtk_qreg_dev_weight_params(qtk_qreg_dev *d, const qtk_qpoint *p);
// Re-derives weight point id's device copy from its parameters on the device (fake quantization per output
// channel, then bias correction), from its float weights d_w on the device; the host wq becomes stale.
// Asynchronous on the default stream: synchronize before reading. Leaves the scales in d->d_sz.
qtk_status qtk_qreg_dev_requantize(qtk_qreg_dev *d, qtk_qreg *r, int id, const float *d_w);
// The activation hook of a calibration on the device: d_x (outer, C; C the last axis) feeds point id's
// observer (min-max statistics kept on the device across batches; EMA and percentile ones on the host); on
// the last batch the parameters are chosen (OMSE and PTF scored on the device). first: the first batch.
qtk_status qtk_qreg_observe_cuda(qtk_qreg_dev *d, qtk_qreg *r, int id, const float *d_x, size_t outer, size_t C,
                                 int first, int last);

#ifdef __cplusplus
}
#endif

#endif
