// Mamba1 / Mamba2 on the CPU against transformers (tools/make_mamba_fixtures.py): logits of
// random-weight models shaped like mamba-130m / mamba2-130m and two small ones, the checkpoints
// regenerated here from PCG32 with transformers' own config.json; then properties: prefill-then-decode
// equals one longer prefill, chunked SSD equals the recurrence, batch rows are independent, fp16 / bf16
// checkpoints load as their float32 values, and bad checkpoints fail naming the key or tensor.
#define QTK_FIXTURES "tests/fixtures/ssm"
#include "../ssm/mamba.h"
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#define SEED 2026

// the fixture case's checkpoint in dir: config.json (the stored text) and model.safetensors
// (PCG32 stream 0, tensors in sorted-name order) in dtype
static void write_case(const cJSON *cs, const char *dir, qtk_dtype dtype) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(cJSON_GetObjectItem(cs, "config_json")->valuestring, f);
    fclose(f);
    const cJSON *params = cJSON_GetObjectItem(cs, "params"), *e;
    int n = cJSON_GetArraySize(params), i = 0;
    qtk_st_entry *ent = calloc((size_t)n, sizeof *ent);
    int64_t(*shapes)[4] = calloc((size_t)n, sizeof *shapes);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    qtk_rng r;
    qtk_rng_seed(&r, SEED, 0);
    cJSON_ArrayForEach(e, params) {
        int nd;
        tu_json_shape(e, &nd, shapes[i]);
        size_t numel = 1;
        for (int k = 0; k < nd; k++) numel *= (size_t)shapes[i][k];
        float lo = (float)cJSON_GetObjectItem(e, "lo")->valuedouble, hi = (float)cJSON_GetObjectItem(e, "hi")->valuedouble;
        float *v = malloc(numel * sizeof *v);
        for (size_t k = 0; k < numel; k++) v[k] = qtk_rng_range(&r, lo, hi);
        if (dtype != QTK_F32) {
            uint16_t *h = malloc(numel * 2);
            for (size_t k = 0; k < numel; k++) h[k] = dtype == QTK_F16 ? qtk_f32_to_f16(v[k]) : qtk_f32_to_bf16(v[k]);
            free(v);
            v = (float *)h;
        }
        bufs[i] = v;
        ent[i] = (qtk_st_entry){cJSON_GetObjectItem(e, "name")->valuestring, dtype, nd, shapes[i], v};
        i++;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    ck_qtk(qtk_st_write(p, ent, (size_t)n, NULL, 0));
    for (int k = 0; k < n; k++) free(bufs[k]);
    free(bufs);
    free(shapes);
    free(ent);
}

#define max_rel tu_max_rel

typedef struct {
    qtk_safetensors st;
    cJSON *cases;
} fixture;

static const cJSON *find_case(fixture *fx, const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, fx->cases) if (!strcmp(cJSON_GetObjectItem(c, "name")->valuestring, name)) return c;
    ck_abort_msg("fixture case %s missing", name);
    return NULL;
}

static void fixture_open(fixture *fx) {
    tu_open(&fx->st, "mamba.safetensors");
    fx->cases = tu_meta_json(&fx->st, "cases");
}

static void fixture_close(fixture *fx) {
    cJSON_Delete(fx->cases);
    qtk_st_close(&fx->st);
}

// worst |a - b| and max |b| over row slices, for one error relative to the reference's scale
typedef struct {
    double md, mx;
} err_t;

static void err_add(err_t *e, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) e->md = INFINITY;
        e->mx = fmax(e->mx, fabs((double)b[i]));
        e->md = fmax(e->md, fabs((double)a[i] - b[i]));
    }
}

static double err_rel(const err_t *e) { return e->md / (e->mx > 0 ? e->mx : 1); }

// Logits of the whole (B, L) prefill against transformers, with every scan; then the first L/2 tokens
// as a prefill and the rest decoded one token at a time, each step against the same reference; then
// the last sequence alone (batch rows are independent).
static void check_case(fixture *fx, const char *name) {
    const cJSON *cs = find_case(fx, name);
    const int B = tu_json_int(cs, "batch"), L = tu_json_int(cs, "length");
    write_case(cs, tu_tmp, QTK_F32);
    qtk_mamba m;
    ck_qtk(qtk_mamba_load(&m, tu_tmp));
    const int V = m.cfg.vocab;
    size_t n, nt;
    float *want = tu_load(&fx->st, name, "logits", &n), *tk = tu_load(&fx->st, name, "tokens", &nt);
    ck_assert_uint_eq(n, (size_t)B * L * V);
    ck_assert_uint_eq(nt, (size_t)B * L);
    int32_t *tok = malloc(nt * sizeof *tok), *part = malloc(nt * sizeof *part);
    for (size_t i = 0; i < nt; i++) tok[i] = (int32_t)tk[i];
    float *got = malloc(n * sizeof *got), *dl = malloc((size_t)B * V * sizeof *dl);
    qtk_mamba_state s;
    ck_qtk(qtk_mamba_state_init(&s, &m, B));
    const int modes = m.cfg.arch == QTK_MAMBA2 ? 2 : 1;
    for (int md = 0; md < modes; md++) {
        qtk_mamba_state_reset(&s);
        ck_qtk(qtk_mamba_prefill(&m, &s, tok, L, got, md ? QTK_SCAN_RECURRENT : QTK_SCAN_AUTO));
        double e = max_rel(got, want, n);
        printf("%s (%s, %d layers, B %d, L %d): %s, max error vs transformers %.2e relative\n", name,
               m.cfg.arch == QTK_MAMBA1 ? "Mamba1" : "Mamba2", m.cfg.n_layers, B, L,
               md ? "recurrence" : m.cfg.arch == QTK_MAMBA1 ? "selective scan" : "chunked SSD", e);
        ck_assert_msg(e <= 1e-4, "%s: logits differ from transformers by %.3g relative", name, e);
    }
    // state handoff: prefill L1 tokens, then decode the rest one at a time
    const int L1 = L / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L1; t++) part[b * L1 + t] = tok[b * L + t];
    qtk_mamba_state_reset(&s);
    ck_qtk(qtk_mamba_prefill(&m, &s, part, L1, got, QTK_SCAN_AUTO));
    err_t e = {0, 0};
    for (int b = 0; b < B; b++) err_add(&e, got + (size_t)b * L1 * V, want + (size_t)b * L * V, (size_t)L1 * V);
    for (int t = L1; t < L; t++) {
        for (int b = 0; b < B; b++) part[b] = tok[b * L + t];
        ck_qtk(qtk_mamba_decode(&m, &s, part, dl));
        for (int b = 0; b < B; b++) err_add(&e, dl + (size_t)b * V, want + ((size_t)b * L + t) * V, (size_t)V);
    }
    ck_assert_int_eq(s.pos, L);
    printf("  prefill %d + decode %d: max error %.2e\n", L1, L - L1, err_rel(&e));
    ck_assert_msg(err_rel(&e) <= 1e-4, "%s: prefill + decode differs from transformers by %.3g", name, err_rel(&e));
    // the last sequence alone
    qtk_mamba_state s1;
    ck_qtk(qtk_mamba_state_init(&s1, &m, 1));
    ck_qtk(qtk_mamba_prefill(&m, &s1, tok + (size_t)(B - 1) * L, L, got, QTK_SCAN_AUTO));
    double e1 = max_rel(got, want + (size_t)(B - 1) * L * V, (size_t)L * V);
    ck_assert_msg(e1 <= 1e-4, "%s: sequence %d alone differs by %.3g", name, B - 1, e1);
    qtk_mamba_state_free(&s1);
    qtk_mamba_state_free(&s);
    qtk_mamba_free(&m);
    qtk_aligned_free(want);
    qtk_aligned_free(tk);
    free(tok);
    free(part);
    free(got);
    free(dl);
}

START_TEST(test_hf_logits) {
    fixture fx;
    fixture_open(&fx);
    const char *names[] = {"m1_130m", "m2_130m", "m1_small", "m2_small"};
    for (int k = 0; k < 4; k++) check_case(&fx, names[k]);
    fixture_close(&fx);
}
END_TEST


// The trained tiny models (models/tiny_mamba*): logits of two held-out windows, and the perplexity of
// the first 32 held-out windows of 256 bytes against PyTorch's (tools/train_tiny_mamba.py).
START_TEST(test_tiny_models) {
    qtk_safetensors st;
    tu_open(&st, "tiny.safetensors");
    FILE *f = fopen(QTK_FIXTURES "/kjv_heldout_8192.bin", "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char text[8192];
    ck_assert_uint_eq(fread(text, 1, sizeof text, f), sizeof text);
    fclose(f);
    int32_t *ids = malloc(sizeof text * sizeof *ids);
    for (size_t i = 0; i < sizeof text; i++) ids[i] = text[i];
    const char *names[2] = {"tiny_mamba1", "tiny_mamba2"};
    for (int k = 0; k < 2; k++) {
        char dir[64];
        snprintf(dir, sizeof dir, "models/%s", names[k]);
        qtk_mamba m;
        ck_qtk(qtk_mamba_load(&m, dir));
        ck_assert_int_eq(m.cfg.vocab, 256);
        ck_assert(m.cfg.tied);
        size_t n, nt;
        float *want = tu_load(&st, names[k], "logits", &n), *tk = tu_load(&st, names[k], "tokens", &nt);
        ck_assert_uint_eq(nt, 128);
        int32_t tok[128];
        for (int i = 0; i < 128; i++) {
            tok[i] = (int32_t)tk[i];
            ck_assert_int_eq(tok[i], ids[i]); // the fixture's windows are the held-out text's first bytes
        }
        float *got = malloc(n * sizeof *got);
        qtk_mamba_state s;
        ck_qtk(qtk_mamba_state_init(&s, &m, 2));
        ck_qtk(qtk_mamba_prefill(&m, &s, tok, 64, got, QTK_SCAN_AUTO));
        double e = max_rel(got, want, n);
        printf("%s: logits vs transformers, max error %.2e relative\n", names[k], e);
        ck_assert_msg(e <= 1e-4, "%s: logits differ by %.3g", names[k], e);
        char key[64];
        snprintf(key, sizeof key, "%s.ppl_first32", names[k]);
        double ref = strtod(qtk_st_meta(&st, key), NULL), ppl;
        size_t scored;
        ck_qtk(qtk_mamba_perplexity(&m, ids, sizeof text, 256, 256, 32, 8, &ppl, &scored));
        printf("%s: held-out perplexity (32 windows of 256 bytes) %.6f, PyTorch %.6f\n", names[k], ppl, ref);
        ck_assert_uint_eq(scored, 32 * 255);
        ck_assert_msg(fabs(ppl / ref - 1) < 1e-5, "%s: perplexity %.6f vs %.6f", names[k], ppl, ref);
        // a sliding window scores every token after the first exactly once
        ck_qtk(qtk_mamba_perplexity(&m, ids, 1000, 256, 100, 0, 4, &ppl, &scored));
        ck_assert_uint_eq(scored, 999);
        // greedy generation through decode: every generated token is the argmax of one longer prefill too
        qtk_mamba_state_free(&s);
        ck_qtk(qtk_mamba_state_init(&s, &m, 1));
        int32_t seq[64];
        memcpy(seq, ids, 32 * sizeof *seq);
        ck_qtk(qtk_mamba_prefill(&m, &s, seq, 32, got, QTK_SCAN_AUTO));
        const float *last = got + 31 * 256;
        for (int t = 32; t < 64; t++) {
            seq[t] = qtk_sample_token(last, 256, 0, 1.0f, 0.0);
            ck_qtk(qtk_mamba_decode(&m, &s, &seq[t], got));
            last = got;
        }
        qtk_mamba_state_reset(&s);
        ck_qtk(qtk_mamba_prefill(&m, &s, seq, 64, got, QTK_SCAN_AUTO));
        for (int t = 32; t < 64; t++)
            ck_assert_msg(qtk_sample_token(got + (t - 1) * 256, 256, 0, 1.0f, 0.0) == seq[t],
                          "%s: greedy token %d differs between decode and prefill", names[k], t);
        qtk_mamba_state_free(&s);
        qtk_aligned_free(want);
        qtk_aligned_free(tk);
        free(got);
        qtk_mamba_free(&m);
    }
    free(ids);
    qtk_st_close(&st);
}
END_TEST

START_TEST(test_sampling) {
    const float lg[6] = {0.5f, 2.0f, 2.0f, -1.0f, 1.0f, 3.0f};
    ck_assert_int_eq(qtk_sample_token(lg, 6, 0, 1.0f, 0.3), 5); // greedy
    ck_assert_int_eq(qtk_sample_token(lg, 6, 1, 1.0f, 0.9), 5);
    // top 3 = {5, 1, 2} (a tie keeps the lower id first): probabilities e^0, e^-1, e^-1 over their sum
    double z = 1 + 2 * exp(-1.0);
    ck_assert_int_eq(qtk_sample_token(lg, 6, 3, 1.0f, 0.5 / z), 5);
    ck_assert_int_eq(qtk_sample_token(lg, 6, 3, 1.0f, (1 + 0.5 * exp(-1.0)) / z), 1);
    ck_assert_int_eq(qtk_sample_token(lg, 6, 3, 1.0f, 0.999999), 2);
    // top_k past the vocabulary: all of it
    ck_assert_int_eq(qtk_sample_token(lg, 6, 100, 1.0f, 0.999999), 3);
}
END_TEST

// Mamba2 with two groups (mamba_ssm's per-group gated norm; no transformers reference): chunked SSD
// equals the recurrence, across chunk boundaries and from a non-empty state.
START_TEST(test_ssd_groups) {
    const char *cfg = "{\"model_type\": \"mamba2\", \"hidden_size\": 32, \"expand\": 2, \"head_dim\": 8, "
                      "\"num_heads\": 8, \"n_groups\": 2, \"state_size\": 12, \"conv_kernel\": 4, \"chunk_size\": 5, "
                      "\"num_hidden_layers\": 2, \"vocab_size\": 40, \"time_step_limit\": [0.0, Infinity]}";
    qtk_mamba_config c;
    ck_qtk(qtk_mamba_config_parse(cfg, "cfg", &c));
    ck_assert(isinf(c.dt_max) && c.n_groups == 2 && c.chunk_size == 5 && !c.tied); // Mamba2Config: untied by default
    // a checkpoint of random weights with the HF names
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", tu_tmp);
    FILE *f = fopen(p, "w");
    fputs(cfg, f);
    fclose(f);
    const int D = 32, E = 64, GN = 24, H = 8, CD = E + 2 * GN, IN = 2 * E + 2 * GN + H;
    struct { const char *name; int nd; int64_t sh[3]; float lo, hi; } t[] = {
        {"backbone.embeddings.weight", 2, {40, D}, -1, 1}, {"backbone.norm_f.weight", 1, {D}, 0.8f, 1.2f},
        {"backbone.layers.0.norm.weight", 1, {D}, 0.8f, 1.2f}, {"backbone.layers.0.mixer.in_proj.weight", 2, {IN, D}, -0.2f, 0.2f},
        {"backbone.layers.0.mixer.conv1d.weight", 3, {CD, 1, 4}, -0.5f, 0.5f}, {"backbone.layers.0.mixer.conv1d.bias", 1, {CD}, -0.2f, 0.2f},
        {"backbone.layers.0.mixer.dt_bias", 1, {H}, -3, -1}, {"backbone.layers.0.mixer.A_log", 1, {H}, 0, 2},
        {"backbone.layers.0.mixer.D", 1, {H}, 0.5f, 1.5f}, {"backbone.layers.0.mixer.norm.weight", 1, {E}, 0.8f, 1.2f},
        {"backbone.layers.0.mixer.out_proj.weight", 2, {D, E}, -0.1f, 0.1f},
        {"backbone.layers.1.norm.weight", 1, {D}, 0.8f, 1.2f}, {"backbone.layers.1.mixer.in_proj.weight", 2, {IN, D}, -0.2f, 0.2f},
        {"backbone.layers.1.mixer.conv1d.weight", 3, {CD, 1, 4}, -0.5f, 0.5f}, {"backbone.layers.1.mixer.conv1d.bias", 1, {CD}, -0.2f, 0.2f},
        {"backbone.layers.1.mixer.dt_bias", 1, {H}, -3, -1}, {"backbone.layers.1.mixer.A_log", 1, {H}, 0, 2},
        {"backbone.layers.1.mixer.D", 1, {H}, 0.5f, 1.5f}, {"backbone.layers.1.mixer.norm.weight", 1, {E}, 0.8f, 1.2f},
        {"backbone.layers.1.mixer.out_proj.weight", 2, {D, E}, -0.1f, 0.1f},
    };
    const int nt = sizeof t / sizeof *t;
    qtk_st_entry ent[32];
    float *bufs[32];
    qtk_rng r;
    qtk_rng_seed(&r, 5, 0);
    for (int i = 0; i < nt; i++) {
        size_t n = 1;
        for (int k = 0; k < t[i].nd; k++) n *= (size_t)t[i].sh[k];
        bufs[i] = malloc(n * sizeof(float));
        for (size_t k = 0; k < n; k++) bufs[i][k] = qtk_rng_range(&r, t[i].lo, t[i].hi);
        ent[i] = (qtk_st_entry){t[i].name, QTK_F32, t[i].nd, t[i].sh, bufs[i]};
    }
    snprintf(p, sizeof p, "%s/model.safetensors", tu_tmp);
    ck_qtk(qtk_st_write(p, ent, (size_t)nt, NULL, 0));
    qtk_mamba m;
    ck_qtk(qtk_mamba_load(&m, tu_tmp));
    ck_assert(m.cfg.tied && m.lm_head == m.emb); // no lm_head.weight: the embedding is the head
    const int B = 2, L = 23, V = 40;
    int32_t tok[2 * 23];
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)qtk_rng_below(&r, V);
    float *a = malloc((size_t)B * L * V * 4), *b = malloc((size_t)B * L * V * 4);
    qtk_mamba_state s;
    ck_qtk(qtk_mamba_state_init(&s, &m, B));
    for (int round = 0; round < 2; round++) { // round 1: both continue from the state the first left
        qtk_mamba_state keep;
        ck_qtk(qtk_mamba_state_init(&keep, &m, B));
        memcpy(keep.conv, s.conv, s.conv_per_layer * 2 * 4);
        memcpy(keep.ssm, s.ssm, s.ssm_per_layer * 2 * 4);
        ck_qtk(qtk_mamba_prefill(&m, &s, tok, L, a, QTK_SCAN_CHUNKED));
        ck_qtk(qtk_mamba_prefill(&m, &keep, tok, L, b, QTK_SCAN_RECURRENT));
        double e = max_rel(a, b, (size_t)B * L * V);
        printf("Mamba2, 2 groups, chunk 5, L 23 (round %d): chunked SSD vs recurrence %.2e relative\n", round, e);
        ck_assert_msg(e <= 1e-5, "chunked SSD differs from the recurrence by %.3g", e);
        ck_assert_msg(max_rel(s.ssm, keep.ssm, s.ssm_per_layer * 2) <= 1e-5, "final SSM states differ");
        qtk_mamba_state_free(&keep);
    }
    ck_assert_int_eq(qtk_mamba_prefill(&m, &s, tok, L, a, QTK_SCAN_CHUNKED), QTK_OK);
    tok[3] = V; // out of the vocabulary
    ck_assert_int_eq(qtk_mamba_prefill(&m, &s, tok, L, a, QTK_SCAN_AUTO), QTK_ERR_ARG);
    ck_assert_msg(strstr(qtk_last_error(), "position 3") != NULL, "%s", qtk_last_error());
    qtk_mamba_state_free(&s);
    qtk_mamba_free(&m);
    free(a);
    free(b);
    for (int i = 0; i < nt; i++) free(bufs[i]);
}
END_TEST

// fp16 and bf16 checkpoints load as their float32 values; mamba_ssm's embedding name and config keys
START_TEST(test_dtypes_and_names) {
    fixture fx;
    fixture_open(&fx);
    const cJSON *cs = find_case(&fx, "m1_small");
    qtk_mamba ref;
    write_case(cs, tu_tmp, QTK_F32);
    ck_qtk(qtk_mamba_load(&ref, tu_tmp));
    ck_assert_str_eq(ref.source_dtype, "F32");
    const qtk_dtype dts[2] = {QTK_F16, QTK_BF16};
    for (int k = 0; k < 2; k++) {
        write_case(cs, tu_tmp, dts[k]);
        qtk_mamba m;
        ck_qtk(qtk_mamba_load(&m, tu_tmp));
        ck_assert_str_eq(m.source_dtype, k ? "BF16" : "F16");
        ck_assert_uint_eq(m.n_params, ref.n_params);
        for (size_t i = 0; i < ref.n_params; i++) {
            float want = k ? qtk_bf16_to_f32(qtk_f32_to_bf16(ref.mem[i])) : qtk_f16_to_f32(qtk_f32_to_f16(ref.mem[i]));
            ck_assert_msg(m.mem[i] == want, "%s parameter %zu: %a vs %a", k ? "bf16" : "fp16", i, m.mem[i], want);
        }
        qtk_mamba_free(&m);
    }
    // the same weights in two shards with model.safetensors.index.json, and as a file path
    {
        qtk_safetensors whole;
        char p[512], q[512];
        write_case(cs, tu_tmp, QTK_F32);
        snprintf(p, sizeof p, "%s/model.safetensors", tu_tmp);
        ck_qtk(qtk_st_open(&whole, p));
        const int n = (int)whole.n_tensors;
        qtk_st_entry *ent = calloc((size_t)n, sizeof *ent);
        float **bufs = calloc((size_t)n, sizeof *bufs);
        cJSON *map = cJSON_CreateObject();
        for (int i = 0; i < n; i++) {
            const qtk_st_tensor *t = &whole.tensors[i];
            size_t numel;
            ck_qtk(qtk_st_load_f32(&whole, t->name, &bufs[i], &numel));
            ent[i] = (qtk_st_entry){t->name, QTK_F32, t->ndim, t->shape, bufs[i]};
            cJSON_AddStringToObject(map, t->name, i < n / 2 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
        }
        char shard_dir[300];
        snprintf(shard_dir, sizeof shard_dir, "%s/sharded", tu_tmp);
        ck_assert_int_eq(mkdir(shard_dir, 0755), 0);
        snprintf(q, sizeof q, "%s/model-00001-of-00002.safetensors", shard_dir);
        ck_qtk(qtk_st_write(q, ent, (size_t)(n / 2), NULL, 0));
        snprintf(q, sizeof q, "%s/model-00002-of-00002.safetensors", shard_dir);
        ck_qtk(qtk_st_write(q, ent + n / 2, (size_t)(n - n / 2), NULL, 0));
        cJSON *idx = cJSON_CreateObject();
        cJSON_AddItemToObject(idx, "weight_map", map);
        char *text = cJSON_Print(idx);
        snprintf(q, sizeof q, "%s/model.safetensors.index.json", shard_dir);
        FILE *f = fopen(q, "w");
        fputs(text, f);
        fclose(f);
        free(text);
        cJSON_Delete(idx);
        snprintf(q, sizeof q, "%s/config.json", shard_dir);
        f = fopen(q, "w");
        fputs(cJSON_GetObjectItem(cs, "config_json")->valuestring, f);
        fclose(f);
        qtk_mamba sh, fp;
        ck_qtk(qtk_mamba_load(&sh, shard_dir));
        ck_qtk(qtk_mamba_load(&fp, p)); // a .safetensors path with config.json beside it
        ck_assert_uint_eq(sh.n_params, ref.n_params);
        ck_assert_msg(!memcmp(sh.mem, ref.mem, ref.n_params * 4), "sharded checkpoint loads other values");
        ck_assert_msg(!memcmp(fp.mem, ref.mem, ref.n_params * 4), "file-path checkpoint loads other values");
        qtk_mamba_free(&sh);
        qtk_mamba_free(&fp);
        // a shard that is not there
        snprintf(q, sizeof q, "%s/model-00002-of-00002.safetensors", shard_dir);
        ck_assert_int_eq(unlink(q), 0);
        ck_assert_int_ne(qtk_mamba_load(&sh, shard_dir), QTK_OK);
        ck_assert_msg(strstr(qtk_last_error(), "model-00002-of-00002.safetensors") != NULL, "%s", qtk_last_error());
        for (int i = 0; i < n; i++) qtk_aligned_free(bufs[i]);
        free(bufs);
        free(ent);
        qtk_st_close(&whole);
    }
    qtk_mamba_free(&ref);
    fixture_close(&fx);
    // random checkpoints (benchmarks): every shape as the loader expects, finite logits
    qtk_mamba_config rc = {.arch = QTK_MAMBA1, .d_model = 64, .d_inner = 128, .d_state = 16, .d_conv = 4, .n_layers = 2,
                           .vocab = 100, .dt_rank = 8, .eps = 1e-5f, .conv_bias = 1, .use_bias = 1, .tied = 0};
    for (int k = 0; k < 2; k++) {
        if (k) rc = (qtk_mamba_config){.arch = QTK_MAMBA2, .d_model = 64, .d_inner = 128, .d_state = 32, .d_conv = 4,
                                       .n_layers = 2, .vocab = 100, .head_dim = 16, .n_heads = 8, .n_groups = 2,
                                       .chunk_size = 8, .eps = 1e-5f, .conv_bias = 1, .tied = 1};
        ck_qtk(qtk_mamba_write_random(tu_tmp, &rc, 9, k ? "BF16" : "F32"));
        qtk_mamba rm;
        ck_qtk(qtk_mamba_load(&rm, tu_tmp));
        ck_assert_int_eq(rm.cfg.tied, rc.tied);
        for (size_t i = 0; i < rm.n_params; i++) ck_assert_msg(isfinite(rm.mem[i]), "random parameter %zu", i);
        qtk_mamba_state rs;
        ck_qtk(qtk_mamba_state_init(&rs, &rm, 2));
        int32_t rt[2 * 12];
        for (int i = 0; i < 24; i++) rt[i] = (i * 37) % 100;
        float rl[2 * 12 * 100];
        ck_qtk(qtk_mamba_prefill(&rm, &rs, rt, 12, rl, QTK_SCAN_AUTO));
        for (int i = 0; i < 2 * 12 * 100; i++) ck_assert_msg(isfinite(rl[i]), "random model logit %d", i);
        qtk_mamba_state_free(&rs);
        qtk_mamba_free(&rm);
    }
    // mamba_ssm's config keys
    qtk_mamba_config c;
    ck_qtk(qtk_mamba_config_parse("{\"d_model\": 768, \"n_layer\": 24, \"vocab_size\": 50277, \"ssm_cfg\": {}, "
                                  "\"rms_norm\": true, \"residual_in_fp32\": true, \"pad_vocab_size_multiple\": 8}",
                                  "ssm.json", &c));
    ck_assert_int_eq(c.arch, QTK_MAMBA1);
    ck_assert_int_eq(c.vocab, 50280);
    ck_assert_int_eq(c.dt_rank, 48);
    ck_assert_int_eq(c.d_inner, 1536);
    ck_qtk(qtk_mamba_config_parse("{\"d_model\": 768, \"n_layer\": 24, \"vocab_size\": 50277, \"ssm_cfg\": "
                                  "{\"layer\": \"Mamba2\"}, \"pad_vocab_size_multiple\": 16}", "ssm.json", &c));
    ck_assert_int_eq(c.arch, QTK_MAMBA2);
    ck_assert_int_eq(c.vocab, 50288);
    ck_assert_int_eq(c.n_heads, 24);
    ck_assert_int_eq(c.d_state, 128);
}
END_TEST

// Bad configs and checkpoints: one error naming the file and the key or tensor.
START_TEST(test_bad_checkpoints) {
    qtk_mamba_config c;
    const struct { const char *json, *msg; } bad[] = {
        {"{\"model_type\": \"mamba\", \"num_hidden_layers\": 2, \"vocab_size\": 10}", "\"hidden_size\" is missing"},
        {"{\"model_type\": \"mamba\", \"hidden_size\": \"big\", \"num_hidden_layers\": 2, \"vocab_size\": 10}",
         "\"hidden_size\" must be a number"},
        {"{\"model_type\": \"mamba\", \"hidden_size\": 8.5, \"num_hidden_layers\": 2, \"vocab_size\": 10}",
         "\"hidden_size\" must be a non-negative integer"},
        {"{\"model_type\": \"llama\"}", "expected \"mamba\" or \"mamba2\""},
        {"{\"model_type\": \"mamba2\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"head_dim\": 48}",
         "num_heads"},
        {"{\"model_type\": \"mamba2\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"head_dim\": 16, "
         "\"time_step_limit\": [1, 0]}", "time_step_limit"},
        {"{\"model_type\": \"mamba\", \"hidden_size\": 8, \"num_hidden_layers\": 2, \"vocab_size\": 10, \"use_bias\": 1}",
         "\"use_bias\" must be true or false"},
        {"{\"model_type\": \"mamba\", \"hidden_size\": 8,", "not valid JSON"},
        {"[1, 2]", "not a Mamba config"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(qtk_mamba_config_parse(bad[i].json, "x/config.json", &c), QTK_ERR_FORMAT);
        ck_assert_msg(strstr(qtk_last_error(), bad[i].msg) && strstr(qtk_last_error(), "x/config.json"), "case %zu: %s",
                      i, qtk_last_error());
    }
    qtk_mamba m;
    ck_assert_int_eq(qtk_mamba_load(&m, "/nonexistent/mamba"), QTK_ERR_IO);
    // a folder without config.json, then a checkpoint missing a tensor and one with a wrong shape
    ck_assert_int_eq(qtk_mamba_load(&m, tu_tmp), QTK_ERR_IO);
    ck_assert_msg(strstr(qtk_last_error(), "config.json") != NULL, "%s", qtk_last_error());
    fixture fx;
    fixture_open(&fx);
    cJSON *cs = cJSON_Duplicate(find_case(&fx, "m1_small"), 1);
    cJSON *params = cJSON_GetObjectItem(cs, "params");
    cJSON_DeleteItemFromArray(params, 5); // backbone.layers.0.mixer.dt_proj.bias
    write_case(cs, tu_tmp, QTK_F32);
    ck_assert_int_eq(qtk_mamba_load(&m, tu_tmp), QTK_ERR_NOT_FOUND);
    ck_assert_msg(strstr(qtk_last_error(), "missing tensor \"backbone.layers.0.mixer.dt_proj.bias\" (expected shape [128])"),
                  "%s", qtk_last_error());
    cJSON_Delete(cs);
    cs = cJSON_Duplicate(find_case(&fx, "m1_small"), 1);
    cJSON *sh = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cs, "params"), 1), "shape"); // layers.0 A_log
    cJSON_ReplaceItemInArray(sh, 1, cJSON_CreateNumber(7));
    write_case(cs, tu_tmp, QTK_F32);
    ck_assert_int_eq(qtk_mamba_load(&m, tu_tmp), QTK_ERR_FORMAT);
    ck_assert_msg(strstr(qtk_last_error(), "A_log"), "%s", qtk_last_error());
    cJSON_Delete(cs);
    fixture_close(&fx);
}
END_TEST

#define out tu_cli_out // the CLI's output (testutil.h)
#define run tu_cli

// qtk perplexity / qtk generate on the tiny model, and their bad input
START_TEST(test_cli) {
    ck_assert_int_eq(run("perplexity --model models/tiny_mamba2 --text " QTK_FIXTURES "/kjv_heldout_8192.bin --ctx 256"), 0);
    ck_assert_msg(strstr(out, "perplexity 3.4328 over 8160 scored tokens"), "%s", out);
    ck_assert_int_eq(run("generate --model models/tiny_mamba2 --prompt 'And God said' --max-new 40"), 0);
    ck_assert_msg(!strncmp(out, "And God said", 12), "%s", out);
    ck_assert_int_eq(run("generate --model models/tiny_mamba2 --prompt 'And God said' --max-new 40 --top-k 8 --seed 5"), 0);
    char sampled[256];
    snprintf(sampled, sizeof sampled, "%.255s", out);
    if (strchr(sampled, '\n')) *strchr(sampled, '\n') = 0; // the text line (stderr has the timing)
    ck_assert_int_eq(run("generate --model models/tiny_mamba2 --prompt 'And God said' --max-new 40 --top-k 8 --seed 5"), 0);
    ck_assert_msg(!strncmp(out, sampled, strlen(sampled)), "seeded sampling did not repeat: %s vs %s", out, sampled);
    ck_assert_int_eq(run("generate --model models/tiny_mamba1 --prompt-ids 65,110,100 --max-new 5"), 0);
    ck_assert_msg(!strncmp(out, "65 110 100 ", 11), "%s", out);
    // the same from a YAML config, with a flag over it; and config errors naming file, line and key
    char cfg[512], args[1024];
    snprintf(cfg, sizeof cfg, "%s/lm.yaml", tu_tmp);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "name: lm\nmodel:\n  kind: mamba\n  checkpoint: models/tiny_mamba2\neval:\n  perplexity:\n    text: %s/kjv_heldout_8192.bin\n"
               "    ctx: 128\n    batch: 4\n  generate:\n    prompt: \"And God said\"\n    max_new: 40\n"
               "output:\n  dir: %s/lm_run\n", QTK_FIXTURES, tu_tmp);
    fclose(f);
    snprintf(args, sizeof args, "perplexity --config %s --ctx 256", cfg);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "perplexity 3.4328 over 8160 scored tokens (context 256, stride 256)"), "%s", out);
    snprintf(args, sizeof args, "generate --config %s", cfg);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(!strncmp(out, "And God said", 12), "%s", out);
    // the same config through the run pipeline: the float model's perplexity as the run's one stage, which
    // qtk table reads without knowing the model
    snprintf(args, sizeof args, "run %s --set eval.perplexity.ctx=256", cfg);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "FP32 perplexity 3.4328 over 8160 scored tokens"), "%s", out);
    snprintf(args, sizeof args, "%s/lm_run/summary.json", tu_tmp);
    f = fopen(args, "r");
    ck_assert_ptr_nonnull(f);
    char js[4096];
    js[fread(js, 1, sizeof js - 1, f)] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(js);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "metric")->valuestring, "perplexity");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "kind")->valuestring, "mamba");
    const double ppl = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metrics"), "fp32"), "perplexity")->valuedouble;
    ck_assert_msg(fabs(ppl - 3.4328) < 5e-5, "%.6f", ppl);
    cJSON_Delete(j);
    snprintf(args, sizeof args, "table %s/lm_run", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "metric: perplexity") && strstr(out, "| lm | float | 0 | 3.4328 | — |"), "%s", out);
    snprintf(args, sizeof args, "run %s --set eval.perplexity.ctx=256", cfg); // finished: skipped
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "already done"), "%s", out);
    { // a mamba run has no bit widths to retag its name by (a vit's fashion_w4a8 at W3 becomes fashion_w3a8)
        char c2[512];
        snprintf(c2, sizeof c2, "%s/q.yaml", tu_tmp);
        FILE *f2 = fopen(c2, "w");
        fprintf(f2, "name: quamba_w8a8\nmodel:\n  kind: mamba\n  checkpoint: models/tiny_mamba2\n");
        fclose(f2);
        snprintf(args, sizeof args, "run %s --dry-run", c2);
        ck_assert_int_eq(run(args), 0);
        ck_assert_msg(strstr(out, "name: quamba_w8a8\n") && strstr(out, "dir: results/runs/quamba_w8a8\n"), "%s", out);
    }
    snprintf(args, sizeof args, "run %s --set search.method=evolq", cfg); // nothing to search on a Mamba yet
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "a mamba run evaluates the float model"), "%s", out);
    snprintf(args, sizeof args, "calibrate %s", cfg);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "mamba"), "%s", out);
    f = fopen(cfg, "w");
    fprintf(f, "name: lm\nmodel:\n  kind: mamba\n  checkpoint: models/tiny_mamba2\neval:\n  perplexity:\n    ctx: 128\n"
               "    colour: red\n");
    fclose(f);
    snprintf(args, sizeof args, "perplexity --config %s", cfg);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "lm.yaml:8: eval.perplexity.colour: unknown key"), "%s", out);
    f = fopen(cfg, "w");
    fprintf(f, "name: lm\nmodel:\n  kind: mamba\n  checkpoint: models/tiny_mamba2\neval:\n  perplexity:\n    ctx: many\n");
    fclose(f);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "lm.yaml:7") && strstr(out, "ctx"), "%s", out);
    f = fopen(cfg, "w"); // a vit's config is refused by the language-model commands, and images by a mamba
    fprintf(f, "name: v\nmodel:\n  checkpoint: models/fashion_vit.safetensors\ndata:\n  format: fashion-mnist\n"
               "  root: models\n");
    fclose(f);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "model.kind is vit; perplexity reads a mamba model's config"), "%s", out);
    f = fopen(cfg, "w"); // the commands' format before they read run configs: refused with the new form named
    fprintf(f, "model: models/tiny_mamba2\ntext: README.md\nperplexity:\n  ctx: 128\n");
    fclose(f);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "lm.yaml:1: model: Expecting MAPPING") && strstr(out, "model: {kind: mamba, checkpoint: DIR}"),
                  "%s", out);
    if (qtk_cuda_device_count() == 0) { // without a GPU --device cuda says why (test_mamba_cuda runs it on one)
        ck_assert_int_eq(run("generate --model models/tiny_mamba2 --prompt hi --device cuda"), 1);
        ck_assert_msg(strstr(out, "--device cuda, but this"), "%s", out);
    }
    const struct { const char *args, *msg; int rc; } bad[] = {
        {"perplexity --model models/tiny_mamba2", "give one of --tokens FILE and --text FILE", 2},
        {"perplexity --config /nonexistent.yaml", "/nonexistent.yaml: no such config file", 1},
        {"perplexity --model models/tiny_mamba2 --text x --ctx 1", "--ctx takes a whole number in 2..", 2},
        {"perplexity --model models/tiny_mamba2 --text x --ctx 64 --stride 65", "longer than --ctx", 2},
        {"perplexity --model /nonexistent --text x", "/nonexistent: no such file or folder", 1},
        {"perplexity --model models/tiny_mamba2 --text /nonexistent.txt", "/nonexistent.txt: cannot read", 1},
        {"generate --model models/tiny_mamba2 --prompt-ids 1,x", "item 2 is not a token id in 0..255", 2},
        {"generate --model models/tiny_mamba2 --prompt-ids 1,300", "item 2 is not a token id", 2},
        {"generate --model models/tiny_mamba2 --prompt hi --temperature 0", "--temperature takes a number", 2},
        {"generate --model models/tiny_mamba2 --prompt hi --colour red", "unknown option \"--colour\"", 2},
        {"generate --model models/tiny_mamba2 --prompt hi --device gpu", "--device takes cpu or cuda, got \"gpu\"", 2},
        {"generate --model models/tiny_mamba2 --prompt hi --fp16 1", "--fp16 1 is for --device cuda", 2},
        {"perplexity --model models/tiny_mamba2 --text x --device cuda --fp16 2", "--fp16 takes a whole number in 0..1", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(run(bad[i].args), bad[i].rc);
        ck_assert_msg(strstr(out, bad[i].msg) != NULL, "%s: \"%s\" lacks \"%s\"", bad[i].args, out, bad[i].msg);
    }
}
END_TEST

// The allocator, counted (the Makefile links this suite with --wrap for these four).
static _Atomic long n_allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t k);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n) {
    n_allocs++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t k) {
    n_allocs++;
    return __real_calloc(n, k);
}
void *__wrap_realloc(void *p, size_t n) {
    n_allocs++;
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
    n_allocs++;
    return __real_aligned_alloc(a, n);
}

// Decoding allocates nothing, nor does a prefill no longer than one before it: the forward's
// workspace lives in the state. And the results do not depend on what the workspace held.
START_TEST(test_no_alloc_decode) {
    static const char *const dirs[] = {"models/tiny_mamba1", "models/tiny_mamba2"};
    for (int k = 0; k < 2; k++) {
        qtk_mamba m;
        ck_qtk(qtk_mamba_load(&m, dirs[k]));
        const int B = 2, L = 40, V = m.cfg.vocab;
        int32_t tok[2 * 40];
        for (int i = 0; i < B * L; i++) tok[i] = (int32_t)("In the beginning God created the heaven and"[i % 40]);
        float *lg = malloc((size_t)B * L * V * sizeof *lg), *ref = malloc((size_t)B * V * sizeof *ref);
        qtk_mamba_state s, f;
        ck_qtk(qtk_mamba_state_init(&s, &m, B));
        ck_qtk(qtk_mamba_state_init(&f, &m, B));
        ck_qtk(qtk_mamba_prefill(&m, &s, tok, L, lg, QTK_SCAN_AUTO)); // grows the workspace once
        long before = n_allocs; // (no ck_ call in here: Check allocates for its own bookkeeping)
        qtk_status st = QTK_OK;
        for (int t = 0; t < 16 && st == QTK_OK; t++) st = qtk_mamba_decode(&m, &s, tok + t, lg);
        qtk_mamba_state_reset(&s);
        if (st == QTK_OK) st = qtk_mamba_prefill(&m, &s, tok, L, lg, QTK_SCAN_AUTO);
        long during = n_allocs - before;
        ck_qtk(st);
        ck_assert_msg(during == 0, "%s: %ld allocations in 16 decode steps and a prefill", dirs[k], during);
        // a fresh state (untouched workspace) decodes to the same logits as one that held a long prefill
        ck_qtk(qtk_mamba_decode(&m, &s, tok, lg));
        ck_qtk(qtk_mamba_prefill(&m, &f, tok, L, NULL, QTK_SCAN_AUTO));
        ck_qtk(qtk_mamba_decode(&m, &f, tok, ref));
        ck_assert_mem_eq(lg, ref, (size_t)B * V * sizeof *lg);
        free(lg);
        free(ref);
        qtk_mamba_state_free(&s);
        qtk_mamba_state_free(&f);
        qtk_mamba_free(&m);
    }
}
END_TEST

// The CPU fp16 reference (the oracle of the GPU's fp16 path, tests/test_mamba_cuda.c): it rounds every
// projection's weights, not the embedding; its logits move by fp16 rounding only; off again gives the
// float32 logits bit for bit.
START_TEST(test_fp16_reference) {
    qtk_mamba m;
    ck_qtk(qtk_mamba_load(&m, "models/tiny_mamba1"));
    const int L = 40, V = m.cfg.vocab;
    int32_t tok[40];
    for (int i = 0; i < L; i++) tok[i] = (int32_t)("In the beginning God created the heaven and"[i]);
    float *a = malloc((size_t)L * V * 4), *h = malloc((size_t)L * V * 4), *b = malloc((size_t)L * V * 4);
    qtk_mamba_state s;
    ck_qtk(qtk_mamba_state_init(&s, &m, 1));
    ck_qtk(qtk_mamba_prefill(&m, &s, tok, L, a, QTK_SCAN_AUTO));
    ck_qtk(qtk_mamba_fp16_reference(&m, 1));
    const float *w[64];
    size_t n[64];
    const int np = qtk_mamba_projections(&m, w, n, 64);
    ck_assert_int_eq(np, 1 + 4 * m.cfg.n_layers);
    for (int j = 0; j < np; j++) // the copy holds fp16 values at the projection's offsets
        for (size_t i = 0; i < n[j]; i += 97) {
            float v = m.half_mem[w[j] - m.mem + i];
            ck_assert(v == qtk_f16_to_f32(qtk_f32_to_f16(w[j][i])) && fabsf(v - w[j][i]) <= 1e-3f * fabsf(w[j][i]));
        }
    ck_assert(m.half_mem[m.emb - m.mem + 5] == m.emb[5] || m.emb == m.lm_head);
    qtk_mamba_state_reset(&s);
    ck_qtk(qtk_mamba_prefill(&m, &s, tok, L, h, QTK_SCAN_AUTO));
    double e = tu_max_rel(h, a, (size_t)L * V);
    ck_assert_msg(e > 0 && e < 2e-2, "fp16 reference moved the logits by %g relative", e);
    ck_qtk(qtk_mamba_fp16_reference(&m, 0));
    ck_assert_ptr_null(m.half_mem);
    qtk_mamba_state_reset(&s);
    ck_qtk(qtk_mamba_prefill(&m, &s, tok, L, b, QTK_SCAN_AUTO));
    ck_assert_mem_eq(a, b, (size_t)L * V * 4);
    qtk_mamba_state_free(&s);
    qtk_mamba_free(&m);
    free(a), free(h), free(b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("mamba");
    TCase *tc = tcase_create("ssm");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_hf_logits);
    tcase_add_test(tc, test_tiny_models);
    tcase_add_test(tc, test_sampling);
    tcase_add_test(tc, test_ssd_groups);
    tcase_add_test(tc, test_dtypes_and_names);
    tcase_add_test(tc, test_bad_checkpoints);
    tcase_add_test(tc, test_cli);
    tcase_add_test(tc, test_no_alloc_decode);
    tcase_add_test(tc, test_fp16_reference);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
