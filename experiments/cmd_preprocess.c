// qtk preprocess: JPEG files -> one safetensors tensor, with the timm/torchvision
// eval transform (Pillow-exact BICUBIC resize, center crop, normalize).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/qtk.h"
#include "../datasets/image.h"
#include "cli.h"

static const char *usage =
    "usage: qtk preprocess --out FILE.safetensors [options] IMAGE.jpg...\n"
    "\n"
    "Decodes each JPEG and applies the eval transform of timm / torchvision: resize the shorter\n"
    "side to floor(size / crop_pct) with PIL's BICUBIC filter, center crop, scale to [0, 1],\n"
    "normalize. Writes tensor \"images\" (N, 3, size, size) F32, or with --uint8 the crops\n"
    "(N, size, size, 3) U8 before scaling; the file list goes into __metadata__.\n"
    "\n"
    "  --size N        crop size (default 224)\n"
    "  --crop-pct F    default 0.875 (DeiT); ViT uses 0.9\n"
    "  --mean a,b,c    default ImageNet 0.485,0.456,0.406\n"
    "  --std a,b,c     default ImageNet 0.229,0.224,0.225\n"
    "  --uint8         store the uint8 crops instead of normalized floats\n";

static int parse3(const char *opt, const char *v, float out[3]) {
    if (sscanf(v, "%f,%f,%f", &out[0], &out[1], &out[2]) != 3)
        return qtk_cli_usage_error("%s needs three comma-separated numbers, got \"%s\"", opt, v);
    return 0;
}

int qtk_cmd_preprocess(int argc, char **argv) {
    const char *out_path = NULL;
    int size = 224, as_u8 = 0, first_file = -1;
    float crop_pct = 0.875f, mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (a[0] != '-') {
            first_file = i;
            break;
        }
        if (!strcmp(a, "--uint8")) {
            as_u8 = 1;
            continue;
        }
        if (!v) return qtk_cli_usage_error("preprocess: %s needs a value", a);
        i++;
        if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--size")) {
            if (qtk_cli_int_arg("--size", v, 1, 4096, &size)) return 2;
        } else if (!strcmp(a, "--crop-pct")) {
            char *end;
            crop_pct = strtof(v, &end);
            if (*end || end == v || !(crop_pct > 0.0f && crop_pct <= 1.0f)) return qtk_cli_usage_error("--crop-pct must be in (0, 1], got \"%s\"", v);
        } else if (!strcmp(a, "--mean")) {
            if (parse3(a, v, mean)) return 2;
        } else if (!strcmp(a, "--std")) {
            if (parse3(a, v, std)) return 2;
        } else return qtk_cli_usage_error("preprocess: unknown option \"%s\"", a);
    }
    if (!out_path || first_file < 0) return qtk_cli_usage_error("preprocess needs --out and at least one image");
    int n = argc - first_file;
    size_t per = (size_t)3 * size * size;
    void *data = malloc((size_t)n * per * (as_u8 ? 1 : sizeof(float)));
    if (!data) return qtk_cli_error("out of memory for %d images", n);
    size_t list_len = 0;
    for (int i = 0; i < n; i++) list_len += strlen(argv[first_file + i]) + 1;
    char *list = malloc(list_len + 1);
    list[0] = '\0';
    int failed = 0;
    for (int i = 0; i < n && !failed; i++) {
        const char *path = argv[first_file + i];
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
    return failed ? 1 : 0;
}
