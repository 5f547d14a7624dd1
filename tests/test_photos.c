// Real photos (Debian's opencv-doc examples, fetched by scripts/fetch_photos.sh)
// through qtk's decode + resize + crop against Debian's Pillow run at test time.
// Without the photos or python3-pil the suite says "skipped:" and checks nothing.
#include <dirent.h>
#include <strings.h>
#include <unistd.h>

#include "../datasets/image.h"
#include "testutil.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

START_TEST(test_photos_vs_pil) {
    const char *dir = getenv("QTK_PHOTOS") ? getenv("QTK_PHOTOS") : "build/cache/opencv-doc";
    DIR *d = opendir(dir);
    if (!d || system("/usr/bin/python3 -c 'import PIL, numpy' 2>/dev/null") != 0) {
        if (d) closedir(d);
        TU_SKIP("real-photo comparison: no photos in %s or no python3-pil (run scripts/fetch_photos.sh)", dir);
    }
    char *files[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcasecmp(e->d_name + l - 4, ".jpg")) {
            files[n] = malloc(strlen(dir) + l + 2);
            sprintf(files[n], "%s/%s", dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    qsort(files, (size_t)n, sizeof *files, cmp_str);
    ck_assert_int_gt(n, 0);
    const float pcts[2] = {0.875f, 0.9f};
    for (int pi = 0; pi < 2; pi++) {
        char out[128], *cmd = malloc(65536);
        snprintf(out, sizeof out, "%s/pil.safetensors", tu_tmp);
        int k = snprintf(cmd, 65536, "/usr/bin/python3 tools/pil_crops.py %s 224 %g", out, (double)pcts[pi]);
        for (int i = 0; i < n; i++) k += snprintf(cmd + k, 65536 - (size_t)k, " '%s'", files[i]);
        ck_assert_int_eq(system(cmd), 0);
        free(cmd);
        qtk_safetensors st;
        ck_qtk(qtk_st_open(&st, out));
        const qtk_st_tensor *t = qtk_st_find(&st, "crops");
        cJSON *bad = tu_meta_json(&st, "unreadable");
        size_t exact = 0, within1 = 0, total = 0;
        int maxd = 0, compared = 0;
        uint8_t *crop = malloc(224 * 224 * 3);
        for (int i = 0; i < n; i++) {
            int pil_bad = 0;
            cJSON *b;
            cJSON_ArrayForEach(b, bad) pil_bad |= cJSON_GetArrayItem(b, 0)->valueint == i;
            qtk_image im, r;
            qtk_status s = qtk_image_load(files[i], &im);
            if (pil_bad) { // PIL refused it: qtk must refuse it too, with a message
                ck_assert_msg(s != QTK_OK, "%s: PIL cannot read it but qtk decoded it", files[i]);
                continue;
            }
            ck_assert_msg(s == QTK_OK, "%s: %s", files[i], qtk_last_error());
            int rw, rh;
            qtk_resize_dims(im.w, im.h, (int)(224 / pcts[pi]), &rw, &rh);
            ck_qtk(qtk_resize_bicubic_pil(&im, rw, rh, &r));
            ck_qtk(qtk_center_crop(&r, 224, crop));
            const uint8_t *ref = (const uint8_t *)t->data + (size_t)i * 224 * 224 * 3;
            for (size_t j = 0; j < 224 * 224 * 3; j++) {
                int dd = abs((int)crop[j] - (int)ref[j]);
                exact += dd == 0;
                within1 += dd <= 1;
                maxd = dd > maxd ? dd : maxd;
            }
            total += 224 * 224 * 3;
            compared++;
            qtk_image_free(&im);
            qtk_image_free(&r);
        }
        printf("opencv-doc photos, crop_pct %g: %d images, %zu of %zu bytes equal to PIL, %zu within 1, max difference %d\n",
               (double)pcts[pi], compared, exact, total, within1, maxd);
        ck_assert_msg(within1 * 100 >= total * 99 && maxd <= 2, "outside the 1/255 (99%%) and 2/255 bounds");
        free(crop);
        cJSON_Delete(bad);
        qtk_st_close(&st);
    }
    for (int i = 0; i < n; i++) free(files[i]);
}
END_TEST

int main(void) {
    Suite *s = suite_create("photos");
    TCase *tc = tcase_create("datasets");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_photos_vs_pil);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
