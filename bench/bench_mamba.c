// Mamba1 / Mamba2 on the CPU: prefill and decode of random-weight models with the layer shapes of
// mamba-130m and mamba2-130m (float32), against floors measured in the same run: decode against the
// weight-bandwidth floor (bytes of weights read per token / memcpy bandwidth), prefill against the
// projections' FLOPs at this machine's sgemm rate; Quamba W8A8 decode (Mamba1, Mamba2) against the int8 floor.
//   build/bench/bench_mamba [--layers 24] [--prefill 1024]
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtk.h"
#include "../ssm/mamba.h"
#include "../ssm/quamba.h"
#include "timer.h"
#include "bench_util.h"

#include <omp.h>

static double memcpy_gbs(void) {
    size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b) return 0;
    memset(a, 1, n);
    memset(b, 2, n);
    void *(*volatile copy)(void *, const void *, size_t) = memcpy; // not the builtin: the copies must happen
    copy(b, a, n); // warm
    double t = qtk_now();
    for (int i = 0; i < 4; i++) copy(i & 1 ? a : b, i & 1 ? b : a, n);
    t = qtk_now() - t;
    volatile char sink = (char)(a[n / 2] + b[n / 3]); // the copies are used
    (void)sink;
    free(a);
    free(b);
    return 2.0 * 4 * n / t / 1e9; // read + write
}

static double sgemm_gflops(void) {
    const int M = 1024, N = 3072, K = 768;
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4), *c = calloc((size_t)M * N, 4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    double t = qtk_now();
    for (int i = 0; i < 5; i++) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    t = qtk_now() - t;
    free(a), free(b), free(c);
    return 5.0 * 2 * M * N * K / t / 1e9;
}

// projection FLOPs per token (in, x, dt, out projections and the head)
static double proj_flops(const qtk_mamba_config *c) {
    double D = c->d_model, E = c->d_inner, per = qtk_mamba_in_proj_out(c) * D + D * E;
    if (c->arch == QTK_MAMBA1) per += (c->dt_rank + 2.0 * c->d_state) * E + E * c->dt_rank;
    return 2 * (per * c->n_layers + (double)c->vocab * D);
}

static int bench(qtk_mamba_config *c, const char *name, int L, double bw, double gf) {
    double t = qtk_now();
    qtk_mamba m;
    qtk_status st = bench_random_mamba(c, &m);
    double t_load = qtk_now() - t;
    if (st != QTK_OK) return fprintf(stderr, "%s: %s\n", name, qtk_last_error()), 1;
    const int V = c->vocab;
    int32_t *tok = malloc((size_t)64 * L * sizeof *tok);
    float *logits = malloc((size_t)L * V * sizeof *logits);
    for (int i = 0; i < 64 * L; i++) tok[i] = (int32_t)((i * 7919u) % (unsigned)V);
    qtk_mamba_state s;
    st = qtk_mamba_state_init(&s, &m, 1);
    double t_pre = 0, t_dec1 = 0, t_dec16 = 0;
    if (st == QTK_OK) {
        t = qtk_now();
        st = qtk_mamba_prefill(&m, &s, tok, L, logits, QTK_SCAN_AUTO);
        t_pre = qtk_now() - t;
    }
    const int steps = 16;
    for (int i = 0; st == QTK_OK && i < steps + 2; i++) {
        if (i == 2) t = qtk_now(); // two warm-up tokens
        st = qtk_mamba_decode(&m, &s, tok + i, logits);
    }
    t_dec1 = (qtk_now() - t) / steps;
    qtk_mamba_state_free(&s);
    if (st == QTK_OK) st = qtk_mamba_state_init(&s, &m, 16);
    for (int i = 0; st == QTK_OK && i < steps + 2; i++) {
        if (i == 2) t = qtk_now();
        st = qtk_mamba_decode(&m, &s, tok + 16 * i, logits);
    }
    t_dec16 = (qtk_now() - t) / steps;
    qtk_mamba_state_free(&s);
    if (st != QTK_OK) return fprintf(stderr, "%s: %s\n", name, qtk_last_error()), 1;
    double bytes = (double)m.n_params * 4, floor_dec = bytes / (bw * 1e9);
    double floor_pre = proj_flops(c) * L / (gf * 1e9);
    printf("%s (%d layers, %.1fM params, fp32, %d threads): load %.2f s\n", name, c->n_layers, m.n_params / 1e6,
           omp_get_max_threads(), t_load);
    printf("  prefill L=%d: %.3f s (%.0f tokens/s); projections at this machine's sgemm rate: %.3f s -> %.2fx that floor\n",
           L, t_pre, L / t_pre, floor_pre, t_pre / floor_pre);
    printf("  decode B=1: %.2f ms/token; weight-bandwidth floor %.2f ms (%.0f MB at %.1f GB/s) -> %.2fx the floor\n",
           t_dec1 * 1e3, floor_dec * 1e3, bytes / 1e6, bw, t_dec1 / floor_dec);
    printf("  decode B=16: %.2f ms/step (%.0f tokens/s)\n", t_dec16 * 1e3, 16 / t_dec16);
    { // Quamba W8A8 (ssm/quamba.h): decode against the int8 weight-bandwidth floor
        qtk_quamba q;
        qtk_quamba_opts o;
        qtk_quamba_opts_default(&o);
        o.fp16_check = 0; // random weights
        qtk_quamba_calib cal = {.tokens = tok, .n = 1, .len = 64};
        qtk_quamba_state qs;
        st = qtk_quamba_calibrate(&q, &m, &o, &cal);
        if (st == QTK_OK) st = qtk_quamba_state_init(&qs, &q, 1);
        for (int i = 0; st == QTK_OK && i < steps + 2; i++) {
            if (i == 2) t = qtk_now();
            st = qtk_quamba_decode(&q, &qs, tok + i, logits);
        }
        const double t_q = (qtk_now() - t) / steps;
        if (st != QTK_OK) return fprintf(stderr, "%s: %s\n", name, qtk_last_error()), 1;
        // int8 codes, the fp16 head (read whole per token; its values are held as float32 here), the norms (and
        // Mamba2's gated norms and dt biases)
        const double qbytes = (double)q.n_i8 + 2.0 * V * c->d_model + 4.0 * (q.n_f32 - (double)V * c->d_model * (c->tied ? 1 : 2)),
                     qfloor = qbytes / (bw * 1e9);
        printf("  Quamba W8A8 decode B=1: %.2f ms/token (%.2fx the float32 decode); int8 weight-bandwidth floor %.2f ms "
               "(%.0f MB) -> %.2fx the floor\n", t_q * 1e3, t_q / t_dec1, qfloor * 1e3, qbytes / 1e6, t_q / qfloor);
        qtk_quamba_state_free(&qs);
        qtk_quamba_free(&q);
    }
    fflush(stdout);
    free(tok);
    free(logits);
    qtk_mamba_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    int layers = 24, L = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefill")) L = atoi(argv[i + 1]);
    }
    if (layers < 1 || L < 1) return fprintf(stderr, "usage: bench_mamba [--layers N] [--prefill L]\n"), 2;
    double bw = memcpy_gbs(), gf = sgemm_gflops();
    printf("bench_mamba: memcpy %.1f GB/s, sgemm %.1f GFLOP/s (the baselines, this run)\n", bw, gf);
    qtk_mamba_config m1 = bench_mamba_130m(layers), m2 = bench_mamba2_130m(layers);
    int rc = bench(&m1, "mamba-130m shape", L, bw, gf);
    rc |= bench(&m2, "mamba2-130m shape", L, bw, gf);
    return rc;
}
