// The sweep YAML loader and its expansion into runs, each run's config loaded with its --set overrides.
// "@BASE@" in the input stands for b.yaml, a valid base config in the working folder.
#include "../experiments/cli.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    fuzz_write("vit.safetensors", "x", 1);
    mkdir("data", 0755);
    const char *base = "name: base\nmodel:\n  checkpoint: vit.safetensors\ndata:\n  format: tensor\n  root: data\n";
    fuzz_write("b.yaml", base, strlen(base));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = fuzz_str(data, size);
    for (char *b; (b = strstr(s, "@BASE@"));) memcpy(b, "b.yaml", 6);
    fuzz_write("s.yaml", s, size);
    free(s);
    qtk_sweep_validate("s.yaml");
    return 0;
}
