#include "hadamard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_pow2(size_t n) { return n && !(n & (n - 1)); }

bool qtk_hadamard_supported(size_t n, size_t *m) {
    static const size_t bases[] = {12, 40, 20, 28};
    size_t found = 0;
    if (n >= 1 && is_pow2(n)) found = 1;
    for (int i = 0; !found && i < 4; i++)
        if (n % bases[i] == 0 && is_pow2(n / bases[i])) found = bases[i];
    if (m) *m = found;
    return found != 0;
}

// Quadratic character of a modulo the prime q: 0, +1 (square) or -1.
static int legendre(long a, long q) {
    a %= q;
    if (a < 0) a += q;
    if (a == 0) return 0;
    for (long x = 1; x < q; x++)
        if ((x * x) % q == a) return 1;
    return -1;
}

// Base matrices of order m in {1, 12, 20, 28, 40}, entries +-1, row-major.
static void base_matrix(size_t m, signed char *H) {
    if (m == 1) {
        H[0] = 1;
        return;
    }
    if (m == 40) {
        signed char h20[400];
        base_matrix(20, h20);
        for (size_t i = 0; i < 40; i++)
            for (size_t j = 0; j < 40; j++) {
                signed char v = h20[(i % 20) * 20 + j % 20];
                H[i * 40 + j] = (i >= 20 && j >= 20) ? (signed char)-v : v;
            }
        return;
    }
    // S = [[0, 1^T], [+-1, Q]] with the Jacobsthal matrix Q[i][j] = chi(j - i)
    long q = m == 20 ? 19 : (m == 12 ? 5 : 13);
    size_t k = (size_t)q + 1;
    signed char S[20 * 20];
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) {
            int v;
            if (i == 0 && j == 0) v = 0;
            else if (i == 0) v = 1;
            else if (j == 0) v = m == 20 ? -1 : 1; // Paley I: skew; Paley II: symmetric
            else v = legendre((long)j - (long)i, q);
            S[i * k + j] = (signed char)v;
        }
    if (m == 20) {
        // Paley I: H = I + S
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < k; j++) H[i * k + j] = (signed char)(S[i * k + j] + (i == j));
        return;
    }
    // Paley II: replace 0 by [[1,-1],[-1,-1]] and +-1 by +-[[1,1],[1,-1]]
    static const signed char A[4] = {1, -1, -1, -1}, B[4] = {1, 1, 1, -1};
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++)
            for (size_t a = 0; a < 2; a++)
                for (size_t b = 0; b < 2; b++) {
                    int s = S[i * k + j];
                    H[(2 * i + a) * m + 2 * j + b] = (signed char)(s == 0 ? A[a * 2 + b] : s * B[a * 2 + b]);
                }
}

qtk_status qtk_hadamard_matrix(size_t n, float *H) {
    size_t m;
    if (!qtk_hadamard_supported(n, &m))
        return qtk_fail(QTK_ERR_ARG, "no Hadamard transform of size %zu (need 2^k or 12/20/28/40 * 2^k)", n);
    signed char base[40 * 40];
    base_matrix(m, base);
    size_t P = n / m;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            size_t a = i / P, r = i % P, b = j / P, s = j % P;
            int sign = __builtin_popcountll((unsigned long long)(r & s)) & 1 ? -1 : 1;
            H[i * n + j] = (float)(base[a * m + b] * sign);
        }
    return QTK_OK;
}

// The transform over n "elements", each a contiguous vector of `width` floats
// (width 1: a plain vector; width = row length: the columns of a matrix).
// tmp holds m * width floats.
static void had_core(float *x, size_t n, size_t width, size_t m, const signed char *base, float *tmp) {
    size_t P = n / m;
    // Sylvester butterflies within each of the m segments of length P
    for (size_t seg = 0; seg < m; seg++) {
        float *xs = x + seg * P * width;
        for (size_t h = 1; h < P; h *= 2)
            for (size_t i = 0; i < P; i += 2 * h)
                for (size_t j = i; j < i + h; j++) {
                    float *a = xs + j * width, *b = xs + (j + h) * width;
                    for (size_t w = 0; w < width; w++) {
                        float u = a[w], v = b[w];
                        a[w] = u + v;
                        b[w] = u - v;
                    }
                }
    }
    // mix across segments with the base matrix: y[a*P + r] = sum_b H_m[a,b] t[b*P + r]
    if (m > 1) {
        for (size_t r = 0; r < P; r++) {
            for (size_t a = 0; a < m; a++) {
                float *out = tmp + a * width;
                memset(out, 0, width * sizeof *out);
                for (size_t b = 0; b < m; b++) {
                    const float *in = x + (b * P + r) * width;
                    if (base[a * m + b] > 0)
                        for (size_t w = 0; w < width; w++) out[w] += in[w];
                    else
                        for (size_t w = 0; w < width; w++) out[w] -= in[w];
                }
            }
            for (size_t a = 0; a < m; a++) memcpy(x + (a * P + r) * width, tmp + a * width, width * sizeof *x);
        }
    }
    float norm = (float)(1.0 / sqrt((double)n));
    for (size_t i = 0; i < n * width; i++) x[i] *= norm;
}

qtk_status qtk_hadamard_rows(float *x, size_t rows, size_t n) {
    size_t m;
    if (!qtk_hadamard_supported(n, &m))
        return qtk_fail(QTK_ERR_ARG, "no Hadamard transform of size %zu (need 2^k or 12/20/28/40 * 2^k)", n);
    signed char base[40 * 40];
    base_matrix(m, base);
    int failed = 0;
#pragma omp parallel if (rows * n >= 65536)
    {
        float *tmp = malloc(m * sizeof *tmp);
        if (!tmp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++)
            if (tmp) had_core(x + r * n, n, 1, m, base, tmp);
        free(tmp);
    }
    if (failed) return qtk_fail(QTK_ERR_NOMEM, "hadamard: out of memory");
    return QTK_OK;
}

qtk_status qtk_hadamard_fuse_input(float *W, size_t n_out, size_t n_in) {
    return qtk_hadamard_rows(W, n_out, n_in);
}

qtk_status qtk_hadamard_fuse_output(float *W, size_t n_out, size_t n_in) {
    size_t m;
    if (!qtk_hadamard_supported(n_out, &m))
        return qtk_fail(QTK_ERR_ARG, "no Hadamard transform of size %zu (need 2^k or 12/20/28/40 * 2^k)", n_out);
    signed char base[40 * 40];
    base_matrix(m, base);
    float *tmp = malloc(m * n_in * sizeof *tmp);
    if (!tmp) return qtk_fail(QTK_ERR_NOMEM, "hadamard: cannot allocate %zu floats", m * n_in);
    had_core(W, n_out, n_in, m, base, tmp);
    free(tmp);
    return QTK_OK;
}
