// CPU-only builds: the GPU ViT API exists and says it is not there.
#include "../vit_cuda.h"

#define NO_CUDA() qtk_fail(QTK_ERR_UNSUPPORTED, "this qtk was built without CUDA (rebuild with nvcc and CUDA=1)")

qtk_status qtk_vit_cuda_create(qtk_vit_cuda **out, const qtk_vit *m, int max_batch, qtk_vit_gemm gemm) {
    *out = NULL;
    return NO_CUDA();
}
void qtk_vit_cuda_destroy(qtk_vit_cuda *g) {}
qtk_status qtk_vit_cuda_set_quant(qtk_vit_cuda *g, qtk_vit_quant *qv) { return NO_CUDA(); }
qtk_status qtk_vit_cuda_requantize(qtk_vit_cuda *g, qtk_vit_quant *qv, int point) { return NO_CUDA(); }
qtk_status qtk_vit_cuda_update_weight(qtk_vit_cuda *g, const qtk_vit_quant *qv, int point) { return NO_CUDA(); }
qtk_status qtk_vit_cuda_forward(qtk_vit_cuda *g, const float *images, int B, float *logits, int quantized) {
    return NO_CUDA();
}
qtk_status qtk_vit_cuda_forward_device(qtk_vit_cuda *g, const float *d_images, int B, float *d_logits, int quantized) {
    return NO_CUDA();
}
qtk_status qtk_vit_cuda_synchronize(qtk_vit_cuda *g) { return NO_CUDA(); }
qtk_status qtk_vit_cuda_update_act(qtk_vit_cuda *g, const qtk_vit_quant *qv, int point) { return NO_CUDA(); }
qtk_status qtk_vit_cuda_block_input(qtk_vit_cuda *g, const float *images, int B, int block, float *x_out, int mode) {
    return NO_CUDA();
}
qtk_status qtk_vit_cuda_forward_from(qtk_vit_cuda *g, const float *x_in, int B, int block, float *logits, int mode) {
    return NO_CUDA();
}
qtk_status qtk_vit_cuda_block_input_all(qtk_vit_cuda *g, const float *images, int n, int block, float *x_out, int mode) {
    return NO_CUDA();
}
qtk_status qtk_vit_cuda_forward_from_all(qtk_vit_cuda *g, int n, int block, float *logits, int mode) { return NO_CUDA(); }
void qtk_vit_cuda_invalidate(qtk_vit_cuda *g, int point) {}
qtk_status qtk_vit_cuda_calibrate(qtk_vit_cuda *g, qtk_vit_quant *qv, const float *images, int n, int batch) {
    return NO_CUDA();
}
int qtk_vit_cuda_max_batch(const qtk_vit_cuda *g) { return 0; }
size_t qtk_vit_cuda_bytes(const qtk_vit *m, int max_batch, qtk_vit_gemm gemm) { return 0; }
void qtk_vit_cuda_int8_count(const qtk_vit_cuda *g, int *int8_layers, int *linear_layers, int *fp16_attention,
                             int *attention_blocks) {
    *int8_layers = *linear_layers = *fp16_attention = *attention_blocks = 0;
}
