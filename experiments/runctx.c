#include "runctx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/qtk.h"
#include "../datasets/folder.h"
#include "../datasets/idx.h"
#include "../datasets/sampler.h"
#include "../core/cuda/qtk_cuda.h"
#include "../vision/vit_cuda.h"
#include "progress.h"

static void data_free(qtk_run_data *d) {
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

// Labels index the logits: each one must be a class of the model (what = the file they came from).
static qtk_status check_labels(const char *what, const int *y, int n, int n_classes) {
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= n_classes)
            return qtk_fail(QTK_ERR_FORMAT, "%s: label %d (image %d) is not a class of the model (0..%d)", what, y[i], i,
                            n_classes - 1);
    return QTK_OK;
}

// A tensor file: "images" (N, C, H, W) and optionally "labels" (N).
static qtk_status load_tensor_set(const char *path, const qtk_vit *m, qtk_run_data *d) {
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
            if (r == QTK_OK && !(d->y = malloc((size_t)(d->n ? d->n : 1) * sizeof *d->y)))
                r = qtk_fail(QTK_ERR_NOMEM, "%s: labels: out of memory", path);
            // checked as floats: casting NaN or 1e30 to int is undefined
            for (int i = 0; r == QTK_OK && i < d->n; i++) {
                if (!(f[i] >= 0 && f[i] < (float)c->n_classes && f[i] == floorf(f[i])))
                    r = qtk_fail(QTK_ERR_FORMAT, "%s: labels[%d] = %g is not a class index in 0..%d (the model has %d classes)",
                                 path, i, (double)f[i], c->n_classes - 1, c->n_classes);
                else d->y[i] = (int)f[i];
            }
            qtk_aligned_free(f);
        }
    }
    qtk_st_close(&st);
    return r;
}

// Fashion-MNIST IDX: pixel / 255, normalized with the model's mean/std.
static qtk_status load_idx_set(const char *root, const char *split, const qtk_vit *m, const uint32_t *idx, int n,
                               qtk_run_data *d) {
    char pi[4096], pl[4096];
    snprintf(pi, sizeof pi, "%s/%s-images-idx3-ubyte", root, split);
    snprintf(pl, sizeof pl, "%s/%s-labels-idx1-ubyte", root, split);
    qtk_idx im, lb;
    QTK_TRY(qtk_idx_read(pi, &im));
    qtk_status r = qtk_idx_read(pl, &lb);
    if (r == QTK_OK && (im.ndim != 3 || im.dims[1] != m->cfg.img_size || im.dims[2] != m->cfg.img_size || m->cfg.in_chans != 1))
        r = qtk_fail(QTK_ERR_FORMAT, "%s: %dx%d single-channel images do not fit the model (%d channels, %d pixels)", pi,
                     im.dims[1], im.dims[2], m->cfg.in_chans, m->cfg.img_size);
    if (r == QTK_OK && im.dims[0] == 0) r = qtk_fail(QTK_ERR_FORMAT, "%s: no images", pi);
    if (r == QTK_OK && (lb.ndim != 1 || lb.dims[0] != im.dims[0]))
        r = qtk_fail(QTK_ERR_FORMAT, "%s: %d labels of rank %d for the %d images of %s (expected rank 1, one per image)", pl,
                     lb.dims[0], lb.ndim, im.dims[0], pi);
    for (size_t i = 0; r == QTK_OK && i < lb.n; i++)
        if (lb.data[i] >= m->cfg.n_classes)
            r = qtk_fail(QTK_ERR_FORMAT, "%s: label %d (image %zu) is not a class of the model (0..%d)", pl, lb.data[i], i,
                         m->cfg.n_classes - 1);
    if (r == QTK_OK) {
        int count = idx ? n : (n > 0 && n < im.dims[0] ? n : im.dims[0]);
        // a subset of the test split is spread over the whole file (it is ordered by class)
        size_t stride = idx ? 1 : (size_t)im.dims[0] / (size_t)count;
        size_t per = (size_t)im.dims[1] * im.dims[2];
        d->x = malloc((size_t)(count ? count : 1) * per * sizeof *d->x);
        d->y = malloc((size_t)(count ? count : 1) * sizeof *d->y);
        if (!d->x || !d->y) {
            qtk_idx_free(&lb);
            qtk_idx_free(&im);
            return qtk_fail(QTK_ERR_NOMEM, "%s: %d images: out of memory", pi, count);
        }
        d->n = count;
        float mean = m->cfg.mean[0], sd = m->cfg.std[0];
        for (int i = 0; i < count; i++) {
            size_t s = idx ? idx[i] : (size_t)i * stride;
            for (size_t k = 0; k < per; k++) d->x[i * per + k] = ((float)im.data[s * per + k] / 255.0f - mean) / sd;
            d->y[i] = lb.data[s];
        }
    }
    qtk_idx_free(&lb);
    qtk_idx_free(&im);
    return r;
}

static qtk_transform model_transform(const qtk_vit *m) {
    const qtk_vit_config *c = &m->cfg;
    qtk_transform t = {c->img_size, c->crop_pct, {c->mean[0], c->mean[1], c->mean[2]}, {c->std[0], c->std[1], c->std[2]}, 0};
    return t;
}

// The calibration sample: `images` indices of `n_all` drawn with the seed.
static qtk_status sample(qtk_run_ctx *r, const char *what, size_t n_all, uint32_t *idx) {
    const qtk_run_config *c = r->cfg;
    if (n_all < (size_t)c->calibration.images)
        return qtk_fail(QTK_ERR_ARG, "%s: %zu images, calibration.images is %d", what, n_all, c->calibration.images);
    QTK_TRY(qtk_sample_indices((uint32_t)n_all, (uint32_t)c->calibration.images, (uint64_t)c->seed, idx));
    qtk_indices_fingerprint(idx, (size_t)c->calibration.images, r->sample);
    return QTK_OK;
}

static qtk_status load_fashion(qtk_run_ctx *r, uint32_t *idx) {
    const qtk_run_config *c = r->cfg;
    qtk_status st = QTK_OK;
    if (idx) {
        char tr[4200];
        snprintf(tr, sizeof tr, "%s/train-images-idx3-ubyte", c->data.root);
        qtk_idx probe;
        QTK_TRY(qtk_idx_read(tr, &probe));
        st = sample(r, tr, (size_t)probe.dims[0], idx);
        qtk_idx_free(&probe);
        if (st == QTK_OK) st = load_idx_set(c->data.root, "train", &r->m, idx, c->calibration.images, &r->cal);
    }
    if (st == QTK_OK) st = load_idx_set(c->data.root, "t10k", &r->m, NULL, c->data.test_images, &r->test);
    return st;
}

static qtk_status load_tensors(qtk_run_ctx *r, uint32_t *idx) {
    const qtk_run_config *c = r->cfg;
    qtk_status st = QTK_OK;
    if (idx) {
        qtk_run_data all = {0};
        st = load_tensor_set(c->data.root, &r->m, &all);
        if (st == QTK_OK) st = sample(r, c->data.root, (size_t)all.n, idx);
        if (st == QTK_OK) {
            size_t in = (size_t)r->m.cfg.in_chans * r->m.cfg.img_size * r->m.cfg.img_size;
            r->cal.n = c->calibration.images;
            r->cal.x = malloc((size_t)r->cal.n * in * sizeof *r->cal.x);
            if (!r->cal.x) st = qtk_fail(QTK_ERR_NOMEM, "calibration images: out of memory");
            for (int i = 0; st == QTK_OK && i < r->cal.n; i++)
                memcpy(r->cal.x + (size_t)i * in, all.x + (size_t)idx[i] * in, in * sizeof *r->cal.x);
        }
        data_free(&all);
    }
    if (st == QTK_OK && c->data.test) st = load_tensor_set(c->data.test, &r->m, &r->test);
    if (st == QTK_OK && r->test.n && !r->test.y) st = qtk_fail(QTK_ERR_FORMAT, "%s: no \"labels\" for evaluation", c->data.test);
    return st;
}

static qtk_status load_folders(qtk_run_ctx *r, uint32_t *idx) {
    const qtk_run_config *c = r->cfg;
    qtk_transform tr = model_transform(&r->m);
    qtk_bad_list bad;
    size_t got = 0;
    int hit;
    qtk_status st = QTK_OK;
    if (idx) {
        qtk_image_folder f;
        QTK_TRY(qtk_folder_open(&f, c->data.root, c->data.class_index));
        st = sample(r, c->data.root, f.n, idx);
        if (st == QTK_OK)
            st = qtk_folder_cached(&f, idx, (size_t)c->calibration.images, &tr,
                                   strcmp(c->data.on_bad_image, "fail") ? QTK_BAD_SKIP : QTK_BAD_FAIL, c->data.cache, &r->cal.x,
                                   &r->cal.y, &got, &hit, &bad);
        if (st == QTK_OK) {
            r->cal.n = (int)got;
            if ((int)got != c->calibration.images)
                st = qtk_fail(QTK_ERR_FORMAT, "%s: %zu of %d calibration images unreadable (skipped); the search needs whole "
                              "groups: choose another seed or fix the files", c->data.root, bad.n, c->calibration.images);
            qtk_bad_list_free(&bad);
        }
        qtk_folder_free(&f);
    }
    if (st != QTK_OK || !c->data.test) return st;
    qtk_image_folder tf;
    QTK_TRY(qtk_folder_open(&tf, c->data.test, c->data.class_index));
    size_t n = c->data.test_images > 0 && (size_t)c->data.test_images < tf.n ? (size_t)c->data.test_images : tf.n;
    uint32_t *all = malloc((n ? n : 1) * sizeof *all);
    if (!all) st = qtk_fail(QTK_ERR_NOMEM, "test set: out of memory");
    for (size_t i = 0; all && i < n; i++) all[i] = (uint32_t)(i * (tf.n / n)); // spread over the classes
    if (st == QTK_OK) st = qtk_folder_cached(&tf, all, n, &tr, QTK_BAD_SKIP, NULL, &r->test.x, &r->test.y, &got, &hit, &bad);
    if (st == QTK_OK) {
        r->test.n = (int)got;
        st = check_labels(c->data.test, r->test.y, r->test.n, r->m.cfg.n_classes);
        if (bad.n) fprintf(stderr, "qtk: warning: %s: %zu unreadable test images skipped\n", c->data.test, bad.n);
        qtk_bad_list_free(&bad);
    }
    free(all);
    qtk_folder_free(&tf);
    return st;
}

// want_cal: the calibration sample too (else only the evaluation set)
static qtk_status load_data(qtk_run_ctx *r, int want_cal) {
    const qtk_run_config *c = r->cfg;
    uint32_t *idx = want_cal ? malloc((size_t)c->calibration.images * sizeof *idx) : NULL;
    if (want_cal && !idx) return qtk_fail(QTK_ERR_NOMEM, "calibration sample: out of memory");
    qtk_status st = !strcmp(c->data.format, "fashion-mnist") ? load_fashion(r, idx)
                  : !strcmp(c->data.format, "tensor")        ? load_tensors(r, idx)
                                                             : load_folders(r, idx);
    free(idx);
    return st;
}

qtk_status qtk_run_ctx_open(qtk_run_ctx *r, qtk_run_config *c, const char *cfg_path, int want_cal) {
    memset(r, 0, sizeof *r);
    if (strcmp(c->model.kind, "vit")) // calibrate / eval quantize; a mamba has no quantizer here yet
        return qtk_fail(QTK_ERR_UNSUPPORTED, "%s: a %s model has no quantizer yet (Quamba comes next); qtk run evaluates "
                        "its float model", cfg_path, c->model.kind);
    r->cfg = c;
    r->cfg_path = cfg_path;
    QTK_TRY(qtk_vit_load(&r->m, c->model.checkpoint, c->model.desc && *c->model.desc ? c->model.desc : NULL));
    qtk_status st = load_data(r, want_cal);
    qtk_vit_qconfig_default(&r->qc);
    r->qc.w_bits = c->quantization.w_bits;
    r->qc.a_bits = c->quantization.a_bits;
    r->qc.bias_corr = c->quantization.bias_corr;
    r->qc.int_layernorm = c->quantization.int_layernorm;
    if (st == QTK_OK) st = qtk_vit_plan_init(&r->plan, &r->m, c->calibration.batch);
    if (st == QTK_OK) st = qtk_vit_quant_init(&r->qv, &r->m, &r->qc);
    if (st == QTK_OK) r->qv.reg.export_weights = c->output.weights;
    for (unsigned i = 0; st == QTK_OK && i < c->quantization.off_count; i++)
        if (qtk_qreg_set_enabled(&r->qv.reg, c->quantization.off[i], 0) == 0)
            st = qtk_fail(QTK_ERR_ARG, "%s: quantization.off: \"%s\" matches no quantizer", cfg_path, c->quantization.off[i]);
    if (st == QTK_OK) {
        st = qtk_vit_quant_targets(&r->qv, (const char *const *)c->search.targets, (int)c->search.targets_count);
        if (st != QTK_OK) st = qtk_fail(st, "%s: search.targets: %s", cfg_path, qtk_last_error());
    }
    if (st == QTK_OK && !strcmp(c->device, "cuda")) {
        if (qtk_cuda_device_count() == 0)
            st = qtk_fail(QTK_ERR_UNSUPPORTED, "%s: device: cuda, but %s", cfg_path,
                          qtk_cuda_built() ? "this machine has no CUDA device" : "this qtk was built without CUDA");
        else {
            // a few hundred images per GPU forward where memory allows (evaluation, the search's set)
            int B = c->calibration.batch * (512 / c->calibration.batch > 1 ? 512 / c->calibration.batch : 1);
            qtk_vit_gemm gemm = QTK_VIT_GEMM_FP32;
            st = qtk_vit_gemm_parse(c->gpu_gemm, &gemm);
            if (st == QTK_OK) st = qtk_vit_cuda_create(&r->gpu, &r->m, B, gemm);
            if (st == QTK_ERR_NOMEM && B > c->calibration.batch)
                st = qtk_vit_cuda_create(&r->gpu, &r->m, c->calibration.batch, gemm);
        }
    }
    // the quantized model behind the seam, on the config's device: calibration, evaluation and the search use it
    if (st == QTK_OK) st = r->gpu ? qtk_vit_quant_model_cuda(&r->qv, r->gpu, &r->mm) : qtk_vit_quant_model(&r->qv, &r->plan, &r->mm);
    if (st != QTK_OK) qtk_run_ctx_close(r);
    return st;
}

void qtk_run_ctx_close(qtk_run_ctx *r) {
    qtk_vit_cuda_destroy(r->gpu);
    r->gpu = NULL;
    data_free(&r->cal);
    data_free(&r->test);
    qtk_vit_quant_free(&r->qv);
    qtk_vit_plan_free(&r->plan);
    qtk_vit_free(&r->m);
    r->cfg = NULL;
}

static void calib_progress(void *ctx, int done, int total) {
    (void)total;
    qtk_progress_update(ctx, done, NULL);
}

qtk_status qtk_run_ctx_calibrate(qtk_run_ctx *r, double *seconds) {
    int batch = r->cfg->calibration.batch;
    qtk_progress p;
    qtk_progress_start(&p, "calibration", (long long)(r->cal.n / batch) * batch);
    r->qv.progress = calib_progress;
    r->qv.progress_ctx = &p;
    qtk_status st = r->mm.calibrate(&r->mm, r->cal.x, r->cal.n, batch);
    r->qv.progress = NULL;
    double s = qtk_progress_end(&p);
    if (seconds) *seconds = s;
    return st;
}

qtk_status qtk_run_ctx_sync(qtk_run_ctx *r) { return r->gpu ? qtk_vit_cuda_set_quant(r->gpu, &r->qv) : QTK_OK; }

qtk_status qtk_run_ctx_model(qtk_run_ctx *r, qtk_model *mm) {
    *mm = r->mm;
    return QTK_OK;
}

qtk_status qtk_run_ctx_eval_logits(qtk_run_ctx *r, int quantized, const char *label, qtk_run_acc *acc, float *out) {
    memset(acc, 0, sizeof *acc);
    acc->top1 = acc->top5 = NAN;
    const qtk_run_data *d = &r->test;
    if (!d->n) return QTK_OK;
    int NC = r->m.cfg.n_classes, batch = r->cfg->calibration.batch, c1 = 0, c5 = 0;
    size_t in = (size_t)r->m.cfg.in_chans * r->m.cfg.img_size * r->m.cfg.img_size;
    float *logits = malloc((size_t)batch * NC * sizeof *logits);
    if (!logits) return qtk_fail(QTK_ERR_NOMEM, "evaluation: out of memory");
    qtk_progress p;
    qtk_progress_start(&p, label, d->n);
    qtk_status st = QTK_OK;
    for (int i = 0; i < d->n && st == QTK_OK; i += batch) {
        int b = d->n - i < batch ? d->n - i : batch;
        st = (quantized ? r->mm.forward : r->mm.forward_fp)(&r->mm, d->x + (size_t)i * in, b, logits);
        if (st == QTK_OK && out) memcpy(out + (size_t)i * NC, logits, (size_t)b * NC * sizeof *logits);
        for (int k = 0; st == QTK_OK && k < b; k++) {
            // rank of the true class; equal logits rank the lower class first (as argmax does)
            const float *l = logits + (size_t)k * NC;
            int y = d->y[i + k], above = 0;
            for (int j = 0; j < NC; j++) above += l[j] > l[y] || (l[j] == l[y] && j < y);
            c1 += above == 0;
            c5 += above < 5;
        }
        if (st == QTK_OK) qtk_progress_update(&p, i + b, NULL);
    }
    free(logits);
    acc->seconds = qtk_progress_end(&p);
    acc->images = d->n;
    acc->top1 = 100.0 * c1 / d->n;
    acc->top5 = 100.0 * c5 / d->n;
    return st;
}

qtk_status qtk_run_ctx_eval(qtk_run_ctx *r, int quantized, const char *label, qtk_run_acc *acc) {
    return qtk_run_ctx_eval_logits(r, quantized, label, acc, NULL);
}
