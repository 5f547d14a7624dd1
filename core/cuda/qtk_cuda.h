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

#ifdef __cplusplus
}
#endif

#endif
