// CUDA twins of core kernels. Callable from plain C; a build without nvcc
// links core/cuda/stub.c, where every function returns QTK_ERR_UNSUPPORTED
// and qtk_cuda_device_count() is 0.
//
// Pointers named d_* are device pointers. The kernels take the same arguments
// as their CPU twins (fakequant.h) and return a status instead of void.
#ifndef QTK_CUDA_H
#define QTK_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "../error.h"
#include "../qparams.h"
#include "../tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// 1 when this library was built with CUDA.
int qtk_cuda_built(void);
// Number of usable devices (0 without a driver or GPU; never fails).
int qtk_cuda_device_count(void);
// The GPU this thread's later CUDA calls use (cudaSetDevice).
qtk_status qtk_cuda_set_device(int device);
// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB, 132 SMs" into buf.
qtk_status qtk_cuda_device_info(int device, char *buf, size_t cap);

qtk_status qtk_cuda_malloc(void **d_ptr, size_t nbytes);
qtk_status qtk_cuda_free(void *d_ptr);
qtk_status qtk_cuda_memcpy_h2d(void *d_dst, const void *src, size_t nbytes);
qtk_status qtk_cuda_memcpy_d2h(void *dst, const void *d_src, size_t nbytes);
qtk_status qtk_cuda_memcpy_d2d(void *d_dst, const void *d_src, size_t nbytes); // returns when the copy is done
qtk_status qtk_cuda_synchronize(void);

qtk_status qtk_fake_quant_per_tensor_cuda(const float *d_x, float *d_y, size_t n, float s, float z,
                                          int lo, int hi, qtk_fq_formula f);
qtk_status qtk_fake_quant_per_channel_cuda(const float *d_x, float *d_y, size_t outer, size_t C, size_t inner,
                                           const float *d_s, const float *d_z, int lo, int hi, qtk_fq_formula f);
qtk_status qtk_fake_quant_per_group_cuda(const float *d_x, float *d_y, size_t outer, size_t L, size_t inner,
                                         size_t g, const float *d_s, const float *d_z, int lo, int hi,
                                         qtk_fq_formula f);
// Any granularity, as qtk_fake_quant (fakequant.h): p in host memory, the tensor on the device. Index-mapped
// groups run as the per-channel kernel over the map spelled out (qtk_qparams_expand_index).
qtk_status qtk_fake_quant_cuda(const qtk_qparams *p, const float *d_x, float *d_y, int ndim, const int64_t *shape);

// Observer twins (observer.h). Results land in host memory.
// Per-channel min and max of d_x viewed as (outer, C, inner): mn, mx (C).
qtk_status qtk_channel_minmax_cuda(const float *d_x, size_t outer, size_t C, size_t inner, float *mn, float *mx);
// The same kept on the device and asynchronous on `stream` (a cudaStream_t; NULL: the default stream):
// d_mn / d_mx (C values) become the channels' min / max when `first`, else fold them in with fminf /
// fmaxf (qtk_observer_update_minmax's running update, so a calibration can keep its statistics on the
// GPU and hand them to the observer once). d_scratch: 2 * qtk_minmax_scratch(C) floats, free until
// the stream has run the call.
size_t qtk_minmax_scratch(size_t C);
qtk_status qtk_channel_minmax_fold_cuda(const float *d_x, size_t outer, size_t C, size_t inner, float *d_mn, float *d_mx,
                                        int first, float *d_scratch, void *stream);
// sse[j] = sum over the n values of (x - fake_quant(x; s[j], z[j]))^2, each square float32, summed in double.
qtk_status qtk_fake_quant_sse_multi_cuda(const float *d_x, size_t n, const float *s, const float *z, int k, int lo, int hi,
                                         double *sse);
// For x (outer, C): acc[c*k + j] = sum over rows of (x - fake_quant(x; s[j], z))^2 (PTF's candidates).
qtk_status qtk_fake_quant_sse_channels_cuda(const float *d_x, size_t outer, size_t C, const float *s, int k, float z,
                                            int lo, int hi, double *acc);

// torch.quantile (linear) of the n values (of |x| when absolute) at each of the k levels q: the order
// statistics come from a GPU sort, so they equal the CPU's selection; the lerp is the CPU's.
qtk_status qtk_quantiles_cuda(const float *d_x, size_t n, int absolute, const float *q, int k, float *out);

// Hadamard (hadamard.h): had() in place on each of `rows` rows of n floats (n * 8 bytes must fit a
// block's shared memory: n <= 28672 on Hopper). Same butterflies, same order: equal to the CPU.
qtk_status qtk_hadamard_rows_cuda(float *d_x, size_t rows, size_t n);

// Bias correction (biascorr.h): Wq (O, K) corrected in place towards W's row means and stds.
qtk_status qtk_bias_correct_cuda(const float *d_W, float *d_Wq, size_t O, size_t K);
// qtk_weight_affine (biascorr.h) with every array on the device.
qtk_status qtk_weight_affine_cuda(const float *d_W, size_t O, size_t K, const float *d_scale, const float *d_zero,
                                  int lo, int hi, qtk_fq_formula f, int bias_corr, int8_t *d_codes, size_t ldc,
                                  double *d_alpha, double *d_gamma, int32_t *d_bsum);

// Real quantization and packing (pack.h); p, shape on the host, x / codes / y on the device.
qtk_status qtk_quantize_cuda(const qtk_qparams *p, const float *d_x, int ndim, const int64_t *shape, qtk_dtype code_dtype,
                             void *d_codes);
qtk_status qtk_dequantize_cuda(const qtk_qparams *p, const void *d_codes, qtk_dtype code_dtype, int ndim,
                               const int64_t *shape, float *d_y);
qtk_status qtk_pack_int4_cuda(const int8_t *d_vals, size_t n, uint8_t *d_packed);
qtk_status qtk_unpack_i4_cuda(const uint8_t *d_packed, size_t n, int8_t *d_vals);
qtk_status qtk_unpack_u4_cuda(const uint8_t *d_packed, size_t n, uint8_t *d_vals);

#ifdef __cplusplus
}
#endif

#endif
