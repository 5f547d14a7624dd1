// The table-driven backend test's runner (tests/test_backends.c: core/'s quantizer twins and the registry's
// device half; tests/test_backends_ops.c: the op library, the GEMM module and the CNN ops). Each CPU/GPU twin
// is one row: a name, the check its outputs must pass (BITWISE: the same bits, NaN equal to NaN; ULP(n): at
// most n units in the last place apart; NMSE(eps): normalized mean squared error at most eps) and a function
// that runs both backends on seeded inputs (with -0, +-Inf and NaN where the op defines them) and hands back
// the two outputs. A new kernel gets its cross-backend test by adding one row. Without a GPU each row is a
// SKIP, counted apart from passes (tests/run.sh). Included by exactly one file per test binary.
#ifndef QTK_TEST_BACKENDS_H
#define QTK_TEST_BACKENDS_H

#include "testutil.h"

typedef enum { BITWISE, ULP, NMSE } check_kind;
typedef enum { F32, F64, BYTES } elem_kind;

// the two outputs of one row, host memory; the row allocates, the runner frees
typedef struct {
    void *cpu, *gpu;
    size_t n; // elements
    elem_kind kind;
} outputs;

typedef struct {
    const char *name;
    check_kind check;
    double tol; // ULP: units; NMSE: the bound
    void (*run)(qtk_rng *r, outputs *o);
} backend_case;

static int have_gpu;
static const backend_case *bk_cases; // the including file's table

// --- helpers ----------------------------------------------------------------------------------

static void *dev_alloc(size_t bytes) {
    void *d = NULL;
    ck_qtk(qtk_cuda_malloc(&d, bytes ? bytes : 1));
    return d;
}

static void *dev_copy(const void *h, size_t bytes) {
    void *d = dev_alloc(bytes);
    ck_qtk(qtk_cuda_memcpy_h2d(d, h, bytes));
    return d;
}

static void out_alloc(outputs *o, size_t n, elem_kind k) {
    size_t e = k == F32 ? 4 : k == F64 ? 8 : 1;
    o->cpu = calloc(n ? n : 1, e);
    o->gpu = calloc(n ? n : 1, e);
    o->n = n;
    o->kind = k;
}

static void fill(qtk_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = qtk_rng_range(r, lo, hi);
}

// -0, +Inf, -Inf and NaN at fixed places
static void specials(float *x, size_t n) {
    const float v[4] = {-0.0f, INFINITY, -INFINITY, NAN};
    for (int k = 0; k < 4 && (size_t)k * 97 + 3 < n; k++) x[(size_t)k * 97 + 3] = v[k];
}


// --- the runner -------------------------------------------------------------------------------
static double value(const outputs *o, const void *p, size_t i) {
    return o->kind == F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

// units in the last place between a and b (same kind); NaN with NaN: 0
static double ulps(elem_kind k, double a, double b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
    if (a == b) return 0;
    if (k == F32) {
        int32_t ia, ib;
        float fa = (float)a, fb = (float)b;
        memcpy(&ia, &fa, 4), memcpy(&ib, &fb, 4);
        if (ia < 0) ia = INT32_MIN - ia;
        if (ib < 0) ib = INT32_MIN - ib;
        return fabs((double)ia - (double)ib);
    }
    int64_t ia, ib;
    memcpy(&ia, &a, 8), memcpy(&ib, &b, 8);
    if (ia < 0) ia = INT64_MIN - ia;
    if (ib < 0) ib = INT64_MIN - ib;
    return (double)(ia > ib ? (uint64_t)ia - (uint64_t)ib : (uint64_t)ib - (uint64_t)ia); // exact, then rounded
}

START_TEST(test_backend_case) {
    const backend_case *c = &bk_cases[_i];
    if (!have_gpu) TU_SKIP("%s: no CUDA device", c->name);
    qtk_rng r;
    qtk_rng_seed(&r, 1000 + (uint64_t)_i, 0);
    outputs o = {0};
    c->run(&r, &o);
    ck_assert_msg(o.n > 0, "%s: no outputs", c->name);
    const size_t e = o.kind == F32 ? 4 : o.kind == F64 ? 8 : 1;
    if (c->check == BITWISE) {
        for (size_t i = 0; i < o.n; i++) {
            int same = o.kind == BYTES ? ((uint8_t *)o.cpu)[i] == ((uint8_t *)o.gpu)[i]
                       : o.kind == F32 ? tu_same(((float *)o.cpu)[i], ((float *)o.gpu)[i])
                                       : !memcmp((char *)o.cpu + i * e, (char *)o.gpu + i * e, e);
            ck_assert_msg(same, "%s: output %zu of %zu differs (CPU %.9g, GPU %.9g)", c->name, i, o.n,
                          o.kind == BYTES ? (double)((uint8_t *)o.cpu)[i] : value(&o, o.cpu, i),
                          o.kind == BYTES ? (double)((uint8_t *)o.gpu)[i] : value(&o, o.gpu, i));
        }
    } else if (c->check == ULP) {
        double worst = 0;
        size_t at = 0;
        for (size_t i = 0; i < o.n; i++) {
            double u = ulps(o.kind, value(&o, o.cpu, i), value(&o, o.gpu, i));
            if (u > worst) worst = u, at = i;
        }
        ck_assert_msg(worst <= c->tol, "%s: output %zu is %g ULP apart (CPU %.17g, GPU %.17g; at most %g)", c->name, at,
                      worst, value(&o, o.cpu, at), value(&o, o.gpu, at), c->tol);
        printf("%s: at most %g ULP apart\n", c->name, worst);
    } else {
        double num = 0, den = 0;
        for (size_t i = 0; i < o.n; i++) {
            double a = value(&o, o.cpu, i), b = value(&o, o.gpu, i);
            num += (a - b) * (a - b), den += a * a;
        }
        double nmse = den > 0 ? num / den : num;
        ck_assert_msg(nmse <= c->tol, "%s: NMSE %.3g (at most %g)", c->name, nmse, c->tol);
        printf("%s: NMSE %.3g\n", c->name, nmse);
    }
    free(o.cpu);
    free(o.gpu);
}
END_TEST

// the ULP measure itself: neighbours are 1 apart across zero and in both precisions
START_TEST(test_ulps) {
    ck_assert(ulps(F32, 1.0, (double)nextafterf(1.0f, 2.0f)) == 1);
    ck_assert(ulps(F32, 0.0, -0.0) == 0);
    ck_assert(ulps(F32, (double)nextafterf(0.0f, 1.0f), (double)nextafterf(0.0f, -1.0f)) == 2);
    ck_assert(ulps(F64, 1.0, nextafter(1.0, 0.0)) == 1);
    ck_assert(ulps(F64, NAN, NAN) == 0);
    ck_assert(isinf(ulps(F64, NAN, 1.0)));
}
END_TEST

// Runs the table's rows (and the ULP measure's own test) as suite `name`.
static int backends_main(const char *name, const backend_case *cases, int n) {
    have_gpu = qtk_cuda_device_count() > 0;
    bk_cases = cases;
    Suite *s = suite_create(name);
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ulps);
    tcase_add_loop_test(tc, test_backend_case, 0, n);
    suite_add_tcase(s, tc);
    return tu_run_mode(s, 0); // a CUDA context does not survive fork()
}

#endif
