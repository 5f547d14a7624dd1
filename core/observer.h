// Observers: streaming statistics over calibration batches, turned into quant
// params. Formulas follow the Evol-Q / FQ-ViT reference (spec vit-baseline §4)
// and Quamba's percentile observer (spec mamba-quamba §5.1).
//
// Use: qtk_observer_init, then qtk_observer_update on every batch, then
// qtk_observer_params (OMSE and PTF score candidates on the tensor of the last
// batch, passed as x_last).
#ifndef QTK_OBSERVER_H
#define QTK_OBSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qparams.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    QTK_OBS_MINMAX = 0, // running min / max
    QTK_OBS_EMA,        // EMA of per-batch min / max (momentum 0.01)
    QTK_OBS_PERCENTILE, // EMA of per-batch quantiles (linear interpolation)
    QTK_OBS_OMSE,       // min/max, then 90 shrink factors scored by MSE on the last batch
    QTK_OBS_PTF,        // per-channel power-of-two factors with one shared zero point
} qtk_observer_kind;

typedef struct {
    qtk_observer_kind kind;
    int bits;
    bool is_signed;
    bool symmetric;     // params from the symmetric form (default: = is_signed). OMSE/PTF ignore it
    bool channel_wise;  // keep per-channel statistics (else collapse to one after each update)
    int axis;           // channel axis for channel-wise statistics
    float momentum;     // EMA and percentile: 0.01
    float q_hi, q_lo;   // percentile: quantiles of the max and min (0.99999, 0.00001)
    bool pct_abs;       // percentile of |x| (Quamba); params are then symmetric absmax / (2^(b-1)-1)
    size_t C;           // channels seen (0 before the first update)
    float *min_val;     // (C) channel-wise, else (1)
    float *max_val;
    int64_t n_updates;
} qtk_observer;

const char *qtk_observer_kind_name(qtk_observer_kind k);
qtk_status qtk_observer_kind_from_name(const char *name, qtk_observer_kind *out);

// PTF is always channel-wise on the last axis; OMSE and PERCENTILE are per tensor.
qtk_status qtk_observer_init(qtk_observer *o, qtk_observer_kind kind, int bits, bool is_signed,
                             bool channel_wise, int axis);
void qtk_observer_free(qtk_observer *o);

qtk_status qtk_observer_update(qtk_observer *o, const float *x, int ndim, const int64_t *shape);
// The same update from a batch's own per-channel (or, C = 1, per-tensor) min and max, computed
// elsewhere (qtk_channel_minmax_cuda); for the percentile kind, the batch's quantiles at q_lo and
// q_hi (qtk_quantiles_cuda; with pct_abs: -q_hi(|x|) and q_hi(|x|)).
qtk_status qtk_observer_update_minmax(qtk_observer *o, const float *cur_mn, const float *cur_mx, size_t C);

// Allocates *out (free with qtk_qparams_free). x_last: the last batch, needed
// by OMSE and PTF, ignored (may be NULL) by the others.
qtk_status qtk_observer_params(const qtk_observer *o, const float *x_last, int ndim,
                               const int64_t *shape, qtk_qparams *out);

// Parameters of index-mapped groups (qparams.h: QTK_PER_INDEX) from a channel-wise min-max observer: group
// g's range is the union of the ranges of the channels c with index[c] == g (len = the observer's channels),
// then the observer's formula. Other kinds are refused: their statistics do not combine that way.
qtk_status qtk_observer_params_index(const qtk_observer *o, const int32_t *index, size_t len, size_t n_groups,
                                     qtk_qparams *out);

// qtk_observer_params with the last batch in GPU memory: OMSE's and PTF's
// candidate errors are summed on the GPU (double sums, so the choice equals
// the CPU's except where two scores tie within rounding), the choice is made
// here with the CPU's code. A CPU-only build returns QTK_ERR_UNSUPPORTED for
// those two kinds.
qtk_status qtk_observer_params_cuda(const qtk_observer *o, const float *d_x_last, int ndim, const int64_t *shape,
                                    qtk_qparams *out);

#define QTK_OMSE_CANDIDATES 90

// Building blocks, exposed for tests and other callers.

// Per-channel min and max of x viewed as (outer, C, inner) around an axis.
qtk_status qtk_channel_minmax(const float *x, size_t outer, size_t C, size_t inner, float *mn, float *mx);
// torch.quantile(v, q) with linear interpolation, computed as PyTorch does
// (rank = fl32(q) * (n-1) in float32, then lerp). v is reordered in place.
float qtk_quantile_inplace(float *v, size_t n, float q);
// mean((x - fake_quant(x))^2) over n values, accumulated in double, returned
// as float32 (the reference compares float32 scores).
float qtk_fq_mse(const float *x, size_t n, float s, float z, int lo, int hi);
// OMSE search: index (0..89) of the shrink factor it keeps, and its (s, z).
int qtk_omse_search(const float *x, size_t n, float mn, float mx, int lo, int hi, float *s, float *z);

#ifdef __cplusplus
}
#endif

#endif
