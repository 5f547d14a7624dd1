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

// The sum of v over the 32 lanes of a warp, in every lane (butterfly: the same order in every lane).
template <typename T> __device__ __forceinline__ T qtk_warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#endif
