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
#include "opts.h"

int qtk_cmd_quant_report(int argc, char **argv) {
    const char *model = NULL, *desc = NULL, *images = NULL, *export_path = NULL, *bad_s = NULL;
    const char *class_index = NULL, *val_list = NULL, *cache = NULL, *qin = NULL;
    unsigned long long seed = 0;
    qtk_bad_policy policy = QTK_BAD_SKIP;
    int fast_decode = 0, no_bc = 0, float_ln = 0, n_pos;
    qtk_opt_sets offs = {0};
    const char *const *off = (const char *const *)offs.v;
    int calib = -1, batch = 100;
    qtk_vit_qconfig qc;
    qtk_vit_qconfig_default(&qc);
    const qtk_opt opts[] = {
        {"model", QTK_OPT_STR, &model, "FILE", 0, 0, "timm VisionTransformer / DeiT checkpoint (safetensors)"},
        {"desc", QTK_OPT_STR, &desc, "D", 0, 0, "preset (deit_tiny_patch16_224, ...) or JSON {\"heads\": 3, ...}"},
        {"images", QTK_OPT_STR, &images, "FILE[:NAME]", 0, 0,
         "a tensor (N, C, H, W) (default name \"images\"), or a folder root/<class>/<image>.jpg"},
        {"class-index", QTK_OPT_STR, &class_index, "FILE", 0, 0, "folder: class order (one folder name per line)"},
        {"val-list", QTK_OPT_STR, &val_list, "FILE", 0, 0, "flat folder (ImageNet val): labels from this list"},
        {"seed", QTK_OPT_U64, &seed, "N", 0, 0, "folder: which images (a seeded sample of --calib; 0)"},
        {"cache", QTK_OPT_STR, &cache, "FILE", 0, 0, "folder: preprocessed-tensor cache"},
        {"on-bad-image", QTK_OPT_STR, &bad_s, "skip|fail", 0, 0, "folder: skip (count and list them) or fail"},
        {"fast-decode", QTK_OPT_FLAG, &fast_decode, NULL, 0, 0, "folder: JPEG DCT-domain downscaling (NOT PIL-exact)"},
        {"calib", QTK_OPT_INT, &calib, "N", 1, 1 << 30, "calibration images (default min(1000, N))"},
        {"batch", QTK_OPT_INT, &batch, "B", 1, 1 << 20, "calibration batch (100; batches beyond N / B dropped)"},
        {"w-bits", QTK_OPT_INT, &qc.w_bits, "B", 2, 8, "weight bits (4)"},
        {"a-bits", QTK_OPT_INT, &qc.a_bits, "B", 2, 8, "activation bits (8)"},
        {"no-bias-corr", QTK_OPT_FLAG, &no_bc, NULL, 0, 0, "no bias correction of the quantized weights"},
        {"float-layernorm", QTK_OPT_FLAG, &float_ln, NULL, 0, 0, "float LayerNorm (its output stays quantized)"},
        {"quant-input", QTK_OPT_STR, &qin, "on|off", 0, 0, "quantize the input image (default: DeiT on, ViT off)"},
        {"off", QTK_OPT_LIST, &offs, "PATTERN", 0, 0, "switch off quantizers matching a glob (repeatable)"},
        {"export", QTK_OPT_STR, &export_path, "FILE", 0, 0, "write every quantizer's scale and zero point"},
    };
    const qtk_cmd_spec spec = {
        "quant-report", "--model CKPT.safetensors --images FILE.safetensors [options]",
        "Calibrates the FQ-ViT / Evol-Q quantized baseline on the images (the reference's stage order: FP\n"
        "statistics on every batch, OMSE and PTF scored on the last) and prints each quantizer: bits,\n"
        "granularity, scale range, zero point range, and the MSE it gives on the calibration images in the\n"
        "quantized forward. (quant-report CONFIG.yaml is qtk calibrate CONFIG.yaml --report.)",
        opts, 18, 0, 0};
    int prc = qtk_opts_parse(&spec, argc, argv, NULL, &n_pos);
    if (prc) return prc < 0 ? 0 : prc;
    const int n_off = offs.n;
    qc.bias_corr = !no_bc;
    qc.int_layernorm = !float_ln;
    if (bad_s && strcmp(bad_s, "skip") && strcmp(bad_s, "fail"))
        return qtk_cli_usage_error("--on-bad-image takes skip or fail, got \"%s\"", bad_s);
    if (bad_s) policy = !strcmp(bad_s, "fail") ? QTK_BAD_FAIL : QTK_BAD_SKIP;
    if (qin && strcmp(qin, "on") && strcmp(qin, "off")) return qtk_cli_usage_error("--quant-input takes on or off, got \"%s\"", qin);
    if (qin) qc.quant_input = !strcmp(qin, "on");
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
