// CPU-only builds (make CUDA=0, or no nvcc): the CUDA API exists and says so.
#include <stdio.h>

#include "gemm.h"
#include "qtk_cuda.h"

#define NO_CUDA() qtk_fail(QTK_ERR_UNSUPPORTED, "this qtk was built without CUDA (rebuild with nvcc and CUDA=1)")

int qtk_cuda_built(void) { return 0; }
int qtk_cuda_device_count(void) { return 0; }
qtk_status qtk_cuda_set_device(int device) { return NO_CUDA(); }
qtk_status qtk_cuda_device_info(int device, char *buf, size_t cap) {
    if (cap) buf[0] = '\0';
    return NO_CUDA();
}
qtk_status qtk_cuda_malloc(void **d_ptr, size_t nbytes) {
    *d_ptr = NULL;
    return NO_CUDA();
}
qtk_status qtk_cuda_free(void *d_ptr) { return d_ptr ? NO_CUDA() : QTK_OK; }
qtk_status qtk_cuda_memcpy_h2d(void *d_dst, const void *src, size_t nbytes) { return NO_CUDA(); }
qtk_status qtk_cuda_memcpy_d2h(void *dst, const void *d_src, size_t nbytes) { return NO_CUDA(); }
qtk_status qtk_cuda_memcpy_d2d(void *d_dst, const void *d_src, size_t nbytes) { return NO_CUDA(); }
qtk_status qtk_cuda_synchronize(void) { return NO_CUDA(); }
qtk_status qtk_fake_quant_per_tensor_cuda(const float *d_x, float *d_y, size_t n, float s, float z, int lo, int hi,
                                          qtk_fq_formula f) {
    return NO_CUDA();
}
qtk_status qtk_fake_quant_cuda(const qtk_qparams *p, const float *d_x, float *d_y, int ndim, const int64_t *shape) {
    return NO_CUDA();
}
qtk_status qtk_fake_quant_per_channel_cuda(const float *d_x, float *d_y, size_t outer, size_t C, size_t inner,
                                           const float *d_s, const float *d_z, int lo, int hi, qtk_fq_formula f) {
    return NO_CUDA();
}
qtk_status qtk_fake_quant_per_group_cuda(const float *d_x, float *d_y, size_t outer, size_t L, size_t inner,
                                         size_t g, const float *d_s, const float *d_z, int lo, int hi,
                                         qtk_fq_formula f) {
    return NO_CUDA();
}
size_t qtk_minmax_scratch(size_t C) { return 0; }
qtk_status qtk_channel_minmax_fold_cuda(const float *d_x, size_t outer, size_t C, size_t inner, float *d_mn, float *d_mx,
                                        int first, float *d_scratch, void *stream) {
    return NO_CUDA();
}
qtk_status qtk_channel_minmax_cuda(const float *d_x, size_t outer, size_t C, size_t inner, float *mn, float *mx) {
    return NO_CUDA();
}
qtk_status qtk_fake_quant_sse_multi_cuda(const float *d_x, size_t n, const float *s, const float *z, int k, int lo, int hi,
                                         double *sse) {
    return NO_CUDA();
}
qtk_status qtk_fake_quant_sse_channels_cuda(const float *d_x, size_t outer, size_t C, const float *s, int k, float z,
                                            int lo, int hi, double *acc) {
    return NO_CUDA();
}
qtk_status qtk_quantiles_cuda(const float *d_x, size_t n, int absolute, const float *q, int k, float *out) {
    return NO_CUDA();
}
qtk_status qtk_hadamard_rows_cuda(float *d_x, size_t rows, size_t n) { return NO_CUDA(); }
qtk_status qtk_quantize_cuda(const qtk_qparams *p, const float *d_x, int ndim, const int64_t *shape, qtk_dtype code_dtype,
                             void *d_codes) {
    return NO_CUDA();
}
qtk_status qtk_dequantize_cuda(const qtk_qparams *p, const void *d_codes, qtk_dtype code_dtype, int ndim,
                               const int64_t *shape, float *d_y) {
    return NO_CUDA();
}
qtk_status qtk_pack_int4_cuda(const int8_t *d_vals, size_t n, uint8_t *d_packed) { return NO_CUDA(); }
qtk_status qtk_unpack_i4_cuda(const uint8_t *d_packed, size_t n, int8_t *d_vals) { return NO_CUDA(); }
qtk_status qtk_unpack_u4_cuda(const uint8_t *d_packed, size_t n, uint8_t *d_vals) { return NO_CUDA(); }
qtk_status qtk_bias_correct_cuda(const float *d_W, float *d_Wq, size_t O, size_t K) { return NO_CUDA(); }
qtk_status qtk_weight_affine_cuda(const float *d_W, size_t O, size_t K, const float *d_scale, const float *d_zero,
                                  int lo, int hi, qtk_fq_formula f, int bias_corr, int8_t *d_codes, size_t ldc,
                                  double *d_alpha, double *d_gamma, int32_t *d_bsum) {
    return NO_CUDA();
}

#include "../comm.h"
#include <string.h>
qtk_status qtk_comm_nccl_init(qtk_comm *host, int device, qtk_comm *out) {
    memset(out, 0, sizeof *out);
    return NO_CUDA();
}

// the op library's CUDA twins (core/ops.h)
#include "../ops.h"
qtk_status qtk_op_layernorm_cuda(const float *x, float *y, size_t rows, size_t C, const float *w, const float *b,
                                 float eps, const qtk_outq *q, void *stream) {
    return NO_CUDA();
}
qtk_status qtk_op_softmax_cuda(float *x, size_t rows, size_t n, const qtk_outq *q, void *stream) { return NO_CUDA(); }
qtk_status qtk_op_int_layernorm_cuda(const float *x, float *y, size_t rows, size_t C, const float *s_in, int per_channel,
                                     float s1, float s_out, const float *gamma, const float *beta, const qtk_outq *q,
                                     void *stream) {
    return NO_CUDA();
}
qtk_status qtk_op_rmsnorm_cuda(float *h, const float *add, const float *w, float *y, size_t rows, size_t D, float eps,
                               void *stream) {
    return NO_CUDA();
}
qtk_status qtk_op_gated_rmsnorm_cuda(float *y, const float *z, size_t ldz, const float *w, size_t rows, size_t E,
                                     size_t G, float eps, void *stream) {
    return NO_CUDA();
}
qtk_status qtk_op_conv1d_silu_cuda(const float *in, size_t ld, int B, int L, int C, int K, const float *w,
                                   const float *bias, float *state, float *out, void *stream) {
    return NO_CUDA();
}
size_t qtk_conv2d_ws_floats(const qtk_conv2d_shape *s) { return 0; }
qtk_status qtk_op_conv2d_cuda(const qtk_conv2d_shape *s, const float *x, const float *w, const float *bias, qtk_act act,
                              const qtk_outq *q, float *y, float *ws, struct qtk_gemm *gemm, void *stream) {
    return NO_CUDA();
}
qtk_status qtk_op_bn_act_cuda(float *x, size_t B, size_t C, size_t HW, const float *a, const float *b, qtk_act act,
                              const qtk_outq *q, void *stream) {
    return NO_CUDA();
}
qtk_status qtk_op_residual_cuda(float *x, const float *h, size_t n, size_t C, const qtk_outq *qh, const qtk_outq *qr,
                                void *stream) {
    return NO_CUDA();
}

qtk_status qtk_gemm_create(qtk_gemm **out, void *stream, int tf32, size_t ws_bytes, int cublas_ws) {
    *out = NULL;
    return NO_CUDA();
}
void qtk_gemm_destroy(qtk_gemm *g) {}
qtk_status qtk_gemm_lt(qtk_gemm *g, const float *x, const float *W, const float *bias, float *y, int rows, int N, int K,
                       int acc, int *bias_done) {
    return NO_CUDA();
}
qtk_status qtk_gemm_nn(qtk_gemm *g, const float *A, const float *B, float *C, int M, int N, int K) { return NO_CUDA(); }
int qtk_gemm_int8_ok(qtk_gemm *g, int rows, int N, int K) { return 0; }
qtk_status qtk_gemm_int8(qtk_gemm *g, const int8_t *x, const int8_t *W, int32_t *y, int rows, int N, int K) {
    return NO_CUDA();
}
qtk_status qtk_gemv(void *stream, const void *W, int w_half, const float *x, int ldx, const float *b, float *y, int ldy,
                    int rows, int N, int K, int act) {
    return NO_CUDA();
}
qtk_status qtk_gemm_linear(qtk_gemm *g, const float *x, int ldx, const void *W, int w_half, void *xh, const float *b,
                           float *y, size_t rows, int N, int K, int act) {
    return NO_CUDA();
}

// the registry's device half (core/qpoint.h)
#include "../qpoint.h"
qtk_status qtk_qreg_dev_init(qtk_qreg_dev *d, const qtk_qreg *r, void *stream) {
    memset(d, 0, sizeof *d);
    return NO_CUDA();
}
void qtk_qreg_dev_free(qtk_qreg_dev *d) { memset(d, 0, sizeof *d); }
qtk_status qtk_qreg_dev_upload(qtk_qreg_dev *d, qtk_qreg *r) { return NO_CUDA(); }
qtk_status qtk_qreg_dev_update_weight(qtk_qreg_dev *d, const qtk_qreg *r, int id) { return NO_CUDA(); }
qtk_status qtk_qreg_dev_update_act(qtk_qreg_dev *d, const qtk_qreg *r, int id) { return NO_CUDA(); }
float *qtk_qreg_dev_weight(const qtk_qreg_dev *d, int id) { return NULL; }
qtk_status qtk_qreg_dev_weight_params(qtk_qreg_dev *d, const qtk_qpoint *p) { return NO_CUDA(); }
qtk_status qtk_qreg_dev_requantize(qtk_qreg_dev *d, qtk_qreg *r, int id, const float *d_w) { return NO_CUDA(); }
qtk_status qtk_qreg_observe_cuda(qtk_qreg_dev *d, qtk_qreg *r, int id, const float *d_x, size_t outer, size_t C,
                                 int first, int last) {
    return NO_CUDA();
}
