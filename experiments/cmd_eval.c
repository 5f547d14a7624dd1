// qtk calibrate CONFIG: the FQ-ViT / Evol-Q baseline's calibration alone,
// exported as a quant.safetensors (a starting point for search.init, or for
// qtk eval). qtk eval CONFIG: top-1 / top-5 of the FP32 model and of a
// quantized one (an export, or the baseline calibrated on the spot) on the
// config's test set.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/qtk.h"
#include "cli.h"
#include "opts.h"
#include "runctx.h"

typedef struct {
    const char *cfg_path, *file, *json, *logits;
    qtk_opt_sets sets;
    int eval, report;
} opts;

// CONFIG [--set k=v]... plus the command's own options (a table of up to 6), then the config loaded: 0 ok;
// -1 after --help; else the exit status
static int start(int argc, char **argv, const char *cmd, const char *synopsis, const char *about, const qtk_opt *own,
                 int n_own, opts *o, qtk_run_config **c) {
    qtk_opt t[8] = {{"set", QTK_OPT_SET, &o->sets, "KEY=VALUE", 0, 0, "override a config key (repeatable)"},
                    {"json", QTK_OPT_STR, &o->json, "FILE", 0, 0, "write the numbers as JSON"}};
    for (int i = 0; i < n_own; i++) t[2 + i] = own[i];
    const qtk_cmd_spec spec = {cmd, synopsis, about, t, 2 + n_own, 1, 1};
    char *pos[1];
    int n_pos, prc = qtk_opts_parse(&spec, argc, argv, pos, &n_pos);
    if (prc) return prc;
    o->cfg_path = pos[0];
    if (qtk_config_load(o->cfg_path, o->sets.v, o->sets.n, c) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    return 0;
}

static int write_json(const char *path, cJSON *j) {
    int rc = qtk_write_json_atomic(path, j) == QTK_OK ? 0 : qtk_cli_error("%s", qtk_last_error());
    if (!rc) printf("wrote %s\n", path);
    return rc;
}

static void add_acc(cJSON *j, const char *prefix, const qtk_run_acc *a) {
    char k[64];
    if (isnan(a->top1)) return;
    snprintf(k, sizeof k, "%s_top1", prefix);
    cJSON_AddNumberToObject(j, k, a->top1);
    snprintf(k, sizeof k, "%s_top5", prefix);
    cJSON_AddNumberToObject(j, k, a->top5);
}

int qtk_cmd_calibrate(int argc, char **argv) {
    opts o = {0};
    qtk_run_config *c;
    const qtk_opt own[] = {
        {"out", QTK_OPT_STR, &o.file, "FILE", 0, 0, "the export (default <output.dir>/calibration.safetensors)"},
        {"eval", QTK_OPT_FLAG, &o.eval, NULL, 0, 0, "also evaluate FP32 and the baseline on the test set"},
        {"report", QTK_OPT_FLAG, &o.report, NULL, 0, 0, "list every quantizer (bits, granularity, ranges, MSE)"},
    };
    int prc = start(argc, argv, "calibrate", "CONFIG.yaml [--set key=value ...] [--out FILE] [--eval] [--report] [--json FILE]",
                    "Calibrates the quantized baseline (quantization.*, calibration.*: the seeded sample of data.root)\n"
                    "and exports every quantizer's scales and zero points to FILE, usable as search.init or by\n"
                    "qtk eval --quant. --report lists every quantizer with its MSE on the calibration images (as\n"
                    "quant-report CONFIG.yaml).",
                    own, 3, &o, &c);
    if (prc) return prc < 0 ? 0 : prc;
    char path[4200];
    if (o.file) snprintf(path, sizeof path, "%s", o.file);
    else {
        if (qtk_cli_mkdir_p(c->output.dir) != 0) {
            int rc = qtk_cli_error("cannot create %s: %s", c->output.dir, strerror(errno));
            qtk_config_free(c);
            return rc;
        }
        snprintf(path, sizeof path, "%s/calibration.safetensors", c->output.dir);
    }
    qtk_run_ctx r;
    int rc = 1;
    double secs = 0;
    qtk_run_acc fp = {.top1 = NAN}, base = {.top1 = NAN};
    if (qtk_run_ctx_open(&r, c, o.cfg_path, 1) != QTK_OK) {
        rc = qtk_cli_error("%s", qtk_last_error());
        qtk_config_free(c);
        return rc;
    }
    printf("%s: calibrating W%dA%d on %d images (seed %d, %s)\n", c->name, r.qc.w_bits, r.qc.a_bits, r.cal.n, c->seed,
           r.sample);
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%d", c->seed);
    const char *extra[][2] = {{"seed", seed_s}, {"calibration_sample", r.sample}, {"data", c->data.root}, {"search", "none"}};
    qtk_status st = qtk_run_ctx_calibrate(&r, &secs);
    if (st == QTK_OK) st = qtk_vit_quant_export(&r.qv, path, extra, 4);
    if (st == QTK_OK && o.report) { // the quantized forward over the calibration images, on the CPU
        printf("\n");
        st = qtk_vit_quant_report(&r.qv, &r.plan, r.cal.x, r.cal.n, c->calibration.batch, stdout);
        printf("\n");
    }
    if (st == QTK_OK && o.eval) st = qtk_run_ctx_eval(&r, 0, "FP32 eval", &fp);
    if (st == QTK_OK && o.eval) st = qtk_run_ctx_eval(&r, 1, "baseline eval", &base);
    if (st != QTK_OK) qtk_cli_error("%s", qtk_last_error());
    else {
        printf("wrote %s (calibration %.1f s)\n", path, secs);
        if (o.eval && r.test.n)
            printf("  FP32 top-1 %.2f%% (top-5 %.2f%%), baseline top-1 %.2f%% (top-5 %.2f%%), %d test images\n", fp.top1,
                   fp.top5, base.top1, base.top5, r.test.n);
        rc = 0;
        if (o.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "name", c->name);
            cJSON_AddStringToObject(j, "export", path);
            cJSON_AddNumberToObject(j, "w_bits", r.qc.w_bits);
            cJSON_AddNumberToObject(j, "a_bits", r.qc.a_bits);
            cJSON_AddNumberToObject(j, "seed", c->seed);
            cJSON_AddStringToObject(j, "calibration_sample", r.sample);
            cJSON_AddNumberToObject(j, "calibration_seconds", secs);
            add_acc(j, "fp32", &fp);
            add_acc(j, "baseline", &base);
            rc = write_json(o.json, j);
            cJSON_Delete(j);
        }
    }
    qtk_run_ctx_close(&r);
    qtk_config_free(c);
    return rc;
}

int qtk_cmd_eval(int argc, char **argv) {
    opts o = {0};
    qtk_run_config *c;
    const qtk_opt own[] = {
        {"quant", QTK_OPT_STR, &o.file, "FILE", 0, 0, "the export to evaluate (any qtk export)"},
        {"logits", QTK_OPT_STR, &o.logits, "FILE", 0, 0, "write the test inputs, labels and both logits (safetensors)"},
    };
    int prc = start(argc, argv, "eval", "CONFIG.yaml [--set key=value ...] [--quant FILE] [--json FILE] [--logits FILE]",
                    "Top-1 / top-5 on the config's test set of the FP32 model and of the quantized one, whose scales\n"
                    "come from FILE (quant.safetensors of a run, calibration.safetensors), else from\n"
                    "<output.dir>/quant.safetensors when the run has one, else from search.init, else from a fresh\n"
                    "calibration of the baseline. --logits is for checking an export elsewhere\n"
                    "(tools/apply_export.py): at most 1 GiB of inputs (data.test_images limits them).",
                    own, 2, &o, &c);
    if (prc) return prc < 0 ? 0 : prc;
    char run_export[4200];
    snprintf(run_export, sizeof run_export, "%s/quant.safetensors", c->output.dir);
    const char *quant = o.file ? o.file : access(run_export, F_OK) == 0 ? run_export : c->search.init;
    if (o.file && access(o.file, F_OK) != 0) {
        int rc = qtk_cli_error("--quant %s: no such file", o.file);
        qtk_config_free(c);
        return rc;
    }
    // an export fixes the settings it was made with: they come from it, not from the config (a --set
    // that contradicts it is an error, before any evaluation)
    if (quant) {
        qtk_vit_qconfig ex;
        qtk_status st = qtk_vit_quant_read_config(quant, &ex);
        for (int i = 0; st == QTK_OK && i < o.sets.n; i++)
            if ((!strncmp(o.sets.v[i], "quantization.w_bits=", 20) && ex.w_bits != c->quantization.w_bits) ||
                (!strncmp(o.sets.v[i], "quantization.a_bits=", 20) && ex.a_bits != c->quantization.a_bits))
                st = qtk_fail(QTK_ERR_ARG, "--set %s, but %s holds W%dA%d scales", o.sets.v[i], quant, ex.w_bits, ex.a_bits);
        if (st != QTK_OK) {
            int rc = qtk_cli_error("%s", qtk_last_error());
            qtk_config_free(c);
            return rc;
        }
        c->quantization.w_bits = ex.w_bits;
        c->quantization.a_bits = ex.a_bits;
        c->quantization.bias_corr = ex.bias_corr;
        c->quantization.int_layernorm = ex.int_layernorm;
    }
    qtk_run_ctx r;
    int rc = 1;
    if (qtk_run_ctx_open(&r, c, o.cfg_path, quant == NULL) != QTK_OK) {
        rc = qtk_cli_error("%s", qtk_last_error());
        qtk_config_free(c);
        return rc;
    }
    qtk_run_acc fp, q;
    qtk_status st = QTK_OK;
    const size_t NC = (size_t)r.m.cfg.n_classes, in = (size_t)r.m.cfg.in_chans * r.m.cfg.img_size * r.m.cfg.img_size;
    float *lg = NULL;
    if (!r.test.n)
        st = qtk_fail(QTK_ERR_ARG, "%s: no test set to evaluate on (data.test; fashion-mnist uses its t10k files)", o.cfg_path);
    else if (o.logits && (size_t)r.test.n * in * sizeof(float) > ((size_t)1 << 30))
        st = qtk_fail(QTK_ERR_ARG, "--logits: %d test inputs of %zu floats exceed 1 GiB; lower data.test_images", r.test.n, in);
    else if (o.logits && !(lg = malloc(2 * (size_t)r.test.n * NC * sizeof *lg)))
        st = qtk_fail(QTK_ERR_NOMEM, "--logits: out of memory");
    if (st == QTK_OK && quant) { // first: a bad export fails before the FP32 evaluation
        st = qtk_vit_quant_import(&r.qv, quant);
        if (st == QTK_OK) st = qtk_run_ctx_sync(&r);
        if (st == QTK_OK) printf("%s: W%dA%d scales from %s\n", c->name, r.qc.w_bits, r.qc.a_bits, quant);
    }
    if (st == QTK_OK) st = qtk_run_ctx_eval_logits(&r, 0, "FP32 eval", &fp, lg);
    if (st == QTK_OK && !quant) {
        printf("%s: no export given or found: calibrating the W%dA%d baseline (seed %d, %s)\n", c->name, r.qc.w_bits,
               r.qc.a_bits, c->seed, r.sample);
        st = qtk_run_ctx_calibrate(&r, NULL);
    }
    if (st == QTK_OK) st = qtk_run_ctx_eval_logits(&r, 1, "quantized eval", &q, lg ? lg + (size_t)r.test.n * NC : NULL);
    if (st == QTK_OK && lg) {
        int32_t *y = malloc((size_t)r.test.n * sizeof *y);
        int64_t sx[2] = {r.test.n, (int64_t)in}, sl[2] = {r.test.n, (int64_t)NC}, sy[1] = {r.test.n};
        for (int i = 0; y && i < r.test.n; i++) y[i] = r.test.y[i];
        const qtk_st_entry e[4] = {{"inputs", QTK_F32, 2, sx, r.test.x}, {"labels", QTK_I32, 1, sy, y},
                                   {"fp32", QTK_F32, 2, sl, lg}, {"quantized", QTK_F32, 2, sl, lg + (size_t)r.test.n * NC}};
        const char *meta[2][2] = {{"scales", quant ? quant : "calibrated baseline"}, {"checkpoint", c->model.checkpoint}};
        st = y ? qtk_st_write(o.logits, e, 4, meta, 2) : qtk_fail(QTK_ERR_NOMEM, "--logits: out of memory");
        if (st == QTK_OK) printf("wrote %s (inputs, labels, FP32 and quantized logits of %d test inputs)\n", o.logits, r.test.n);
        free(y);
    }
    free(lg);
    if (st != QTK_OK) qtk_cli_error("%s", qtk_last_error());
    else {
        printf("| model | test images | top-1 | top-5 |\n|---|---|---|---|\n");
        printf("| FP32 | %d | %.2f | %.2f |\n", r.test.n, fp.top1, fp.top5);
        printf("| W%dA%d (%s) | %d | %.2f | %.2f |\n", r.qc.w_bits, r.qc.a_bits, quant ? quant : "baseline", r.test.n, q.top1,
               q.top5);
        rc = 0;
        if (o.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "name", c->name);
            cJSON_AddStringToObject(j, "scales", quant ? quant : "calibrated baseline");
            cJSON_AddNumberToObject(j, "w_bits", r.qc.w_bits);
            cJSON_AddNumberToObject(j, "a_bits", r.qc.a_bits);
            cJSON_AddNumberToObject(j, "test_images", r.test.n);
            add_acc(j, "fp32", &fp);
            add_acc(j, "quantized", &q);
            rc = write_json(o.json, j);
            cJSON_Delete(j);
        }
    }
    qtk_run_ctx_close(&r);
    qtk_config_free(c);
    return rc;
}
