// The op library's CPU/GPU twins as rows of the backend table (tests/backends.h): norms, softmax, conv1d,
// residual, the GEMM module (core/cuda/gemm.h) and the CNN ops.
#include "backends.h"

// output quantizers: per tensor (8-bit unsigned), per channel (8-bit signed; arrays in the caller's memory space)
static qtk_outq outq_tensor(float s, float z) { return (qtk_outq){1, 0, s, z, NULL, NULL, 0, 255, 0}; }
static qtk_outq outq_channels(const float *s, const float *z) { return (qtk_outq){1, 1, 0, 0, s, z, -128, 127, 0}; }

// --- the op library (core/ops.h): norms, softmax, conv1d, residual ------------------------------

// a per-tensor 8-bit output quantizer, and a per-channel one with its arrays on the host (h) or device (d)

static void ops_norms(qtk_rng *r, outputs *o) {
    enum { ROWS = 300, C = 384, E = 512, G = 4 };
    const size_t n = (size_t)ROWS * C, ne = (size_t)ROWS * E;
    out_alloc(o, 4 * n + n + ne, F32); // layernorm (plain, quantized), softmax (plain, quantized), rmsnorm (+ add), gated
    float *x = malloc(n * 4), *w = malloc(E * 4), *b = malloc(C * 4), *add = malloc(n * 4), *y = malloc(ne * 4),
          *z = malloc(ne * 4), *h = malloc(n * 4);
    fill(r, x, n, -3.0f, 3.0f), fill(r, w, E, 0.5f, 1.5f), fill(r, b, C, -0.5f, 0.5f), fill(r, add, n, -1.0f, 1.0f);
    fill(r, y, ne, -2.0f, 2.0f), fill(r, z, ne, -4.0f, 4.0f);
    const qtk_outq q = outq_tensor(0.02f, 128.0f), qp = outq_tensor(1.0f / 255.0f, 0.0f);
    float *cpu = o->cpu, *gpu = o->gpu;
    float *dx = dev_copy(x, n * 4), *dw = dev_copy(w, E * 4), *db = dev_copy(b, C * 4), *dy = dev_alloc(ne * 4);
    float *dadd = dev_copy(add, n * 4), *dz = dev_copy(z, ne * 4), *dh = dev_alloc(n * 4);
    for (int k = 0; k < 2; k++) { // LayerNorm without and with its output quantizer
        qtk_op_layernorm(x, cpu + k * n, ROWS, C, w, b, 1e-6f, k ? &q : NULL);
        ck_qtk(qtk_op_layernorm_cuda(dx, dy, ROWS, C, dw, db, 1e-6f, k ? &q : NULL, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h(gpu + k * n, dy, n * 4));
    }
    for (int k = 0; k < 2; k++) { // softmax over rows of C
        memcpy(cpu + (2 + k) * n, x, n * 4);
        qtk_op_softmax(cpu + (2 + k) * n, ROWS, C, k ? &qp : NULL);
        ck_qtk(qtk_cuda_memcpy_h2d(dy, x, n * 4));
        ck_qtk(qtk_op_softmax_cuda(dy, ROWS, C, k ? &qp : NULL, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h(gpu + (2 + k) * n, dy, n * 4));
    }
    // RMSNorm with the residual add (h += add, then the norm)
    memcpy(h, x, n * 4);
    qtk_op_rmsnorm(h, add, w, cpu + 4 * n, ROWS, C, 1e-5f);
    ck_qtk(qtk_cuda_memcpy_h2d(dh, x, n * 4));
    ck_qtk(qtk_op_rmsnorm_cuda(dh, dadd, dw, dy, ROWS, C, 1e-5f, NULL));
    ck_qtk(qtk_cuda_memcpy_d2h(gpu + 4 * n, dy, n * 4));
    // gated RMSNorm: 4 groups, the gate in rows of stride E
    memcpy(cpu + 5 * n, y, ne * 4);
    qtk_op_gated_rmsnorm(cpu + 5 * n, z, E, w, ROWS, E, G, 1e-5f);
    ck_qtk(qtk_cuda_memcpy_h2d(dy, y, ne * 4));
    ck_qtk(qtk_op_gated_rmsnorm_cuda(dy, dz, E, dw, ROWS, E, G, 1e-5f, NULL));
    ck_qtk(qtk_cuda_memcpy_d2h(gpu + 5 * n, dy, ne * 4));
    qtk_cuda_free(dx), qtk_cuda_free(dw), qtk_cuda_free(db), qtk_cuda_free(dy), qtk_cuda_free(dadd), qtk_cuda_free(dz);
    qtk_cuda_free(dh);
    free(x), free(w), free(b), free(add), free(y), free(z), free(h);
}

// integer LayerNorm with per-channel power-of-two input factors (PTF) and per tensor, quantized output
static void ops_int_layernorm(qtk_rng *r, outputs *o) {
    enum { ROWS = 200, C = 192 };
    const size_t n = (size_t)ROWS * C;
    out_alloc(o, 2 * n, F32);
    float *x = malloc(n * 4), *g = malloc(C * 4), *b = malloc(C * 4), s_in[C];
    fill(r, x, n, -4.0f, 4.0f), fill(r, g, C, 0.5f, 1.5f), fill(r, b, C, -0.3f, 0.3f);
    // finite inputs only: the integer LayerNorm reads its input's grid points (a NaN has none)
    for (int c = 0; c < C; c++) s_in[c] = 0.01f * (float)(1 << (c % 4));
    const qtk_outq q = outq_tensor(0.03f, 120.0f);
    float *dx = dev_copy(x, n * 4), *dg = dev_copy(g, C * 4), *db = dev_copy(b, C * 4), *ds = dev_copy(s_in, C * 4),
          *dy = dev_alloc(n * 4);
    for (int k = 0; k < 2; k++) {
        float *c = (float *)o->cpu + k * n;
        qtk_int_layernorm(x, c, ROWS, C, s_in, !k, 0.05f, g, b);
        for (size_t i = 0; i < n; i++) c[i] = qtk_outq_apply(&q, c[i], 0);
        ck_qtk(qtk_op_int_layernorm_cuda(dx, dy, ROWS, C, ds, !k, 0.01f, 0.05f, dg, db, &q, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + k * n, dy, n * 4));
    }
    qtk_cuda_free(dx), qtk_cuda_free(dg), qtk_cuda_free(db), qtk_cuda_free(ds), qtk_cuda_free(dy);
    free(x), free(g), free(b);
}

// causal conv1d + SiLU: a prefill of 37 tokens from a nonzero state, then 3 decode steps (K = 4, the
// unrolled kernel) and a prefill with K = 3 (the general one); outputs and final states
static void ops_conv1d(qtk_rng *r, outputs *o) {
    enum { B = 3, L = 37, C = 80, LD = 96 };
    const size_t nin = (size_t)B * L * LD;
    float *in = malloc(nin * 4), w[C * 4], bias[C], st[B * C * 4], st0[B * C * 4], *out = malloc((size_t)B * L * C * 4);
    fill(r, in, nin, -2.0f, 2.0f), fill(r, w, C * 4, -1.0f, 1.0f), fill(r, bias, C, -0.2f, 0.2f);
    fill(r, st0, B * C * 4, -1.0f, 1.0f);
    const size_t per = (size_t)B * L * C + B * C * 4;
    out_alloc(o, 2 * per + 3 * ((size_t)B * C + B * C * 4), F32);
    float *din = dev_copy(in, nin * 4), *dw = dev_copy(w, sizeof w), *db = dev_copy(bias, sizeof bias), *dst = dev_alloc(sizeof st),
          *dout = dev_alloc((size_t)B * L * C * 4);
    size_t at = 0;
    for (int K = 4; K >= 3; K--) {
        memcpy(st, st0, sizeof st);
        ck_qtk(qtk_op_conv1d_silu(in, LD, B, L, C, K, w, K == 4 ? bias : NULL, st, out));
        ck_qtk(qtk_cuda_memcpy_h2d(dst, st0, sizeof st));
        ck_qtk(qtk_op_conv1d_silu_cuda(din, LD, B, L, C, K, dw, K == 4 ? db : NULL, dst, dout, NULL));
        memcpy((float *)o->cpu + at, out, (size_t)B * L * C * 4);
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dout, (size_t)B * L * C * 4));
        at += (size_t)B * L * C;
        memcpy((float *)o->cpu + at, st, (size_t)B * C * K * 4);
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dst, (size_t)B * C * K * 4));
        at += (size_t)B * C * 4;
        if (K == 3) break;
        for (int t = 0; t < 3; t++) { // decode steps continue from the states the prefill left (equal, checked above)
            ck_qtk(qtk_op_conv1d_silu(in + t * LD, L * LD, B, 1, C, K, w, bias, st, out));
            ck_qtk(qtk_op_conv1d_silu_cuda(din + t * LD, L * LD, B, 1, C, K, dw, db, dst, dout, NULL));
            memcpy((float *)o->cpu + at, out, (size_t)B * C * 4);
            ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dout, (size_t)B * C * 4));
            at += (size_t)B * C;
            memcpy((float *)o->cpu + at, st, sizeof st);
            ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + at, dst, sizeof st));
            at += (size_t)B * C * 4;
        }
    }
    qtk_cuda_free(din), qtk_cuda_free(dw), qtk_cuda_free(db), qtk_cuda_free(dst), qtk_cuda_free(dout);
    free(in), free(out);
}

// x = qr(x + qh(h)) with a per-channel (PTF-like) residual quantizer
static void ops_residual(qtk_rng *r, outputs *o) {
    enum { ROWS = 500, C = 96 };
    const size_t n = (size_t)ROWS * C;
    out_alloc(o, n, F32);
    float *x = malloc(n * 4), *h = malloc(n * 4), s[C], z[C];
    fill(r, x, n, -5.0f, 5.0f), fill(r, h, n, -5.0f, 5.0f);
    specials(x, n);
    for (int c = 0; c < C; c++) s[c] = 0.01f * (float)(1 << (c % 4)), z[c] = (float)(100 + c % 7);
    float *dx = dev_copy(x, n * 4), *dh = dev_copy(h, n * 4), *ds = dev_copy(s, sizeof s), *dz = dev_copy(z, sizeof z);
    const qtk_outq qh = outq_tensor(0.05f, 127.0f);
    qtk_outq qr = {1, 1, 0, 0, s, z, 0, 255, 1}, dqr = qr;
    dqr.s_c = ds, dqr.z_c = dz;
    memcpy(o->cpu, x, n * 4);
    qtk_op_residual(o->cpu, h, n, C, &qh, &qr);
    ck_qtk(qtk_op_residual_cuda(dx, dh, n, C, &qh, &dqr, NULL));
    ck_qtk(qtk_cuda_memcpy_d2h(o->gpu, dx, n * 4));
    qtk_cuda_free(dx), qtk_cuda_free(dh), qtk_cuda_free(ds), qtk_cuda_free(dz);
    free(x), free(h);
}

// --- the GEMM module (core/cuda/gemm.h) against double sums on the CPU ---------------------------

// y (rows, N) = x (rows, K; stride ldx) W^T + b, in double then float; h16: x and W rounded to fp16 first
static void gemm_ref(const float *x, int ldx, const float *W, const float *b, float *y, int rows, int N, int K, int h16,
                     int softplus) {
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < N; o++) {
            double t = 0;
            for (int k = 0; k < K; k++) {
                float a = x[(size_t)r * ldx + k], w = W[(size_t)o * K + k];
                if (h16) a = qtk_f16_to_f32(qtk_f32_to_f16(a)), w = qtk_f16_to_f32(qtk_f32_to_f16(w));
                t += (double)a * w;
            }
            float v = (float)t;
            if (b) v += b[o];
            y[(size_t)r * N + o] = softplus ? qtk_softplus(v) : v;
        }
}

// cuBLASLt with the bias epilogue, with the residual accumulated, and cuBLAS where the caller adds the
// bias; the linear layer as GEMV (1 and 5 rows; float32, fp16, strided input, softplus) and as cuBLAS
// (40 rows; float32 and fp16 tensor cores)
static void gemm_float(qtk_rng *r, outputs *o) {
    enum { N = 200, K = 264, ROWS = 40, LDX = 272 };
    float *x = malloc((size_t)ROWS * LDX * 4), *W = malloc((size_t)N * K * 4), b[N],
          *res = malloc((size_t)ROWS * N * 4);
    uint16_t *Wh = malloc((size_t)N * K * 2);
    fill(r, x, (size_t)ROWS * LDX, -2.0f, 2.0f), fill(r, W, (size_t)N * K, -0.5f, 0.5f), fill(r, b, N, -1.0f, 1.0f);
    fill(r, res, (size_t)ROWS * N, -3.0f, 3.0f);
    for (size_t i = 0; i < (size_t)N * K; i++) Wh[i] = qtk_f32_to_f16(W[i]);
    const size_t per = (size_t)ROWS * N;
    enum { RUNS = 9 };
    out_alloc(o, RUNS * per, F32);
    float *dx = dev_copy(x, (size_t)ROWS * LDX * 4), *dW = dev_copy(W, (size_t)N * K * 4), *db = dev_copy(b, sizeof b),
          *dy = dev_alloc(per * 4);
    void *dWh = dev_copy(Wh, (size_t)N * K * 2), *dxh = dev_alloc((size_t)ROWS * K * 2);
    qtk_gemm *g = NULL;
    ck_qtk(qtk_gemm_create(&g, NULL, 0, (size_t)4 << 20, 0));
    float *xc = malloc((size_t)ROWS * K * 4); // x packed (stride K) for qtk_gemm_lt
    for (int i = 0; i < ROWS; i++) memcpy(xc + (size_t)i * K, x + (size_t)i * LDX, (size_t)K * 4);
    float *dxc = dev_copy(xc, (size_t)ROWS * K * 4);
    for (int run = 0; run < RUNS; run++) {
        float *cpu = (float *)o->cpu + run * per, *gpu = (float *)o->gpu + run * per;
        int rows = ROWS, done = 1;
        switch (run) {
        case 0: // cuBLASLt, bias in the epilogue
            gemm_ref(xc, K, W, b, cpu, ROWS, N, K, 0, 0);
            ck_qtk(qtk_gemm_lt(g, dxc, dW, db, dy, ROWS, N, K, 0, &done));
            break;
        case 1: // the residual as C: y = res + x W^T
            gemm_ref(xc, K, W, NULL, cpu, ROWS, N, K, 0, 0);
            for (size_t i = 0; i < per; i++) cpu[i] += res[i];
            ck_qtk(qtk_cuda_memcpy_h2d(dy, res, per * 4));
            ck_qtk(qtk_gemm_lt(g, dxc, dW, NULL, dy, ROWS, N, K, 1, &done));
            break;
        case 2: case 3: case 4: case 5: // GEMV: float32 1 row, fp16 5 rows, float32 5 rows + softplus, fp16 1 row
            rows = run == 2 || run == 5 ? 1 : 5;
            gemm_ref(x, LDX, W, b, cpu, rows, N, K, run & 1, run == 4);
            ck_qtk(qtk_gemv(NULL, run & 1 ? dWh : (void *)dW, run & 1, dx, LDX, db, dy, N, rows, N, K, run == 4));
            break;
        default: // the linear layer: GEMV (6), cuBLAS float32 (7) and fp16 tensor cores (8)
            rows = run == 6 ? 3 : ROWS;
            gemm_ref(x, LDX, W, b, cpu, rows, N, K, run == 8, run == 7);
            ck_qtk(qtk_gemm_linear(g, dx, LDX, run == 8 ? dWh : (void *)dW, run == 8, dxh, db, dy, (size_t)rows, N, K,
                                   run == 7));
        }
        ck_qtk(qtk_cuda_synchronize());
        ck_qtk(qtk_cuda_memcpy_d2h(gpu, dy, (size_t)rows * N * 4));
        if (!done) // plain cuBLAS ran: the bias is the caller's
            for (size_t i = 0; i < (size_t)rows * N; i++) gpu[i] += b[i % N];
    }
    qtk_gemm_destroy(g);
    qtk_cuda_free(dx), qtk_cuda_free(dW), qtk_cuda_free(db), qtk_cuda_free(dy), qtk_cuda_free(dWh), qtk_cuda_free(dxh);
    qtk_cuda_free(dxc);
    free(x), free(W), free(res), free(Wh), free(xc);
}

// int32 sums of int8 codes (IMMA) against exact integer sums: every product sign, the extremes -128 and 127
static void gemm_int8(qtk_rng *r, outputs *o) {
    enum { N = 132, K = 320, ROWS = 24 };
    int8_t *x = malloc((size_t)ROWS * K), *W = malloc((size_t)N * K);
    for (size_t i = 0; i < (size_t)ROWS * K; i++) x[i] = (int8_t)(qtk_rng_u32(r) & 0xff);
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (int8_t)(qtk_rng_u32(r) & 0xff);
    for (int k = 0; k < K; k++) x[k] = -128, W[k] = -128; // row 0 x row 0: 320 * 16384, the largest sum
    out_alloc(o, (size_t)ROWS * N, F64);
    int8_t *dx = dev_copy(x, (size_t)ROWS * K), *dW = dev_copy(W, (size_t)N * K);
    int32_t *dy = dev_alloc((size_t)ROWS * N * 4), *y = malloc((size_t)ROWS * N * 4);
    qtk_gemm *g = NULL;
    ck_qtk(qtk_gemm_create(&g, NULL, 0, (size_t)4 << 20, 0));
    ck_assert_msg(qtk_gemm_int8_ok(g, ROWS, N, K), "no cuBLASLt int8 algorithm for %dx%dx%d", N, ROWS, K);
    ck_qtk(qtk_gemm_int8(g, dx, dW, dy, ROWS, N, K));
    ck_qtk(qtk_cuda_synchronize());
    ck_qtk(qtk_cuda_memcpy_d2h(y, dy, (size_t)ROWS * N * 4));
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < N; j++) {
            int64_t t = 0;
            for (int k = 0; k < K; k++) t += (int64_t)x[(size_t)i * K + k] * W[(size_t)j * K + k];
            ((double *)o->cpu)[(size_t)i * N + j] = (double)t;
            ((double *)o->gpu)[(size_t)i * N + j] = (double)y[(size_t)i * N + j];
        }
    qtk_gemm_destroy(g);
    qtk_cuda_free(dx), qtk_cuda_free(dW), qtk_cuda_free(dy);
    free(x), free(W), free(y);
}

// --- CNN ops: dense conv (im2col + GEMM), depthwise, batch norm + activations -----------------------------


// dense convs (3x3 stride 2 pad 1 with bias + ReLU6, 1x1 pointwise, 7x7 stride 2 pad 3 without bias) against
// the CPU's im2col + OpenBLAS (no output quantizer: a sum in another order may cross a rounding boundary)
static void cnn_conv_dense(qtk_rng *r, outputs *o) {
    const qtk_conv2d_shape sh[3] = {{2, 16, 15, 17, 24, 3, 3, 2, 2, 1, 1, 1}, {2, 24, 8, 9, 40, 1, 1, 1, 1, 0, 0, 1},
                                    {1, 3, 33, 31, 16, 7, 7, 2, 2, 3, 3, 1}};
    size_t total = 0, off[3];
    int Ho, Wo;
    for (int i = 0; i < 3; i++) {
        ck_qtk(qtk_conv2d_out(&sh[i], &Ho, &Wo));
        off[i] = total;
        total += (size_t)sh[i].B * sh[i].O * Ho * Wo;
    }
    out_alloc(o, total, F32);
    qtk_gemm *g = NULL;
    ck_qtk(qtk_gemm_create(&g, NULL, 0, (size_t)4 << 20, 0));
    for (int i = 0; i < 3; i++) {
        const qtk_conv2d_shape *s = &sh[i];
        ck_qtk(qtk_conv2d_out(s, &Ho, &Wo));
        const size_t nx = (size_t)s->B * s->C * s->H * s->W, nw = (size_t)s->O * s->C * s->KH * s->KW,
                     ny = (size_t)s->B * s->O * Ho * Wo;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)s->O * 4);
        fill(r, x, nx, -2.0f, 2.0f), fill(r, w, nw, -0.3f, 0.3f), fill(r, b, (size_t)s->O, -0.5f, 0.5f);
        float *dx = dev_copy(x, nx * 4), *dw = dev_copy(w, nw * 4), *db = dev_copy(b, (size_t)s->O * 4), *dy = dev_alloc(ny * 4),
              *ws = dev_alloc(qtk_conv2d_ws_floats(s) * 4);
        const qtk_act act = i == 0 ? QTK_ACT_RELU6 : QTK_ACT_NONE;
        ck_qtk(qtk_op_conv2d(s, x, w, i == 2 ? NULL : b, act, NULL, (float *)o->cpu + off[i]));
        ck_qtk(qtk_op_conv2d_cuda(s, dx, dw, i == 2 ? NULL : db, act, NULL, dy, ws, g, NULL));
        ck_qtk(qtk_cuda_synchronize());
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + off[i], dy, ny * 4));
        qtk_cuda_free(dx), qtk_cuda_free(dw), qtk_cuda_free(db), qtk_cuda_free(dy), qtk_cuda_free(ws);
        free(x), free(w), free(b);
    }
    qtk_gemm_destroy(g);
}

// depthwise 3x3 (stride 1 and 2) and 5x5 with hardswish, and every activation after a batch norm (every other
// one with a per-channel output quantizer)
static void cnn_depthwise_bn(qtk_rng *r, outputs *o) {
    enum { B = 2, C = 32, H = 14, W = 13, HW = H * W };
    const qtk_conv2d_shape sh[3] = {{B, C, H, W, C, 3, 3, 1, 1, 1, 1, C}, {B, C, H, W, C, 3, 3, 2, 2, 1, 1, C},
                                    {B, C, H, W, C, 5, 5, 2, 2, 2, 2, C}};
    const qtk_act acts[] = {QTK_ACT_NONE, QTK_ACT_RELU, QTK_ACT_RELU6, QTK_ACT_HARDSWISH, QTK_ACT_HARDSIGMOID};
    const size_t nx = (size_t)B * C * HW, NA = sizeof acts / sizeof *acts;
    size_t total = NA * nx, off[3];
    int Ho, Wo;
    for (int i = 0; i < 3; i++) {
        ck_qtk(qtk_conv2d_out(&sh[i], &Ho, &Wo));
        off[i] = total;
        total += (size_t)B * C * Ho * Wo;
    }
    out_alloc(o, total, F32);
    float *x = malloc(nx * 4), w[C * 25], bias[C], gamma[C], beta[C], mean[C], var[C], a[C], b[C];
    fill(r, x, nx, -6.0f, 6.0f), fill(r, w, C * 25, -0.5f, 0.5f), fill(r, bias, C, -0.5f, 0.5f);
    fill(r, gamma, C, 0.5f, 1.5f), fill(r, beta, C, -0.5f, 0.5f), fill(r, mean, C, -1.0f, 1.0f), fill(r, var, C, 0.1f, 2.0f);
    specials(x, nx);
    qtk_bn_affine(gamma, beta, mean, var, 1e-5f, C, a, b);
    float *dx = dev_copy(x, nx * 4), *dw = dev_copy(w, sizeof w), *dbias = dev_copy(bias, sizeof bias),
          *da = dev_copy(a, sizeof a), *db = dev_copy(b, sizeof b), *dy = dev_alloc(nx * 4);
    const qtk_outq q = outq_tensor(0.05f, 127.0f);
    float sc[C], zc[C];
    for (int c = 0; c < C; c++) sc[c] = 0.02f + 0.002f * c, zc[c] = (float)(c % 5) - 2.0f;
    float *dsc = dev_copy(sc, sizeof sc), *dzc = dev_copy(zc, sizeof zc);
    const qtk_outq qc = outq_channels(sc, zc), dqc = outq_channels(dsc, dzc);
    for (size_t k = 0; k < NA; k++) {
        float *cpu = (float *)o->cpu + k * nx;
        memcpy(cpu, x, nx * 4);
        qtk_op_bn_act(cpu, B, C, HW, a, b, acts[k], k % 2 ? &qc : NULL);
        ck_qtk(qtk_cuda_memcpy_d2d(dy, dx, nx * 4));
        ck_qtk(qtk_op_bn_act_cuda(dy, B, C, HW, da, db, acts[k], k % 2 ? &dqc : NULL, NULL));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + k * nx, dy, nx * 4));
    }
    for (int i = 0; i < 3; i++) {
        ck_qtk(qtk_op_conv2d(&sh[i], x, w, i ? bias : NULL, QTK_ACT_HARDSWISH, i == 1 ? &q : NULL, (float *)o->cpu + off[i]));
        ck_qtk(qtk_op_conv2d_cuda(&sh[i], dx, dw, i ? dbias : NULL, QTK_ACT_HARDSWISH, i == 1 ? &q : NULL, dy, NULL, NULL, NULL));
        ck_qtk(qtk_conv2d_out(&sh[i], &Ho, &Wo));
        ck_qtk(qtk_cuda_memcpy_d2h((float *)o->gpu + off[i], dy, (size_t)B * C * Ho * Wo * 4));
    }
    qtk_cuda_free(dx), qtk_cuda_free(dw), qtk_cuda_free(dbias), qtk_cuda_free(da), qtk_cuda_free(db), qtk_cuda_free(dy);
    qtk_cuda_free(dsc), qtk_cuda_free(dzc);
    free(x);
}

// SiLU (ULP: CUDA's expf) and GELU (NMSE: far below zero 1 + erf(v / sqrt 2) cancels, and CUDA's erff may
// reach -1 where the CPU's stops an ULP short, so a -1e-7 output can be -0 on the GPU) after a batch norm
static void cnn_bn_act_exp(qtk_rng *r, outputs *o, qtk_act act) {
    enum { B = 2, C = 24, HW = 300 };
    const size_t n = (size_t)B * C * HW;
    out_alloc(o, n, F32);
    float *x = malloc(n * 4), a[C], b[C];
    fill(r, x, n, -8.0f, 8.0f), fill(r, a, C, 0.5f, 1.5f), fill(r, b, C, -0.5f, 0.5f);
    float *dx = dev_copy(x, n * 4), *da = dev_copy(a, sizeof a), *db = dev_copy(b, sizeof b);
    memcpy(o->cpu, x, n * 4);
    qtk_op_bn_act(o->cpu, B, C, HW, a, b, act, NULL);
    ck_qtk(qtk_op_bn_act_cuda(dx, B, C, HW, da, db, act, NULL, NULL));
    ck_qtk(qtk_cuda_memcpy_d2h(o->gpu, dx, n * 4));
    qtk_cuda_free(dx), qtk_cuda_free(da), qtk_cuda_free(db);
    free(x);
}
static void cnn_bn_silu(qtk_rng *r, outputs *o) { cnn_bn_act_exp(r, o, QTK_ACT_SILU); }
static void cnn_bn_gelu(qtk_rng *r, outputs *o) { cnn_bn_act_exp(r, o, QTK_ACT_GELU); }

static const backend_case cases[] = {
    {"LayerNorm, softmax, RMSNorm (+ add), gated RMSNorm", NMSE, 1e-12, ops_norms}, // row sums in another order
    {"integer LayerNorm (PTF and per tensor)", BITWISE, 0, ops_int_layernorm},
    {"causal conv1d + SiLU (prefill, decode, states)", ULP, 4, ops_conv1d}, // SiLU's expf: CUDA's is within 2 ULP (H100: 1)
    {"residual add with its quantizers", BITWISE, 0, ops_residual},
    {"GEMM: cuBLASLt (bias, residual), GEMV (f32, fp16), linear (GEMV, SGEMM, fp16)", NMSE, 1e-12, gemm_float}, // sum order
    {"int8 GEMM on tensor cores (IMMA)", BITWISE, 0, gemm_int8},
    {"conv2d dense (im2col + GEMM; bias, ReLU6)", NMSE, 1e-12, cnn_conv_dense}, // sum order
    {"conv2d depthwise; batch norm with ReLU, ReLU6, hardswish, hardsigmoid (+ output quantizers)", BITWISE, 0, cnn_depthwise_bn},
    {"batch norm with SiLU", ULP, 4, cnn_bn_silu},   // CUDA's expf
    {"batch norm with GELU", NMSE, 1e-12, cnn_bn_gelu}, // CUDA's erff (see cnn_bn_act_exp)
};

int main(void) { return backends_main("backends_ops", cases, (int)(sizeof cases / sizeof *cases)); }
