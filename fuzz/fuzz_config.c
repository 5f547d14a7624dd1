// The run-config YAML loader: libcyaml with qtk's schema, the whole-number check, defaults and validation,
// --set overrides and ${VAR} expansion. Input: the YAML, then optionally "\n%%\n" and one key=value per line
// (the --set arguments). The working folder holds vit.safetensors and data/ for seeds to name.
#include "../experiments/config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    fuzz_write("vit.safetensors", "x", 1);
    mkdir("data", 0755);
    setenv("QTK_FUZZ_DATA", "data", 1);
    setenv("QTK_FUZZ_EMPTY", "", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, "\n%%\n", part, len, 2);
    fuzz_write("c.yaml", part[0], len[0]);
    char *sets_text = fuzz_str(part[1], len[1]);
    char *sets[16];
    int n = 0;
    for (char *s = sets_text, *nl; s && *s && n < 16; s = nl) {
        nl = strchr(s, '\n');
        if (nl) *nl++ = '\0';
        sets[n++] = s;
    }
    qtk_run_config *c = NULL;
    if (qtk_config_load("c.yaml", sets, n, &c) == QTK_OK) {
        qtk_config_save("/dev/null", c);
        qtk_config_free(c);
    }
    free(sets_text);
    return 0;
}
