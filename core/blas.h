// CPU matrix products through OpenBLAS, with results that do not depend on the thread count.
//
// OpenBLAS's threaded sgemm splits the work by the number of threads, and the split changes the
// rounding (measured: Debian's 0.3.21 gives other bits for a 1700x256x64 product at 2 threads than at 1).
// qtk therefore runs OpenBLAS single-threaded and threads itself with OpenMP over blocks of the output
// whose boundaries depend only on the shape. One thread pool (OpenMP) also means no OpenBLAS pthreads
// spinning against libgomp's workers on many-core hosts.
#ifndef QTK_BLAS_H
#define QTK_BLAS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

// Rows of C per block, at most (columns when C has fewer than 2 blocks of rows). Row blocks that start at
// multiples of the row unroll of OpenBLAS's sgemm kernel (qtk_blas_row_unit) give the very bits of one
// unsplit single-threaded call, whatever their size: qtk_sgemm sizes them to the thread count (so a
// 512-token prefill keeps 16 threads busy) and its result still does not depend on it. 96 is a multiple
// of every unit measured. Column blocks are deterministic (their size depends on the shape only), but
// not the unsplit call's bits (the Haswell kernel's arithmetic depends on the column panel).
#define QTK_GEMM_BLOCK 96
// Below this many multiply-adds the blocks run on the calling thread (same bits, no fork/join).
#define QTK_GEMM_PARALLEL_MIN 1048576.0

// C (M, N) = alpha op(A) op(B) + beta C, row-major; op(A) is (M, K), op(B) is (K, N). Parallel over fixed
// blocks of C; call it outside parallel regions (inside one it runs the blocks on the calling thread).
void qtk_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

// y (N) = W (N, K) x (K), W row-major with leading dimension ldw: blocks of QTK_GEMV_BLOCK rows of W.
#define QTK_GEMV_BLOCK 128
void qtk_sgemv(int N, int K, const float *W, int ldw, const float *x, float *y);

// Rows of C whose multiples start row blocks with the bits of one unsplit call on this kernel family
// (measured on OpenBLAS 0.3.21 over both layouts of B: Haswell and Zen 12, SkylakeX and Cooperlake 48,
// Nehalem 8, Prescott, Core2 and Barcelona 4, Sandybridge 1); QTK_GEMM_BLOCK for a family not measured.
// tests/test_blas.c checks the running family's unit.
int qtk_blas_row_unit(void);

// Makes OpenBLAS single-threaded (idempotent). qtk_sgemm calls it; code that calls OpenBLAS directly
// (small products inside its own parallel loops) calls it first.
void qtk_blas_single_thread(void);

// The kernel family OpenBLAS picked for this CPU ("Haswell", "SkylakeX", "Zen", ...): results are
// bit-identical across machines only within one family (README: Reproducibility).
const char *qtk_blas_core(void);
// 1 where OpenBLAS fell back to its generic SSE3 "Prescott" kernels on a CPU with AVX2 (an unknown
// CPU model, as on some VMs), unless OPENBLAS_CORETYPE chose them: slow, and rounding unlike the
// AVX2 / AVX-512 families.
int qtk_blas_generic_fallback(void);

#ifdef __cplusplus
}
#endif

#endif
