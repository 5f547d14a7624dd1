// Mamba checkpoints: config.json (HF or mamba_ssm keys) and safetensors weights (spec mamba-quamba.md
// sections 1-3), converted to one float32 allocation.
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/file.h"
#include "../core/params.h"
#include "../core/rng.h"
#include "../core/safetensors.h"
#include "../core/tensor.h"
#include "mamba.h"

int qtk_mamba_in_proj_out(const qtk_mamba_config *c) {
    if (c->arch == QTK_MAMBA1) return 2 * c->d_inner;
    return 2 * c->d_inner + 2 * c->n_groups * c->d_state + c->n_heads;
}

int qtk_mamba_conv_dim(const qtk_mamba_config *c) {
    return c->arch == QTK_MAMBA1 ? c->d_inner : c->d_inner + 2 * c->n_groups * c->d_state;
}

// --- config.json -----------------------------------------------------------------------

// transformers writes non-finite floats as {"__float__": "Infinity"}; other writers use the bare
// tokens Infinity / -Infinity / NaN, which JSON (and cJSON) rejects: those become numbers strtod
// reads as +-inf (1e999), NaN stays an error.
static char *json_fix_nonfinite(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o) return NULL;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            *p++ = ch;
            if (ch == '\\' && i + 1 < n) *p++ = s[++i];
            else if (ch == '"') in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
            *p++ = ch;
        } else if (!strncmp(s + i, "Infinity", 8)) {
            memcpy(p, "1e999", 5);
            p += 5;
            i += 7;
        } else *p++ = ch;
    }
    *p = 0;
    return o;
}

// a number, or {"__float__": "Infinity" | "-Infinity"}, or "Infinity" as a string
static int json_number(const cJSON *v, double *out) {
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 1;
    }
    const cJSON *f = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "__float__") : v;
    if (cJSON_IsString(f)) {
        if (!strcmp(f->valuestring, "Infinity") || !strcmp(f->valuestring, "inf")) return *out = INFINITY, 1;
        if (!strcmp(f->valuestring, "-Infinity") || !strcmp(f->valuestring, "-inf")) return *out = -INFINITY, 1;
    }
    return 0;
}

typedef struct {
    const cJSON *root;
    const char *file;
} jctx;

// key present: must be a number (integral when want_int); absent: def (def < -1e300: required)
static qtk_status jnum(const jctx *j, const char *key, double def, int want_int, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < -1e300) return qtk_fail(QTK_ERR_FORMAT, "%s: \"%s\" is missing", j->file, key);
        *out = def;
        return QTK_OK;
    }
    if (!json_number(v, out)) return qtk_fail(QTK_ERR_FORMAT, "%s: \"%s\" must be a number", j->file, key);
    if (want_int && (*out != floor(*out) || *out < 0 || *out > 1e9))
        return qtk_fail(QTK_ERR_FORMAT, "%s: \"%s\" must be a non-negative integer, got %g", j->file, key, *out);
    return QTK_OK;
}

// The largest value each size may take: beyond any released Mamba, small enough that every product of
// sizes the loader forms fits its integer type. A key over its bound is an error naming it.
static const struct {
    const char *key;
    int max;
} dim_max[] = {
    {"hidden_size", 1 << 16}, {"d_model", 1 << 16}, {"num_hidden_layers", 1024}, {"n_layer", 1024},
    {"vocab_size", 1 << 24}, {"pad_vocab_size_multiple", 1 << 16}, {"expand", 64}, {"conv_kernel", 64},
    {"d_conv", 64}, {"state_size", 1 << 12}, {"d_state", 1 << 12}, {"intermediate_size", 1 << 20},
    {"time_step_rank", 1 << 16}, {"dt_rank", 1 << 16}, {"head_dim", 1 << 12}, {"headdim", 1 << 12},
    {"num_heads", 1 << 16}, {"n_groups", 1 << 12}, {"ngroups", 1 << 12}, {"chunk_size", 1 << 16},
};

static qtk_status jint(const jctx *j, const char *key, int def, int *out) {
    double d;
    QTK_TRY(jnum(j, key, def == -2 ? -1e308 : (double)def, 1, &d));
    for (size_t i = 0; i < sizeof dim_max / sizeof *dim_max; i++)
        if (!strcmp(dim_max[i].key, key) && d > dim_max[i].max)
            return qtk_fail(QTK_ERR_FORMAT, "%s: \"%s\" is %.0f, more than the %d qtk takes", j->file, key, d, dim_max[i].max);
    *out = (int)d;
    return QTK_OK;
}

// a * b for a derived size (in 64 bits), bounded like a key: what names the product for the error
static qtk_status jprod(const jctx *j, const char *what, int a, int b, int max, int *out) {
    int64_t p = (int64_t)a * b;
    if (p > max) return qtk_fail(QTK_ERR_FORMAT, "%s: %s = %lld, more than the %d qtk takes", j->file, what, (long long)p, max);
    *out = (int)p;
    return QTK_OK;
}

static qtk_status jbool(const jctx *j, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!v || cJSON_IsNull(v)) return *out = def, QTK_OK;
    if (!cJSON_IsBool(v)) return qtk_fail(QTK_ERR_FORMAT, "%s: \"%s\" must be true or false", j->file, key);
    *out = cJSON_IsTrue(v);
    return QTK_OK;
}

#define REQ (-2)

static qtk_status parse_hf(const jctx *j, const char *type, qtk_mamba_config *c) {
    c->arch = !strcmp(type, "mamba2") ? QTK_MAMBA2 : QTK_MAMBA1;
    int expand;
    double eps;
    QTK_TRY(jint(j, "hidden_size", REQ, &c->d_model));
    QTK_TRY(jint(j, "num_hidden_layers", REQ, &c->n_layers));
    QTK_TRY(jint(j, "vocab_size", REQ, &c->vocab));
    QTK_TRY(jint(j, "expand", 2, &expand));
    QTK_TRY(jint(j, "conv_kernel", 4, &c->d_conv));
    QTK_TRY(jnum(j, "layer_norm_epsilon", 1e-5, 0, &eps));
    c->eps = (float)eps;
    QTK_TRY(jbool(j, "use_bias", 0, &c->use_bias));
    QTK_TRY(jbool(j, "use_conv_bias", 1, &c->conv_bias));
    QTK_TRY(jbool(j, "residual_in_fp32", 1, &c->residual_in_fp32));
    if (c->arch == QTK_MAMBA1) {
        QTK_TRY(jint(j, "state_size", 16, &c->d_state));
        int inner = 0;
        QTK_TRY(jprod(j, "expand x hidden_size", expand, c->d_model, 1 << 20, &inner));
        QTK_TRY(jint(j, "intermediate_size", inner, &c->d_inner));
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j->root, "time_step_rank");
        if (cJSON_IsString(r) && !strcmp(r->valuestring, "auto")) c->dt_rank = (c->d_model + 15) / 16;
        else QTK_TRY(jint(j, "time_step_rank", (c->d_model + 15) / 16, &c->dt_rank));
        return QTK_OK;
    }
    QTK_TRY(jint(j, "state_size", 128, &c->d_state));
    QTK_TRY(jint(j, "head_dim", 64, &c->head_dim));
    QTK_TRY(jprod(j, "expand x hidden_size", expand, c->d_model, 1 << 20, &c->d_inner));
    QTK_TRY(jint(j, "num_heads", c->head_dim ? c->d_inner / c->head_dim : 0, &c->n_heads));
    QTK_TRY(jint(j, "n_groups", 1, &c->n_groups));
    QTK_TRY(jint(j, "chunk_size", 256, &c->chunk_size));
    c->dt_min = 0.0f;
    c->dt_max = INFINITY;
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(j->root, "time_step_limit");
    if (lim && !cJSON_IsNull(lim)) {
        double a, b;
        if (!cJSON_IsArray(lim) || cJSON_GetArraySize(lim) != 2 || !json_number(cJSON_GetArrayItem(lim, 0), &a) ||
            !json_number(cJSON_GetArrayItem(lim, 1), &b) || !(a <= b))
            return qtk_fail(QTK_ERR_FORMAT, "%s: \"time_step_limit\" must be [low, high] with low <= high", j->file);
        c->dt_min = (float)a;
        c->dt_max = (float)b;
    }
    return QTK_OK;
}

// mamba_ssm's MambaConfig: d_model, n_layer, vocab_size (padded to pad_vocab_size_multiple), ssm_cfg
static qtk_status parse_mamba_ssm(const jctx *j, qtk_mamba_config *c) {
    int pad = 8;
    QTK_TRY(jint(j, "d_model", REQ, &c->d_model));
    QTK_TRY(jint(j, "n_layer", REQ, &c->n_layers));
    QTK_TRY(jint(j, "vocab_size", REQ, &c->vocab));
    QTK_TRY(jint(j, "pad_vocab_size_multiple", 8, &pad));
    if (pad > 0 && c->vocab % pad) c->vocab += pad - c->vocab % pad; // both <= 2^24: no overflow
    QTK_TRY(jbool(j, "residual_in_fp32", 1, &c->residual_in_fp32));
    const cJSON *ssm = cJSON_GetObjectItemCaseSensitive(j->root, "ssm_cfg");
    jctx s = {ssm && cJSON_IsObject(ssm) ? ssm : NULL, j->file};
    cJSON *empty = s.root ? NULL : cJSON_CreateObject();
    if (!s.root) s.root = empty;
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(s.root, "layer");
    c->arch = cJSON_IsString(layer) && !strcmp(layer->valuestring, "Mamba2") ? QTK_MAMBA2 : QTK_MAMBA1;
    int expand = 2;
    qtk_status st = jint(&s, "expand", 2, &expand);
    if (st == QTK_OK) st = jint(&s, "d_state", c->arch == QTK_MAMBA1 ? 16 : 128, &c->d_state);
    if (st == QTK_OK) st = jint(&s, "d_conv", 4, &c->d_conv);
    if (st == QTK_OK) st = jbool(&s, "bias", 0, &c->use_bias);
    if (st == QTK_OK) st = jbool(&s, "conv_bias", 1, &c->conv_bias);
    if (st == QTK_OK) st = jprod(&s, "expand x d_model", expand, c->d_model, 1 << 20, &c->d_inner);
    c->eps = 1e-5f;
    if (st == QTK_OK && c->arch == QTK_MAMBA1) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(s.root, "dt_rank");
        if (r && cJSON_IsString(r)) c->dt_rank = (c->d_model + 15) / 16; // "auto"
        else st = jint(&s, "dt_rank", (c->d_model + 15) / 16, &c->dt_rank);
    } else if (st == QTK_OK) {
        st = jint(&s, "headdim", 64, &c->head_dim);
        if (st == QTK_OK) st = jint(&s, "ngroups", 1, &c->n_groups);
        if (st == QTK_OK) st = jint(&s, "chunk_size", 256, &c->chunk_size);
        c->n_heads = c->head_dim ? c->d_inner / c->head_dim : 0;
        c->dt_min = 0.0f;
        c->dt_max = INFINITY;
    }
    cJSON_Delete(empty);
    return st;
}

qtk_status qtk_mamba_config_parse(const char *json, const char *file, qtk_mamba_config *c) {
    memset(c, 0, sizeof *c);
    char *fixed = json_fix_nonfinite(json);
    if (!fixed) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    cJSON *root = cJSON_Parse(fixed);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= fixed ? (size_t)(at - fixed) : 0;
        free(fixed);
        return qtk_fail(QTK_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", file, off);
    }
    free(fixed);
    jctx j = {root, file};
    qtk_status st = QTK_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(type) && (!strcmp(type->valuestring, "mamba") || !strcmp(type->valuestring, "mamba2")))
        st = parse_hf(&j, type->valuestring, c);
    else if (cJSON_GetObjectItemCaseSensitive(root, "d_model"))
        st = parse_mamba_ssm(&j, c);
    else if (type)
        st = qtk_fail(QTK_ERR_FORMAT, "%s: \"model_type\" is \"%s\", expected \"mamba\" or \"mamba2\"", file,
                      cJSON_IsString(type) ? type->valuestring : "?");
    else st = qtk_fail(QTK_ERR_FORMAT, "%s: no \"model_type\" (HF) and no \"d_model\" (mamba_ssm): not a Mamba config", file);
    int tie = 1;
    if (st == QTK_OK) st = jbool(&j, "tie_word_embeddings", c->arch == QTK_MAMBA1 || !type, &tie);
    cJSON_Delete(root);
    QTK_TRY(st);
    // sizes that the forward relies on
    const struct { const char *key; int v; } pos[] = {{"hidden_size", c->d_model}, {"num_hidden_layers", c->n_layers},
                                                      {"vocab_size", c->vocab}, {"state_size", c->d_state},
                                                      {"conv_kernel", c->d_conv}, {"intermediate_size", c->d_inner}};
    for (size_t i = 0; i < sizeof pos / sizeof *pos; i++)
        if (pos[i].v < 1) return qtk_fail(QTK_ERR_FORMAT, "%s: \"%s\" must be at least 1, got %d", file, pos[i].key, pos[i].v);
    if (c->arch == QTK_MAMBA1 && c->dt_rank < 1)
        return qtk_fail(QTK_ERR_FORMAT, "%s: \"time_step_rank\" must be at least 1", file);
    if (c->arch == QTK_MAMBA2) {
        if (c->head_dim < 1 || c->n_heads < 1 || c->n_groups < 1 || c->chunk_size < 1)
            return qtk_fail(QTK_ERR_FORMAT, "%s: head_dim, num_heads, n_groups and chunk_size must be at least 1", file);
        if ((int64_t)c->n_heads * c->head_dim != c->d_inner)
            return qtk_fail(QTK_ERR_FORMAT, "%s: num_heads (%d) x head_dim (%d) must equal expand x hidden_size (%d)", file,
                            c->n_heads, c->head_dim, c->d_inner);
        if ((int64_t)c->n_groups * c->d_state > (1 << 20))
            return qtk_fail(QTK_ERR_FORMAT, "%s: n_groups x state_size = %lld, more than the %d qtk takes", file,
                            (long long)c->n_groups * c->d_state, 1 << 20);
        if (c->n_heads % c->n_groups)
            return qtk_fail(QTK_ERR_FORMAT, "%s: num_heads (%d) is not a multiple of n_groups (%d)", file, c->n_heads,
                            c->n_groups);
    }
    c->tied = tie; // a hint: the loader uses lm_head.weight whenever the checkpoint has it
    return QTK_OK;
}

// --- weights ---------------------------------------------------------------------------------

// the parameter list (core/params.h): the same walk sizes the allocation and reads the tensors
static float *take(qtk_param_walker *w, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int present) {
    int64_t shape[3] = {d0, d1, d2};
    return qtk_param_take(w, name, ndim, shape, present);
}

static qtk_status walk(qtk_param_walker *w, qtk_mamba *m, int has_head) {
    const qtk_mamba_config *c = &m->cfg;
    const int64_t D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, V = c->vocab;
    const int64_t IN = qtk_mamba_in_proj_out(c), CD = qtk_mamba_conv_dim(c), H = c->n_heads, R = c->dt_rank;
    m->emb = take(w, "backbone.embeddings.weight|backbone.embedding.weight", 2, V, D, 0, 1);
    m->norm_f = take(w, "backbone.norm_f.weight", 1, D, 0, 0, 1);
    m->lm_head = has_head ? take(w, "lm_head.weight", 2, V, D, 0, 1) : m->emb;
    char n[160];
    for (int l = 0; l < c->n_layers && w->st == QTK_OK; l++) {
        qtk_mamba_layer *L = &m->layers[l];
#define P(field, suffix, ndim, a, b, cc, present)                                                                     \
    snprintf(n, sizeof n, "backbone.layers.%d.%s", l, suffix);                                                       \
    L->field = take(w, n, ndim, a, b, cc, present)
        P(norm_w, "norm.weight", 1, D, 0, 0, 1);
        P(in_proj_w, "mixer.in_proj.weight", 2, IN, D, 0, 1);
        P(in_proj_b, "mixer.in_proj.bias", 1, IN, 0, 0, c->use_bias);
        P(conv_w, "mixer.conv1d.weight", 3, CD, 1, K, 1);
        P(conv_b, "mixer.conv1d.bias", 1, CD, 0, 0, c->conv_bias);
        P(out_proj_w, "mixer.out_proj.weight", 2, D, E, 0, 1);
        P(out_proj_b, "mixer.out_proj.bias", 1, D, 0, 0, c->use_bias);
        if (c->arch == QTK_MAMBA1) {
            P(x_proj_w, "mixer.x_proj.weight", 2, R + 2 * N, E, 0, 1);
            P(dt_proj_w, "mixer.dt_proj.weight", 2, E, R, 0, 1);
            P(dt_proj_b, "mixer.dt_proj.bias", 1, E, 0, 0, 1);
            P(A_log, "mixer.A_log", 2, E, N, 0, 1);
            P(Dskip, "mixer.D", 1, E, 0, 0, 1);
        } else {
            P(dt_bias, "mixer.dt_bias", 1, H, 0, 0, 1);
            P(A_log, "mixer.A_log", 1, H, 0, 0, 1);
            P(Dskip, "mixer.D", 1, H, 0, 0, 1);
            P(gnorm_w, "mixer.norm.weight", 1, E, 0, 0, 1);
        }
#undef P
    }
    return w->st;
}

int qtk_mamba_projections(const qtk_mamba *m, const float **w, size_t *n, int max) {
    const qtk_mamba_config *c = &m->cfg;
    const size_t D = (size_t)c->d_model, E = (size_t)c->d_inner;
    int k = 0;
#define PROJ(p, count)                                                                                                \
    do {                                                                                                              \
        if ((p) && k < max) w[k] = (p), n[k] = (count);                                                               \
        k += (p) != NULL;                                                                                             \
    } while (0)
    PROJ(m->lm_head, (size_t)c->vocab * D);
    for (int l = 0; l < c->n_layers; l++) {
        const qtk_mamba_layer *ly = &m->layers[l];
        PROJ(ly->in_proj_w, (size_t)qtk_mamba_in_proj_out(c) * D);
        PROJ(ly->out_proj_w, D * E);
        PROJ(ly->x_proj_w, (size_t)(c->dt_rank + 2 * c->d_state) * E);
        PROJ(ly->dt_proj_w, E * (size_t)c->dt_rank);
    }
#undef PROJ
    return k;
}

qtk_status qtk_mamba_fp16_reference(qtk_mamba *m, int on) {
    qtk_aligned_free(m->half_mem);
    m->half_mem = NULL;
    if (!on) return QTK_OK;
    const int k = qtk_mamba_projections(m, NULL, NULL, 0);
    const float **w = malloc((size_t)k * sizeof *w);
    size_t *n = malloc((size_t)k * sizeof *n);
    m->half_mem = qtk_aligned_alloc(m->n_params * sizeof(float));
    if (!w || !n || !m->half_mem) {
        free(w), free(n);
        qtk_aligned_free(m->half_mem);
        m->half_mem = NULL;
        return qtk_fail(QTK_ERR_NOMEM, "fp16 reference of %zu parameters: out of memory", m->n_params);
    }
    memcpy(m->half_mem, m->mem, m->n_params * sizeof(float));
    qtk_mamba_projections(m, w, n, k);
    for (int j = 0; j < k; j++) {
        float *h = m->half_mem + (w[j] - m->mem);
        for (size_t i = 0; i < n[j]; i++) h[i] = qtk_f16_to_f32(qtk_f32_to_f16(w[j][i]));
    }
    free(w), free(n);
    return QTK_OK;
}

void qtk_mamba_free(qtk_mamba *m) {
    if (!m) return;
    qtk_aligned_free(m->mem);
    qtk_aligned_free(m->half_mem);
    free(m->derived);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

qtk_status qtk_mamba_load(qtk_mamba *m, const char *path) {
    memset(m, 0, sizeof *m);
    char dir[3800], cfg_path[4096];
    const char *file = NULL;
    size_t pl = strlen(path);
    if (pl >= sizeof dir - 32) return qtk_fail(QTK_ERR_ARG, "checkpoint path too long");
    struct stat sb;
    if (stat(path, &sb) != 0) return qtk_fail(QTK_ERR_IO, "%s: no such file or folder", path);
    if (S_ISDIR(sb.st_mode)) snprintf(dir, sizeof dir, "%s", path);
    else {
        file = path;
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    }
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    char *text;
    if (qtk_file_read(cfg_path, "Mamba config", 16 << 20, &text, NULL) != QTK_OK)
        return qtk_fail(QTK_ERR_IO, "%s (a Mamba checkpoint needs its config.json)", qtk_last_error());
    qtk_status st = qtk_mamba_config_parse(text, cfg_path, &m->cfg);
    free(text);
    QTK_TRY(st);
    qtk_st_shards s;
    QTK_TRY(qtk_st_shards_open(&s, dir, file));
    const qtk_safetensors *in;
    int has_head = qtk_st_shards_find(&s, "lm_head.weight", &in) != NULL;
    m->cfg.tied = !has_head;
    const qtk_st_tensor *et = qtk_st_shards_find(&s, "backbone.embeddings.weight", &in);
    if (!et) et = qtk_st_shards_find(&s, "backbone.embedding.weight", &in);
    if (et) snprintf(m->source_dtype, sizeof m->source_dtype, "%s", qtk_dtype_name(et->dtype));
    m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
    if (!m->layers) {
        qtk_st_shards_close(&s);
        return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    qtk_param_walker w = {.src = &s, .align = 16};
    walk(&w, m, has_head); // sizes, and every tensor's presence and shape
    m->n_params = w.used;
    st = qtk_param_alloc(&w, &m->mem);
    if (st == QTK_OK) st = walk(&w, m, has_head);
    // A = -torch.exp(self.A_log.float()), once
    const size_t na = m->cfg.arch == QTK_MAMBA1 ? (size_t)m->cfg.d_inner * m->cfg.d_state : (size_t)m->cfg.n_heads;
    if (st == QTK_OK && !(m->derived = malloc((size_t)m->cfg.n_layers * na * sizeof(float))))
        st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    for (int l = 0; st == QTK_OK && l < m->cfg.n_layers; l++) {
        float *A = m->derived + (size_t)l * na;
        for (size_t i = 0; i < na; i++) A[i] = -expf(m->layers[l].A_log[i]);
        m->layers[l].A = A;
    }
    qtk_st_shards_close(&s);
    if (st != QTK_OK) qtk_mamba_free(m);
    return st;
}

// --- random checkpoints ------------------------------------------------------------------------

static void range_for(const char *name, int D, float *lo, float *hi) {
    static const struct { const char *suffix; float lo, hi; } r[] = {
        {"embeddings.weight", -1, 1}, {"norm.weight", 0.8f, 1.2f}, {"norm_f.weight", 0.8f, 1.2f},
        {"in_proj.bias", -0.1f, 0.1f}, {"conv1d.weight", -0.5f, 0.5f}, {"conv1d.bias", -0.2f, 0.2f},
        {"x_proj.weight", -0.05f, 0.05f}, {"dt_proj.weight", -0.15f, 0.15f}, {"dt_proj.bias", -4.5f, -2},
        {"dt_bias", -4.5f, -2}, {"A_log", 0, 2.8f}, {"mixer.D", 0.5f, 1.5f}, {"out_proj.weight", -0.05f, 0.05f},
        {"out_proj.bias", -0.1f, 0.1f}, {"lm_head.weight", -0.05f, 0.05f}};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) {
        size_t k = strlen(r[i].suffix);
        if (n >= k && !strcmp(name + n - k, r[i].suffix)) {
            *lo = r[i].lo, *hi = r[i].hi;
            return;
        }
    }
    *hi = 1.0f / sqrtf((float)D); // in_proj.weight
    *lo = -*hi;
}

char *qtk_mamba_config_json(const qtk_mamba_config *c, const char *key, const char *raw) {
    cJSON *o = cJSON_CreateObject();
    int m2 = c->arch == QTK_MAMBA2;
    cJSON_AddStringToObject(o, "model_type", m2 ? "mamba2" : "mamba");
    cJSON_AddNumberToObject(o, "hidden_size", c->d_model);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(o, "state_size", c->d_state);
    cJSON_AddNumberToObject(o, "conv_kernel", c->d_conv);
    cJSON_AddNumberToObject(o, "expand", c->d_inner / c->d_model);
    cJSON_AddBoolToObject(o, "use_bias", c->use_bias);
    cJSON_AddBoolToObject(o, "use_conv_bias", c->conv_bias);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied);
    cJSON_AddNumberToObject(o, "layer_norm_epsilon", c->eps);
    if (m2) {
        cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(o, "num_heads", c->n_heads);
        cJSON_AddNumberToObject(o, "n_groups", c->n_groups);
        cJSON_AddNumberToObject(o, "chunk_size", c->chunk_size);
        if (c->dt_min != 0.0f || isfinite(c->dt_max)) { // transformers' form of an infinite bound
            cJSON *lim = cJSON_AddArrayToObject(o, "time_step_limit");
            cJSON_AddItemToArray(lim, cJSON_CreateNumber(c->dt_min));
            if (isfinite(c->dt_max)) cJSON_AddItemToArray(lim, cJSON_CreateNumber(c->dt_max));
            else {
                cJSON *inf = cJSON_CreateObject();
                cJSON_AddStringToObject(inf, "__float__", "Infinity");
                cJSON_AddItemToArray(lim, inf);
            }
        }
    } else {
        cJSON_AddNumberToObject(o, "intermediate_size", c->d_inner);
        cJSON_AddNumberToObject(o, "time_step_rank", c->dt_rank);
    }
    if (key) cJSON_AddRawToObject(o, key, raw);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

qtk_status qtk_mamba_write_random(const char *dir, const qtk_mamba_config *c, uint64_t seed, const char *dtype) {
    qtk_dtype dt = !strcmp(dtype, "F16") ? QTK_F16 : !strcmp(dtype, "BF16") ? QTK_BF16 : QTK_F32;
    if (dt == QTK_F32 && strcmp(dtype, "F32")) return qtk_fail(QTK_ERR_ARG, "dtype %s (F32, F16 or BF16)", dtype);
    char p[4096];
    char *text = qtk_mamba_config_json(c, NULL, NULL);
    const int m2 = c->arch == QTK_MAMBA2;
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = text ? fopen(p, "w") : NULL;
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    free(text);
    if (!ok) return qtk_fail(QTK_ERR_IO, "%s: cannot write", p);
    // the tensors, by walking the model layout with a counting walker over a fake shard set
    const int64_t D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, V = c->vocab;
    const int64_t IN = qtk_mamba_in_proj_out(c), CD = qtk_mamba_conv_dim(c), H = c->n_heads, R = c->dt_rank;
    enum { MAXT = 4 + 14 * 1024 };
    if (c->n_layers > 1024) return qtk_fail(QTK_ERR_ARG, "more than 1024 layers");
    qtk_st_entry *ent = calloc(MAXT, sizeof *ent);
    int64_t(*shapes)[3] = calloc(MAXT, sizeof *shapes);
    char(*names)[96] = calloc(MAXT, sizeof *names);
    void **bufs = calloc(MAXT, sizeof *bufs);
    qtk_status st = ent && shapes && names && bufs ? QTK_OK : qtk_fail(QTK_ERR_NOMEM, "out of memory");
    int nt = 0;
    qtk_rng r;
    qtk_rng_seed(&r, seed, 0);
#define T(nd, a, b, cc, ...)                                                                                          \
    do {                                                                                                          \
        if (st != QTK_OK) break;                                                                                  \
        snprintf(names[nt], sizeof names[nt], __VA_ARGS__);                                                       \
        shapes[nt][0] = (a), shapes[nt][1] = (b), shapes[nt][2] = (cc);                                           \
        size_t n_ = (size_t)(a) * (size_t)(nd > 1 ? (b) : 1) * (size_t)(nd > 2 ? (cc) : 1);                       \
        float lo_, hi_;                                                                                           \
        range_for(names[nt], (int)D, &lo_, &hi_);                                                                 \
        void *buf_ = malloc(n_ * (dt == QTK_F32 ? 4 : 2));                                                        \
        if (!buf_) {                                                                                              \
            st = qtk_fail(QTK_ERR_NOMEM, "out of memory");                                                        \
            break;                                                                                                \
        }                                                                                                         \
        for (size_t i_ = 0; i_ < n_; i_++) {                                                                      \
            float v_ = qtk_rng_range(&r, lo_, hi_);                                                               \
            if (dt == QTK_F32) ((float *)buf_)[i_] = v_;                                                          \
            else ((uint16_t *)buf_)[i_] = dt == QTK_F16 ? qtk_f32_to_f16(v_) : qtk_f32_to_bf16(v_);               \
        }                                                                                                         \
        bufs[nt] = buf_;                                                                                          \
        ent[nt] = (qtk_st_entry){names[nt], dt, nd, shapes[nt], buf_};                                            \
        nt++;                                                                                                     \
    } while (0)
    T(2, V, D, 0, "backbone.embeddings.weight");
    T(1, D, 0, 0, "backbone.norm_f.weight");
    if (!c->tied) T(2, V, D, 0, "lm_head.weight");
    for (int l = 0; l < c->n_layers; l++) {
        T(1, D, 0, 0, "backbone.layers.%d.norm.weight", l);
        T(2, IN, D, 0, "backbone.layers.%d.mixer.in_proj.weight", l);
        if (c->use_bias) T(1, IN, 0, 0, "backbone.layers.%d.mixer.in_proj.bias", l);
        T(3, CD, 1, K, "backbone.layers.%d.mixer.conv1d.weight", l);
        if (c->conv_bias) T(1, CD, 0, 0, "backbone.layers.%d.mixer.conv1d.bias", l);
        T(2, D, E, 0, "backbone.layers.%d.mixer.out_proj.weight", l);
        if (c->use_bias) T(1, D, 0, 0, "backbone.layers.%d.mixer.out_proj.bias", l);
        if (!m2) {
            T(2, R + 2 * N, E, 0, "backbone.layers.%d.mixer.x_proj.weight", l);
            T(2, E, R, 0, "backbone.layers.%d.mixer.dt_proj.weight", l);
            T(1, E, 0, 0, "backbone.layers.%d.mixer.dt_proj.bias", l);
            T(2, E, N, 0, "backbone.layers.%d.mixer.A_log", l);
            T(1, E, 0, 0, "backbone.layers.%d.mixer.D", l);
        } else {
            T(1, H, 0, 0, "backbone.layers.%d.mixer.dt_bias", l);
            T(1, H, 0, 0, "backbone.layers.%d.mixer.A_log", l);
            T(1, H, 0, 0, "backbone.layers.%d.mixer.D", l);
            T(1, E, 0, 0, "backbone.layers.%d.mixer.norm.weight", l);
        }
    }
#undef T
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (st == QTK_OK) st = qtk_st_write(p, ent, (size_t)nt, NULL, 0);
    for (int i = 0; i < nt; i++) free(bufs[i]);
    free(bufs);
    free(names);
    free(shapes);
    free(ent);
    return st;
}
