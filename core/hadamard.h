// Normalized fast Walsh-Hadamard transforms: had(x) = H_n x / sqrt(n).
//
// Supported sizes (spec mamba-quamba §4): n = 2^k (Sylvester order,
// H[i,j] = (-1)^popcount(i & j)) and n = m * 2^k with m in {12, 20, 28, 40},
// H_n = H_m (x) H_{2^k} (Kronecker; index i = a*2^k + r). Selection follows
// Quamba's rule: 12 first, then 40, then 20 and 28, else a power of two.
//   H12: Paley construction II, q = 5 (equal to Quamba's had_12_paley)
//   H20: Paley construction II, q = 9 (over GF(9))
//   H28: Paley construction II, q = 13
//   H40: H2 (x) H20 (a qtk choice; Quamba's had_40_tpal is a different valid
//        matrix, which matters only for weights rotated elsewhere)
// Every H_n is symmetric, so had(had(x)) = x.
#ifndef QTK_HADAMARD_H
#define QTK_HADAMARD_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

// true when n has a supported factorization; *m gets the base order (1 for 2^k).
bool qtk_hadamard_supported(size_t n, size_t *m);

// The base order m of n and the +-1 base matrix H_m (row-major, m*m <= 1600 entries; 1 for 2^k).
qtk_status qtk_hadamard_base(size_t n, size_t *m, signed char *base);

// The +-1 matrix H_n (row-major n x n), unnormalized.
qtk_status qtk_hadamard_matrix(size_t n, float *H);

// had() applied in place to each of `rows` contiguous vectors of length n.
qtk_status qtk_hadamard_rows(float *x, size_t rows, size_t n);

// H_n x without the 1/sqrt(n) (the +-1 transform: Quamba's fused Hadamard + quantize folds the norm into its
// scale), in place on each row; the same sums as qtk_hadamard_rows before its final multiply.
qtk_status qtk_hadamard_rows_raw(float *x, size_t rows, size_t n);

// Fuse into a Linear weight W (n_out, n_in), row-major:
//   input side:  W <- W H_in^T / sqrt(n_in), so W_new had(x) = W x   (had on each row)
//   output side: W <- H_out W / sqrt(n_out),   so W_new x = had(W x)   (had on each column)
qtk_status qtk_hadamard_fuse_input(float *W, size_t n_out, size_t n_in);
qtk_status qtk_hadamard_fuse_output(float *W, size_t n_out, size_t n_in);

#ifdef __cplusplus
}
#endif

#endif
