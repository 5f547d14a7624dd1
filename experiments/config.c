#include "config.h"

#include "../core/file.h"

#include <cyaml/cyaml.h>
#include <yaml.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OPT CYAML_FLAG_OPTIONAL
#define OPTP (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER)
#define STR(key, type, member) CYAML_FIELD_STRING_PTR(key, OPTP, type, member, 0, CYAML_UNLIMITED)

static const cyaml_schema_field_t model_fields[] = {
    STR("kind", qtk_cfg_model, kind),
    CYAML_FIELD_STRING_PTR("checkpoint", CYAML_FLAG_POINTER, qtk_cfg_model, checkpoint, 1, CYAML_UNLIMITED),
    STR("desc", qtk_cfg_model, desc),
    CYAML_FIELD_END};
static const cyaml_schema_field_t data_fields[] = { // format and root: required for a vit (validate)
    STR("format", qtk_cfg_data, format),
    STR("root", qtk_cfg_data, root),
    STR("test", qtk_cfg_data, test),
    STR("class_index", qtk_cfg_data, class_index),
    STR("cache", qtk_cfg_data, cache),
    STR("on_bad_image", qtk_cfg_data, on_bad_image),
    CYAML_FIELD_INT("test_images", OPT, qtk_cfg_data, test_images),
    CYAML_FIELD_END};
static const cyaml_schema_field_t calib_fields[] = {
    CYAML_FIELD_INT("images", OPT, qtk_cfg_calibration, images),
    CYAML_FIELD_INT("batch", OPT, qtk_cfg_calibration, batch),
    CYAML_FIELD_INT("samples", OPT, qtk_cfg_calibration, samples),
    CYAML_FIELD_INT("seq_len", OPT, qtk_cfg_calibration, seq_len),
    STR("tokens", qtk_cfg_calibration, tokens),
    STR("text", qtk_cfg_calibration, text),
    CYAML_FIELD_END};
static const cyaml_schema_value_t off_entry = {CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, CYAML_UNLIMITED)};
static const cyaml_schema_field_t quant_fields[] = {
    STR("method", qtk_cfg_quantization, method),
    STR("variant", qtk_cfg_quantization, variant),
    CYAML_FIELD_FLOAT("percentile", OPT, qtk_cfg_quantization, percentile),
    CYAML_FIELD_FLOAT("saturation_warn", OPT, qtk_cfg_quantization, saturation_warn),
    CYAML_FIELD_INT("w_bits", OPT, qtk_cfg_quantization, w_bits),
    CYAML_FIELD_INT("a_bits", OPT, qtk_cfg_quantization, a_bits),
    CYAML_FIELD_BOOL("bias_corr", OPT, qtk_cfg_quantization, bias_corr),
    CYAML_FIELD_BOOL("int_layernorm", OPT, qtk_cfg_quantization, int_layernorm),
    CYAML_FIELD_SEQUENCE("off", OPTP, qtk_cfg_quantization, off, &off_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END};
static const cyaml_schema_field_t search_fields[] = {
    STR("method", qtk_cfg_search, method),
    CYAML_FIELD_INT("passes", OPT, qtk_cfg_search, passes),
    CYAML_FIELD_INT("cycles", OPT, qtk_cfg_search, cycles),
    CYAML_FIELD_INT("population", OPT, qtk_cfg_search, population),
    CYAML_FIELD_INT("tournament", OPT, qtk_cfg_search, tournament),
    CYAML_FIELD_INT("group", OPT, qtk_cfg_search, group),
    CYAML_FIELD_FLOAT("eps", OPT, qtk_cfg_search, eps),
    CYAML_FIELD_FLOAT("temperature", OPT, qtk_cfg_search, temperature),
    STR("fp_targets", qtk_cfg_search, fp_targets),
    STR("select_on", qtk_cfg_search, select_on),
    CYAML_FIELD_INT("validate_every", OPT, qtk_cfg_search, validate_every),
    CYAML_FIELD_INT("max_steps", OPT, qtk_cfg_search, max_steps),
    STR("init", qtk_cfg_search, init),
    CYAML_FIELD_SEQUENCE("targets", OPTP, qtk_cfg_search, targets, &off_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_INT("ranks", OPT, qtk_cfg_search, ranks),
    STR("transport", qtk_cfg_search, transport),
    CYAML_FIELD_END};
static const cyaml_schema_field_t ppl_fields[] = {
    STR("tokens", qtk_cfg_perplexity, tokens),
    STR("text", qtk_cfg_perplexity, text),
    CYAML_FIELD_INT("ctx", OPT, qtk_cfg_perplexity, ctx),
    CYAML_FIELD_INT("stride", OPT, qtk_cfg_perplexity, stride),
    CYAML_FIELD_INT("max_windows", OPT, qtk_cfg_perplexity, max_windows),
    CYAML_FIELD_INT("batch", OPT, qtk_cfg_perplexity, batch),
    CYAML_FIELD_END};
static const cyaml_schema_field_t gen_fields[] = {
    STR("prompt", qtk_cfg_generate, prompt),
    STR("prompt_ids", qtk_cfg_generate, prompt_ids),
    CYAML_FIELD_INT("max_new", OPT, qtk_cfg_generate, max_new),
    CYAML_FIELD_INT("top_k", OPT, qtk_cfg_generate, top_k),
    CYAML_FIELD_INT("seed", OPT, qtk_cfg_generate, seed),
    CYAML_FIELD_FLOAT("temperature", OPT, qtk_cfg_generate, temperature),
    CYAML_FIELD_END};
static const cyaml_schema_field_t eval_fields[] = {
    CYAML_FIELD_MAPPING("perplexity", OPT, qtk_cfg_eval, perplexity, ppl_fields),
    CYAML_FIELD_MAPPING("generate", OPT, qtk_cfg_eval, generate, gen_fields), CYAML_FIELD_END};
static const cyaml_schema_field_t output_fields[] = {STR("dir", qtk_cfg_output, dir),
                                                     CYAML_FIELD_BOOL("weights", OPT, qtk_cfg_output, weights),
                                                     CYAML_FIELD_END};
static const cyaml_schema_field_t top_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, qtk_run_config, name, 1, 128),
    CYAML_FIELD_INT("seed", OPT, qtk_run_config, seed),
    STR("device", qtk_run_config, device),
    STR("gpu_gemm", qtk_run_config, gpu_gemm),
    STR("gpus", qtk_run_config, gpus),
    STR("task", qtk_run_config, task),
    CYAML_FIELD_INT("fp16", OPT, qtk_run_config, fp16),
    CYAML_FIELD_MAPPING("model", CYAML_FLAG_DEFAULT, qtk_run_config, model, model_fields),
    CYAML_FIELD_MAPPING("data", OPT, qtk_run_config, data, data_fields),
    CYAML_FIELD_MAPPING("calibration", OPT, qtk_run_config, calibration, calib_fields),
    CYAML_FIELD_MAPPING("quantization", OPT, qtk_run_config, quantization, quant_fields),
    CYAML_FIELD_MAPPING("search", OPT, qtk_run_config, search, search_fields),
    CYAML_FIELD_MAPPING("eval", OPT, qtk_run_config, eval, eval_fields),
    CYAML_FIELD_MAPPING("output", OPT, qtk_run_config, output, output_fields),
    CYAML_FIELD_END};
static const cyaml_schema_value_t top_schema = {CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, qtk_run_config, top_fields)};

// libcyaml reports "Load: <message>" then a backtrace of "in mapping field 'k' (line: L, column: C)",
// innermost first: collect them into one line.
typedef struct {
    char msg[600];
    char path[600];
    int line;
} cy_log;

static void cy_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list ap) {
    cy_log *l = ctx;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    if (!strncmp(buf, "Load: ", 6) && strncmp(buf, "Load: Backtrace", 15) && !l->msg[0]) {
        snprintf(l->msg, sizeof l->msg, "%s", buf + 6);
        return;
    }
    const char *f = strstr(buf, "in mapping field '");
    if (f) {
        char key[128];
        int line = 0;
        if (sscanf(f, "in mapping field '%127[^']' (line: %d", key, &line) >= 1) {
            char np[600];
            snprintf(np, sizeof np, "%.127s%s%.400s", key, l->path[0] ? "." : "", l->path);
            memcpy(l->path, np, sizeof np);
            if (!l->line) l->line = line;
        }
    } else if (!l->line) {
        const char *ln = strstr(buf, "(line: ");
        if (ln) l->line = atoi(ln + 7);
    }
}

// The line of "key:" in the file, for keys libcyaml does not place.
static int find_key_line(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int n = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        n++;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '-') p++;
        size_t k = strlen(key);
        if (!strncmp(p, key, k) && p[k] == ':') found = n;
    }
    fclose(f);
    return found;
}

static const cyaml_config_t *cy_config(cy_log *l) {
    static _Thread_local cyaml_config_t c;
    memset(&c, 0, sizeof c);
    c.log_fn = cy_log_fn;
    c.log_ctx = l;
    c.mem_fn = cyaml_mem;
    c.log_level = CYAML_LOG_WARNING;
    return &c;
}

void qtk_config_free(qtk_run_config *c) {
    if (!c) return;
    cy_log l = {0};
    cyaml_free(cy_config(&l), &top_schema, c, 0);
}

static char *sdup(const char *s) { return s ? strdup(s) : NULL; }

// --set overrides: scalar keys by dotted path
typedef enum { K_STR, K_INT, K_BOOL, K_FLOAT } ktype;
static const struct {
    const char *path;
    ktype t;
    size_t off;
} keys[] = {
    {"name", K_STR, offsetof(qtk_run_config, name)},
    {"seed", K_INT, offsetof(qtk_run_config, seed)},
    {"device", K_STR, offsetof(qtk_run_config, device)},
    {"gpu_gemm", K_STR, offsetof(qtk_run_config, gpu_gemm)},
    {"gpus", K_STR, offsetof(qtk_run_config, gpus)},
    {"search.ranks", K_INT, offsetof(qtk_run_config, search.ranks)},
    {"search.transport", K_STR, offsetof(qtk_run_config, search.transport)},
    {"task", K_STR, offsetof(qtk_run_config, task)},
    {"model.kind", K_STR, offsetof(qtk_run_config, model.kind)},
    {"model.checkpoint", K_STR, offsetof(qtk_run_config, model.checkpoint)},
    {"model.desc", K_STR, offsetof(qtk_run_config, model.desc)},
    {"data.format", K_STR, offsetof(qtk_run_config, data.format)},
    {"data.root", K_STR, offsetof(qtk_run_config, data.root)},
    {"data.test", K_STR, offsetof(qtk_run_config, data.test)},
    {"data.class_index", K_STR, offsetof(qtk_run_config, data.class_index)},
    {"data.cache", K_STR, offsetof(qtk_run_config, data.cache)},
    {"data.on_bad_image", K_STR, offsetof(qtk_run_config, data.on_bad_image)},
    {"data.test_images", K_INT, offsetof(qtk_run_config, data.test_images)},
    {"calibration.images", K_INT, offsetof(qtk_run_config, calibration.images)},
    {"calibration.batch", K_INT, offsetof(qtk_run_config, calibration.batch)},
    {"calibration.samples", K_INT, offsetof(qtk_run_config, calibration.samples)},
    {"calibration.seq_len", K_INT, offsetof(qtk_run_config, calibration.seq_len)},
    {"calibration.tokens", K_STR, offsetof(qtk_run_config, calibration.tokens)},
    {"calibration.text", K_STR, offsetof(qtk_run_config, calibration.text)},
    {"quantization.method", K_STR, offsetof(qtk_run_config, quantization.method)},
    {"quantization.variant", K_STR, offsetof(qtk_run_config, quantization.variant)},
    {"quantization.percentile", K_FLOAT, offsetof(qtk_run_config, quantization.percentile)},
    {"quantization.saturation_warn", K_FLOAT, offsetof(qtk_run_config, quantization.saturation_warn)},
    {"quantization.w_bits", K_INT, offsetof(qtk_run_config, quantization.w_bits)},
    {"quantization.a_bits", K_INT, offsetof(qtk_run_config, quantization.a_bits)},
    {"quantization.bias_corr", K_BOOL, offsetof(qtk_run_config, quantization.bias_corr)},
    {"quantization.int_layernorm", K_BOOL, offsetof(qtk_run_config, quantization.int_layernorm)},
    {"search.method", K_STR, offsetof(qtk_run_config, search.method)},
    {"search.passes", K_INT, offsetof(qtk_run_config, search.passes)},
    {"search.cycles", K_INT, offsetof(qtk_run_config, search.cycles)},
    {"search.population", K_INT, offsetof(qtk_run_config, search.population)},
    {"search.tournament", K_INT, offsetof(qtk_run_config, search.tournament)},
    {"search.group", K_INT, offsetof(qtk_run_config, search.group)},
    {"search.eps", K_FLOAT, offsetof(qtk_run_config, search.eps)},
    {"search.temperature", K_FLOAT, offsetof(qtk_run_config, search.temperature)},
    {"search.fp_targets", K_STR, offsetof(qtk_run_config, search.fp_targets)},
    {"search.select_on", K_STR, offsetof(qtk_run_config, search.select_on)},
    {"search.max_steps", K_INT, offsetof(qtk_run_config, search.max_steps)},
    {"fp16", K_INT, offsetof(qtk_run_config, fp16)},
    {"eval.perplexity.tokens", K_STR, offsetof(qtk_run_config, eval.perplexity.tokens)},
    {"eval.perplexity.text", K_STR, offsetof(qtk_run_config, eval.perplexity.text)},
    {"eval.perplexity.ctx", K_INT, offsetof(qtk_run_config, eval.perplexity.ctx)},
    {"eval.perplexity.stride", K_INT, offsetof(qtk_run_config, eval.perplexity.stride)},
    {"eval.perplexity.max_windows", K_INT, offsetof(qtk_run_config, eval.perplexity.max_windows)},
    {"eval.perplexity.batch", K_INT, offsetof(qtk_run_config, eval.perplexity.batch)},
    {"eval.generate.prompt", K_STR, offsetof(qtk_run_config, eval.generate.prompt)},
    {"eval.generate.prompt_ids", K_STR, offsetof(qtk_run_config, eval.generate.prompt_ids)},
    {"eval.generate.max_new", K_INT, offsetof(qtk_run_config, eval.generate.max_new)},
    {"eval.generate.top_k", K_INT, offsetof(qtk_run_config, eval.generate.top_k)},
    {"eval.generate.seed", K_INT, offsetof(qtk_run_config, eval.generate.seed)},
    {"eval.generate.temperature", K_FLOAT, offsetof(qtk_run_config, eval.generate.temperature)},
    {"search.validate_every", K_INT, offsetof(qtk_run_config, search.validate_every)},
    {"search.init", K_STR, offsetof(qtk_run_config, search.init)},
    {"output.dir", K_STR, offsetof(qtk_run_config, output.dir)},
    {"output.weights", K_BOOL, offsetof(qtk_run_config, output.weights)},
};

static qtk_status apply_set(qtk_run_config *c, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq) return qtk_fail(QTK_ERR_ARG, "--set %s: expected key=value", kv);
    size_t kl = (size_t)(eq - kv);
    const char *v = eq + 1;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        if (strlen(keys[i].path) != kl || strncmp(keys[i].path, kv, kl)) continue;
        char *base = (char *)c + keys[i].off, *end;
        switch (keys[i].t) {
        case K_STR: {
            char **s = (char **)base;
            // libcyaml frees strings with its allocator (cyaml_mem = realloc/free)
            free(*s);
            *s = sdup(v);
            return QTK_OK;
        }
        case K_INT: {
            errno = 0;
            long x = strtol(v, &end, 10);
            if (!*v || *end) return qtk_fail(QTK_ERR_ARG, "--set %.*s: expected an integer, got \"%s\"", (int)kl, kv, v);
            if (errno == ERANGE || x < INT_MIN || x > INT_MAX)
                return qtk_fail(QTK_ERR_ARG, "--set %.*s: %s is outside the integers qtk takes (%d..%d)", (int)kl, kv, v,
                                INT_MIN, INT_MAX);
            *(int *)base = (int)x;
            return QTK_OK;
        }
        case K_FLOAT: {
            double x = strtod(v, &end);
            if (!*v || *end) return qtk_fail(QTK_ERR_ARG, "--set %.*s: expected a number, got \"%s\"", (int)kl, kv, v);
            *(double *)base = x;
            return QTK_OK;
        }
        case K_BOOL:
            if (!strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1")) *(bool *)base = true;
            else if (!strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0")) *(bool *)base = false;
            else return qtk_fail(QTK_ERR_ARG, "--set %.*s: expected true or false, got \"%s\"", (int)kl, kv, v);
            return QTK_OK;
        }
    }
    return qtk_fail(QTK_ERR_ARG, "--set %.*s: unknown key (keys look like quantization.w_bits, search.passes)", (int)kl, kv);
}

static int present(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0;
}

static qtk_status fail_at(const char *file, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// the --set values of the config being loaded (qtk_config_load): an error about a key given there
// names the --set, not the YAML line it replaced
static char *const *cur_sets;
static int cur_n_sets;

static const char *set_for(const char *key) {
    size_t kl = strlen(key);
    for (int i = 0; i < cur_n_sets; i++) {
        const char *kv = cur_sets[i], *eq = strchr(kv, '=');
        size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
        // the full key, or its last part (the range checks name leaves: "w_bits")
        if ((n == kl && !strncmp(kv, key, n)) || (n > kl && kv[n - kl - 1] == '.' && !strncmp(kv + n - kl, key, kl)))
            return kv;
    }
    return NULL;
}

// Rewrites every "w<digit>a<digit>" token (case kept; bounded by non-alphanumerics) of *s to the run's
// widths; says so on stderr when it changed something.
static void retag_bits(char **s, const char *what, int w, int a) {
    char *p = *s;
    if (!p || w < 2 || w > 9 || a < 2 || a > 9) return;
    char before[256];
    snprintf(before, sizeof before, "%s", p);
    int changed = 0;
    for (size_t i = 0; p[i]; i++) {
        int start = i == 0 || !isalnum((unsigned char)p[i - 1]);
        if (start && (p[i] == 'w' || p[i] == 'W') && isdigit((unsigned char)p[i + 1]) && (p[i + 2] == 'a' || p[i + 2] == 'A') &&
            isdigit((unsigned char)p[i + 3]) && !isalnum((unsigned char)p[i + 4])) {
            char nw = (char)('0' + w), na = (char)('0' + a);
            changed |= p[i + 1] != nw || p[i + 3] != na;
            p[i + 1] = nw, p[i + 3] = na;
        }
    }
    if (changed) fprintf(stderr, "qtk: note: %s %s is named after other bit widths: %s (the run is W%dA%d)\n", what, before, p, w, a);
}

static qtk_status fail_at(const char *file, int line, const char *key, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *set = set_for(key);
    if (set) return qtk_fail(QTK_ERR_ARG, "--set %s: %s (in %s)", set, msg, file);
    if (line > 0) return qtk_fail(QTK_ERR_ARG, "%s:%d: %s: %s", file, line, key, msg);
    return qtk_fail(QTK_ERR_ARG, "%s: %s: %s", file, key, msg);
}

// ${VAR} and ${VAR:-default} in a string value, from the environment.
static qtk_status expand_env(const char *file, const char *key, char **val) {
    const char *v = *val;
    if (!v || !strstr(v, "${")) return QTK_OK;
    size_t cap = 4096, n = 0;
    char *o = malloc(cap);
    if (!o) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    const char *leaf = strrchr(key, '.') ? strrchr(key, '.') + 1 : key;
    qtk_status st = QTK_OK;
    while (*v && st == QTK_OK) {
        const char *add = v;
        size_t len = 1;
        char name[128], *def = NULL;
        if (v[0] == '$' && v[1] == '{') {
            const char *end = strchr(v, '}');
            size_t nl = end ? (size_t)(end - v - 2) : 0;
            if (!end || nl == 0 || nl >= sizeof name) {
                st = fail_at(file, find_key_line(file, leaf), key, "\"%s\": unterminated or empty ${...}", *val);
                break;
            }
            memcpy(name, v + 2, nl);
            name[nl] = '\0';
            char *dash = strstr(name, ":-");
            if (dash) {
                *dash = '\0';
                def = dash + 2;
            }
            const char *e = getenv(name);
            if (e && *e) add = e;
            else if (def) add = def;
            else {
                st = fail_at(file, find_key_line(file, leaf), key, "${%s} is not set (export %s=... or --set %s=...)", name, name, key);
                break;
            }
            len = strlen(add);
            v = end + 1;
        } else v++;
        if (n + len + 1 > cap) {
            st = qtk_fail(QTK_ERR_ARG, "%s: %s: value too long after expansion", file, key);
            break;
        }
        memcpy(o + n, add, len);
        n += len;
    }
    if (st != QTK_OK) {
        free(o);
        return st;
    }
    o[n] = '\0';
    free(*val);
    *val = o;
    return QTK_OK;
}

static qtk_status one_of(const char *file, const char *key, const char *v, const char *const *ok) {
    for (int i = 0; ok[i]; i++)
        if (!strcmp(v, ok[i])) return QTK_OK;
    char list[256] = "";
    for (int i = 0; ok[i]; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, ok[i]);
    }
    const char *leaf = strrchr(key, '.');
    return fail_at(file, find_key_line(file, leaf ? leaf + 1 : key), key, "\"%s\" is not one of %s", v, list);
}

const char *qtk_kind_task(const char *kind) {
    // vit, and next cnn: images with labels; mamba: a token stream
    return kind && !strcmp(kind, "mamba") ? "perplexity" : "classification";
}

// A mamba run's quantizer: method none (the float model only) or quamba with its variant, W8A8, and its
// calibration stream
static qtk_status validate_quamba(const char *file, qtk_run_config *c) {
    qtk_cfg_quantization *q = &c->quantization;
    qtk_cfg_calibration *k = &c->calibration;
    if (!q->method) q->method = sdup("none");
    static const char *const qmethods[] = {"none", "quamba", NULL};
    QTK_TRY(one_of(file, "quantization.method", q->method, qmethods));
    if (!strcmp(q->method, "none")) {
        if (q->variant || k->tokens || k->text || k->samples || k->seq_len)
            return fail_at(file, find_key_line(file, q->variant ? "variant" : "calibration"),
                           q->variant ? "quantization.variant" : "calibration",
                           "calibrates a quantizer, but quantization.method is none (quamba quantizes a mamba)");
        return QTK_OK;
    }
    if (!q->variant) q->variant = sdup("v1");
    static const char *const variants[] = {"v1", "static", "dynamic", "percentile", "hadamard", NULL};
    QTK_TRY(one_of(file, "quantization.variant", q->variant, variants));
    if (q->percentile == 0) q->percentile = 0.99999;
    if (q->saturation_warn == 0) q->saturation_warn = 1e-3;
    if (!(q->percentile > 0 && q->percentile <= 1))
        return fail_at(file, find_key_line(file, "percentile"), "quantization.percentile", "%g is outside (0, 1]",
                       q->percentile);
    if (!(q->saturation_warn > 0 && q->saturation_warn <= 1))
        return fail_at(file, find_key_line(file, "saturation_warn"), "quantization.saturation_warn",
                       "%g is outside (0, 1]", q->saturation_warn);
    if (q->w_bits != 8 || q->a_bits != 8)
        return fail_at(file, find_key_line(file, q->w_bits != 8 ? "w_bits" : "a_bits"),
                       q->w_bits != 8 ? "quantization.w_bits" : "quantization.a_bits",
                       "quamba is W8A8 (W4A8 and W4A16 come with Quamba2)");
    if (!k->samples) k->samples = 512;
    if (!k->seq_len) k->seq_len = 512;
    if (k->samples < 1 || k->samples > 1 << 20 || k->seq_len < 1 || k->seq_len > 1 << 20)
        return fail_at(file, find_key_line(file, k->samples < 1 || k->samples > 1 << 20 ? "samples" : "seq_len"),
                       "calibration", "samples %d (1..2^20), seq_len %d (1..2^20)", k->samples, k->seq_len);
    const int dynamic = !strcmp(q->variant, "dynamic");
    if (!dynamic && !k->tokens && !k->text)
        return fail_at(file, find_key_line(file, "calibration"), "calibration",
                       "quamba %s needs calibration.tokens (a token file) or calibration.text (bytes)", q->variant);
    if (k->tokens && k->text)
        return fail_at(file, find_key_line(file, "calibration"), "calibration", "tokens or text, not both");
    const char *cf = k->tokens ? k->tokens : k->text;
    if (cf && !present(cf))
        return fail_at(file, find_key_line(file, k->tokens ? "tokens" : "text"), k->tokens ? "calibration.tokens" : "calibration.text",
                       "%s does not exist", cf);
    return QTK_OK;
}

static qtk_status validate(const char *file, qtk_run_config *c) {
    // defaults for what the YAML left out
    if (!c->device) c->device = sdup("cpu");
    if (!c->gpu_gemm) c->gpu_gemm = sdup("fp32");
    if (!c->gpus) c->gpus = sdup("1");
    if (!c->search.transport) c->search.transport = sdup("auto");
    if (!c->model.kind) c->model.kind = sdup("vit");
    if (!c->task) c->task = sdup(qtk_kind_task(c->model.kind));
    if (!c->calibration.images) c->calibration.images = 1000;
    if (!c->calibration.batch) c->calibration.batch = 100;
    const int lm = !strcmp(c->model.kind, "mamba");
    if (!c->quantization.w_bits) c->quantization.w_bits = lm ? 8 : 4;
    if (!c->quantization.a_bits) c->quantization.a_bits = 8;
    if (!c->search.method) c->search.method = sdup(lm ? "none" : "evolq");
    if (!c->search.passes) c->search.passes = 10;
    if (!c->search.cycles) c->search.cycles = 3;
    if (!c->search.population) c->search.population = 15;
    if (!c->search.tournament) c->search.tournament = 10;
    if (!c->search.group) c->search.group = 100;
    if (c->search.temperature == 0) c->search.temperature = 3.0;
    if (!c->search.fp_targets) c->search.fp_targets = sdup("reference");
    if (!c->search.select_on) c->search.select_on = sdup("none");
    if (!c->data.on_bad_image) c->data.on_bad_image = sdup("skip");
    qtk_cfg_perplexity *pp = &c->eval.perplexity;
    if (!pp->ctx) pp->ctx = 1024;
    if (!pp->stride) pp->stride = pp->ctx;
    if (!pp->batch) pp->batch = 8;
    // a name or folder tagged with bit widths ("fashion_w4a8") follows the widths the run has (a
    // --set quantization.w_bits=3 run is fashion_w3a8), unless a --set gave it
    // (a mamba run has no bit widths yet: its name stays as written)
    if (!lm && !set_for("name")) retag_bits(&c->name, "name", c->quantization.w_bits, c->quantization.a_bits);
    if (!lm && c->output.dir && !set_for("output.dir"))
        retag_bits(&c->output.dir, "output.dir", c->quantization.w_bits, c->quantization.a_bits);
    if (!c->output.dir) {
        char d[512];
        snprintf(d, sizeof d, "results/runs/%s", c->name);
        c->output.dir = sdup(d);
    }
    static const char *const devices[] = {"cpu", "cuda", NULL}, *const formats[] = {"fashion-mnist", "folder", "tensor", NULL};
    static const char *const methods[] = {"evolq", "none", NULL}, *const targets[] = {"reference", "float", NULL};
    static const char *const select[] = {"none", "val", NULL}, *const bad[] = {"skip", "fail", NULL};
    static const char *const gemms[] = {"fp32", "tf32", "int8", NULL};
    // the model kinds the pipeline runs, and the task each one's data is for
    static const char *const kinds[] = {"vit", "mamba", NULL}, *const tasks[] = {"classification", "perplexity", NULL};
    QTK_TRY(one_of(file, "model.kind", c->model.kind, kinds));
    if (lm) { // a language model: the perplexity stream, no images; no quantizer for it yet (Quamba comes next)
        if (pp->tokens && pp->text)
            return fail_at(file, find_key_line(file, "perplexity"), "eval.perplexity",
                           "tokens (a token file) or text (bytes), not both");
        qtk_cfg_generate *gg = &c->eval.generate;
        if (!gg->max_new) gg->max_new = 200;
        if (gg->temperature == 0) gg->temperature = 1.0;
        if (gg->prompt && gg->prompt_ids)
            return fail_at(file, find_key_line(file, "generate"), "eval.generate", "prompt or prompt_ids, not both");
        if (gg->max_new < 1 || gg->max_new > 1 << 20 || gg->top_k < 0 || gg->seed < 0 || !(gg->temperature >= 1e-3) ||
            gg->temperature > 100)
            return fail_at(file, find_key_line(file, "generate"), "eval.generate",
                           "max_new %d (1..2^20), top_k %d (>= 0), seed %d (>= 0), temperature %g (0.001..100)", gg->max_new,
                           gg->top_k, gg->seed, gg->temperature);
        if (strcmp(c->search.method, "none"))
            return fail_at(file, find_key_line(file, "method"), "search.method",
                           "%s searches a vit; a mamba run evaluates the float model (search.method: none)", c->search.method);
        if (c->data.format || c->data.root)
            return fail_at(file, find_key_line(file, "data"), "data", "a mamba model reads eval.perplexity, not images");
        if (pp->ctx < 2 || pp->ctx > 1 << 20 || pp->stride < 1 || pp->stride > pp->ctx || pp->batch < 1 ||
            pp->batch > 4096 || pp->max_windows < 0)
            return fail_at(file, find_key_line(file, "perplexity"), "eval.perplexity",
                           "ctx %d (2..2^20), stride %d (1..ctx), batch %d (1..4096), max_windows %d (>= 0)", pp->ctx,
                           pp->stride, pp->batch, pp->max_windows);
        if (c->fp16 != 0 && c->fp16 != 1) return fail_at(file, find_key_line(file, "fp16"), "fp16", "%d is not 0 or 1", c->fp16);
        QTK_TRY(validate_quamba(file, c));
    } else {
        if (c->quantization.method || c->quantization.variant || c->calibration.tokens || c->calibration.text ||
            c->calibration.samples || c->calibration.seq_len)
            return fail_at(file, find_key_line(file, c->quantization.method ? "method" : c->quantization.variant ? "variant" : "calibration"),
                           c->quantization.method ? "quantization.method" : c->quantization.variant ? "quantization.variant" : "calibration",
                           "is for a mamba model (a vit's quantizer is the FQ-ViT baseline, set by w_bits and a_bits)");
        if (!c->data.format || !c->data.root)
            return fail_at(file, find_key_line(file, "data"), c->data.format ? "data.root" : "data.format",
                           "required for a %s model", c->model.kind);
        if (pp->tokens || pp->text || c->eval.generate.prompt || c->eval.generate.prompt_ids)
            return fail_at(file, find_key_line(file, "eval"), "eval", "perplexity and generate are for a mamba model");
        if (c->fp16) return fail_at(file, find_key_line(file, "fp16"), "fp16", "is for a mamba model");
    }
    if (c->fp16 && strcmp(c->device, "cuda"))
        return fail_at(file, find_key_line(file, "fp16"), "fp16", "fp16 projections need device: cuda");
    QTK_TRY(one_of(file, "task", c->task, tasks));
    if (strcmp(c->task, qtk_kind_task(c->model.kind)))
        return fail_at(file, find_key_line(file, "task"), "task", "a %s model is evaluated by %s, not %s", c->model.kind,
                       qtk_kind_task(c->model.kind), c->task);
    QTK_TRY(one_of(file, "device", c->device, devices));
    QTK_TRY(one_of(file, "gpu_gemm", c->gpu_gemm, gemms));
    static const char *const transports[] = {"auto", "host", "nccl", NULL};
    QTK_TRY(one_of(file, "search.transport", c->search.transport, transports));
    {
        char *end;
        long g = strtol(c->gpus, &end, 10);
        if (strcmp(c->gpus, "all") && (*end || end == c->gpus || g < 1 || g > 1024))
            return fail_at(file, find_key_line(file, "gpus"), "gpus", "\"%s\": all, or a number of GPUs in 1..1024", c->gpus);
        if (strcmp(c->gpus, "1") && strcmp(c->device, "cuda"))
            return fail_at(file, find_key_line(file, "gpus"), "gpus", "%s GPUs, but device is %s (gpus needs device: cuda)",
                           c->gpus, c->device);
        if (!strcmp(c->search.transport, "nccl") && strcmp(c->device, "cuda"))
            return fail_at(file, find_key_line(file, "transport"), "search.transport", "nccl needs device: cuda");
    }
    if (!lm) QTK_TRY(one_of(file, "data.format", c->data.format, formats));
    QTK_TRY(one_of(file, "search.method", c->search.method, methods));
    QTK_TRY(one_of(file, "search.fp_targets", c->search.fp_targets, targets));
    QTK_TRY(one_of(file, "search.select_on", c->search.select_on, select));
    QTK_TRY(one_of(file, "data.on_bad_image", c->data.on_bad_image, bad));
    const struct { const char *key; int v, lo, hi; } ranges[] = {
        {"w_bits", c->quantization.w_bits, 2, 8},     {"a_bits", c->quantization.a_bits, 2, 8},
        {"images", c->calibration.images, 1, 1 << 24}, {"batch", c->calibration.batch, 1, 1 << 16},
        {"passes", c->search.passes, 1, 1000},          {"cycles", c->search.cycles, 1, 8},
        {"population", c->search.population, 1, 64},    {"tournament", c->search.tournament, 1, 16},
        {"group", c->search.group, 1, 1 << 16},         {"seed", c->seed, 0, 2147483647},
        {"test_images", c->data.test_images, 0, 1 << 30}, {"max_steps", c->search.max_steps, 0, 1 << 30},
        {"validate_every", c->search.validate_every, 0, 1 << 30}, {"ranks", c->search.ranks, 0, 1024},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++)
        if (ranges[i].v < ranges[i].lo || ranges[i].v > ranges[i].hi)
            return fail_at(file, find_key_line(file, ranges[i].key), ranges[i].key, "%d is outside %d..%d", ranges[i].v,
                           ranges[i].lo, ranges[i].hi);
    if (c->calibration.images % c->search.group != 0)
        return fail_at(file, find_key_line(file, "images"), "calibration.images",
                       "%d images do not split into infoNCE groups of %d (search.group)", c->calibration.images,
                       c->search.group);
    if (!(c->search.temperature > 0) || c->search.eps < 0)
        return fail_at(file, find_key_line(file, "temperature"), "search", "temperature must be > 0 and eps >= 0");
    // short names or globs over point names; the model checks that each matches
    for (unsigned i = 0; i < c->search.targets_count; i++)
        if (!c->search.targets[i][0] || strlen(c->search.targets[i]) > 200)
            return fail_at(file, find_key_line(file, "targets"), "search.targets", "an empty or over-long entry");
    if (!strcmp(c->search.select_on, "val") && !strcmp(c->search.method, "none"))
        return fail_at(file, find_key_line(file, "select_on"), "search.select_on", "val needs a search (search.method: evolq)");
    const struct { const char *key, *path; } files[] = {
        {"model.checkpoint", c->model.checkpoint}, {"data.root", c->data.root}, {"data.test", c->data.test},
        {"data.class_index", c->data.class_index}, {"search.init", c->search.init}};
    // (eval.perplexity's file is opened by what reads it: qtk generate reads the same config without it)
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i].path && !present(files[i].path)) {
            const char *leaf = strrchr(files[i].key, '.') + 1;
            return fail_at(file, find_key_line(file, leaf), files[i].key, "%s does not exist", files[i].path);
        }
    return QTK_OK;
}

// libcyaml 1.3 reads integers with strtoll and floats with strtod but ignores what follows the number, so
// "w_bits: 4.5" loads as 4 and "eps: 1e-3x" as 0.001. This pass walks the file's events beside the schema
// and requires every integer and float scalar to be a number and nothing else.
typedef struct {
    const cyaml_schema_value_t *v; // this node's schema (NULL: unknown, not checked)
    const cyaml_schema_value_t *pending; // mappings: the schema of the value after the last key
    int is_map, want_key;
    char key[128];
} yframe;

static const cyaml_schema_value_t *field_schema(const cyaml_schema_value_t *map, const char *key) {
    if (!map || map->type != CYAML_MAPPING) return NULL;
    for (const cyaml_schema_field_t *f = map->mapping.fields; f && f->key; f++)
        if (!strcmp(f->key, key)) return &f->value;
    return NULL;
}

static qtk_status check_number(const char *path, const yframe *st, int depth, const cyaml_schema_value_t *v,
                               const char *text, int line) {
    if (!v || (v->type != CYAML_INT && v->type != CYAML_UINT && v->type != CYAML_FLOAT)) return QTK_OK;
    char *end;
    errno = 0;
    if (v->type == CYAML_FLOAT) (void)strtod(text, &end);
    else (void)strtoll(text, &end, 0);
    if (end != text && !*end && errno != ERANGE) return QTK_OK;
    char key[600] = "";
    for (int i = 0; i < depth; i++)
        if (st[i].is_map && st[i].key[0])
            snprintf(key + strlen(key), sizeof key - strlen(key), "%s%s", key[0] ? "." : "", st[i].key);
    return qtk_fail(QTK_ERR_ARG, "%s:%d: %s: \"%s\" is not %s", path, line, key,
                    text, v->type == CYAML_FLOAT ? "a number" : errno == ERANGE ? "an integer in range" : "a whole number");
}

static qtk_status check_scalars(const char *path, const char *text, size_t len, const cyaml_schema_value_t *top) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return qtk_fail(QTK_ERR_NOMEM, "%s: cannot start the YAML parser", path);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    enum { MAXD = 64 };
    yframe st[MAXD];
    int depth = 0, done = 0;
    qtk_status r = QTK_OK;
    while (!done && r == QTK_OK) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) break; // syntax errors are libcyaml's to report
        yframe *t = depth > 0 ? &st[depth - 1] : NULL;
        // the schema of a node starting here
        const cyaml_schema_value_t *node = !t ? top : t->is_map ? t->pending
                                         : t->v && (t->v->type == CYAML_SEQUENCE || t->v->type == CYAML_SEQUENCE_FIXED) ? t->v->sequence.entry : NULL;
        switch (e.type) {
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth == MAXD) {
                done = 1;
                break;
            }
            st[depth] = (yframe){node, NULL, e.type == YAML_MAPPING_START_EVENT, 1, ""};
            depth++;
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (depth > 0) depth--;
            if (depth > 0 && st[depth - 1].is_map) st[depth - 1].want_key = 1;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT:
            if (t && t->is_map && t->want_key) {
                const char *k = e.type == YAML_SCALAR_EVENT ? (const char *)e.data.scalar.value : "";
                snprintf(t->key, sizeof t->key, "%s", k);
                t->pending = field_schema(t->v, k);
                t->want_key = 0;
            } else {
                if (e.type == YAML_SCALAR_EVENT)
                    r = check_number(path, st, depth, node, (const char *)e.data.scalar.value, (int)e.start_mark.line + 1);
                if (t && t->is_map) t->want_key = 1;
            }
            break;
        case YAML_STREAM_END_EVENT: done = 1; break;
        default: break;
        }
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&p);
    return r;
}

qtk_status qtk_yaml_load(const char *path, const cyaml_schema_value_t *schema, void **out) {
    *out = NULL;
    if (!present(path)) return qtk_fail(QTK_ERR_IO, "%s: no such config file", path);
    // read once, as a regular file of a sane size: a FIFO or a device would block libyaml's read
    char *text;
    size_t len;
    QTK_TRY(qtk_file_read(path, "YAML config", 16 << 20, &text, &len));
    cy_log l = {0};
    cyaml_err_t e = cyaml_load_data((const uint8_t *)text, len, cy_config(&l), schema, (cyaml_data_t **)out, NULL);
    // libcyaml accepts a stream with no document (0 bytes, only comments) and gives no data
    qtk_status r = QTK_OK;
    if (e == CYAML_OK && !*out) r = qtk_fail(QTK_ERR_ARG, "%s: empty file: no YAML document (a mapping of keys was expected)", path);
    else if (e == CYAML_OK && (r = check_scalars(path, text, len, schema)) != QTK_OK) {
        qtk_yaml_free(schema, *out);
        *out = NULL;
    }
    free(text);
    if (e == CYAML_OK) return r;
    *out = NULL;
    char key[1400];
    snprintf(key, sizeof key, "%s", l.path);
    // an unknown key: name it, with its own line
    const char *uk = strstr(l.msg, "Unexpected key: ");
    if (uk) {
        const char *k = uk + 16;
        if (key[0]) {
            char np[1400];
            snprintf(np, sizeof np, "%.600s.%.600s", key, k);
            memcpy(key, np, sizeof np);
        } else snprintf(key, sizeof key, "%.600s", k);
        int line = find_key_line(path, k);
        return qtk_fail(QTK_ERR_ARG, "%s:%d: %s: unknown key", path, line ? line : l.line, key);
    }
    if (l.line) return qtk_fail(QTK_ERR_ARG, "%s:%d: %s%s%s", path, l.line, key, key[0] ? ": " : "", l.msg[0] ? l.msg : cyaml_strerror(e));
    return qtk_fail(QTK_ERR_ARG, "%s: %s", path, l.msg[0] ? l.msg : cyaml_strerror(e));
}

void qtk_yaml_free(const cyaml_schema_value_t *schema, void *data) {
    if (!data) return;
    cy_log l = {0};
    cyaml_free(cy_config(&l), schema, data, 0);
}

qtk_status qtk_config_load(const char *path, char *const *sets, int n_sets, qtk_run_config **out) {
    *out = NULL;
    qtk_run_config *c = NULL;
    QTK_TRY(qtk_yaml_load(path, &top_schema, (void **)&c));
    qtk_status st = QTK_OK;
    for (int i = 0; i < n_sets && st == QTK_OK; i++) st = apply_set(c, sets[i]);
    cur_sets = sets, cur_n_sets = n_sets;
    for (size_t i = 0; st == QTK_OK && i < sizeof keys / sizeof *keys; i++)
        if (keys[i].t == K_STR) st = expand_env(path, keys[i].path, (char **)((char *)c + keys[i].off));
    if (st == QTK_OK) st = validate(path, c);
    cur_sets = NULL, cur_n_sets = 0;
    if (st != QTK_OK) {
        qtk_config_free(c);
        return st;
    }
    *out = c;
    return QTK_OK;
}

qtk_status qtk_config_save(const char *path, const qtk_run_config *c) {
    cy_log l = {0};
    cyaml_err_t e = cyaml_save_file(path, cy_config(&l), &top_schema, (cyaml_data_t *)c, 0);
    if (e != CYAML_OK) return qtk_fail(QTK_ERR_IO, "%s: cannot write the resolved config: %s", path, cyaml_strerror(e));
    return QTK_OK;
}
