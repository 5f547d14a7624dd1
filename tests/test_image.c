// JPEG decoding and PIL-exact eval preprocessing against Debian's Pillow
// (fixtures from tools/make_image_fixtures.py); bad files.
#include "../datasets/image.h"
#include "testutil.h"

#define DS_FIXTURES "tests/fixtures/datasets"

// Compares with PIL: counts exact bytes, bytes within 1 and the max difference.
static void compare(const char *what, const uint8_t *a, const uint8_t *b, size_t n, size_t *exact, int *maxd) {
    *exact = 0;
    *maxd = 0;
    size_t within1 = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        *exact += d == 0;
        within1 += d <= 1;
        *maxd = d > *maxd ? d : *maxd;
    }
    // the bound: within 1/255 on >= 99% of values, within 2/255 everywhere
    ck_assert_msg(within1 * 100 >= n * 99 && *maxd <= 2, "%s: %zu of %zu within 1, max difference %d", what, within1, n,
                  *maxd);
}

START_TEST(test_against_pil) {
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, DS_FIXTURES "/pil_reference.safetensors"));
    cJSON *cases = tu_meta_json(&st, "cases"), *c;
    int n_cases = 0;
    size_t total = 0, total_exact = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *file = cJSON_GetObjectItem(c, "file")->valuestring, *key = cJSON_GetObjectItem(c, "key")->valuestring;
        char path[256], tn[128];
        snprintf(path, sizeof path, "%s/%s", DS_FIXTURES, file);
        qtk_image im;
        ck_qtk(qtk_image_load(path, &im));
        const cJSON *size = cJSON_GetObjectItem(c, "size");
        ck_assert_int_eq(im.w, cJSON_GetArrayItem(size, 0)->valueint);
        ck_assert_int_eq(im.h, cJSON_GetArrayItem(size, 1)->valueint);
        size_t ex;
        int md;
        snprintf(tn, sizeof tn, "%s.decoded", key);
        const qtk_st_tensor *t = qtk_st_find(&st, tn);
        if (t) {
            compare(tn, im.rgb, t->data, t->nbytes, &ex, &md);
            ck_assert_msg(ex == t->nbytes, "%s: decoding differs from PIL on %zu of %zu bytes (max %d)", file,
                          t->nbytes - ex, t->nbytes, md);
        }
        const float crops[2] = {0.875f, 0.9f};
        for (int k = 0; k < 2; k++) {
            snprintf(tn, sizeof tn, "%s.crop_%g", key, (double)crops[k]);
            t = qtk_st_find(&st, tn);
            if (!t) continue;
            int size_ = (int)floor(224.0 / crops[k]), rw, rh;
            qtk_resize_dims(im.w, im.h, size_, &rw, &rh);
            qtk_image r;
            ck_qtk(qtk_resize_bicubic_pil(&im, rw, rh, &r));
            uint8_t *crop = malloc(224 * 224 * 3);
            ck_qtk(qtk_center_crop(&r, 224, crop));
            compare(tn, crop, t->data, t->nbytes, &ex, &md);
            printf("%-28s resize %dx%d -> %dx%d, crop 224: %zu of %zu bytes equal to PIL (max difference %d)\n", tn, im.w,
                   im.h, rw, rh, ex, t->nbytes, md);
            total += t->nbytes;
            total_exact += ex;
            free(crop);
            qtk_image_free(&r);
        }
        qtk_image_free(&im);
        n_cases++;
    }
    ck_assert_int_eq(n_cases, 6);
    // the implementation reproduces Pillow's fixed-point arithmetic: expect every byte
    ck_assert_msg(total_exact == total, "%zu of %zu bytes differ from PIL", total - total_exact, total);
    cJSON_Delete(cases);
    qtk_st_close(&st);
}
END_TEST

START_TEST(test_geometry) {
    int w, h;
    qtk_resize_dims(500, 375, 248, &w, &h); // spec example: 500x375 -> 330x248
    ck_assert(w == 330 && h == 248);
    qtk_resize_dims(333, 500, 256, &w, &h);
    ck_assert(w == 256 && h == 384);
    // CenterCrop offsets round half to even: 105 -> 52, 107 -> 54
    uint8_t px[329 * 224 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)((i / 3) % 329);
    qtk_image im = {329, 224, px};
    uint8_t out[224 * 224 * 3];
    ck_qtk(qtk_center_crop(&im, 224, out));
    ck_assert_int_eq(out[0], 52);
    im.w = 331;
    for (size_t i = 0; i < 331 * 224 * 3 && i < sizeof px; i++) px[i] = (uint8_t)((i / 3) % 331);
    ck_assert_int_eq(qtk_center_crop(&im, 330, out), QTK_ERR_ARG);
    // normalization: (x / 255 - mean) / std, channels first
    uint8_t hwc[2 * 2 * 3] = {0, 128, 255, 0, 128, 255, 0, 128, 255, 0, 128, 255};
    float chw[12], mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.5f, 0.5f, 0.5f};
    qtk_normalize_chw(hwc, 2, mean, sd, chw);
    ck_assert(chw[0] == -1.0f && chw[8] == 1.0f && fabsf(chw[4] - (128.0f / 255.0f - 0.5f) / 0.5f) < 1e-7f);
}
END_TEST

START_TEST(test_bad_files) {
    char path[128];
    snprintf(path, sizeof path, "%s/bad.jpg", tu_tmp);
    qtk_image im;
    // not a JPEG at all
    FILE *f = fopen(path, "wb");
    fputs("this is not an image", f);
    fclose(f);
    ck_assert_int_eq(qtk_image_load(path, &im), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), path));
    // empty file
    f = fopen(path, "wb");
    fclose(f);
    ck_assert_int_eq(qtk_image_load(path, &im), QTK_ERR_FORMAT);
    // truncated at several points, and garbage in the middle
    FILE *src = fopen(DS_FIXTURES "/rgb_500x375.jpg", "rb");
    ck_assert_ptr_nonnull(src);
    static uint8_t buf[200000];
    size_t n = fread(buf, 1, sizeof buf, src);
    fclose(src);
    const size_t cuts[] = {2, 20, 300, 5000, n / 2, n - 10};
    for (int i = 0; i < 6; i++) {
        f = fopen(path, "wb");
        fwrite(buf, 1, cuts[i], f);
        fclose(f);
        qtk_status st = qtk_image_load(path, &im);
        ck_assert_msg(st == QTK_ERR_FORMAT, "cut at %zu: %s", cuts[i], qtk_status_str(st));
        ck_assert_ptr_nonnull(strstr(qtk_last_error(), path));
    }
    for (size_t i = 2000; i < 2400; i++) buf[i] = (uint8_t)(i * 7);
    f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    qtk_status st = qtk_image_load(path, &im); // libjpeg may recover from corrupt entropy data, like PIL
    if (st == QTK_OK) qtk_image_free(&im);
    ck_assert_int_eq(qtk_image_load("/nonexistent/x.jpg", &im), QTK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "/nonexistent/x.jpg"));
}
END_TEST

// The vectorized resampler == the scalar reference (Pillow's loops), bit for bit,
// over random images and sizes, up and down, one axis or both.
START_TEST(test_fast_equals_reference) {
    qtk_rng r;
    qtk_rng_seed(&r, 12, 0);
    for (int t = 0; t < 60; t++) {
        int w = 1 + (int)qtk_rng_below(&r, 400), h = 1 + (int)qtk_rng_below(&r, 300);
        int ow = t % 5 == 0 ? w : 1 + (int)qtk_rng_below(&r, 300), oh = t % 7 == 0 ? h : 1 + (int)qtk_rng_below(&r, 300);
        qtk_image in = {w, h, malloc((size_t)w * h * 3)}, a, b;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) in.rgb[i] = (uint8_t)qtk_rng_below(&r, 256);
        ck_qtk(qtk_resize_bicubic_pil(&in, ow, oh, &a));
        ck_qtk(qtk_resize_bicubic_pil_ref(&in, ow, oh, &b));
        ck_assert_msg(memcmp(a.rgb, b.rgb, (size_t)ow * oh * 3) == 0, "%dx%d -> %dx%d differs", w, h, ow, oh);
        qtk_image_free(&a);
        qtk_image_free(&b);
        free(in.rgb);
    }
}
END_TEST

// Fast mode: decode at a DCT-domain scale that still covers the resize target;
// close to the exact pipeline, but not claimed equal.
START_TEST(test_fast_decode) {
    qtk_image full, small;
    ck_qtk(qtk_image_load(DS_FIXTURES "/rgb_500x375.jpg", &full));
    ck_qtk(qtk_image_load_scaled(DS_FIXTURES "/rgb_500x375.jpg", 100, &small));
    ck_assert_int_ge(small.w < small.h ? small.w : small.h, 100);
    ck_assert_int_lt(small.w, full.w);
    ck_assert(small.w == 188 && small.h == 141); // 3/8 is the smallest factor with a short side >= 100
    qtk_image_free(&small);
    ck_qtk(qtk_image_load_scaled(DS_FIXTURES "/rgb_500x375.jpg", 1000, &small)); // never upscales
    ck_assert(small.w == 500 && small.h == 375);
    qtk_image_free(&small);
    // fast vs exact eval crops at 224 / 0.875 (resize 256: no DCT scale reaches it, so equal) and at 64
    uint8_t a[64 * 64 * 3], b[64 * 64 * 3];
    ck_qtk(qtk_image_load_scaled(DS_FIXTURES "/rgb_500x375.jpg", 73, &small)); // floor(64 / 0.875) = 73
    ck_qtk(qtk_preprocess_u8(&full, 64, 0.875f, a));
    ck_qtk(qtk_preprocess_u8(&small, 64, 0.875f, b));
    double mad = 0;
    for (size_t i = 0; i < sizeof a; i++) mad += abs((int)a[i] - (int)b[i]);
    mad /= (double)sizeof a;
    printf("fast decode at 64x64: mean |fast - exact| = %.2f / 255\n", mad);
    ck_assert_msg(mad < 6.0, "fast decode drifts %.2f / 255 on average", mad);
    qtk_image_free(&small);
    qtk_image_free(&full);
}
END_TEST

int main(void) {
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("datasets");
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_against_pil);
    tcase_add_test(tc, test_geometry);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_fast_equals_reference);
    tcase_add_test(tc, test_fast_decode);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
