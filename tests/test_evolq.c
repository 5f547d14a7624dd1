// The Evol-Q search end to end on the small fixture ViT (qtk_model seam):
// elitism, determinism, and checkpoint/resume giving bit-identical scales.
#include <unistd.h>

#include "../search/evolq.h"
#include "../vision/vit_quant.h"
#include "vit_testutil.h"

typedef struct {
    qtk_safetensors fx;
    cJSON *models;
    qtk_vit m;
    qtk_vit_plan plan;
    qtk_vit_quant qv;
    qtk_model mm;
    float *calib;
    int n;
} setup_t;

static int build_tag; // the checkpoint file's suffix (one per process when ranks build at once)

// A fresh, calibrated W4A8 model (the same every time).
static void build(setup_t *t, int n) {
    memset(t, 0, sizeof *t);
    ck_qtk(qtk_st_open(&t->fx, "tests/fixtures/vision/vit_quant.safetensors"));
    t->models = tu_meta_json(&t->fx, "models");
    const cJSON *meta = cJSON_GetObjectItem(t->models, "custom28_w4");
    char path[128];
    snprintf(path, sizeof path, "%s/m%d.safetensors", tu_tmp, build_tag);
    write_ckpt(meta, path);
    ck_qtk(qtk_vit_load(&t->m, path, "{\"heads\": 4, \"input_quant\": 1}"));
    t->n = n;
    t->calib = make_images_n(meta, 2, (size_t)n * 28 * 28);
    ck_qtk(qtk_vit_plan_init(&t->plan, &t->m, 16));
    qtk_vit_qconfig qc;
    qtk_vit_qconfig_default(&qc);
    ck_qtk(qtk_vit_quant_init(&t->qv, &t->m, &qc));
    ck_qtk(qtk_vit_calibrate(&t->qv, &t->plan, t->calib, n, 16));
    ck_qtk(qtk_vit_quant_model(&t->qv, &t->plan, &t->mm));
}

static void teardown_t(setup_t *t) {
    qtk_vit_quant_free(&t->qv);
    qtk_vit_plan_free(&t->plan);
    qtk_vit_free(&t->m);
    free(t->calib);
    cJSON_Delete(t->models);
    qtk_st_close(&t->fx);
}

// All searchable scales, concatenated.
static size_t snapshot(qtk_model *m, float *out) {
    size_t k = 0;
    qtk_model_vec v[QTK_MODEL_MAX_VECS];
    for (int b = 0; b < m->n_blocks; b++) {
        int nv = qtk_model_block_vectors(m, b, v, QTK_MODEL_MAX_VECS);
        for (int i = 0; i < nv; i++) {
            memcpy(out + k, v[i].scale, v[i].n * sizeof(float));
            k += v[i].n;
        }
    }
    return k;
}

typedef struct {
    double last;
    int steps, violations, improved;
} log_t;

static qtk_status on_step(void *ctx, const qtk_evolq_step *s) {
    log_t *l = ctx;
    if (s->loss_best > s->loss_start) l->violations++;
    if (l->steps && s->loss_start != l->last) l->violations++; // L0 of a step = L* of the previous
    l->improved += s->improved;
    l->last = s->loss_best;
    l->steps++;
    return QTK_OK;
}

// fails at block step `at` (a callback error, e.g. a failed validation)
static qtk_status fail_at_step(void *ctx, const qtk_evolq_step *s) {
    return s->step == *(int *)ctx ? qtk_fail(QTK_ERR_IO, "callback failed at step %d", s->step) : QTK_OK;
}

// the small search of these tests: 2 passes, groups of 16, 3 cycles
static void small_search(qtk_evolq_config *cfg) {
    qtk_evolq_config_default(cfg, 4);
    cfg->passes = 2;
    cfg->group = 16;
    cfg->batch = 16;
    cfg->ea.cycles = 3;
}

START_TEST(test_search_end_to_end) {
    static float a[4096], b[4096], c[4096];
    qtk_evolq_config cfg;
    small_search(&cfg);
    // 1. uninterrupted
    setup_t t;
    build(&t, 32);
    qtk_evolq_result r1;
    log_t l1 = {0};
    ck_qtk(qtk_evolq_search(&t.mm, t.calib, t.n, &cfg, on_step, &l1, &r1));
    ck_assert_int_eq(r1.steps, 6);
    ck_assert_int_eq(l1.violations, 0);
    ck_assert(r1.loss_final <= r1.loss_initial);
    ck_assert_int_gt(l1.improved, 0);
    ck_assert_int_eq(r1.evals, 1 + 6 * 3); // L0 once, then 3 children per step
    size_t na = snapshot(&t.mm, a);
    ck_assert_uint_eq(na, 3 * (3 * 64 + 64));
    printf("search: loss %.6f -> %.6f in %d steps, %d improved\n", r1.loss_initial, r1.loss_final, r1.steps, l1.improved);
    teardown_t(&t);
    // 2. the same again: bit-identical
    build(&t, 32);
    qtk_evolq_result r2;
    ck_qtk(qtk_evolq_search(&t.mm, t.calib, t.n, &cfg, NULL, NULL, &r2));
    snapshot(&t.mm, b);
    ck_assert(!memcmp(a, b, na * sizeof *a) && r1.loss_final == r2.loss_final);
    teardown_t(&t);
    // 3. interrupted after 3 steps, then resumed in a fresh model from the checkpoint
    char ck[128];
    snprintf(ck, sizeof ck, "%s/search.ckpt", tu_tmp);
    cfg.checkpoint = ck;
    cfg.max_steps = 3;
    build(&t, 32);
    qtk_evolq_result r3;
    ck_qtk(qtk_evolq_search(&t.mm, t.calib, t.n, &cfg, NULL, NULL, &r3));
    ck_assert_int_eq(r3.steps, 3);
    teardown_t(&t);
    cfg.max_steps = 0;
    // 4. a callback error at step 4 stops the search before that step's checkpoint: resumed from 4, not 5
    int at = 4;
    build(&t, 32);
    ck_assert_int_eq(qtk_evolq_search(&t.mm, t.calib, t.n, &cfg, fail_at_step, &at, &r3), QTK_ERR_IO);
    ck_assert_int_eq(r3.resumed_from_step, 3);
    ck_assert_int_eq(r3.steps, 1);
    teardown_t(&t);
    build(&t, 32);
    ck_qtk(qtk_evolq_search(&t.mm, t.calib, t.n, &cfg, NULL, NULL, &r3));
    ck_assert_int_eq(r3.resumed_from_step, 4);
    ck_assert_int_eq(r3.steps, 2);
    snapshot(&t.mm, c);
    ck_assert_msg(!memcmp(a, c, na * sizeof *a), "resumed search ends with different scales");
    ck_assert(r3.loss_final == r1.loss_final);
    ck_assert_msg(r3.loss_initial == r1.loss_initial, "resumed search reports initial loss %g, not %g", r3.loss_initial,
                  r1.loss_initial);
    teardown_t(&t);
}
END_TEST

// Data-parallel ranks (core/comm.h, the host transport): `size` processes each evaluating their share of
// the groups reach the single process's scales and losses bit for bit.
static void sharded(int size, int n) {
    static float a[4096], b[4096];
    qtk_evolq_config cfg;
    small_search(&cfg);
    qtk_comm c;
    ck_qtk(qtk_comm_host_fork(size, &c)); // before any thread starts
    build_tag = c.rank;
    setup_t t;
    build(&t, n);
    cfg.comm = &c;
    qtk_evolq_result r;
    qtk_status st = qtk_evolq_search(&t.mm, t.calib, t.n, &cfg, NULL, NULL, &r);
    size_t na = snapshot(&t.mm, a);
    teardown_t(&t);
    char path[160];
    if (c.rank) { // the other ranks: their scales and losses to a file, then out
        snprintf(path, sizeof path, "%s/rank%d.bin", tu_tmp, c.rank);
        FILE *f = fopen(path, "wb");
        int ok = st == QTK_OK && f && fwrite(&r.loss_final, sizeof r.loss_final, 1, f) == 1 &&
                 fwrite(&r.loss_initial, sizeof r.loss_initial, 1, f) == 1 && fwrite(a, sizeof *a, na, f) == na;
        if (f) fclose(f);
        qtk_comm_close(&c);
        _exit(ok ? 0 : 1);
    }
    ck_qtk(st);
    int failed;
    ck_qtk(qtk_comm_host_join(&c, &failed));
    qtk_comm_close(&c);
    ck_assert_int_eq(failed, 0);
    // the single process
    cfg.comm = NULL;
    build(&t, n);
    qtk_evolq_result r1;
    ck_qtk(qtk_evolq_search(&t.mm, t.calib, t.n, &cfg, NULL, NULL, &r1));
    ck_assert_uint_eq(snapshot(&t.mm, b), na);
    teardown_t(&t);
    ck_assert_msg(!memcmp(a, b, na * sizeof *a) && r.loss_final == r1.loss_final && r.loss_initial == r1.loss_initial,
                  "rank 0 of %d: loss %.17g vs %.17g", size, r.loss_final, r1.loss_final);
    ck_assert_int_eq(r.evals, r1.evals);
    ck_assert(r.input_forwards == r1.input_forwards);
    for (int k = 1; k < size; k++) {
        snprintf(path, sizeof path, "%s/rank%d.bin", tu_tmp, k);
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        double lf, li;
        ck_assert(fread(&lf, sizeof lf, 1, f) == 1 && fread(&li, sizeof li, 1, f) == 1 && fread(a, sizeof *a, na, f) == na);
        fclose(f);
        ck_assert_msg(!memcmp(a, b, na * sizeof *a) && lf == r1.loss_final && li == r1.loss_initial,
                      "rank %d of %d differs from the single process", k, size);
    }
    printf("search over %d ranks (%d groups): scales and losses equal the single process's (%.9f -> %.9f)\n", size,
           n / 16, r1.loss_initial, r1.loss_final);
}

START_TEST(test_sharded_2) { sharded(2, 48); } // groups 1 + 2
END_TEST

START_TEST(test_sharded_3) { sharded(3, 48); } // one group each
END_TEST

START_TEST(test_targets) {
    setup_t t;
    build(&t, 16);
    float fp[16 * 10], ref[16 * 10];
    ck_qtk(t.mm.forward_fp(&t.mm, t.calib, 16, fp));
    ck_qtk(t.mm.forward_targets(&t.mm, t.calib, 16, ref)); // integer LN on, quantizers off
    int differ = 0;
    double maxd = 0;
    for (int i = 0; i < 160; i++) {
        differ += fp[i] != ref[i];
        maxd = fmax(maxd, fabs((double)fp[i] - ref[i]));
    }
    ck_assert_int_gt(differ, 0);
    ck_assert_msg(maxd < 0.5, "reference targets far from FP: %g", maxd);
    t.qv.targets_float = 1;
    ck_qtk(t.mm.forward_targets(&t.mm, t.calib, 16, ref));
    ck_assert(!memcmp(fp, ref, sizeof fp));
    qtk_evolq_config cfg;
    qtk_evolq_config_default(&cfg, 4);
    qtk_evolq_result r;
    cfg.group = 10;
    ck_assert_int_eq(qtk_evolq_search(&t.mm, t.calib, 16, &cfg, NULL, NULL, &r), QTK_ERR_ARG); // 16 not in groups of 10
    teardown_t(&t);
}
END_TEST

int main(void) {
    Suite *s = suite_create("evolq");
    TCase *tc = tcase_create("search");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_search_end_to_end);
    tcase_add_test(tc, test_targets);
    tcase_add_test(tc, test_sharded_2);
    tcase_add_test(tc, test_sharded_3);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
