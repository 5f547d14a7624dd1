// The quantization-point registry (core/qpoint.h) on a two-point toy model:
// calibration, fake quantization, shared parameters, globs, report, export and import.
#include "testutil.h"

enum { P_IN = 0, P_W, P_OUT, P_COPY, P_EMPTY, NP };

typedef struct {
    qtk_qreg r;
    float w[4 * 8];
} toy;

static void toy_open(toy *t) {
    for (int i = 0; i < 32; i++) t->w[i] = (float)((i * 37) % 17 - 8) / 16.0f;
    ck_qtk(qtk_qreg_init(&t->r, NP, 1));
    qtk_qpoint_desc in = {.name = "blocks.0.in", .block = 0, .observer = QTK_OBS_MINMAX, .bits = 8, .input = -1,
                          .shares = -1, .channels = 1};
    ck_qtk(qtk_qreg_add(&t->r, P_IN, &in));
    qtk_qpoint_desc w = {.name = "blocks.0.fc.weight", .kind = QTK_QPOINT_WEIGHT, .block = 0, .observer = QTK_OBS_MINMAX,
                         .bits = 4, .channel_wise = true, .w = t->w, .O = 4, .K = 8, .input = P_IN, .shares = -1};
    ck_qtk(qtk_qreg_add(&t->r, P_W, &w));
    qtk_qpoint_desc out = {.name = "head.out", .block = -1, .observer = QTK_OBS_MINMAX, .bits = 8, .input = -1,
                           .shares = -1, .channels = 1};
    ck_qtk(qtk_qreg_add(&t->r, P_OUT, &out));
    qtk_qpoint_desc copy = {.name = "head.copy", .block = -1, .observer = QTK_OBS_MINMAX, .bits = 8, .input = -1,
                            .shares = P_OUT};
    ck_qtk(qtk_qreg_add(&t->r, P_COPY, &copy));
}

// two calibration batches through the activation points
static void toy_calibrate(toy *t) {
    float a[6] = {-1, 0.5f, 2, 3, -0.25f, 1}, b[6] = {-2, 0, 1, 4, 0.75f, 0.1f};
    int64_t shape[1] = {6};
    ck_qtk(qtk_qreg_calibrate_weights(&t->r));
    t->r.mode = QTK_QREG_CALIB;
    for (int k = 0; k < 2; k++) {
        t->r.last_batch = k == 1;
        float x[6];
        memcpy(x, k ? b : a, sizeof x);
        ck_qtk(qtk_qreg_act(&t->r, P_IN, x, 1, shape));
        ck_assert_mem_eq(x, k ? b : a, sizeof x); // observing leaves the tensor alone
        ck_qtk(qtk_qreg_act(&t->r, P_OUT, x, 1, shape));
        ck_qtk(qtk_qreg_act(&t->r, P_COPY, x, 1, shape));
    }
    t->r.last_batch = 0;
    t->r.mode = QTK_QREG_QUANT;
}

START_TEST(test_declare) {
    toy t;
    toy_open(&t);
    qtk_qpoint_desc d = {.name = "blocks.0.in", .observer = QTK_OBS_MINMAX, .bits = 8, .input = -1, .shares = -1};
    ck_assert_int_eq(qtk_qreg_add(&t.r, P_EMPTY, &d), QTK_ERR_ARG); // the name again
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "declared twice"));
    d.name = "x";
    ck_assert_int_eq(qtk_qreg_add(&t.r, P_W, &d), QTK_ERR_ARG); // a taken id
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "taken by blocks.0.fc.weight"));
    ck_assert_int_eq(qtk_qreg_add(&t.r, NP, &d), QTK_ERR_ARG);
    d.shares = NP + 3;
    ck_assert_int_eq(qtk_qreg_add(&t.r, P_EMPTY, &d), QTK_ERR_ARG);
    d.shares = -1, d.kind = QTK_QPOINT_WEIGHT;
    ck_assert_int_eq(qtk_qreg_add(&t.r, P_EMPTY, &d), QTK_ERR_ARG); // a weight without its tensor
    d.kind = QTK_QPOINT_ACT, d.bits = 1;
    ck_assert_int_eq(qtk_qreg_add(&t.r, P_EMPTY, &d), QTK_ERR_ARG); // observer: bits
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "quantization point x:"));
    ck_assert_str_eq(t.r.p[P_EMPTY].name, "");
    ck_assert_int_eq(qtk_qreg_find(&t.r, "head.out"), P_OUT);
    ck_assert_int_eq(qtk_qreg_find(&t.r, "head"), -1);
    ck_assert_int_eq(qtk_qreg_set_enabled(&t.r, "head.*", 0), 2);
    ck_assert(!t.r.p[P_OUT].enabled && !t.r.p[P_COPY].enabled && t.r.p[P_IN].enabled);
    ck_assert_int_eq(qtk_qreg_set_enabled(&t.r, "nothing*", 0), 0);
    qtk_qreg_free(&t.r);
}
END_TEST

START_TEST(test_calibrate_apply) {
    toy t;
    toy_open(&t);
    float x[6] = {-1, 0.5f, 2, 3, -0.25f, 1}, y[6];
    int64_t shape[1] = {6};
    memcpy(y, x, sizeof y);
    ck_qtk(qtk_qreg_act(&t.r, P_IN, y, 1, shape)); // FP mode: nothing happens
    ck_assert_mem_eq(x, y, sizeof y);
    ck_assert_ptr_null(qtk_qreg_weight(&t.r, P_W));
    toy_calibrate(&t);
    // min-max over both batches: [-2, 4] at 8 bits
    const qtk_qpoint *in = &t.r.p[P_IN];
    ck_assert(in->calibrated && in->qp.n == 1);
    float s, z;
    qtk_params_asym(-2, 4, 0, 255, &s, &z);
    ck_assert_float_eq(in->qp.scale[0], s);
    ck_assert_float_eq(in->qp.zero[0], z);
    // the activation hook fake-quantizes in place with those parameters
    memcpy(y, x, sizeof y);
    ck_qtk(qtk_qreg_act(&t.r, P_IN, y, 1, shape));
    for (int i = 0; i < 6; i++) ck_assert_float_eq(y[i], qtk_fake_quant_scalar(x[i], s, z, 0, 255, QTK_FQ_REF));
    // the weight hook: per output channel 4-bit codes, bias-corrected
    const float *wq = qtk_qreg_weight(&t.r, P_W);
    ck_assert_ptr_nonnull(wq);
    float ref[32];
    int64_t ws[2] = {4, 8};
    ck_qtk(qtk_fake_quant(&t.r.p[P_W].qp, t.w, ref, 2, ws));
    qtk_bias_correct(t.w, ref, 4, 8);
    ck_assert_mem_eq(wq, ref, sizeof ref);
    // a perturbed scale takes effect at requantize, and only for that weight
    t.r.p[P_W].qp.scale[1] *= 2;
    ck_qtk(qtk_qreg_requantize(&t.r, P_W));
    ck_assert_mem_eq(wq, ref, 8 * sizeof(float));
    ck_assert_int_ne(memcmp(wq + 8, ref + 8, 8 * sizeof(float)), 0);
    ck_assert_int_eq(qtk_qreg_requantize(&t.r, P_IN), QTK_ERR_ARG);
    t.r.p[P_W].wq_stale = 1;
    t.r.p[P_W].qp.scale[1] /= 2;
    ck_qtk(qtk_qreg_sync_weights(&t.r));
    ck_assert_mem_eq(wq, ref, sizeof ref);
    // a point off passes its tensor through
    qtk_qreg_set_enabled(&t.r, "blocks.0.*", 0);
    memcpy(y, x, sizeof y);
    ck_qtk(qtk_qreg_act(&t.r, P_IN, y, 1, shape));
    ck_assert_mem_eq(x, y, sizeof y);
    ck_assert_ptr_null(qtk_qreg_weight(&t.r, P_W));
    qtk_qreg_free(&t.r);
}
END_TEST

// A point that shares another's parameters observes nothing and quantizes with the other's.
START_TEST(test_shares) {
    toy t;
    toy_open(&t);
    toy_calibrate(&t);
    const qtk_qpoint *copy = &t.r.p[P_COPY], *out = &t.r.p[P_OUT];
    ck_assert(!copy->calibrated && copy->ob.n_updates == 0 && out->calibrated);
    float x[6] = {-1, 0.5f, 2, 3, -0.25f, 1}, a[6], b[6];
    int64_t shape[1] = {6};
    memcpy(a, x, sizeof a);
    memcpy(b, x, sizeof b);
    ck_qtk(qtk_qreg_act(&t.r, P_OUT, a, 1, shape));
    ck_qtk(qtk_qreg_act(&t.r, P_COPY, b, 1, shape));
    ck_assert_mem_eq(a, b, sizeof a);
    qtk_qreg_set_enabled(&t.r, "head.copy", 0); // its own switch
    memcpy(b, x, sizeof b);
    ck_qtk(qtk_qreg_act(&t.r, P_COPY, b, 1, shape));
    ck_assert_mem_eq(x, b, sizeof b);
    qtk_qreg_free(&t.r);
}
END_TEST

START_TEST(test_select) {
    toy t;
    toy_open(&t);
    int ids[8];
    const char *g1[] = {"blocks.*"};
    ck_assert_int_eq(qtk_qreg_select(&t.r, 0, g1, 1, ids, 8), 0); // nothing calibrated yet
    toy_calibrate(&t);
    ck_assert_int_eq(qtk_qreg_select(&t.r, 0, g1, 1, ids, 8), 2);
    ck_assert(ids[0] == P_IN && ids[1] == P_W);
    const char *g2[] = {"*.weight", "blocks.0.*", "*"}; // glob order, each point once
    ck_assert_int_eq(qtk_qreg_select(&t.r, 0, g2, 3, ids, 8), 2);
    ck_assert(ids[0] == P_W && ids[1] == P_IN);
    ck_assert_int_eq(qtk_qreg_select(&t.r, 0, g2, 3, ids, 1), 2); // counts beyond max, writes max
    ck_assert_int_eq(ids[0], P_W);
    ck_assert_int_eq(qtk_qreg_select(&t.r, -1, g2 + 2, 1, ids, 8), 1); // head.out (head.copy has no own params)
    ck_assert_int_eq(ids[0], P_OUT);
    qtk_qreg_free(&t.r);
}
END_TEST

START_TEST(test_report) {
    toy t;
    toy_open(&t);
    toy_calibrate(&t);
    float x[6] = {-1, 0.5f, 2, 3, -0.25f, 1};
    int64_t shape[1] = {6};
    qtk_qreg_report_begin(&t.r);
    ck_qtk(qtk_qreg_act(&t.r, P_IN, x, 1, shape));
    qtk_qreg_report_end(&t.r);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qtk_qreg_report_print(&t.r, f);
    fclose(f);
    char line[256], name[64], gran[32], sr[64], zr[64], mse[32];
    int bits, rows = 0;
    FILE *g = fmemopen(buf, len, "r");
    ck_assert_ptr_nonnull(fgets(line, sizeof line, g)); // the header
    while (fgets(line, sizeof line, g)) {
        ck_assert_int_eq(sscanf(line, "%63s %d %31s %63s %63s %31s", name, &bits, gran, sr, zr, mse), 6);
        rows++;
        if (!strcmp(name, "blocks.0.fc.weight")) ck_assert(bits == 4 && !strcmp(gran, "channel") && atof(mse) > 0);
        if (!strcmp(name, "blocks.0.in")) ck_assert(bits == 8 && !strcmp(gran, "tensor") && atof(mse) > 0);
        if (!strcmp(name, "head.out") || !strcmp(name, "head.copy")) ck_assert_str_eq(mse, "nan"); // saw no tensor
    }
    fclose(g);
    ck_assert_int_eq(rows, 4);
    free(buf);
    qtk_qreg_free(&t.r);
}
END_TEST

START_TEST(test_export_import) {
    toy a, b;
    toy_open(&a);
    toy_open(&b);
    char path[128];
    snprintf(path, sizeof path, "%s/q.safetensors", tu_tmp);
    ck_assert_int_eq(qtk_qreg_export(&a.r, path, "{}", NULL, 0), QTK_ERR_ARG); // not calibrated
    toy_calibrate(&a);
    a.r.p[P_W].qp.scale[2] *= 1.5f; // as a search leaves it
    ck_qtk(qtk_qreg_requantize(&a.r, P_W));
    const char *extra[1][2] = {{"seed", "3"}};
    ck_qtk(qtk_qreg_export(&a.r, path, "{\"model\": \"toy\"}", extra, 1));
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, path));
    ck_assert_ptr_null(qtk_st_find(&st, "head.copy.scale")); // no parameters of its own
    ck_assert_str_eq(qtk_st_meta(&st, "seed"), "3");
    ck_assert_str_eq(qtk_st_meta(&st, "format_version"), QTK_EXPORT_FORMAT);
    ck_assert_str_eq(qtk_st_meta(&st, "qtk_commit"), qtk_commit());
    ck_assert_int_gt(strlen(qtk_commit()), 0);
    ck_assert_ptr_nonnull(strstr(qtk_st_meta(&st, "quantizers"), "{\"name\":\"blocks.0.fc.weight\",\"bits\":4,"
                                                                 "\"granularity\":\"channel\",\"enabled\":true}"));
    ck_qtk(qtk_qreg_import(&b.r, &st, path, "toy"));
    qtk_st_close(&st);
    ck_assert_int_eq(b.r.mode, QTK_QREG_QUANT);
    for (int i = 0; i < NP; i++) {
        ck_assert_int_eq(a.r.p[i].calibrated, b.r.p[i].calibrated);
        if (!a.r.p[i].calibrated) continue;
        ck_assert_uint_eq(a.r.p[i].qp.n, b.r.p[i].qp.n);
        ck_assert_mem_eq(a.r.p[i].qp.scale, b.r.p[i].qp.scale, a.r.p[i].qp.n * sizeof(float));
        ck_assert_mem_eq(a.r.p[i].qp.zero, b.r.p[i].qp.zero, a.r.p[i].qp.n * sizeof(float));
    }
    ck_assert_mem_eq(qtk_qreg_weight(&a.r, P_W), qtk_qreg_weight(&b.r, P_W), 32 * sizeof(float));
    // optional tensors: each weight's codes (its grid points before bias correction) and the weights the
    // forward multiplies; an import reads past them
    a.r.export_weights = 1;
    ck_qtk(qtk_qreg_export(&a.r, path, "{}", NULL, 0));
    ck_qtk(qtk_st_open(&st, path));
    const qtk_st_tensor *tc = qtk_st_find(&st, "blocks.0.fc.weight.codes"), *tw = qtk_st_find(&st, "blocks.0.fc.weight.weight_q");
    ck_assert(tc && tc->dtype == QTK_U8 && tc->ndim == 2 && tc->shape[0] == 4 && tc->shape[1] == 8);
    ck_assert(tw && tw->dtype == QTK_F32 && tw->nbytes == 32 * sizeof(float));
    ck_assert_ptr_null(qtk_st_find(&st, "blocks.0.in.codes")); // weights only
    const qtk_qparams *wp = &a.r.p[P_W].qp;
    float fq[32];
    int64_t ws[2] = {4, 8};
    ck_qtk(qtk_fake_quant(wp, a.w, fq, 2, ws));
    for (int i = 0; i < 32; i++) {
        const int o = i / 8, code = ((const uint8_t *)tc->data)[i];
        ck_assert_float_eq(((float)code - wp->zero[o]) * wp->scale[o], fq[i]);
    }
    ck_assert_mem_eq(tw->data, qtk_qreg_weight(&a.r, P_W), 32 * sizeof(float));
    ck_qtk(qtk_qreg_import(&b.r, &st, path, "toy"));
    qtk_st_close(&st);
    a.r.export_weights = 0;
    // a bad zero point names the file, the tensor and the index
    a.r.p[P_IN].qp.zero[0] = 3.5f;
    ck_qtk(qtk_qreg_export(&a.r, path, "{}", NULL, 0));
    ck_qtk(qtk_st_open(&st, path));
    ck_assert_int_eq(qtk_qreg_import(&b.r, &st, path, "toy"), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "blocks.0.in.zero_point[0] = 3.5 is not an integer"));
    qtk_st_close(&st);
    qtk_qreg_free(&a.r);
    qtk_qreg_free(&b.r);
}
END_TEST


// A point with index-mapped groups (Quamba2's clustered channels): calibrated per group, re-derived when
// its map changes, exported with its map and imported from it.
START_TEST(test_index_groups) {
    qtk_qreg a, b;
    const int32_t idx[6] = {0, 1, 1, 2, 0, 2}, idx2[6] = {0, 0, 1, 1, 2, 2};
    qtk_qpoint_desc d = {.name = "blocks.0.x", .block = 0, .observer = QTK_OBS_MINMAX, .bits = 8, .is_signed = true,
                         .channel_wise = true, .axis = -1, .channels = 3, .group_index = idx, .index_len = 6,
                         .input = -1, .shares = -1};
    for (int k = 0; k < 2; k++) {
        ck_qtk(qtk_qreg_init(k ? &b : &a, 1, 0));
        ck_qtk(qtk_qreg_add(k ? &b : &a, 0, &d));
    }
    float x[4 * 6], y[4 * 6];
    for (int e = 0; e < 24; e++) x[e] = (float)((e * 13) % 11 - 5) * (float)(1 + e % 6);
    int64_t shape[2] = {4, 6};
    a.mode = QTK_QREG_CALIB, a.last_batch = 1;
    ck_qtk(qtk_qreg_act(&a, 0, x, 2, shape));
    a.mode = QTK_QREG_QUANT;
    ck_assert(a.p[0].calibrated);
    ck_assert_str_eq(qtk_qpoint_granularity(&a.p[0]), "index");
    qtk_qparams want;
    ck_qtk(qtk_observer_params_index(&a.p[0].ob, idx, 6, 3, &want));
    ck_assert_mem_eq(a.p[0].qp.scale, want.scale, 3 * sizeof(float));
    memcpy(y, x, sizeof y);
    ck_qtk(qtk_qreg_act(&a, 0, y, 2, shape));
    float ref[24];
    ck_qtk(qtk_fake_quant(&want, x, ref, 2, shape));
    ck_assert_int_eq(tu_first_diff(y, ref, 24), -1);
    qtk_qparams_free(&want);
    // a new map re-derives the parameters from the channels seen
    ck_qtk(qtk_qreg_set_index(&a, 0, idx2, 6, 3));
    ck_qtk(qtk_observer_params_index(&a.p[0].ob, idx2, 6, 3, &want));
    ck_assert_mem_eq(a.p[0].qp.scale, want.scale, 3 * sizeof(float));
    ck_assert_mem_eq(a.p[0].qp.index, idx2, sizeof idx2);
    qtk_qparams_free(&want);
    // export / import: the map travels with the parameters
    char path[128];
    snprintf(path, sizeof path, "%s/q.safetensors", tu_tmp);
    ck_qtk(qtk_qreg_export(&a, path, "{}", NULL, 0));
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, path));
    const qtk_st_tensor *t = qtk_st_find(&st, "blocks.0.x.group_index");
    ck_assert(t && t->dtype == QTK_I32 && t->ndim == 1 && t->shape[0] == 6);
    ck_qtk(qtk_qreg_import(&b, &st, path, "toy"));
    qtk_st_close(&st);
    ck_assert_mem_eq(b.p[0].group_index, idx2, sizeof idx2);
    ck_assert_mem_eq(b.p[0].qp.scale, a.p[0].qp.scale, 3 * sizeof(float));
    float z[24];
    memcpy(y, x, sizeof y), memcpy(z, x, sizeof z);
    ck_qtk(qtk_qreg_act(&a, 0, y, 2, shape));
    ck_qtk(qtk_qreg_act(&b, 0, z, 2, shape));
    ck_assert_mem_eq(y, z, sizeof y);
    // an export whose map names a group that does not exist is refused, naming the tensor
    const int32_t bad[6] = {0, 1, 7, 2, 0, 2};
    float sc[3] = {1, 1, 1}, zp[3] = {0, 0, 0};
    int64_t n3 = 3, n6 = 6;
    qtk_st_entry e[3] = {{"blocks.0.x.scale", QTK_F32, 1, &n3, sc}, {"blocks.0.x.zero_point", QTK_F32, 1, &n3, zp},
                         {"blocks.0.x.group_index", QTK_I32, 1, &n6, bad}};
    ck_qtk(qtk_st_write(path, e, 3, NULL, 0));
    ck_qtk(qtk_st_open(&st, path));
    ck_assert_int_eq(qtk_qreg_import(&b, &st, path, "toy"), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "blocks.0.x.group_index: index-mapped groups: index[2] = 7"));
    qtk_st_close(&st);
    // index-mapped groups need a channel-wise min-max activation point
    qtk_qpoint_desc w = d;
    w.observer = QTK_OBS_OMSE, w.channel_wise = false, w.name = "y";
    qtk_qreg_free(&b);
    ck_qtk(qtk_qreg_init(&b, 1, 0));
    ck_assert_int_eq(qtk_qreg_add(&b, 0, &w), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "index-mapped groups are for activations"));
    qtk_qreg_free(&a);
    qtk_qreg_free(&b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("qpoint");
    TCase *tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_declare);
    tcase_add_test(tc, test_calibrate_apply);
    tcase_add_test(tc, test_shares);
    tcase_add_test(tc, test_select);
    tcase_add_test(tc, test_report);
    tcase_add_test(tc, test_export_import);
    tcase_add_test(tc, test_index_groups);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
