// Token files with their JSON sidecar. Input: the sidecar, "\n%%\n", the token bytes.
#include "../datasets/tokens.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, "\n%%\n", part, len, 2);
    fuzz_write("t.tok.json", part[0], len[0]);
    fuzz_write("t.tok", part[1], len[1]);
    qtk_tokens t;
    if (qtk_tokens_open(&t, "t.tok") != QTK_OK) return 0;
    int32_t buf[64];
    size_t ns = qtk_tokens_n_samples(&t, 16, 5);
    for (size_t i = 0; i < ns && i < 8; i++)
        if (qtk_tokens_sample(&t, i, 16, 5, buf) != QTK_OK) abort(); // a listed sample must exist
    (void)qtk_tokens_sample(&t, ns, 16, 5, buf);                     // and the next one must not
    qtk_tokens_close(&t);
    return 0;
}
