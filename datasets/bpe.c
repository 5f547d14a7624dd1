// Byte-level BPE from tokenizer.json (bpe.h): cJSON for the file, PCRE2 for the split regex.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "bpe.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/file.h"

// GPT-2's pattern, which transformers' ByteLevel pre-tokenizer applies when use_regex is on
static const char *gpt2_pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// --- a string -> id table and a (id, id) -> merge table, open addressing ---------------------------------

typedef struct {
    char *key;   // NULL: empty
    size_t len;
    int32_t id;
} str_slot;

typedef struct {
    uint64_t key; // (left + 1) << 32 | (right + 1); 0: empty
    int32_t rank, id;
} pair_slot;

struct qtk_bpe {
    str_slot *vocab;
    size_t vocab_cap;
    char **tokens;       // id -> token text (byte-level alphabet; added tokens as written)
    size_t *token_len;
    int32_t n_ids;       // largest id + 1
    pair_slot *merges;
    size_t merges_cap;
    int32_t byte_id[256]; // the id of each byte's one-character token (-1: none)
    int32_t *added_id;    // added tokens, longest first
    char **added;
    size_t *added_len;
    int n_added;
    int add_prefix_space;
    pcre2_code *re;
    int byte_of[512];     // byte-level code point -> byte (-1: not one)
    char byte_utf8[256][3]; // byte -> its byte-level character in UTF-8 (1 or 2 bytes, NUL-padded)
};

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int32_t vocab_get(const qtk_bpe *t, const char *s, size_t n) {
    for (size_t i = fnv(s, n) & (t->vocab_cap - 1);; i = (i + 1) & (t->vocab_cap - 1)) {
        const str_slot *e = &t->vocab[i];
        if (!e->key) return -1;
        if (e->len == n && !memcmp(e->key, s, n)) return e->id;
    }
}

static int vocab_put(qtk_bpe *t, const char *s, size_t n, int32_t id) {
    size_t i = fnv(s, n) & (t->vocab_cap - 1);
    while (t->vocab[i].key) {
        if (t->vocab[i].len == n && !memcmp(t->vocab[i].key, s, n)) return 1; // a duplicate
        i = (i + 1) & (t->vocab_cap - 1);
    }
    if (!(t->vocab[i].key = malloc(n + 1))) return -1;
    memcpy(t->vocab[i].key, s, n);
    t->vocab[i].key[n] = 0;
    t->vocab[i].len = n, t->vocab[i].id = id;
    return 0;
}

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1); }

static const pair_slot *merge_get(const qtk_bpe *t, int32_t a, int32_t b) {
    const uint64_t k = pair_key(a, b);
    for (size_t i = (k * 0x9E3779B97F4A7C15ull) >> 20 & (t->merges_cap - 1);; i = (i + 1) & (t->merges_cap - 1)) {
        if (!t->merges[i].key) return NULL;
        if (t->merges[i].key == k) return &t->merges[i];
    }
}

static void merge_put(qtk_bpe *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
    const uint64_t k = pair_key(a, b);
    size_t i = (k * 0x9E3779B97F4A7C15ull) >> 20 & (t->merges_cap - 1);
    while (t->merges[i].key && t->merges[i].key != k) i = (i + 1) & (t->merges_cap - 1);
    if (t->merges[i].key) return; // the first (lowest) rank of a repeated merge stands
    t->merges[i] = (pair_slot){k, rank, id};
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

// --- the byte-level alphabet (GPT-2's bytes_to_unicode) --------------------------------------------------

static void byte_alphabet(qtk_bpe *t) {
    for (int i = 0; i < 512; i++) t->byte_of[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        const int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        const int cp = printable ? b : 256 + extra++;
        t->byte_of[cp] = b;
        memset(t->byte_utf8[b], 0, 3);
        if (cp < 0x80) t->byte_utf8[b][0] = (char)cp;
        else t->byte_utf8[b][0] = (char)(0xC0 | cp >> 6), t->byte_utf8[b][1] = (char)(0x80 | (cp & 0x3F));
    }
}

// --- loading ------------------------------------------------------------------------------------------------

static qtk_status fail_key(const char *path, const char *key, const char *why) {
    return qtk_fail(QTK_ERR_FORMAT, "%s: %s: %s", path, key, why);
}

static int is_true(const cJSON *o, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key)); }

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// the pre-tokenizer: ByteLevel (the GPT-2 pattern when use_regex), or a Sequence of a Split (its Regex,
// Isolated, not inverted) and a ByteLevel without regex; *pattern NULL: no split
static qtk_status pre_tokenizer(qtk_bpe *t, const char *path, const cJSON *pt, const char **pattern) {
    *pattern = NULL;
    if (!pt || cJSON_IsNull(pt)) return fail_key(path, "pre_tokenizer", "missing (a byte-level BPE needs ByteLevel)");
    const char *type = str_of(pt, "type");
    if (type && !strcmp(type, "ByteLevel")) {
        t->add_prefix_space = is_true(pt, "add_prefix_space");
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) *pattern = gpt2_pattern;
        return QTK_OK;
    }
    if (!type || strcmp(type, "Sequence"))
        return fail_key(path, "pre_tokenizer.type", "only ByteLevel, or a Sequence of Split and ByteLevel");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers"), *e;
    int byte_level = 0;
    cJSON_ArrayForEach(e, seq) {
        const char *et = str_of(e, "type");
        if (et && !strcmp(et, "Split")) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pattern");
            const char *rx = str_of(p, "Regex"), *beh = str_of(e, "behavior");
            if (!rx || *pattern) return fail_key(path, "pre_tokenizer.pretokenizers", "one Split with a Regex pattern");
            if (!beh || strcmp(beh, "Isolated") || is_true(e, "invert"))
                return fail_key(path, "pre_tokenizer Split", "only behavior Isolated, not inverted");
            *pattern = rx;
        } else if (et && !strcmp(et, "ByteLevel")) {
            byte_level = 1;
            t->add_prefix_space = is_true(e, "add_prefix_space");
            if (is_true(e, "use_regex")) {
                if (*pattern) return fail_key(path, "pre_tokenizer", "a Split and a ByteLevel regex both");
                *pattern = gpt2_pattern;
            }
        } else return fail_key(path, "pre_tokenizer.pretokenizers", "only Split and ByteLevel");
    }
    if (!byte_level) return fail_key(path, "pre_tokenizer", "no ByteLevel step (a byte-level BPE needs it)");
    return QTK_OK;
}

static qtk_status load(qtk_bpe *t, const char *path, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mt = str_of(model, "type");
    if (!model || (mt && strcmp(mt, "BPE"))) return fail_key(path, "model.type", "only BPE");
    if (is_true(model, "byte_fallback")) return fail_key(path, "model.byte_fallback", "not supported");
    const char *pre = str_of(model, "continuing_subword_prefix"), *suf = str_of(model, "end_of_word_suffix");
    if ((pre && *pre) || (suf && *suf)) return fail_key(path, "model", "word prefixes and suffixes are not supported");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const char *nt = str_of(norm, "type");
        if (!nt || strcmp(nt, "NFC")) return fail_key(path, "normalizer", "only none or NFC");
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) return fail_key(path, "model", "needs vocab (object) and merges (list)");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;
    const int nv = cJSON_GetArraySize(vocab), na = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    t->vocab_cap = pow2_at_least(2 * (size_t)(nv + na) + 16);
    if (!(t->vocab = calloc(t->vocab_cap, sizeof *t->vocab))) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
    int32_t max_id = -1;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (1 << 24) || e->valuedouble != (int32_t)e->valuedouble)
            return qtk_fail(QTK_ERR_FORMAT, "%s: model.vocab[\"%s\"]: not an id in 0..2^24", path, e->string);
        int r = vocab_put(t, e->string, strlen(e->string), (int32_t)e->valuedouble);
        if (r < 0) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
        if (r) return qtk_fail(QTK_ERR_FORMAT, "%s: model.vocab: \"%s\" twice", path, e->string);
        if ((int32_t)e->valuedouble > max_id) max_id = (int32_t)e->valuedouble;
    }
    if (na) {
        t->added = calloc((size_t)na, sizeof *t->added);
        t->added_len = calloc((size_t)na, sizeof *t->added_len);
        t->added_id = calloc((size_t)na, sizeof *t->added_id);
        if (!t->added || !t->added_len || !t->added_id) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
    }
    cJSON_ArrayForEach(e, added) {
        const char *content = str_of(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!content || !*content || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > (1 << 24))
            return fail_key(path, "added_tokens", "each needs content and an id in 0..2^24");
        if (is_true(e, "lstrip") || is_true(e, "rstrip") || is_true(e, "single_word"))
            return qtk_fail(QTK_ERR_UNSUPPORTED, "%s: added token \"%s\": lstrip / rstrip / single_word are not supported",
                            path, content);
        // longest first: insertion sort by length
        int k = t->n_added++;
        const size_t len = strlen(content);
        while (k > 0 && t->added_len[k - 1] < len) {
            t->added[k] = t->added[k - 1], t->added_len[k] = t->added_len[k - 1], t->added_id[k] = t->added_id[k - 1];
            k--;
        }
        if (!(t->added[k] = strdup(content))) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
        t->added_len[k] = len, t->added_id[k] = (int32_t)id->valuedouble;
        if (vocab_put(t, content, len, t->added_id[k]) < 0) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
        if (t->added_id[k] > max_id) max_id = t->added_id[k];
    }
    t->n_ids = max_id + 1;
    t->tokens = calloc((size_t)t->n_ids, sizeof *t->tokens);
    t->token_len = calloc((size_t)t->n_ids, sizeof *t->token_len);
    if (!t->tokens || !t->token_len) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
    // one text per id: an id that two strings share would decode one of them as the other
    for (int k = 0; k < t->n_added; k++) // an added token's text is what it decodes to
        t->tokens[t->added_id[k]] = t->added[k], t->token_len[t->added_id[k]] = t->added_len[k];
    for (size_t i = 0; i < t->vocab_cap; i++) {
        const str_slot *v = &t->vocab[i];
        if (!v->key) continue;
        const char *have = t->tokens[v->id];
        if (!have) t->tokens[v->id] = v->key, t->token_len[v->id] = v->len;
        else if (t->token_len[v->id] != v->len || memcmp(have, v->key, v->len))
            return qtk_fail(QTK_ERR_FORMAT, "%s: id %d is both \"%s\" and \"%s\" (model.vocab, added_tokens)", path, v->id,
                            have, v->key);
    }
    byte_alphabet(t);
    for (int b = 0; b < 256; b++) t->byte_id[b] = vocab_get(t, t->byte_utf8[b], strlen(t->byte_utf8[b]));
    // merges: "a b" strings or [a, b] pairs; the merged token must be in the vocabulary
    t->merges_cap = pow2_at_least(2 * (size_t)cJSON_GetArraySize(merges) + 16);
    if (!(t->merges = calloc(t->merges_cap, sizeof *t->merges))) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
    int rank = 0;
    char buf[1024];
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp) return qtk_fail(QTK_ERR_FORMAT, "%s: model.merges[%d]: \"%s\" is not \"left right\"", path, rank, e->valuestring);
            a = e->valuestring, la = (size_t)(sp - a), b = sp + 1, lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring, b = cJSON_GetArrayItem(e, 1)->valuestring;
            la = strlen(a), lb = strlen(b);
        } else return qtk_fail(QTK_ERR_FORMAT, "%s: model.merges[%d]: not a pair", path, rank);
        if (la + lb >= sizeof buf) return qtk_fail(QTK_ERR_FORMAT, "%s: model.merges[%d]: too long", path, rank);
        const int32_t ia = vocab_get(t, a, la), ib = vocab_get(t, b, lb);
        memcpy(buf, a, la), memcpy(buf + la, b, lb);
        const int32_t im = vocab_get(t, buf, la + lb);
        if (ia < 0 || ib < 0 || im < 0)
            return qtk_fail(QTK_ERR_FORMAT, "%s: model.merges[%d]: \"%.*s\" + \"%.*s\": a part or the merge is not in the "
                            "vocabulary", path, rank, (int)la, a, (int)lb, b);
        merge_put(t, ia, ib, rank, im);
        rank++;
    }
    const char *pattern;
    QTK_TRY(pre_tokenizer(t, path, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &pattern));
    if (pattern) {
        int err;
        PCRE2_SIZE off;
        t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
        if (!t->re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return qtk_fail(QTK_ERR_FORMAT, "%s: pre_tokenizer regex at offset %zu: %s", path, (size_t)off, (char *)msg);
        }
    }
    return QTK_OK;
}

qtk_status qtk_bpe_load(qtk_bpe **out, const char *path) {
    *out = NULL;
    char *text;
    QTK_TRY(qtk_file_read(path, "tokenizer.json", (size_t)1 << 30, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return qtk_fail(QTK_ERR_FORMAT, "%s: not valid JSON", path);
    qtk_bpe *t = calloc(1, sizeof *t);
    qtk_status st = t ? load(t, path, root) : qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
    cJSON_Delete(root);
    if (st != QTK_OK) {
        qtk_bpe_free(t);
        return st;
    }
    *out = t;
    return QTK_OK;
}

void qtk_bpe_free(qtk_bpe *t) {
    if (!t) return;
    for (size_t i = 0; i < t->vocab_cap; i++) free(t->vocab[i].key);
    free(t->vocab);
    free(t->tokens), free(t->token_len), free(t->merges);
    for (int k = 0; k < t->n_added; k++) free(t->added[k]);
    free(t->added), free(t->added_len), free(t->added_id);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

int qtk_bpe_vocab_size(const qtk_bpe *t) { return t->n_ids; }

// --- encoding -----------------------------------------------------------------------------------------------

typedef struct {
    int32_t *v;
    size_t n, cap;
} ids_buf;

static int push(ids_buf *b, int32_t id) {
    if (b->n == b->cap) {
        size_t c = b->cap ? 2 * b->cap : 1024;
        int32_t *p = realloc(b->v, c * sizeof *p);
        if (!p) return -1;
        b->v = p, b->cap = c;
    }
    b->v[b->n++] = id;
    return 0;
}

// one pre-token's bytes through the merges: symbols start as single bytes, the lowest-ranked adjacent pair
// merges first (the leftmost among equal ranks), until no pair has a merge
static qtk_status bpe_piece(const qtk_bpe *t, const unsigned char *s, size_t n, int32_t *sym, ids_buf *out) {
    for (size_t i = 0; i < n; i++) {
        sym[i] = t->byte_id[s[i]];
        if (sym[i] < 0) return qtk_fail(QTK_ERR_FORMAT, "tokenizer: byte 0x%02x has no token in the vocabulary", s[i]);
    }
    size_t m = n;
    for (;;) {
        int32_t best = INT32_MAX, id = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            const pair_slot *p = merge_get(t, sym[i], sym[i + 1]);
            if (p && p->rank < best) best = p->rank, id = p->id, at = i;
        }
        if (id < 0) break;
        sym[at] = id;
        memmove(sym + at + 1, sym + at + 2, (m - at - 2) * sizeof *sym);
        m--;
    }
    for (size_t i = 0; i < m; i++)
        if (push(out, sym[i])) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
    return QTK_OK;
}

// text without added tokens: the regex's matches (and any text between them) as pieces
static qtk_status encode_plain(const qtk_bpe *t, const char *s, size_t n, pcre2_match_data *md, int32_t *sym, ids_buf *out) {
    if (!t->re) return bpe_piece(t, (const unsigned char *)s, n, sym, out);
    size_t off = 0;
    while (off < n) {
        int rc = pcre2_match(t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return qtk_fail(QTK_ERR_FORMAT, "tokenizer: the split regex failed (PCRE2 error %d)", rc);
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t b = ov[0], e = ov[1];
        if (b > off) QTK_TRY(bpe_piece(t, (const unsigned char *)s + off, b - off, sym, out));
        if (e == b) { // an empty match: step one character on
            e = b + 1;
            while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80) e++;
            QTK_TRY(bpe_piece(t, (const unsigned char *)s + b, e - b, sym, out));
        } else QTK_TRY(bpe_piece(t, (const unsigned char *)s + b, e - b, sym, out));
        off = e;
    }
    if (off < n) QTK_TRY(bpe_piece(t, (const unsigned char *)s + off, n - off, sym, out));
    return QTK_OK;
}

qtk_status qtk_bpe_encode(const qtk_bpe *t, const char *text, size_t n, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    // valid UTF-8 first (HF tokenizers take Python str): the offset of the first bad byte otherwise
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)text[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return qtk_fail(QTK_ERR_FORMAT, "tokenizer: the text is not valid UTF-8 at byte %zu", i);
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)text[i + j] & 0xC0) != 0x80)
                return qtk_fail(QTK_ERR_FORMAT, "tokenizer: the text is not valid UTF-8 at byte %zu", i);
        i += k;
    }
    ids_buf out = {0};
    int32_t *sym = malloc((n + 2) * sizeof *sym);
    char *pre = NULL;
    pcre2_match_data *md = t->re ? pcre2_match_data_create_from_pattern(t->re, NULL) : NULL;
    qtk_status st = sym && (md || !t->re) ? QTK_OK : qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
    if (st == QTK_OK && t->add_prefix_space && n && text[0] != ' ') { // ByteLevel's add_prefix_space
        if (!(pre = malloc(n + 1))) st = qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
        else pre[0] = ' ', memcpy(pre + 1, text, n), text = pre, n++;
    }
    // the added tokens split the text (leftmost, then longest); the rest goes through the regex and the merges
    size_t start = 0;
    for (size_t i = 0; st == QTK_OK && i < n;) {
        int hit = -1;
        for (int k = 0; k < t->n_added && hit < 0; k++)
            if (t->added_len[k] <= n - i && text[i] == t->added[k][0] && !memcmp(text + i, t->added[k], t->added_len[k])) hit = k;
        if (hit < 0) {
            i++;
            continue;
        }
        if (i > start) st = encode_plain(t, text + start, i - start, md, sym, &out);
        if (st == QTK_OK && push(&out, t->added_id[hit])) st = qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
        i += t->added_len[hit];
        start = i;
    }
    if (st == QTK_OK && start < n) st = encode_plain(t, text + start, n - start, md, sym, &out);
    if (md) pcre2_match_data_free(md);
    free(sym), free(pre);
    if (st != QTK_OK) {
        free(out.v);
        return st;
    }
    *ids = out.v ? out.v : malloc(sizeof(int32_t));
    *n_ids = out.n;
    return *ids ? QTK_OK : qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
}

// --- decoding -----------------------------------------------------------------------------------------------

qtk_status qtk_bpe_decode(const qtk_bpe *t, const int32_t *ids, size_t n, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->tokens[ids[i]])
            return qtk_fail(QTK_ERR_ARG, "tokenizer: id %d (at %zu) is not a token", ids[i], i);
        cap += t->token_len[ids[i]];
    }
    char *o = malloc(cap);
    if (!o) return qtk_fail(QTK_ERR_NOMEM, "tokenizer: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = t->tokens[ids[i]];
        const size_t m = t->token_len[ids[i]];
        // each byte-level character back to its byte; any other character as it is (added tokens)
        for (size_t j = 0; j < m;) {
            const unsigned char c = (unsigned char)s[j];
            int cp = -1;
            size_t w = 1;
            if (c < 0x80) cp = c;
            else if ((c >> 5) == 6 && j + 1 < m) cp = (c & 0x1F) << 6 | ((unsigned char)s[j + 1] & 0x3F), w = 2;
            if (cp >= 0 && cp < 512 && t->byte_of[cp] >= 0) o[k++] = (char)t->byte_of[cp];
            else {
                w = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
                if (j + w > m) w = m - j;
                memcpy(o + k, s + j, w), k += w;
            }
            j += w;
        }
    }
    o[k] = 0;
    *text = o;
    *len = k;
    return QTK_OK;
}
