// The model-agnostic queries of the qtk_model seam (model.h).
#include "model.h"

size_t qtk_model_input_bytes(const qtk_model *m) { return qtk_dtype_nbytes(m->input_dtype, (int64_t)m->input_elems); }

const void *qtk_model_input_at(const qtk_model *m, const void *inputs, size_t i) {
    return (const char *)inputs + i * qtk_model_input_bytes(m);
}

size_t qtk_model_max_block_input(const qtk_model *m) {
    size_t mx = 0;
    for (int b = 0; b < m->n_blocks; b++) mx = m->block_input_elems[b] > mx ? m->block_input_elems[b] : mx;
    return mx;
}

int qtk_model_block_vectors(const qtk_model *m, int block, qtk_model_vec *out, int max) {
    int ids[QTK_MODEL_MAX_VECS * 4];
    const int cap = (int)(sizeof ids / sizeof *ids);
    int n = qtk_qreg_select(m->q, block, m->targets, m->n_targets, ids, cap);
    for (int j = 0; j < n && j < max && j < cap; j++)
        out[j] = (qtk_model_vec){m->q->p[ids[j]].qp.scale, m->q->p[ids[j]].qp.n, ids[j]};
    return n;
}

const char *qtk_model_point_name(const qtk_model *m, int point) {
    return point >= 0 && point < m->q->n && m->q->p[point].name[0] ? m->q->p[point].name : NULL;
}
