// Loading a model's parameters from a checkpoint in two passes over one list (llm.c's
// malloc_and_point_parameters, with the reads folded in): the model writes its parameter list
// once as a function of a qtk_param_walker walker; the first pass (base NULL) checks every tensor's
// presence, shape and dtype and counts the floats, so nothing is allocated for a checkpoint that
// cannot back the config; then one allocation, and the second pass carves it and reads.
//
//     static qtk_status walk(qtk_param_walker *w, my_model *m) {
//         m->emb = qtk_param_take(w, "embeddings.weight|embedding.weight", 2, (int64_t[]){V, D}, 1);
//         ...
//         return w->st;
//     }
//     qtk_param_walker w = {.src = &shards, .align = 16};
//     walk(&w, m);                                   // count and check
//     qtk_param_alloc(&w, &m->mem);                 // one allocation
//     walk(&w, m);                                   // carve and read
#ifndef QTK_PARAMS_H
#define QTK_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const qtk_st_shards *src;
    size_t align;  // each tensor starts at a multiple of this many floats (0 or 1: packed)
    float *base;   // NULL: the counting pass
    size_t used;   // floats carved so far
    qtk_status st; // the first failure; later takes do nothing
} qtk_param_walker;

// The next parameter: names are alternatives separated by '|' (the first present is read), shape
// its expected shape (F32, F16 or BF16 in the file). present 0: an absent optional parameter
// (nothing carved, NULL). Returns the carved pointer (NULL in the counting pass or after a failure).
float *qtk_param_take(qtk_param_walker *w, const char *names, int ndim, const int64_t *shape, int present);
// After the counting pass: allocates w->used floats (qtk_aligned_alloc) into *mem and rewinds w for
// the reading pass. Fails (naming the count) if it does not fit.
qtk_status qtk_param_alloc(qtk_param_walker *w, float **mem);

#ifdef __cplusplus
}
#endif

#endif
