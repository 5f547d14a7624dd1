// What every CUDA file of qtk shares: the check macros, the scalar functions of core/scalar.h (the same
// expressions as the CPU reference), the launch macro that names the kernel in its error, grid sizing
// for grid-stride loops, and warp reductions.
#ifndef QTK_CUDA_COMMON_CUH
#define QTK_CUDA_COMMON_CUH

#include <stddef.h>

#include "../scalar.h"
#include "cuda_check.h"

// Blocks for a grid-stride loop over n elements with t threads a block (at least 1, at most 65535 * 16:
// the loop covers the rest).
static inline unsigned qtk_grid_for(size_t n, unsigned t) {
    size_t b = (n + t - 1) / t;
    return (unsigned)(b > 65535u * 16u ? 65535u * 16u : (b ? b : 1));
}

// kernel<<<grid, block, shmem, stream>>>(args...), then a launch error as one naming the kernel (returns
// QTK_ERR_CUDA from the enclosing function).
#define QTK_LAUNCH(kernel, grid, block, shmem, stream, ...)                                                          \
    do {                                                                                                              \
        kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__);                                                 \
        QTK_CUDA_TRY_LAUNCH(#kernel);                                                                                 \
    } while (0)

// Programmatic dependent launch (sm_90): a kernel launched with QTK_LAUNCH_PDL may start while the kernel
// before it in the stream (or graph) still runs. Such a kernel calls qtk_pdl_trigger() (its own dependents may
// launch) and, in every block before it reads what earlier kernels wrote or writes anything and before any
// return, qtk_pdl_wait(): that returns once the kernel before has completed with its memory visible, and as
// that kernel waited too, every earlier one has. What a kernel reads that no kernel writes (weights) it may
// load before the wait: the point of the launch, whose gaps between short kernels otherwise dominate a
// decode step. Both are no-ops without the launch attribute or below sm_90.
__device__ __forceinline__ void qtk_pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void qtk_pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

#define QTK_LAUNCH_PDL(kernel, grid, block, shmem, strm, ...)                                                        \
    do {                                                                                                              \
        cudaLaunchAttribute qtk_pa_;                                                                                  \
        qtk_pa_.id = cudaLaunchAttributeProgrammaticStreamSerialization;                                              \
        qtk_pa_.val.programmaticStreamSerializationAllowed = 1;                                                       \
        cudaLaunchConfig_t qtk_pc_ = {};                                                                              \
        qtk_pc_.gridDim = (grid), qtk_pc_.blockDim = (block), qtk_pc_.dynamicSmemBytes = (shmem);                     \
        qtk_pc_.stream = (strm), qtk_pc_.attrs     = &qtk_pa_, qtk_pc_.numAttrs = 1;                                    \
        cudaLaunchKernelEx(&qtk_pc_, kernel, __VA_ARGS__);                                                            \
        QTK_CUDA_TRY_LAUNCH(#kernel);                                                                                 \
    } while (0)

// The sum of v over the 32 lanes of a warp, in every lane (butterfly: the same order in every lane).
template <typename T> __device__ __forceinline__ T qtk_warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#endif
