// The search's building blocks against the Evol-Q reference: infoNCE vs
// PyTorch, the evolutionary step replayed against a transcription of the
// reference (tools/make_search_fixtures.py), and the EA on a known optimum.
#include "../search/evol.h"
#include "../search/infonce.h"
#include "testutil.h"

#define SEARCH_FIXTURE "tests/fixtures/search/search.safetensors"

START_TEST(test_infonce_vs_pytorch) {
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, SEARCH_FIXTURE));
    cJSON *cases = tu_meta_json(&st, "infonce"), *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int D = tu_json_int(c, "dim"), G = tu_json_int(c, "groups"), N = tu_json_int(c, "group");
        size_t nq;
        float *q = tu_load(&st, name, "q", &nq), *k = tu_load(&st, name, "k", &nq);
        char tn[64];
        snprintf(tn, sizeof tn, "%s.group_losses", name);
        const qtk_st_tensor *gl = qtk_st_find(&st, tn);
        double loss, groups[16];
        ck_qtk(qtk_infonce(q, k, G * N, D, N, 3.0f, &loss, groups));
        for (int g = 0; g < G; g++) {
            double want;
            memcpy(&want, (const char *)gl->data + 8 * g, 8);
            ck_assert_msg(fabs(groups[g] - want) <= 2e-6 * fabs(want), "%s group %d: %.9g, PyTorch %.9g", name, g,
                          groups[g], want);
        }
        double want = cJSON_GetObjectItem(c, "loss")->valuedouble;
        ck_assert_msg(fabs(loss - want) <= 2e-6 * fabs(want), "%s: %.9g vs %.9g", name, loss, want);
        qtk_aligned_free(q);
        qtk_aligned_free(k);
        n++;
    }
    ck_assert_int_eq(n, 3);
    double l;
    float z[4] = {0};
    ck_assert_int_eq(qtk_infonce(z, z, 3, 1, 2, 3.0f, &l, NULL), QTK_ERR_ARG); // 3 rows, groups of 2
    cJSON_Delete(cases);
    qtk_st_close(&st);
}
END_TEST

// Oracle replay (spec section 9.2): the recorded losses are fed back; every
// child, tournament, parent and returned vector must match to the last bit.
typedef struct {
    const cJSON *trace; // the step's cycles
    int cycle;
    int mismatch;
} oracle;

static qtk_status oracle_loss(void *ctx, const float *v, size_t n, double *loss) {
    oracle *o = ctx;
    const cJSON *cy = cJSON_GetArrayItem(o->trace, o->cycle++);
    const cJSON *child = cJSON_GetObjectItem(cy, "child");
    for (size_t k = 0; k < n; k++)
        if (v[k] != (float)cJSON_GetArrayItem(child, (int)k)->valuedouble) o->mismatch++;
    *loss = cJSON_GetObjectItem(cy, "loss")->valuedouble;
    return QTK_OK;
}

START_TEST(test_evolve_replays_reference) {
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, SEARCH_FIXTURE));
    cJSON *runs = tu_meta_json(&st, "ea_runs"), *run;
    int n_steps = 0;
    cJSON_ArrayForEach(run, runs) {
        int seed = tu_json_int(run, "seed"), n = tu_json_int(run, "n");
        char pre[32];
        snprintf(pre, sizeof pre, "seed%d", seed);
        size_t ns;
        float *s = tu_load(&st, pre, "start", &ns);
        ck_assert_uint_eq(ns, (size_t)n);
        qtk_evol_params p;
        qtk_evol_params_default(&p, 4);
        p.eps = cJSON_GetObjectItem(run, "eps")->valuedouble;
        qtk_evol_rng rng;
        qtk_evol_rng_seed(&rng, (uint32_t)seed);
        double *best = malloc((size_t)n * sizeof *best), best_loss;
        const cJSON *step;
        cJSON_ArrayForEach(step, cJSON_GetObjectItem(run, "steps")) {
            const cJSON *tr = cJSON_GetObjectItem(step, "trace");
            // L0: the worst entry after the first cycle is always a copy of the start
            double l0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tr, 0), "pop_losses"), 14)->valuedouble;
            oracle o = {tr, 0, 0};
            qtk_evol_trace trace;
            ck_qtk(qtk_evolve(&p, &rng, s, (size_t)n, l0, oracle_loss, &o, best, &best_loss, &trace));
            ck_assert_msg(o.mismatch == 0, "seed %d step %d: %d child values differ from the reference", seed, n_steps,
                          o.mismatch);
            for (int c = 0; c < 3; c++) {
                const cJSON *cy = cJSON_GetArrayItem(tr, c), *idx = cJSON_GetObjectItem(cy, "indices");
                for (int t = 0; t < 10; t++) ck_assert_int_eq(trace.indices[c][t], cJSON_GetArrayItem(idx, t)->valueint);
                ck_assert_int_eq(trace.parent[c], tu_json_int(cy, "parent"));
            }
            const cJSON *want = cJSON_GetObjectItem(step, "best");
            for (int k = 0; k < n; k++)
                ck_assert_msg(best[k] == cJSON_GetArrayItem(want, k)->valuedouble, "seed %d: best[%d] %.17g vs %.17g", seed,
                              k, best[k], cJSON_GetArrayItem(want, k)->valuedouble);
            ck_assert(best_loss == cJSON_GetObjectItem(step, "best_loss")->valuedouble);
            for (int k = 0; k < n; k++) s[k] = (float)best[k]; // the model keeps the float32 cast
            n_steps++;
        }
        free(best);
        qtk_aligned_free(s);
    }
    ck_assert_int_eq(n_steps, 12);
    cJSON_Delete(runs);
    qtk_st_close(&st);
}
END_TEST

// A known optimum: minimize ||v - target||^2. Elitist (never worse), improves,
// deterministic per seed.
typedef struct {
    const double *target;
    int evals;
} quad;

static qtk_status quad_loss(void *ctx, const float *v, size_t n, double *loss) {
    quad *q = ctx;
    double s = 0;
    for (size_t k = 0; k < n; k++) s += ((double)v[k] - q->target[k]) * ((double)v[k] - q->target[k]);
    q->evals++;
    *loss = s;
    return QTK_OK;
}

static double run_quad(uint32_t seed, int steps, double *first_loss, int *evals) {
    enum { N = 8 };
    double target[N], best[N], bl = 0;
    float s[N];
    for (int k = 0; k < N; k++) {
        target[k] = 0.01 * (k + 1);
        s[k] = (float)(target[k] + 0.004 * ((k % 2) ? 1 : -1));
    }
    quad q = {target, 0};
    qtk_evol_params p;
    qtk_evol_params_default(&p, 4);
    qtk_evol_rng rng;
    qtk_evol_rng_seed(&rng, seed);
    double prev = INFINITY;
    for (int i = 0; i < steps; i++) {
        ck_qtk(qtk_evolve(&p, &rng, s, N, i == 0 ? NAN : prev, quad_loss, &q, best, &bl, NULL));
        if (i == 0) *first_loss = bl;
        ck_assert_msg(bl <= prev, "step %d: loss rose from %g to %g", i, prev, bl); // elitist
        prev = bl;
        for (int k = 0; k < N; k++) s[k] = (float)best[k];
    }
    *evals = q.evals;
    return bl;
}

START_TEST(test_evolve_known_optimum) {
    double f0, f1, f2;
    int e0, e1, e2;
    double a = run_quad(0, 300, &f0, &e0), b = run_quad(0, 300, &f1, &e1), c = run_quad(7, 300, &f2, &e2);
    ck_assert(a == b); // same seed, same result
    ck_assert(a != c);
    double start = 8 * 0.004 * 0.004;
    ck_assert_msg(a < 0.05 * start, "loss %g did not approach 0 from %g", a, start);
    ck_assert_int_eq(e0, 1 + 300 * 3); // L0 once, then 3 children per step (known L0 reused)
}
END_TEST

int main(void) {
    Suite *s = suite_create("search");
    TCase *tc = tcase_create("search");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_infonce_vs_pytorch);
    tcase_add_test(tc, test_evolve_replays_reference);
    tcase_add_test(tc, test_evolve_known_optimum);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
