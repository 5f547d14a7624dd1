// The byte-level BPE tokenizer (datasets/bpe.h) against HuggingFace `tokenizers`: a ByteLevel BPE trained there
// on the offline corpora (tools/make_bpe_fixtures.py: GPT-NeoX's construction and split regex), HF's ids for
// lines of each corpus; qtk's ids equal them line by line, and decode(encode(x)) = x. QTK_BPE_FULL names the
// fixture of every line of the corpora (made on the GPU machine with --full), checked the same way. Then the
// tokenizer.json errors and the text paths of the LM commands (qtk tokenize; text read through the model's
// tokenizer.json).
#define QTK_FIXTURES "tests/fixtures/bpe"
#include "../datasets/bpe.h"
#include "../datasets/tokens.h"
#include "../ssm/mamba.h"

#include <sys/stat.h>
#include "testutil.h"

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    fclose(f);
}

// the byte-level character of byte b (GPT-2's bytes_to_unicode), UTF-8
static void byte_char(int b, char *out) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF), cp = b;
    if (!printable) {
        int k = 0;
        for (int c = 0; c < b; c++) k += !((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF));
        cp = 256 + k;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

// A hand-made tokenizer whose ids follow from the rules alone: byte b's character is id b; merges
// (0) G t, (1) h e, (2) Gt he, (3) e r (G: the space's character); one added token <|endoftext|> = 260.
static void write_rules_tokenizer(const char *p) {
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model"), *vocab;
    cJSON_AddStringToObject(model, "type", "BPE");
    vocab = cJSON_AddObjectToObject(model, "vocab");
    char c[4], G[4];
    for (int b = 0; b < 256; b++) byte_char(b, c), cJSON_AddNumberToObject(vocab, c, b);
    byte_char(' ', G);
    char gt[8], gthe[12];
    snprintf(gt, sizeof gt, "%st", G), snprintf(gthe, sizeof gthe, "%sthe", G);
    cJSON_AddNumberToObject(vocab, gt, 256), cJSON_AddNumberToObject(vocab, "he", 257);
    cJSON_AddNumberToObject(vocab, gthe, 258), cJSON_AddNumberToObject(vocab, "er", 259);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    char m0[12], m2[16];
    snprintf(m0, sizeof m0, "%s t", G), snprintf(m2, sizeof m2, "%st he", G);
    cJSON_AddItemToArray(merges, cJSON_CreateString(m0)), cJSON_AddItemToArray(merges, cJSON_CreateString("h e"));
    cJSON_AddItemToArray(merges, cJSON_CreateString(m2)), cJSON_AddItemToArray(merges, cJSON_CreateString("e r"));
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens"), *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 260), cJSON_AddStringToObject(a, "content", "<|endoftext|>");
    cJSON_AddItemToArray(added, a);
    char *js = cJSON_Print(root);
    write_text(p, js);
    free(js);
    cJSON_Delete(root);
}

START_TEST(test_rules) {
    char p[128];
    snprintf(p, sizeof p, "%s/rules.json", tu_tmp);
    write_rules_tokenizer(p);
    qtk_bpe *t;
    ck_qtk(qtk_bpe_load(&t, p));
    ck_assert_int_eq(qtk_bpe_vocab_size(t), 261);
    const struct { const char *text; int n; int32_t ids[12]; } cases[] = {
        // "the" alone: h e merges, nothing takes t + he; " there": G t first (rank 0), then h e, then Gt he (rank 2);
        // e r never forms because r e follows, not e r
        {"the there", 5, {'t', 257, 258, 'r', 'e'}},
        {"ther", 3, {'t', 257, 'r'}},                    // h e (rank 1) before e r (rank 3) takes the e
        {"tter", 3, {'t', 't', 259}},
        {"don't", 5, {'d', 'o', 'n', '\'', 't'}},        // 't is its own piece (contraction)
        {"a<|endoftext|>b", 3, {'a', 260, 'b'}},         // the added token splits the text
        {"  x", 3, {' ', ' ', 'x'}},                     // "\s+(?!\S)" takes the first space, " ?\p{L}+" the rest
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t *ids;
        size_t n;
        ck_qtk(qtk_bpe_encode(t, cases[i].text, strlen(cases[i].text), &ids, &n));
        ck_assert_msg(n == (size_t)cases[i].n, "\"%s\": %zu ids, want %d", cases[i].text, n, cases[i].n);
        for (int k = 0; k < cases[i].n; k++) {
            int32_t want = cases[i].ids[k];
            if (want == ' ') want = ' '; // the space byte's own id (its character is G)
            ck_assert_msg(ids[k] == want, "\"%s\" id %d: %d, want %d", cases[i].text, k, ids[k], want);
        }
        char *back;
        size_t nb;
        ck_qtk(qtk_bpe_decode(t, ids, n, &back, &nb));
        ck_assert_str_eq(back, cases[i].text);
        free(back), free(ids);
    }
    qtk_bpe_free(t);
}
END_TEST

static void check_lines(const char *path) {
    qtk_bpe *t;
    ck_qtk(qtk_bpe_load(&t, QTK_FIXTURES "/tokenizer.json"));
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, path));
    long lines = 0, ids_total = 0;
    for (int c = 0;; c++) {
        char key[64];
        snprintf(key, sizeof key, "c%d.text", c);
        const qtk_st_tensor *text = qtk_st_find(&st, key);
        if (!text) break;
        snprintf(key, sizeof key, "c%d.line_start", c);
        const qtk_st_tensor *ls = qtk_st_find(&st, key);
        snprintf(key, sizeof key, "c%d.ids", c);
        const qtk_st_tensor *ids = qtk_st_find(&st, key);
        snprintf(key, sizeof key, "c%d.id_start", c);
        const qtk_st_tensor *is = qtk_st_find(&st, key);
        ck_assert(ls && ids && is);
        const char *tx = text->data;
        const int64_t *L = ls->data, *I = is->data;
        const int32_t *want = ids->data;
        const size_t n = ls->nbytes / 8 - 1;
        for (size_t i = 0; i < n; i++) {
            const size_t len = (size_t)(L[i + 1] - L[i] - 1);
            int32_t *got;
            size_t ng;
            ck_qtk(qtk_bpe_encode(t, tx + L[i], len, &got, &ng));
            const size_t nw = (size_t)(I[i + 1] - I[i]);
            int same = ng == nw && !memcmp(got, want + I[i], nw * 4);
            ck_assert_msg(same, "corpus %d line %zu \"%.*s\": %zu ids, HF %zu (first difference at %zu)", c, i, (int)len,
                          tx + L[i], ng, nw, ng);
            char *back;
            size_t nb;
            ck_qtk(qtk_bpe_decode(t, got, ng, &back, &nb));
            ck_assert_msg(nb == len && !memcmp(back, tx + L[i], len), "corpus %d line %zu: decode(encode(x)) != x", c, i);
            free(back), free(got);
            ids_total += (long)nw;
        }
        lines += (long)n;
    }
    printf("%s: %ld lines, %ld ids, all equal to HF tokenizers'\n", path, lines, ids_total);
    ck_assert_int_gt(lines, 100);
    qtk_st_close(&st);
    qtk_bpe_free(t);
}

START_TEST(test_against_hf) {
    check_lines(QTK_FIXTURES "/bpe_ref.safetensors");
    const char *full = getenv("QTK_BPE_FULL");
    if (full) check_lines(full);
}
END_TEST


START_TEST(test_bad_files) {
    char p[128];
    snprintf(p, sizeof p, "%s/tokenizer.json", tu_tmp);
    const struct { const char *json, *msg; } cases[] = {
        {"{", "not valid JSON"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "model.type: only BPE"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"byte_fallback\": true}}",
         "model.byte_fallback: not supported"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}, \"pre_tokenizer\": "
         "{\"type\": \"ByteLevel\"}}", "\"a\" + \"b\": a part or the merge is not in the vocabulary"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", "model.vocab[\"a\"]: not an id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}, \"pre_tokenizer\": "
         "{\"type\": \"ByteLevel\"}}", "id 0 is both"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"Lowercase\"}}",
         "normalizer: only none or NFC"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "pre_tokenizer: missing"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
         "\"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": "
         "\"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}}", "pre_tokenizer regex at offset"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(p, cases[i].json);
        qtk_bpe *t;
        ck_assert_int_ne(qtk_bpe_load(&t, p), QTK_OK);
        ck_assert_msg(strstr(qtk_last_error(), cases[i].msg), "case %zu: %s", i, qtk_last_error());
    }
    // invalid UTF-8 names its offset; unknown ids are refused
    qtk_bpe *t;
    write_rules_tokenizer(p);
    ck_qtk(qtk_bpe_load(&t, p));
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(qtk_bpe_encode(t, "abc\xff", 4, &ids, &n), QTK_ERR_FORMAT);
    ck_assert_msg(strstr(qtk_last_error(), "not valid UTF-8 at byte 3"), "%s", qtk_last_error());
    int32_t bad[2] = {5, 1 << 20};
    char *s;
    ck_assert_int_eq(qtk_bpe_decode(t, bad, 2, &s, &n), QTK_ERR_ARG);
    ck_qtk(qtk_bpe_encode(t, "", 0, &ids, &n));
    ck_assert_uint_eq(n, 0);
    free(ids);
    qtk_bpe_free(t);
}
END_TEST

#define out tu_cli_out
#define run tu_cli

// qtk tokenize, and a BPE model's text through its tokenizer.json
START_TEST(test_cli) {
    char text[128], tok[128], args[512], tj[128];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", tu_tmp);
    write_rules_tokenizer(tj);
    snprintf(text, sizeof text, "%s/t.txt", tu_tmp);
    snprintf(tok, sizeof tok, "%s/t.tok", tu_tmp);
    write_text(text, "In the beginning God created the heaven and the earth.\nAnd the earth was without form.\n");
    snprintf(args, sizeof args, "tokenize --tokenizer %s --text %s --out %s", tj, text, tok);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "87 bytes -> 74 tokens"), "%s", out);
    qtk_tokens tf;
    ck_qtk(qtk_tokens_open(&tf, tok));
    qtk_bpe *t;
    ck_qtk(qtk_bpe_load(&t, tj));
    int32_t *ids;
    size_t n;
    const char *s = "In the beginning God created the heaven and the earth.\nAnd the earth was without form.\n";
    ck_qtk(qtk_bpe_encode(t, s, strlen(s), &ids, &n));
    ck_assert_uint_eq(tf.count, n);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq((int32_t)qtk_tokens_get(&tf, i), ids[i]);
    ck_assert_uint_eq(tf.vocab_size, (uint32_t)qtk_bpe_vocab_size(t));
    qtk_tokens_close(&tf);
    free(ids);
    qtk_bpe_free(t);
    snprintf(args, sizeof args, "tokenize --tokenizer /nonexistent.json --text %s --out %s", text, tok);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "/nonexistent.json"), "%s", out);
    // a model folder with this tokenizer.json: --text goes through it, the same perplexity as the token file
    char md[128], want[64];
    snprintf(md, sizeof md, "%s/m", tu_tmp);
    mkdir(md, 0755);
    qtk_mamba_config c = {.arch = QTK_MAMBA1, .d_model = 32, .d_inner = 64, .d_state = 8, .d_conv = 4, .n_layers = 1,
                          .vocab = 264, .dt_rank = 4, .eps = 1e-5f, .conv_bias = 1, .tied = 1};
    ck_qtk(qtk_mamba_write_random(md, &c, 3, "F32"));
    snprintf(args, sizeof args, "perplexity --model %s --tokens %s --ctx 16", md, tok);
    ck_assert_int_eq(run(args), 0);
    const char *at = strstr(out, "perplexity ");
    ck_assert_ptr_nonnull(at);
    snprintf(want, sizeof want, "%.20s", at);
    snprintf(args, sizeof args, "cp %s %s/tokenizer.json", tj, md);
    ck_assert_int_eq(system(args), 0);
    snprintf(args, sizeof args, "perplexity --model %s --text %s --ctx 16", md, text);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, want), "%s (want %s)", out, want);
    snprintf(args, sizeof args, "generate --model %s --prompt 'In the' --max-new 5", md);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(!strncmp(out, "In the", 6), "%s", out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("bpe");
    TCase *tc = tcase_create("bpe");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_rules);
    tcase_add_test(tc, test_against_hf);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_cli);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
