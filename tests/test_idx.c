// IDX (plain and gzip) and CIFAR binary readers: round trips, malformed files,
// and the built-in Fashion-MNIST when it has been fetched (make fashion-mnist).
#include "../datasets/idx.h"
#include "../datasets/sampler.h"
#include "../datasets/tokens.h"
#include <unistd.h>

#include "testutil.h"

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

START_TEST(test_idx_round_trip) {
    uint8_t data[5 * 4 * 3];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 37);
    int dims[3] = {5, 4, 3};
    const char *names[] = {"a-idx3-ubyte", "a-idx3-ubyte.gz"};
    for (int k = 0; k < 2; k++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", tu_tmp, names[k]);
        ck_qtk(qtk_idx_write(path, 3, dims, data));
        qtk_idx x;
        ck_qtk(qtk_idx_read(path, &x));
        ck_assert(x.ndim == 3 && x.dims[0] == 5 && x.dims[1] == 4 && x.dims[2] == 3 && x.n == 60);
        ck_assert_mem_eq(x.data, data, 60);
        qtk_idx_free(&x);
    }
    // the .gz one really is compressed (gzip magic)
    char path[128];
    snprintf(path, sizeof path, "%s/a-idx3-ubyte.gz", tu_tmp);
    FILE *f = fopen(path, "rb");
    unsigned char m[2];
    ck_assert_uint_eq(fread(m, 1, 2, f), 2);
    fclose(f);
    ck_assert(m[0] == 0x1f && m[1] == 0x8b);
}
END_TEST

START_TEST(test_idx_malformed) {
    char path[128];
    snprintf(path, sizeof path, "%s/bad", tu_tmp);
    qtk_idx x;
    const struct { const char *what; unsigned char b[16]; size_t n; const char *msg; } cases[] = {
        {"empty", {0}, 0, "shorter than an IDX header"},
        {"bad magic", {1, 2, 8, 1, 0, 0, 0, 1, 7}, 9, "bad IDX magic"},
        {"float type", {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0}, 12, "only unsigned bytes"},
        {"rank 0", {0, 0, 8, 0}, 4, "rank 0"},
        {"truncated dims", {0, 0, 8, 2, 0, 0, 0, 3}, 8, "truncated IDX header"},
        {"truncated data", {0, 0, 8, 1, 0, 0, 0, 5, 1, 2}, 10, "2 data bytes, the header promises 5"},
        {"extra data", {0, 0, 8, 1, 0, 0, 0, 1, 1, 2}, 10, "bytes after"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_bytes(path, cases[i].b, cases[i].n);
        ck_assert_msg(qtk_idx_read(path, &x) != QTK_OK, "%s accepted", cases[i].what);
        ck_assert_msg(strstr(qtk_last_error(), cases[i].msg) && strstr(qtk_last_error(), path), "%s: %s", cases[i].what,
                      qtk_last_error());
    }
    ck_assert_int_eq(qtk_idx_read("/nonexistent/x-idx1-ubyte", &x), QTK_ERR_IO);
}
END_TEST

START_TEST(test_cifar) {
    char path[128];
    snprintf(path, sizeof path, "%s/data_batch", tu_tmp);
    for (int c100 = 0; c100 < 2; c100++) {
        size_t rec = (size_t)(c100 ? 2 : 1) + 3072;
        uint8_t *b = malloc(3 * rec);
        for (int r = 0; r < 3; r++) {
            b[r * rec] = (uint8_t)(c100 ? 7 : r); // coarse label for CIFAR-100
            if (c100) b[r * rec + 1] = (uint8_t)(90 + r);
            for (int i = 0; i < 3072; i++) b[r * rec + rec - 3072 + i] = (uint8_t)(i + r);
        }
        write_bytes(path, b, 3 * rec);
        uint8_t *im, *lb;
        size_t n;
        ck_qtk(qtk_cifar_read(path, c100, &im, &lb, &n));
        ck_assert_uint_eq(n, 3);
        for (int r = 0; r < 3; r++) {
            ck_assert_int_eq(lb[r], c100 ? 90 + r : r);
            ck_assert_int_eq(im[r * 3072 + 5], (uint8_t)(5 + r));
        }
        free(im);
        free(lb);
        write_bytes(path, b, 3 * rec - 1); // not whole records
        ck_assert_int_eq(qtk_cifar_read(path, c100, &im, &lb, &n), QTK_ERR_FORMAT);
        b[0] = 200, b[1] = 200; // label out of range
        write_bytes(path, b, 3 * rec);
        ck_assert_int_eq(qtk_cifar_read(path, c100, &im, &lb, &n), QTK_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(qtk_last_error(), "label 200"));
        free(b);
    }
}
END_TEST

// The built-in default, if fetched: the documented split and per-class counts.
START_TEST(test_fashion_mnist) {
    const char *dir = getenv("QTK_CACHE") ? getenv("QTK_CACHE") : "build/cache";
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/fashion-mnist/train-images-idx3-ubyte", dir);
    snprintf(p2, sizeof p2, "%s/fashion-mnist/t10k-labels-idx1-ubyte", dir);
    qtk_idx im, lb;
    if (qtk_idx_read(p1, &im) != QTK_OK) {
        TU_SKIP("Fashion-MNIST not fetched (make fashion-mnist)");
    }
    ck_assert(im.ndim == 3 && im.dims[0] == 60000 && im.dims[1] == 28 && im.dims[2] == 28);
    ck_qtk(qtk_idx_read(p2, &lb));
    ck_assert_int_eq(lb.dims[0], 10000);
    int counts[10] = {0};
    for (size_t i = 0; i < lb.n; i++) {
        ck_assert_int_lt(lb.data[i], 10);
        counts[lb.data[i]]++;
    }
    for (int c = 0; c < 10; c++) ck_assert_int_eq(counts[c], 1000);
    qtk_idx_free(&im);
    qtk_idx_free(&lb);
}
END_TEST

START_TEST(test_sampler) {
    uint32_t a[1000], b[1000], c[1000];
    ck_qtk(qtk_sample_indices(60000, 1000, 7, a));
    ck_qtk(qtk_sample_indices(60000, 1000, 7, b));
    ck_qtk(qtk_sample_indices(60000, 1000, 8, c));
    ck_assert_mem_eq(a, b, sizeof a); // same seed, same list
    ck_assert(memcmp(a, c, sizeof a) != 0);
    static uint8_t seen[60000];
    for (int i = 0; i < 1000; i++) {
        ck_assert_uint_lt(a[i], 60000);
        ck_assert_int_eq(seen[a[i]], 0);
        seen[a[i]] = 1;
    }
    char fa[16], fb[16], fc[16];
    qtk_indices_fingerprint(a, 1000, fa);
    qtk_indices_fingerprint(b, 1000, fb);
    qtk_indices_fingerprint(c, 1000, fc);
    ck_assert_str_eq(fa, fb);
    ck_assert_str_ne(fa, fc);
    ck_assert(strncmp(fa, "crc32:", 6) == 0 && strlen(fa) == 14);
    uint32_t d[3];
    ck_qtk(qtk_sample_indices(10, 3, 42, d));
    qtk_rng r;
    qtk_rng_seed(&r, 42, 0);
    ck_assert_uint_eq(d[0], qtk_rng_below(&r, 10)); // first draw is a plain bounded draw
    ck_assert_int_eq(qtk_sample_indices(5, 6, 1, d), QTK_ERR_ARG);
}
END_TEST

START_TEST(test_tokens) {
    char path[128], side[160];
    snprintf(path, sizeof path, "%s/kjv.tokens", tu_tmp);
    snprintf(side, sizeof side, "%s.json", path);
    uint32_t ids[1000];
    for (int i = 0; i < 1000; i++) ids[i] = (uint32_t)(i * 7) % 256; // byte-level vocabulary
    ck_qtk(qtk_tokens_write(path, ids, 1000, 256));
    qtk_tokens t;
    ck_qtk(qtk_tokens_open(&t, path));
    ck_assert(t.width == 2 && t.count == 1000 && t.vocab_size == 256);
    ck_assert_uint_eq(qtk_tokens_n_samples(&t, 128, 64), (1000 - 128) / 64 + 1);
    int32_t s[128];
    ck_qtk(qtk_tokens_sample(&t, 3, 128, 64, s));
    for (int k = 0; k < 128; k++) ck_assert_int_eq(s[k], (int32_t)ids[3 * 64 + k]);
    ck_assert_int_eq(qtk_tokens_sample(&t, 14, 128, 64, s), QTK_ERR_ARG);
    qtk_tokens_close(&t);
    // a 50,280-token vocabulary (GPT-NeoX) still fits uint16; a larger one is uint32
    uint32_t big[3] = {70000, 1, 2};
    ck_qtk(qtk_tokens_write(path, big, 3, 100000));
    ck_qtk(qtk_tokens_open(&t, path));
    ck_assert(t.width == 4 && qtk_tokens_get(&t, 0) == 70000);
    qtk_tokens_close(&t);
    ck_assert_int_eq(qtk_tokens_write(path, big, 3, 1000), QTK_ERR_ARG);
    // bad files: size mismatch, out-of-vocabulary ids, bad sidecars, missing sidecar
    ck_qtk(qtk_tokens_write(path, ids, 1000, 256));
    ck_assert_int_eq(truncate(path, 1999), 0);
    ck_assert_int_eq(qtk_tokens_open(&t, path), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "1999 bytes"));
    ck_qtk(qtk_tokens_write(path, ids, 1000, 256));
    FILE *f = fopen(side, "w");
    fputs("{\"dtype\": \"uint16\", \"count\": 1000, \"vocab_size\": 100}", f);
    fclose(f);
    ck_assert_int_eq(qtk_tokens_open(&t, path), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "outside the vocabulary of 100"));
    f = fopen(side, "w");
    fputs("{\"dtype\": \"int8\", \"count\": 1000, \"vocab_size\": 256}", f);
    fclose(f);
    ck_assert_int_eq(qtk_tokens_open(&t, path), QTK_ERR_FORMAT);
    f = fopen(side, "w");
    fputs("not json", f);
    fclose(f);
    ck_assert_int_eq(qtk_tokens_open(&t, path), QTK_ERR_FORMAT);
    unlink(side);
    ck_assert_int_eq(qtk_tokens_open(&t, path), QTK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "sidecar"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("datasets");
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_idx_round_trip);
    tcase_add_test(tc, test_idx_malformed);
    tcase_add_test(tc, test_cifar);
    tcase_add_test(tc, test_fashion_mnist);
    tcase_add_test(tc, test_sampler);
    tcase_add_test(tc, test_tokens);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
