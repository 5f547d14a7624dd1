// qtk_model over the GPU forward (vit_cuda.h): the CPU adapter of
// vit_quant.c for everything but the forwards, which run on the GPU; a
// changed scale is re-quantized on the CPU and uploaded.
#include "vit_cuda.h"

#include <stdio.h>
#include <string.h>

static qtk_status g_calibrate(qtk_model *mm, const void *inputs, int n, int batch) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_cuda_calibrate(qv->gpu, qv, inputs, n, batch);
}

static qtk_status g_requantize(qtk_model *mm, int i) {
    qtk_vit_quant *qv = mm->self;
    if (i < 0 || i >= qv->reg.n || !qv->reg.p[i].name[0]) return qtk_fail(QTK_ERR_ARG, "no quantizer %d", i);
    qtk_vit_cuda_invalidate(qv->gpu, i); // the cached inputs of later blocks
    if (qv->reg.p[i].kind != QTK_QPOINT_WEIGHT) return qtk_vit_cuda_update_act(qv->gpu, qv, i);
    return qtk_vit_cuda_requantize(qv->gpu, qv, i); // on the GPU; the host copy follows lazily
}

// The whole set resident on the GPU; where it does not fit, streamed through host memory in batches.
static qtk_status g_block_input_all(qtk_model *mm, const void *inputs, int n, int block, float *cache) {
    qtk_vit_quant *qv = mm->self;
    if (!qv->gpu_streaming) {
        // resident: the host copy is not needed (forward_from_all reads the GPU's)
        qtk_status st = qtk_vit_cuda_block_input_all(qv->gpu, inputs, n, block, NULL, 1);
        if (st != QTK_ERR_NOMEM) return st;
        fprintf(stderr, "qtk: note: %s; streaming the calibration set through host memory instead\n", qtk_last_error());
        qv->gpu_streaming = 1;
    }
    int B = qtk_vit_cuda_max_batch(qv->gpu);
    for (int i = 0; i < n; i += B)
        QTK_TRY(qtk_vit_cuda_block_input(qv->gpu, qtk_model_input_at(mm, inputs, (size_t)i), n - i < B ? n - i : B, block,
                                         cache + (size_t)i * mm->block_input_elems[block], 1));
    return QTK_OK;
}

static qtk_status g_forward_from_all(qtk_model *mm, const float *cache, int n, int block, float *out) {
    qtk_vit_quant *qv = mm->self;
    if (!qv->gpu_streaming) return qtk_vit_cuda_forward_from_all(qv->gpu, n, block, out, 1);
    int B = qtk_vit_cuda_max_batch(qv->gpu);
    for (int i = 0; i < n; i += B)
        QTK_TRY(qtk_vit_cuda_forward_from(qv->gpu, cache + (size_t)i * mm->block_input_elems[block], n - i < B ? n - i : B, block,
                                          out + (size_t)i * mm->n_outputs, 1));
    return QTK_OK;
}

static qtk_status g_block_input(qtk_model *mm, const void *inputs, int B, int block, float *cache) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_cuda_block_input(qv->gpu, inputs, B, block, cache, 1);
}

static qtk_status g_forward_from(qtk_model *mm, const float *cache, int B, int block, float *out) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_cuda_forward_from(qv->gpu, cache, B, block, out, 1);
}

static qtk_status g_forward(qtk_model *mm, const void *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_cuda_forward(qv->gpu, inputs, B, out, 1);
}

static qtk_status g_forward_fp(qtk_model *mm, const void *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    return qtk_vit_cuda_forward(qv->gpu, inputs, B, out, 0);
}

static qtk_status g_forward_targets(qtk_model *mm, const void *inputs, int B, float *out) {
    qtk_vit_quant *qv = mm->self;
    // as the CPU adapter: the reference keeps integer LayerNorm in its "FP" targets unless asked not to
    return qtk_vit_cuda_forward(qv->gpu, inputs, B, out, qv->targets_float || qv->reg.mode != QTK_QREG_QUANT ? 0 : 2);
}

qtk_status qtk_vit_quant_model_cuda(qtk_vit_quant *qv, qtk_vit_cuda *g, qtk_model *out) {
    if (!g) return qtk_fail(QTK_ERR_ARG, "no GPU model");
    QTK_TRY(qtk_vit_quant_model(qv, NULL, out));
    qv->gpu = g;
    qv->gpu_streaming = 0;
    out->calibrate = g_calibrate;
    out->requantize = g_requantize;
    out->block_input = g_block_input;
    out->forward_from = g_forward_from;
    out->forward = g_forward;
    out->forward_fp = g_forward_fp;
    out->forward_targets = g_forward_targets;
    out->block_input_all = g_block_input_all;
    out->forward_from_all = g_forward_from_all;
    return QTK_OK;
}

static const char *const gemm_names[] = {"fp32", "tf32", "int8"};

qtk_status qtk_vit_gemm_parse(const char *name, qtk_vit_gemm *out) {
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, gemm_names[i])) {
            *out = (qtk_vit_gemm)i;
            return QTK_OK;
        }
    return qtk_fail(QTK_ERR_ARG, "GPU GEMMs \"%s\": expected fp32, tf32 or int8", name ? name : "");
}

const char *qtk_vit_gemm_name(qtk_vit_gemm g) { return (unsigned)g < 3 ? gemm_names[g] : "?"; }
