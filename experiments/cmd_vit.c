// qtk quant-report: load a timm ViT/DeiT checkpoint, calibrate the quantized
// baseline (spec vit-baseline.md) on images, print every quantizer and
// optionally export them.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/qtk.h"
#include "../datasets/folder.h"
#include "../datasets/sampler.h"
#include "../vision/vit_quant.h"
#include <sys/stat.h>
#include "cli.h"

static const char *usage =
    "usage: qtk quant-report --model CKPT.safetensors --images FILE.safetensors [options]\n"
    "\n"
    "Calibrates the FQ-ViT / Evol-Q quantized baseline on the images (the reference's stage\n"
    "order: FP statistics on every batch, OMSE and PTF scored on the last) and prints each\n"
    "quantizer: bits, granularity, scale range, zero point range, and the MSE it gives on the\n"
    "calibration images in the quantized forward.\n"
    "\n"
    "  --model FILE          timm VisionTransformer / DeiT checkpoint (safetensors)\n"
    "  --desc D              preset (deit_tiny_patch16_224, ...) or JSON {\"heads\": 3, ...}\n"
    "  --images FILE[:NAME]  preprocessed images, a tensor (N, C, H, W), default name \"images\";\n"
    "                        or a folder root/<class>/<image>.jpg (torchvision ImageFolder), preprocessed\n"
    "                        with the model's eval transform (PIL-exact)\n"
    "  --class-index FILE    folder input: class order (one folder name per line, e.g. ImageNet synsets)\n"
    "  --val-list FILE       folder input is flat (ImageNet val): labels from this list (LOC_val_solution.csv)\n"
    "  --seed N              folder input: which images (seeded sample of --calib images; default 0)\n"
    "  --cache FILE          folder input: preprocessed-tensor cache, rebuilt when files or settings change\n"
    "  --on-bad-image P      folder input: skip (default: count and list them) or fail\n"
    "  --fast-decode         folder input: JPEG DCT-domain downscaling (faster, NOT PIL-exact; labelled)\n"
    "  --calib N             calibration images (default: min(1000, N))\n"
    "  --batch B             calibration batch (default 100; batches beyond N / B are dropped)\n"
    "  --w-bits B            weight bits, 2..8 (default 4)\n"
    "  --a-bits B            activation bits, 2..8 (default 8)\n"
    "  --no-bias-corr        no bias correction of the quantized weights\n"
    "  --float-layernorm     float LayerNorm in the quantized model (its output stays quantized)\n"
    "  --quant-input on|off  quantize the input image (default: DeiT on, ViT off)\n"
    "  --off PATTERN         switch off quantizers matching a glob, e.g. 'blocks.*.attn.softmax' (repeatable)\n"
    "  --export FILE         write every quantizer's scale and zero point (quant.safetensors)\n";

int qtk_cmd_quant_report(int argc, char **argv) {
    const char *model = NULL, *desc = NULL, *images = NULL, *export_path = NULL;
    const char *class_index = NULL, *val_list = NULL, *cache = NULL;
    unsigned long long seed = 0;
    qtk_bad_policy policy = QTK_BAD_SKIP;
    int fast_decode = 0;
    const char *off[64];
    int n_off = 0, calib = -1, batch = 100, rc = 0;
    qtk_vit_qconfig qc;
    qtk_vit_qconfig_default(&qc);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--no-bias-corr")) {
            qc.bias_corr = 0;
            continue;
        }
        if (!strcmp(a, "--float-layernorm")) {
            qc.int_layernorm = 0;
            continue;
        }
        if (!strcmp(a, "--fast-decode")) {
            fast_decode = 1;
            continue;
        }
        if (!v) return qtk_cli_usage_error("quant-report: %s needs a value", a);
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--desc")) desc = v;
        else if (!strcmp(a, "--images")) images = v;
        else if (!strcmp(a, "--export")) export_path = v;
        else if (!strcmp(a, "--class-index")) class_index = v;
        else if (!strcmp(a, "--val-list")) val_list = v;
        else if (!strcmp(a, "--cache")) cache = v;
        else if (!strcmp(a, "--seed")) {
            char *end;
            seed = strtoull(v, &end, 10);
            if (*end || *v == '-') return qtk_cli_usage_error("--seed needs a non-negative integer, got \"%s\"", v);
        } else if (!strcmp(a, "--on-bad-image")) {
            if (!strcmp(v, "skip")) policy = QTK_BAD_SKIP;
            else if (!strcmp(v, "fail")) policy = QTK_BAD_FAIL;
            else return qtk_cli_usage_error("--on-bad-image takes skip or fail, got \"%s\"", v);
        }
        else if (!strcmp(a, "--calib")) rc = qtk_cli_int_arg(a, v, 1, 1 << 30, &calib);
        else if (!strcmp(a, "--batch")) rc = qtk_cli_int_arg(a, v, 1, 1 << 20, &batch);
        else if (!strcmp(a, "--w-bits")) rc = qtk_cli_int_arg(a, v, 2, 8, &qc.w_bits);
        else if (!strcmp(a, "--a-bits")) rc = qtk_cli_int_arg(a, v, 2, 8, &qc.a_bits);
        else if (!strcmp(a, "--quant-input")) {
            if (strcmp(v, "on") && strcmp(v, "off")) return qtk_cli_usage_error("--quant-input takes on or off, got \"%s\"", v);
            qc.quant_input = !strcmp(v, "on");
        } else if (!strcmp(a, "--off")) {
            if (n_off == 64) return qtk_cli_usage_error("at most 64 --off patterns");
            off[n_off++] = v;
        } else return qtk_cli_usage_error("quant-report: unknown option \"%s\"", a);
        if (rc) return rc;
    }
    if (!model || !images) return qtk_cli_usage_error("quant-report needs --model and --images");

    // images: FILE or FILE:TENSOR
    char ipath[4096], tname[256] = "images";
    snprintf(ipath, sizeof ipath, "%s", images);
    char *colon = strrchr(ipath, ':');
    if (colon && !strstr(colon, "/")) {
        *colon = '\0';
        snprintf(tname, sizeof tname, "%s", colon + 1);
    }
    qtk_vit m = {0};
    qtk_vit_plan plan = {0};
    qtk_vit_quant qv = {0};
    qtk_safetensors st = {0};
    float *x = NULL;
    int status = 1;
    struct stat isb;
    int is_folder = stat(ipath, &isb) == 0 && S_ISDIR(isb.st_mode);
    if (qtk_vit_load(&m, model, desc) != QTK_OK || (!is_folder && qtk_st_open(&st, ipath) != QTK_OK)) {
        qtk_cli_error("%s", qtk_last_error());
        goto done;
    }
    const qtk_vit_config *c = &m.cfg;
    char sample_fp[16] = "", list_path[4200] = "";
    int n = 0;
    size_t numel = 0;
    if (is_folder) {
        // an image folder: seeded sample, the model's eval transform, optional cache
        qtk_image_folder f;
        qtk_status fs = val_list ? qtk_folder_open_list(&f, ipath, val_list, class_index)
                                 : qtk_folder_open(&f, ipath, class_index);
        if (fs != QTK_OK) {
            qtk_cli_error("%s", qtk_last_error());
            goto done;
        }
        if (c->in_chans != 3) {
            qtk_folder_free(&f);
            qtk_cli_error("%s: the model takes %d channels; JPEG folders give RGB", ipath, c->in_chans);
            goto done;
        }
        uint32_t want = calib < 0 ? (f.n < 1000 ? (uint32_t)f.n : 1000) : (uint32_t)calib;
        if (want > f.n) {
            qtk_folder_free(&f);
            qtk_cli_error("--calib %u but %s holds %zu images", want, ipath, f.n);
            goto done;
        }
        uint32_t *idx = malloc(want * sizeof *idx);
        int *labels = NULL, hit = 0;
        size_t got = 0;
        qtk_bad_list bad = {0};
        qtk_transform tr = {c->img_size, c->crop_pct, {c->mean[0], c->mean[1], c->mean[2]}, {c->std[0], c->std[1], c->std[2]},
                            fast_decode};
        fs = idx ? qtk_sample_indices((uint32_t)f.n, want, seed, idx) : qtk_fail(QTK_ERR_NOMEM, "out of memory");
        if (fs == QTK_OK) {
            qtk_indices_fingerprint(idx, want, sample_fp);
            fs = qtk_folder_cached(&f, idx, want, &tr, policy, cache, &x, &labels, &got, &hit, &bad);
        }
        if (fs == QTK_OK && export_path) {
            // the calibration list, in order, beside the export (skipped files marked)
            snprintf(list_path, sizeof list_path, "%s.calibration.txt", export_path);
            FILE *lf = fopen(list_path, "w");
            if (!lf) fs = qtk_fail(QTK_ERR_IO, "cannot write %s", list_path);
            for (uint32_t i = 0; lf && i < want; i++) {
                int skipped = 0;
                for (size_t b = 0; b < bad.n && !skipped; b++) skipped = !strcmp(bad.paths[b], f.paths[idx[i]]);
                fprintf(lf, "%s%s\n", f.paths[idx[i]], skipped ? "\t(skipped: unreadable)" : "");
            }
            if (lf && fclose(lf) != 0) fs = qtk_fail(QTK_ERR_IO, "cannot write %s", list_path);
        }
        if (fs == QTK_OK) {
            printf("%s: %d classes, %zu images; calibration sample of %u (seed %llu, %s)%s%s\n", ipath, f.n_classes, f.n,
                   want, seed, sample_fp, hit ? ", from the cache" : "",
                   fast_decode ? "; FAST DECODE (DCT downscaling, not PIL-exact)" : "");
            if (f.n_other) printf("  %zu files with other image extensions were not used (JPEG only)\n", f.n_other);
            if (f.n_empty) printf("  %d class folders hold no JPEG\n", f.n_empty);
            if (bad.n) {
                printf("  %zu unreadable images skipped (on_bad_image: skip):\n", bad.n);
                for (size_t i = 0; i < bad.n; i++) printf("    %s: %s\n", bad.paths[i], bad.reasons[i]);
            }
        }
        free(idx);
        free(labels);
        qtk_bad_list_free(&bad);
        qtk_folder_free(&f);
        if (fs != QTK_OK) {
            qtk_cli_error("%s", qtk_last_error());
            goto done;
        }
        n = (int)got;
        calib = n;
    } else {
    const qtk_st_tensor *t = qtk_st_find(&st, tname);
    if (!t || t->ndim != 4 || t->shape[1] != c->in_chans || t->shape[2] != c->img_size || t->shape[3] != c->img_size) {
        char sh[128];
        qtk_cli_error("%s: tensor \"%s\" %s%s; the model needs (N, %d, %d, %d)", ipath, tname, t ? "has shape " : "is missing",
                      t ? qtk_shape_str(t->ndim, t->shape, sh, sizeof sh) : "", c->in_chans, c->img_size, c->img_size);
        goto done;
    }
    n = (int)t->shape[0];
    if (calib < 0) calib = n < 1000 ? n : 1000;
    if (calib > n) {
        qtk_cli_error("--calib %d but %s holds %d images", calib, ipath, n);
        goto done;
    }
    if (qtk_st_load_f32(&st, tname, &x, &numel) != QTK_OK) {
        qtk_cli_error("%s", qtk_last_error());
        goto done;
    }
    }
    if (calib < 1) {
        qtk_cli_error("no calibration images left");
        goto done;
    }
    if (batch > calib) batch = calib;
    if (qtk_vit_plan_init(&plan, &m, batch) != QTK_OK || qtk_vit_quant_init(&qv, &m, &qc) != QTK_OK) {
        qtk_cli_error("%s", qtk_last_error());
        goto done;
    }
    for (int i = 0; i < n_off; i++)
        if (qtk_qreg_set_enabled(&qv.reg, off[i], 0) == 0) {
            qtk_cli_error("--off \"%s\" matches no quantizer (names look like blocks.3.attn.softmax)", off[i]);
            goto done;
        }
    printf("%s (%s): dim %d, depth %d, heads %d, %d tokens; W%dA%d, bias correction %s, %s LayerNorm\n", model,
           c->name, c->dim, c->depth, c->heads, m.n_tokens, qc.w_bits, qc.a_bits, qc.bias_corr ? "on" : "off",
           qc.int_layernorm ? "integer" : "float");
    printf("calibration: %d images in %d batches of %d\n\n", calib / batch * batch, calib / batch, batch);
    if (qtk_vit_calibrate(&qv, &plan, x, calib, batch) != QTK_OK ||
        qtk_vit_quant_report(&qv, &plan, x, calib, batch, stdout) != QTK_OK) {
        qtk_cli_error("%s", qtk_last_error());
        goto done;
    }
    if (export_path) {
        char nimg[32];
        snprintf(nimg, sizeof nimg, "%d", calib / batch * batch);
        char seed_s[32];
        snprintf(seed_s, sizeof seed_s, "%llu", seed);
        const char *extra[][2] = {{"checkpoint", model}, {"calibration_images", ipath}, {"calibration_count", nimg},
                                  {"calibration_sample", sample_fp[0] ? sample_fp : "all"}, {"seed", seed_s}};
        if (qtk_vit_quant_export(&qv, export_path, extra, 5) != QTK_OK) {
            qtk_cli_error("%s", qtk_last_error());
            goto done;
        }
        printf("\nwrote %s%s%s\n", export_path, list_path[0] ? " and " : "", list_path);
    }
    status = 0;
done:
    qtk_aligned_free(x);
    qtk_vit_quant_free(&qv);
    qtk_vit_plan_free(&plan);
    qtk_vit_free(&m);
    if (st.map) qtk_st_close(&st);
    return status;
}
