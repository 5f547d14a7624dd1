// The search's calibration set on the GPU (vit_cuda.h): its images and every block's input stay
// resident, and block inputs are reused until a quantizer of an earlier block changes.
#include "vit_internal.h"

// --- the search's calibration set, resident --------------------------------------------

extern "C" void qtk_vit_cuda_invalidate(qtk_vit_cuda *g, int point) {
    const int depth = g->m->cfg.depth, hb = qtk_vit_head_base(g->m);
    int k = point < QTK_VIT_P_BLOCK0 ? -1 : point >= hb ? depth : (point - QTK_VIT_P_BLOCK0) / QTK_VIT_PB;
    // a change in block k alters the inputs of blocks k+1.. (the embedding's: all of them)
    for (int j = k + 1; j <= depth && j < 257; j++) g->slot_valid[j] = 0;
}

static qtk_status cal_reserve(qtk_vit_cuda *g, const float *images, int n) {
    const qtk_vit_config *c = &g->m->cfg;
    const size_t img = (size_t)c->in_chans * c->img_size * c->img_size, tc = (size_t)g->m->n_tokens * c->dim;
    if (g->cal_host == images && g->cal_n == n) return QTK_OK;
    cudaFree(g->d_cal);
    cudaFree(g->d_slots);
    g->d_cal = g->d_slots = NULL;
    g->cal_host = NULL;
    memset(g->slot_valid, 0, sizeof g->slot_valid);
    size_t fr = 0, tot = 0;
    QTK_CUDA_TRY(cudaMemGetInfo(&fr, &tot));
    size_t need_img = (size_t)n * img * sizeof(float), slot = (size_t)n * tc * sizeof(float);
    size_t reserve = (size_t)256 << 20; // headroom for cuBLAS and the rest
    if (getenv("QTK_CUDA_STREAM")) // tests of the fallback
        return qtk_fail(QTK_ERR_NOMEM, "QTK_CUDA_STREAM is set: the search's calibration set stays in host memory");
    if (need_img + slot + reserve > fr)
        return qtk_fail(QTK_ERR_NOMEM, "the search's %d calibration images need %.2f GiB of GPU memory, %.2f GiB free", n,
                        (need_img + slot) / 1073741824.0, fr / 1073741824.0);
    g->n_slots = need_img + slot * (size_t)(c->depth + 1) + reserve <= fr ? c->depth + 1 : 1;
    if (getenv("QTK_CUDA_ONE_SLOT")) g->n_slots = 1; // tests: the low-memory path
    QTK_CUDA_TRY(cudaMalloc((void **)&g->d_cal, need_img));
    QTK_CUDA_TRY(cudaMalloc((void **)&g->d_slots, slot * (size_t)g->n_slots));
    QTK_CUDA_TRY(cudaMemcpy(g->d_cal, images, need_img, cudaMemcpyHostToDevice));
    g->cal_host = images;
    g->cal_n = n;
    g->cur_block = -1;
    return QTK_OK;
}

// slot s of image i
static float *slot_at(qtk_vit_cuda *g, int s, int i) {
    size_t tc = (size_t)g->m->n_tokens * g->m->cfg.dim;
    return g->d_slots + ((size_t)s * g->cal_n + (size_t)i) * tc;
}

extern "C" qtk_status qtk_vit_cuda_block_input_all(qtk_vit_cuda *g, const float *images, int n, int block, float *x_out,
                                                   int mode) {
    QTK_TRY(vitc_range_checked(g, 1, block, mode));
    QTK_TRY(cal_reserve(g, images, n));
    const qtk_vit_config *c = &g->m->cfg;
    const size_t img = (size_t)c->in_chans * c->img_size * c->img_size, tc = (size_t)g->m->n_tokens * c->dim;
    fwd f = vitc_fwd_for(g, mode);
    int reuse = g->n_slots > 1, dst = reuse ? block : 0;
    if (!(reuse && g->slot_valid[block])) {
        // start from the nearest valid earlier block input, else from the images
        int j = -1;
        for (int k = block - 1; reuse && k >= 0; k--)
            if (g->slot_valid[k]) {
                j = k;
                break;
            }
        for (int i = 0; i < n; i += g->maxB) {
            int B = n - i < g->maxB ? n - i : g->maxB;
            size_t bytes = (size_t)B * tc * sizeof(float);
            int from = j;
            if (j < 0) {
                QTK_TRY(vitc_fwd_embed(&f, g->d_cal + (size_t)i * img, B, 1));
                from = 0;
                if (reuse) QTK_CUDA_TRY(cudaMemcpyAsync(slot_at(g, 0, i), g->x, bytes, cudaMemcpyDeviceToDevice, g->st));
            } else
                QTK_CUDA_TRY(cudaMemcpyAsync(g->x, slot_at(g, j, i), bytes, cudaMemcpyDeviceToDevice, g->st));
            for (int l = from; l < block; l++) {
                QTK_TRY(vitc_fwd_blocks(&f, B, l, l + 1));
                if (reuse || l + 1 == block)
                    QTK_CUDA_TRY(cudaMemcpyAsync(slot_at(g, reuse ? l + 1 : 0, i), g->x, bytes, cudaMemcpyDeviceToDevice, g->st));
            }
            if (!reuse && block == 0) QTK_CUDA_TRY(cudaMemcpyAsync(slot_at(g, 0, i), g->x, bytes, cudaMemcpyDeviceToDevice, g->st));
        }
        if (reuse)
            for (int k = j < 0 ? 0 : j; k <= block; k++) g->slot_valid[k] = 1;
    }
    g->cur_block = block;
    if (x_out)
        QTK_CUDA_TRY(cudaMemcpyAsync(x_out, slot_at(g, dst, 0), (size_t)n * tc * sizeof(float), cudaMemcpyDeviceToHost, g->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}

extern "C" qtk_status qtk_vit_cuda_forward_from_all(qtk_vit_cuda *g, int n, int block, float *logits, int mode) {
    QTK_TRY(vitc_range_checked(g, 1, block, mode));
    if (block != g->cur_block || n != g->cal_n || (g->n_slots > 1 && !g->slot_valid[block]))
        return qtk_fail(QTK_ERR_ARG, "GPU forward: block %d's inputs of %d images are not the current ones (block_input_all "
                        "first)", block, n);
    const size_t tc = (size_t)g->m->n_tokens * g->m->cfg.dim, NC = (size_t)g->m->cfg.n_classes;
    fwd f = vitc_fwd_for(g, mode);
    int src = g->n_slots > 1 ? block : 0;
    for (int i = 0; i < n; i += g->maxB) {
        int B = n - i < g->maxB ? n - i : g->maxB;
        QTK_CUDA_TRY(cudaMemcpyAsync(g->x, slot_at(g, src, i), (size_t)B * tc * sizeof(float), cudaMemcpyDeviceToDevice,
                                     g->st));
        QTK_TRY(vitc_fwd_blocks(&f, B, block, g->m->cfg.depth));
        QTK_TRY(vitc_fwd_head(&f, B));
        QTK_CUDA_TRY(cudaMemcpyAsync(logits + (size_t)i * NC, g->logits, (size_t)B * NC * sizeof(float),
                                     cudaMemcpyDeviceToHost, g->st));
    }
    QTK_CUDA_TRY(cudaStreamSynchronize(g->st));
    return QTK_OK;
}
