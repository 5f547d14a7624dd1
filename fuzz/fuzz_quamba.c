// A Quamba checkpoint folder (ssm/quamba.h, docs/quamba.md): config.json with its quantization_config and
// model.safetensors. Input: config.json, "\n%%\n", the safetensors file. What loads runs a prefill of three
// tokens and a decode step.
#include "../ssm/quamba.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    mkdir("q", 0755);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, "\n%%\n", part, len, 2);
    fuzz_write("q/config.json", part[0], len[0]);
    fuzz_write("q/model.safetensors", part[1], len[1]);
    (void)qtk_quamba_is_folder("q");
    qtk_quamba q;
    if (qtk_quamba_load(&q, "q") != QTK_OK) return 0;
    qtk_quamba_state s;
    if (qtk_quamba_state_init(&s, &q, 1) == QTK_OK) {
        const int32_t tok[3] = {0, 1 % q.cfg.vocab, 2 % q.cfg.vocab};
        float *logits = malloc(3 * (size_t)q.cfg.vocab * sizeof *logits);
        if (logits && qtk_quamba_prefill(&q, &s, tok, 3, logits) == QTK_OK) (void)qtk_quamba_decode(&q, &s, tok, logits);
        free(logits);
        qtk_quamba_state_free(&s);
    }
    qtk_quamba_free(&q);
    return 0;
}
