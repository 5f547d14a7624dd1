// GPU Quamba benchmark: W8A8 (ssm/quamba_cuda.h) beside qtk's own FP16 path (fp16 projection weights and
// inputs, FP32 sums) on random-weight models with the shapes of mamba-130m and mamba-2.8b, in one run:
// prefill of L tokens at batch 1, decode per token at batch 1, 16, 64, 128 (CUDA graphs on both sides), the
// int8 weight-bandwidth floor (the W8A8 model's weight bytes / the device-to-device copy bandwidth measured
// here) and the weight memory against an all-fp16 model. One JSON line per model.
//   build/bench/bench_quamba_cuda [--prefill 1024] [--layers-2p8b 64] [--small 0|1] [--profile 0|1] [--calib n]
// (--calib n: also time a calibration of n x 512 tokens on the GPU; the model benchmarked is calibrated on the
// GPU on one sequence of 64 tokens: speed does not depend on the values)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtk.h"
#include "../ssm/mamba_cuda.h"
#include "../ssm/quamba_cuda.h"
#include "timer.h"
#include "bench_util.h"

#define NB 4
static const int batches[NB] = {1, 16, 64, 128};

typedef struct {
    double prefill_s, decode_ms[NB], decode_b1_fused_ms;
} times;

// the FP16 model (mq NULL) or the W8A8 one: prefill on a (1, L) context, decode on a (128, 1) one
static qtk_status run(const qtk_mamba *m, const qtk_quamba *q, const int32_t *tok, int L, times *t) {
    qtk_mamba_cuda *fp = NULL, *fd = NULL;
    qtk_quamba_cuda *qp = NULL, *qd = NULL;
    qtk_status st = q ? qtk_quamba_cuda_create(&qp, q, 1, L) : qtk_mamba_cuda_create(&fp, m, 1, L, 1);
    for (int rep = 0; st == QTK_OK && rep < 3; rep++) { // the first is a warm-up
        st = q ? qtk_quamba_cuda_reset(qp, 1) : qtk_mamba_cuda_reset(fp, 1);
        double t0 = qtk_now();
        if (st == QTK_OK) st = q ? qtk_quamba_cuda_prefill(qp, tok, L, NULL) : qtk_mamba_cuda_prefill(fp, tok, L, NULL);
        if (rep) t->prefill_s += (qtk_now() - t0) / 2;
    }
    qtk_quamba_cuda_destroy(qp);
    qtk_mamba_cuda_destroy(fp);
    if (st == QTK_OK) st = q ? qtk_quamba_cuda_create(&qd, q, 128, 1) : qtk_mamba_cuda_create(&fd, m, 128, 1, 1);
    for (int k = 0; st == QTK_OK && k < NB; k++) {
        const int steps = 50;
        st = q ? qtk_quamba_cuda_reset(qd, batches[k]) : qtk_mamba_cuda_reset(fd, batches[k]);
        double t0 = 0;
        for (int i = 0; st == QTK_OK && i < steps + 3; i++) {
            if (i == 3) t0 = qtk_now();
            st = q ? qtk_quamba_cuda_decode(qd, tok + (size_t)batches[k] * i, NULL, 1)
                   : qtk_mamba_cuda_decode(fd, tok + (size_t)batches[k] * i, NULL, 1);
        }
        t->decode_ms[k] = (qtk_now() - t0) / steps * 1e3;
    }
    // W8A8 at batch 1 once more with the decode fusions on (conv in in_proj's GEMV, dt_proj in the scan)
    if (q && st == QTK_OK) {
        qtk_quamba_cuda_set_fusion(qd, 1);
        st = qtk_quamba_cuda_reset(qd, 1);
        double t0 = 0;
        for (int i = 0; st == QTK_OK && i < 53; i++) {
            if (i == 3) t0 = qtk_now();
            st = qtk_quamba_cuda_decode(qd, tok + i, NULL, 1);
        }
        t->decode_b1_fused_ms = (qtk_now() - t0) / 50 * 1e3;
    }
    qtk_quamba_cuda_destroy(qd);
    qtk_mamba_cuda_destroy(fd);
    return st;
}

static const char *stage_names[QTK_QUAMBA_STAGES] = {"norm+q", "in_proj", "conv", "x_proj", "dt_proj",
                                                     "scan", "had+q", "out_proj", "embed+head"};

// --profile 1: the W8A8 forward's time per stage (events): one prefill, then 20 decode steps at batch 1 (each a
// graph with an event node after every stage), then each stage's kernels alone (layer 0, 100 launches)
static void profile(const char *name, const qtk_quamba *q, const int32_t *tok, int L) {
    qtk_quamba_cuda *g;
    double ms[2][QTK_QUAMBA_STAGES];
    if (qtk_quamba_cuda_create(&g, q, 1, L) != QTK_OK) return;
    qtk_quamba_cuda_profile(g, 1, NULL);
    qtk_status st = qtk_quamba_cuda_prefill(g, tok, L, NULL);
    qtk_quamba_cuda_profile(g, 1, ms[0]);
    for (int i = 0; st == QTK_OK && i < 20; i++) st = qtk_quamba_cuda_decode(g, tok + L + i, NULL, 1);
    qtk_quamba_cuda_profile(g, 0, ms[1]);
    double us[QTK_QUAMBA_STAGES];
    if (st == QTK_OK) st = qtk_quamba_cuda_stage_times(g, 100, us);
    qtk_quamba_cuda_destroy(g);
    if (st != QTK_OK) {
        fprintf(stderr, "%s: profile: %s\n", name, qtk_last_error());
        return;
    }
    for (int k = 0; k < 2; k++) {
        printf("{\"model\": \"%s\", \"profile\": \"%s\"", name, k ? "decode b1, ms per token" : "prefill, ms");
        for (int i = 0; i < QTK_QUAMBA_STAGES; i++) printf(", \"%s\": %.4f", stage_names[i], ms[k][i] / (k ? 20 : 1));
        printf("}\n");
    }
    // each kernel alone, launched back to back (a stage fused into another reads 0)
    printf("{\"model\": \"%s\", \"profile\": \"decode b1 kernels, us per launch\"", name);
    for (int i = 0; i < QTK_QUAMBA_STAGES; i++) printf(", \"%s\": %.2f", stage_names[i], us[i]);
    printf("}\n");
}

static int do_profile, calib_n;

static int bench(const char *name, qtk_mamba_config *c, int L, double bw) {
    qtk_mamba m;
    qtk_status st = bench_random_mamba(c, &m);
    if (st != QTK_OK) return fprintf(stderr, "%s: %s\n", name, qtk_last_error()), 1;
    const int V = c->vocab;
    int32_t *tok = malloc((size_t)128 * (L + 64) * sizeof *tok);
    for (int i = 0; i < 128 * (L + 64); i++) tok[i] = (int32_t)((i * 7919u) % (unsigned)V);
    // the quantized model: v1 calibrated on one sequence (speed does not depend on the values)
    qtk_quamba q;
    qtk_quamba_opts o;
    qtk_quamba_opts_default(&o);
    o.fp16_check = 0;
    qtk_quamba_calib cal = {.tokens = tok, .n = 1, .len = 64, .device = 1};
    double t0 = qtk_now();
    st = qtk_quamba_calibrate(&q, &m, &o, &cal);
    const double t_quant = qtk_now() - t0;
    times f = {0}, w = {0};
    if (st == QTK_OK) st = run(&m, NULL, tok, L, &f);
    if (st == QTK_OK) st = run(&m, &q, tok, L, &w);
    if (st != QTK_OK) return fprintf(stderr, "%s: %s\n", name, qtk_last_error()), 1;
    qtk_quamba_cuda *g;
    if (qtk_quamba_cuda_create(&g, &q, 1, 1) != QTK_OK) return fprintf(stderr, "%s: %s\n", name, qtk_last_error()), 1;
    const double wbytes = (double)qtk_quamba_cuda_weight_bytes(g), fp16_bytes = 2.0 * (double)m.n_params;
    qtk_quamba_cuda_destroy(g);
    // a decode step reads every weight but the embedding (one row per token; tied: it is the head, read whole)
    const double read = wbytes - (c->tied ? 0 : 2.0 * c->vocab * c->d_model), floor_ms = read / (bw * 1e9) * 1e3;
    printf("{\"model\": \"%s\", \"layers\": %d, \"params_m\": %.1f, \"prefill_len\": %d, \"quantize_s\": %.1f, "
           "\"prefill_fp16_s\": %.5f, \"prefill_w8a8_s\": %.5f, \"prefill_speedup\": %.2f",
           name, c->n_layers, m.n_params / 1e6, L, t_quant, f.prefill_s, w.prefill_s, f.prefill_s / w.prefill_s);
    for (int k = 0; k < NB; k++)
        printf(", \"decode_b%d_fp16_ms\": %.4f, \"decode_b%d_w8a8_ms\": %.4f, \"decode_b%d_speedup\": %.2f", batches[k],
               f.decode_ms[k], batches[k], w.decode_ms[k], batches[k], f.decode_ms[k] / w.decode_ms[k]);
    printf(", \"decode_b1_w8a8_fused_ms\": %.4f", w.decode_b1_fused_ms);
    printf(", \"w8a8_weight_bytes\": %.0f, \"fp16_weight_bytes\": %.0f, \"memory_ratio\": %.3f, \"d2d_gbs\": %.1f, "
           "\"int8_floor_ms\": %.4f, \"decode_b1_over_floor\": %.2f}\n",
           wbytes, fp16_bytes, wbytes / fp16_bytes, bw, floor_ms, w.decode_ms[0] / floor_ms);
    fflush(stdout);
    if (do_profile) profile(name, &q, tok, L);
    // --calib n: the calibration of n sequences of 512 tokens on the GPU, timed (the reference's 512 x 512)
    if (calib_n > 0) {
        double t_calib = -1;
        int32_t *ct = malloc((size_t)calib_n * 512 * sizeof *ct);
        for (size_t i = 0; ct && i < (size_t)calib_n * 512; i++) ct[i] = (int32_t)((i * 2654435761u) % (unsigned)V);
        qtk_quamba qc;
        qtk_quamba_calib cc = {.tokens = ct, .n = calib_n, .len = 512, .device = 1};
        double t1 = qtk_now();
        st = ct ? qtk_quamba_calibrate(&qc, &m, &o, &cc) : qtk_fail(QTK_ERR_NOMEM, "out of memory");
        t_calib = qtk_now() - t1;
        if (st == QTK_OK) qtk_quamba_free(&qc);
        free(ct);
        if (st != QTK_OK) return fprintf(stderr, "%s: calibration: %s\n", name, qtk_last_error()), 1;
        printf("{\"model\": \"%s\", \"calibration\": \"%d x 512 tokens on the GPU\", \"seconds\": %.2f}\n", name,
               calib_n, t_calib);
        fflush(stdout);
    }
    qtk_quamba_free(&q);
    qtk_mamba_free(&m);
    free(tok);
    return 0;
}

int main(int argc, char **argv) {
    int L = 1024, layers_big = 64, small = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prefill")) L = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--layers-2p8b")) layers_big = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--small")) small = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--profile")) do_profile = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--calib")) calib_n = atoi(argv[i + 1]);
    }
    if (qtk_cuda_device_count() == 0) {
        printf("bench_quamba_cuda: skipped: no CUDA device (%s build)\n", qtk_cuda_built() ? "CUDA" : "CPU-only");
        return 0;
    }
    double bw = bench_d2d_gbs();
    fprintf(stderr, "bench_quamba_cuda: device-to-device copy %.0f GB/s (read + write)\n", bw);
    qtk_mamba_config s1 = bench_mamba_130m(24), b1 = bench_mamba_2p8b(layers_big);
    int rc = 0;
    if (small) rc |= bench("mamba-130m", &s1, L, bw);
    rc |= bench("mamba-2.8b", &b1, L, bw);
    return rc;
}
