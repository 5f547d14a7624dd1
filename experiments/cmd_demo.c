// qtk demo: the core quantizer library end to end on a synthetic linear layer.
//
// Y = X W^T with W (256, 1536) Gaussian and X (512, 1536) whose 8 outlier
// input channels are 30x larger, as in LLM/SSM activations. For each weight
// bit width and method it fake-quantizes W (min-max observer) and X (8-bit,
// OMSE observer), runs the product with OpenBLAS and reports the output SQNR.
// "+ Hadamard" rotates both sides first (X H^N_TOK/sqrt(n), W H^N_TOK/sqrt(n): the
// product is unchanged in exact arithmetic), which spreads the outliers.
// 1536 = 12 * 128 exercises the non-power-of-two transform.
#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/blas.h"
#include "../core/qtk.h"
#include "../datasets/idx.h"
#include "../datasets/sampler.h"
#include "cli.h"

enum { N_TOK = 512, N_IN = 1536, N_OUT = 256, GROUP = 128, N_OUTLIERS = 8 };

typedef struct {
    const char *name;
    qtk_granularity gran;
    int hadamard;
} method;

static const method methods[] = {
    {"per-tensor", QTK_PER_TENSOR, 0},
    {"per-channel", QTK_PER_CHANNEL, 0},
    {"per-group-128", QTK_PER_GROUP, 0},
    {"per-channel + Hadamard", QTK_PER_CHANNEL, 1},
};
static const int wbits[] = {8, 4, 3, 2};

// Weight params from a min-max observer with the method's granularity.
static qtk_status weight_params(const float *W, int bits, qtk_granularity gran, qtk_qparams *p) {
    int64_t shape[2] = {N_OUT, N_IN};
    if (gran == QTK_PER_GROUP) {
        // min-max per group of GROUP along the input axis: view W as (N_OUT*N_IN/GROUP, GROUP) rows
        int64_t gshape[2] = {(int64_t)N_OUT * N_IN / GROUP, GROUP};
        qtk_observer ob;
        QTK_TRY(qtk_observer_init(&ob, QTK_OBS_MINMAX, bits, false, true, 0));
        qtk_status r = qtk_observer_update(&ob, W, 2, gshape);
        qtk_qparams rows;
        if (r == QTK_OK) r = qtk_observer_params(&ob, NULL, 2, gshape, &rows);
        qtk_observer_free(&ob);
        QTK_TRY(r);
        r = qtk_qparams_init(p, bits, false, false, QTK_PER_GROUP, 1, GROUP, rows.n);
        if (r == QTK_OK) {
            memcpy(p->scale, rows.scale, rows.n * sizeof(float));
            memcpy(p->zero, rows.zero, rows.n * sizeof(float));
        }
        qtk_qparams_free(&rows);
        return r;
    }
    qtk_observer ob;
    QTK_TRY(qtk_observer_init(&ob, QTK_OBS_MINMAX, bits, false, gran == QTK_PER_CHANNEL, 0));
    qtk_status r = qtk_observer_update(&ob, W, 2, shape);
    if (r == QTK_OK) r = qtk_observer_params(&ob, NULL, 2, shape, p);
    qtk_observer_free(&ob);
    return r;
}

static double sqnr_db(const float *ref, const float *y, size_t n) {
    double s = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        s += (double)ref[i] * ref[i];
        e += ((double)ref[i] - y[i]) * ((double)ref[i] - y[i]);
    }
    return e > 0 ? 10.0 * log10(s / e) : INFINITY;
}

// Part 2, on the built-in data set: 1,000 Fashion-MNIST training images
// (seeded sample) as an activation tensor in [0, 1], quantized per tensor by
// each observer at 8..2 bits; SQNR of the images. Returns 1 if it ran.
static int demo_fashion(unsigned long long seed, cJSON *summary, FILE *table) {
    const char *cache = getenv("QTK_CACHE") ? getenv("QTK_CACHE") : "build/cache";
    char path[4096];
    snprintf(path, sizeof path, "%s/fashion-mnist/train-images-idx3-ubyte", cache);
    qtk_idx im;
    if (qtk_idx_read(path, &im) != QTK_OK) {
        printf("\n(Fashion-MNIST not found in %s/fashion-mnist: run make fashion-mnist for the second table)\n", cache);
        return 0;
    }
    enum { N = 1000 };
    uint32_t idx[N];
    char fp[16];
    if (qtk_sample_indices((uint32_t)im.dims[0], N, seed, idx) != QTK_OK) {
        qtk_idx_free(&im);
        return 0;
    }
    qtk_indices_fingerprint(idx, N, fp);
    float *x = qtk_aligned_alloc(sizeof(float) * N * 784), *y = qtk_aligned_alloc(sizeof(float) * N * 784);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 784; k++) x[(size_t)i * 784 + k] = (float)im.data[(size_t)idx[i] * 784 + k] / 255.0f;
    int64_t shape[2] = {N, 784};
    const qtk_observer_kind kinds[] = {QTK_OBS_MINMAX, QTK_OBS_PERCENTILE, QTK_OBS_OMSE};
    const int bits[] = {8, 4, 3, 2};
    cJSON *rows = cJSON_AddArrayToObject(summary, "fashion_mnist_observers");
    cJSON_AddStringToObject(summary, "fashion_mnist_sample", fp);
    for (int pass = 0; pass < 2; pass++) {
        FILE *o = pass ? table : stdout;
        fprintf(o, "\n## Observers on 1,000 Fashion-MNIST training images (seed %llu, sample %s): SQNR (dB)\n\n", seed, fp);
        fprintf(o, "| observer | 8 bits | 4 bits | 3 bits | 2 bits |\n|---|---|---|---|---|\n");
    }
    for (int k = 0; k < 3; k++) {
        double sq[4];
        for (int b = 0; b < 4; b++) {
            qtk_observer ob;
            qtk_qparams p;
            sq[b] = NAN;
            if (qtk_observer_init(&ob, kinds[k], bits[b], false, false, 0) != QTK_OK) continue;
            for (int batch = 0; batch < 10; batch++) // ten batches of 100, as a calibration would stream them
                qtk_observer_update(&ob, x + (size_t)batch * 100 * 784, 2, (int64_t[]){100, 784});
            if (qtk_observer_params(&ob, x + 900 * 784, 2, (int64_t[]){100, 784}, &p) == QTK_OK &&
                qtk_fake_quant(&p, x, y, 2, shape) == QTK_OK)
                sq[b] = sqnr_db(x, y, (size_t)N * 784);
            qtk_qparams_free(&p);
            qtk_observer_free(&ob);
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "observer", qtk_observer_kind_name(kinds[k]));
            cJSON_AddNumberToObject(r, "bits", bits[b]);
            cJSON_AddNumberToObject(r, "sqnr_db", round(sq[b] * 100) / 100);
            cJSON_AddItemToArray(rows, r);
        }
        for (int pass = 0; pass < 2; pass++)
            fprintf(pass ? table : stdout, "| %s | %.2f | %.2f | %.2f | %.2f |\n", qtk_observer_kind_name(kinds[k]), sq[0],
                    sq[1], sq[2], sq[3]);
    }
    qtk_aligned_free(x);
    qtk_aligned_free(y);
    qtk_idx_free(&im);
    return 1;
}

int qtk_demo_core(const char *out_dir, unsigned long long seed) {
    if (qtk_cli_mkdir_p(out_dir) != 0) return qtk_cli_error("cannot create output folder %s: %s", out_dir, strerror(errno));

    float *X = qtk_aligned_alloc(sizeof(float) * N_TOK * N_IN), *W = qtk_aligned_alloc(sizeof(float) * N_OUT * N_IN);
    float *Xq = qtk_aligned_alloc(sizeof(float) * N_TOK * N_IN), *Wq = qtk_aligned_alloc(sizeof(float) * N_OUT * N_IN);
    float *Xr = qtk_aligned_alloc(sizeof(float) * N_TOK * N_IN), *Wr = qtk_aligned_alloc(sizeof(float) * N_OUT * N_IN);
    float *Y = qtk_aligned_alloc(sizeof(float) * N_TOK * N_OUT), *Yq = qtk_aligned_alloc(sizeof(float) * N_TOK * N_OUT);
    if (!X || !W || !Xq || !Wq || !Xr || !Wr || !Y || !Yq) return qtk_cli_error("out of memory");

    qtk_rng rng;
    qtk_rng_seed(&rng, seed, 0);
    for (size_t i = 0; i < (size_t)N_OUT * N_IN; i++) W[i] = 0.02f * qtk_rng_normal(&rng);
    int outlier[N_OUTLIERS];
    for (int k = 0; k < N_OUTLIERS; k++) outlier[k] = (int)qtk_rng_below(&rng, N_IN);
    for (size_t t = 0; t < N_TOK; t++)
        for (size_t i = 0; i < N_IN; i++) X[t * N_IN + i] = qtk_rng_normal(&rng);
    for (size_t t = 0; t < N_TOK; t++)
        for (int k = 0; k < N_OUTLIERS; k++) X[t * N_IN + outlier[k]] *= 30.0f;
    // Y = X @ W.N_TOK
    qtk_sgemm(false, true, N_TOK, N_OUT, N_IN, 1.0f, X, N_IN, W, N_IN, 0.0f, Y, N_OUT);

    memcpy(Xr, X, sizeof(float) * N_TOK * N_IN);
    memcpy(Wr, W, sizeof(float) * N_OUT * N_IN);
    qtk_status st = qtk_hadamard_rows(Xr, N_TOK, N_IN);
    if (st == QTK_OK) st = qtk_hadamard_fuse_input(Wr, N_OUT, N_IN);
    if (st != QTK_OK) return qtk_cli_error("%s", qtk_last_error());

    int64_t xshape[2] = {N_TOK, N_IN}, wshape[2] = {N_OUT, N_IN};
    size_t nm = sizeof methods / sizeof *methods, nb = sizeof wbits / sizeof *wbits;
    double sq[4][4], sq_w_only[4][4];
    qtk_qparams keep_w = {0}, keep_x = {0};
    cJSON *summary = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(summary, "results");
    cJSON_AddStringToObject(summary, "job", "core-demo");
    cJSON_AddNumberToObject(summary, "seed", (double)seed);
    cJSON_AddStringToObject(summary, "qtk_version", QTK_VERSION);

    for (size_t m = 0; m < nm; m++) {
        const float *Xs = methods[m].hadamard ? Xr : X, *Ws = methods[m].hadamard ? Wr : W;
        // activations: 8-bit unsigned, per tensor, OMSE (the Evol-Q baseline's quantizer)
        qtk_observer ox;
        qtk_qparams px;
        st = qtk_observer_init(&ox, QTK_OBS_OMSE, 8, false, false, 0);
        if (st == QTK_OK) st = qtk_observer_update(&ox, Xs, 2, xshape);
        if (st == QTK_OK) st = qtk_observer_params(&ox, Xs, 2, xshape, &px);
        qtk_observer_free(&ox);
        if (st == QTK_OK) st = qtk_fake_quant(&px, Xs, Xq, 2, xshape);
        if (st != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
        for (size_t b = 0; b < nb; b++) {
            qtk_qparams pw;
            st = weight_params(Ws, wbits[b], methods[m].gran, &pw);
            if (st == QTK_OK) st = qtk_fake_quant(&pw, Ws, Wq, 2, wshape);
            if (st != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
            qtk_sgemm(false, true, N_TOK, N_OUT, N_IN, 1.0f, Xs, N_IN, Wq, N_IN, 0.0f, Yq, N_OUT);
            sq_w_only[m][b] = sqnr_db(Y, Yq, (size_t)N_TOK * N_OUT);
            qtk_sgemm(false, true, N_TOK, N_OUT, N_IN, 1.0f, Xq, N_IN, Wq, N_IN, 0.0f, Yq, N_OUT);
            sq[m][b] = sqnr_db(Y, Yq, (size_t)N_TOK * N_OUT);
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "method", methods[m].name);
            cJSON_AddNumberToObject(r, "w_bits", wbits[b]);
            cJSON_AddNumberToObject(r, "a_bits", 8);
            cJSON_AddNumberToObject(r, "sqnr_db_w_only", round(sq_w_only[m][b] * 100) / 100);
            cJSON_AddNumberToObject(r, "sqnr_db_w_and_a8", round(sq[m][b] * 100) / 100);
            cJSON_AddItemToArray(rows, r);
            if (methods[m].hadamard && wbits[b] == 4) keep_w = pw;
            else qtk_qparams_free(&pw);
        }
        if (methods[m].hadamard) keep_x = px;
        else qtk_qparams_free(&px);
    }

    char path[4200];
    snprintf(path, sizeof path, "%s/table.md", out_dir);
    FILE *f = fopen(path, "w");
    if (!f) return qtk_cli_error("cannot write %s: %s", path, strerror(errno));
    for (int pass = 0; pass < 2; pass++) {
        FILE *o = pass ? f : stdout;
        fprintf(o, "# qtk core demo: output SQNR (dB) of Y = X W^T, W %dx%d, X %dx%d with %d outlier channels (seed %llu)\n\n",
                N_OUT, N_IN, N_TOK, N_IN, N_OUTLIERS, seed);
        fprintf(o, "weights: unsigned asymmetric min-max; activations: 8-bit per-tensor OMSE. Higher is better.\n\n");
        fprintf(o, "| method | W8 | W4 | W3 | W2 | W8A8 | W4A8 | W3A8 | W2A8 |\n|---|---|---|---|---|---|---|---|---|\n");
        for (size_t m = 0; m < nm; m++) {
            fprintf(o, "| %s |", methods[m].name);
            for (size_t b = 0; b < nb; b++) fprintf(o, " %.2f |", sq_w_only[m][b]);
            for (size_t b = 0; b < nb; b++) fprintf(o, " %.2f |", sq[m][b]);
            fprintf(o, "\n");
        }
    }
    demo_fashion(seed, summary, f);
    fclose(f);

    snprintf(path, sizeof path, "%s/summary.json", out_dir);
    qtk_status wst = qtk_write_json_atomic(path, summary);
    cJSON_Delete(summary);
    if (wst != QTK_OK) return qtk_cli_error("%s", qtk_last_error());

    // the W4 per-channel + Hadamard quantizers, as a qtk export would hold them
    int64_t nw = (int64_t)keep_w.n, one = 1;
    qtk_st_entry e[4] = {
        {"linear.weight.scale", QTK_F32, 1, &nw, keep_w.scale},
        {"linear.weight.zero_point", QTK_F32, 1, &nw, keep_w.zero},
        {"linear.input.scale", QTK_F32, 1, &one, keep_x.scale},
        {"linear.input.zero_point", QTK_F32, 1, &one, keep_x.zero},
    };
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%llu", seed);
    const char *meta[][2] = {{"qtk_version", QTK_VERSION}, {"job", "core-demo"}, {"seed", seed_s},
                             {"weight", "w4 unsigned asym per-channel minmax, hadamard 1536=12*128"},
                             {"input", "a8 unsigned asym per-tensor omse, hadamard"}};
    snprintf(path, sizeof path, "%s/quant.safetensors", out_dir);
    if (qtk_st_write(path, e, 4, meta, 5) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    printf("\nwrote %s/{table.md, summary.json, quant.safetensors}\n", out_dir);

    qtk_qparams_free(&keep_w);
    qtk_qparams_free(&keep_x);
    void *bufs[] = {X, W, Xq, Wq, Xr, Wr, Y, Yq};
    for (size_t i = 0; i < 8; i++) qtk_aligned_free(bufs[i]);
    return 0;
}
