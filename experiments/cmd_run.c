// qtk run CONFIG.yaml [--set key=value ...]: calibrate -> baseline eval ->
// Evol-Q search -> final eval -> export, into the config's output folder:
// config.yaml (resolved), log.jsonl (one line per block step), summary.json,
// table.md, quant.safetensors, search.ckpt (resume point). Rerunning resumes
// an interrupted run from search.ckpt and skips a finished one.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/qtk.h"
#include "../datasets/folder.h"
#include "../datasets/idx.h"
#include "../datasets/sampler.h"
#include "../search/evolq.h"
#include "../vision/vit_quant.h"
#include "cli.h"
#include "config.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    float *x;     // (n, input_floats)
    int *y;       // (n) labels, or NULL
    int n;
} dataset;

static void ds_free(dataset *d) {
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

// A tensor file: "images" (N, C, H, W) and optionally "labels" (N).
static qtk_status load_tensor_set(const char *path, const qtk_vit *m, dataset *d) {
    qtk_safetensors st;
    QTK_TRY(qtk_st_open(&st, path));
    const qtk_st_tensor *t = qtk_st_find(&st, "images");
    const qtk_vit_config *c = &m->cfg;
    qtk_status r = QTK_OK;
    if (!t || t->ndim != 4 || t->shape[1] != c->in_chans || t->shape[2] != c->img_size || t->shape[3] != c->img_size)
        r = qtk_fail(QTK_ERR_FORMAT, "%s: needs tensor \"images\" of shape (N, %d, %d, %d)", path, c->in_chans, c->img_size,
                     c->img_size);
    size_t n = 0;
    if (r == QTK_OK) r = qtk_st_load_f32(&st, "images", &d->x, &n);
    if (r == QTK_OK) {
        d->n = (int)t->shape[0];
        const qtk_st_tensor *lb = qtk_st_find(&st, "labels");
        if (lb) {
            float *f;
            size_t nl;
            r = qtk_st_load_f32(&st, "labels", &f, &nl);
            if (r == QTK_OK && nl != (size_t)d->n) r = qtk_fail(QTK_ERR_FORMAT, "%s: %zu labels for %d images", path, nl, d->n);
            if (r == QTK_OK) {
                d->y = malloc((size_t)d->n * sizeof *d->y);
                for (int i = 0; i < d->n; i++) d->y[i] = (int)f[i];
            }
            qtk_aligned_free(f);
        }
    }
    qtk_st_close(&st);
    return r;
}

// Fashion-MNIST IDX: pixel / 255, normalized with the model's mean/std.
static qtk_status load_idx_set(const char *root, const char *split, const qtk_vit *m, const uint32_t *idx, int n,
                               dataset *d) {
    char pi[4096], pl[4096];
    snprintf(pi, sizeof pi, "%s/%s-images-idx3-ubyte", root, split);
    snprintf(pl, sizeof pl, "%s/%s-labels-idx1-ubyte", root, split);
    qtk_idx im, lb;
    QTK_TRY(qtk_idx_read(pi, &im));
    qtk_status r = qtk_idx_read(pl, &lb);
    if (r == QTK_OK && (im.ndim != 3 || im.dims[1] != m->cfg.img_size || im.dims[2] != m->cfg.img_size || m->cfg.in_chans != 1))
        r = qtk_fail(QTK_ERR_FORMAT, "%s: %dx%d single-channel images do not fit the model (%d channels, %d pixels)", pi,
                     im.dims[1], im.dims[2], m->cfg.in_chans, m->cfg.img_size);
    if (r == QTK_OK) {
        int count = idx ? n : (n > 0 && n < im.dims[0] ? n : im.dims[0]);
        // a subset of the test split is spread over the whole file (it is ordered by class)
        size_t stride = idx ? 1 : (size_t)im.dims[0] / (size_t)count;
        size_t per = (size_t)im.dims[1] * im.dims[2];
        d->x = malloc((size_t)count * per * sizeof *d->x);
        d->y = malloc((size_t)count * sizeof *d->y);
        d->n = count;
        float mean = m->cfg.mean[0], sd = m->cfg.std[0];
        for (int i = 0; i < count; i++) {
            size_t s = idx ? idx[i] : (size_t)i * stride;
            for (size_t k = 0; k < per; k++) d->x[i * per + k] = ((float)im.data[s * per + k] / 255.0f - mean) / sd;
            d->y[i] = lb.data[s];
        }
        qtk_idx_free(&lb);
    }
    qtk_idx_free(&im);
    return r;
}

static qtk_status top1(qtk_vit *m, qtk_vit_plan *p, qtk_vit_quant *qv, const dataset *d, int batch, double *acc) {
    int NC = m->cfg.n_classes, correct = 0;
    size_t in = (size_t)m->cfg.in_chans * m->cfg.img_size * m->cfg.img_size;
    float *logits = malloc((size_t)batch * NC * sizeof *logits);
    qtk_status st = QTK_OK;
    for (int i = 0; i < d->n && st == QTK_OK; i += batch) {
        int b = d->n - i < batch ? d->n - i : batch;
        st = qv ? qtk_vit_quant_forward(qv, p, d->x + (size_t)i * in, b, logits) : qtk_vit_forward(m, p, d->x + (size_t)i * in, b, logits);
        for (int k = 0; st == QTK_OK && k < b; k++) {
            int a = 0;
            for (int j = 1; j < NC; j++)
                if (logits[k * NC + j] > logits[k * NC + a]) a = j;
            correct += a == d->y[i + k];
        }
    }
    free(logits);
    *acc = 100.0 * correct / (d->n ? d->n : 1);
    return st;
}

typedef struct {
    FILE *log;
    int total;
} run_log;

static void on_step(void *ctx, const qtk_evolq_step *s) {
    run_log *l = ctx;
    fprintf(l->log, "{\"pass\": %d, \"block\": %d, \"step\": %d, \"loss_start\": %.9g, \"loss_best\": %.9g, \"improved\": %s, "
                    "\"seconds\": %.3f, \"evals\": %lld, \"image_forwards\": %lld}\n",
            s->pass, s->block, s->step, s->loss_start, s->loss_best, s->improved ? "true" : "false", s->seconds, s->evals,
            s->image_forwards);
    fflush(l->log);
    fsync(fileno(l->log));
    int tty = isatty(fileno(stdout));
    printf("%s  search: step %d/%d (pass %d, block %d) loss %.6f -> %.6f, ETA %.0f s%s", tty ? "\r" : "", s->step + 1,
           l->total, s->pass, s->block, s->loss_start, s->loss_best, s->seconds * (l->total - s->step - 1), tty ? "   " : "\n");
    fflush(stdout);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = '\0';
    fclose(f);
    return b;
}

int qtk_cmd_run(int argc, char **argv) {
    const char *cfg_path = NULL;
    char *sets[64];
    int n_sets = 0, force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("usage: qtk run CONFIG.yaml [--set key=value ...] [--force]\n\n"
                 "Calibrates the quantized baseline, evaluates it, runs the Evol-Q search, evaluates again and\n"
                 "exports, into output.dir (default results/runs/<name>): config.yaml, log.jsonl, summary.json,\n"
                 "table.md, quant.safetensors. An interrupted run resumes from its search.ckpt when run again;\n"
                 "a finished one is skipped (--force reruns it). Keys: see experiments/configs/README.md.");
            return 0;
        }
        if (!strcmp(argv[i], "--force")) force = 1;
        else if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc || n_sets == 64) return qtk_cli_usage_error("--set needs key=value");
            sets[n_sets++] = argv[++i];
        } else if (argv[i][0] == '-') return qtk_cli_usage_error("run: unknown option \"%s\"", argv[i]);
        else if (cfg_path) return qtk_cli_usage_error("run takes one config file");
        else cfg_path = argv[i];
    }
    if (!cfg_path) return qtk_cli_usage_error("run needs a config file");
    qtk_run_config *c;
    if (qtk_config_load(cfg_path, sets, n_sets, &c) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    const char *out = c->output.dir;
    char path[4200], ckpt[4200];
    int rc = 1;
    qtk_vit m = {0};
    qtk_vit_plan plan = {0};
    qtk_vit_quant qv = {0};
    dataset cal = {0}, test = {0};
    FILE *logf = NULL;
    if (qtk_cli_mkdir_p(out) != 0) {
        qtk_cli_error("cannot create output folder %s: %s", out, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof path, "%s/summary.json", out);
    char *prev = read_text(path);
    cJSON *pj = prev ? cJSON_Parse(prev) : NULL;
    const cJSON *status = pj ? cJSON_GetObjectItemCaseSensitive(pj, "status") : NULL;
    int finished = cJSON_IsString(status) && !strcmp(status->valuestring, "done");
    cJSON_Delete(pj);
    free(prev);
    if (finished && !force) {
        printf("%s: already done (%s); --force reruns it\n", c->name, path);
        rc = 0;
        goto done;
    }
    // the resolved config; an existing run in this folder must have the same one to be resumed
    snprintf(ckpt, sizeof ckpt, "%s/search.ckpt", out);
    snprintf(path, sizeof path, "%s/config.yaml", out);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s/.config.yaml.new", out);
    if (qtk_config_save(tmp, c) != QTK_OK) {
        qtk_cli_error("%s", qtk_last_error());
        goto done;
    }
    char *old = read_text(path), *new_ = read_text(tmp);
    if (old && new_ && strcmp(old, new_) && access(ckpt, F_OK) == 0 && !force) {
        qtk_cli_error("%s holds an unfinished run of a different config; use another output.dir, or --force", out);
        free(old);
        free(new_);
        unlink(tmp);
        goto done;
    }
    free(old);
    free(new_);
    rename(tmp, path);
    if (force) unlink(ckpt);
    int resuming = access(ckpt, F_OK) == 0;
    double t0 = now();
    if (qtk_vit_load(&m, c->model.checkpoint, c->model.desc && *c->model.desc ? c->model.desc : NULL) != QTK_OK) {
        qtk_cli_error("%s", qtk_last_error());
        goto done;
    }
    // data: calibration from the training split (seeded sample), evaluation from the test split
    qtk_status st = QTK_OK;
    uint32_t *idx = malloc((size_t)c->calibration.images * sizeof *idx);
    char fp[16] = "";
    if (!strcmp(c->data.format, "fashion-mnist")) {
        char tr[4200];
        snprintf(tr, sizeof tr, "%s/train-images-idx3-ubyte", c->data.root);
        qtk_idx probe;
        st = qtk_idx_read(tr, &probe);
        if (st == QTK_OK) {
            st = qtk_sample_indices((uint32_t)probe.dims[0], (uint32_t)c->calibration.images, (uint64_t)c->seed, idx);
            qtk_idx_free(&probe);
        }
        if (st == QTK_OK) st = load_idx_set(c->data.root, "train", &m, idx, c->calibration.images, &cal);
        if (st == QTK_OK) st = load_idx_set(c->data.root, "t10k", &m, NULL, c->data.test_images, &test);
    } else if (!strcmp(c->data.format, "tensor")) {
        dataset all = {0};
        st = load_tensor_set(c->data.root, &m, &all);
        if (st == QTK_OK && all.n < c->calibration.images)
            st = qtk_fail(QTK_ERR_ARG, "%s: %d images, calibration.images is %d", c->data.root, all.n, c->calibration.images);
        if (st == QTK_OK) st = qtk_sample_indices((uint32_t)all.n, (uint32_t)c->calibration.images, (uint64_t)c->seed, idx);
        if (st == QTK_OK) {
            size_t in = (size_t)m.cfg.in_chans * m.cfg.img_size * m.cfg.img_size;
            cal.n = c->calibration.images;
            cal.x = malloc((size_t)cal.n * in * sizeof *cal.x);
            for (int i = 0; i < cal.n; i++) memcpy(cal.x + (size_t)i * in, all.x + (size_t)idx[i] * in, in * sizeof *cal.x);
        }
        ds_free(&all);
        if (st == QTK_OK && c->data.test) st = load_tensor_set(c->data.test, &m, &test);
        if (st == QTK_OK && test.n && !test.y) st = qtk_fail(QTK_ERR_FORMAT, "%s: no \"labels\" for evaluation", c->data.test);
    } else { // folder
        qtk_image_folder f;
        st = qtk_folder_open(&f, c->data.root, c->data.class_index);
        if (st == QTK_OK) {
            if (f.n < (size_t)c->calibration.images)
                st = qtk_fail(QTK_ERR_ARG, "%s: %zu images, calibration.images is %d", c->data.root, f.n, c->calibration.images);
            if (st == QTK_OK) st = qtk_sample_indices((uint32_t)f.n, (uint32_t)c->calibration.images, (uint64_t)c->seed, idx);
            qtk_transform tr = {m.cfg.img_size, m.cfg.crop_pct, {m.cfg.mean[0], m.cfg.mean[1], m.cfg.mean[2]},
                                {m.cfg.std[0], m.cfg.std[1], m.cfg.std[2]}, 0};
            qtk_bad_list bad;
            size_t got = 0;
            int hit;
            if (st == QTK_OK)
                st = qtk_folder_cached(&f, idx, (size_t)c->calibration.images, &tr,
                                       strcmp(c->data.on_bad_image, "fail") ? QTK_BAD_SKIP : QTK_BAD_FAIL, c->data.cache,
                                       &cal.x, &cal.y, &got, &hit, &bad);
            if (st == QTK_OK && (int)got != c->calibration.images)
                st = qtk_fail(QTK_ERR_FORMAT, "%s: %zu of %d calibration images unreadable (skipped); the search needs whole "
                              "groups: choose another seed or fix the files", c->data.root, bad.n, c->calibration.images);
            if (st == QTK_OK) {
                cal.n = (int)got;
                qtk_bad_list_free(&bad);
            }
            qtk_folder_free(&f);
        }
        if (st == QTK_OK && c->data.test) {
            qtk_image_folder tf;
            st = qtk_folder_open(&tf, c->data.test, c->data.class_index);
            if (st == QTK_OK) {
                size_t n = c->data.test_images > 0 && (size_t)c->data.test_images < tf.n ? (size_t)c->data.test_images : tf.n;
                uint32_t *all = malloc(n * sizeof *all);
                for (size_t i = 0; i < n; i++) all[i] = (uint32_t)(i * (tf.n / n)); // spread over the classes
                qtk_transform tr = {m.cfg.img_size, m.cfg.crop_pct, {m.cfg.mean[0], m.cfg.mean[1], m.cfg.mean[2]},
                                    {m.cfg.std[0], m.cfg.std[1], m.cfg.std[2]}, 0};
                qtk_bad_list bad;
                size_t got;
                int hit;
                st = qtk_folder_cached(&tf, all, n, &tr, QTK_BAD_SKIP, NULL, &test.x, &test.y, &got, &hit, &bad);
                test.n = (int)got;
                if (st == QTK_OK) qtk_bad_list_free(&bad);
                free(all);
                qtk_folder_free(&tf);
            }
        }
    }
    if (st == QTK_OK) qtk_indices_fingerprint(idx, (size_t)c->calibration.images, fp);
    free(idx);
    if (st != QTK_OK) {
        qtk_cli_error("%s", qtk_last_error());
        goto done;
    }
    int batch = c->calibration.batch;
    qtk_vit_qconfig qc;
    qtk_vit_qconfig_default(&qc);
    qc.w_bits = c->quantization.w_bits;
    qc.a_bits = c->quantization.a_bits;
    qc.bias_corr = c->quantization.bias_corr;
    qc.int_layernorm = c->quantization.int_layernorm;
    if (qtk_vit_plan_init(&plan, &m, batch) != QTK_OK || qtk_vit_quant_init(&qv, &m, &qc) != QTK_OK) {
        qtk_cli_error("%s", qtk_last_error());
        goto done;
    }
    for (unsigned i = 0; i < c->quantization.off_count; i++)
        if (qtk_vit_quant_set_enabled(&qv, c->quantization.off[i], 0) == 0) {
            qtk_cli_error("%s: quantization.off: \"%s\" matches no quantizer", cfg_path, c->quantization.off[i]);
            goto done;
        }
    printf("%s: %s, W%dA%d, %d calibration images (seed %d, %s)%s\n", c->name, c->model.checkpoint, qc.w_bits, qc.a_bits,
           cal.n, c->seed, fp, resuming ? "; resuming the search from search.ckpt" : "");
    double acc_fp = NAN, acc_base = NAN, acc_search = NAN, t_cal, t_search = 0;
    if (test.n && top1(&m, &plan, NULL, &test, batch, &acc_fp) != QTK_OK) goto eval_fail;
    double tc = now();
    if (qtk_vit_calibrate(&qv, &plan, cal.x, cal.n, batch) != QTK_OK) goto eval_fail;
    t_cal = now() - tc;
    if (test.n && top1(&m, &plan, &qv, &test, batch, &acc_base) != QTK_OK) goto eval_fail;
    if (test.n) printf("  FP32 top-1 %.2f%%, baseline top-1 %.2f%% (%d test images)\n", acc_fp, acc_base, test.n);
    qtk_evolq_result res = {0};
    int complete = 1;
    if (!strcmp(c->search.method, "evolq")) {
        qtk_model mm;
        qtk_vit_quant_model(&qv, &plan, 0, &mm);
        qv.targets_float = !strcmp(c->search.fp_targets, "float");
        qtk_evolq_config ec;
        qtk_evolq_config_default(&ec, qc.w_bits);
        ec.passes = c->search.passes;
        ec.ea.cycles = c->search.cycles;
        ec.ea.population = c->search.population;
        ec.ea.tournament = c->search.tournament;
        if (c->search.eps > 0) ec.ea.eps = c->search.eps;
        ec.temperature = (float)c->search.temperature;
        ec.group = c->search.group;
        ec.batch = batch;
        ec.seed = (uint32_t)c->seed;
        ec.checkpoint = ckpt;
        ec.max_steps = c->search.max_steps;
        snprintf(path, sizeof path, "%s/log.jsonl", out);
        logf = fopen(path, resuming ? "a" : "w");
        if (!logf) {
            qtk_cli_error("cannot write %s", path);
            goto done;
        }
        run_log rl = {logf, ec.passes * m.cfg.depth};
        if (qtk_evolq_search(&mm, cal.x, cal.n, &ec, on_step, &rl, &res) != QTK_OK) goto eval_fail;
        if (isatty(fileno(stdout))) printf("\n");
        t_search = res.seconds;
        int done_steps = (res.resumed_from_step > 0 ? res.resumed_from_step : 0) + res.steps;
        complete = done_steps >= ec.passes * m.cfg.depth;
        if (complete && test.n && top1(&m, &plan, &qv, &test, batch, &acc_search) != QTK_OK) goto eval_fail;
        if (complete && test.n) printf("  Evol-Q top-1 %.2f%%\n", acc_search);
        if (!complete) printf("  paused after %d of %d block steps (search.max_steps); run again to continue\n", done_steps,
                              ec.passes * m.cfg.depth);
    }
    // exports
    snprintf(path, sizeof path, "%s/quant.safetensors", out);
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%d", c->seed);
    snprintf(tmp, sizeof tmp, "%s/config.yaml", out);
    char *cfg_text = read_text(tmp);
    const char *extra[][2] = {{"config", cfg_text ? cfg_text : ""}, {"seed", seed_s}, {"calibration_sample", fp},
                              {"data", c->data.root}, {"search", complete ? c->search.method : "partial"}};
    st = qtk_vit_quant_export(&qv, path, extra, 5);
    free(cfg_text);
    if (st != QTK_OK) goto eval_fail;
    cJSON *sm = cJSON_CreateObject();
    cJSON_AddStringToObject(sm, "name", c->name);
    cJSON_AddStringToObject(sm, "status", complete ? "done" : "partial");
    cJSON_AddStringToObject(sm, "qtk_version", QTK_VERSION);
    cJSON_AddNumberToObject(sm, "seed", c->seed);
    cJSON_AddStringToObject(sm, "calibration_sample", fp);
    cJSON_AddNumberToObject(sm, "w_bits", qc.w_bits);
    cJSON_AddNumberToObject(sm, "a_bits", qc.a_bits);
    if (test.n) {
        cJSON_AddNumberToObject(sm, "test_images", test.n);
        cJSON_AddNumberToObject(sm, "fp32_top1", acc_fp);
        cJSON_AddNumberToObject(sm, "baseline_top1", acc_base);
        if (complete && !isnan(acc_search)) cJSON_AddNumberToObject(sm, "searched_top1", acc_search);
    }
    cJSON_AddNumberToObject(sm, "loss_initial", res.loss_initial);
    cJSON_AddNumberToObject(sm, "loss_final", res.loss_final);
    cJSON_AddNumberToObject(sm, "loss_evaluations", (double)res.evals);
    cJSON_AddNumberToObject(sm, "calibration_seconds", t_cal);
    cJSON_AddNumberToObject(sm, "search_seconds", t_search);
    cJSON_AddNumberToObject(sm, "total_seconds", now() - t0);
    char *js = cJSON_Print(sm);
    cJSON_Delete(sm);
    snprintf(path, sizeof path, "%s/summary.json", out);
    snprintf(tmp, sizeof tmp, "%s/.summary.json.new", out);
    FILE *f = fopen(tmp, "w");
    if (!f || !js || fputs(js, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        free(js);
        qtk_cli_error("cannot write %s", path);
        goto done;
    }
    free(js);
    snprintf(path, sizeof path, "%s/table.md", out);
    f = fopen(path, "w");
    if (f) {
        fprintf(f, "| run | bits | FP32 | baseline | Evol-Q | infoNCE | status |\n|---|---|---|---|---|---|---|\n");
        fprintf(f, "| %s | W%dA%d | %.2f | %.2f | %.2f | %.5f -> %.5f | %s |\n", c->name, qc.w_bits, qc.a_bits, acc_fp,
                acc_base, acc_search, res.loss_initial, res.loss_final, complete ? "done" : "partial");
        fclose(f);
    }
    printf("wrote %s/{config.yaml, log.jsonl, summary.json, table.md, quant.safetensors}\n", out);
    rc = 0;
    goto done;
eval_fail:
    qtk_cli_error("%s", qtk_last_error());
done:
    if (logf) fclose(logf);
    ds_free(&cal);
    ds_free(&test);
    qtk_vit_quant_free(&qv);
    qtk_vit_plan_free(&plan);
    qtk_vit_free(&m);
    qtk_config_free(c);
    return rc;
}
