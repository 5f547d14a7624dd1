// qtk perplexity / qtk generate: the Mamba language models of ssm/ from the command line.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/rng.h"
#include "../core/timer.h"
#include "../datasets/bpe.h"
#include "../datasets/tokens.h"
#include "../core/cuda/qtk_cuda.h"
#include "../ssm/mamba.h"
#include "../ssm/mamba_cuda.h"
#include "../ssm/quamba.h"
#include "../ssm/quamba_cuda.h"
#include "cli.h"
#include "config.h"
#include "opts.h"

// --config FILE for both commands: a run config of a mamba model (config.h; the same loader as qtk run), of which
// they read model.checkpoint, device, fp16, eval.perplexity {tokens | text, ctx, stride, max_windows, batch} and
// eval.generate {prompt | prompt_ids, max_new, top_k, temperature, seed}; flags override it.
static int load_lm_config(const char *cmd, const char *path, qtk_run_config **out) {
    *out = NULL;
    if (!path) return 0;
    if (qtk_config_load(path, NULL, 0, out) != QTK_OK) {
        const char *e = qtk_last_error();
        if (strstr(e, ": model: Expecting MAPPING")) // the LM commands' own format before they took run configs
            return qtk_cli_error("%s (a run config now: model: {kind: mamba, checkpoint: DIR} and eval.perplexity / "
                                 "eval.generate, as experiments/configs/ssm/tiny_mamba2_kjv.yaml)", e);
        return qtk_cli_error("%s", e);
    }
    if (strcmp((*out)->model.kind, "mamba")) {
        int rc = qtk_cli_error("%s --config %s: model.kind is %s; %s reads a mamba model's config", cmd, path,
                               (*out)->model.kind, cmd);
        qtk_config_free(*out);
        *out = NULL;
        return rc;
    }
    return 0;
}

// a flag's value if given, else the config's if set, else the default
#define PICK_STR(flag, conf) ((flag) ? (flag) : (conf))
#define PICK_INT(flag, conf, dflt) ((flag) >= 0 ? (flag) : (conf) ? (conf) : (dflt))

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

// tokenizer.json in the model's folder (a checkpoint file's folder) into p; 1 when it exists
static int tokenizer_path(const char *model, char *p, size_t cap) {
    struct stat sb;
    if (stat(model, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        const char *slash = strrchr(model, '/');
        snprintf(p, cap, "%.*s/tokenizer.json", slash ? (int)(slash - model) : 1, slash ? model : ".");
    } else snprintf(p, cap, "%s/tokenizer.json", model);
    return access(p, R_OK) == 0;
}

qtk_status qtk_lm_tokenizer(const char *model, int vocab, qtk_bpe **out) {
    *out = NULL;
    char p[4200];
    if (!tokenizer_path(model, p, sizeof p)) return QTK_OK;
    QTK_TRY(qtk_bpe_load(out, p));
    if (qtk_bpe_vocab_size(*out) > vocab) {
        const int n = qtk_bpe_vocab_size(*out);
        qtk_bpe_free(*out);
        *out = NULL;
        return qtk_fail(QTK_ERR_FORMAT, "%s has ids up to %d, the model's vocabulary %d", p, n - 1, vocab);
    }
    return QTK_OK;
}

qtk_status qtk_lm_load_ids(const char *model, int vocab, const char *tokens, const char *text, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (text) {
        // the model's tokenizer.json; without one, bytes are the tokens of a byte-level model (a vocabulary of 256)
        qtk_bpe *bpe;
        QTK_TRY(qtk_lm_tokenizer(model, vocab, &bpe));
        if (!bpe && vocab != 256)
            return qtk_fail(QTK_ERR_ARG, "%s: text is read as bytes only for a byte-level model (a vocabulary of 256); "
                            "%s has %d ids and no tokenizer.json: add its tokenizer.json or give a token file (tokens)",
                            text, model, vocab);
        size_t len;
        char *buf = qtk_read_text(text, &len);
        if (!buf) {
            qtk_bpe_free(bpe);
            return qtk_fail(QTK_ERR_IO, "%s: cannot read", text);
        }
        if (bpe) {
            qtk_status st = qtk_bpe_encode(bpe, buf, len, ids, n);
            free(buf);
            qtk_bpe_free(bpe);
            if (st != QTK_OK) return qtk_fail(st, "%s: %s", text, qtk_last_error());
            return QTK_OK;
        }
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
    if (t.vocab_size > (uint32_t)vocab)
        st = qtk_fail(QTK_ERR_ARG, "%s: vocabulary of %u ids, the model has %d", tokens, t.vocab_size, vocab);
    else if (!(*ids = malloc((t.count ? t.count : 1) * sizeof **ids))) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    else {
        for (size_t i = 0; i < t.count; i++) (*ids)[i] = (int32_t)qtk_tokens_get(&t, i);
        *n = t.count;
    }
    qtk_tokens_close(&t);
    return st;
}

qtk_status qtk_lm_eval(const char *model, const char *tokens, const char *text, int ctx, int stride, int max_windows,
                       int batch, int cuda, int fp16, double *ppl, size_t *scored) {
    int32_t *ids;
    size_t n;
    if (qtk_quamba_is_folder(model)) { // a Quamba checkpoint: its int8 forward
        qtk_quamba q;
        QTK_TRY(qtk_quamba_load(&q, model));
        qtk_status st = qtk_lm_load_ids(model, q.cfg.vocab, tokens, text, &ids, &n);
        if (st == QTK_OK)
            st = cuda ? qtk_quamba_cuda_perplexity(&q, ids, n, ctx, stride, max_windows, batch, ppl, scored)
                      : qtk_quamba_perplexity(&q, ids, n, ctx, stride, max_windows, batch, ppl, scored);
        free(ids);
        qtk_quamba_free(&q);
        return st;
    }
    qtk_mamba m;
    QTK_TRY(qtk_mamba_load(&m, model));
    qtk_status st = qtk_lm_load_ids(model, m.cfg.vocab, tokens, text, &ids, &n);
    if (st == QTK_OK && cuda) { // the windows are at most ctx tokens, at most batch of them at once
        qtk_mamba_cuda *g = NULL;
        st = qtk_mamba_cuda_create(&g, &m, batch, ctx, fp16);
        if (st == QTK_OK) st = qtk_lm_perplexity(gpu_windows, g, m.cfg.vocab, ids, n, ctx, stride, max_windows, batch, ppl, scored);
        qtk_mamba_cuda_destroy(g);
    } else if (st == QTK_OK) st = qtk_mamba_perplexity(&m, ids, n, ctx, stride, max_windows, batch, ppl, scored);
    free(ids);
    qtk_mamba_free(&m);
    return st;
}

int qtk_cmd_perplexity(int argc, char **argv) {
    const char *config = NULL, *model = NULL, *tokens = NULL, *text = NULL, *json = NULL, *device = NULL;
    int ctx = -1, stride = -1, max_windows = -1, batch = -1, fp16 = -1, cuda = 0, n_pos;
    const qtk_opt opts[] = {
        {"config", QTK_OPT_STR, &config, "FILE.yaml", 0, 0, "the same settings from YAML; flags override it"},
        {"model", QTK_OPT_STR, &model, "DIR", 0, 0, "a HuggingFace Mamba / Mamba2 checkpoint folder"},
        {"tokens", QTK_OPT_STR, &tokens, "FILE", 0, 0, "a token file (datasets/tokens.h)"},
        {"text", QTK_OPT_STR, &text, "FILE", 0, 0, "a text file read as bytes (byte-level vocabulary)"},
        {"ctx", QTK_OPT_INT, &ctx, "N", 2, 1 << 20, "window length (1024)"},
        {"stride", QTK_OPT_INT, &stride, "S", 1, 1 << 20, "window step (default: ctx, no overlap)"},
        {"max-windows", QTK_OPT_INT, &max_windows, "N", 0, 1 << 30, "stop after N windows (0: all)"},
        {"batch", QTK_OPT_INT, &batch, "B", 1, 4096, "windows at once (8)"},
        {"device", QTK_OPT_STR, &device, "cpu|cuda", 0, 0, "where the windows run"},
        {"fp16", QTK_OPT_INT, &fp16, "0|1", 0, 1, "cuda: fp16 projection weights"},
        {"json", QTK_OPT_STR, &json, "FILE", 0, 0, "write the result as JSON"},
    };
    const qtk_cmd_spec spec = {
        "perplexity", "[--config FILE.yaml] --model DIR (--tokens FILE | --text FILE) [--ctx 1024] [--stride CTX]\n"
        "                      [--max-windows N] [--batch 8] [--device cpu|cuda] [--fp16 0|1] [--json FILE]",
        "Perplexity of a Mamba / Mamba2 language model (config.json and model.safetensors) on a token file\n"
        "or on a text file read as bytes (as models/tiny_mamba*). Windows of CTX tokens every STRIDE tokens,\n"
        "each scoring the tokens no earlier window scored (transformers' sliding-window recipe). --config\n"
        "reads a mamba run config (qtk run's): model.checkpoint, device, fp16 and eval.perplexity: {tokens |\n"
        "text, ctx, stride, max_windows, batch}.",
        opts, 11, 0, 0};
    int rc = qtk_opts_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc) return rc < 0 ? 0 : rc;
    qtk_run_config *cf;
    if ((rc = load_lm_config("perplexity", config, &cf))) return rc;
    if (cf) { // the config's values where no flag gave one
        model = PICK_STR(model, cf->model.checkpoint), device = PICK_STR(device, cf->device);
        if (!tokens && !text) tokens = cf->eval.perplexity.tokens, text = cf->eval.perplexity.text;
    }
    ctx = PICK_INT(ctx, cf ? cf->eval.perplexity.ctx : 0, 1024);
    stride = PICK_INT(stride, cf && ctx == cf->eval.perplexity.ctx ? cf->eval.perplexity.stride : 0, 0);
    max_windows = PICK_INT(max_windows, cf ? cf->eval.perplexity.max_windows : 0, 0);
    batch = PICK_INT(batch, cf ? cf->eval.perplexity.batch : 0, 8);
    fp16 = PICK_INT(fp16, cf ? cf->fp16 : 0, 0);
    if (!rc && !model) rc = qtk_cli_usage_error("perplexity: --model DIR is required");
    if (!rc && !tokens == !text) rc = qtk_cli_usage_error("perplexity: give one of --tokens FILE and --text FILE");
    if (!stride) stride = ctx;
    if (!rc && (ctx < 2 || stride < 1 || batch < 1 || max_windows < 0))
        rc = qtk_cli_usage_error("perplexity: ctx %d (at least 2), stride %d, batch %d and max_windows %d out of range", ctx,
                                 stride, batch, max_windows);
    if (!rc && stride > ctx) rc = qtk_cli_usage_error("perplexity: --stride %d is longer than --ctx %d", stride, ctx);
    if (!rc) rc = device_arg("perplexity", device, fp16, &cuda);
    if (rc) {
        qtk_config_free(cf);
        return rc;
    }
    size_t scored;
    double ppl, t0 = qtk_now();
    qtk_status st = qtk_lm_eval(model, tokens, text, ctx, stride, max_windows, batch, cuda, fp16, &ppl, &scored);
    double secs = qtk_now() - t0;
    if (st != QTK_OK) {
        qtk_config_free(cf);
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
    qtk_config_free(cf);
    return rc;
}

int qtk_cmd_generate(int argc, char **argv) {
    const char *config = NULL, *model = NULL, *prompt = NULL, *prompt_ids = NULL, *device = NULL;
    int max_new = -1, top_k = -1, seed = -1, fp16 = -1, cuda = 0, n_pos;
    float temperature = 0.0f;
    const qtk_opt opts[] = {
        {"config", QTK_OPT_STR, &config, "FILE.yaml", 0, 0, "the same settings from YAML; flags override it"},
        {"model", QTK_OPT_STR, &model, "DIR", 0, 0, "a HuggingFace Mamba / Mamba2 checkpoint folder"},
        {"prompt", QTK_OPT_STR, &prompt, "TEXT", 0, 0, "the prompt as bytes (the output is then text)"},
        {"prompt-ids", QTK_OPT_STR, &prompt_ids, "1,2,3", 0, 0, "the prompt as token ids (the output too)"},
        {"max-new", QTK_OPT_INT, &max_new, "N", 1, 1 << 20, "tokens to generate (200)"},
        {"top-k", QTK_OPT_INT, &top_k, "K", 0, 1 << 24, "0 or 1: greedy; K > 1: sample among the K most likely"},
        {"temperature", QTK_OPT_FLOAT, &temperature, "T", 1e-3, 100, "sampling temperature (1.0)"},
        {"seed", QTK_OPT_INT, &seed, "N", 0, 1 << 30, "the sampler's seed (0)"},
        {"device", QTK_OPT_STR, &device, "cpu|cuda", 0, 0, "where it decodes (cuda: a CUDA graph per token)"},
        {"fp16", QTK_OPT_INT, &fp16, "0|1", 0, 1, "cuda: fp16 projection weights"},
    };
    const qtk_cmd_spec spec = {
        "generate", "[--config FILE.yaml] --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [--max-new 200]\n"
        "                    [--top-k 0] [--temperature 1.0] [--seed 0] [--device cpu|cuda] [--fp16 0|1]",
        "Continues a prompt with a Mamba / Mamba2 language model: prefill, then one token at a time from the\n"
        "conv and SSM states. --config reads a mamba run config (qtk run's): model.checkpoint, device, fp16 and\n"
        "eval.generate: {prompt | prompt_ids, max_new, top_k, temperature, seed}.",
        opts, 10, 0, 0};
    int rc = qtk_opts_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc) return rc < 0 ? 0 : rc;
    qtk_run_config *cf;
    if ((rc = load_lm_config("generate", config, &cf))) return rc;
    const qtk_cfg_generate *cg = cf ? &cf->eval.generate : NULL;
    if (cf) {
        model = PICK_STR(model, cf->model.checkpoint), device = PICK_STR(device, cf->device);
        if (!prompt && !prompt_ids) prompt = cg->prompt, prompt_ids = cg->prompt_ids;
    }
    max_new = PICK_INT(max_new, cg ? cg->max_new : 0, 200);
    top_k = PICK_INT(top_k, cg ? cg->top_k : 0, 0);
    seed = PICK_INT(seed, cg ? cg->seed : 0, 0);
    fp16 = PICK_INT(fp16, cf ? cf->fp16 : 0, 0);
    if (temperature == 0.0f) temperature = cg && cg->temperature != 0 ? (float)cg->temperature : 1.0f;
    if (!rc && !model) rc = qtk_cli_usage_error("generate: --model DIR is required");
    if (!rc && !prompt == !prompt_ids) rc = qtk_cli_usage_error("generate: give one of --prompt TEXT and --prompt-ids LIST");
    if (!rc && (max_new < 1 || top_k < 0 || seed < 0 || !(temperature > 0)))
        rc = qtk_cli_usage_error("generate: max_new %d (at least 1), top_k %d, seed %d and temperature %g out of range",
                                 max_new, top_k, seed, temperature);
    if (!rc) rc = device_arg("generate", device, fp16, &cuda);
    qtk_mamba m = {0};
    qtk_quamba q = {0};
    const int quant = !rc && qtk_quamba_is_folder(model);
    if (!rc && quant && qtk_quamba_load(&q, model) != QTK_OK)
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc && !quant && qtk_mamba_load(&m, model) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
    if (rc) {
        qtk_config_free(cf);
        return rc;
    }
    const int V = quant ? q.cfg.vocab : m.cfg.vocab;
    qtk_bpe *bpe = NULL;
    if (prompt && qtk_lm_tokenizer(model, V, &bpe) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
    size_t n = prompt ? strlen(prompt) : 1;
    for (const char *p = prompt_ids; p && *p; p++) n += *p == ',';
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    float *logits = malloc((n ? n : 1) * (size_t)V * sizeof *logits);
    if (!ids || !logits) rc = qtk_cli_error("out of memory");
    else if (prompt && bpe) { // through the model's tokenizer.json
        int32_t *t = NULL;
        if (qtk_bpe_encode(bpe, prompt, strlen(prompt), &t, &n) != QTK_OK) rc = qtk_cli_error("--prompt: %s", qtk_last_error());
        else {
            free(ids), free(logits);
            ids = t;
            logits = malloc((n ? n : 1) * (size_t)V * sizeof *logits);
            if (!logits) rc = qtk_cli_error("out of memory");
        }
    } else if (prompt) {
        if (V != 256)
            rc = qtk_cli_error("--prompt is read as bytes for a byte-level model (256 ids); %s has %d ids and no "
                               "tokenizer.json (give --prompt-ids)", model, V);
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
    qtk_quamba_state qs = {0};
    qtk_mamba_cuda *g = NULL;
    qtk_quamba_cuda *gq = NULL;
    if (!rc && cuda && quant &&
        (qtk_quamba_cuda_create(&gq, &q, 1, (int)n) != QTK_OK || qtk_quamba_cuda_reset(gq, 1) != QTK_OK ||
         qtk_quamba_cuda_prefill(gq, ids, (int)n, logits) != QTK_OK))
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc && cuda && !quant &&
        (qtk_mamba_cuda_create(&g, &m, 1, (int)n, fp16) != QTK_OK || qtk_mamba_cuda_reset(g, 1) != QTK_OK ||
         qtk_mamba_cuda_prefill(g, ids, (int)n, logits) != QTK_OK))
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc && !cuda && quant &&
        (qtk_quamba_state_init(&qs, &q, 1) != QTK_OK || qtk_quamba_prefill(&q, &qs, ids, (int)n, logits) != QTK_OK))
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc && !cuda && !quant &&
        (qtk_mamba_state_init(&s, &m, 1) != QTK_OK || qtk_mamba_prefill(&m, &s, ids, (int)n, logits, QTK_SCAN_AUTO) != QTK_OK))
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc) {
        qtk_rng r;
        qtk_rng_seed(&r, (uint64_t)seed, 7);
        const int bytes = prompt != NULL;
        if (bytes) fputs(prompt, stdout);
        else
            for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        // BPE output: the ids so far decoded as one text, the part beyond what was printed (a character's bytes
        // may come in several tokens)
        int32_t *gen = bpe ? malloc((size_t)max_new * sizeof *gen) : NULL;
        size_t shown = 0;
        const float *last = logits + (n - 1) * V;
        double t0 = qtk_now();
        for (int k = 0; k < max_new && !rc; k++) {
            int32_t next = qtk_sample_token(last, V, top_k, temperature, qtk_rng_uniform_f64(&r));
            if (gen) {
                gen[k] = next;
                char *txt;
                size_t len;
                if (qtk_bpe_decode(bpe, gen, (size_t)k + 1, &txt, &len) == QTK_OK) {
                    if (len > shown) fwrite(txt + shown, 1, len - shown, stdout), shown = len;
                    free(txt);
                } else printf("[%d]", next);
            } else if (bytes) putchar(next);
            else printf(" %d", next);
            if ((g       ? qtk_mamba_cuda_decode(g, &next, logits, 1)
                 : gq    ? qtk_quamba_cuda_decode(gq, &next, logits, 1)
                 : quant ? qtk_quamba_decode(&q, &qs, &next, logits)
                         : qtk_mamba_decode(&m, &s, &next, logits)) != QTK_OK)
                rc = qtk_cli_error("%s", qtk_last_error());
            last = logits;
        }
        double secs = qtk_now() - t0;
        free(gen);
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "qtk generate: %d tokens in %.2f s (%.1f tokens/s, %s)\n", max_new, secs,
                max_new / (secs > 0 ? secs : 1),
                g ? (fp16 ? "GPU, fp16 projections" : "GPU") : gq ? "GPU, Quamba int8" : quant ? "CPU, Quamba int8" : "CPU");
    }
    qtk_mamba_cuda_destroy(g);
    qtk_quamba_cuda_destroy(gq);
    qtk_bpe_free(bpe);
    qtk_mamba_state_free(&s);
    qtk_quamba_state_free(&qs);
    free(ids);
    free(logits);
    qtk_mamba_free(&m);
    qtk_quamba_free(&q);
    qtk_config_free(cf);
    return rc;
}

int qtk_cmd_tokenize(int argc, char **argv) {
    const char *tok = NULL, *text = NULL, *out = NULL;
    int n_pos;
    const qtk_opt opts[] = {
        {"tokenizer", QTK_OPT_STR, &tok, "FILE", 0, 0, "a HuggingFace tokenizer.json (byte-level BPE)"},
        {"text", QTK_OPT_STR, &text, "FILE", 0, 0, "UTF-8 text to tokenize"},
        {"out", QTK_OPT_STR, &out, "FILE.tok", 0, 0, "the token file to write (datasets/tokens.h; FILE.tok.json beside)"},
    };
    const qtk_cmd_spec spec = {
        "tokenize", "--tokenizer tokenizer.json --text FILE --out FILE.tok",
        "Tokenizes a text file with a byte-level BPE tokenizer.json (GPT-2 / GPT-NeoX: the HF Mamba checkpoints')\n"
        "into a token file that --tokens, eval.perplexity.tokens and calibration.tokens read.",
        opts, 3, 0, 0};
    int rc = qtk_opts_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc) return rc < 0 ? 0 : rc;
    if (!tok || !text || !out) return qtk_cli_usage_error("tokenize: --tokenizer, --text and --out are required");
    qtk_bpe *bpe;
    if (qtk_bpe_load(&bpe, tok) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    size_t len, n = 0;
    char *buf = qtk_read_text(text, &len);
    int32_t *ids = NULL;
    double t0 = qtk_now();
    if (!buf) rc = qtk_cli_error("%s: cannot read", text);
    else if (qtk_bpe_encode(bpe, buf, len, &ids, &n) != QTK_OK) rc = qtk_cli_error("%s: %s", text, qtk_last_error());
    const double secs = qtk_now() - t0;
    if (!rc && qtk_tokens_write(out, (const uint32_t *)ids, n, (uint32_t)qtk_bpe_vocab_size(bpe)) != QTK_OK)
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc)
        printf("%s: %zu bytes -> %zu tokens (%.2f bytes per token, vocabulary %d), %.2f s; wrote %s\n", text, len, n,
               n ? (double)len / n : 0.0, qtk_bpe_vocab_size(bpe), secs, out);
    free(buf), free(ids);
    qtk_bpe_free(bpe);
    return rc;
}
