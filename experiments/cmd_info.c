// qtk info FILE.safetensors
#include <stdio.h>
#include <string.h>

#include "../core/qtk.h"
#include "cli.h"
#include "opts.h"

int qtk_cmd_info(int argc, char **argv) {
    const qtk_cmd_spec spec = {"info", "FILE.safetensors", "Lists every tensor (name, dtype, shape, bytes) and the __metadata__ map.",
                               NULL, 0, 1, 1};
    char *file;
    int n, rc = qtk_opts_parse(&spec, argc, argv, &file, &n);
    if (rc) return rc < 0 ? 0 : rc;
    qtk_safetensors st;
    if (qtk_st_open(&st, file) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    size_t w = 4;
    for (size_t i = 0; i < st.n_tensors; i++)
        if (strlen(st.tensors[i].name) > w) w = strlen(st.tensors[i].name);
    printf("%s: %zu tensors\n\n", file, st.n_tensors);
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
