// The two-pass parameter walker (params.h).
#include "params.h"

#include <stdio.h>
#include <string.h>

#include "tensor.h"

// the first of the '|'-separated names that the checkpoint holds, checked for shape and dtype
static qtk_status find(const qtk_st_shards *s, const char *names, int ndim, const int64_t *shape, const char **found,
                       const qtk_safetensors **in) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", names);
    const qtk_st_tensor *t = NULL;
    for (char *save, *tok = strtok_r(buf, "|", &save); tok && !t; tok = strtok_r(NULL, "|", &save))
        if ((t = qtk_st_shards_find(s, tok, in))) *found = names + (tok - buf);
    const char *path = s->n ? s->st[0].path : "checkpoint";
    char sh[128];
    if (!t)
        return qtk_fail(QTK_ERR_NOT_FOUND, "%s: missing tensor \"%s\" (expected shape %s)", path, names,
                        qtk_shape_str(ndim, shape, sh, sizeof sh));
    if (!qtk_dtype_is_float(t->dtype))
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected F32, F16 or BF16", (*in)->path, t->name,
                        qtk_dtype_name(t->dtype));
    return qtk_st_expect(*in, t->name, ndim, shape, NULL);
}

float *qtk_param_take(qtk_param_walker *w, const char *names, int ndim, const int64_t *shape, int present) {
    if (!present || w->st != QTK_OK) return NULL;
    size_t n = 1, a = w->align > 1 ? w->align : 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    const char *found = NULL;
    const qtk_safetensors *in = NULL;
    if ((w->st = find(w->src, names, ndim, shape, &found, &in)) != QTK_OK) return NULL;
    float *p = w->base ? w->base + w->used : NULL;
    w->used += (n + a - 1) / a * a;
    if (p) {
        char name[256];
        size_t len = strcspn(found, "|");
        snprintf(name, sizeof name, "%.*s", (int)len, found);
        w->st = qtk_st_read_f32(in, name, ndim, shape, p);
    }
    return w->st == QTK_OK ? p : NULL;
}

qtk_status qtk_param_alloc(qtk_param_walker *w, float **mem) {
    *mem = NULL;
    QTK_TRY(w->st);
    const char *path = w->src && w->src->n ? w->src->st[0].path : "checkpoint";
    if (w->used > SIZE_MAX / sizeof(float) || !(*mem = qtk_aligned_alloc((w->used ? w->used : 1) * sizeof(float))))
        return qtk_fail(QTK_ERR_NOMEM, "%s: %zu parameters do not fit in memory", path, w->used);
    w->base = *mem;
    w->used = 0;
    return QTK_OK;
}
