// The GPU ViT's weights for the int8 path (vit_cuda.h): int8 codes and the per-row affine form of the
// bias-corrected weights (qtk_weight_affine's twin), the check that this GPU's fp16 GEMMs sum small
// integers exactly, and re-quantization of a weight on the GPU during the search.
#include "vit_internal.h"

// In the int8 path the blocks' linear weights (qkv, proj, fc1, fc2) also get int8 codes.
int vitc_int_point(const qtk_vit_cuda *g, int i) {
    if (g->gemm != QTK_VIT_GEMM_INT8 || i < QTK_VIT_P_BLOCK0 || i >= qtk_vit_head_base(g->m)) return 0;
    int k = (i - QTK_VIT_P_BLOCK0) % QTK_VIT_PB;
    return k == QTK_VIT_B_QKV_W || k == QTK_VIT_B_PROJ_W || k == QTK_VIT_B_FC1_W || k == QTK_VIT_B_FC2_W;
}

// The int8 codes of weight `point` from its scales, already in g->qd.d_sz (on the default stream: the
// caller synchronizes). A weight that cannot have them (not per output channel) runs in FP32.
qtk_status vitc_int_weight(qtk_vit_cuda *g, const qtk_vit_quant *qv, int point) {
    struct wint *w = &g->wi[point];
    const qtk_qpoint *q = &qv->reg.p[point];
    w->ok = 0;
    if (!w->codes || !g->qd.w_on[point] || q->qp.gran != QTK_PER_CHANNEL || q->qp.axis != 0 || q->qp.n != q->O) return QTK_OK;
    int lo, hi;
    QTK_TRY(qtk_qrange(q->qp.bits, q->qp.is_signed, &lo, &hi));
    QTK_TRY(qtk_weight_affine_cuda(DEV(g, q->w), q->O, q->K, g->qd.d_sz, g->qd.d_sz + q->O, lo, hi, q->qp.formula,
                                   qv->qc.bias_corr, w->codes, q->K, w->alpha, w->gamma, w->bsum));
    w->ok = 1;
    return QTK_OK;
}

// Room for the int8 weights (once) and their codes from the scales in qv.
qtk_status vitc_int_weights(qtk_vit_cuda *g, const qtk_vit_quant *qv) {
    size_t total = 0;
    for (int i = 0; i < qv->reg.n; i++)
        if (vitc_int_point(g, i)) total += ((qv->reg.p[i].O + 4) * qv->reg.p[i].K + 255) / 256 * 256 + (qv->reg.p[i].O * 20 + 255) / 256 * 256;
    if (!total) return QTK_OK;
    if (total > g->wi_cap) {
        cudaFree(g->wi_mem);
        g->wi_mem = NULL;
        g->wi_cap = 0;
        QTK_CUDA_TRY(cudaMalloc(&g->wi_mem, total));
        g->wi_cap = total;
    }
    char *p = (char *)g->wi_mem;
    for (int i = 0; i < qv->reg.n; i++) {
        if (!vitc_int_point(g, i)) continue;
        const size_t O = qv->reg.p[i].O, K = qv->reg.p[i].K;
        struct wint *w = &g->wi[i];
        w->codes = (int8_t *)p;
        p += ((O + 4) * K + 255) / 256 * 256;
        w->alpha = (double *)p;
        w->gamma = w->alpha + O;
        w->bsum = (int32_t *)(w->gamma + O);
        p += (O * 20 + 255) / 256 * 256;
        QTK_CUDA_TRY(cudaMemsetAsync(w->codes + O * K, 0, 4 * K, g->st)); // the ones row and the padding
        QTK_CUDA_TRY(cudaMemsetAsync(w->codes + O * K, 1, K, g->st));
        QTK_TRY(qtk_qreg_dev_weight_params(&g->qd, &qv->reg.p[i]));
        QTK_TRY(vitc_int_weight(g, qv, i));
    }
    QTK_CUDA_TRY(cudaDeviceSynchronize());
    return QTK_OK;
}

// The premise of the fp16 attention, checked on this GPU with cuBLAS's own GEMM: integer operands in
// [-255, 255] as fp16, FP32 sums of 256 products (up to 256 * 255^2 < 2^24 in magnitude), compared with
// the exact sums. Large and small products are mixed so that an accumulator that dropped low bits
// while aligning them would show.
qtk_status vitc_fp16_sums_exact(qtk_vit_cuda *g, int *exact) {
    const int n = 256;
    __half *ha = (__half *)malloc((size_t)2 * n * n * sizeof(__half));
    float *d = (float *)malloc((size_t)n * n * sizeof(float));
    int *ia = (int *)malloc((size_t)2 * n * n * sizeof(int));
    if (!ha || !d || !ia) {
        free(ha), free(d), free(ia);
        return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    uint32_t r = 12345u;
    for (int i = 0; i < 2 * n * n; i++) {
        r = r * 1664525u + 1013904223u;
        int v = (int)(r >> 23) % 511 - 255;             // [-255, 255]
        if ((i / n) % 3 == 1) v = (i % 5 == 0) ? 255 : (int)(r >> 29) - 4; // big and tiny terms in one sum
        ia[i] = v;
        ha[i] = __int2half_rn(v);
    }
    void *dm = NULL;
    cudaError_t e = cudaMalloc(&dm, (size_t)2 * n * n * sizeof(__half) + (size_t)n * n * sizeof(float));
    qtk_status st = QTK_OK;
    if (e == cudaSuccess) e = cudaMemcpy(dm, ha, (size_t)2 * n * n * sizeof(__half), cudaMemcpyHostToDevice);
    if (e != cudaSuccess) st = qtk_fail(QTK_ERR_CUDA, "fp16 check: %s", cudaGetErrorString(e));
    __half *da = (__half *)dm, *db = da + (size_t)n * n;
    float *dc = (float *)(db + (size_t)n * n);
    const float one = 1.0f, zero = 0.0f;
    // column-major: C (n x n) = A^T B, A and B (n x n) with columns of n terms
    if (st == QTK_OK && cublasGemmEx(g->gm.h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, da, CUDA_R_16F, n, db, CUDA_R_16F, n,
                                     &zero, dc, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
        st = qtk_fail(QTK_ERR_CUDA, "fp16 check: cublasGemmEx failed");
    if (st == QTK_OK && (e = cudaStreamSynchronize(g->st)) == cudaSuccess)
        e = cudaMemcpy(d, dc, (size_t)n * n * sizeof(float), cudaMemcpyDeviceToHost);
    if (st == QTK_OK && e != cudaSuccess) st = qtk_fail(QTK_ERR_CUDA, "fp16 check: %s", cudaGetErrorString(e));
    *exact = st == QTK_OK;
    for (int j = 0; st == QTK_OK && j < n && *exact; j++)
        for (int i = 0; i < n; i++) {
            long long t = 0;
            for (int k = 0; k < n; k++) t += (long long)ia[i * n + k] * ia[(size_t)n * n + j * n + k];
            if ((double)d[j * n + i] != (double)t) {
                *exact = 0;
                break;
            }
        }
    cudaFree(dm);
    free(ha), free(d), free(ia);
    return st;
}

extern "C" qtk_status qtk_vit_cuda_requantize(qtk_vit_cuda *g, qtk_vit_quant *qv, int point) {
    if (!g->quant_ready) return qtk_fail(QTK_ERR_ARG, "GPU forward: set_quant first");
    if (point < 0 || point >= qv->reg.n || qv->reg.p[point].kind != QTK_QPOINT_WEIGHT)
        return qtk_fail(QTK_ERR_ARG, "point %d is not a weight quantizer", point);
    // qtk_qreg_requantize on the GPU (its scales stay in qd.d_sz for the int8 codes)
    qtk_status st = qtk_qreg_dev_requantize(&g->qd, &qv->reg, point, DEV(g, qv->reg.p[point].w));
    if (st == QTK_OK && g->qd.w_on[point] && vitc_int_point(g, point)) st = vitc_int_weight(g, qv, point);
    cudaError_t e;
    if (st == QTK_OK && (e = cudaDeviceSynchronize()) != cudaSuccess)
        st = qtk_fail(QTK_ERR_CUDA, "GPU re-quantization: %s", cudaGetErrorString(e));
    return st;
}
