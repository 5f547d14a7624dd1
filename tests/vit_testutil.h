// Shared by the ViT suites: regenerate the fixture models' weights and images
// exactly as tools/make_vit_fixtures.py does (PCG32, sorted tensor names).
#ifndef QTK_VIT_TESTUTIL_H
#define QTK_VIT_TESTUTIL_H

#include "testutil.h"

typedef struct {
    size_t n;
    qtk_st_entry *e;
    int64_t (*shapes)[8];
    char **names;
} ckpt;

static inline void ckpt_free(ckpt *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->names[i]);
        free((void *)c->e[i].data);
    }
    free(c->e);
    free(c->shapes);
    free(c->names);
}

// Regenerates a fixture model's parameters exactly as tools/make_vit_fixtures.py does.
static inline void make_ckpt(const cJSON *meta, ckpt *c) {
    const cJSON *params = cJSON_GetObjectItem(meta, "params"), *p;
    c->n = (size_t)cJSON_GetArraySize(params);
    c->e = calloc(c->n, sizeof *c->e);
    c->shapes = calloc(c->n, sizeof *c->shapes);
    c->names = calloc(c->n, sizeof *c->names);
    qtk_rng r;
    qtk_rng_seed(&r, (uint64_t)cJSON_GetObjectItem(meta, "seed")->valuedouble, 0);
    size_t i = 0;
    cJSON_ArrayForEach(p, params) {
        c->names[i] = strdup(cJSON_GetArrayItem(p, 0)->valuestring);
        const cJSON *sh = cJSON_GetArrayItem(p, 1);
        int nd = cJSON_GetArraySize(sh);
        int64_t n = 1;
        for (int d = 0; d < nd; d++) n *= c->shapes[i][d] = (int64_t)cJSON_GetArrayItem(sh, d)->valuedouble;
        float lo = (float)cJSON_GetArrayItem(p, 2)->valuedouble, hi = (float)cJSON_GetArrayItem(p, 3)->valuedouble;
        float *v = malloc((size_t)n * sizeof *v);
        for (int64_t k = 0; k < n; k++) v[k] = lo + (hi - lo) * qtk_rng_uniform(&r);
        c->e[i] = (qtk_st_entry){c->names[i], QTK_F32, nd, c->shapes[i], v};
        i++;
    }
}

// n values uniform in [-2, 2) from PCG32 stream `stream`, as the fixture scripts make images.
static inline float *make_images_n(const cJSON *meta, uint64_t stream, size_t n) {
    float *x = malloc(n * sizeof *x);
    qtk_rng r;
    qtk_rng_seed(&r, (uint64_t)cJSON_GetObjectItem(meta, "seed")->valuedouble, stream);
    for (size_t k = 0; k < n; k++) x[k] = -2.0f + 4.0f * qtk_rng_uniform(&r);
    return x;
}

static inline float *make_images(const cJSON *meta, size_t *n) {
    const cJSON *im = cJSON_GetObjectItem(meta, "images");
    *n = 1;
    for (int d = 0; d < 4; d++) *n *= (size_t)cJSON_GetArrayItem(im, d)->valuedouble;
    return make_images_n(meta, 1, *n);
}

// Writes the fixture model's checkpoint to path.
static inline void write_ckpt(const cJSON *meta, const char *path) {
    ckpt c;
    make_ckpt(meta, &c);
    ck_qtk(qtk_st_write(path, c.e, c.n, NULL, 0));
    ckpt_free(&c);
}


#endif
