// CPU-only builds: the GPU Mamba API exists and says it is not there.
#include "../mamba_cuda.h"

#define NO_CUDA() qtk_fail(QTK_ERR_UNSUPPORTED, "this qtk was built without CUDA (rebuild with nvcc and CUDA=1)")

qtk_status qtk_mamba_cuda_create(qtk_mamba_cuda **out, const qtk_mamba *m, int max_batch, int max_len, int fp16) {
    *out = NULL;
    return NO_CUDA();
}
void qtk_mamba_cuda_destroy(qtk_mamba_cuda *g) {}
qtk_status qtk_mamba_cuda_set_scan(qtk_mamba_cuda *g, qtk_scan_mode mode) { return NO_CUDA(); }
qtk_status qtk_mamba_cuda_reset(qtk_mamba_cuda *g, int B) { return NO_CUDA(); }
qtk_status qtk_mamba_cuda_prefill(qtk_mamba_cuda *g, const int32_t *tokens, int L, float *logits) { return NO_CUDA(); }
qtk_status qtk_mamba_cuda_decode(qtk_mamba_cuda *g, const int32_t *tokens, float *logits, int use_graph) {
    return NO_CUDA();
}
qtk_status qtk_mamba_cuda_get_state(qtk_mamba_cuda *g, qtk_mamba_state *s) { return NO_CUDA(); }
