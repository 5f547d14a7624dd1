// The backend table's Quamba rows (tests/backends.h): each CUDA kernel of ssm/cuda/quamba.cu against the CPU
// reference it twins (ssm/quamba_fwd.c, ssm/quamba.c), then the whole W8A8 model (prefill through the IMMA
// GEMMs, decode through the GEMV with and without the CUDA graph) against the CPU's forward. int8 outputs are
// compared as values (F64); saturation counts ride along as extra elements.
#include "../ssm/quamba.h"
#include "../ssm/quamba_cuda.h"
#include "../ssm/quamba_internal.h"
#include "backends.h"

static void fill_i8(qtk_rng *r, int8_t *x, size_t n, int lo, int hi) {
    for (size_t i = 0; i < n; i++) x[i] = (int8_t)(lo + (int)(qtk_rng_u32(r) % (unsigned)(hi - lo + 1)));
}

static void put_i8(double *dst, const int8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

// roundf(v / s) with saturation, and the three epilogues on int32 sums (RNE), with their saturation counts
static void quantizers(qtk_rng *r, outputs *o) {
    enum { N = 4096, ROWS = 37, C = 53 };
    float *v = malloc(N * 4);
    fill(r, v, N, -3.0f, 3.0f);
    for (int i = 0; i < 64; i++) v[i] = (float)(i - 32) * 0.05f; // exact ties at s = 0.1: half away from zero
    specials(v, N); // -0, +-Inf, NaN: saturated (NaN to -128) and counted
    int32_t *acc = malloc(ROWS * C * 4);
    for (int i = 0; i < ROWS * C; i++) acc[i] = (int32_t)(qtk_rng_u32(r) % 400001u) - 200000;
    const size_t total = N + 1 + 3 * (ROWS * C + 1);
    out_alloc(o, total, F64);
    double *oc = o->cpu, *og = o->gpu;
    int8_t *q = malloc(N), *dq = dev_alloc(N);
    float *dv = dev_copy(v, N * 4);
    uint64_t sat;
    oc[N] = (double)quamba_q8_div(v, 1, N, N, 0.1f, q, N);
    put_i8(oc, q, N);
    ck_qtk(qtk_quamba_q8_div_cuda(dv, N, 0.1f, dq, &sat));
    ck_qtk(qtk_cuda_memcpy_d2h(q, dq, N));
    put_i8(og, q, N);
    og[N] = (double)sat;
    int32_t *dacc = dev_copy(acc, ROWS * C * 4);
    size_t at = N + 1;
    for (int e = 0; e < 3; e++, at += ROWS * C + 1) {
        oc[at + ROWS * C] = (double)quamba_requant(acc, ROWS, C, 0.0123f, 0.07f, 0.9f, (quamba_epi)e, q, C);
        put_i8(oc + at, q, ROWS * C);
        ck_qtk(qtk_quamba_requant_cuda(dacc, ROWS, C, 0.0123f, 0.07f, 0.9f, e, dq, &sat));
        ck_qtk(qtk_cuda_memcpy_d2h(q, dq, ROWS * C));
        put_i8(og + at, q, ROWS * C);
        og[at + ROWS * C] = (double)sat;
    }
    qtk_cuda_free(dq), qtk_cuda_free(dv), qtk_cuda_free(dacc);
    free(v), free(acc), free(q);
}

// the decode GEMV (1, 3, 8 rows; 16-byte and 4-byte paths; few and many outputs) against exact sums and the
// CPU's epilogue: int8 codes, and out_proj's h += fp16(s_in (s_w acc))
static void gemv(qtk_rng *r, outputs *o) {
    const int shapes[][3] = {{1, 200, 512}, {3, 4104, 64}, {8, 96, 300}, {2, 5000, 1024}}; // rows, N, K
    size_t total = 0;
    for (int s = 0; s < 4; s++) total += 2 * (size_t)shapes[s][0] * shapes[s][1] + 1;
    out_alloc(o, total, F64);
    size_t at = 0;
    for (int s = 0; s < 4; s++) {
        const int rows = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldx = K + 16;
        int8_t *x = malloc((size_t)rows * ldx), *W = malloc((size_t)N * K), *q = malloc((size_t)rows * N);
        fill_i8(r, x, (size_t)rows * ldx, -128, 127), fill_i8(r, W, (size_t)N * K, -128, 127);
        int32_t *acc = malloc((size_t)rows * N * 4);
        int8_t *xp = malloc((size_t)rows * K);
        for (int i = 0; i < rows; i++) memcpy(xp + (size_t)i * K, x + (size_t)i * ldx, K);
        qtk_gemm_s8(x, (size_t)ldx, W, acc, (size_t)rows, N, K);
        const int e = rows == 1 ? QUAMBA_EPI_GEMV : QUAMBA_EPI_GEMM;
        const float sw = 0.002f, si = 0.05f, so = 7.5f;
        double *oc = (double *)o->cpu + at, *og = (double *)o->gpu + at;
        oc[2 * (size_t)rows * N] = (double)quamba_requant(acc, (size_t)rows, N, sw, si, so, (quamba_epi)e, q, N);
        put_i8(oc, q, (size_t)rows * N);
        float *h = malloc((size_t)rows * N * 4);
        fill(r, h, (size_t)rows * N, -1, 1);
        float *dh = dev_copy(h, (size_t)rows * N * 4);
        quamba_out_resid(acc, (size_t)rows * N, si, sw, h);
        for (size_t i = 0; i < (size_t)rows * N; i++) oc[(size_t)rows * N + i] = h[i];
        int8_t *dx = dev_copy(x, (size_t)rows * ldx), *dW = dev_copy(W, (size_t)N * K), *dq = dev_alloc((size_t)rows * N);
        uint64_t sat;
        ck_qtk(qtk_quamba_gemv_cuda(dx, ldx, dW, rows, N, K, sw, si, so, e, dq, NULL, &sat));
        ck_qtk(qtk_cuda_memcpy_d2h(q, dq, (size_t)rows * N));
        put_i8(og, q, (size_t)rows * N);
        og[2 * (size_t)rows * N] = (double)sat;
        ck_qtk(qtk_quamba_gemv_cuda(dx, ldx, dW, rows, N, K, sw, si, so, e, NULL, dh, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h(h, dh, (size_t)rows * N * 4));
        for (size_t i = 0; i < (size_t)rows * N; i++) og[(size_t)rows * N + i] = h[i];
        at += 2 * (size_t)rows * N + 1;
        qtk_cuda_free(dx), qtk_cuda_free(dW), qtk_cuda_free(dq), qtk_cuda_free(dh);
        free(x), free(W), free(q), free(acc), free(xp), free(h);
    }
}

// int8 conv1d + SiLU: a prefill from random states, then decode steps from the states it left
static void conv(qtk_rng *r, outputs *o) {
    enum { B = 3, L = 41, E = 96, K = 4, LD = 200 };
    int8_t *x = malloc((size_t)B * L * LD), w[E * K], b[E], st0[B * E * K], st[B * E * K], *out = malloc((size_t)B * L * E);
    fill_i8(r, x, (size_t)B * L * LD, -128, 127), fill_i8(r, w, E * K, -127, 127), fill_i8(r, b, E, -127, 127);
    fill_i8(r, st0, B * E * K, -128, 127);
    const size_t per = (size_t)B * L * E + B * E * K + 1;
    out_alloc(o, 4 * per, F64);
    int8_t *dx = dev_copy(x, (size_t)B * L * LD), *dw = dev_copy(w, sizeof w), *db = dev_copy(b, sizeof b),
           *dst = dev_copy(st0, sizeof st0), *dout = dev_alloc((size_t)B * L * E);
    memcpy(st, st0, sizeof st);
    size_t at = 0;
    for (int step = 0; step < 4; step++) { // the prefill, then three decode steps
        const int Ls = step ? 1 : L;
        const int8_t *xs = x + (step ? (size_t)(step - 1) * LD : 0);
        const size_t ld = step ? (size_t)L * LD : LD;
        quamba_conv_args a = {B, Ls, E, K, xs, ld, w, b, 0.01f, 0.002f, 0.03f, 0.02f, st, out, .x_end = 0};
        double *oc = (double *)o->cpu + at, *og = (double *)o->gpu + at;
        const size_t n = (size_t)B * Ls * E;
        oc[n + B * E * K] = (double)quamba_conv_q8(&a);
        put_i8(oc, out, n), put_i8(oc + n, st, B * E * K);
        quamba_conv_args d = {B, Ls, E, K, dx + (xs - x), ld, dw, db, 0.01f, 0.002f, 0.03f, 0.02f, dst, dout, .x_end = 0};
        uint64_t sat;
        ck_qtk(qtk_quamba_conv_q8_cuda(&d, &sat));
        int8_t *tmp = malloc(n + B * E * K);
        ck_qtk(qtk_cuda_memcpy_d2h(tmp, dout, n));
        ck_qtk(qtk_cuda_memcpy_d2h(tmp + n, dst, B * E * K));
        put_i8(og, tmp, n + B * E * K);
        og[n + B * E * K] = (double)sat;
        free(tmp);
        at += n + B * E * K + 1;
    }
    o->n = at;
    qtk_cuda_free(dx), qtk_cuda_free(dw), qtk_cuda_free(db), qtk_cuda_free(dst), qtk_cuda_free(dout);
    free(x), free(out);
}

// the selective scan on int8 operands: y (fp16 values) and the states, a prefill then a decode step
static void scan(qtk_rng *r, outputs *o) {
    enum { B = 2, L = 33, E = 64, N = 16, R = 8, XD = R + 2 * N };
    int8_t *xq = malloc(B * L * E), *dtq = malloc(B * L * E), *dbl = malloc(B * L * XD), *xz = malloc(B * L * 2 * E);
    int8_t A_log[E * N], Dq[E], dtb[E];
    fill_i8(r, xq, B * L * E, -128, 127), fill_i8(r, dtq, B * L * E, -128, 127), fill_i8(r, dbl, B * L * XD, -128, 127);
    fill_i8(r, xz, B * L * 2 * E, -128, 127), fill_i8(r, A_log, E * N, 0, 127), fill_i8(r, Dq, E, -127, 127);
    fill_i8(r, dtb, E, -127, 127);
    float *h = calloc(B * E * N, 4), *y = malloc(B * L * E * 4);
    int8_t *dxq = dev_copy(xq, B * L * E), *ddt = dev_copy(dtq, B * L * E), *ddbl = dev_copy(dbl, B * L * XD),
           *dxz = dev_copy(xz, B * L * 2 * E), *dA = dev_copy(A_log, sizeof A_log), *dD = dev_copy(Dq, sizeof Dq),
           *dbb = dev_copy(dtb, sizeof dtb);
    float *dh = dev_copy(h, B * E * N * 4), *dy = dev_alloc(B * L * E * 4);
    out_alloc(o, 2 * ((size_t)B * L * E + B * E * N), F32);
    size_t at = 0;
    for (int step = 0; step < 2; step++) {
        const int Ls = step ? 1 : L;
        quamba_scan_args a = {B, Ls, E, N, R, xq, dtq, dbl, xz + E, 2 * E, A_log, Dq, dtb,
                              0.03f, 0.02f, 0.05f, 0.04f, 0.03f, 0.01f, 0.01f, h, y};
        quamba_scan(&a);
        quamba_scan_args d = {B, Ls, E, N, R, dxq, ddt, ddbl, dxz + E, 2 * E, dA, dD, dbb,
                              0.03f, 0.02f, 0.05f, 0.04f, 0.03f, 0.01f, 0.01f, dh, dy};
        ck_qtk(qtk_quamba_scan_cuda(&d));
        const size_t n = (size_t)B * Ls * E;
        memcpy((float *)o->cpu + at, y, n * 4), memcpy((float *)o->cpu + at + n, h, B * E * N * 4);
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dy, n * 4));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at + n, dh, B * E * N * 4));
        at += n + B * E * N;
    }
    o->n = at;
    qtk_cuda_free(dxq), qtk_cuda_free(ddt), qtk_cuda_free(ddbl), qtk_cuda_free(dxz), qtk_cuda_free(dA);
    qtk_cuda_free(dD), qtk_cuda_free(dbb), qtk_cuda_free(dh), qtk_cuda_free(dy);
    free(xq), free(dtq), free(dbl), free(xz), free(h), free(y);
}

// the fused Hadamard + quantize at 12 * 2^k, 40 * 2^k, 2^k and without the Hadamard (scales that clip some)
static void had(qtk_rng *r, outputs *o) {
    const int sizes[4] = {1536, 5120, 256, 200}, rows = 5;
    size_t total = 0;
    for (int s = 0; s < 4; s++) total += (size_t)rows * sizes[s] + 1;
    out_alloc(o, total, F64);
    size_t at = 0;
    for (int s = 0; s < 4; s++) {
        const int E = sizes[s], on = s < 3;
        const size_t n = (size_t)rows * E;
        float *y = malloc(n * 4);
        fill(r, y, n, -1, 1);
        for (size_t i = 0; i < n; i++) y[i] = qtk_f16_to_f32(qtk_f32_to_f16(y[i])); // fp16 values, as the scan's
        float *dy = dev_copy(y, n * 4);
        int8_t *q = malloc(n), *dq = dev_alloc(n);
        const float sc = on ? 0.012f : 0.006f;
        uint64_t sat = 0, dsat;
        ck_qtk(quamba_had_q8(y, rows, E, on, sc, q, &sat));
        put_i8((double *)o->cpu + at, q, n);
        ((double *)o->cpu)[at + n] = (double)sat;
        ck_qtk(qtk_quamba_had_q8_cuda(dy, rows, E, on, sc, dq, &dsat));
        ck_qtk(qtk_cuda_memcpy_d2h(q, dq, n));
        put_i8((double *)o->gpu + at, q, n);
        ((double *)o->gpu)[at + n] = (double)dsat;
        at += n + 1;
        qtk_cuda_free(dy), qtk_cuda_free(dq);
        free(y), free(q);
    }
}

// A random Mamba1 of the model rows' shape (d_inner 192 = 12 * 16: a 12 * 2^k Hadamard) from seed, loaded (its
// temporary folder removed)
static void random_mamba1(uint64_t seed, qtk_mamba *m) {
    char dir[] = "/tmp/qtk_bq_XXXXXX", cmd[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const qtk_mamba_config c = {.arch = QTK_MAMBA1, .d_model = 96, .d_inner = 192, .d_state = 16, .d_conv = 4,
                                .n_layers = 2, .vocab = 200, .dt_rank = 8, .eps = 1e-5f, .conv_bias = 1, .tied = 1};
    ck_qtk(qtk_mamba_write_random(dir, &c, seed, "F32"));
    ck_qtk(qtk_mamba_load(m, dir));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

// the whole model: a random Mamba1 (Hadamard 12 * 2^k), calibrated on the CPU; logits of a prefill of 12 x 40
// tokens (IMMA GEMMs), then 4 decode steps at batch 12 (IMMA GEMMs, the conv and dt_proj kernels), at batch 2
// (GEMV, GEMM epilogue) and at batch 1 with the graph (GEMV epilogue), both again with the decode fusions on (the
// conv in in_proj's GEMV, dt_proj in the scan), against the CPU's
static void model(qtk_rng *r, outputs *o) {
    qtk_mamba m;
    random_mamba1(7, &m);
    enum { L = 40, V = 200, STEPS = 4, MB = 12 };
    static const int batches[] = {MB, 2, 1, 2, 1}; // the last two with the decode fusions on
    int32_t tok[MB * (L + STEPS)];
    for (int i = 0; i < MB * (L + STEPS); i++) tok[i] = (int32_t)(qtk_rng_u32(r) % V);
    qtk_quamba q;
    qtk_quamba_opts op;
    qtk_quamba_opts_default(&op);
    qtk_quamba_calib cal = {.tokens = tok, .n = 2, .len = L};
    ck_qtk(qtk_quamba_calibrate(&q, &m, &op, &cal));
    const size_t n = (size_t)MB * L * V + (MB + 2 + 1 + 2 + 1) * STEPS * (size_t)V;
    out_alloc(o, n, F32);
    float *oc = o->cpu, *og = o->gpu;
    qtk_quamba_state s;
    qtk_quamba_cuda *g;
    ck_qtk(qtk_quamba_cuda_create(&g, &q, MB, L));
    for (int k = 0; k < 5; k++) {
        const int B = batches[k];
        qtk_quamba_cuda_set_fusion(g, k >= 3);
        ck_qtk(qtk_quamba_state_init(&s, &q, B));
        ck_qtk(qtk_quamba_cuda_reset(g, B));
        ck_qtk(qtk_quamba_prefill(&q, &s, tok, L, B == MB ? oc : NULL));
        ck_qtk(qtk_quamba_cuda_prefill(g, tok, L, B == MB ? og : NULL));
        if (B == MB) oc += (size_t)MB * L * V, og += (size_t)MB * L * V;
        for (int t = 0; t < STEPS; t++) {
            const int32_t *nx = tok + MB * L + t * MB;
            ck_qtk(qtk_quamba_decode(&q, &s, nx, oc));
            ck_qtk(qtk_quamba_cuda_decode(g, nx, og, B == 1));
            oc += B * V, og += B * V;
        }
        qtk_quamba_state_free(&s);
    }
    qtk_quamba_cuda_destroy(g);
    qtk_quamba_free(&q);
    qtk_mamba_free(&m);
}

// calibration on the GPU (the fp16 forward, 2 sequences a batch, the last batch short) against the CPU's (the
// float32 forward, one sequence at a time): every activation scale and the outlier statistics
static void calibration(qtk_rng *r, outputs *o) {
    qtk_mamba m;
    random_mamba1(11, &m);
    const qtk_mamba_config c = m.cfg;
    enum { NS = 5, L = 48 };
    int32_t tok[NS * L];
    for (int i = 0; i < NS * L; i++) tok[i] = (int32_t)(qtk_rng_u32(r) % 200);
    qtk_quamba_opts op;
    qtk_quamba_opts_default(&op);
    const size_t per = QTK_MAMBA_QL + QTK_QUAMBA_NOUT, n = (size_t)c.n_layers * per;
    out_alloc(o, n, F64);
    for (int dev = 0; dev < 2; dev++) {
        qtk_quamba q;
        qtk_quamba_calib cal = {.tokens = tok, .n = NS, .len = L, .device = dev, .batch = 2};
        ck_qtk(qtk_quamba_calibrate(&q, &m, &op, &cal));
        double *out = dev ? o->gpu : o->cpu;
        for (int l = 0; l < c.n_layers; l++) {
            for (int p = 0; p < QTK_MAMBA_QL; p++) out[l * per + p] = q.layers[l].act[p];
            for (int k = 0; k < QTK_QUAMBA_NOUT; k++) out[l * per + QTK_MAMBA_QL + k] = q.outliers[l * QTK_QUAMBA_NOUT + k];
        }
        qtk_quamba_free(&q);
    }
    qtk_mamba_free(&m);
}

static const backend_case cases[] = {
    {"Quamba quantizers: roundf(v / s), the three W8A8 epilogues, saturation counts", BITWISE, 0, quantizers},
    {"Quamba int8 GEMV (dp4a; int8 and fp16-residual epilogues)", BITWISE, 0, gemv},
    // the codes cross a rounding boundary only where CUDA's expf (SiLU) is an ulp off the CPU's
    {"Quamba int8 conv1d + SiLU (prefill, decode steps, states)", NMSE, 1e-6, conv},
    {"Quamba selective scan on int8 operands (fp16 y, states)", NMSE, 1e-8, scan}, // CUDA's expf, log1pf
    {"Quamba Hadamard + quantize (12 * 2^k, 40 * 2^k, 2^k, none)", BITWISE, 0, had},
    {"Quamba W8A8 model: prefill (IMMA), decode (IMMA; GEMV, and with conv and dt_proj fused; CUDA graph)", NMSE, 1e-4, model},
    {"Quamba calibration: GPU fp16 forward vs CPU float32 (scales, outlier statistics)", NMSE, 1e-4, calibration},
};

int main(void) { return backends_main("backends_quamba", cases, (int)(sizeof cases / sizeof *cases)); }
