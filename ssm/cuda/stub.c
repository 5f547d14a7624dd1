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
qtk_status qtk_mamba_cuda_set_hook(qtk_mamba_cuda *g, qtk_mamba_cuda_act_fn fn, void *ctx) { return NO_CUDA(); }
void *qtk_mamba_cuda_stream(qtk_mamba_cuda *g) { return NULL; }

// the GPU Quamba likewise
#include "../quamba_cuda.h"
#include "../quamba_internal.h"

qtk_status qtk_quamba_cuda_create(qtk_quamba_cuda **out, const qtk_quamba *q, int max_batch, int max_len) {
    *out = NULL;
    return NO_CUDA();
}
void qtk_quamba_cuda_destroy(qtk_quamba_cuda *g) {}
qtk_status qtk_quamba_cuda_reset(qtk_quamba_cuda *g, int B) { return NO_CUDA(); }
qtk_status qtk_quamba_cuda_prefill(qtk_quamba_cuda *g, const int32_t *tokens, int L, float *logits) { return NO_CUDA(); }
qtk_status qtk_quamba_cuda_decode(qtk_quamba_cuda *g, const int32_t *tokens, float *logits, int use_graph) {
    return NO_CUDA();
}
qtk_status qtk_quamba_cuda_collect_saturation(qtk_quamba_cuda *g) { return NO_CUDA(); }
size_t qtk_quamba_cuda_weight_bytes(const qtk_quamba_cuda *g) { return 0; }
void qtk_quamba_cuda_set_fusion(qtk_quamba_cuda *g, int on) {}
qtk_status qtk_quamba_cuda_profile(qtk_quamba_cuda *g, int on, double *ms) { return NO_CUDA(); }
qtk_status qtk_quamba_cuda_stage_times(qtk_quamba_cuda *g, int reps, double *us) { return NO_CUDA(); }
qtk_status qtk_quamba_cuda_perplexity(const qtk_quamba *q, const int32_t *tokens, size_t n, int ctx, int stride,
                                      int max_windows, int batch, double *ppl, size_t *n_scored) {
    return NO_CUDA();
}
qtk_status quamba_observe_cuda(quamba_obs *c, const qtk_quamba_calib *cal) { return NO_CUDA(); }
qtk_status qtk_quamba_conv_q8_cuda(const quamba_conv_args *a, uint64_t *sat) { return NO_CUDA(); }
qtk_status qtk_quamba_scan_cuda(const quamba_scan_args *a) { return NO_CUDA(); }
qtk_status qtk_quamba_had_q8_cuda(float *y, size_t rows, int E, int had, float s, int8_t *q, uint64_t *sat) {
    return NO_CUDA();
}
qtk_status qtk_quamba_q8_div_cuda(const float *v, size_t n, float s, int8_t *q, uint64_t *sat) { return NO_CUDA(); }
qtk_status qtk_quamba_requant_cuda(const int32_t *acc, size_t rows, int N, float s_w, float s_in, float s_out, int e,
                                   int8_t *q, uint64_t *sat) {
    return NO_CUDA();
}
qtk_status qtk_quamba_gemv_cuda(const int8_t *x, int ldx, const int8_t *W, int rows, int N, int K, float s_w, float s_in,
                                float s_out, int e, int8_t *out_q, float *h, uint64_t *sat) {
    return NO_CUDA();
}
