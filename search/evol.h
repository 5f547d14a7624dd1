// The evolutionary block step of Evol-Q (spec evolq-search.md section 6):
// a steady-state, elitist (15 + 1) search with tournament selection and
// uniform mutation abs(parent + U(-eps, eps)), using the reference's two
// MT19937 streams so that the same seed replays the same search.
#ifndef QTK_EVOL_H
#define QTK_EVOL_H

#include <stddef.h>

#include "../core/error.h"
#include "../core/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int population; // 15
    int tournament; // 10 draws with replacement
    int cycles;     // K = 3 children per block step
    double eps;     // 1e-3 (3/4-bit weights), 1e-4 (8-bit)
} qtk_evol_params;

void qtk_evol_params_default(qtk_evol_params *p, int weight_bits);

// The reference's streams: tournament = Python random.seed(seed), mutation = np.random.seed(seed).
typedef struct {
    qtk_mt19937 tournament;
    qtk_mt19937 mutation;
} qtk_evol_rng;

void qtk_evol_rng_seed(qtk_evol_rng *r, uint32_t seed);

// Loss of a candidate, given as the float32 values the model will use.
typedef qtk_status (*qtk_evol_loss_fn)(void *ctx, const float *v, size_t n, double *loss);

// Optional record of a step, for tests and logs: per cycle, the drawn indices,
// the parent's population index and the child's loss.
typedef struct {
    int indices[8][16];
    int parent[8];
    double child_loss[8];
} qtk_evol_trace;

// One block step from s0 (float32 values; l0 = its loss, or NAN to evaluate it).
// best (n doubles) and *best_loss get the population's best (lowest loss,
// lowest index on ties): s0 itself unless a child did strictly better.
qtk_status qtk_evolve(const qtk_evol_params *p, qtk_evol_rng *rng, const float *s0, size_t n, double l0,
                      qtk_evol_loss_fn fn, void *ctx, double *best, double *best_loss, qtk_evol_trace *trace);

#ifdef __cplusplus
}
#endif

#endif
