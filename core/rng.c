#include "rng.h"

#include <math.h>

void qtk_rng_seed(qtk_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0u;
    r->inc = (stream << 1u) | 1u;
    qtk_rng_u32(r);
    r->state += seed;
    qtk_rng_u32(r);
}

uint32_t qtk_rng_u32(qtk_rng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t qtk_rng_below(qtk_rng *r, uint32_t bound) {
    // values below 2^32 mod bound would be over-represented: reject them
    uint32_t threshold = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t x = qtk_rng_u32(r);
        if (x >= threshold) return x % bound;
    }
}

float qtk_rng_uniform(qtk_rng *r) { return (float)(qtk_rng_u32(r) >> 8) * 0x1p-24f; }

double qtk_rng_uniform_f64(qtk_rng *r) {
    uint64_t hi = qtk_rng_u32(r) >> 5, lo = qtk_rng_u32(r) >> 6; // 27 + 26 bits
    return (double)(hi * 67108864.0 + lo) * 0x1p-53;
}

float qtk_rng_range(qtk_rng *r, float a, float b) { return a + (b - a) * qtk_rng_uniform(r); }

float qtk_rng_normal(qtk_rng *r) {
    double u1 = 1.0 - qtk_rng_uniform_f64(r); // (0, 1]: log is finite
    double u2 = qtk_rng_uniform_f64(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void qtk_rng_shuffle(qtk_rng *r, uint32_t *v, size_t n) {
    for (size_t i = n; i > 1; i--) {
        uint32_t j = qtk_rng_below(r, (uint32_t)i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

void qtk_rng_sample(qtk_rng *r, uint32_t n, uint32_t k, uint32_t *out, uint32_t *scratch) {
    for (uint32_t i = 0; i < n; i++) scratch[i] = i;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t j = i + qtk_rng_below(r, n - i);
        uint32_t t = scratch[i];
        scratch[i] = scratch[j];
        scratch[j] = t;
        out[i] = scratch[i];
    }
}

// --- MT19937 -------------------------------------------------------------------------

void qtk_mt_seed_numpy(qtk_mt19937 *m, uint32_t seed) {
    m->mt[0] = seed;
    for (int i = 1; i < 624; i++) m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
    m->mti = 624;
}

void qtk_mt_seed_python(qtk_mt19937 *m, uint32_t seed) {
    // init_by_array with the one-word key [seed]
    qtk_mt_seed_numpy(m, 19650218u);
    int i = 1, j = 0;
    for (int k = 624; k; k--) {
        m->mt[i] = (m->mt[i] ^ ((m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) * 1664525u)) + seed + (uint32_t)j;
        i++;
        j = 0; // key length 1
        if (i >= 624) {
            m->mt[0] = m->mt[623];
            i = 1;
        }
    }
    for (int k = 623; k; k--) {
        m->mt[i] = (m->mt[i] ^ ((m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= 624) {
            m->mt[0] = m->mt[623];
            i = 1;
        }
    }
    m->mt[0] = 0x80000000u;
    m->mti = 624;
}

uint32_t qtk_mt_u32(qtk_mt19937 *m) {
    if (m->mti >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (m->mt[k] & 0x80000000u) | (m->mt[(k + 1) % 624] & 0x7fffffffu);
            m->mt[k] = m->mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->mti = 0;
    }
    uint32_t y = m->mt[m->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

double qtk_mt_double(qtk_mt19937 *m) {
    uint32_t a = qtk_mt_u32(m) >> 5, b = qtk_mt_u32(m) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}
