// safetensors: the header parser (JSON, dtypes, shapes, offsets, metadata) and the float conversion of
// every tensor it accepts.
#include "../core/qtk.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write("x.safetensors", data, size);
    qtk_safetensors st;
    if (qtk_st_open(&st, p) != QTK_OK) return 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const qtk_st_tensor *t = &st.tensors[i];
        if (t->nbytes > ((size_t)64 << 20)) continue; // the harness's bound, not the parser's
        float *f = NULL;
        size_t n;
        if (qtk_st_load_f32(&st, t->name, &f, &n) == QTK_OK) qtk_aligned_free(f);
        (void)qtk_st_find(&st, t->name);
    }
    for (size_t i = 0; i < st.n_meta; i++) (void)qtk_st_meta(&st, st.meta_keys[i]);
    qtk_st_close(&st);
    return 0;
}
