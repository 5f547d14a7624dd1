// qtk info FILE.safetensors
#include <stdio.h>
#include <string.h>

#include "../core/qtk.h"
#include "cli.h"

int qtk_cmd_info(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts("usage: qtk info FILE.safetensors\n\nLists every tensor (name, dtype, shape, bytes) and the "
             "__metadata__ map.");
        return 0;
    }
    if (argc != 2) return qtk_cli_usage_error("info takes exactly one file, got %d arguments", argc - 1);
    qtk_safetensors st;
    if (qtk_st_open(&st, argv[1]) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    size_t w = 4;
    for (size_t i = 0; i < st.n_tensors; i++)
        if (strlen(st.tensors[i].name) > w) w = strlen(st.tensors[i].name);
    printf("%s: %zu tensors\n\n", argv[1], st.n_tensors);
    printf("%-*s  %-5s  %-24s  %12s\n", (int)w, "name", "dtype", "shape", "bytes");
    size_t total = 0;
    long long params = 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const qtk_st_tensor *t = &st.tensors[i];
        char sh[200];
        printf("%-*s  %-5s  %-24s  %12zu\n", (int)w, t->name, qtk_dtype_name(t->dtype),
               qtk_shape_str(t->ndim, t->shape, sh, sizeof sh), t->nbytes);
        total += t->nbytes;
        params += qtk_numel(t->ndim, t->shape);
    }
    printf("\ntotal: %lld elements, %zu bytes\n", params, total);
    if (st.n_meta) {
        printf("\nmetadata:\n");
        for (size_t i = 0; i < st.n_meta; i++) printf("  %s: %s\n", st.meta_keys[i], st.meta_vals[i]);
    }
    qtk_st_close(&st);
    return 0;
}
