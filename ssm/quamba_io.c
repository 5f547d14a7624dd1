// The Quamba checkpoint folder (docs/quamba.md): config.json (the model's HF config with a
// "quantization_config") and model.safetensors (int8 codes, fp16 embedding / norms / head, one F32 scale per
// tensor). One table of tensors serves the writer and the reader, so the two cannot drift apart.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/file.h"
#include "../core/hadamard.h"
#include "../core/safetensors.h"
#include "../core/tensor.h"
#include "quamba.h"
#include "quamba_internal.h"

typedef struct {
    char name[128];
    qtk_dtype dt;  // in the file: I8 codes, F16 values (float in memory), F32 scales
    int ndim;
    int64_t shape[3];
    void *data;    // int8_t * or float *
} qt;

// every tensor of q (t NULL: only counts them)
static int tensor_table(const qtk_quamba *q, qt *t) {
    const qtk_mamba_config *c = &q->cfg;
    const int64_t D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, R = c->dt_rank, V = c->vocab;
    int n = 0;
#define T(dtype, nd, a, b, cc, ptr, ...)                                                                               \
    do {                                                                                                           \
        if (t) {                                                                                                   \
            snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                                    \
            t[n].dt = dtype, t[n].ndim = nd, t[n].shape[0] = a, t[n].shape[1] = b, t[n].shape[2] = cc;             \
            t[n].data = (void *)(ptr);                                                                             \
        }                                                                                                          \
        n++;                                                                                                       \
    } while (0)
#define SCALE(ptr, ...) T(QTK_F32, 1, 1, 0, 0, ptr, __VA_ARGS__)
    T(QTK_F16, 2, V, D, 0, q->emb, "backbone.embeddings.weight");
    T(QTK_F16, 1, D, 0, 0, q->norm_f, "backbone.norm_f.weight");
    if (!c->tied) T(QTK_F16, 2, V, D, 0, q->lm_head, "lm_head.weight");
    static const char *act_tensor[QTK_MAMBA_QL] = {"in_proj.input_scale",  "in_proj.output_scale",
                                                   "x_proj.input_scale",   "x_proj.output_scale",
                                                   "dt_proj.output_scale", "out_proj.input_scale"};
    static const char *act_tensor2[QTK_QUAMBA2_NP] = {
        "in_proj.input_scale", "z_act.scale",      "x_conv_in.scale",  "B_conv_in.scale",
        "C_conv_in.scale",     "dt_act.scale",     "x_conv_out.scale", "B_conv_out.scale",
        "C_conv_out.scale",    "ssm_state_act.scale", "out_proj.input_scale"};
    const int64_t H = c->n_heads, IN = qtk_mamba_in_proj_out(c), CD = qtk_mamba_conv_dim(c);
    for (int l = 0; l < c->n_layers; l++) {
        const qtk_quamba_layer *y = &q->layers[l];
#define P "backbone.layers.%d."
        T(QTK_F16, 1, D, 0, 0, y->norm_w, P "norm.weight", l);
        if (c->arch == QTK_MAMBA2) {
            T(QTK_I8, 2, IN, D, 0, y->in_w, P "mixer.in_proj.weight", l);
            T(QTK_F32, 1, 5, 0, 0, y->in_ws5, P "mixer.in_proj.weight_scale", l); // z, x, B, C, dt
            T(QTK_I8, 3, CD, 1, K, y->conv_w, P "mixer.conv1d.weight", l);
            SCALE(&y->conv_ws, P "mixer.conv1d.weight_scale", l);
            SCALE(&y->conv_ws_bc[0], P "mixer.conv1d.weight_scale_B", l);
            SCALE(&y->conv_ws_bc[1], P "mixer.conv1d.weight_scale_C", l);
            T(QTK_I8, 1, CD, 0, 0, y->conv_b, P "mixer.conv1d.bias", l);
            SCALE(&y->conv_bs, P "mixer.conv1d.bias_scale", l);
            SCALE(&y->conv_bs_bc[0], P "mixer.conv1d.bias_scale_B", l);
            SCALE(&y->conv_bs_bc[1], P "mixer.conv1d.bias_scale_C", l);
            T(QTK_F16, 1, H, 0, 0, y->dt_bias, P "mixer.dt_bias", l);
            T(QTK_I8, 1, H, 0, 0, y->A_log, P "mixer.A_log", l);
            SCALE(&y->A_s, P "mixer.A_log_scale", l);
            T(QTK_I8, 1, H, 0, 0, y->Dq, P "mixer.D", l);
            SCALE(&y->D_s, P "mixer.D_scale", l);
            T(QTK_F16, 1, E, 0, 0, y->gnorm_w, P "mixer.norm.weight", l);
            T(QTK_I8, 2, D, E, 0, y->out_w, P "mixer.out_proj.weight", l);
            SCALE(&y->out_ws, P "mixer.out_proj.weight_scale", l);
            for (int p = 0; p < QTK_QUAMBA2_NP; p++) SCALE(&y->act[p], P "mixer.%s", l, act_tensor2[p]);
            continue;
        }
        T(QTK_I8, 2, 2 * E, D, 0, y->in_w, P "mixer.in_proj.weight", l);
        SCALE(&y->in_ws, P "mixer.in_proj.weight_scale", l);
        T(QTK_I8, 3, E, 1, K, y->conv_w, P "mixer.conv1d.weight", l);
        SCALE(&y->conv_ws, P "mixer.conv1d.weight_scale", l);
        T(QTK_I8, 1, E, 0, 0, y->conv_b, P "mixer.conv1d.bias", l);
        SCALE(&y->conv_bs, P "mixer.conv1d.bias_scale", l);
        T(QTK_I8, 2, R + 2 * N, E, 0, y->x_w, P "mixer.x_proj.weight", l);
        SCALE(&y->x_ws, P "mixer.x_proj.weight_scale", l);
        T(QTK_I8, 2, E, R, 0, y->dt_w, P "mixer.dt_proj.weight", l);
        SCALE(&y->dt_ws, P "mixer.dt_proj.weight_scale", l);
        T(QTK_I8, 1, E, 0, 0, y->dt_b, P "mixer.dt_proj.bias", l);
        SCALE(&y->dt_bs, P "mixer.dt_proj.bias_scale", l);
        T(QTK_I8, 2, E, N, 0, y->A_log, P "mixer.A_log", l);
        SCALE(&y->A_s, P "mixer.A_log_scale", l);
        T(QTK_I8, 1, E, 0, 0, y->Dq, P "mixer.D", l);
        SCALE(&y->D_s, P "mixer.D_scale", l);
        T(QTK_I8, 2, D, E, 0, y->out_w, P "mixer.out_proj.weight", l);
        SCALE(&y->out_ws, P "mixer.out_proj.weight_scale", l);
        for (int p = 0; p < QTK_MAMBA_QL; p++) SCALE(&y->act[p], P "mixer.%s", l, act_tensor[p]);
#undef P
    }
#undef SCALE
#undef T
    return n;
}

static size_t numel(const qt *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

// the "quantization_config" object (config.json) and the file's "qtk.quamba" metadata
static char *qconfig_json(const qtk_quamba *q) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format_version", QTK_QUAMBA_FORMAT);
    cJSON_AddStringToObject(o, "quant_method", "quamba");
    cJSON_AddStringToObject(o, "variant", qtk_quamba_variant_name(q->opts.variant));
    cJSON_AddStringToObject(o, "weights", "int8, symmetric, per tensor");
    cJSON_AddStringToObject(o, "activations", "int8, symmetric, per tensor, static");
    size_t m = 0;
    char had[160] = "none";
    if (qtk_quamba_uses_hadamard(q->opts.variant) && qtk_hadamard_supported((size_t)q->cfg.d_inner, &m)) {
        const size_t E = (size_t)q->cfg.d_inner;
        if (m > 1) snprintf(had, sizeof had, "H_%zu = H_%zu (x) Sylvester H_%zu on out_proj's input, fused into its weight", E, m, E / m);
        else snprintf(had, sizeof had, "Sylvester H_%zu on out_proj's input, fused into its weight", E);
    }
    cJSON_AddStringToObject(o, "hadamard", had);
    cJSON_AddNumberToObject(o, "percentile", qtk_quamba_uses_percentile(q->opts.variant) ? q->opts.alpha : 1.0);
    cJSON_AddStringToObject(o, "calibration", q->fingerprint);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static qtk_status write_text(const char *path, const char *text) {
    char tmp[4200];
    int fd = qtk_file_create_tmp(path, tmp, sizeof tmp);
    if (fd < 0) return qtk_fail(QTK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return qtk_fail(QTK_ERR_IO, "%s: cannot write", path);
    }
    return QTK_OK;
}

qtk_status qtk_quamba_save(const qtk_quamba *q, const char *dir) {
    if (q->fp)
        return qtk_fail(QTK_ERR_UNSUPPORTED, "quamba dynamic has no static scales to save: it quantizes at run time");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return qtk_fail(QTK_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    const int n = tensor_table(q, NULL);
    qt *t = calloc((size_t)n, sizeof *t);
    qtk_st_entry *e = calloc((size_t)n, sizeof *e);
    void **conv = calloc((size_t)n, sizeof *conv);
    char *qc = qconfig_json(q);
    qtk_status st = t && e && conv && qc ? QTK_OK : qtk_fail(QTK_ERR_NOMEM, "quamba save: out of memory");
    if (st == QTK_OK) tensor_table(q, t);
    for (int i = 0; st == QTK_OK && i < n; i++) {
        e[i] = (qtk_st_entry){t[i].name, t[i].dt, t[i].ndim, t[i].shape, t[i].data};
        if (t[i].dt == QTK_F16) { // float in memory, fp16 values: exact
            const size_t k = numel(&t[i]);
            if (!(conv[i] = malloc(k * 2))) st = qtk_fail(QTK_ERR_NOMEM, "quamba save: out of memory");
            else st = qtk_convert_from_f32(t[i].data, QTK_F16, conv[i], k);
            e[i].data = conv[i];
        }
    }
    char path[4200];
    const char *meta[1][2] = {{"qtk.quamba", qc}};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (st == QTK_OK) st = qtk_st_write(path, e, (size_t)n, meta, 1);
    if (st == QTK_OK) {
        char *cfg = qtk_mamba_config_json(&q->cfg, "quantization_config", qc);
        snprintf(path, sizeof path, "%s/config.json", dir);
        st = cfg ? write_text(path, cfg) : qtk_fail(QTK_ERR_NOMEM, "quamba save: out of memory");
        free(cfg);
    }
    for (int i = 0; conv && i < n; i++) free(conv[i]);
    free(conv), free(e), free(t), free(qc);
    return st;
}

// --- reading -------------------------------------------------------------------------------------------

static qtk_status read_config(const char *dir, qtk_quamba *q, char **text_out) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    QTK_TRY(qtk_file_read(path, "Quamba config", 16 << 20, &text, NULL));
    qtk_status st = qtk_mamba_config_parse(text, path, &q->cfg);
    cJSON *root = st == QTK_OK ? cJSON_Parse(text) : NULL;
    const cJSON *qc = root ? cJSON_GetObjectItemCaseSensitive(root, "quantization_config") : NULL;
    if (st == QTK_OK && !qc) st = qtk_fail(QTK_ERR_FORMAT, "%s: no quantization_config (not a quantized checkpoint)", path);
    const cJSON *v = qc ? cJSON_GetObjectItemCaseSensitive(qc, "format_version") : NULL;
    const cJSON *m = qc ? cJSON_GetObjectItemCaseSensitive(qc, "quant_method") : NULL;
    const cJSON *var = qc ? cJSON_GetObjectItemCaseSensitive(qc, "variant") : NULL;
    const cJSON *pct = qc ? cJSON_GetObjectItemCaseSensitive(qc, "percentile") : NULL;
    const cJSON *cal = qc ? cJSON_GetObjectItemCaseSensitive(qc, "calibration") : NULL;
    if (st == QTK_OK && !(cJSON_IsString(m) && !strcmp(m->valuestring, "quamba")))
        st = qtk_fail(QTK_ERR_FORMAT, "%s: quantization_config.quant_method is not \"quamba\"", path);
    if (st == QTK_OK && !(cJSON_IsNumber(v) && v->valuedouble == QTK_QUAMBA_FORMAT))
        st = cJSON_IsNumber(v) ? qtk_fail(QTK_ERR_FORMAT, "%s: quantization_config.format_version %g: this qtk reads "
                                          "version %d", path, v->valuedouble, QTK_QUAMBA_FORMAT)
                               : qtk_fail(QTK_ERR_FORMAT, "%s: quantization_config.format_version missing (this qtk "
                                          "reads version %d)", path, QTK_QUAMBA_FORMAT);
    qtk_quamba_opts_default(&q->opts);
    if (st == QTK_OK && !cJSON_IsString(var))
        st = qtk_fail(QTK_ERR_FORMAT, "%s: quantization_config.variant missing", path);
    if (st == QTK_OK && qtk_quamba_variant_parse(var->valuestring, &q->opts.variant) != QTK_OK)
        st = qtk_fail(QTK_ERR_FORMAT, "%s: %s", path, qtk_last_error());
    if (st == QTK_OK && q->opts.variant == QTK_QUAMBA_DYNAMIC)
        st = qtk_fail(QTK_ERR_FORMAT, "%s: a dynamic model has no saved form", path);
    if (st == QTK_OK && cJSON_IsNumber(pct)) q->opts.alpha = (float)pct->valuedouble;
    if (st == QTK_OK && cJSON_IsString(cal)) snprintf(q->fingerprint, sizeof q->fingerprint, "%s", cal->valuestring);
    cJSON_Delete(root);
    if (st == QTK_OK && text_out) *text_out = text;
    else free(text);
    return st;
}

int qtk_quamba_is_folder(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    if (qtk_file_read(path, "config", 16 << 20, &text, NULL) != QTK_OK) {
        qtk_clear_error();
        return 0;
    }
    cJSON *root = cJSON_Parse(text);
    const cJSON *qc = root ? cJSON_GetObjectItemCaseSensitive(root, "quantization_config") : NULL;
    const cJSON *m = qc ? cJSON_GetObjectItemCaseSensitive(qc, "quant_method") : NULL;
    int yes = cJSON_IsString(m) && !strcmp(m->valuestring, "quamba");
    cJSON_Delete(root);
    free(text);
    return yes;
}

// every tensor of q's table present in sf with its dtype and shape; t: the table (data pointers unused)
static qtk_status check_tensors(const qtk_safetensors *sf, const char *path, const qt *t, int n) {
    for (int i = 0; i < n; i++) {
        const qtk_st_tensor *ft;
        QTK_TRY(qtk_st_expect(sf, t[i].name, t[i].ndim, t[i].shape, &ft));
        if (ft->dtype != t[i].dt)
            return qtk_fail(QTK_ERR_FORMAT, "%s: tensor %s is %s, a Quamba checkpoint holds it as %s", path, t[i].name,
                            qtk_dtype_name(ft->dtype), qtk_dtype_name(t[i].dt));
    }
    return QTK_OK;
}

qtk_status qtk_quamba_load(qtk_quamba *q, const char *dir) {
    memset(q, 0, sizeof *q);
    qtk_status st = read_config(dir, q, NULL);
    if (st != QTK_OK) return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    qtk_safetensors sf;
    QTK_TRY(qtk_st_open(&sf, path));
    q->cfg.tied = qtk_st_find(&sf, "lm_head.weight") == NULL;
    // first every tensor's presence, dtype and shape (the table without storage): nothing is allocated for a
    // config.json the file cannot back
    qt *t = NULL;
    int n = 0;
    if (!(q->layers = calloc((size_t)q->cfg.n_layers, sizeof *q->layers))) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    if (st == QTK_OK) n = tensor_table(q, NULL);
    if (st == QTK_OK && !(t = calloc((size_t)n, sizeof *t))) st = qtk_fail(QTK_ERR_NOMEM, "quamba load: out of memory");
    if (st == QTK_OK) tensor_table(q, t), st = check_tensors(&sf, path, t, n);
    free(q->layers);
    q->layers = NULL;
    if (st == QTK_OK) st = quamba_alloc(q);
    if (st == QTK_OK) tensor_table(q, t);
    for (int i = 0; st == QTK_OK && i < n; i++) {
        const qtk_st_tensor *ft = qtk_st_find(&sf, t[i].name);
        const size_t k = numel(&t[i]);
        if (t[i].dt == QTK_I8) memcpy(t[i].data, ft->data, k);
        else st = qtk_st_read_f32(&sf, t[i].name, t[i].ndim, t[i].shape, t[i].data);
        for (size_t j = 0; st == QTK_OK && t[i].dt == QTK_F32 && j < k; j++) { // scales
            const float s = ((const float *)t[i].data)[j];
            if (!(isfinite(s) && s > 0.0f))
            {
                char at[32] = "";
                if (k > 1) snprintf(at, sizeof at, "[%zu]", j);
                st = qtk_fail(QTK_ERR_FORMAT, "%s: scale %s%s is %g: scales must be finite and positive", path, t[i].name,
                              at, s);
            }
        }
        if (st == QTK_OK && t[i].dt == QTK_F16)
            for (size_t j = 0; j < k; j++)
                if (!isfinite(((float *)t[i].data)[j])) {
                    st = qtk_fail(QTK_ERR_FORMAT, "%s: %s[%zu] is not finite", path, t[i].name, j);
                    break;
                }
    }
    free(t);
    qtk_st_close(&sf);
    if (st != QTK_OK) qtk_quamba_free(q);
    return st;
}
