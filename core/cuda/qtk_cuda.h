// CUDA twins of core kernels. Callable from plain C; a build without nvcc
// links core/cuda/stub.c, where every function returns QTK_ERR_UNSUPPORTED
// and qtk_cuda_device_count() is 0.
//
// Pointers named d_* are device pointers. The kernels take the same arguments
// as their CPU twins (fakequant.h) and return a status instead of void.
#ifndef QTK_CUDA_H
#define QTK_CUDA_H

#include <stddef.h>

#include "../error.h"
#include "../qparams.h"

#ifdef __cplusplus
extern "C" {
#endif

// 1 when this library was built with CUDA.
int qtk_cuda_built(void);
// Number of usable devices (0 without a driver or GPU; never fails).
int qtk_cuda_device_count(void);
// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB, 132 SMs" into buf.
qtk_status qtk_cuda_device_info(int device, char *buf, size_t cap);

qtk_status qtk_cuda_malloc(void **d_ptr, size_t nbytes);
qtk_status qtk_cuda_free(void *d_ptr);
qtk_status qtk_cuda_memcpy_h2d(void *d_dst, const void *src, size_t nbytes);
qtk_status qtk_cuda_memcpy_d2h(void *dst, const void *d_src, size_t nbytes);
qtk_status qtk_cuda_synchronize(void);

qtk_status qtk_fake_quant_per_tensor_cuda(const float *d_x, float *d_y, size_t n, float s, float z,
                                          int lo, int hi, qtk_fq_formula f);
qtk_status qtk_fake_quant_per_channel_cuda(const float *d_x, float *d_y, size_t outer, size_t C, size_t inner,
                                           const float *d_s, const float *d_z, int lo, int hi, qtk_fq_formula f);
qtk_status qtk_fake_quant_per_group_cuda(const float *d_x, float *d_y, size_t outer, size_t L, size_t inner,
                                         size_t g, const float *d_s, const float *d_z, int lo, int hi,
                                         qtk_fq_formula f);

// Observer twins (observer.h). Results land in host memory.
// Per-channel min and max of d_x viewed as (outer, C, inner): mn, mx (C).
qtk_status qtk_channel_minmax_cuda(const float *d_x, size_t outer, size_t C, size_t inner, float *mn, float *mx);
// sse[j] = sum over the n values of (x - fake_quant(x; s[j], z[j]))^2, each square float32, summed in double.
qtk_status qtk_fake_quant_sse_multi_cuda(const float *d_x, size_t n, const float *s, const float *z, int k, int lo, int hi,
                                         double *sse);
// For x (outer, C): acc[c*k + j] = sum over rows of (x - fake_quant(x; s[j], z))^2 (PTF's candidates).
qtk_status qtk_fake_quant_sse_channels_cuda(const float *d_x, size_t outer, size_t C, const float *s, int k, float z,
                                            int lo, int hi, double *acc);

#ifdef __cplusplus
}
#endif

#endif
