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

// Paley construction II over GF(q), q = p or p^2 with q = 1 (mod 4): a
// symmetric Hadamard matrix of order 2(q+1). GF(p^2) is F_p[a]/(a^2 - r) with
// r a non-residue mod p; element e = x + p*y stands for x + y*a. Only
// differences and squares are needed.
static void paley2(int p, int deg, signed char *H) {
    int q = deg == 2 ? p * p : p;
    int r = 0; // a quadratic non-residue mod p
    for (int c = 2; c < p && !r; c++) {
        int sq = 0;
        for (int x = 1; x < p; x++) sq |= (x * x) % p == c;
        if (!sq) r = c;
    }
    signed char is_sq[64] = {0}; // is_sq[e]: e is a nonzero square in GF(q)
    for (int e = 1; e < q; e++) {
        int x = e % p, y = e / p;
        int sx = (x * x + y * y * r) % p, sy = (2 * x * y) % p; // (x + y a)^2
        is_sq[sx + p * sy] = 1;
    }
    int k = q + 1, m = 2 * k;
    signed char S[32 * 32];
    // S = [[0, 1^T], [1, Q]] with Q[i][j] = chi(e_j - e_i), symmetric since chi(-1) = 1
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            int v;
            if (i == 0 || j == 0) v = (i == j) ? 0 : 1;
            else {
                int ei = i - 1, ej = j - 1;
                int dx = ((ej % p) - (ei % p) + p) % p, dy = ((ej / p) - (ei / p) + p) % p;
                int d = dx + p * dy;
                v = d == 0 ? 0 : (is_sq[d] ? 1 : -1);
            }
            S[i * k + j] = (signed char)v;
        }
    // replace 0 by [[1,-1],[-1,-1]] and +-1 by +-[[1,1],[1,-1]]
    static const signed char A[4] = {1, -1, -1, -1}, B[4] = {1, 1, 1, -1};
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) {
                    int s = S[i * k + j];
                    H[(2 * i + a) * m + 2 * j + b] = (signed char)(s == 0 ? A[a * 2 + b] : s * B[a * 2 + b]);
                }
}

// Base matrices of order m in {1, 12, 20, 28, 40}, entries +-1, row-major, all symmetric.
static void base_matrix(size_t m, signed char *H) {
    switch (m) {
    case 12: paley2(5, 1, H); return;
    case 20: paley2(3, 2, H); return; // GF(9)
    case 28: paley2(13, 1, H); return;
    case 40: {
        // H2 (x) H20 = [[H20, H20], [H20, -H20]]
        signed char h20[400];
        paley2(3, 2, h20);
        for (size_t i = 0; i < 40; i++)
            for (size_t j = 0; j < 40; j++) {
                signed char v = h20[(i % 20) * 20 + j % 20];
                H[i * 40 + j] = (i >= 20 && j >= 20) ? (signed char)-v : v;
            }
        return;
    }
    default: H[0] = 1; return;
    }
}

// Factorization n = m * 2^k and the base matrix H_m, or an error naming n.
qtk_status qtk_hadamard_base(size_t n, size_t *m, signed char *base) {
    if (!qtk_hadamard_supported(n, m))
        return qtk_fail(QTK_ERR_ARG, "no Hadamard transform of size %zu (need 2^k or 12/20/28/40 * 2^k)", n);
    base_matrix(*m, base);
    return QTK_OK;
}

qtk_status qtk_hadamard_matrix(size_t n, float *H) {
    size_t m;
    signed char base[40 * 40];
    QTK_TRY(qtk_hadamard_base(n, &m, base));
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
// tmp holds n * width floats when m > 1.
// normalize: times 1/sqrt(n) at the end (else the +-1 transform alone)
static void had_core(float *x, size_t n, size_t width, size_t m, const signed char *base, float *tmp, int normalize) {
    size_t P = n / m;
    // Sylvester butterflies within each of the m segments of length P
    for (size_t seg = 0; seg < m; seg++) {
        float *xs = x + seg * P * width;
        size_t h0 = 1;
        if (width == 1 && P >= 8) {
            // the first three stages (h = 1, 2, 4) as one 8-point transform per
            // block: their inner loops are too short to vectorize on their own
            for (size_t i = 0; i < P; i += 8) {
                float *v = xs + i;
                float a0 = v[0] + v[1], a1 = v[0] - v[1], a2 = v[2] + v[3], a3 = v[2] - v[3];
                float a4 = v[4] + v[5], a5 = v[4] - v[5], a6 = v[6] + v[7], a7 = v[6] - v[7];
                float b0 = a0 + a2, b1 = a1 + a3, b2 = a0 - a2, b3 = a1 - a3;
                float b4 = a4 + a6, b5 = a5 + a7, b6 = a4 - a6, b7 = a5 - a7;
                v[0] = b0 + b4;
                v[1] = b1 + b5;
                v[2] = b2 + b6;
                v[3] = b3 + b7;
                v[4] = b0 - b4;
                v[5] = b1 - b5;
                v[6] = b2 - b6;
                v[7] = b3 - b7;
            }
            h0 = 8;
        }
        for (size_t h = h0; h < P; h *= 2)
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
    // mix across segments with the base matrix: y[a*P + r] = sum_b H_m[a,b] t[b*P + r],
    // each output segment accumulated over whole input segments (P*width
    // contiguous floats: vectorizes for rows and for columns alike)
    if (m > 1) {
        size_t seg = P * width;
        for (size_t a = 0; a < m; a++) {
            float *out = tmp + a * seg;
            if (base[a * m] > 0) memcpy(out, x, seg * sizeof *out);
            else
                for (size_t w = 0; w < seg; w++) out[w] = -x[w];
            for (size_t b = 1; b < m; b++) {
                const float *in = x + b * seg;
                if (base[a * m + b] > 0)
                    for (size_t w = 0; w < seg; w++) out[w] += in[w];
                else
                    for (size_t w = 0; w < seg; w++) out[w] -= in[w];
            }
        }
        memcpy(x, tmp, n * width * sizeof *x);
    }
    if (!normalize) return;
    float norm = (float)(1.0 / sqrt((double)n));
    for (size_t i = 0; i < n * width; i++) x[i] *= norm;
}

static qtk_status rows_had(float *x, size_t rows, size_t n, int normalize) {
    size_t m;
    signed char base[40 * 40];
    QTK_TRY(qtk_hadamard_base(n, &m, base));
    int failed = 0;
#pragma omp parallel if (rows * n >= 65536)
    {
        float *tmp = malloc(n * sizeof *tmp);
        if (!tmp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++)
            if (tmp) had_core(x + r * n, n, 1, m, base, tmp, normalize);
        free(tmp);
    }
    if (failed) return qtk_fail(QTK_ERR_NOMEM, "hadamard: out of memory");
    return QTK_OK;
}

qtk_status qtk_hadamard_rows(float *x, size_t rows, size_t n) { return rows_had(x, rows, n, 1); }

qtk_status qtk_hadamard_rows_raw(float *x, size_t rows, size_t n) { return rows_had(x, rows, n, 0); }

qtk_status qtk_hadamard_fuse_input(float *W, size_t n_out, size_t n_in) {
    return qtk_hadamard_rows(W, n_out, n_in);
}

qtk_status qtk_hadamard_fuse_output(float *W, size_t n_out, size_t n_in) {
    size_t m;
    signed char base[40 * 40];
    QTK_TRY(qtk_hadamard_base(n_out, &m, base));
    float *tmp = malloc(n_out * n_in * sizeof *tmp);
    if (!tmp) return qtk_fail(QTK_ERR_NOMEM, "hadamard: cannot allocate %zu floats", n_out * n_in);
    had_core(W, n_out, n_in, m, base, tmp, 1);
    free(tmp);
    return QTK_OK;
}
