// PCG32 (O'Neill, pcg-random.org, "pcg32_random_r"): the one seeded generator
// every sampler and search in qtk uses, so runs reproduce from their seed.
#ifndef QTK_RNG_H
#define QTK_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint64_t state;
    uint64_t inc; // stream selector, always odd
} qtk_rng;

// Seeds as pcg32_srandom_r(rng, seed, stream).
void qtk_rng_seed(qtk_rng *r, uint64_t seed, uint64_t stream);
uint32_t qtk_rng_u32(qtk_rng *r);
// Uniform integer in [0, bound), unbiased (rejection of the short tail). bound >= 1.
uint32_t qtk_rng_below(qtk_rng *r, uint32_t bound);
// Uniform float in [0, 1) with 24 random bits; double with 53.
float qtk_rng_uniform(qtk_rng *r);
double qtk_rng_uniform_f64(qtk_rng *r);
// Uniform in [a, b).
float qtk_rng_range(qtk_rng *r, float a, float b);
// Standard normal (Box-Muller in double, one value per call).
float qtk_rng_normal(qtk_rng *r);
// Fisher-Yates shuffle of n indices.
void qtk_rng_shuffle(qtk_rng *r, uint32_t *v, size_t n);
// k distinct indices from [0, n), in the order drawn (partial Fisher-Yates).
// scratch holds n uint32; k <= n.
void qtk_rng_sample(qtk_rng *r, uint32_t n, uint32_t k, uint32_t *out, uint32_t *scratch);

// MT19937 (Matsumoto & Nishimura), to reproduce the Evol-Q reference's draws
// (spec evolq-search.md section 6): Python's random and NumPy's legacy
// global generator are both MT19937, seeded differently.
typedef struct {
    uint32_t mt[624];
    int mti;
} qtk_mt19937;

// init_genrand(seed): what np.random.seed(seed) does.
void qtk_mt_seed_numpy(qtk_mt19937 *m, uint32_t seed);
// init_by_array([seed]): what Python's random.seed(seed) does for 0 <= seed < 2^32.
void qtk_mt_seed_python(qtk_mt19937 *m, uint32_t seed);
uint32_t qtk_mt_u32(qtk_mt19937 *m);
// (a * 2^26 + b) / 2^53 with a = next >> 5, b = next >> 6: random.random() and
// np.random.random_sample().
double qtk_mt_double(qtk_mt19937 *m);

#ifdef __cplusplus
}
#endif

#endif
