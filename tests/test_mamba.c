// Mamba1 / Mamba2 on the CPU against transformers (tools/make_mamba_fixtures.py): logits of
// random-weight models shaped like mamba-130m / mamba2-130m and two small ones, the checkpoints
// regenerated here from PCG32 with transformers' own config.json; then properties: prefill-then-decode
// equals one longer prefill, chunked SSD equals the recurrence, batch rows are independent, fp16 / bf16
// checkpoints load as their float32 values, and bad checkpoints fail naming the key or tensor.
#define QTK_FIXTURES "tests/fixtures/ssm"
#include "../ssm/mamba.h"
#include "testutil.h"

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

static double max_rel(const float *a, const float *b, size_t n) {
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)b[i]));
        md = fmax(md, fabs((double)a[i] - b[i]));
    }
    return md / (mx > 0 ? mx : 1);
}

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

int main(void) {
    Suite *s = suite_create("mamba");
    TCase *tc = tcase_create("ssm");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_hf_logits);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
