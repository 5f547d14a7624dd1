// Evol-Q / CPT-V: the block-wise evolutionary search over quantization scales
// (spec evolq-search.md), model-agnostic: it drives any qtk_model.
//
// Blocks are visited last to first, P passes; each block step runs
// qtk_evolve on the concatenation of the block's searchable scale vectors,
// with the infoNCE loss of the final outputs against fixed targets over the
// calibration inputs in their groups. A candidate runs only blocks b..end,
// from the block's cached input. After every block step the state (all
// searchable scales, both RNG streams, the position) can be checkpointed, and
// a resumed search continues bit-identically.
#ifndef QTK_EVOLQ_H
#define QTK_EVOLQ_H

#include "../core/model.h"
#include "../core/comm.h"
#include "evol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int passes;           // P = 10
    qtk_evol_params ea;   // population 15, tournament 10, cycles 3, eps by weight bits
    float temperature;    // T = 3
    int group;            // inputs per infoNCE group (100)
    int batch;            // inputs per forward (<= the model's plan; a multiple of group or a divisor of it)
    uint32_t seed;
    const char *checkpoint; // written after every block step (NULL: none)
    int max_steps;          // stop after this many block steps in this call (0: run to the end)
    qtk_comm *comm;         // data-parallel ranks (NULL: this process alone): each evaluates its share of the
                            // groups (qtk_comm_shard); the loss, and so the search, is the single process's bit
                            // for bit. Only rank 0 writes the checkpoint; every rank resumes from it.
} qtk_evolq_config;

void qtk_evolq_config_default(qtk_evolq_config *c, int weight_bits);

typedef struct {
    int pass, block, step;    // step counts block steps from 0
    double loss_start, loss_best;
    int improved;
    double seconds;           // this step
    long long evals, input_forwards; // so far (forwards of one input each)
} qtk_evolq_step;

// Called after every block step, before its checkpoint is written (a run
// killed in between repeats the step on resume, so the callback sees it
// again, with the same values). A status other than QTK_OK stops the search
// there, without writing the checkpoint.
typedef qtk_status (*qtk_evolq_log_fn)(void *ctx, const qtk_evolq_step *s);

typedef struct {
    double loss_initial, loss_final;
    int steps;
    long long evals, input_forwards;
    double seconds;           // all invocations, when resumed from a checkpoint
    int resumed_from_step;    // -1 for a fresh search
} qtk_evolq_result;

// inputs: n inputs of the model's input type (m->input_dtype, m->input_elems each); n a multiple of cfg->group (all n on every rank with cfg->comm: each rank
// reads its share). The targets are computed first with m->forward_targets. A checkpoint from an earlier run
// of the same search (same seed, inputs, model) is resumed from.
qtk_status qtk_evolq_search(qtk_model *m, const void *inputs, int n, const qtk_evolq_config *cfg,
                            qtk_evolq_log_fn log, void *log_ctx, qtk_evolq_result *res);

#ifdef __cplusplus
}
#endif

#endif
