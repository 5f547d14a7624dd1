#include "infonce.h"

#include "../core/blas.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

// F.normalize(x, dim=1): x / max(||x||_2, 1e-12)
static void normalize_rows(const float *x, float *y, int rows, int D) {
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)x[(size_t)r * D + d] * x[(size_t)r * D + d];
        float nrm = (float)sqrt(ss);
        if (nrm < 1e-12f) nrm = 1e-12f;
        for (int d = 0; d < D; d++) y[(size_t)r * D + d] = x[(size_t)r * D + d] / nrm;
    }
}

qtk_status qtk_infonce(const float *Q, const float *K, int rows, int D, int group, float T, double *loss,
                       double *group_losses) {
    if (group < 1 || rows < group || rows % group != 0 || D < 1 || !(T > 0))
        return qtk_fail(QTK_ERR_ARG, "infoNCE: %d rows do not split into groups of %d (D = %d, T = %g)", rows, group, D,
                        (double)T);
    int n_groups = rows / group;
    float *qn = malloc((size_t)group * D * sizeof *qn), *kn = malloc((size_t)group * D * sizeof *kn);
    float *lg = malloc((size_t)group * group * sizeof *lg);
    if (!qn || !kn || !lg) {
        free(qn);
        free(kn);
        free(lg);
        return qtk_fail(QTK_ERR_NOMEM, "infoNCE: out of memory for groups of %d x %d", group, D);
    }
    double total = 0;
    for (int g = 0; g < n_groups; g++) {
        normalize_rows(Q + (size_t)g * group * D, qn, group, D);
        normalize_rows(K + (size_t)g * group * D, kn, group, D);
        // logits = torch.mm(q, k.t()) / temp
        qtk_sgemm(false, true, group, group, D, 1.0f, qn, D, kn, D, 0.0f, lg, group);
        double ce = 0;
        for (int i = 0; i < group; i++) {
            float *row = lg + (size_t)i * group;
            double mx = -INFINITY;
            for (int j = 0; j < group; j++) {
                row[j] = row[j] / T;
                mx = row[j] > mx ? row[j] : mx;
            }
            double se = 0;
            for (int j = 0; j < group; j++) se += exp((double)row[j] - mx);
            ce += (mx + log(se)) - (double)row[i]; // -log softmax(row)[i]
        }
        // F.cross_entropy (mean over rows) * (2 * temp)
        double lgp = ce / group * (2.0 * T);
        if (group_losses) group_losses[g] = lgp;
        total += lgp;
    }
    free(qn);
    free(kn);
    free(lg);
    *loss = total / n_groups;
    return QTK_OK;
}
