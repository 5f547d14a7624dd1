// Check macros for CUDA runtime, cuBLAS and cuDNN calls: on failure they set
// the qtk error message with the call, file and line and return QTK_ERR_CUDA
// from the enclosing function.
#ifndef QTK_CUDA_CHECK_H
#define QTK_CUDA_CHECK_H

#include <cuda_runtime.h>

#include "../error.h"

#define QTK_CUDA_TRY(call)                                                                 \
    do {                                                                                   \
        cudaError_t qtk_ce_ = (call);                                                      \
        if (qtk_ce_ != cudaSuccess)                                                        \
            return qtk_fail(QTK_ERR_CUDA, "CUDA error %s (%s) in %s at %s:%d",             \
                            cudaGetErrorName(qtk_ce_), cudaGetErrorString(qtk_ce_), #call, \
                            __FILE__, __LINE__);                                           \
    } while (0)

// After a kernel launch: a launch-configuration error, named after the kernel `what` (a string).
#define QTK_CUDA_TRY_LAUNCH(what)                                                                          \
    do {                                                                                                   \
        cudaError_t qtk_le_ = cudaGetLastError();                                                          \
        if (qtk_le_ != cudaSuccess)                                                                        \
            return qtk_fail(QTK_ERR_CUDA, "CUDA error %s (%s) launching %s at %s:%d", cudaGetErrorName(qtk_le_), \
                            cudaGetErrorString(qtk_le_), what, __FILE__, __LINE__);                        \
    } while (0)

// (the cuBLAS and cuDNN macros need their library's header only where they are used)
#define QTK_CUBLAS_TRY(call)                                                               \
    do {                                                                                   \
        cublasStatus_t qtk_cb_ = (call);                                                   \
        if (qtk_cb_ != CUBLAS_STATUS_SUCCESS)                                              \
            return qtk_fail(QTK_ERR_CUDA, "cuBLAS error %s in %s at %s:%d",                \
                            cublasGetStatusName(qtk_cb_), #call, __FILE__, __LINE__);      \
    } while (0)

#define QTK_CUDNN_TRY(call)                                                                \
    do {                                                                                   \
        cudnnStatus_t qtk_cd_ = (call);                                                    \
        if (qtk_cd_ != CUDNN_STATUS_SUCCESS)                                               \
            return qtk_fail(QTK_ERR_CUDA, "cuDNN error %s in %s at %s:%d",                 \
                            cudnnGetErrorString(qtk_cd_), #call, __FILE__, __LINE__);      \
    } while (0)

#endif
