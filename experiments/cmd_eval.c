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
#include "runctx.h"

typedef struct {
    const char *cfg_path, *file, *json, *logits;
    char *sets[64];
    int n_sets, eval, report;
} opts;

// Common options: CONFIG [--set k=v]... plus --out/--quant FILE, --json FILE, --eval; 0 ok, else the exit status.
static int parse(int argc, char **argv, const char *file_opt, const char *help, opts *o) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts(help);
            return -1;
        }
        if (!strcmp(argv[i], "--set") || !strcmp(argv[i], file_opt) || !strcmp(argv[i], "--json") ||
            (!strcmp(argv[i], "--logits") && !strcmp(file_opt, "--quant"))) {
            if (i + 1 >= argc) return qtk_cli_usage_error("%s needs a value", argv[i]);
            if (!strcmp(argv[i], "--set")) {
                if (o->n_sets == 64) return qtk_cli_usage_error("at most 64 --set");
                if (qtk_cli_set_arg(argv[i + 1])) return 2;
                o->sets[o->n_sets++] = argv[++i];
            } else if (!strcmp(argv[i], "--json")) o->json = argv[++i];
            else if (!strcmp(argv[i], "--logits")) o->logits = argv[++i];
            else o->file = argv[++i];
        } else if (!strcmp(argv[i], "--eval") && !strcmp(file_opt, "--out")) o->eval = 1;
        else if (!strcmp(argv[i], "--report") && !strcmp(file_opt, "--out")) o->report = 1;
        else if (argv[i][0] == '-') return qtk_cli_usage_error("%s: unknown option \"%s\"", argv[0], argv[i]);
        else if (o->cfg_path) return qtk_cli_usage_error("%s takes one config file", argv[0]);
        else o->cfg_path = argv[i];
    }
    if (!o->cfg_path) return qtk_cli_usage_error("%s needs a config file", argv[0]);
    return 0;
}

// parse, then load the config: 0 ok; -1 after --help; else the exit status
static int start(int argc, char **argv, const char *file_opt, const char *help, opts *o, qtk_run_config **c) {
    int prc = parse(argc, argv, file_opt, help, o);
    if (prc) return prc;
    if (qtk_config_load(o->cfg_path, o->sets, o->n_sets, c) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
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
    opts o;
    qtk_run_config *c;
    int prc = start(argc, argv, "--out",
                    "usage: qtk calibrate CONFIG.yaml [--set key=value ...] [--out FILE] [--eval] [--report] [--json FILE]\n\n"
                    "Calibrates the quantized baseline (quantization.*, calibration.*: the seeded sample of data.root)\n"
                    "and exports every quantizer's scales and zero points to FILE (default\n"
                    "<output.dir>/calibration.safetensors), usable as search.init or by qtk eval --quant.\n"
                    "--eval also evaluates FP32 and the baseline on the test set; --report lists every quantizer\n"
                    "(bits, granularity, scale and zero-point ranges, MSE on the calibration images, as quant-report);\n"
                    "--json writes the numbers.",
                    &o, &c);
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
    opts o;
    qtk_run_config *c;
    int prc = start(argc, argv, "--quant",
                    "usage: qtk eval CONFIG.yaml [--set key=value ...] [--quant FILE] [--json FILE] [--logits FILE]\n\n"
                    "Top-1 / top-5 on the config's test set of the FP32 model and of the quantized one, whose scales\n"
                    "come from FILE (any qtk export: quant.safetensors of a run, calibration.safetensors), else from\n"
                    "<output.dir>/quant.safetensors when the run has one, else from search.init, else from a fresh\n"
                    "calibration of the baseline. --json writes the numbers. --logits writes a safetensors file with\n"
                    "the preprocessed test inputs (\"inputs\"), their labels and both models' logits (\"fp32\",\n"
                    "\"quantized\"), for checking an export elsewhere (tools/apply_export.py); at most 1 GiB of inputs\n"
                    "(data.test_images limits them).",
                    &o, &c);
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
        for (int i = 0; st == QTK_OK && i < o.n_sets; i++)
            if ((!strncmp(o.sets[i], "quantization.w_bits=", 20) && ex.w_bits != c->quantization.w_bits) ||
                (!strncmp(o.sets[i], "quantization.a_bits=", 20) && ex.a_bits != c->quantization.a_bits))
                st = qtk_fail(QTK_ERR_ARG, "--set %s, but %s holds W%dA%d scales", o.sets[i], quant, ex.w_bits, ex.a_bits);
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
