// ViT / DeiT: FP32 logits vs timm (fixtures), loader errors.
#include <unistd.h>

#include "../vision/vit.h"
#include "vit_testutil.h"

#define VIT_FIXTURE "tests/fixtures/vision/vit_fp32.safetensors"

static void check_model(const char *name) {
    qtk_safetensors fx;
    ck_qtk(qtk_st_open(&fx, VIT_FIXTURE));
    cJSON *models = tu_meta_json(&fx, "models");
    const cJSON *meta = cJSON_GetObjectItem(models, name);
    ck_assert_ptr_nonnull(meta);
    char path[128];
    snprintf(path, sizeof path, "%s/%s.safetensors", tu_tmp, name);
    write_ckpt(meta, path);
    qtk_vit m;
    ck_qtk(qtk_vit_load(&m, path, cJSON_GetObjectItem(meta, "desc")->valuestring));
    ck_assert_int_eq(m.cfg.heads, tu_json_int(meta, "heads"));
    size_t nimg;
    float *x = make_images(meta, &nimg);
    int B = (int)cJSON_GetArrayItem(cJSON_GetObjectItem(meta, "images"), 0)->valuedouble;
    size_t nl;
    float *want = tu_load(&fx, name, "logits", &nl);
    ck_assert_uint_eq(nl, (size_t)B * m.cfg.n_classes);
    float *got = malloc(nl * sizeof *got);
    // plan for a larger batch than used, and run twice: planned buffers are reusable
    qtk_vit_plan plan;
    ck_qtk(qtk_vit_plan_init(&plan, &m, B + 1));
    for (int rep = 0; rep < 2; rep++) {
        ck_qtk(qtk_vit_forward(&m, &plan, x, B, got));
        double maxd = 0, maxv = 0;
        for (size_t i = 0; i < nl; i++) {
            maxd = fmax(maxd, fabs((double)got[i] - want[i]));
            maxv = fmax(maxv, fabs((double)want[i]));
        }
        ck_assert_msg(maxd <= 1e-4 * maxv, "%s: max |qtk - timm| = %g, max |timm| = %g (relative %g > 1e-4)", name, maxd,
                      maxv, maxd / maxv);
    }
    ck_assert_int_eq(qtk_vit_forward(&m, &plan, x, B + 2, got), QTK_ERR_ARG);
    qtk_vit_plan_free(&plan);
    free(got);
    free(x);
    qtk_aligned_free(want);
    qtk_vit_free(&m);
    cJSON_Delete(models);
    qtk_st_close(&fx);
}

START_TEST(test_deit_tiny_vs_timm) { check_model("deit_tiny"); }
END_TEST
START_TEST(test_custom28_vs_timm) { check_model("custom28"); }
END_TEST
START_TEST(test_distilled_vs_timm) { check_model("distilled32"); }
END_TEST

// Writes the custom28 checkpoint with one change and expects an error
// containing `msg`. mode: 0 drop, 1 wrong shape, 2 wrong dtype, 3 extra key.
static void broken(int mode, const char *key, const char *desc, qtk_status expect, const char *msg) {
    qtk_safetensors fx;
    ck_qtk(qtk_st_open(&fx, VIT_FIXTURE));
    cJSON *models = tu_meta_json(&fx, "models");
    ckpt c;
    make_ckpt(cJSON_GetObjectItem(models, "custom28"), &c);
    qtk_st_entry *e = malloc((c.n + 1) * sizeof *e);
    size_t n = 0;
    int64_t extra_shape[1] = {4};
    float extra[4] = {0};
    int32_t ints[64] = {0};
    for (size_t i = 0; i < c.n; i++) {
        if (key && strcmp(c.e[i].name, key) == 0) {
            if (mode == 0) continue;
            if (mode == 1) c.shapes[i][0] += 1; // data stays the same length: make a consistent file
            if (mode == 1) {
                int64_t nn = qtk_numel(c.e[i].ndim, c.shapes[i]);
                free((void *)c.e[i].data);
                c.e[i].data = calloc((size_t)nn, sizeof(float));
            }
            if (mode == 2) {
                c.e[i].dtype = QTK_I32;
                free((void *)c.e[i].data);
                c.e[i].data = ints; // 64 x 4 bytes, norm weights have 64 entries
            }
        }
        e[n++] = c.e[i];
    }
    if (mode == 3) e[n++] = (qtk_st_entry){key, QTK_F32, 1, extra_shape, extra};
    char path[128];
    snprintf(path, sizeof path, "%s/broken.safetensors", tu_tmp);
    ck_qtk(qtk_st_write(path, e, n, NULL, 0));
    if (mode == 2)
        for (size_t i = 0; i < c.n; i++)
            if (c.e[i].data == ints) c.e[i].data = malloc(1); // keep ckpt_free happy
    qtk_vit m;
    qtk_status st = qtk_vit_load(&m, path, desc);
    ck_assert_msg(st == expect, "mode %d key %s: status %s (%s)", mode, key ? key : "-", qtk_status_str(st), qtk_last_error());
    ck_assert_msg(strstr(qtk_last_error(), msg) != NULL, "message \"%s\" lacks \"%s\"", qtk_last_error(), msg);
    free(e);
    ckpt_free(&c);
    cJSON_Delete(models);
    qtk_st_close(&fx);
}

START_TEST(test_bad_checkpoints) {
    broken(0, "blocks.1.attn.proj.bias", "{\"heads\": 4}", QTK_ERR_NOT_FOUND,
           "missing tensor \"blocks.1.attn.proj.bias\" (expected shape [64])");
    broken(1, "blocks.2.mlp.fc2.weight", "{\"heads\": 4}", QTK_ERR_FORMAT,
           "\"blocks.2.mlp.fc2.weight\" has shape [65, 256], expected [64, 256]");
    broken(2, "blocks.0.norm1.weight", "{\"heads\": 4}", QTK_ERR_FORMAT,
           "\"blocks.0.norm1.weight\" has dtype I32, expected F32, F16 or BF16");
    broken(3, "blocks.0.ls1.gamma", "{\"heads\": 4}", QTK_ERR_UNSUPPORTED, "\"blocks.0.ls1.gamma\" is not part");
    broken(0, "patch_embed.proj.weight", NULL, QTK_ERR_NOT_FOUND, "missing tensor \"patch_embed.proj.weight\"");
    broken(0, NULL, "deit_tiny_patch16_224", QTK_ERR_FORMAT, "does not match preset deit_tiny_patch16_224");
    broken(0, NULL, "deit_huge", QTK_ERR_NOT_FOUND, "unknown ViT preset \"deit_huge\"");
    broken(0, NULL, "{\"heads\": 5}", QTK_ERR_ARG, "5 heads do not divide dim 64");
    broken(0, NULL, "{\"heads\": 4, \"colour\": 1}", QTK_ERR_ARG, "unknown key \"colour\"");
    broken(0, NULL, "{\"heads\": \"four\"}", QTK_ERR_ARG, "\"heads\" must be a number");
}
END_TEST

START_TEST(test_presets) {
    qtk_vit_config c;
    ck_qtk(qtk_vit_preset("deit_small_patch16_224", &c));
    ck_assert(c.dim == 384 && c.heads == 6 && c.depth == 12 && c.crop_pct == 0.875f && c.input_quant == 1);
    ck_assert(c.mean[0] == 0.485f && c.std[2] == 0.225f);
    ck_qtk(qtk_vit_preset("vit_base_patch16_224", &c));
    ck_assert(c.dim == 768 && c.heads == 12 && c.crop_pct == 0.9f && c.input_quant == 0 && c.mean[1] == 0.5f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("vit");
    TCase *tc = tcase_create("vision");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_deit_tiny_vs_timm);
    tcase_add_test(tc, test_custom28_vs_timm);
    tcase_add_test(tc, test_distilled_vs_timm);
    tcase_add_test(tc, test_bad_checkpoints);
    tcase_add_test(tc, test_presets);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
