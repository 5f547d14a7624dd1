// qtk preprocess: JPEG files -> one safetensors tensor, with the timm/torchvision
// eval transform (Pillow-exact BICUBIC resize, center crop, normalize).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/qtk.h"
#include "../datasets/image.h"
#include "cli.h"
#include "opts.h"

static int parse3(const char *opt, const char *v, float out[3]) {
    if (sscanf(v, "%f,%f,%f", &out[0], &out[1], &out[2]) != 3)
        return qtk_cli_usage_error("%s needs three comma-separated numbers, got \"%s\"", opt, v);
    return 0;
}

int qtk_cmd_preprocess(int argc, char **argv) {
    const char *out_path = NULL, *mean_s = NULL, *std_s = NULL;
    int size = 224, as_u8 = 0, n;
    float crop_pct = 0.875f, mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    const qtk_opt opts[] = {
        {"out", QTK_OPT_STR, &out_path, "FILE", 0, 0, "the tensor file to write"},
        {"size", QTK_OPT_INT, &size, "N", 1, 4096, "crop size (224)"},
        {"crop-pct", QTK_OPT_FLOAT, &crop_pct, "F", 1e-6, 1, "0.875 (DeiT); ViT uses 0.9"},
        {"mean", QTK_OPT_STR, &mean_s, "a,b,c", 0, 0, "default ImageNet 0.485,0.456,0.406"},
        {"std", QTK_OPT_STR, &std_s, "a,b,c", 0, 0, "default ImageNet 0.229,0.224,0.225"},
        {"uint8", QTK_OPT_FLAG, &as_u8, NULL, 0, 0, "store the uint8 crops instead of normalized floats"},
    };
    const qtk_cmd_spec spec = {
        "preprocess", "--out FILE.safetensors [options] IMAGE.jpg...",
        "Decodes each JPEG and applies the eval transform of timm / torchvision: resize the shorter side to\n"
        "floor(size / crop_pct) with PIL's BICUBIC filter, center crop, scale to [0, 1], normalize. Writes\n"
        "tensor \"images\" (N, 3, size, size) F32, or with --uint8 the crops (N, size, size, 3) U8 before\n"
        "scaling; the file list goes into __metadata__.",
        opts, 6, 1, argc};
    char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) return qtk_cli_error("out of memory");
    int prc = qtk_opts_parse(&spec, argc, argv, files, &n);
    if (!prc && !out_path) prc = qtk_cli_usage_error("preprocess needs --out and at least one image");
    if (!prc && mean_s) prc = parse3("--mean", mean_s, mean);
    if (!prc && std_s) prc = parse3("--std", std_s, std);
    if (prc) {
        free(files);
        return prc < 0 ? 0 : prc;
    }
    size_t per = (size_t)3 * size * size;
    void *data = malloc((size_t)n * per * (as_u8 ? 1 : sizeof(float)));
    size_t list_len = 0;
    for (int i = 0; i < n; i++) list_len += strlen(files[i]) + 1;
    char *list = malloc(list_len + 1);
    if (!data || !list) {
        free(data), free(list), free(files);
        return qtk_cli_error("out of memory for %d images", n);
    }
    list[0] = '\0';
    int failed = 0;
    for (int i = 0; i < n && !failed; i++) {
        const char *path = files[i];
        strcat(list, path);
        if (i + 1 < n) strcat(list, "\n");
        qtk_image im;
        qtk_status st = qtk_image_load(path, &im);
        if (st == QTK_OK && as_u8) {
            int s = (int)(size / crop_pct), rw, rh; // timm: floor(size / crop_pct)
            qtk_image r;
            qtk_resize_dims(im.w, im.h, s, &rw, &rh);
            st = qtk_resize_bicubic_pil(&im, rw, rh, &r);
            if (st == QTK_OK) st = qtk_center_crop(&r, size, (uint8_t *)data + (size_t)i * per);
            qtk_image_free(&r);
        } else if (st == QTK_OK) {
            st = qtk_preprocess_eval(&im, size, crop_pct, mean, std, (float *)data + (size_t)i * per);
        }
        qtk_image_free(&im);
        if (st != QTK_OK) failed = qtk_cli_error("%s", qtk_last_error());
    }
    if (!failed) {
        int64_t shape[4] = {n, as_u8 ? size : 3, size, as_u8 ? 3 : size};
        char params[160];
        snprintf(params, sizeof params, "{\"size\": %d, \"crop_pct\": %g, \"mean\": [%g, %g, %g], \"std\": [%g, %g, %g]}",
                 size, (double)crop_pct, (double)mean[0], (double)mean[1], (double)mean[2], (double)std[0],
                 (double)std[1], (double)std[2]);
        const char *meta[][2] = {{"qtk_version", QTK_VERSION}, {"transform", params}, {"files", list}};
        qtk_st_entry e = {"images", as_u8 ? QTK_U8 : QTK_F32, 4, shape, data};
        if (qtk_st_write(out_path, &e, 1, meta, 3) != QTK_OK) failed = qtk_cli_error("%s", qtk_last_error());
        else printf("wrote %s: %d images, %s\n", out_path, n, as_u8 ? "uint8 crops (N, H, W, 3)" : "normalized (N, 3, H, W)");
    }
    free(list);
    free(data);
    free(files);
    return failed ? 1 : 0;
}
