// ImageFolder trees: class and sample order as torchvision (cross-checked with
// Python's sorted(os.walk())), class-index files, the bad-image policy, and
// the prefetching loader against the single-image transform.
#include <sys/stat.h>
#include <unistd.h>

#include "../datasets/folder.h"
#include "../datasets/image.h"
#include "testutil.h"

static void cp(const char *src, const char *dst) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
    ck_assert_int_eq(system(cmd), 0);
}

static void mk(const char *path) { ck_assert_int_eq(mkdir(path, 0755), 0); }

// root/{zebra, apple, empty_cls}/... with nested folders, a corrupt JPEG and a PNG
static void build_tree(char *root, size_t cap) {
    snprintf(root, cap, "%s/tree", tu_tmp);
    char p[512];
    mk(root);
    const char *dirs[] = {"zebra", "apple", "apple/sub_b", "apple/sub_a", "empty_cls", "zebra/Z"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        mk(p);
    }
    const char *F = "tests/fixtures/datasets/";
    const struct { const char *src, *dst; } files[] = {
        {"rgb_61x47.jpg", "apple/b.jpg"},          {"gray_300x200.jpg", "apple/A.JPG"},
        {"cmyk_120x90.jpg", "apple/sub_b/x.jpeg"}, {"rgb_61x47.jpg", "apple/sub_a/y.jpg"},
        {"rgb444_257x256.jpg", "zebra/z1.jpg"},    {"progressive_333x500.jpg", "zebra/Z/deep.jpg"},
    };
    for (int i = 0; i < 6; i++) {
        char s[256];
        snprintf(s, sizeof s, "%s%s", F, files[i].src);
        snprintf(p, sizeof p, "%s/%s", root, files[i].dst);
        cp(s, p);
    }
    snprintf(p, sizeof p, "%s/zebra/broken.jpg", root);
    FILE *f = fopen(p, "wb");
    fputs("\xff\xd8 not really", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/zebra/pic.png", root);
    f = fopen(p, "wb");
    fputs("png", f);
    fclose(f);
}

START_TEST(test_order_matches_torchvision) {
    char root[256];
    build_tree(root, sizeof root);
    qtk_image_folder f;
    ck_qtk(qtk_folder_open(&f, root, NULL));
    ck_assert_int_eq(f.n_classes, 3);
    ck_assert_str_eq(f.classes[0], "apple");
    ck_assert_str_eq(f.classes[1], "empty_cls");
    ck_assert_str_eq(f.classes[2], "zebra");
    ck_assert_uint_eq(f.n, 7);
    ck_assert_uint_eq(f.n_other, 1);
    ck_assert_int_eq(f.n_empty, 1);
    // torchvision.datasets.folder.make_dataset's order, computed by Python
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import os,sys\nr=sys.argv[1]\nfor c in sorted(e.name for e in os.scandir(r) if e.is_dir()):\n"
             " for root,_,fs in sorted(os.walk(os.path.join(r,c),followlinks=True)):\n"
             "  for n in sorted(fs):\n"
             "   if n.lower().endswith(('.jpg','.jpeg')): print(os.path.join(root,n))\" '%s'",
             root);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    char *line = strtok(out, "\n");
    for (size_t i = 0; i < f.n; i++) {
        ck_assert_ptr_nonnull(line);
        ck_assert_msg(!strcmp(line, f.paths[i]), "sample %zu: qtk %s, torchvision order %s", i, f.paths[i], line);
        line = strtok(NULL, "\n");
    }
    ck_assert_ptr_null(line);
    ck_assert_int_eq(f.labels[0], 0);
    ck_assert_int_eq(f.labels[f.n - 1], 2);
    qtk_folder_free(&f);
}
END_TEST

START_TEST(test_class_index) {
    char root[256], idx[256];
    build_tree(root, sizeof root);
    snprintf(idx, sizeof idx, "%s/classes.txt", tu_tmp);
    FILE *fp = fopen(idx, "w");
    fputs("zebra\nempty_cls\n\napple\n", fp);
    fclose(fp);
    qtk_image_folder f;
    ck_qtk(qtk_folder_open(&f, root, idx));
    ck_assert_str_eq(f.classes[0], "zebra");
    ck_assert_str_eq(f.classes[2], "apple");
    ck_assert_int_eq(f.labels[0], 0); // samples follow the index order
    qtk_folder_free(&f);
    fp = fopen(idx, "w");
    fputs("zebra\napple\n", fp); // empty_cls not listed
    fclose(fp);
    ck_assert_int_eq(qtk_folder_open(&f, root, idx), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "\"empty_cls\" is not in the class-index file"));
    fp = fopen(idx, "w");
    fputs("zebra\napple\nempty_cls\nn01440764\n", fp);
    fclose(fp);
    ck_assert_int_eq(qtk_folder_open(&f, root, idx), QTK_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "\"n01440764\""));
    ck_assert_int_eq(qtk_folder_open(&f, "/nonexistent", NULL), QTK_ERR_IO);
    ck_assert_int_eq(qtk_folder_open(&f, tu_tmp, "/nonexistent/classes.txt"), QTK_ERR_IO);
}
END_TEST

START_TEST(test_loader_and_bad_images) {
    char root[256];
    build_tree(root, sizeof root);
    qtk_image_folder f;
    ck_qtk(qtk_folder_open(&f, root, NULL));
    uint32_t all[7];
    for (uint32_t i = 0; i < 7; i++) all[i] = i;
    qtk_transform t = {32, 0.875f, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, 0};
    qtk_loader *ld;
    ck_qtk(qtk_loader_open(&ld, &f, all, 7, 2, &t, QTK_BAD_SKIP));
    const float *im;
    const int *lab;
    int cnt, total = 0, k = 0;
    float *ref = malloc(3 * 32 * 32 * sizeof *ref);
    for (;;) {
        ck_qtk(qtk_loader_next(ld, &im, &lab, &cnt));
        if (cnt == 0) break;
        for (int i = 0; i < cnt; i++, k++) {
            // the k-th good image, in order (the broken one is left out)
            while (strstr(f.paths[all[k]], "broken")) k++;
            qtk_image one;
            ck_qtk(qtk_image_load(f.paths[all[k]], &one));
            ck_qtk(qtk_preprocess_eval(&one, 32, 0.875f, t.mean, t.std, ref));
            qtk_image_free(&one);
            ck_assert_msg(!memcmp(ref, im + (size_t)i * 3 * 32 * 32, 3 * 32 * 32 * sizeof *ref), "image %s differs",
                          f.paths[all[k]]);
            ck_assert_int_eq(lab[i], f.labels[all[k]]);
        }
        total += cnt;
    }
    ck_assert_int_eq(total, 6);
    const qtk_bad_list *bad = qtk_loader_bad(ld);
    ck_assert_uint_eq(bad->n, 1);
    ck_assert_ptr_nonnull(strstr(bad->paths[0], "zebra/broken.jpg"));
    ck_assert(strlen(bad->reasons[0]) > 0);
    qtk_loader_close(ld);
    // on_bad_image: fail stops at the broken file, naming it
    ck_qtk(qtk_loader_open(&ld, &f, all, 7, 7, &t, QTK_BAD_FAIL));
    ck_assert_int_ne(qtk_loader_next(ld, &im, &lab, &cnt), QTK_OK);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "broken.jpg"));
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "on_bad_image: fail"));
    qtk_loader_close(ld);
    uint32_t oob = 99;
    ck_assert_int_eq(qtk_loader_open(&ld, &f, &oob, 1, 1, &t, QTK_BAD_SKIP), QTK_ERR_ARG);
    free(ref);
    qtk_folder_free(&f);
}
END_TEST

START_TEST(test_cache) {
    char root[256], cache[256];
    build_tree(root, sizeof root);
    snprintf(cache, sizeof cache, "%s/cache.safetensors", tu_tmp);
    qtk_image_folder f;
    ck_qtk(qtk_folder_open(&f, root, NULL));
    uint32_t all[7];
    for (uint32_t i = 0; i < 7; i++) all[i] = i;
    qtk_transform t = {32, 0.875f, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 0};
    float *a, *b;
    int *la, *lb, hit;
    size_t na, nb;
    qtk_bad_list bad;
    ck_qtk(qtk_folder_cached(&f, all, 7, &t, QTK_BAD_SKIP, cache, &a, &la, &na, &hit, &bad));
    ck_assert(!hit && na == 6 && bad.n == 1 && strstr(bad.paths[0], "broken.jpg"));
    qtk_safetensors cst;
    ck_qtk(qtk_st_open(&cst, cache));
    ck_assert_ptr_nonnull(strstr(qtk_st_meta(&cst, "qtk.cache.files"), "apple/sub_b/x.jpeg"));
    ck_assert_ptr_nonnull(strstr(qtk_st_meta(&cst, "qtk.cache.transform"), "\"crop_pct\": 0.875"));
    qtk_st_close(&cst);
    qtk_bad_list_free(&bad);
    // the same as decoding each image
    float one[3 * 32 * 32];
    qtk_image im;
    ck_qtk(qtk_image_load(f.paths[1], &im));
    ck_qtk(qtk_preprocess_eval(&im, 32, 0.875f, t.mean, t.std, one));
    qtk_image_free(&im);
    ck_assert(!memcmp(one, a + 3 * 32 * 32, sizeof one));
    // second run: from the cache, identical, skipped files still reported
    ck_qtk(qtk_folder_cached(&f, all, 7, &t, QTK_BAD_SKIP, cache, &b, &lb, &nb, &hit, &bad));
    ck_assert(hit && nb == na && bad.n == 1);
    ck_assert(!memcmp(a, b, na * sizeof one) && !memcmp(la, lb, na * sizeof *la));
    qtk_bad_list_free(&bad);
    free(b);
    free(lb);
    // a changed file makes the cache stale
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp tests/fixtures/datasets/rgb_500x375.jpg '%s/zebra/z1.jpg' && touch -d '2001-01-01' '%s/zebra/z1.jpg'", root, root);
    ck_assert_int_eq(system(cmd), 0);
    ck_qtk(qtk_folder_cached(&f, all, 7, &t, QTK_BAD_SKIP, cache, &b, &lb, &nb, &hit, &bad));
    ck_assert_msg(!hit, "a changed image did not invalidate the cache");
    qtk_bad_list_free(&bad);
    free(b);
    free(lb);
    // other settings make it stale too
    t.crop_pct = 0.9f;
    ck_qtk(qtk_folder_cached(&f, all, 7, &t, QTK_BAD_SKIP, cache, &b, &lb, &nb, &hit, &bad));
    ck_assert(!hit);
    qtk_bad_list_free(&bad);
    free(b);
    free(lb);
    // a damaged cache file is rebuilt, not trusted
    FILE *fp = fopen(cache, "r+b");
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fclose(fp);
    ck_assert_int_eq(truncate(cache, len / 2), 0);
    ck_qtk(qtk_folder_cached(&f, all, 7, &t, QTK_BAD_SKIP, cache, &b, &lb, &nb, &hit, &bad));
    ck_assert(!hit && nb == 6);
    qtk_bad_list_free(&bad);
    free(b);
    free(lb);
    // fail policy
    ck_assert_int_ne(qtk_folder_cached(&f, all, 7, &t, QTK_BAD_FAIL, NULL, &b, &lb, &nb, &hit, &bad), QTK_OK);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "broken.jpg"));
    free(a);
    free(la);
    qtk_folder_free(&f);
}
END_TEST

START_TEST(test_flat_val_layout) {
    char root[256], list[256], idx[256], p[512];
    snprintf(root, sizeof root, "%s/val", tu_tmp);
    mk(root);
    const char *ids[] = {"ILSVRC2012_val_00000002", "ILSVRC2012_val_00000001", "ILSVRC2012_val_00000003"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s.JPEG", root, ids[i]);
        cp("tests/fixtures/datasets/rgb_61x47.jpg", p);
    }
    snprintf(idx, sizeof idx, "%s/synsets.txt", tu_tmp);
    FILE *fp = fopen(idx, "w");
    fputs("n01440764\nn01443537\nn01484850\n", fp);
    fclose(fp);
    snprintf(list, sizeof list, "%s/LOC_val_solution.csv", tu_tmp);
    fp = fopen(list, "w");
    fputs("ImageId,PredictionString\n"
          "ILSVRC2012_val_00000002,n01484850 1 2 30 40 n01484850 5 6 7 8\n"
          "ILSVRC2012_val_00000001,n01440764 10 20 30 40\n"
          "ILSVRC2012_val_00000003,n01443537 1 1 2 2\n", fp);
    fclose(fp);
    qtk_image_folder f;
    ck_qtk(qtk_folder_open_list(&f, root, list, idx));
    ck_assert_uint_eq(f.n, 3);
    ck_assert_ptr_nonnull(strstr(f.paths[0], "val_00000001.JPEG")); // sorted by name
    ck_assert_int_eq(f.labels[0], 0);
    ck_assert_int_eq(f.labels[1], 2);
    ck_assert_int_eq(f.labels[2], 1);
    qtk_folder_free(&f);
    fp = fopen(list, "a");
    fputs("ILSVRC2012_val_00000004,n01440764\n", fp); // listed, missing
    fclose(fp);
    ck_assert_int_eq(qtk_folder_open_list(&f, root, list, idx), QTK_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), ":5:"));
    fp = fopen(list, "w");
    fputs("ILSVRC2012_val_00000001,n99999999\n", fp);
    fclose(fp);
    ck_assert_int_eq(qtk_folder_open_list(&f, root, list, idx), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "n99999999"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("folder");
    TCase *tc = tcase_create("datasets");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_order_matches_torchvision);
    tcase_add_test(tc, test_class_index);
    tcase_add_test(tc, test_loader_and_bad_images);
    tcase_add_test(tc, test_cache);
    tcase_add_test(tc, test_flat_val_layout);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
