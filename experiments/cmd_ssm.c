// qtk perplexity / qtk generate: the Mamba language models of ssm/ from the command line.
#include <cjson/cJSON.h>
#include <cyaml/cyaml.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rng.h"
#include "../core/timer.h"
#include "../datasets/tokens.h"
#include "../core/cuda/qtk_cuda.h"
#include "../ssm/mamba.h"
#include "../ssm/mamba_cuda.h"
#include "cli.h"
#include "config.h"

// --config FILE for both commands: every key optional, flags override.
//   model: DIR
//   device: cpu | cuda    fp16: 0 | 1 (cuda: fp16 projection weights)
//   tokens: FILE | text: FILE
//   perplexity: {ctx: 1024, stride: 1024, max_windows: 0, batch: 8}
//   generate: {prompt: TEXT | prompt_ids: "1,2,3", max_new: 200, top_k: 0, temperature: 1.0, seed: 0}
typedef struct {
    int ctx, stride, max_windows, batch;
} lm_ppl;
typedef struct {
    char *prompt, *prompt_ids;
    int max_new, top_k, seed;
    float temperature;
} lm_gen;
typedef struct {
    char *model, *tokens, *text, *device;
    int fp16;
    lm_ppl perplexity;
    lm_gen generate;
} lm_config;

#define OPT (CYAML_FLAG_OPTIONAL)
#define STRF(key, type, member) CYAML_FIELD_STRING_PTR(key, CYAML_FLAG_POINTER | OPT, type, member, 0, CYAML_UNLIMITED)
static const cyaml_schema_field_t ppl_fields[] = {
    CYAML_FIELD_INT("ctx", OPT, lm_ppl, ctx), CYAML_FIELD_INT("stride", OPT, lm_ppl, stride),
    CYAML_FIELD_INT("max_windows", OPT, lm_ppl, max_windows), CYAML_FIELD_INT("batch", OPT, lm_ppl, batch),
    CYAML_FIELD_END};
static const cyaml_schema_field_t gen_fields[] = {
    STRF("prompt", lm_gen, prompt), STRF("prompt_ids", lm_gen, prompt_ids), CYAML_FIELD_INT("max_new", OPT, lm_gen, max_new),
    CYAML_FIELD_INT("top_k", OPT, lm_gen, top_k), CYAML_FIELD_INT("seed", OPT, lm_gen, seed),
    CYAML_FIELD_FLOAT("temperature", OPT, lm_gen, temperature), CYAML_FIELD_END};
static const cyaml_schema_field_t lm_fields[] = {
    STRF("model", lm_config, model), STRF("tokens", lm_config, tokens), STRF("text", lm_config, text),
    STRF("device", lm_config, device), CYAML_FIELD_INT("fp16", OPT, lm_config, fp16),
    CYAML_FIELD_MAPPING("perplexity", OPT, lm_config, perplexity, ppl_fields),
    CYAML_FIELD_MAPPING("generate", OPT, lm_config, generate, gen_fields), CYAML_FIELD_END};
static const cyaml_schema_value_t lm_schema = {CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, lm_config, lm_fields)};

// The --config FILE among args (loaded; NULL when absent). 0, or the exit status of the error.
static int load_lm_config(int argc, char **argv, lm_config **out) {
    *out = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config")) {
            if (qtk_yaml_load(argv[i + 1], &lm_schema, (void **)out) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
            return 0;
        }
    return 0;
}

static int float_arg(const char *opt, const char *v, double lo, double hi, float *out) {
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo && x <= hi)) return qtk_cli_usage_error("%s takes a number in %g..%g, got \"%s\"", opt, lo, hi, v);
    *out = (float)x;
    return 0;
}

// --device / device: cpu or cuda (*cuda), checked against this build and machine; --fp16 only with cuda.
// 0, or the exit status of the error.
static int device_arg(const char *cmd, const char *device, int fp16, int *cuda) {
    *cuda = 0;
    if (!device || !strcmp(device, "cpu")) *cuda = 0;
    else if (!strcmp(device, "cuda")) *cuda = 1;
    else return qtk_cli_usage_error("%s: --device takes cpu or cuda, got \"%s\"", cmd, device);
    if (fp16 != 0 && fp16 != 1) return qtk_cli_usage_error("%s: fp16 takes 0 or 1, got %d", cmd, fp16);
    if (fp16 && !*cuda) return qtk_cli_usage_error("%s: --fp16 1 is for --device cuda", cmd);
    if (*cuda && qtk_cuda_device_count() == 0)
        return qtk_cli_error("%s: --device cuda, but %s", cmd,
                             qtk_cuda_built() ? "this machine has no CUDA device" : "this qtk was built without CUDA");
    return 0;
}

// the GPU forward of the perplexity windows (qtk_lm_perplexity)
static qtk_status gpu_windows(void *ud, const int32_t *tokens, int B, int L, float *logits) {
    qtk_mamba_cuda *g = ud;
    QTK_TRY(qtk_mamba_cuda_reset(g, B));
    return qtk_mamba_cuda_prefill(g, tokens, L, logits);
}

// The token ids of a token file (datasets/tokens.h), or a text file's bytes (byte-level vocabulary).
static qtk_status load_ids(const char *tokens, const char *text, const qtk_mamba *m, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (text) {
        if (m->cfg.vocab < 256)
            return qtk_fail(QTK_ERR_ARG, "--text reads bytes as tokens, but the model's vocabulary has %d ids (< 256)",
                            m->cfg.vocab);
        size_t len;
        char *buf = qtk_read_text(text, &len);
        if (!buf) return qtk_fail(QTK_ERR_IO, "%s: cannot read", text);
        *ids = malloc((len ? len : 1) * sizeof **ids);
        if (!*ids) {
            free(buf);
            return qtk_fail(QTK_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < len; i++) (*ids)[i] = (unsigned char)buf[i];
        *n = len;
        free(buf);
        return QTK_OK;
    }
    qtk_tokens t;
    QTK_TRY(qtk_tokens_open(&t, tokens));
    qtk_status st = QTK_OK;
    if (t.vocab_size > (uint32_t)m->cfg.vocab)
        st = qtk_fail(QTK_ERR_ARG, "%s: vocabulary of %u ids, the model has %d", tokens, t.vocab_size, m->cfg.vocab);
    else if (!(*ids = malloc((t.count ? t.count : 1) * sizeof **ids))) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    else {
        for (size_t i = 0; i < t.count; i++) (*ids)[i] = (int32_t)qtk_tokens_get(&t, i);
        *n = t.count;
    }
    qtk_tokens_close(&t);
    return st;
}

int qtk_cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *text = NULL, *json = NULL, *device = NULL;
    int ctx = 1024, stride = 0, max_windows = 0, batch = 8, fp16 = 0, cuda = 0;
    lm_config *cf;
    int rc0 = load_lm_config(argc, argv, &cf);
    if (rc0) return rc0;
    if (cf) { // the config's values, then the flags over them
        model = cf->model, tokens = cf->tokens, text = cf->text, device = cf->device, fp16 = cf->fp16;
        if (cf->perplexity.ctx) ctx = cf->perplexity.ctx;
        if (cf->perplexity.stride) stride = cf->perplexity.stride;
        if (cf->perplexity.max_windows) max_windows = cf->perplexity.max_windows;
        if (cf->perplexity.batch) batch = cf->perplexity.batch;
    }
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            qtk_yaml_free(&lm_schema, cf);
            puts("usage: qtk perplexity [--config FILE.yaml] --model DIR (--tokens FILE | --text FILE) [--ctx 1024]\n"
                 "                      [--stride CTX] [--max-windows N] [--batch 8] [--device cpu|cuda] [--fp16 0|1]\n"
                 "                      [--json FILE]\n\n"
                 "Perplexity of a Mamba / Mamba2 language model (a HuggingFace checkpoint folder: config.json and\n"
                 "model.safetensors) on a token file (qtk's format, datasets/tokens.h) or on a text file read as\n"
                 "bytes (byte-level vocabulary, as models/tiny_mamba*). Windows of CTX tokens every STRIDE tokens\n"
                 "(default: CTX, no overlap), each scoring the tokens no earlier window scored (transformers'\n"
                 "sliding-window recipe); --max-windows stops early. --device cuda runs the windows on the GPU\n"
                 "(--fp16 1: fp16 projection weights there). --config reads the same settings from YAML (model,\n"
                 "device, fp16, tokens | text, perplexity: {ctx, stride, max_windows, batch}); flags override it.");
            return 0;
        }
        if (!v) {
            rc = qtk_cli_usage_error("perplexity: %s needs a value", a);
            break;
        }
        int bad = 0;
        if (!strcmp(a, "--config")) { // read before this loop
        } else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokens")) tokens = v;
        else if (!strcmp(a, "--text")) text = v;
        else if (!strcmp(a, "--json")) json = v;
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--fp16")) bad = qtk_cli_int_arg(a, v, 0, 1, &fp16);
        else if (!strcmp(a, "--ctx")) bad = qtk_cli_int_arg(a, v, 2, 1 << 20, &ctx);
        else if (!strcmp(a, "--stride")) bad = qtk_cli_int_arg(a, v, 1, 1 << 20, &stride);
        else if (!strcmp(a, "--max-windows")) bad = qtk_cli_int_arg(a, v, 0, 1 << 30, &max_windows);
        else if (!strcmp(a, "--batch")) bad = qtk_cli_int_arg(a, v, 1, 4096, &batch);
        else bad = qtk_cli_usage_error("perplexity: unknown option \"%s\"", a);
        rc = bad;
        i++;
    }
    if (!rc && !model) rc = qtk_cli_usage_error("perplexity: --model DIR is required");
    if (!rc && !tokens == !text) rc = qtk_cli_usage_error("perplexity: give one of --tokens FILE and --text FILE");
    if (!stride) stride = ctx;
    if (!rc && (ctx < 2 || stride < 1 || batch < 1 || max_windows < 0))
        rc = qtk_cli_usage_error("perplexity: ctx %d (at least 2), stride %d, batch %d and max_windows %d out of range", ctx,
                                 stride, batch, max_windows);
    if (!rc && stride > ctx) rc = qtk_cli_usage_error("perplexity: --stride %d is longer than --ctx %d", stride, ctx);
    if (!rc) rc = device_arg("perplexity", device, fp16, &cuda);
    qtk_mamba m;
    if (!rc && qtk_mamba_load(&m, model) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
    if (rc) {
        qtk_yaml_free(&lm_schema, cf);
        return rc;
    }
    int32_t *ids;
    size_t n, scored;
    double ppl, t0 = qtk_now();
    qtk_status st = load_ids(tokens, text, &m, &ids, &n);
    if (st == QTK_OK && cuda) { // the windows are at most ctx tokens, at most batch of them at once
        qtk_mamba_cuda *g = NULL;
        st = qtk_mamba_cuda_create(&g, &m, batch, ctx, fp16);
        if (st == QTK_OK)
            st = qtk_lm_perplexity(gpu_windows, g, m.cfg.vocab, ids, n, ctx, stride, max_windows, batch, &ppl, &scored);
        qtk_mamba_cuda_destroy(g);
    } else if (st == QTK_OK) st = qtk_mamba_perplexity(&m, ids, n, ctx, stride, max_windows, batch, &ppl, &scored);
    double secs = qtk_now() - t0;
    free(ids);
    if (st != QTK_OK) {
        qtk_mamba_free(&m);
        qtk_yaml_free(&lm_schema, cf);
        return qtk_cli_error("%s", qtk_last_error());
    }
    printf("%s on %s: perplexity %.4f over %zu scored tokens (context %d, stride %d), %.1f s, %.0f tokens/s on the %s\n",
           model, tokens ? tokens : text, ppl, scored, ctx, stride, secs, scored / (secs > 0 ? secs : 1),
           cuda ? (fp16 ? "GPU (fp16 projections)" : "GPU") : "CPU");
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "data", tokens ? tokens : text);
        cJSON_AddNumberToObject(o, "perplexity", ppl);
        cJSON_AddNumberToObject(o, "scored_tokens", (double)scored);
        cJSON_AddNumberToObject(o, "ctx", ctx);
        cJSON_AddNumberToObject(o, "stride", stride);
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddStringToObject(o, "device", cuda ? "cuda" : "cpu");
        cJSON_AddNumberToObject(o, "fp16", fp16);
        if (qtk_write_json_atomic(json, o) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
        cJSON_Delete(o);
    }
    qtk_mamba_free(&m);
    qtk_yaml_free(&lm_schema, cf);
    return rc;
}

int qtk_cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *prompt_ids = NULL, *device = NULL;
    int max_new = 200, top_k = 0, seed = 0, fp16 = 0, cuda = 0;
    float temperature = 1.0f;
    lm_config *cf;
    int rc = load_lm_config(argc, argv, &cf);
    if (rc) return rc;
    if (cf) {
        model = cf->model, prompt = cf->generate.prompt, prompt_ids = cf->generate.prompt_ids, device = cf->device;
        fp16 = cf->fp16;
        if (cf->generate.max_new) max_new = cf->generate.max_new;
        if (cf->generate.top_k) top_k = cf->generate.top_k;
        if (cf->generate.seed) seed = cf->generate.seed;
        if (cf->generate.temperature != 0) temperature = cf->generate.temperature;
    }
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            qtk_yaml_free(&lm_schema, cf);
            puts("usage: qtk generate [--config FILE.yaml] --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--max-new 200]\n"
                 "                    [--top-k 0] [--temperature 1.0] [--seed 0] [--device cpu|cuda] [--fp16 0|1]\n\n"
                 "Continues a prompt with a Mamba / Mamba2 language model: prefill, then one token at a time from\n"
                 "the conv and SSM states. --top-k 0 or 1 is greedy; K > 1 samples among the K most likely at the\n"
                 "temperature (seeded). --prompt is read as bytes (byte-level vocabulary, as models/tiny_mamba*),\n"
                 "and the output is then text; with --prompt-ids the output is token ids. --device cuda decodes on\n"
                 "the GPU (a CUDA graph per token; --fp16 1: fp16 projection weights). --config reads the same\n"
                 "settings from YAML (model, device, fp16, generate: {prompt | prompt_ids, max_new, top_k,\n"
                 "temperature, seed}); flags override it.");
            return 0;
        }
        if (!v) {
            rc = qtk_cli_usage_error("generate: %s needs a value", a);
            break;
        }
        int bad = 0;
        if (!strcmp(a, "--config")) { // read before this loop
        } else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--prompt-ids")) prompt_ids = v;
        else if (!strcmp(a, "--max-new")) bad = qtk_cli_int_arg(a, v, 1, 1 << 20, &max_new);
        else if (!strcmp(a, "--top-k")) bad = qtk_cli_int_arg(a, v, 0, 1 << 24, &top_k);
        else if (!strcmp(a, "--seed")) bad = qtk_cli_int_arg(a, v, 0, 1 << 30, &seed);
        else if (!strcmp(a, "--temperature")) bad = float_arg(a, v, 1e-3, 100, &temperature);
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--fp16")) bad = qtk_cli_int_arg(a, v, 0, 1, &fp16);
        else bad = qtk_cli_usage_error("generate: unknown option \"%s\"", a);
        rc = bad;
        i++;
    }
    if (!rc && !model) rc = qtk_cli_usage_error("generate: --model DIR is required");
    if (!rc && !prompt == !prompt_ids) rc = qtk_cli_usage_error("generate: give one of --prompt TEXT and --prompt-ids LIST");
    if (!rc && (max_new < 1 || top_k < 0 || seed < 0 || !(temperature > 0)))
        rc = qtk_cli_usage_error("generate: max_new %d (at least 1), top_k %d, seed %d and temperature %g out of range",
                                 max_new, top_k, seed, temperature);
    if (!rc) rc = device_arg("generate", device, fp16, &cuda);
    qtk_mamba m;
    if (!rc && qtk_mamba_load(&m, model) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
    if (rc) {
        qtk_yaml_free(&lm_schema, cf);
        return rc;
    }
    const int V = m.cfg.vocab;
    size_t n = prompt ? strlen(prompt) : 1;
    for (const char *p = prompt_ids; p && *p; p++) n += *p == ',';
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    float *logits = malloc((n ? n : 1) * (size_t)V * sizeof *logits);
    if (!ids || !logits) rc = qtk_cli_error("out of memory");
    else if (prompt) {
        if (V < 256) rc = qtk_cli_error("--prompt is read as bytes, but the model's vocabulary has %d ids (< 256)", V);
        for (size_t i = 0; i < n; i++) ids[i] = (unsigned char)prompt[i];
    } else {
        const char *p = prompt_ids;
        for (size_t i = 0; i < n && !rc; i++) {
            char *end;
            long x = strtol(p, &end, 10);
            if (end == p || x < 0 || x >= V || (*end && *end != ','))
                rc = qtk_cli_usage_error("--prompt-ids: item %zu is not a token id in 0..%d", i + 1, V - 1);
            ids[i] = (int32_t)x;
            p = *end ? end + 1 : end;
        }
    }
    if (!rc && n == 0) rc = qtk_cli_usage_error("generate: the prompt is empty");
    qtk_mamba_state s = {0};
    qtk_mamba_cuda *g = NULL;
    if (!rc && cuda &&
        (qtk_mamba_cuda_create(&g, &m, 1, (int)n, fp16) != QTK_OK || qtk_mamba_cuda_reset(g, 1) != QTK_OK ||
         qtk_mamba_cuda_prefill(g, ids, (int)n, logits) != QTK_OK))
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc && !cuda &&
        (qtk_mamba_state_init(&s, &m, 1) != QTK_OK || qtk_mamba_prefill(&m, &s, ids, (int)n, logits, QTK_SCAN_AUTO) != QTK_OK))
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc) {
        qtk_rng r;
        qtk_rng_seed(&r, (uint64_t)seed, 7);
        const int bytes = prompt != NULL;
        if (bytes) fputs(prompt, stdout);
        else
            for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        const float *last = logits + (n - 1) * V;
        double t0 = qtk_now();
        for (int k = 0; k < max_new && !rc; k++) {
            int32_t next = qtk_sample_token(last, V, top_k, temperature, qtk_rng_uniform_f64(&r));
            if (bytes) putchar(next);
            else printf(" %d", next);
            if ((g ? qtk_mamba_cuda_decode(g, &next, logits, 1) : qtk_mamba_decode(&m, &s, &next, logits)) != QTK_OK)
                rc = qtk_cli_error("%s", qtk_last_error());
            last = logits;
        }
        double secs = qtk_now() - t0;
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "qtk generate: %d tokens in %.2f s (%.1f tokens/s, %s)\n", max_new, secs,
                max_new / (secs > 0 ? secs : 1), g ? (fp16 ? "GPU, fp16 projections" : "GPU") : "CPU");
    }
    qtk_mamba_cuda_destroy(g);
    qtk_mamba_state_free(&s);
    free(ids);
    free(logits);
    qtk_mamba_free(&m);
    qtk_yaml_free(&lm_schema, cf);
    return rc;
}
