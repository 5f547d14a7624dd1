// A tokenizer.json (datasets/bpe.h) and a text to run through it. Input: the JSON, "\n%%\n", the text. Any
// tokenizer the loader accepts must give decode(encode(x)) = x for valid UTF-8 x (with ByteLevel's
// add_prefix_space, " " + x).
#include "../datasets/bpe.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, "\n%%\n", part, len, 2);
    fuzz_write("tokenizer.json", part[0], len[0]);
    qtk_bpe *t;
    if (qtk_bpe_load(&t, "tokenizer.json") != QTK_OK) return 0;
    int32_t *ids;
    size_t n;
    if (qtk_bpe_encode(t, (const char *)part[1], len[1], &ids, &n) == QTK_OK) {
        char *back;
        size_t nb;
        if (qtk_bpe_decode(t, ids, n, &back, &nb) != QTK_OK) abort(); // its own ids must decode
        const int same = nb == len[1] && !memcmp(back, part[1], nb);
        const int prefixed = nb == len[1] + 1 && back[0] == ' ' && !memcmp(back + 1, part[1], len[1]);
        if (!same && !prefixed) abort();
        free(back);
        free(ids);
    }
    qtk_bpe_free(t);
    return 0;
}
