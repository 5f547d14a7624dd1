#include "blas.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void qtk_blas_single_thread(void) {
    static int done;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) return;
    if (!omp_in_parallel()) {
        openblas_set_num_threads(1);
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
}

int qtk_blas_row_unit(void) {
    static int cached; // the kernel family is fixed once OpenBLAS is loaded
    int u = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (u) return u;
    static const struct {
        const char *core;
        int unit;
    } units[] = {{"Haswell", 12}, {"Zen", 12}, {"SkylakeX", 48}, {"Cooperlake", 48}, {"Sandybridge", 1}, {"Prescott", 4},
                 {"Core2", 4},    {"Barcelona", 4}, {"Nehalem", 8}};
    const char *core = qtk_blas_core();
    u = QTK_GEMM_BLOCK;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcmp(core, units[i].core)) u = units[i].unit;
    __atomic_store_n(&cached, u, __ATOMIC_RELAXED);
    return u;
}

void qtk_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
    qtk_blas_single_thread();
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
    const int by_rows = M >= 2 * QTK_GEMM_BLOCK, extent = by_rows ? M : N;
    int blk = QTK_GEMM_BLOCK;
    if (by_rows) { // as many blocks as threads where 96-row blocks are too few, in multiples of the unit
        const int unit = qtk_blas_row_unit(), T = omp_in_parallel() ? 1 : omp_get_max_threads();
        const int units_per = ((M + unit - 1) / unit + T - 1) / T;
        if (units_per * unit < blk) blk = units_per * unit;
    }
    const int nb = (extent + blk - 1) / blk;
    if (nb <= 1 || (!by_rows && N < 2 * QTK_GEMM_BLOCK)) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    // the arithmetic of a block does not depend on who runs it: parallel or not, the same bits
#pragma omp parallel for schedule(dynamic, 1) if ((double)M * N * K >= QTK_GEMM_PARALLEL_MIN)
    for (int i = 0; i < nb; i++) {
        const int o = i * blk, len = extent - o < blk ? extent - o : blk;
        if (by_rows) // rows o.. of op(A) and C
            cblas_sgemm(CblasRowMajor, ta, tb, len, N, K, alpha, trans_a ? A + o : A + (size_t)o * lda, lda, B, ldb, beta,
                        C + (size_t)o * ldc, ldc);
        else // columns o.. of op(B) and C
            cblas_sgemm(CblasRowMajor, ta, tb, M, len, K, alpha, A, lda, trans_b ? B + (size_t)o * ldb : B + o, ldb, beta,
                        C + o, ldc);
    }
}

void qtk_sgemv(int N, int K, const float *W, int ldw, const float *x, float *y) {
    qtk_blas_single_thread();
    const int nb = (N + QTK_GEMV_BLOCK - 1) / QTK_GEMV_BLOCK;
#pragma omp parallel for schedule(static) if ((double)N * K >= QTK_GEMM_PARALLEL_MIN)
    for (int i = 0; i < nb; i++) {
        const int o = i * QTK_GEMV_BLOCK, len = N - o < QTK_GEMV_BLOCK ? N - o : QTK_GEMV_BLOCK;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, len, K, 1.0f, W + (size_t)o * ldw, ldw, x, 1, 0.0f, y + o, 1);
    }
}

const char *qtk_blas_core(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

int qtk_blas_generic_fallback(void) {
#if defined(__x86_64__) || defined(__i386__)
    return !getenv("OPENBLAS_CORETYPE") && !strcmp(qtk_blas_core(), "Prescott") && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}
