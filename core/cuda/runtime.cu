// Device query and memory helpers for C callers.
#include <stdio.h>

#include "cuda_check.h"
#include "qtk_cuda.h"

extern "C" int qtk_cuda_built(void) { return 1; }

extern "C" int qtk_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no device / no driver" error
        return 0;
    }
    return n;
}

extern "C" qtk_status qtk_cuda_set_device(int device) {
    QTK_CUDA_TRY(cudaSetDevice(device));
    return QTK_OK;
}

extern "C" qtk_status qtk_cuda_device_info(int device, char *buf, size_t cap) {
    cudaDeviceProp p;
    QTK_CUDA_TRY(cudaGetDeviceProperties(&p, device));
    snprintf(buf, cap, "%s, sm_%d%d, %.1f GiB, %d SMs", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.multiProcessorCount);
    return QTK_OK;
}

extern "C" qtk_status qtk_cuda_malloc(void **d_ptr, size_t nbytes) {
    *d_ptr = NULL; // cudaMalloc leaves it untouched on failure
    QTK_CUDA_TRY(cudaMalloc(d_ptr, nbytes));
    return QTK_OK;
}

extern "C" qtk_status qtk_cuda_free(void *d_ptr) {
    QTK_CUDA_TRY(cudaFree(d_ptr));
    return QTK_OK;
}

extern "C" qtk_status qtk_cuda_memcpy_h2d(void *d_dst, const void *src, size_t nbytes) {
    QTK_CUDA_TRY(cudaMemcpy(d_dst, src, nbytes, cudaMemcpyHostToDevice));
    return QTK_OK;
}

extern "C" qtk_status qtk_cuda_memcpy_d2h(void *dst, const void *d_src, size_t nbytes) {
    QTK_CUDA_TRY(cudaMemcpy(dst, d_src, nbytes, cudaMemcpyDeviceToHost));
    return QTK_OK;
}

extern "C" qtk_status qtk_cuda_memcpy_d2d(void *d_dst, const void *d_src, size_t nbytes) {
    QTK_CUDA_TRY(cudaMemcpy(d_dst, d_src, nbytes, cudaMemcpyDeviceToDevice));
    QTK_CUDA_TRY(cudaDeviceSynchronize());
    return QTK_OK;
}

extern "C" qtk_status qtk_cuda_synchronize(void) {
    QTK_CUDA_TRY(cudaDeviceSynchronize());
    return QTK_OK;
}
