// qtk run CONFIG.yaml [--set key=value ...]: calibrate (or, CPT-V, start from
// an export) -> baseline eval -> Evol-Q search -> final eval -> export, into
// the config's output folder: config.yaml (resolved), log.jsonl (one line per
// block step), summary.json, table.md, quant.safetensors, loss.png (gnuplot),
// search.ckpt (resume point). Rerunning resumes an interrupted run from
// search.ckpt and skips a finished one.
//
// select_on: val reproduces the reference's test-set selection (spec
// evolq-search.md section 7): the test set is evaluated after every block
// step, the state is kept at every step of pass 0 and later only when top-1
// rises strictly; quant_selected.safetensors and selected.json hold it, and
// every table labels the run "test-set selection". validate_every: k only
// reports test top-1 in log.jsonl.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/comm.h"
#include "../core/cuda/qtk_cuda.h"
#include "../core/qtk.h"
#include "../search/evolq.h"
#include "../ssm/quamba.h"
#include "../ssm/quamba_cuda.h"
#include "cli.h"
#include "opts.h"
#include "plot.h"
#include "progress.h"
#include "runctx.h"
#include "../core/timer.h"

typedef struct {
    qtk_run_ctx *r;
    const char *out;
    FILE *log;
    qtk_progress prog;
    int select, validate_every, started;
    // the test-set selection (select_on: val)
    double sel_top1;
    int sel_step;
    double val_seconds;
    int validations;
} run_state;

// selected.json: the selection so far (written after quant_selected.safetensors)
static qtk_status save_selection(run_state *s) {
    char path[4200], text[256];
    snprintf(path, sizeof path, "%s/selected.json", s->out);
    snprintf(text, sizeof text, "{\"step\": %d, \"top1\": %.17g}\n", s->sel_step, s->sel_top1);
    return qtk_write_text_atomic(path, text);
}

static void load_selection(run_state *s) {
    char path[4200];
    snprintf(path, sizeof path, "%s/selected.json", s->out);
    char *t = qtk_read_text(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "step"), *a = cJSON_GetObjectItemCaseSensitive(j, "top1");
    if (cJSON_IsNumber(st) && cJSON_IsNumber(a)) {
        s->sel_step = st->valueint;
        s->sel_top1 = a->valuedouble;
    }
    cJSON_Delete(j);
    free(t);
}

static qtk_status export_run(run_state *s, const char *file, const char *search);

static qtk_status on_step(void *ctx, const qtk_evolq_step *e) {
    run_state *s = ctx;
    qtk_run_ctx *r = s->r;
    double top1 = NAN;
    if (!s->started) s->prog.offset = e->step; // a resumed search: earlier steps are not in the ETA's rate
    s->started = 1;
    int validate = r->test.n && (s->select || (s->validate_every && (e->step + 1) % s->validate_every == 0));
    if (validate) {
        // the model holds this step's result; the plan's buffers are free between steps
        qtk_run_acc a;
        char label[48];
        snprintf(label, sizeof label, "validation %d", e->step + 1);
        if (s->prog.tty) printf("\n");
        QTK_TRY(qtk_run_ctx_eval(r, 1, label, &a));
        top1 = a.top1;
        s->val_seconds += a.seconds;
        s->validations++;
    }
    // the reference's rule: keep every step of pass 0, later ones only on a strict rise
    if (s->select && validate && (e->pass == 0 || top1 > s->sel_top1)) {
        s->sel_top1 = top1;
        s->sel_step = e->step;
        QTK_TRY(export_run(s, "quant_selected.safetensors", "evolq-selected-on-test"));
        QTK_TRY(save_selection(s));
    }
    char acc[64] = "";
    if (validate) snprintf(acc, sizeof acc, ", \"test_top1\": %.4f", top1);
    fprintf(s->log, "{\"pass\": %d, \"block\": %d, \"step\": %d, \"loss_start\": %.9g, \"loss_best\": %.9g, \"improved\": %s, "
                    "\"seconds\": %.3f, \"evals\": %lld, \"image_forwards\": %lld%s}\n",
            e->pass, e->block, e->step, e->loss_start, e->loss_best, e->improved ? "true" : "false", e->seconds, e->evals,
            e->input_forwards, acc);
    if (fflush(s->log) != 0 || fsync(fileno(s->log)) != 0)
        return qtk_fail(QTK_ERR_IO, "%s/log.jsonl: cannot write: %s", s->out, strerror(errno));
    char extra[128];
    snprintf(extra, sizeof extra, "pass %d block %d, loss %.6f%s%s", e->pass, e->block, e->loss_best,
             validate ? ", test top-1 " : "", validate ? acc + 15 : "");
    qtk_progress_update(&s->prog, e->step + 1, extra);
    return QTK_OK;
}

static qtk_status export_run(run_state *s, const char *file, const char *search) {
    char path[4200], cfg_path[4200], seed_s[32];
    snprintf(path, sizeof path, "%s/%s", s->out, file);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", s->out);
    snprintf(seed_s, sizeof seed_s, "%d", s->r->cfg->seed);
    char *cfg_text = qtk_read_text(cfg_path, NULL);
    const char *extra[][2] = {{"run_config", cfg_text ? cfg_text : ""}, {"seed", seed_s}, {"calibration_sample", s->r->sample},
                              {"data", s->r->cfg->data.root}, {"search", search}};
    qtk_status st = qtk_vit_quant_export(&s->r->qv, path, extra, 5);
    free(cfg_text);
    return st;
}

static void add_num(cJSON *o, const char *k, double v) {
    if (!isnan(v)) cJSON_AddNumberToObject(o, k, v);
}

// 1 when the output folder holds a finished run
// start.json: the accuracies and calibration time recorded before the search, for a resumed run
static int load_start(const char *path, const char *sample, qtk_run_acc *fp, qtk_run_acc *base, double *t_cal) {
    char *text;
    if (access(path, F_OK) != 0 || qtk_file_read(path, "start.json", 1 << 16, &text, NULL) != QTK_OK) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *smp = cJSON_GetObjectItemCaseSensitive(j, "calibration_sample");
    int ok = cJSON_IsString(smp) && !strcmp(smp->valuestring, sample);
    const char *keys[5] = {"fp32_top1", "fp32_top5", "baseline_top1", "baseline_top5", "calibration_seconds"};
    double *dst[5] = {&fp->top1, &fp->top5, &base->top1, &base->top5, t_cal};
    for (int i = 0; ok && i < 5; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        if (cJSON_IsNumber(v)) *dst[i] = v->valuedouble;
        else if (!cJSON_IsNull(v)) ok = 0; // NaN (no test set) is written as null
    }
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

static qtk_status save_start(qtk_run_ctx *r, const char *q, const char *j, const qtk_run_acc *fp, const qtk_run_acc *base,
                             double t_cal) {
    QTK_TRY(qtk_vit_quant_export(&r->qv, q, NULL, 0));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "calibration_sample", r->sample);
    const char *keys[5] = {"fp32_top1", "fp32_top5", "baseline_top1", "baseline_top5", "calibration_seconds"};
    const double v[5] = {fp->top1, fp->top5, base->top1, base->top5, t_cal};
    for (int i = 0; i < 5; i++) cJSON_AddItemToObject(o, keys[i], isnan(v[i]) ? cJSON_CreateNull() : cJSON_CreateNumber(v[i]));
    qtk_status st = qtk_write_json_atomic(j, o);
    cJSON_Delete(o);
    return st;
}

static int run_finished(const char *out) {
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", out);
    char *prev = qtk_read_text(path, NULL);
    cJSON *pj = prev ? cJSON_Parse(prev) : NULL;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(pj, "status");
    int done = cJSON_IsString(status) && !strcmp(status->valuestring, "done");
    cJSON_Delete(pj);
    free(prev);
    return done;
}

// Writes the resolved config as out/config.yaml; refuses (1) a different config over an unfinished run.
static int settle_config(const qtk_run_config *c, const char *out, const char *ckpt, int force) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/config.yaml", out);
    snprintf(tmp, sizeof tmp, "%s/.config.yaml.new", out);
    if (qtk_config_save(tmp, c) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    char *old = qtk_read_text(path, NULL), *new_ = qtk_read_text(tmp, NULL);
    int clash = old && new_ && strcmp(old, new_) && access(ckpt, F_OK) == 0 && !force;
    free(old);
    free(new_);
    if (clash) {
        unlink(tmp);
        return qtk_cli_error("%s holds an unfinished run of a different config; use another output.dir, or --force", out);
    }
    if (rename(tmp, path) != 0) return qtk_cli_error("cannot write %s: %s", path, strerror(errno));
    return 0;
}

// GPUs of this host without initialising CUDA (the search's ranks fork first): the entries of
// CUDA_VISIBLE_DEVICES when set, else the driver's /proc/driver/nvidia/gpus entries
static int gpus_present(void) {
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    int n = 0;
    if (v) {
        if (!*v) return 0;
        for (n = 1; *v; v++) n += *v == ',';
        return n;
    }
    DIR *d = opendir("/proc/driver/nvidia/gpus");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

// The search's processes (search.ranks, or one per GPU of `gpus`) and whether they use NCCL. 0, or an exit status.
static int plan_ranks(const qtk_run_config *c, const char *cfg_path, int *ranks, int *ngpu, int *nccl) {
    const int cuda = !strcmp(c->device, "cuda");
    *ngpu = cuda ? gpus_present() : 0;
    int want = !strcmp(c->gpus, "all") ? *ngpu : atoi(c->gpus);
    if (cuda && want > *ngpu)
        return qtk_cli_error("%s: gpus: %s, but this host shows %d GPU%s", cfg_path, c->gpus, *ngpu, *ngpu == 1 ? "" : "s");
    *ranks = c->search.ranks > 0 ? c->search.ranks : cuda && want > 0 ? want : 1;
    const char *t = c->search.transport;
    *nccl = *ranks > 1 && (!strcmp(t, "nccl") || (!strcmp(t, "auto") && cuda && *ranks <= *ngpu && qtk_cuda_built()));
    if (*nccl && *ranks > *ngpu)
        return qtk_cli_error("%s: search.transport: nccl needs one GPU per rank (%d ranks, %d GPUs); use host", cfg_path,
                             *ranks, *ngpu);
    return 0;
}

// every rank's fingerprint of the calibrated scales: the ranks must start the search from the same state
static qtk_status same_start(qtk_comm *comm, qtk_model *mm) {
    double mine[1] = {0}, *all = calloc((size_t)comm->size, sizeof *all);
    if (!all) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    uint64_t h = 1469598103934665603ull; // FNV-1a over every searchable scale's bits
    qtk_model_vec v[QTK_MODEL_MAX_VECS];
    for (int b = 0; b < mm->n_blocks; b++) {
        int nv = qtk_model_block_vectors(mm, b, v, QTK_MODEL_MAX_VECS);
        for (int i = 0; i < nv && i < QTK_MODEL_MAX_VECS; i++)
            for (size_t k = 0; k < v[i].n; k++) {
                uint32_t u;
                memcpy(&u, &v[i].scale[k], 4);
                h = (h ^ u) * 1099511628211ull;
            }
    }
    mine[0] = (double)(h >> 11); // exact in a double
    qtk_status st = comm->allgather(comm, mine, all, 1);
    for (int r = 1; st == QTK_OK && r < comm->size; r++)
        if (all[r] != all[0])
            st = qtk_fail(QTK_ERR_IO, "search rank %d calibrated to different scales than rank 0 (non-deterministic "
                                         "calibration on this device?)", r);
    free(all);
    return st;
}

int qtk_cmd_run(int argc, char **argv) {
    qtk_opt_sets sets = {0};
    int force = 0, dry = 0, n_pos;
    char *pos[1];
    const qtk_opt opts[] = {
        {"set", QTK_OPT_SET, &sets, "KEY=VALUE", 0, 0, "override a config key (repeatable)"},
        {"force", QTK_OPT_FLAG, &force, NULL, 0, 0, "rerun a finished run"},
        {"dry-run", QTK_OPT_FLAG, &dry, NULL, 0, 0, "check the config and print it resolved (defaults, ${VARS})"},
    };
    const qtk_cmd_spec spec = {
        "run", "CONFIG.yaml [--set key=value ...] [--force] [--dry-run]",
        "Calibrates the quantized baseline (or starts from search.init, CPT-V), evaluates it, runs the\n"
        "Evol-Q search, evaluates again and exports, into output.dir (default results/runs/<name>):\n"
        "config.yaml, log.jsonl, summary.json, table.md, quant.safetensors, loss.png (with gnuplot).\n"
        "An interrupted run resumes from its search.ckpt when run again; a finished one is skipped.\n"
        "A config of model.kind: mamba evaluates the float model's perplexity (eval.perplexity) instead.\n"
        "Keys: experiments/configs/README.md.",
        opts, 3, 1, 1};
    int prc = qtk_opts_parse(&spec, argc, argv, pos, &n_pos);
    if (prc) return prc < 0 ? 0 : prc;
    const char *cfg_path = pos[0];
    qtk_run_config *c;
    if (qtk_config_load(cfg_path, sets.v, sets.n, &c) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    int rc = dry ? (qtk_config_save("/dev/stdout", c) == QTK_OK ? 0 : qtk_cli_error("%s", qtk_last_error()))
                 : qtk_run_exec(c, cfg_path, force, NULL);
    qtk_config_free(c);
    return rc;
}

// summary.json's head, for every kind: the run, its status, qtk's version, the model, kind, task and seed
static cJSON *summary_head(const qtk_run_config *c, const char *status, const char *model) {
    cJSON *sm = cJSON_CreateObject();
    cJSON_AddStringToObject(sm, "name", c->name);
    cJSON_AddStringToObject(sm, "status", status);
    cJSON_AddStringToObject(sm, "qtk_version", QTK_VERSION);
    cJSON_AddStringToObject(sm, "model", model);
    cJSON_AddStringToObject(sm, "kind", c->model.kind);
    cJSON_AddStringToObject(sm, "task", c->task);
    cJSON_AddNumberToObject(sm, "seed", c->seed);
    return sm;
}

static void calib_progress(void *ctx, int done, int total) {
    if (done == total || done % 64 == 0) printf("  calibration: %d / %d sequences\n", done, total), fflush(stdout);
}

// Quamba (quantization.method: quamba): calibrate on calibration.{tokens | text}, evaluate the int8 model on
// eval.perplexity, report saturated codes, save out/quantized/ (not for dynamic, which has no static scales).
// info gets what summary.json records of it.
static int run_quamba(const qtk_run_config *c, const char *out, int cuda, cJSON *info, double *qppl) {
    const qtk_cfg_calibration *k = &c->calibration;
    const qtk_cfg_perplexity *pp = &c->eval.perplexity;
    qtk_quamba_opts o;
    qtk_quamba_opts_default(&o);
    if (qtk_quamba_variant_parse(c->quantization.variant, &o.variant) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    o.alpha = (float)c->quantization.percentile;
    o.sat_warn = c->quantization.saturation_warn;
    const int dynamic = o.variant == QTK_QUAMBA_DYNAMIC;
    if (cuda && dynamic) return qtk_cli_error("%s: quamba dynamic runs on the CPU (device: cpu)", c->name);
    qtk_mamba m;
    if (qtk_mamba_load(&m, c->model.checkpoint) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    if (cuda && m.cfg.arch == QTK_MAMBA2) { // before an hour of calibration, not after it
        qtk_mamba_free(&m);
        return qtk_cli_error("%s: Quamba on Mamba2 runs on the CPU for now (its int8 GPU kernels are not written): "
                             "device: cpu", c->name);
    }
    int32_t *cal = NULL, *ev = NULL;
    size_t n_cal = 0, n_ev = 0;
    const char *cal_file = k->tokens ? k->tokens : k->text;
    qtk_quamba q = {0};
    int rc = 0;
    const size_t need = (size_t)k->samples * (size_t)k->seq_len;
    if (!dynamic && qtk_lm_load_ids(c->model.checkpoint, m.cfg.vocab, k->tokens, k->text, &cal, &n_cal) != QTK_OK)
        rc = qtk_cli_error("calibration: %s", qtk_last_error());
    if (!rc && !dynamic && n_cal < need)
        rc = qtk_cli_error("calibration: %s holds %zu tokens; calibration.samples x seq_len = %d x %d needs %zu", cal_file,
                           n_cal, k->samples, k->seq_len, need);
    double t0 = qtk_now(), t_cal = 0;
    if (!rc) {
        if (!dynamic)
            printf("  quamba %s: calibrating on %d sequences of %d tokens of %s (on the %s)\n", c->quantization.variant,
                   k->samples, k->seq_len, cal_file, cuda ? "GPU" : "CPU");
        qtk_quamba_calib cb = {cal, dynamic ? 0 : k->samples, k->seq_len, cal_file, calib_progress, NULL, cuda, 0};
        if (qtk_quamba_calibrate(&q, &m, &o, &cb) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
        t_cal = qtk_now() - t0;
    }
    if (!rc && qtk_lm_load_ids(c->model.checkpoint, m.cfg.vocab, pp->tokens, pp->text, &ev, &n_ev) != QTK_OK)
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc && !dynamic) { // the outliers Quamba is built on
        printf("  outliers per layer: the SSM input's max |x| against its %g percentile; out_proj's input, the largest "
               "channel over the median one, then after the Hadamard\n", c->quantization.percentile);
        cJSON *ol = cJSON_AddArrayToObject(info, "outliers");
        for (int l = 0; l < q.cfg.n_layers; l++) {
            const float *os = q.outliers + (size_t)l * QTK_QUAMBA_NOUT;
            printf("    layer %d: x max %.4g, percentile %.4g (%.1fx); y max/median %.1f, rotated %.1f\n", l,
                   os[QTK_QUAMBA_OUT_X_MAX], os[QTK_QUAMBA_OUT_X_PCT], os[QTK_QUAMBA_OUT_X_MAX] / os[QTK_QUAMBA_OUT_X_PCT],
                   os[QTK_QUAMBA_OUT_Y_RATIO], os[QTK_QUAMBA_OUT_Y_RATIO_HAD]);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "x_max", os[QTK_QUAMBA_OUT_X_MAX]);
            if (isfinite(os[QTK_QUAMBA_OUT_X_PCT])) cJSON_AddNumberToObject(e, "x_percentile", os[QTK_QUAMBA_OUT_X_PCT]);
            cJSON_AddNumberToObject(e, "y_max_over_median", os[QTK_QUAMBA_OUT_Y_RATIO]);
            if (isfinite(os[QTK_QUAMBA_OUT_Y_RATIO_HAD]))
                cJSON_AddNumberToObject(e, "y_max_over_median_rotated", os[QTK_QUAMBA_OUT_Y_RATIO_HAD]);
            cJSON_AddItemToArray(ol, e);
        }
    }
    size_t scored = 0;
    double t1 = qtk_now();
    if (!rc && (cuda ? qtk_quamba_cuda_perplexity(&q, ev, n_ev, pp->ctx, pp->stride, pp->max_windows, pp->batch, qppl, &scored)
                     : qtk_quamba_perplexity(&q, ev, n_ev, pp->ctx, pp->stride, pp->max_windows, pp->batch, qppl, &scored)) != QTK_OK)
        rc = qtk_cli_error("%s", qtk_last_error());
    if (!rc) {
        printf("  quamba %s W8A8 perplexity %.4f over %zu scored tokens, %.1f s on the %s (calibration %.1f s)\n",
               c->quantization.variant, *qppl, scored, qtk_now() - t1, cuda ? "GPU" : "CPU", t_cal);
        // saturated codes, per tensor (the reference's kernels would wrap or clip them silently)
        int over = qtk_quamba_saturation_report(&q, stdout);
        cJSON *sat = cJSON_AddObjectToObject(info, "saturated");
        for (int l = 0; l < q.cfg.n_layers; l++)
            for (int p = 0; p < qtk_quamba_npoints(&q.cfg); p++) {
                const size_t i = (size_t)l * QTK_QUAMBA_NPT + p;
                if (!q.sat[i]) continue;
                char key[96];
                snprintf(key, sizeof key, "layers.%d.%s", l, qtk_quamba_point_name(q.cfg.arch, p));
                cJSON_AddNumberToObject(sat, key, (double)q.sat[i] / (double)q.seen[i]);
            }
        if (over) printf("  %d tensors saturated more than %g of their codes (quantization.saturation_warn)\n", over, o.sat_warn);
        cJSON_AddStringToObject(info, "variant", c->quantization.variant);
        cJSON_AddStringToObject(info, "calibration", q.fingerprint);
        cJSON_AddNumberToObject(info, "calibration_seconds", t_cal);
        cJSON_AddNumberToObject(info, "percentile", qtk_quamba_uses_percentile(o.variant) ? o.alpha : 1.0);
        cJSON_AddBoolToObject(info, "hadamard", qtk_quamba_uses_hadamard(o.variant));
    }
    if (!rc && !dynamic) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/quantized", out);
        if (qtk_quamba_save(&q, dir) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
        else cJSON_AddStringToObject(info, "checkpoint", dir);
    }
    free(cal);
    free(ev);
    qtk_quamba_free(&q);
    qtk_mamba_free(&m);
    return rc;
}

// A language model's run (model.kind: mamba): the float model's perplexity on eval.perplexity, as `qtk perplexity`
// computes it, into the run folder (config.yaml, summary.json with the generic metrics, table.md). Quantizing
// a Mamba comes with Quamba; until then its runs have the one stage fp32.
static int run_lm(qtk_run_config *c, int force) {
    const char *out = c->output.dir;
    const qtk_cfg_perplexity *pp = &c->eval.perplexity;
    char path[4200];
    if (!pp->tokens && !pp->text)
        return qtk_cli_error("%s: a mamba run needs eval.perplexity.tokens (a token file) or .text (bytes)", c->name);
    if (qtk_cli_mkdir_p(out) != 0) return qtk_cli_error("cannot create output folder %s: %s", out, strerror(errno));
    if (run_finished(out) && !force) {
        printf("%s: already done (%s/summary.json); --force reruns it\n", c->name, out);
        return 0;
    }
    snprintf(path, sizeof path, "%s/search.ckpt", out); // none is written: a mamba run has no search to resume
    if (settle_config(c, out, path, force)) return 1;
    const int cuda = !strcmp(c->device, "cuda");
    if (cuda && qtk_cuda_device_count() == 0)
        return qtk_cli_error("device: cuda, but %s", qtk_cuda_built() ? "this machine has no CUDA device" : "this qtk was built without CUDA");
    const char *data = pp->tokens ? pp->tokens : pp->text;
    printf("%s: %s, perplexity on %s (context %d, stride %d) on the %s\n", c->name, c->model.checkpoint, data, pp->ctx,
           pp->stride, cuda ? (c->fp16 ? "GPU (fp16 projections)" : "GPU") : "CPU");
    double ppl, t0 = qtk_now();
    size_t scored;
    if (qtk_lm_eval(c->model.checkpoint, pp->tokens, pp->text, pp->ctx, pp->stride, pp->max_windows, pp->batch, cuda, c->fp16,
                    &ppl, &scored) != QTK_OK)
        return qtk_cli_error("%s", qtk_last_error());
    printf("  FP32 perplexity %.4f over %zu scored tokens, %.1f s\n", ppl, scored, qtk_now() - t0);
    const int quamba = !strcmp(c->quantization.method, "quamba");
    cJSON *qinfo = cJSON_CreateObject();
    double qppl = NAN;
    if (quamba && run_quamba(c, out, cuda, qinfo, &qppl)) {
        cJSON_Delete(qinfo);
        return 1;
    }
    const double secs = qtk_now() - t0;
    cJSON *sm = summary_head(c, "done", c->model.checkpoint);
    char method[64];
    snprintf(method, sizeof method, "quamba %s", c->quantization.variant ? c->quantization.variant : "");
    cJSON_AddStringToObject(sm, "method", quamba ? method : c->search.method);
    if (quamba) {
        cJSON_AddNumberToObject(sm, "w_bits", 8);
        cJSON_AddNumberToObject(sm, "a_bits", 8);
    }
    cJSON_AddStringToObject(sm, "device", c->device);
    if (cuda) cJSON_AddNumberToObject(sm, "fp16", c->fp16);
    cJSON_AddStringToObject(sm, "data", data);
    cJSON_AddNumberToObject(sm, "ctx", pp->ctx);
    cJSON_AddNumberToObject(sm, "stride", pp->stride);
    cJSON_AddNumberToObject(sm, "scored_tokens", (double)scored);
    cJSON_AddStringToObject(sm, "metric", "perplexity"); // lower is better
    cJSON *mets = cJSON_AddObjectToObject(sm, "metrics");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(mets, "fp32"), "perplexity", ppl);
    // the quantized model is the run's baseline stage (no search follows it)
    if (quamba) cJSON_AddNumberToObject(cJSON_AddObjectToObject(mets, "baseline"), "perplexity", qppl);
    if (quamba) cJSON_AddItemToObject(sm, "quamba", qinfo);
    else cJSON_Delete(qinfo);
    cJSON_AddNumberToObject(sm, "total_seconds", secs);
    snprintf(path, sizeof path, "%s/summary.json", out);
    qtk_status wst = qtk_write_json_atomic(path, sm);
    cJSON_Delete(sm);
    if (wst != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    snprintf(path, sizeof path, "%s/table.md", out);
    char row[4096];
    if (quamba)
        snprintf(row, sizeof row, "| run | model | method | data | context / stride | FP32 perplexity | W8A8 perplexity | status |\n"
                 "|---|---|---|---|---|---|---|---|\n| %s | %s | %s | %s | %d / %d | %.4f | %.4f | done |\n", c->name,
                 c->model.checkpoint, method, data, pp->ctx, pp->stride, ppl, qppl);
    else
        snprintf(row, sizeof row, "| run | model | data | context / stride | FP32 perplexity | status |\n|---|---|---|---|---|---|\n"
                 "| %s | %s | %s | %d / %d | %.4f | done |\n", c->name, c->model.checkpoint, data, pp->ctx, pp->stride, ppl);
    if (qtk_write_text_atomic(path, row) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    printf("wrote %s/{config.yaml, summary.json, table.md%s}\n", out,
           quamba && strcmp(c->quantization.variant, "dynamic") ? ", quantized/" : "");
    return 0;
}

int qtk_run_exec(qtk_run_config *c, const char *cfg_path, int force, const qtk_run_acc *fp_known) {
    const char *out = c->output.dir;
    if (!strcmp(c->model.kind, "mamba")) return run_lm(c, force);
    char path[4200], ckpt[4200];
    int rc = 1;
    qtk_run_ctx r = {0};
    run_state s = {.out = out, .sel_top1 = NAN, .sel_step = -1};
    int n_ranks = 1, ngpu = 0, use_nccl = 0, rank = 0; // the search's processes (plan_ranks)
    qtk_comm host = {0}, nccl = {0}, *comm = NULL;
    if (qtk_cli_mkdir_p(out) != 0) {
        qtk_cli_error("cannot create output folder %s: %s", out, strerror(errno));
        goto done;
    }
    if (run_finished(out) && !force) {
        printf("%s: already done (%s/summary.json); --force reruns it\n", c->name, out);
        rc = 0;
        goto done;
    }
    snprintf(ckpt, sizeof ckpt, "%s/search.ckpt", out);
    if (settle_config(c, out, ckpt, force)) goto done;
    { // temporaries of a writer that was killed before its rename (the folder is this run's alone)
        const char *outputs[] = {"search.ckpt", "quant.safetensors", "quant_selected.safetensors", "start.safetensors"};
        for (int i = 0; i < 4; i++) {
            snprintf(path, sizeof path, "%s/%s", out, outputs[i]);
            int n = qtk_file_remove_stale_tmp(path);
            if (n) printf("%s: removed %d stale temporar%s of %s (a killed write)\n", c->name, n, n == 1 ? "y" : "ies", path);
        }
    }
    if (force) {
        const char *stale[] = {"search.ckpt", "selected.json", "quant_selected.safetensors", "start.json",
                               "start.safetensors"};
        for (int i = 0; i < 5; i++) {
            snprintf(path, sizeof path, "%s/%s", out, stale[i]);
            unlink(path);
        }
    }
    int resuming = access(ckpt, F_OK) == 0;
    double t0 = qtk_now();
    // data-parallel search: fork the ranks before anything starts threads or CUDA
    if (plan_ranks(c, cfg_path, &n_ranks, &ngpu, &use_nccl)) goto done;
    if (n_ranks > 1) {
        fflush(stdout);
        fflush(stderr);
        if (qtk_comm_host_fork(n_ranks, &host) != QTK_OK) goto fail;
        rank = host.rank;
        comm = &host;
        if (rank) { // rank 0 speaks for all; the others' errors still reach stderr
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) dup2(fd, 1), close(fd);
        }
        if (ngpu && qtk_cuda_set_device(rank % ngpu) != QTK_OK) goto fail;
        // CPU ranks keep the single process's thread count (results do not depend on it: core/blas.h)
        printf("%s: the search over %d processes (%s%s), each on %d of the %d calibration groups or one more\n", c->name,
               n_ranks, use_nccl ? "NCCL" : "host transport",
               ngpu ? (n_ranks <= ngpu ? ", one GPU each" : ", sharing GPUs") : "", c->calibration.images / c->search.group / n_ranks,
               c->calibration.images / c->search.group);
    }
    if (qtk_run_ctx_open(&r, c, cfg_path, 1) != QTK_OK) goto fail;
    printf("%s: %s, W%dA%d, %d calibration images (seed %d, %s)%s\n", c->name, c->model.checkpoint, r.qc.w_bits, r.qc.a_bits,
           r.cal.n, c->seed, r.sample, resuming ? "; resuming the search from search.ckpt" : "");
    qtk_run_acc fp = {.top1 = NAN, .top5 = NAN}, base = fp, fin = fp, sel = fp;
    double t_cal = 0;
    // what the run recorded before its search (start.json, start.safetensors): a resumed run takes it
    // instead of evaluating and calibrating again
    char start_q[4200], start_j[4200];
    snprintf(start_q, sizeof start_q, "%s/start.safetensors", out);
    snprintf(start_j, sizeof start_j, "%s/start.json", out);
    if (resuming && load_start(start_j, r.sample, &fp, &base, &t_cal) == 0) {
        if (qtk_vit_quant_import(&r.qv, start_q) != QTK_OK || qtk_run_ctx_sync(&r) != QTK_OK) goto fail;
        printf("  resumed: FP32 and %s accuracy from start.json, the scales from start.safetensors\n",
               c->search.init ? "start" : "baseline");
    } else {
        if (fp_known) fp = *fp_known;
        else if (!rank && qtk_run_ctx_eval(&r, 0, "FP32 eval", &fp) != QTK_OK) goto fail;
        if (c->search.init) {
            if (qtk_vit_quant_import(&r.qv, c->search.init) != QTK_OK || qtk_run_ctx_sync(&r) != QTK_OK) goto fail;
            printf("  CPT-V: starting from the scales of %s (no calibration)\n", c->search.init);
        } else if (qtk_run_ctx_calibrate(&r, &t_cal) != QTK_OK) goto fail;
        if (!rank && qtk_run_ctx_eval(&r, 1, "baseline eval", &base) != QTK_OK) goto fail;
        if (!rank && save_start(&r, start_q, start_j, &fp, &base, t_cal) != QTK_OK) goto fail;
    }
    if (r.test.n)
        printf("  FP32 top-1 %.2f%% (top-5 %.2f%%), %s top-1 %.2f%% (top-5 %.2f%%), %d test images\n", fp.top1, fp.top5,
               c->search.init ? "start" : "baseline", base.top1, base.top5, r.test.n);
    qtk_evolq_result res = {0};
    res.loss_initial = res.loss_final = NAN;
    int complete = 1, total_steps = 0;
    s.r = &r;
    s.select = !strcmp(c->search.select_on, "val");
    s.validate_every = c->search.validate_every;
    if ((s.select || s.validate_every) && !r.test.n)
        printf("  note: no test set in the config: nothing to validate or select on\n");
    if (!strcmp(c->search.method, "evolq")) {
        qtk_model mm;
        if (qtk_run_ctx_model(&r, &mm) != QTK_OK) goto fail;
        r.qv.targets_float = !strcmp(c->search.fp_targets, "float");
        qtk_evolq_config ec;
        qtk_evolq_config_default(&ec, r.qc.w_bits);
        ec.passes = c->search.passes;
        ec.ea.cycles = c->search.cycles;
        ec.ea.population = c->search.population;
        ec.ea.tournament = c->search.tournament;
        if (c->search.eps > 0) ec.ea.eps = c->search.eps;
        ec.temperature = (float)c->search.temperature;
        ec.group = c->search.group;
        ec.batch = c->calibration.batch;
        ec.seed = (uint32_t)c->seed;
        ec.checkpoint = ckpt;
        ec.max_steps = c->search.max_steps;
        if (comm) {
            if (same_start(comm, &mm) != QTK_OK) goto fail;
            if (use_nccl) {
                if (qtk_comm_nccl_init(&host, rank % ngpu, &nccl) != QTK_OK) goto fail;
                comm = &nccl;
            }
            ec.comm = comm;
        }
        total_steps = ec.passes * r.m.cfg.depth;
        if (resuming && s.select) load_selection(&s);
        snprintf(path, sizeof path, "%s/log.jsonl", out);
        s.log = rank ? NULL : fopen(path, resuming ? "a" : "w");
        if (!rank && !s.log) {
            qtk_cli_error("cannot write %s: %s", path, strerror(errno));
            goto done;
        }
        qtk_progress_start(&s.prog, "search", total_steps);
        s.prog.every_s = 0; // a line per block step in logs
        qtk_status sst = qtk_evolq_search(&mm, r.cal.x, r.cal.n, &ec, rank ? NULL : on_step, &s, &res);
        if (comm) { // the other ranks are done here; rank 0 waits for them, then goes on alone
            qtk_comm_close(&nccl);
            int failed = 0;
            qtk_comm_host_join(&host, &failed);
            qtk_comm_close(&host);
            comm = NULL;
            if (rank) {
                rc = sst == QTK_OK ? 0 : 1;
                if (sst != QTK_OK) qtk_cli_error("search rank %d: %s", rank, qtk_last_error());
                goto done;
            }
            if (sst == QTK_OK && failed)
                sst = qtk_fail(QTK_ERR_IO, "%d of the search's %d processes failed (their errors are above)", failed,
                               n_ranks);
        }
        if (sst != QTK_OK) goto fail;
        qtk_progress_end(&s.prog);
        int done_steps = (res.resumed_from_step > 0 ? res.resumed_from_step : 0) + res.steps;
        complete = done_steps >= total_steps;
        printf("  search: infoNCE %.6f -> %.6f, %lld loss evaluations, %.0f image-forwards/s\n", res.loss_initial,
               res.loss_final, res.evals, res.input_forwards / (res.seconds > 0 ? res.seconds : 1));
        if (!complete)
            printf("  paused after %d of %d block steps (search.max_steps); run again to continue\n", done_steps, total_steps);
    }
    // the last iterate: evaluated and exported
    if (complete && qtk_run_ctx_eval(&r, 1, "final eval", &fin) != QTK_OK) goto fail;
    if (complete && r.test.n && !strcmp(c->search.method, "evolq"))
        printf("  Evol-Q (last iterate) top-1 %.2f%% (top-5 %.2f%%)\n", fin.top1, fin.top5);
    if (export_run(&s, "quant.safetensors", complete ? c->search.method : "partial") != QTK_OK) goto fail;
    // the reference's selected state, re-validated as the reference does
    if (complete && s.select && s.sel_step >= 0) {
        snprintf(path, sizeof path, "%s/quant_selected.safetensors", out);
        if (qtk_vit_quant_import(&r.qv, path) != QTK_OK || qtk_run_ctx_sync(&r) != QTK_OK ||
            qtk_run_ctx_eval(&r, 1, "selected eval", &sel) != QTK_OK)
            goto fail;
        printf("  Evol-Q selected on the TEST set (reference protocol): after block step %d, top-1 %.2f%%\n", s.sel_step + 1,
               sel.top1);
    }
    cJSON *sm = summary_head(c, complete ? "done" : "partial", r.m.cfg.name);
    cJSON_AddStringToObject(sm, "calibration_sample", r.sample);
    cJSON_AddNumberToObject(sm, "calibration_images", r.cal.n);
    cJSON_AddNumberToObject(sm, "w_bits", r.qc.w_bits);
    cJSON_AddNumberToObject(sm, "a_bits", r.qc.a_bits);
    cJSON_AddStringToObject(sm, "method", c->search.method);
    cJSON_AddStringToObject(sm, "device", c->device);
    cJSON_AddNumberToObject(sm, "search_ranks", n_ranks);
    if (n_ranks > 1) cJSON_AddStringToObject(sm, "search_transport", use_nccl ? "nccl" : "host");
    if (!strcmp(c->device, "cuda")) cJSON_AddStringToObject(sm, "gpu_gemm", c->gpu_gemm);
    if (c->search.init) cJSON_AddStringToObject(sm, "init", c->search.init);
    cJSON_AddStringToObject(sm, "selection", s.select ? "test-set selection" : "last iterate");
    if (r.test.n) {
        cJSON_AddNumberToObject(sm, "test_images", r.test.n);
        add_num(sm, "fp32_top1", fp.top1);
        add_num(sm, "fp32_top5", fp.top5);
        add_num(sm, "baseline_top1", base.top1);
        add_num(sm, "baseline_top5", base.top5);
        if (!strcmp(c->search.method, "evolq")) {
            add_num(sm, "searched_top1", fin.top1);
            add_num(sm, "searched_top5", fin.top5);
        }
        if (s.select && complete) {
            add_num(sm, "selected_top1", sel.top1);
            add_num(sm, "selected_top5", sel.top5);
            cJSON_AddNumberToObject(sm, "selected_step", s.sel_step); // as log.jsonl's "step" (from 0)
        }
    }
    if (r.test.n) { // the same numbers for readers that know no model: stage -> {metric: value}
        const struct {
            const char *stage;
            const qtk_run_acc *a;
            int on;
        } st[] = {{"fp32", &fp, 1}, {"baseline", &base, 1}, {"searched", &fin, !strcmp(c->search.method, "evolq")},
                  {"selected", &sel, s.select && complete}};
        cJSON_AddStringToObject(sm, "metric", "top1"); // the one tables show; higher is better
        cJSON *ms = cJSON_AddObjectToObject(sm, "metrics");
        for (size_t i = 0; ms && i < sizeof st / sizeof *st; i++) {
            if (!st[i].on) continue;
            cJSON *o = cJSON_AddObjectToObject(ms, st[i].stage);
            add_num(o, "top1", st[i].a->top1);
            add_num(o, "top5", st[i].a->top5);
        }
    }
    add_num(sm, "loss_initial", res.loss_initial);
    add_num(sm, "loss_final", res.loss_final);
    cJSON_AddNumberToObject(sm, "loss_evaluations", (double)res.evals);
    cJSON_AddNumberToObject(sm, "block_steps", total_steps);
    cJSON_AddNumberToObject(sm, "calibration_seconds", t_cal);
    cJSON_AddNumberToObject(sm, "search_seconds", res.seconds);
    cJSON_AddNumberToObject(sm, "validations", s.validations);
    cJSON_AddNumberToObject(sm, "validation_seconds", s.val_seconds);
    cJSON_AddNumberToObject(sm, "total_seconds", qtk_now() - t0);
    snprintf(path, sizeof path, "%s/summary.json", out);
    qtk_status wst = qtk_write_json_atomic(path, sm);
    cJSON_Delete(sm);
    if (wst != QTK_OK) goto fail;
    snprintf(path, sizeof path, "%s/table.md", out);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "| run | bits | FP32 | baseline | Evol-Q | %sinfoNCE | status |\n|---|---|---|---|---|%s---|---|\n",
                s.select ? "selected on test set | " : "", s.select ? "---|" : "");
        fprintf(f, "| %s | W%dA%d | %.2f | %.2f | %.2f | ", c->name, r.qc.w_bits, r.qc.a_bits, fp.top1, base.top1, fin.top1);
        if (s.select) fprintf(f, "%.2f (test-set selection, after block step %d) | ", sel.top1, s.sel_step + 1);
        fprintf(f, "%.5f -> %.5f | %s |\n", res.loss_initial, res.loss_final, complete ? "done" : "partial");
        fclose(f);
    }
    printf("wrote %s/{config.yaml, log.jsonl, summary.json, table.md, quant.safetensors%s}\n", out,
           s.select ? ", quant_selected.safetensors" : "");
    if (s.log && qtk_plot_available()) {
        fclose(s.log);
        s.log = NULL;
        if (qtk_plot_run_loss(out) == 0) printf("plotted %s/loss.png\n", out);
        else fprintf(stderr, "qtk: warning: no plot: %s\n", qtk_last_error());
    }
    rc = 0;
    goto done;
fail:
    if (s.prog.tty) printf("\n");
    qtk_cli_error("%s", qtk_last_error());
done:
    if (comm) { // a failure before the ranks' end: close our side, and rank 0 reaps the others
        int failed;
        qtk_comm_close(&nccl);
        qtk_comm_host_join(&host, &failed);
        qtk_comm_close(&host);
    }
    if (s.log) fclose(s.log);
    if (r.cfg) qtk_run_ctx_close(&r);
    return rc;
}
