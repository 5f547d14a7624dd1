#include "evolq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/safetensors.h"
#include "infonce.h"
#include "../core/timer.h"

void qtk_evolq_config_default(qtk_evolq_config *c, int weight_bits) {
    memset(c, 0, sizeof *c);
    c->passes = 10;
    qtk_evol_params_default(&c->ea, weight_bits);
    c->temperature = 3.0f;
    c->group = 100;
    c->batch = 100;
    c->seed = 0;
}

typedef struct {
    qtk_model *m;
    const qtk_evolq_config *cfg;
    int n;                 // inputs (this rank's share)
    int n_all, n_groups;   // inputs and groups of all ranks
    double *gl, *gl_all;   // per-group losses: this rank's (padded to gmax), every rank's (size x gmax)
    int gmax;              // the most groups a rank has
    const float *targets;  // (n, outputs)
    float *outputs;        // (n, outputs)
    float *cache;          // (n, block_input_elems[block]): the current block's input
    int block;
    qtk_model_vec vecs[QTK_MODEL_MAX_VECS];
    int n_vecs;
    long long evals, forwards;
} search_ctx;

// Installs v (the concatenated vectors) into the model and requantizes.
static qtk_status apply(search_ctx *s, const float *v) {
    size_t off = 0;
    for (int i = 0; i < s->n_vecs; i++) {
        memcpy(s->vecs[i].scale, v + off, s->vecs[i].n * sizeof(float));
        off += s->vecs[i].n;
        QTK_TRY(s->m->requantize(s->m, s->vecs[i].point));
    }
    return QTK_OK;
}

static qtk_status loss_of_current(search_ctx *s, double *loss) {
    int B = s->cfg->batch;
    if (s->m->forward_from_all) QTK_TRY(s->m->forward_from_all(s->m, s->cache, s->n, s->block, s->outputs));
    for (int i = 0; !s->m->forward_from_all && i < s->n; i += B) {
        int b = s->n - i < B ? s->n - i : B;
        QTK_TRY(s->m->forward_from(s->m, s->cache + (size_t)i * s->m->block_input_elems[s->block], b, s->block,
                                   s->outputs + (size_t)i * s->m->n_outputs));
    }
    s->evals++;
    s->forwards += s->n_all;
    qtk_comm *c = s->cfg->comm;
    if (!c || c->size == 1)
        return qtk_infonce(s->outputs, s->targets, s->n, s->m->n_outputs, s->cfg->group, s->cfg->temperature, loss, NULL);
    // this rank's group losses, every rank's gathered, summed in global group order as qtk_infonce sums them
    double mine;
    QTK_TRY(qtk_infonce(s->outputs, s->targets, s->n, s->m->n_outputs, s->cfg->group, s->cfg->temperature, &mine, s->gl));
    QTK_TRY(c->allgather(c, s->gl, s->gl_all, s->gmax));
    double total = 0;
    for (int r = 0; r < c->size; r++) {
        int g0, g1;
        qtk_comm_shard(s->n_groups, r, c->size, &g0, &g1);
        for (int g = 0; g < g1 - g0; g++) total += s->gl_all[(size_t)r * s->gmax + g];
    }
    *loss = total / s->n_groups;
    return QTK_OK;
}

static qtk_status candidate_loss(void *ctx, const float *v, size_t len, double *loss) {
    search_ctx *s = ctx;
    QTK_TRY(apply(s, v));
    return loss_of_current(s, loss);
}

// --- checkpoint: searchable scales of every block, RNG streams, position --------------

static qtk_status save_state(const char *path, qtk_model *m, const qtk_evol_rng *rng, int next_step, double loss,
                             double loss_initial, double seconds) {
    qtk_model_vec v[QTK_MODEL_MAX_VECS];
    int total = 0;
    for (int b = 0; b < m->n_blocks; b++) total += qtk_model_block_vectors(m, b, v, QTK_MODEL_MAX_VECS);
    qtk_st_entry *e = calloc((size_t)total + 2, sizeof *e);
    int64_t *lens = calloc((size_t)total + 2, sizeof *lens);
    uint32_t rs[2][625];
    if (!e || !lens) {
        free(e);
        free(lens);
        return qtk_fail(QTK_ERR_NOMEM, "checkpoint: out of memory");
    }
    int k = 0;
    for (int b = 0; b < m->n_blocks; b++) {
        int nv = qtk_model_block_vectors(m, b, v, QTK_MODEL_MAX_VECS);
        for (int i = 0; i < nv && i < QTK_MODEL_MAX_VECS; i++, k++) {
            lens[k] = (int64_t)v[i].n;
            e[k] = (qtk_st_entry){qtk_model_point_name(m, v[i].point), QTK_F32, 1, &lens[k], v[i].scale};
        }
    }
    const qtk_mt19937 *g[2] = {&rng->tournament, &rng->mutation};
    for (int i = 0; i < 2; i++) {
        memcpy(rs[i], g[i]->mt, sizeof g[i]->mt);
        rs[i][624] = (uint32_t)g[i]->mti;
        lens[k] = 625;
        e[k] = (qtk_st_entry){i ? "qtk.rng.mutation" : "qtk.rng.tournament", QTK_I32, 1, &lens[k], rs[i]};
        k++;
    }
    char step_s[32], loss_s[64], l0_s[64], sec_s[64];
    snprintf(step_s, sizeof step_s, "%d", next_step);
    snprintf(loss_s, sizeof loss_s, "%.17g", loss);
    snprintf(l0_s, sizeof l0_s, "%.17g", loss_initial);
    snprintf(sec_s, sizeof sec_s, "%.3f", seconds);
    const char *meta[][2] = {{"qtk.search.next_step", step_s}, {"qtk.search.loss", loss_s}, {"qtk.search.model", m->name},
                             {"qtk.search.loss_initial", l0_s}, {"qtk.search.seconds", sec_s}};
    qtk_status st = qtk_st_write(path, e, (size_t)k, meta, 5);
    free(e);
    free(lens);
    return st;
}

// Returns QTK_ERR_NOT_FOUND when there is no checkpoint to resume.
static qtk_status load_state(const char *path, qtk_model *m, qtk_evol_rng *rng, int *next_step, double *loss,
                             double *loss_initial, double *seconds) {
    qtk_safetensors st;
    if (qtk_st_open(&st, path) != QTK_OK) return QTK_ERR_NOT_FOUND;
    qtk_status r = QTK_OK;
    const char *ns = qtk_st_meta(&st, "qtk.search.next_step"), *ls = qtk_st_meta(&st, "qtk.search.loss");
    if (!ns || !ls) r = qtk_fail(QTK_ERR_FORMAT, "%s: not a search checkpoint", path);
    qtk_model_vec v[QTK_MODEL_MAX_VECS];
    for (int b = 0; b < m->n_blocks && r == QTK_OK; b++) {
        int nv = qtk_model_block_vectors(m, b, v, QTK_MODEL_MAX_VECS);
        for (int i = 0; i < nv && i < QTK_MODEL_MAX_VECS && r == QTK_OK; i++) {
            int64_t len = (int64_t)v[i].n;
            r = qtk_st_read_f32(&st, qtk_model_point_name(m, v[i].point), 1, &len, v[i].scale);
            if (r == QTK_OK) r = m->requantize(m, v[i].point);
        }
    }
    qtk_mt19937 *g[2] = {&rng->tournament, &rng->mutation};
    for (int i = 0; i < 2 && r == QTK_OK; i++) {
        const qtk_st_tensor *t = qtk_st_find(&st, i ? "qtk.rng.mutation" : "qtk.rng.tournament");
        if (!t || t->nbytes != 625 * 4) {
            r = qtk_fail(QTK_ERR_FORMAT, "%s: missing RNG state", path);
            break;
        }
        uint32_t w[625];
        memcpy(w, t->data, sizeof w);
        memcpy(g[i]->mt, w, sizeof g[i]->mt);
        g[i]->mti = (int)w[624];
    }
    if (r == QTK_OK) {
        *next_step = atoi(ns);
        *loss = strtod(ls, NULL);
        // the first invocation's initial loss and the search time so far (older checkpoints lack them)
        const char *l0 = qtk_st_meta(&st, "qtk.search.loss_initial"), *sec = qtk_st_meta(&st, "qtk.search.seconds");
        *loss_initial = l0 ? strtod(l0, NULL) : NAN;
        *seconds = sec ? strtod(sec, NULL) : 0;
    }
    qtk_st_close(&st);
    return r;
}

qtk_status qtk_evolq_search(qtk_model *m, const void *inputs, int n, const qtk_evolq_config *cfg,
                            qtk_evolq_log_fn log, void *log_ctx, qtk_evolq_result *res) {
    memset(res, 0, sizeof *res);
    res->resumed_from_step = -1;
    if (n < cfg->group || n % cfg->group != 0 || cfg->batch < 1)
        return qtk_fail(QTK_ERR_ARG, "search: %d inputs do not split into groups of %d", n, cfg->group);
    const qtk_comm *comm = cfg->comm && cfg->comm->size > 1 ? cfg->comm : NULL;
    const int n_groups = n / cfg->group, rank = comm ? comm->rank : 0;
    if (comm && n_groups < comm->size)
        return qtk_fail(QTK_ERR_ARG, "search: %d groups of inputs for %d ranks (at least one group each)", n_groups,
                        comm->size);
    double t_start = qtk_now();
    search_ctx s = {.m = m, .cfg = cfg, .n = n, .n_all = n, .n_groups = n_groups, .gmax = 1};
    if (comm) { // this rank's share of the groups
        int g0, g1;
        qtk_comm_shard(n_groups, rank, comm->size, &g0, &g1);
        s.n = (g1 - g0) * cfg->group;
        inputs = qtk_model_input_at(m, inputs, (size_t)g0 * cfg->group);
        n = s.n;
        s.gmax = (n_groups + comm->size - 1) / comm->size;
        s.gl = calloc((size_t)s.gmax, sizeof *s.gl);
        s.gl_all = calloc((size_t)s.gmax * comm->size, sizeof *s.gl_all);
        if (!s.gl || !s.gl_all) {
            free(s.gl);
            free(s.gl_all);
            return qtk_fail(QTK_ERR_NOMEM, "search: out of memory");
        }
    }
    size_t no = (size_t)n * m->n_outputs;
    float *targets = malloc(no * sizeof *targets);
    s.outputs = malloc(no * sizeof *s.outputs);
    s.cache = malloc((size_t)n * qtk_model_max_block_input(m) * sizeof *s.cache);
    size_t maxv = 0;
    for (int b = 0; b < m->n_blocks; b++) {
        qtk_model_vec v[QTK_MODEL_MAX_VECS];
        int nv = qtk_model_block_vectors(m, b, v, QTK_MODEL_MAX_VECS);
        size_t t = 0;
        for (int i = 0; i < nv && i < QTK_MODEL_MAX_VECS; i++) t += v[i].n;
        maxv = t > maxv ? t : maxv;
    }
    float *v0 = malloc((maxv ? maxv : 1) * sizeof *v0);
    double *best = malloc((maxv ? maxv : 1) * sizeof *best);
    qtk_status st = QTK_OK;
    if (!targets || !s.outputs || !s.cache || !v0 || !best) st = qtk_fail(QTK_ERR_NOMEM, "search: out of memory");
    // FP targets, once (spec section 3)
    for (int i = 0; st == QTK_OK && i < n; i += cfg->batch) {
        int b = n - i < cfg->batch ? n - i : cfg->batch;
        st = m->forward_targets(m, qtk_model_input_at(m, inputs, (size_t)i), b, targets + (size_t)i * m->n_outputs);
    }
    s.targets = targets;
    qtk_evol_rng rng;
    qtk_evol_rng_seed(&rng, cfg->seed);
    int first = 0;
    double loss = NAN, earlier_seconds = 0;
    if (st == QTK_OK && cfg->checkpoint) {
        qtk_status r = load_state(cfg->checkpoint, m, &rng, &first, &loss, &res->loss_initial, &earlier_seconds);
        if (r == QTK_OK) res->resumed_from_step = first;
        else if (r != QTK_ERR_NOT_FOUND) st = r;
    }
    int total_steps = cfg->passes * m->n_blocks;
    int last = cfg->max_steps > 0 && first + cfg->max_steps < total_steps ? first + cfg->max_steps : total_steps;
    for (int step = first; st == QTK_OK && step < last; step++) {
        double t0 = qtk_now();
        int pass = step / m->n_blocks, block = m->n_blocks - 1 - step % m->n_blocks; // last block first
        s.block = block;
        s.n_vecs = qtk_model_block_vectors(m, block, s.vecs, QTK_MODEL_MAX_VECS);
        if (s.n_vecs > QTK_MODEL_MAX_VECS) {
            st = qtk_fail(QTK_ERR_UNSUPPORTED, "block %d has %d searchable vectors (at most %d)", block, s.n_vecs,
                          QTK_MODEL_MAX_VECS);
            break;
        }
        size_t len = 0;
        for (int i = 0; i < s.n_vecs; i++) {
            memcpy(v0 + len, s.vecs[i].scale, s.vecs[i].n * sizeof(float));
            len += s.vecs[i].n;
        }
        if (len == 0) continue;
        // the block's input for every input (blocks before it do not change during its step)
        if (m->block_input_all) st = m->block_input_all(m, inputs, n, block, s.cache);
        for (int i = 0; !m->block_input_all && st == QTK_OK && i < n; i += cfg->batch) {
            int b = n - i < cfg->batch ? n - i : cfg->batch;
            st = m->block_input(m, qtk_model_input_at(m, inputs, (size_t)i), b, block,
                                s.cache + (size_t)i * m->block_input_elems[block]);
        }
        if (st != QTK_OK) break;
        // the loss of the current state is known after the first step (the redundant evaluation)
        if (isnan(loss)) {
            st = loss_of_current(&s, &loss);
            if (st != QTK_OK) break;
            if (step == 0) res->loss_initial = loss;
        }
        double l0 = loss, lb;
        qtk_evol_params ea = cfg->ea;
        st = qtk_evolve(&ea, &rng, v0, len, l0, candidate_loss, &s, best, &lb, NULL);
        if (st != QTK_OK) break;
        // the model keeps the float32 cast of the best vector
        for (size_t k = 0; k < len; k++) v0[k] = (float)best[k];
        st = apply(&s, v0);
        if (st != QTK_OK) break;
        loss = lb;
        qtk_evolq_step rec = {pass, block, step, l0, lb, lb < l0, qtk_now() - t0, s.evals, s.forwards};
        if (log) st = log(log_ctx, &rec);
        if (st == QTK_OK && cfg->checkpoint && rank == 0)
            st = save_state(cfg->checkpoint, m, &rng, step + 1, loss, res->loss_initial, earlier_seconds + qtk_now() - t_start);
        if (st != QTK_OK) break;
        res->steps++;
    }
    res->loss_final = loss;
    res->evals = s.evals;
    res->input_forwards = s.forwards;
    res->seconds = earlier_seconds + qtk_now() - t_start; // all invocations of this search
    free(targets);
    free(s.outputs);
    free(s.cache);
    free(v0);
    free(best);
    free(s.gl);
    free(s.gl_all);
    return st;
}
