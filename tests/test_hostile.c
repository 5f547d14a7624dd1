// Hostile input: one regression test per defect that the malformed-input campaign found (issue 15).
// Each asserts the clear error (naming the file, the key or the index) that replaced a crash, a hang, a
// giant allocation or a silent acceptance.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include "../datasets/folder.h"
#include "../datasets/idx.h"
#include "../datasets/image.h"
#include "../datasets/tokens.h"
#include "../ssm/mamba.h"
#include "../vision/vit.h"
#include "../vision/vit_quant.h"
#include "testutil.h"

#define out tu_cli_out
#define run tu_cli

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

#define has(s) ck_assert_msg(strstr(out, s) != NULL, "expected \"%s\" in: %s", s, out)
#define err_has(s) ck_assert_msg(strstr(qtk_last_error(), s) != NULL, "expected \"%s\" in: %s", s, qtk_last_error())

// Caps this test process's memory: a giant allocation fails instead of swapping (and the error must not be one).
// Not under AddressSanitizer, whose shadow memory needs terabytes of address space.
#if defined(__SANITIZE_ADDRESS__)
#define QTK_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QTK_TEST_ASAN 1
#endif
#endif
static void cap_memory(size_t bytes) {
#ifndef QTK_TEST_ASAN
    struct rlimit rl = {bytes, bytes};
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
#else
    (void)bytes;
#endif
}

// 1. An empty YAML stream (0 bytes or only comments) is one error naming the file, for every command.
START_TEST(test_empty_yaml) {
    char e[128], c[128], args[512];
    snprintf(e, sizeof e, "%s/e.yaml", tu_tmp);
    snprintf(c, sizeof c, "%s/c.yaml", tu_tmp);
    write_text(e, "");
    write_text(c, "# nothing but a comment\n\n");
    const char *cmds[] = {"run %s", "eval %s", "calibrate %s", "sweep %s --dry-run", "perplexity --config %s"};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
            char fmt[64];
            snprintf(fmt, sizeof fmt, cmds[i], k ? c : e);
            snprintf(args, sizeof args, "%s", fmt);
            int rc = run(args);
            ck_assert_msg(rc == 1, "qtk %s: exit %d: %s", args, rc, out);
            has("empty file: no YAML document");
            has(k ? c : e);
        }
}
END_TEST

// A random ViT of 5 classes and a config evaluating the tensor file `data` (and calibrating on it).
static void vit_and_config(const char *data_format, const char *root) {
    char p[256], text[2048];
    snprintf(p, sizeof p, "%s/vit.safetensors", tu_tmp);
    qtk_vit_config cfg = {.img_size = 28, .patch = 7, .in_chans = 1, .dim = 32, .depth = 1, .heads = 2,
                          .mlp_hidden = 64, .n_classes = 5};
    ck_qtk(qtk_vit_write_random(p, &cfg, 3));
    char test[300] = ""; // a tensor file is its own test set; fashion-mnist finds t10k in root
    if (!strcmp(data_format, "tensor")) snprintf(test, sizeof test, "  test: %s\n", root);
    snprintf(text, sizeof text,
             "name: h\nmodel:\n  checkpoint: %s/vit.safetensors\n  desc: '{\"heads\": 2}'\n"
             "data:\n  format: %s\n  root: %s\n%s"
             "calibration:\n  images: 8\n  batch: 4\nsearch:\n  method: none\n  group: 4\noutput:\n  dir: %s/out\n",
             tu_tmp, data_format, root, test, tu_tmp);
    snprintf(p, sizeof p, "%s/cfg.yaml", tu_tmp);
    write_text(p, text);
}

static void tensor_set(const char *path, int n, float bad_label, int bad_at) {
    float *x = calloc((size_t)n * 784, sizeof *x), *y = calloc((size_t)n, sizeof *y);
    for (int i = 0; i < n; i++) y[i] = (float)(i % 5);
    y[bad_at] = bad_label;
    int64_t xs[4] = {n, 1, 28, 28}, ys[1] = {n};
    qtk_st_entry e[2] = {{"images", QTK_F32, 4, xs, x}, {"labels", QTK_F32, 1, ys, y}};
    ck_qtk(qtk_st_write(path, e, 2, NULL, 0));
    free(x);
    free(y);
}

// A valid labelled tensor set and the config (cfg.yaml) that evaluates the random ViT on it.
static void valid_tensor_run(void) {
    char data[256];
    snprintf(data, sizeof data, "%s/data.safetensors", tu_tmp);
    tensor_set(data, 12, 0.0f, 0);
    vit_and_config("tensor", data);
}

// 2. Labels index the logits: NaN, 1e30, negative, fractional or >= classes are errors naming file and index,
// from tensor files and from IDX files.
START_TEST(test_labels) {
    char data[256], args[512];
    snprintf(data, sizeof data, "%s/data.safetensors", tu_tmp);
    vit_and_config("tensor", data);
    snprintf(args, sizeof args, "eval %s/cfg.yaml", tu_tmp);
    const float bad[] = {NAN, 1e30f, -1.0f, 5.0f, 2.5f, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tensor_set(data, 12, bad[i], 7);
        int rc = run(args);
        ck_assert_msg(rc == 1, "label %g: exit %d: %s", (double)bad[i], rc, out);
        has("labels[7]");
        has(data);
    }
    tensor_set(data, 12, 4.0f, 7);
    ck_assert_msg(run(args) == 0, "valid labels: %s", out);
    // IDX: a label past the model's classes, and a label file shorter than the image file
    char dir[256], p[300];
    snprintf(dir, sizeof dir, "%s/fm", tu_tmp);
    mkdir(dir, 0755);
    static uint8_t img[20 * 784], lab[20];
    for (int i = 0; i < 20; i++) lab[i] = (uint8_t)(i % 5);
    lab[13] = 9;
    int di[3] = {20, 28, 28}, dl[1] = {20}, dshort[1] = {10};
    const char *split[] = {"train", "t10k"};
    for (int s = 0; s < 2; s++) {
        lab[13] = s ? 9 : 3; // the test split's label 13 is out of range
        snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, split[s]);
        ck_qtk(qtk_idx_write(p, 3, di, img));
        snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, split[s]);
        ck_qtk(qtk_idx_write(p, 1, dl, lab));
    }
    vit_and_config("fashion-mnist", dir);
    ck_assert_int_eq(run(args), 1);
    has("t10k-labels-idx1-ubyte: label 9 (image 13) is not a class of the model (0..4)");
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    ck_qtk(qtk_idx_write(p, 1, dshort, lab));
    ck_assert_int_eq(run(args), 1);
    has("10 labels of rank 1 for the 20 images");
}
END_TEST

// 3. Token sidecars: a count whose byte size wraps, a count beyond any double->size_t cast, and a valid sidecar
// over 4 KiB (was cut and called "not a JSON object").
START_TEST(test_token_sidecar) {
    char tok[256], side[300];
    snprintf(tok, sizeof tok, "%s/t.tok", tu_tmp);
    snprintf(side, sizeof side, "%s.json", tok);
    static uint8_t zeros[4096];
    write_bytes(tok, zeros, sizeof zeros);
    qtk_tokens t;
    write_text(side, "{\"dtype\": \"uint16\", \"count\": 9223372036854777856, \"vocab_size\": 256}"); // 2^63 + 2048
    ck_assert_int_eq(qtk_tokens_open(&t, tok), QTK_ERR_FORMAT);
    err_has("\"count\" must be an integer in 0..2^48");
    err_has(side);
    write_text(side, "{\"dtype\": \"uint32\", \"count\": 1e30, \"vocab_size\": 256}");
    ck_assert_int_eq(qtk_tokens_open(&t, tok), QTK_ERR_FORMAT);
    err_has("\"count\"");
    write_text(side, "{\"dtype\": \"uint16\", \"count\": 4096, \"vocab_size\": 256}"); // 8 KiB wanted, 4 KiB there
    ck_assert_int_eq(qtk_tokens_open(&t, tok), QTK_ERR_FORMAT);
    err_has("4096 bytes, but the sidecar says 4096 ids of 2 bytes (8192 bytes)");
    // valid, padded past 4 KiB
    static char big[9000];
    int n = snprintf(big, sizeof big, "{\"dtype\": \"uint16\", \"count\": 2048, ");
    memset(big + n, ' ', 8000);
    snprintf(big + n + 8000, sizeof big - n - 8000, "\"vocab_size\": 256}");
    write_text(side, big);
    ck_qtk(qtk_tokens_open(&t, tok));
    ck_assert_uint_eq(t.count, 2048);
    qtk_tokens_close(&t);
}
END_TEST

// 4. Link loops in an image folder: reported at once, not walked 2^64 times.
START_TEST(test_folder_link_loop) {
    char cls[256], p[300];
    snprintf(cls, sizeof cls, "%s/root/cat", tu_tmp);
    snprintf(p, sizeof p, "%s/root", tu_tmp);
    mkdir(p, 0755);
    mkdir(cls, 0755);
    snprintf(p, sizeof p, "%s/a", cls);
    ck_assert_int_eq(symlink(".", p), 0);
    snprintf(p, sizeof p, "%s/b", cls);
    ck_assert_int_eq(symlink(".", p), 0);
    snprintf(p, sizeof p, "%s/root", tu_tmp);
    qtk_image_folder f;
    ck_assert_int_eq(qtk_folder_open(&f, p, NULL), QTK_ERR_FORMAT);
    err_has("a link loop");
    err_has("/root/cat/");
    // a link to a sibling folder is no loop: its images are listed again, as os.walk(followlinks=True) does
    snprintf(p, sizeof p, "%s/a", cls);
    unlink(p);
    snprintf(p, sizeof p, "%s/b", cls);
    unlink(p);
    snprintf(p, sizeof p, "%s/root/dog", tu_tmp);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/root/dog/x.jpg", tu_tmp);
    write_text(p, "x");
    snprintf(p, sizeof p, "%s/dogs", cls);
    char target[300];
    snprintf(target, sizeof target, "%s/root/dog", tu_tmp);
    ck_assert_int_eq(symlink(target, p), 0);
    snprintf(p, sizeof p, "%s/root", tu_tmp);
    ck_qtk(qtk_folder_open(&f, p, NULL));
    ck_assert_uint_eq(f.n, 2);
    qtk_folder_free(&f);
}
END_TEST

// A JPEG of w x h (gray) in memory.
static unsigned char *make_jpeg(int w, int h, unsigned long *size) {
    tjhandle tj = tjInitCompress();
    uint8_t *px = malloc((size_t)w * h);
    for (size_t i = 0; i < (size_t)w * h; i++) px[i] = (uint8_t)(i * 13);
    unsigned char *jpg = NULL;
    ck_assert_int_eq(tjCompress2(tj, px, w, 0, h, TJPF_GRAY, &jpg, size, TJSAMP_GRAY, 90, 0), 0);
    free(px);
    tjDestroy(tj);
    return jpg;
}

// 5. JPEG bombs: an extreme aspect ratio is a bad image named in the error (not 1.6 GB of resize), and a
// header-only file claiming 16384 x 16384 is refused before any pixel buffer.
START_TEST(test_jpeg_bombs) {
    cap_memory((size_t)1 << 30);
    char p[256];
    snprintf(p, sizeof p, "%s/tall.jpg", tu_tmp);
    unsigned long size;
    unsigned char *jpg = make_jpeg(1, 8000, &size);
    write_bytes(p, jpg, size);
    tjFree(jpg);
    qtk_image im;
    ck_qtk(qtk_image_load(p, &im));
    static float chw[3 * 224 * 224];
    const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.5f, 0.5f, 0.5f};
    ck_assert_int_eq(qtk_preprocess_eval(&im, 224, 0.875f, mean, sd, chw), QTK_ERR_FORMAT);
    err_has("resizes to 256x2048000");
    qtk_image_free(&im);
    // through the folder pipeline: skipped (policy skip) with the file named, or the run fails (policy fail)
    char root[256];
    snprintf(root, sizeof root, "%s/imgs", tu_tmp);
    mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/imgs/c", tu_tmp);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/imgs/c/tall.jpg", tu_tmp);
    jpg = make_jpeg(1, 8000, &size);
    write_bytes(p, jpg, size);
    tjFree(jpg);
    qtk_image_folder f;
    ck_qtk(qtk_folder_open(&f, root, NULL));
    qtk_transform tr = {224, 0.875f, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, 0};
    uint32_t idx[1] = {0};
    float *x = NULL;
    int *y = NULL, hit;
    size_t got;
    qtk_bad_list bad;
    ck_assert_int_eq(qtk_folder_cached(&f, idx, 1, &tr, QTK_BAD_FAIL, NULL, &x, &y, &got, &hit, &bad), QTK_ERR_FORMAT);
    err_has(p);
    err_has("aspect ratio");
    ck_qtk(qtk_folder_cached(&f, idx, 1, &tr, QTK_BAD_SKIP, NULL, &x, &y, &got, &hit, &bad));
    ck_assert_uint_eq(got, 0);
    ck_assert_uint_eq(bad.n, 1);
    ck_assert_ptr_nonnull(strstr(bad.paths[0], "tall.jpg"));
    qtk_bad_list_free(&bad);
    free(x);
    free(y);
    qtk_folder_free(&f);
    // header-only: a 16x16 JPEG whose frame header says 16384 x 16384, cut after the scan header
    jpg = make_jpeg(16, 16, &size);
    size_t cut = 0;
    for (size_t i = 0; i + 9 < size; i++) {
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) { // SOF0: length(2) precision(1) height(2) width(2)
            jpg[i + 5] = 0x40, jpg[i + 6] = 0x00, jpg[i + 7] = 0x40, jpg[i + 8] = 0x00;
        }
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xDA) cut = i + 2 + ((size_t)jpg[i + 2] << 8 | jpg[i + 3]);
    }
    ck_assert_uint_gt(cut, 0);
    snprintf(p, sizeof p, "%s/header_only.jpg", tu_tmp);
    write_bytes(p, jpg, cut);
    tjFree(jpg);
    ck_assert_int_eq(qtk_image_load(p, &im), QTK_ERR_FORMAT);
    err_has("a 16384x16384 JPEG cannot fit in");
    err_has(p);
}
END_TEST

// 6. Mamba config sizes: products in 64 bits, bounds per key, the tensors checked before any allocation.
START_TEST(test_mamba_config_bounds) {
    qtk_mamba_config c;
    const struct { const char *json, *msg; } bad[] = {
        {"{\"model_type\": \"mamba\", \"hidden_size\": 1e9, \"expand\": 3, \"num_hidden_layers\": 2, \"vocab_size\": 10}",
         "\"hidden_size\" is 1000000000, more than the 65536"},
        {"{\"model_type\": \"mamba\", \"hidden_size\": 65536, \"expand\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 10}",
         "expand x hidden_size = 4194304, more than"},
        {"{\"model_type\": \"mamba2\", \"hidden_size\": 65536, \"expand\": 32, \"num_hidden_layers\": 2, \"vocab_size\": 10}",
         "expand x hidden_size = 2097152"},
        {"{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": 1e9, \"vocab_size\": 10}",
         "\"num_hidden_layers\" is 1000000000, more than the 1024"},
        {"{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 1e8}", "\"vocab_size\" is 100000000"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(qtk_mamba_config_parse(bad[i].json, "x/config.json", &c), QTK_ERR_FORMAT);
        ck_assert_msg(strstr(qtk_last_error(), bad[i].msg) && strstr(qtk_last_error(), "x/config.json"), "case %zu: %s",
                      i, qtk_last_error());
    }
    // the largest legal sizes over a checkpoint with one tiny tensor: a missing tensor, not 100+ GB asked for
    cap_memory((size_t)1 << 30);
    char p[256];
    snprintf(p, sizeof p, "%s/config.json", tu_tmp);
    write_text(p, "{\"model_type\": \"mamba\", \"hidden_size\": 65536, \"num_hidden_layers\": 1024, \"vocab_size\": 16777216}");
    float one = 1;
    int64_t s1[1] = {1};
    qtk_st_entry e = {"backbone.norm_f.weight", QTK_F32, 1, s1, &one};
    snprintf(p, sizeof p, "%s/model.safetensors", tu_tmp);
    ck_qtk(qtk_st_write(p, &e, 1, NULL, 0));
    qtk_mamba m;
    ck_assert_int_eq(qtk_mamba_load(&m, tu_tmp), QTK_ERR_NOT_FOUND);
    err_has("missing tensor \"backbone.embeddings.weight|backbone.embedding.weight\"");
}
END_TEST

// An open file's tensors as writer entries (pointing into its mapping), to write them again, changed.
static qtk_st_entry *entries_of(const qtk_safetensors *st) {
    qtk_st_entry *e = calloc(st->n_tensors, sizeof *e);
    ck_assert_ptr_nonnull(e);
    for (size_t i = 0; i < st->n_tensors; i++) {
        const qtk_st_tensor *t = &st->tensors[i];
        e[i] = (qtk_st_entry){t->name, t->dtype, t->ndim, t->shape, t->data};
    }
    return e;
}

// 7. Shards: a tensor comes from the shard weight_map names; one in two shards is an error.
START_TEST(test_duplicate_shards) {
    qtk_mamba_config c = {.arch = QTK_MAMBA1, .d_model = 8, .n_layers = 1, .vocab = 16, .d_state = 4, .d_conv = 4,
                          .d_inner = 16, .dt_rank = 2, .conv_bias = 1, .tied = 1, .eps = 1e-5f};
    char src[256], dst[256], p[320], q[700];
    snprintf(src, sizeof src, "%s/src", tu_tmp);
    snprintf(dst, sizeof dst, "%s/dst", tu_tmp);
    mkdir(src, 0755);
    mkdir(dst, 0755);
    ck_qtk(qtk_mamba_write_random(src, &c, 5, "F32"));
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, p));
    // shard 1: every tensor; shard 2: a different norm_f.weight, which the map assigns to shard 2
    qtk_st_entry *e = entries_of(&st);
    int nf = -1;
    for (size_t i = 0; i < st.n_tensors; i++)
        if (!strcmp(st.tensors[i].name, "backbone.norm_f.weight")) nf = (int)i;
    ck_assert_int_ge(nf, 0);
    snprintf(p, sizeof p, "%s/a.safetensors", dst);
    ck_qtk(qtk_st_write(p, e, st.n_tensors, NULL, 0));
    float other[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    qtk_st_entry e2 = {e[nf].name, QTK_F32, 1, e[nf].shape, other};
    snprintf(p, sizeof p, "%s/b.safetensors", dst);
    ck_qtk(qtk_st_write(p, &e2, 1, NULL, 0));
    cJSON *idx = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(idx, "weight_map");
    for (size_t i = 0; i < st.n_tensors; i++)
        cJSON_AddStringToObject(map, st.tensors[i].name, (int)i == nf ? "b.safetensors" : "a.safetensors");
    char *js = cJSON_Print(idx);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dst);
    write_text(p, js);
    free(js);
    cJSON_Delete(idx);
    snprintf(p, sizeof p, "%s/config.json", src);
    snprintf(q, sizeof q, "cp %s %s/", p, dst);
    ck_assert_int_eq(system(q), 0);
    qtk_mamba m;
    ck_assert_int_eq(qtk_mamba_load(&m, dst), QTK_ERR_FORMAT);
    err_has("backbone.norm_f.weight");
    err_has("duplicate or overlapping shards");
    // without the duplicate it loads, norm_f from b.safetensors as the map says
    qtk_st_entry *e1 = calloc(st.n_tensors, sizeof *e1);
    size_t k = 0;
    for (size_t i = 0; i < st.n_tensors; i++)
        if ((int)i != nf) e1[k++] = e[i];
    snprintf(p, sizeof p, "%s/a.safetensors", dst);
    ck_qtk(qtk_st_write(p, e1, k, NULL, 0));
    ck_qtk(qtk_mamba_load(&m, dst));
    ck_assert(m.norm_f[0] == 9.0f);
    qtk_mamba_free(&m);
    free(e1);
    free(e);
    qtk_st_close(&st);
}
END_TEST

// 8. IDX: a plain file is checked against its size before allocating; gzip buffers grow with the data.
START_TEST(test_idx_header_bomb) {
    cap_memory((size_t)1 << 30);
    char p[256];
    snprintf(p, sizeof p, "%s/x-idx3-ubyte", tu_tmp);
    // rank 2: 120000 x 122500 = 14.7 GB promised by 12 bytes
    const uint8_t h[12] = {0, 0, 8, 2, 0, 1, 0xD4, 0xC0, 0, 1, 0xDE, 0x84};
    write_bytes(p, h, sizeof h);
    qtk_idx x;
    ck_assert_int_eq(qtk_idx_read(p, &x), QTK_ERR_FORMAT);
    err_has("0 data bytes, the header promises 14700000000");
    snprintf(p, sizeof p, "%s/x-idx3-ubyte.gz", tu_tmp);
    gzFile g = gzopen(p, "wb");
    gzwrite(g, h, sizeof h);
    gzwrite(g, "0123456789", 10);
    gzclose(g);
    ck_assert_int_eq(qtk_idx_read(p, &x), QTK_ERR_FORMAT);
    err_has("10 data bytes, the header promises 14700000000");
}
END_TEST

// 9. Silent acceptance: out-of-range zero points, fractional integers in YAML, --set overflow, FIFOs.
START_TEST(test_silent_acceptance) {
    char args[600], q[300], q2[300];
    valid_tensor_run();
    snprintf(q, sizeof q, "%s/q.safetensors", tu_tmp);
    snprintf(args, sizeof args, "calibrate %s/cfg.yaml --out %s", tu_tmp, q);
    ck_assert_msg(run(args) == 0, "%s", out);
    // the same export with one zero point at 1e9
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, q));
    qtk_st_entry *e = entries_of(&st);
    float *zp = NULL;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const qtk_st_tensor *t = &st.tensors[i];
        if (!zp && strstr(t->name, "attn.qkv.weight.zero_point")) {
            zp = malloc(t->nbytes);
            memcpy(zp, t->data, t->nbytes);
            zp[0] = 1e9f;
            e[i].data = zp;
        }
    }
    ck_assert_ptr_nonnull(zp);
    const char *meta[8][2];
    for (size_t i = 0; i < st.n_meta && i < 8; i++) meta[i][0] = st.meta_keys[i], meta[i][1] = st.meta_vals[i];
    snprintf(q2, sizeof q2, "%s/q2.safetensors", tu_tmp);
    ck_qtk(qtk_st_write(q2, e, st.n_tensors, (const char *const(*)[2])meta, st.n_meta < 8 ? st.n_meta : 8));
    free(zp);
    free(e);
    qtk_st_close(&st);
    snprintf(args, sizeof args, "eval %s/cfg.yaml --quant %s", tu_tmp, q2);
    ck_assert_int_eq(run(args), 1);
    has("zero_point[0] = 1e+09 is not an integer in the 4-bit code range 0..15");
    // w_bits: 4.5 and an integer past int
    char cfg[300], text[4096];
    snprintf(cfg, sizeof cfg, "%s/cfg.yaml", tu_tmp);
    FILE *f = fopen(cfg, "r");
    size_t n = fread(text, 1, sizeof text - 100, f);
    fclose(f);
    text[n] = '\0';
    strcat(text, "quantization:\n  w_bits: 4.5\n");
    write_text(cfg, text);
    snprintf(args, sizeof args, "run %s --dry-run", cfg);
    ck_assert_int_eq(run(args), 1);
    has("quantization.w_bits: \"4.5\" is not a whole number");
    text[n] = '\0';
    write_text(cfg, text);
    snprintf(args, sizeof args, "run %s --dry-run --set quantization.w_bits=99999999999", cfg);
    ck_assert_int_eq(run(args), 1);
    has("99999999999 is outside the integers");
    // a FIFO given as a config, a checkpoint or a token file: an error at once, not a blocked open()
    char fifo[256];
    snprintf(fifo, sizeof fifo, "%s/fifo", tu_tmp);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(q, sizeof q, "%s.json", fifo);
    write_text(q, "{\"dtype\": \"uint16\", \"count\": 0, \"vocab_size\": 256}");
    const char *cmds[] = {"info %s", "run %s", "perplexity --model models/tiny_mamba1 --tokens %s"};
    for (int i = 0; i < 3; i++) {
        char a[300];
        snprintf(a, sizeof a, cmds[i], fifo);
        ck_assert_msg(run(a) == 1, "qtk %s: %s", a, out);
        has("not a regular file (a FIFO)");
    }
}
END_TEST

// 10. A killed export's temporary is removed by the next run of that folder; exports follow the umask.
START_TEST(test_leftovers_and_modes) {
    char args[600], p[300], live[300];
    valid_tensor_run();
    snprintf(p, sizeof p, "%s/out", tu_tmp);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/out/quant.safetensors.tmp.Ab12Cd", tu_tmp);
    write_text(p, "stale");
    snprintf(live, sizeof live, "%s/out/quant.safetensors.tmp.%d.0", tu_tmp, (int)getpid()); // a live writer's
    write_text(live, "live");
    mode_t old = umask(022);
    snprintf(args, sizeof args, "run %s/cfg.yaml", tu_tmp);
    int rc = run(args);
    umask(old);
    ck_assert_msg(rc == 0, "%s", out);
    has("removed 1 stale temporary");
    ck_assert_int_ne(access(p, F_OK), 0);
    ck_assert_int_eq(access(live, F_OK), 0);
    struct stat sb;
    snprintf(p, sizeof p, "%s/out/quant.safetensors", tu_tmp);
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);
    // the library's writer too (checkpoints, caches)
    old = umask(027);
    snprintf(p, sizeof p, "%s/w.safetensors", tu_tmp);
    float v = 1;
    int64_t s1[1] = {1};
    qtk_st_entry e = {"v", QTK_F32, 1, s1, &v};
    ck_qtk(qtk_st_write(p, &e, 1, NULL, 0));
    umask(old);
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0640);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("defects");
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_empty_yaml);
    tcase_add_test(tc, test_labels);
    tcase_add_test(tc, test_token_sidecar);
    tcase_add_test(tc, test_folder_link_loop);
    tcase_add_test(tc, test_jpeg_bombs);
    tcase_add_test(tc, test_mamba_config_bounds);
    tcase_add_test(tc, test_duplicate_shards);
    tcase_add_test(tc, test_idx_header_bomb);
    tcase_add_test(tc, test_silent_acceptance);
    tcase_add_test(tc, test_leftovers_and_modes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
