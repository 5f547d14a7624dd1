// The infoNCE ("contrastive") loss of Evol-Q (spec evolq-search.md section 4):
// per group of N images, rows of the quantized outputs Q and the FP targets K
// are L2-normalized, logits = Q K^T / T, and the loss is cross-entropy with the
// image's own FP output as the positive, averaged over rows, times 2T. The
// total is the mean over groups.
#ifndef QTK_INFONCE_H
#define QTK_INFONCE_H

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Q, K: (rows, D), rows = n_groups * group. group_losses (n_groups) may be NULL.
// Normalization and the logits are float32 (as the reference computes them on
// the CPU), the log-sum-exp and the averages double.
qtk_status qtk_infonce(const float *Q, const float *K, int rows, int D, int group, float T, double *loss,
                       double *group_losses);

#ifdef __cplusplus
}
#endif

#endif
