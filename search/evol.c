#include "evol.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void qtk_evol_params_default(qtk_evol_params *p, int weight_bits) {
    p->population = 15;
    p->tournament = 10;
    p->cycles = 3;
    // mutate(): 1e-3 for 3/4-bit weights, 1e-4 for 8-bit, 1e-3 otherwise
    p->eps = weight_bits == 8 ? 1e-4 : 1e-3;
}

void qtk_evol_rng_seed(qtk_evol_rng *r, uint32_t seed) {
    qtk_mt_seed_python(&r->tournament, seed);
    qtk_mt_seed_numpy(&r->mutation, seed);
}

qtk_status qtk_evolve(const qtk_evol_params *p, qtk_evol_rng *rng, const float *s0, size_t n, double l0,
                      qtk_evol_loss_fn fn, void *ctx, double *best, double *best_loss, qtk_evol_trace *trace) {
    int P = p->population;
    if (P < 1 || P > 64 || p->tournament < 1 || p->cycles < 0 || (trace && (p->cycles > 8 || p->tournament > 16)))
        return qtk_fail(QTK_ERR_ARG, "evolve: population %d, tournament %d, cycles %d", P, p->tournament, p->cycles);
    // population: P + 1 vectors (the extra one holds the child); order[] sorted by loss
    double *vec = malloc((size_t)(P + 1) * n * sizeof *vec);
    float *v32 = malloc((n ? n : 1) * sizeof *v32);
    double loss[65];
    int order[65];
    if (!vec || !v32) {
        free(vec);
        free(v32);
        return qtk_fail(QTK_ERR_NOMEM, "evolve: out of memory for %d vectors of %zu", P + 1, n);
    }
    qtk_status st = QTK_OK;
    if (isnan(l0)) st = fn(ctx, s0, n, &l0);
    // pop = [(L0, s0)] * 15: copies of one entry
    for (size_t k = 0; k < n; k++) vec[k] = (double)s0[k];
    for (int i = 0; i < P; i++) {
        if (i) memcpy(vec + (size_t)i * n, vec, n * sizeof *vec);
        loss[i] = l0;
        order[i] = i;
    }
    for (int c = 0; c < p->cycles && st == QTK_OK; c++) {
        // tournament: draws with replacement, the best drawn (lowest population index on ties)
        int parent = -1;
        for (int t = 0; t < p->tournament; t++) {
            int i = (int)(qtk_mt_double(&rng->tournament) * (double)P);
            if (trace) trace->indices[c][t] = i;
            if (parent < 0 || loss[order[i]] < loss[order[parent]] || (loss[order[i]] == loss[order[parent]] && i < parent))
                parent = i;
        }
        // child = abs(parent + uniform(-eps, eps)) in float64, element by element in vector order
        int slot = order[P] = -1, used[65] = {0};
        for (int i = 0; i < P; i++) used[order[i]] = 1;
        for (int i = 0; i <= P && slot < 0; i++)
            if (!used[i]) slot = i;
        const double *pv = vec + (size_t)order[parent] * n;
        double *cv = vec + (size_t)slot * n;
        for (size_t k = 0; k < n; k++) cv[k] = fabs(pv[k] + (-p->eps + (2.0 * p->eps) * qtk_mt_double(&rng->mutation)));
        for (size_t k = 0; k < n; k++) v32[k] = (float)cv[k];
        double lc;
        st = fn(ctx, v32, n, &lc);
        if (st != QTK_OK) break;
        if (trace) {
            trace->parent[c] = parent;
            trace->child_loss[c] = lc;
        }
        // append, stable sort by loss, drop the last: the child goes after every entry with loss <= lc
        loss[slot] = lc;
        int pos = P;
        while (pos > 0 && loss[order[pos - 1]] > lc) pos--;
        if (pos < P) {
            memmove(order + pos + 1, order + pos, (size_t)(P - 1 - pos) * sizeof *order);
            order[pos] = slot;
        }
    }
    if (st == QTK_OK) {
        memcpy(best, vec + (size_t)order[0] * n, n * sizeof *best);
        *best_loss = loss[order[0]];
    }
    free(vec);
    free(v32);
    return st;
}
