// Helpers shared by the Check suites: fixture loading, bitwise float
// comparison, case metadata. Header-only (each suite is one binary).
#ifndef QTK_TESTUTIL_H
#define QTK_TESTUTIL_H

#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtk.h"

#ifndef QTK_FIXTURES
#define QTK_FIXTURES "tests/fixtures/core"
#endif

// Fails the test with the qtk error message when st != QTK_OK.
#define ck_qtk(expr)                                                                              \
    do {                                                                                          \
        qtk_status ck_st_ = (expr);                                                               \
        ck_assert_msg(ck_st_ == QTK_OK, "%s failed: %s (%s)", #expr, qtk_status_str(ck_st_),      \
                      qtk_last_error());                                                          \
    } while (0)

static inline uint32_t tu_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// Equal as bit patterns (so -0.0 != 0.0), or both NaN.
static inline int tu_same(float a, float b) { return tu_bits(a) == tu_bits(b) || (isnan(a) && isnan(b)); }

// Index of the first element whose bits differ, or -1.
static inline long tu_first_diff(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!tu_same(a[i], b[i])) return (long)i;
    return -1;
}

static inline void tu_open(qtk_safetensors *st, const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", QTK_FIXTURES, file);
    qtk_status r = qtk_st_open(st, path);
    ck_assert_msg(r == QTK_OK, "cannot open fixture %s: %s (make fixtures: tools/make_core_fixtures.py)", path,
                  qtk_last_error());
}

// "<prefix>.<field>" as float32; aborts the test if missing.
static inline float *tu_load(const qtk_safetensors *st, const char *prefix, const char *field, size_t *n) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", prefix, field);
    float *p = NULL;
    qtk_status r = qtk_st_load_f32(st, name, &p, n);
    ck_assert_msg(r == QTK_OK, "fixture tensor %s: %s", name, qtk_last_error());
    return p;
}

// Parses a JSON metadata entry (owned by the caller: cJSON_Delete).
static inline cJSON *tu_meta_json(const qtk_safetensors *st, const char *key) {
    const char *s = qtk_st_meta(st, key);
    ck_assert_msg(s != NULL, "fixture lacks metadata key %s", key);
    cJSON *j = cJSON_Parse(s);
    ck_assert_msg(j != NULL, "fixture metadata %s is not JSON", key);
    return j;
}

static inline int tu_json_int(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "case lacks key %s", k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : v->valueint;
}

static inline void tu_json_shape(const cJSON *o, int *ndim, int64_t *shape) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "shape");
    *ndim = cJSON_GetArraySize(s);
    for (int i = 0; i < *ndim; i++) shape[i] = (int64_t)cJSON_GetArrayItem(s, i)->valuedouble;
}

static inline void tu_fill_normal(qtk_rng *r, float *x, size_t n, float sd) {
    for (size_t i = 0; i < n; i++) x[i] = sd * qtk_rng_normal(r);
}

// max |a - b| / max |b| over n values; a non-finite value on either side is an infinite error.
// A small text file's contents (at most 64 KiB) in a static buffer, overwritten by the next call; NULL if unreadable.
static inline char *tu_slurp(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static inline double tu_max_rel(const float *a, const float *b, size_t n) {
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        mx = fmax(mx, fabs((double)b[i]));
        md = fmax(md, fabs((double)a[i] - b[i]));
    }
    return md / (mx > 0 ? mx : 1);
}

#ifndef QTK_CLI
#define QTK_CLI "build/qtk"
#endif
#include <sys/wait.h>
// The qtk CLI with args, stdout and stderr together into tu_cli_out; returns its exit status (-1: killed).
static char tu_cli_out[1 << 16] __attribute__((unused));
static inline int tu_cli(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", QTK_CLI, args);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    size_t n = fread(tu_cli_out, 1, sizeof tu_cli_out - 1, p);
    tu_cli_out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A fresh temporary folder per test: tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown).
static char tu_tmp[64];

static inline void tu_tmp_setup(void) {
    snprintf(tu_tmp, sizeof tu_tmp, "/tmp/qtk_test_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tu_tmp));
}

static inline void tu_tmp_teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tu_tmp);
    ck_assert_int_eq(system(cmd), 0);
}

// Runs one suite and returns the process exit status. fork = 0 runs tests in
// this process (needed for CUDA: a context does not survive fork()).
// Ends the current test as skipped: prints "SKIP: <test>: <why>", which tests/run.sh counts apart from
// the passes (Check itself would count the test as passed).
#define TU_SKIP(...)                                                                                        \
    do {                                                                                                    \
        printf("SKIP: %s: ", __func__);                                                                     \
        printf(__VA_ARGS__);                                                                                \
        printf("\n");                                                                                       \
        fflush(stdout);                                                                                     \
        return;                                                                                             \
    } while (0)

static inline int tu_run_mode(Suite *s, int fork) {
    SRunner *sr = srunner_create(s);
    if (!fork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

static inline int tu_run(Suite *s) { return tu_run_mode(s, 1); }

#endif
