// A Mamba checkpoint folder: config.json (HF or mamba_ssm keys, Infinity forms), then either one
// model.safetensors or model.safetensors.index.json with shards a.safetensors and b.safetensors.
// Input parts, split at "\n%%\n": config.json, index.json (empty: no index), shard a, shard b.
#include "../ssm/mamba.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    mkdir("m", 0755);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[4];
    size_t len[4];
    fuzz_split(data, size, "\n%%\n", part, len, 4);
    char *cfg = fuzz_str(part[0], len[0]);
    qtk_mamba_config c;
    (void)qtk_mamba_config_parse(cfg, "config.json", &c);
    free(cfg);
    fuzz_write("m/config.json", part[0], len[0]);
    unlink("m/model.safetensors");
    unlink("m/model.safetensors.index.json");
    if (len[1]) {
        fuzz_write("m/model.safetensors.index.json", part[1], len[1]);
        fuzz_write("m/a.safetensors", part[2], len[2]);
        fuzz_write("m/b.safetensors", part[3], len[3]);
    } else fuzz_write("m/model.safetensors", part[2], len[2]);
    qtk_mamba m;
    if (qtk_mamba_load(&m, "m") == QTK_OK) qtk_mamba_free(&m);
    return 0;
}
