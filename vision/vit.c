// ViT / DeiT: checkpoint loading and the FP32 forward pass.
#include "vit.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/blas.h"
#include "../core/ops.h"
#include "../core/rng.h"
#include "../core/params.h"
#include "../core/safetensors.h"
#include "../core/scalar.h"
#include "../core/tensor.h"

static const struct {
    const char *name;
    int dim, heads;
    float crop_pct;
    int imagenet_norm; // else mean = std = 0.5
    int input_quant;
} presets[] = {
    {"deit_tiny_patch16_224", 192, 3, 0.875f, 1, 1},
    {"deit_small_patch16_224", 384, 6, 0.875f, 1, 1},
    {"deit_base_patch16_224", 768, 12, 0.875f, 1, 1},
    {"vit_small_patch16_224", 384, 6, 0.9f, 0, 0},
    {"vit_base_patch16_224", 768, 12, 0.9f, 0, 0},
};
#define N_PRESETS (int)(sizeof presets / sizeof *presets)

static void set_norm(qtk_vit_config *c, int imagenet) {
    const float im_mean[3] = {0.485f, 0.456f, 0.406f}, im_std[3] = {0.229f, 0.224f, 0.225f};
    for (int i = 0; i < 3; i++) {
        c->mean[i] = imagenet ? im_mean[i] : 0.5f;
        c->std[i] = imagenet ? im_std[i] : 0.5f;
    }
}

qtk_status qtk_vit_preset(const char *name, qtk_vit_config *cfg) {
    for (int i = 0; i < N_PRESETS; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        memset(cfg, 0, sizeof *cfg);
        snprintf(cfg->name, sizeof cfg->name, "%s", name);
        cfg->img_size = 224;
        cfg->patch = 16;
        cfg->in_chans = 3;
        cfg->dim = presets[i].dim;
        cfg->depth = 12;
        cfg->heads = presets[i].heads;
        cfg->mlp_hidden = 4 * presets[i].dim;
        cfg->n_classes = 1000;
        cfg->n_prefix = 1;
        cfg->ln_eps = 1e-6f;
        cfg->crop_pct = presets[i].crop_pct;
        snprintf(cfg->interpolation, sizeof cfg->interpolation, "bicubic");
        set_norm(cfg, presets[i].imagenet_norm);
        cfg->input_quant = presets[i].input_quant;
        return QTK_OK;
    }
    return qtk_fail(QTK_ERR_NOT_FOUND,
                    "unknown ViT preset \"%s\" (known: deit_tiny_patch16_224, deit_small_patch16_224, "
                    "deit_base_patch16_224, vit_small_patch16_224, vit_base_patch16_224; or give a JSON description)",
                    name);
}

// Applies a JSON description {"preset":..., "heads":..., ...} on top of cfg.
static qtk_status apply_json(qtk_vit_config *cfg, const char *json, const char *where) {
    cJSON *j = cJSON_Parse(json);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return qtk_fail(QTK_ERR_ARG, "%s: model description is neither a preset name nor a JSON object: %.80s", where,
                        json);
    }
    qtk_status st = QTK_OK;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "preset");
    if (pre) {
        if (!cJSON_IsString(pre)) st = qtk_fail(QTK_ERR_ARG, "%s: \"preset\" must be a string", where);
        else st = qtk_vit_preset(pre->valuestring, cfg);
    }
    for (const cJSON *it = j->child; it && st == QTK_OK; it = it->next) {
        const char *k = it->string;
        if (!strcmp(k, "preset")) continue;
        if (!strcmp(k, "heads") || !strcmp(k, "input_quant")) {
            if (!cJSON_IsNumber(it) && !cJSON_IsBool(it)) st = qtk_fail(QTK_ERR_ARG, "%s: \"%s\" must be a number", where, k);
            else if (!strcmp(k, "heads")) cfg->heads = it->valueint;
            else cfg->input_quant = cJSON_IsBool(it) ? cJSON_IsTrue(it) : it->valueint != 0;
        } else if (!strcmp(k, "crop_pct") || !strcmp(k, "ln_eps")) {
            if (!cJSON_IsNumber(it)) st = qtk_fail(QTK_ERR_ARG, "%s: \"%s\" must be a number", where, k);
            else if (!strcmp(k, "crop_pct")) cfg->crop_pct = (float)it->valuedouble;
            else cfg->ln_eps = (float)it->valuedouble;
        } else if (!strcmp(k, "name") || !strcmp(k, "interpolation")) {
            if (!cJSON_IsString(it)) st = qtk_fail(QTK_ERR_ARG, "%s: \"%s\" must be a string", where, k);
            else if (!strcmp(k, "name")) snprintf(cfg->name, sizeof cfg->name, "%s", it->valuestring);
            else snprintf(cfg->interpolation, sizeof cfg->interpolation, "%s", it->valuestring);
        } else if (!strcmp(k, "mean") || !strcmp(k, "std")) {
            float *dst = !strcmp(k, "mean") ? cfg->mean : cfg->std;
            if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
                st = qtk_fail(QTK_ERR_ARG, "%s: \"%s\" must be an array of 3 numbers", where, k);
            else
                for (int i = 0; i < 3; i++) dst[i] = (float)cJSON_GetArrayItem(it, i)->valuedouble;
        } else {
            st = qtk_fail(QTK_ERR_ARG, "%s: unknown key \"%s\" in the model description (expected preset, name, "
                          "heads, crop_pct, interpolation, mean, std, input_quant, ln_eps)", where, k);
        }
    }
    cJSON_Delete(j);
    return st;
}

// Shape of a tensor that must exist, or an error naming the key.
static qtk_status need(const qtk_safetensors *st, const char *key, int ndim, const qtk_st_tensor **out) {
    const qtk_st_tensor *t = qtk_st_find(st, key);
    if (!t) return qtk_fail(QTK_ERR_NOT_FOUND, "%s: missing tensor \"%s\" (not a timm VisionTransformer checkpoint?)",
                            st->path, key);
    if (t->ndim != ndim) {
        char sh[128];
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\" has shape %s, expected %d dimensions", st->path, key,
                        qtk_shape_str(t->ndim, t->shape, sh, sizeof sh), ndim);
    }
    *out = t;
    return QTK_OK;
}

static qtk_status infer_shapes(const qtk_safetensors *st, qtk_vit_config *c) {
    const qtk_st_tensor *t;
    QTK_TRY(need(st, "patch_embed.proj.weight", 4, &t));
    if (t->shape[2] != t->shape[3])
        return qtk_fail(QTK_ERR_UNSUPPORTED, "%s: patch_embed.proj.weight has non-square patches %lldx%lld", st->path,
                        (long long)t->shape[2], (long long)t->shape[3]);
    c->dim = (int)t->shape[0];
    c->in_chans = (int)t->shape[1];
    c->patch = (int)t->shape[2];
    c->n_prefix = qtk_st_find(st, "dist_token") ? 2 : 1;
    QTK_TRY(need(st, "pos_embed", 3, &t));
    long long grid2 = t->shape[1] - c->n_prefix;
    long long g = (long long)llround(sqrt((double)(grid2 > 0 ? grid2 : 0)));
    if (grid2 <= 0 || g * g != grid2)
        return qtk_fail(QTK_ERR_FORMAT, "%s: pos_embed has %lld tokens; with %d prefix token(s) that is not a square "
                        "grid of patches", st->path, (long long)t->shape[1], c->n_prefix);
    c->img_size = (int)g * c->patch;
    c->depth = 0;
    char key[96];
    for (;;) {
        snprintf(key, sizeof key, "blocks.%d.norm1.weight", c->depth);
        if (!qtk_st_find(st, key)) break;
        c->depth++;
    }
    if (c->depth == 0) return qtk_fail(QTK_ERR_NOT_FOUND, "%s: no transformer blocks (missing \"blocks.0.norm1.weight\")", st->path);
    QTK_TRY(need(st, "blocks.0.mlp.fc1.weight", 2, &t));
    c->mlp_hidden = (int)t->shape[0];
    QTK_TRY(need(st, "head.weight", 2, &t));
    c->n_classes = (int)t->shape[0];
    return QTK_OK;
}

// Every key must belong to the model qtk implements: anything else (fc_norm,
// LayerScale, q/k norms, a Swin or ResNet checkpoint) would silently change the math.
static qtk_status check_known_keys(const qtk_safetensors *st, const qtk_vit_config *c) {
    static const char *top[] = {"cls_token", "dist_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                "norm.weight", "norm.bias", "head.weight", "head.bias", "head_dist.weight", "head_dist.bias"};
    static const char *blk[] = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                                "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                                "mlp.fc2.weight", "mlp.fc2.bias"};
    for (size_t i = 0; i < st->n_tensors; i++) {
        const char *k = st->tensors[i].name;
        int ok = 0;
        for (size_t j = 0; j < sizeof top / sizeof *top && !ok; j++) ok = !strcmp(k, top[j]);
        int b, n = 0;
        if (!ok && sscanf(k, "blocks.%d.%n", &b, &n) == 1 && n > 0 && b >= 0 && b < c->depth)
            for (size_t j = 0; j < sizeof blk / sizeof *blk && !ok; j++) ok = !strcmp(k + n, blk[j]);
        if (!ok)
            return qtk_fail(QTK_ERR_UNSUPPORTED, "%s: tensor \"%s\" is not part of a plain timm VisionTransformer / DeiT "
                            "(qtk supports cls/dist token, pre-norm blocks, token pooling)", st->path, k);
    }
    return QTK_OK;
}

// The parameter list (core/params.h): the counting pass checks every tensor, the second carves and reads.
static qtk_status walk(qtk_param_walker *w, qtk_vit *m) {
    const qtk_vit_config *c = &m->cfg;
    const int64_t C = c->dim, M = c->mlp_hidden, T = m->n_tokens, NC = c->n_classes;
#define TAKE(key, ...) qtk_param_take(w, key, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}, 1)
    m->patch_w = TAKE("patch_embed.proj.weight", C, c->in_chans, c->patch, c->patch);
    m->patch_b = TAKE("patch_embed.proj.bias", C);
    m->cls_token = TAKE("cls_token", 1, 1, C);
    if (c->n_prefix == 2) m->dist_token = TAKE("dist_token", 1, 1, C);
    m->pos_embed = TAKE("pos_embed", 1, T, C);
    for (int i = 0; i < c->depth; i++) {
        qtk_vit_block *b = &m->blocks[i];
        char k[96];
#define BTAKE(name, ...) (snprintf(k, sizeof k, "blocks.%d." name, i), TAKE(k, __VA_ARGS__))
        b->ln1_w = BTAKE("norm1.weight", C);
        b->ln1_b = BTAKE("norm1.bias", C);
        b->qkv_w = BTAKE("attn.qkv.weight", 3 * C, C);
        b->qkv_b = BTAKE("attn.qkv.bias", 3 * C);
        b->proj_w = BTAKE("attn.proj.weight", C, C);
        b->proj_b = BTAKE("attn.proj.bias", C);
        b->ln2_w = BTAKE("norm2.weight", C);
        b->ln2_b = BTAKE("norm2.bias", C);
        b->fc1_w = BTAKE("mlp.fc1.weight", M, C);
        b->fc1_b = BTAKE("mlp.fc1.bias", M);
        b->fc2_w = BTAKE("mlp.fc2.weight", C, M);
        b->fc2_b = BTAKE("mlp.fc2.bias", C);
#undef BTAKE
    }
    m->norm_w = TAKE("norm.weight", C);
    m->norm_b = TAKE("norm.bias", C);
    m->head_w = TAKE("head.weight", NC, C);
    m->head_b = TAKE("head.bias", NC);
    if (c->n_prefix == 2) {
        m->head_dist_w = TAKE("head_dist.weight", NC, C);
        m->head_dist_b = TAKE("head_dist.bias", NC);
    }
#undef TAKE
    return w->st;
}

qtk_status qtk_vit_load(qtk_vit *m, const char *path, const char *desc) {
    memset(m, 0, sizeof *m);
    qtk_st_shards s;
    QTK_TRY(qtk_st_shards_open(&s, NULL, path));
    const qtk_safetensors *st = &s.st[0];
    qtk_vit_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "custom");
    c.ln_eps = 1e-6f;
    c.crop_pct = 0.9f;
    snprintf(c.interpolation, sizeof c.interpolation, "bicubic");
    set_norm(&c, 0);
    qtk_status r = QTK_OK;
    const char *meta = qtk_st_meta(st, "qtk.vit");
    if (meta) r = apply_json(&c, meta, path);
    if (r == QTK_OK && desc && *desc) r = desc[0] == '{' ? apply_json(&c, desc, "model description") : qtk_vit_preset(desc, &c);
    qtk_vit_config want = c; // what the description claims
    if (r == QTK_OK) r = infer_shapes(st, &c);
    if (r == QTK_OK && want.dim && (want.dim != c.dim || want.depth != c.depth || want.img_size != c.img_size ||
                                    want.patch != c.patch || want.n_classes != c.n_classes ||
                                    want.mlp_hidden != c.mlp_hidden || want.in_chans != c.in_chans))
        r = qtk_fail(QTK_ERR_FORMAT, "%s: checkpoint does not match preset %s: it has dim %d, depth %d, img %d, patch %d, "
                     "mlp %d, %d classes, %d channels; the preset expects %d, %d, %d, %d, %d, %d, %d",
                     path, want.name, c.dim, c.depth, c.img_size, c.patch, c.mlp_hidden, c.n_classes, c.in_chans,
                     want.dim, want.depth, want.img_size, want.patch, want.mlp_hidden, want.n_classes, want.in_chans);
    if (r == QTK_OK && c.heads == 0) c.heads = c.dim % 64 == 0 ? c.dim / 64 : 1;
    if (r == QTK_OK && (c.heads <= 0 || c.dim % c.heads != 0))
        r = qtk_fail(QTK_ERR_ARG, "%s: %d heads do not divide dim %d", path, c.heads, c.dim);
    if (r == QTK_OK) r = check_known_keys(st, &c);
    if (r != QTK_OK) {
        qtk_st_shards_close(&s);
        return r;
    }
    m->cfg = c;
    m->grid = c.img_size / c.patch;
    m->n_tokens = c.n_prefix + m->grid * m->grid;
    m->blocks = calloc((size_t)c.depth, sizeof *m->blocks);
    if (!m->blocks) {
        qtk_st_shards_close(&s);
        return qtk_fail(QTK_ERR_NOMEM, "cannot allocate %d blocks for %s", c.depth, path);
    }
    snprintf(m->source, sizeof m->source, "%s", path);
    qtk_param_walker w = {.src = &s, .align = 1};
    walk(&w, m); // every tensor's presence, shape and dtype, and the count
    m->n_params = w.used;
    r = qtk_param_alloc(&w, &m->mem);
    if (r == QTK_OK) r = walk(&w, m);
    qtk_st_shards_close(&s);
    if (r != QTK_OK) qtk_vit_free(m);
    return r;
}

void qtk_vit_free(qtk_vit *m) {
    qtk_aligned_free(m->mem);
    free(m->blocks);
    memset(m, 0, sizeof *m);
}

qtk_status qtk_vit_plan_init(qtk_vit_plan *p, const qtk_vit *m, int B) {
    memset(p, 0, sizeof *p);
    if (B < 1) return qtk_fail(QTK_ERR_ARG, "batch size %d < 1", B);
    const qtk_vit_config *c = &m->cfg;
    size_t T = (size_t)m->n_tokens, C = (size_t)c->dim, G2 = (size_t)(m->grid * m->grid);
    size_t K = (size_t)(c->in_chans * c->patch * c->patch), b = (size_t)B;
    size_t img = (size_t)c->in_chans * c->img_size * c->img_size;
    size_t sizes[] = {b * T * C, b * T * C, b * T * 3 * C, b * (size_t)c->heads * T * T, b * T * C,
                      b * T * (size_t)c->mlp_hidden, b * G2 * K, b * (size_t)c->n_prefix * C, b * G2 * C, T * C,
                      b * img};
    enum { NBUF = sizeof sizes / sizeof *sizes };
    size_t total = 0;
    for (int i = 0; i < NBUF; i++) total += (sizes[i] + 15) / 16 * 16; // keep each buffer 64-byte aligned
    p->mem = qtk_aligned_alloc(total * sizeof(float));
    if (!p->mem) return qtk_fail(QTK_ERR_NOMEM, "cannot allocate %.1f MiB of activations for batch %d",
                                 (double)total * 4 / 1048576.0, B);
    float **dst[NBUF] = {&p->x, &p->h, &p->qkv, &p->att, &p->ctx, &p->mlp, &p->cols, &p->feat, &p->patch, &p->pos, &p->img};
    float *q = p->mem;
    for (int i = 0; i < NBUF; i++) {
        *dst[i] = q;
        q += (sizes[i] + 15) / 16 * 16;
    }
    p->B = B;
    return QTK_OK;
}

void qtk_vit_plan_free(qtk_vit_plan *p) {
    qtk_aligned_free(p->mem);
    memset(p, 0, sizeof *p);
}

// y = x W^T + b, x (rows, K), W (N, K): one sgemm, then the bias.
static void linear(const float *x, const float *W, const float *bias, float *y, size_t rows, size_t N, size_t K) {
    qtk_sgemm(false, true, (int)rows, (int)N, (int)K, 1.0f, x, (int)K, W, (int)K, 0.0f, y, (int)N);
    if (!bias) return;
#pragma omp parallel for schedule(static) if (rows * N >= 16384)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < N; j++) y[r * N + j] += bias[j];
}

// Attention in three phases so that the scores and the probabilities can be
// observed and quantized as whole tensors between them. Many small products:
// one OpenBLAS thread each, OpenMP across (image, head).
static void attn_scores(const qtk_vit *m, qtk_vit_plan *p, int B) {
    const int T = m->n_tokens, C = m->cfg.dim, H = m->cfg.heads, d = C / H;
    // attn = (q @ k.transpose(-2, -1)) * self.scale  (the reference scales after the product)
    const float scale = 1.0f / sqrtf((float)d);
    qtk_blas_single_thread();
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *q = p->qkv + (size_t)b * T * 3 * C + (size_t)h * d, *k = q + C;
        float *S = p->att + (size_t)bh * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, 1.0f, q, 3 * C, k, 3 * C, 0.0f, S, T);
        for (size_t i = 0; i < (size_t)T * T; i++) S[i] *= scale;
    }
}

static void attn_context(const qtk_vit *m, qtk_vit_plan *p, int B) {
    const int T = m->n_tokens, C = m->cfg.dim, H = m->cfg.heads, d = C / H;
    qtk_blas_single_thread();
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *v = p->qkv + (size_t)b * T * 3 * C + 2 * (size_t)C + (size_t)h * d;
        // ctx[:, h*d:(h+1)*d] = P @ v
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, T, 1.0f, p->att + (size_t)bh * T * T, T, v,
                    3 * C, 0.0f, p->ctx + (size_t)b * T * C + (size_t)h * d, C);
    }
}

// Hook helpers: without hooks each is a no-op (or the float path).
#define ACT(point, buf, nd, ...)                                                                                       \
    do {                                                                                                               \
        if (hk && hk->act) {                                                                                           \
            int64_t shp_[] = {__VA_ARGS__};                                                                            \
            QTK_TRY(hk->act(hk->ctx, (point), (buf), (nd), shp_));                                                     \
        }                                                                                                              \
    } while (0)

static const float *weight_of(const qtk_vit_hooks *hk, int point, const float *w) {
    const float *q = hk && hk->weight ? hk->weight(hk->ctx, point) : NULL;
    return q ? q : w;
}

static void norm(const qtk_vit_hooks *hk, int ln, const float *x, float *y, size_t rows, size_t C, const float *w,
                 const float *b, float eps) {
    if (!(hk && hk->layernorm && hk->layernorm(hk->ctx, ln, x, y, rows, C, w, b))) qtk_op_layernorm(x, y, rows, C, w, b, eps, NULL);
}

// The forward in three parts so that the search can start from a cached
// block input: embed (images -> x before block 0), blocks [from, to), head.
static qtk_status fwd_embed(const qtk_vit *m, qtk_vit_plan *p, const float *images, int B, const qtk_vit_hooks *hk) {
    const qtk_vit_config *c = &m->cfg;
    const size_t C = (size_t)c->dim, T = (size_t)m->n_tokens, NP = (size_t)c->n_prefix;
    const size_t P = (size_t)c->patch, G = (size_t)m->grid, CH = (size_t)c->in_chans, S = (size_t)c->img_size;
    const size_t K = CH * P * P, rows = (size_t)B * T, G2 = G * G;
    const float *src = images;
    if (hk) {
        // x = self.qact_input(x)  (the hook quantizes for DeiT, observes or does nothing otherwise)
        memcpy(p->img, images, (size_t)B * CH * S * S * sizeof(float));
        ACT(QTK_VIT_P_INPUT, p->img, 4, B, (int64_t)CH, (int64_t)S, (int64_t)S);
        src = p->img;
    }
    // patch embedding as im2col + one GEMM: cols[b, gy*G+gx, ch*P*P + ky*P + kx]
#pragma omp parallel for collapse(2) schedule(static)
    for (size_t b = 0; b < (size_t)B; b++)
        for (size_t g = 0; g < G2; g++) {
            size_t gy = g / G, gx = g % G;
            float *col = p->cols + (b * G2 + g) * K;
            for (size_t ch = 0; ch < CH; ch++)
                for (size_t ky = 0; ky < P; ky++)
                    memcpy(col + (ch * P + ky) * P, src + ((b * CH + ch) * S + gy * P + ky) * S + gx * P, P * sizeof(float));
        }
    linear(p->cols, weight_of(hk, QTK_VIT_P_PATCH_W, m->patch_w), m->patch_b, p->patch, (size_t)B * G2, C, K);
    ACT(QTK_VIT_P_PATCH_OUT, p->patch, 3, B, (int64_t)G2, (int64_t)C);
    // x = cat(cls_token, [dist_token,] patches)
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t b = r / T, t = r % T;
        const float *srcr = t == 0 ? m->cls_token : (t == 1 && NP == 2) ? m->dist_token : p->patch + (b * G2 + t - NP) * C;
        memcpy(p->x + r * C, srcr, C * sizeof(float));
    }
    ACT(QTK_VIT_P_CLS_CONCAT, p->x, 3, B, (int64_t)T, (int64_t)C);
    // x = x + pos_embed (the parameter itself has a quantizer)
    memcpy(p->pos, m->pos_embed, T * C * sizeof(float));
    ACT(QTK_VIT_P_POS, p->pos, 3, 1, (int64_t)T, (int64_t)C);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < C; i++) p->x[r * C + i] += p->pos[(r % T) * C + i];
    ACT(QTK_VIT_P_EMBED_OUT, p->x, 3, B, (int64_t)T, (int64_t)C);

    return QTK_OK;
}

static qtk_status fwd_blocks(const qtk_vit *m, qtk_vit_plan *p, int B, int from, int to, const qtk_vit_hooks *hk) {
    const qtk_vit_config *c = &m->cfg;
    const size_t C = (size_t)c->dim, T = (size_t)m->n_tokens, M = (size_t)c->mlp_hidden, H = (size_t)c->heads;
    const size_t rows = (size_t)B * T;
    for (int l = from; l < to; l++) {
        const qtk_vit_block *bl = &m->blocks[l];
        const int pb = QTK_VIT_P_BLOCK0 + l * QTK_VIT_PB;
        // x = x + proj(attn(norm1(x)))
        norm(hk, 2 * l, p->x, p->h, rows, C, bl->ln1_w, bl->ln1_b, c->ln_eps);
        ACT(pb + QTK_VIT_B_NORM1_OUT, p->h, 3, B, (int64_t)T, (int64_t)C);
        linear(p->h, weight_of(hk, pb + QTK_VIT_B_QKV_W, bl->qkv_w), bl->qkv_b, p->qkv, rows, 3 * C, C);
        ACT(pb + QTK_VIT_B_QKV_OUT, p->qkv, 3, B, (int64_t)T, (int64_t)(3 * C));
        attn_scores(m, p, B);
        ACT(pb + QTK_VIT_B_SCORES, p->att, 4, B, (int64_t)H, (int64_t)T, (int64_t)T);
        qtk_op_softmax(p->att, (size_t)B * H * T, T, NULL);
        ACT(pb + QTK_VIT_B_SOFTMAX, p->att, 4, B, (int64_t)H, (int64_t)T, (int64_t)T);
        attn_context(m, p, B);
        ACT(pb + QTK_VIT_B_CONTEXT, p->ctx, 3, B, (int64_t)T, (int64_t)C);
        linear(p->ctx, weight_of(hk, pb + QTK_VIT_B_PROJ_W, bl->proj_w), bl->proj_b, p->h, rows, C, C);
        ACT(pb + QTK_VIT_B_PROJ_OUT, p->h, 3, B, (int64_t)T, (int64_t)C);
        qtk_op_residual(p->x, p->h, rows * C, C, NULL, NULL);
        ACT(pb + QTK_VIT_B_RESID1, p->x, 3, B, (int64_t)T, (int64_t)C);
        // x = x + fc2(gelu(fc1(norm2(x))))
        norm(hk, 2 * l + 1, p->x, p->h, rows, C, bl->ln2_w, bl->ln2_b, c->ln_eps);
        ACT(pb + QTK_VIT_B_NORM2_OUT, p->h, 3, B, (int64_t)T, (int64_t)C);
        linear(p->h, weight_of(hk, pb + QTK_VIT_B_FC1_W, bl->fc1_w), bl->fc1_b, p->mlp, rows, M, C);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < rows * M; i++) p->mlp[i] = qtk_gelu(p->mlp[i]); // nn.GELU(), the erf form
        ACT(pb + QTK_VIT_B_ACT_OUT, p->mlp, 3, B, (int64_t)T, (int64_t)M);
        linear(p->mlp, weight_of(hk, pb + QTK_VIT_B_FC2_W, bl->fc2_w), bl->fc2_b, p->h, rows, C, M);
        ACT(pb + QTK_VIT_B_FC2_OUT, p->h, 3, B, (int64_t)T, (int64_t)C);
        qtk_op_residual(p->x, p->h, rows * C, C, NULL, NULL);
        ACT(pb + QTK_VIT_B_RESID2, p->x, 3, B, (int64_t)T, (int64_t)C);
    }
    return QTK_OK;
}

static qtk_status fwd_head(const qtk_vit *m, qtk_vit_plan *p, int B, float *logits, const qtk_vit_hooks *hk) {
    const qtk_vit_config *c = &m->cfg;
    const size_t C = (size_t)c->dim, T = (size_t)m->n_tokens, NP = (size_t)c->n_prefix;
    // final norm on the prefix tokens (all that token pooling reads; LayerNorm is per token)
    const int hb = qtk_vit_head_base(m);
    for (int b = 0; b < B; b++)
        norm(hk, 2 * c->depth, p->x + (size_t)b * T * C, p->feat + (size_t)b * NP * C, NP, C, m->norm_w, m->norm_b,
             c->ln_eps);
    ACT(hb + QTK_VIT_H_NORM_OUT, p->feat, 3, B, (int64_t)NP, (int64_t)C);
    const size_t NC = (size_t)c->n_classes;
    qtk_sgemm(false, true, B, (int)NC, (int)C, 1.0f, p->feat, (int)(NP * C), weight_of(hk, hb + QTK_VIT_H_HEAD_W, m->head_w),
              (int)C, 0.0f, logits, (int)NC);
    for (int b = 0; b < B; b++)
        for (size_t j = 0; j < NC; j++) logits[b * NC + j] += m->head_b[j];
    if (NP == 2) {
        // distilled DeiT at eval: (head(x[:, 0]) + head_dist(x[:, 1])) / 2
        float *ld = p->h; // free now; B*NC <= B*T*C
        qtk_sgemm(false, true, B, (int)NC, (int)C, 1.0f, p->feat + C, (int)(NP * C), m->head_dist_w, (int)C, 0.0f, ld,
                  (int)NC);
        for (int b = 0; b < B; b++)
            for (size_t j = 0; j < NC; j++)
                logits[b * NC + j] = (logits[b * NC + j] + (ld[b * NC + j] + m->head_dist_b[j])) / 2.0f;
    }
    ACT(hb + QTK_VIT_H_HEAD_OUT, logits, 2, B, (int64_t)NC);
    return QTK_OK;
}

static qtk_status check_range(const qtk_vit *m, const qtk_vit_plan *p, int B, int block) {
    if (B < 1 || B > p->B) return qtk_fail(QTK_ERR_ARG, "batch of %d images, plan is for at most %d", B, p->B);
    if (block < 0 || block > m->cfg.depth)
        return qtk_fail(QTK_ERR_ARG, "block %d out of range 0..%d", block, m->cfg.depth);
    return QTK_OK;
}

qtk_status qtk_vit_forward_hooked(const qtk_vit *m, qtk_vit_plan *p, const float *images, int B, float *logits,
                                  const qtk_vit_hooks *hk) {
    QTK_TRY(check_range(m, p, B, 0));
    QTK_TRY(fwd_embed(m, p, images, B, hk));
    QTK_TRY(fwd_blocks(m, p, B, 0, m->cfg.depth, hk));
    return fwd_head(m, p, B, logits, hk);
}

qtk_status qtk_vit_block_input_hooked(const qtk_vit *m, qtk_vit_plan *p, const float *images, int B, int block,
                                      float *x_out, const qtk_vit_hooks *hk) {
    QTK_TRY(check_range(m, p, B, block));
    QTK_TRY(fwd_embed(m, p, images, B, hk));
    QTK_TRY(fwd_blocks(m, p, B, 0, block, hk));
    memcpy(x_out, p->x, (size_t)B * m->n_tokens * m->cfg.dim * sizeof(float));
    return QTK_OK;
}

qtk_status qtk_vit_forward_from_hooked(const qtk_vit *m, qtk_vit_plan *p, const float *x_in, int B, int block,
                                       float *logits, const qtk_vit_hooks *hk) {
    QTK_TRY(check_range(m, p, B, block));
    memcpy(p->x, x_in, (size_t)B * m->n_tokens * m->cfg.dim * sizeof(float));
    QTK_TRY(fwd_blocks(m, p, B, block, m->cfg.depth, hk));
    return fwd_head(m, p, B, logits, hk);
}
#undef ACT

qtk_status qtk_vit_forward(const qtk_vit *m, qtk_vit_plan *p, const float *images, int B, float *logits) {
    return qtk_vit_forward_hooked(m, p, images, B, logits, NULL);
}

double qtk_vit_gemm_flops(const qtk_vit *m) {
    const qtk_vit_config *c = &m->cfg;
    double C = c->dim, T = m->n_tokens, M = c->mlp_hidden, G2 = (double)m->grid * m->grid;
    double K = (double)c->in_chans * c->patch * c->patch, d = C / c->heads;
    double blk = 2 * T * C * 3 * C + 2 * 2 * c->heads * T * T * d + 2 * T * C * C + 2 * 2 * T * C * M;
    return 2 * G2 * C * K + c->depth * blk + 2.0 * c->n_prefix * C * c->n_classes;
}

// Random weights (uniform, PCG32 from seed) with the shapes of cfg: for benchmarks, tests and demos.
qtk_status qtk_vit_write_random(const char *path, const qtk_vit_config *c, uint64_t seed) {
    size_t C = (size_t)c->dim, M = (size_t)c->mlp_hidden, T = (size_t)(c->img_size / c->patch);
    T = T * T + 1;
    if (c->dim <= 0 || c->depth <= 0 || c->patch <= 0 || c->img_size % c->patch != 0 || c->in_chans <= 0 ||
        c->mlp_hidden <= 0 || c->n_classes <= 0)
        return qtk_fail(QTK_ERR_ARG, "cannot write a random ViT: invalid configuration");
    size_t maxt = 8 + 12 * (size_t)c->depth;
    char (*names)[64] = calloc(maxt, sizeof *names);
    int64_t (*shapes)[4] = calloc(maxt, sizeof *shapes);
    qtk_st_entry *e = calloc(maxt, sizeof *e);
    int n = 0;
    qtk_rng r;
    qtk_rng_seed(&r, seed, 0);
    if (!names || !shapes || !e) {
        free(names);
        free(shapes);
        free(e);
        return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
#define ADD(nm, nd, ...)                                                                                               \
    do {                                                                                                               \
        float lim_ = strstr(nm, "weight") && nd >= 2 ? 0.035f : strstr(nm, "norm") && strstr(nm, "weight") ? 1.0f : 0.05f; \
        int64_t s_[] = {__VA_ARGS__};                                                                                  \
        snprintf(names[n], 64, "%s", nm);                                                                              \
        int64_t k_ = 1;                                                                                                \
        for (int d_ = 0; d_ < nd; d_++) k_ *= shapes[n][d_] = s_[d_];                                                  \
        float *v_ = malloc((size_t)(k_ ? k_ : 1) * sizeof *v_);                                                        \
        for (int64_t i_ = 0; v_ && i_ < k_; i_++) v_[i_] = qtk_rng_range(&r, -lim_, lim_);                             \
        e[n] = (qtk_st_entry){names[n], QTK_F32, nd, shapes[n], v_};                                                   \
        n++;                                                                                                           \
    } while (0)
    ADD("cls_token", 3, 1, 1, (int64_t)C);
    ADD("pos_embed", 3, 1, (int64_t)T, (int64_t)C);
    ADD("patch_embed.proj.weight", 4, (int64_t)C, c->in_chans, c->patch, c->patch);
    ADD("patch_embed.proj.bias", 1, (int64_t)C);
    for (int b = 0; b < c->depth; b++) {
        char k[64];
        const char *fields[] = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                                "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                                "mlp.fc2.weight", "mlp.fc2.bias"};
        int64_t rows[] = {(int64_t)C, (int64_t)C, 3 * (int64_t)C, 3 * (int64_t)C, (int64_t)C, (int64_t)C,
                          (int64_t)C, (int64_t)C, (int64_t)M, (int64_t)M, (int64_t)C, (int64_t)C};
        int64_t cols[] = {0, 0, (int64_t)C, 0, (int64_t)C, 0, 0, 0, (int64_t)C, 0, (int64_t)M, 0};
        for (int f = 0; f < 12; f++) {
            snprintf(k, sizeof k, "blocks.%d.%s", b, fields[f]);
            if (cols[f]) ADD(k, 2, rows[f], cols[f]);
            else ADD(k, 1, rows[f]);
        }
    }
    ADD("norm.weight", 1, (int64_t)C);
    ADD("norm.bias", 1, (int64_t)C);
    ADD("head.weight", 2, (int64_t)c->n_classes, (int64_t)C);
    ADD("head.bias", 1, (int64_t)c->n_classes);
#undef ADD
    qtk_status st = QTK_OK;
    for (int i = 0; i < n; i++)
        if (!e[i].data) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    char meta[160];
    snprintf(meta, sizeof meta, "{\"heads\": %d}", c->heads);
    const char *kv[1][2] = {{"qtk.vit", meta}};
    if (st == QTK_OK) st = qtk_st_write(path, e, (size_t)n, kv, 1);
    for (int i = 0; i < n; i++) free((void *)e[i].data);
    free(names);
    free(shapes);
    free(e);
    return st;
}

