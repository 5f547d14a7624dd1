// Class-index files and validation label lists (ImageNet's flat val layout), over a folder holding
// img1.JPEG, img2.jpg and a/b.JPEG. Input: the class index, "\n%%\n", the list.
#include "../datasets/folder.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    mkdir("val", 0755);
    mkdir("val/a", 0755);
    fuzz_write("val/img1.JPEG", "x", 1);
    fuzz_write("val/img2.jpg", "x", 1);
    fuzz_write("val/a/b.JPEG", "x", 1);
    mkdir("train", 0755);
    mkdir("train/cat", 0755);
    mkdir("train/dog", 0755);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, "\n%%\n", part, len, 2);
    fuzz_write("classes.txt", part[0], len[0]);
    fuzz_write("val.txt", part[1], len[1]);
    qtk_image_folder f;
    if (qtk_folder_open_list(&f, "val", "val.txt", "classes.txt") == QTK_OK) qtk_folder_free(&f);
    if (qtk_folder_open(&f, "train", "classes.txt") == QTK_OK) qtk_folder_free(&f);
    return 0;
}
