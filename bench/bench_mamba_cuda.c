// GPU Mamba benchmark (float32, or --fp16 1: fp16 projections): prefill of L tokens and decode per token at batch 1, 16, 64
// for random-weight models with the shapes of mamba-130m and mamba-2.8b (optionally fewer layers),
// against the weight-bandwidth floor measured in the same run (bytes of weights read per token /
// cudaMemcpy device-to-device bandwidth). One JSON line per model; tools/bench_gpu_mamba.py runs
// transformers on the same GPU and prints the ratios.
//   build/bench/bench_mamba_cuda [--prefill 1024] [--layers-2p8b 64] [--arch 1|2] [--fp16 0|1] [--scan 0|1|2] [--small 0|1]
// (--scan: Mamba2 prefill with the chunked SSD (0, 2) or the recurrence (1); --small 0: only the 2.8B shape)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtk.h"
#include "../ssm/mamba_cuda.h"
#include "timer.h"
#include "bench_util.h"

// bytes of weights one decode step reads: the projections (in, x, dt, out, head) in fp16 when fp16,
// every other parameter but the embedding in float32 (the embedding: one row per token)
static double weight_bytes(const qtk_mamba *m, int fp16) {
    const qtk_mamba_config *c = &m->cfg;
    double D = c->d_model, E = c->d_inner, proj = (double)c->vocab * D;
    proj += c->n_layers * (qtk_mamba_in_proj_out(c) * D + D * E);
    if (c->arch == QTK_MAMBA1) proj += c->n_layers * ((c->dt_rank + 2.0 * c->d_state) * E + E * c->dt_rank);
    double emb = m->cfg.tied ? 0 : (double)c->vocab * D, rest = (double)m->n_params - proj - emb;
    return proj * (fp16 ? 2 : 4) + rest * 4;
}

static int scan_mode;

static int bench(const char *name, qtk_mamba_config *c, int L, double bw, int fp16) {
    qtk_mamba m;
    qtk_status st = bench_random_mamba(c, &m);
    if (st != QTK_OK) return fprintf(stderr, "%s: %s\n", name, qtk_last_error()), 1;
    const int V = c->vocab, batches[3] = {1, 16, 64};
    int32_t *tok = malloc((size_t)64 * L * sizeof *tok);
    for (int i = 0; i < 64 * L; i++) tok[i] = (int32_t)((i * 7919u) % (unsigned)V);
    float *logits = malloc((size_t)64 * V * sizeof *logits);
    qtk_mamba_cuda *g = NULL;
    double t_pre = 0, t_dec[3] = {0};
    if (st == QTK_OK) st = qtk_mamba_cuda_create(&g, &m, 64, L, fp16);
    if (st == QTK_OK && c->arch == QTK_MAMBA2) st = qtk_mamba_cuda_set_scan(g, (qtk_scan_mode)scan_mode);
    for (int rep = 0; st == QTK_OK && rep < 3; rep++) { // the first is a warm-up
        st = qtk_mamba_cuda_reset(g, 1);
        double t = qtk_now();
        if (st == QTK_OK) st = qtk_mamba_cuda_prefill(g, tok, L, NULL);
        if (rep) t_pre += (qtk_now() - t) / 2;
    }
    for (int k = 0; st == QTK_OK && k < 3; k++) {
        const int steps = 50;
        st = qtk_mamba_cuda_reset(g, batches[k]);
        double t = 0;
        for (int i = 0; st == QTK_OK && i < steps + 3; i++) {
            if (i == 3) t = qtk_now();
            st = qtk_mamba_cuda_decode(g, tok + (size_t)batches[k] * i, logits, 1);
        }
        t_dec[k] = (qtk_now() - t) / steps;
    }
    if (st != QTK_OK) return fprintf(stderr, "%s: %s\n", name, qtk_last_error()), 1;
    double bytes = weight_bytes(&m, fp16), floor_s = bytes / (bw * 1e9);
    printf("{\"model\": \"%s\", \"layers\": %d, \"params_m\": %.1f, \"dtype\": \"%s\", \"prefill_len\": %d, "
           "\"scan\": \"%s\", \"prefill_s\": %.5f, \"decode_b1_ms\": %.4f, \"decode_b16_ms\": %.4f, \"decode_b64_ms\": %.4f, "
           "\"weight_bytes\": %.0f, \"d2d_gbs\": %.1f, \"floor_ms\": %.4f, \"decode_b1_over_floor\": %.2f}\n",
           name, c->n_layers, m.n_params / 1e6, fp16 ? "fp16" : "fp32", L,
           c->arch == QTK_MAMBA1 ? "selective" : scan_mode == QTK_SCAN_RECURRENT ? "recurrent" : "chunked", t_pre, t_dec[0] * 1e3, t_dec[1] * 1e3, t_dec[2] * 1e3, bytes, bw,
           floor_s * 1e3, t_dec[0] / floor_s);
    fflush(stdout);
    qtk_mamba_cuda_destroy(g);
    qtk_mamba_free(&m);
    free(tok);
    free(logits);
    return 0;
}

int main(int argc, char **argv) {
    int L = 1024, layers_big = 64, arch = 0, fp16 = 0, small = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prefill")) L = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--layers-2p8b")) layers_big = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--arch")) arch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--fp16")) fp16 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--scan")) scan_mode = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--small")) small = atoi(argv[i + 1]);
    }
    if (qtk_cuda_device_count() == 0) {
        printf("bench_mamba_cuda: skipped: no CUDA device (%s build)\n", qtk_cuda_built() ? "CUDA" : "CPU-only");
        return 0;
    }
    double bw = bench_d2d_gbs();
    fprintf(stderr, "bench_mamba_cuda: device-to-device copy %.0f GB/s (read + write)\n", bw);
    qtk_mamba_config s1 = bench_mamba_130m(24), b1 = bench_mamba_2p8b(layers_big);
    qtk_mamba_config s2 = bench_mamba2_130m(24);
    int rc = 0;
    if (arch != 2 && small) rc |= bench("mamba-130m", &s1, L, bw, fp16);
    if (arch != 2) rc |= bench("mamba-2.8b", &b1, L, bw, fp16);
    if (arch != 1 && small) rc |= bench("mamba2-130m", &s2, L, bw, fp16);
    return rc;
}
