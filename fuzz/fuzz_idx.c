// IDX files (plain or gzip) and CIFAR-10 / CIFAR-100 binary batches.
#include "../datasets/idx.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write("x-idx3-ubyte", data, size);
    qtk_idx x;
    if (qtk_idx_read(p, &x) == QTK_OK) qtk_idx_free(&x);
    for (int c100 = 0; c100 < 2; c100++) {
        uint8_t *im, *lb;
        size_t n;
        if (qtk_cifar_read(p, c100, &im, &lb, &n) == QTK_OK) {
            free(im);
            free(lb);
        }
    }
    return 0;
}
