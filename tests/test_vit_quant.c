// The quantized ViT baseline against the PyTorch implementation of the spec
// (tools/make_vit_quant_fixtures.py, run on CUDA): every scale and zero
// point, and the quantized logits.
#include "../vision/vit_quant.h"
#include "vit_testutil.h"

#define VQ_FIXTURE "tests/fixtures/vision/vit_quant.safetensors"

typedef struct {
    qtk_safetensors fx;
    cJSON *models;
    const cJSON *meta;
    qtk_vit m;
    qtk_vit_plan plan;
    qtk_vit_quant qv;
    int nb, bs, ne, img;
    float *calib, *eval;
} vq_case;

static void vq_open(vq_case *t, const char *name) {
    memset(t, 0, sizeof *t);
    ck_qtk(qtk_st_open(&t->fx, VQ_FIXTURE));
    t->models = tu_meta_json(&t->fx, "models");
    t->meta = cJSON_GetObjectItem(t->models, name);
    ck_assert_ptr_nonnull(t->meta);
    char path[128];
    snprintf(path, sizeof path, "%s/%s.safetensors", tu_tmp, name);
    write_ckpt(t->meta, path);
    ck_qtk(qtk_vit_load(&t->m, path, cJSON_GetObjectItem(t->meta, "desc")->valuestring));
    const cJSON *cal = cJSON_GetObjectItem(t->meta, "calib"), *im = cJSON_GetObjectItem(t->meta, "image");
    t->nb = cJSON_GetArrayItem(cal, 0)->valueint;
    t->bs = cJSON_GetArrayItem(cal, 1)->valueint;
    t->ne = tu_json_int(t->meta, "eval");
    t->img = cJSON_GetArrayItem(im, 0)->valueint * cJSON_GetArrayItem(im, 1)->valueint * cJSON_GetArrayItem(im, 1)->valueint;
    t->calib = make_images_n(t->meta, 2, (size_t)t->nb * t->bs * t->img);
    t->eval = make_images_n(t->meta, 3, (size_t)t->ne * t->img);
    ck_qtk(qtk_vit_plan_init(&t->plan, &t->m, t->bs > t->ne ? t->bs : t->ne));
    qtk_vit_qconfig qc;
    qtk_vit_qconfig_default(&qc);
    qc.w_bits = tu_json_int(t->meta, "w_bits");
    qc.a_bits = tu_json_int(t->meta, "a_bits");
    qc.quant_input = tu_json_int(t->meta, "input_quant");
    ck_qtk(qtk_vit_quant_init(&t->qv, &t->m, &qc));
}

static void vq_close(vq_case *t) {
    qtk_vit_quant_free(&t->qv);
    qtk_vit_plan_free(&t->plan);
    qtk_vit_free(&t->m);
    free(t->calib);
    free(t->eval);
    cJSON_Delete(t->models);
    qtk_st_close(&t->fx);
}

static void check_model(const char *name, int expect_e2e_exact) {
    vq_case t;
    vq_open(&t, name);
    ck_qtk(qtk_vit_calibrate(&t.qv, &t.plan, t.calib, t.nb * t.bs, t.bs));
    // the same quantizers, in the same order
    const cJSON *names = cJSON_GetObjectItem(t.meta, "quantizers"), *nm;
    int idx = 0, n_q = 0, omse_neighbour = 0, n_loose = 0;
    cJSON_ArrayForEach(nm, names) {
        while (idx < t.qv.reg.n && !t.qv.reg.p[idx].name[0]) idx++;
        ck_assert_int_lt(idx, t.qv.reg.n);
        qtk_qpoint *q = &t.qv.reg.p[idx++];
        ck_assert_str_eq(q->name, nm->valuestring);
        ck_assert(q->calibrated);
        char pre[128];
        snprintf(pre, sizeof pre, "%s.q.%s", name, q->name);
        size_t ns, nz;
        float *s = tu_load(&t.fx, pre, "scale", &ns), *z = tu_load(&t.fx, pre, "zero", &nz);
        ck_assert_msg(ns == q->qp.n, "%s: %zu scales, reference %zu", q->name, q->qp.n, ns);
        // softmax inputs are scores of float32 GEMMs that sum in a different order on the GPU; exp() turns
        // their absolute differences into relative ones, so those scales get 2e-5 instead of 1e-6
        float tol = strstr(q->name, "attn.softmax") ? 2e-5f : 1e-6f;
        int same = 1;
        for (size_t k = 0; k < ns; k++)
            same &= fabsf(q->qp.scale[k] - s[k]) <= tol * fabsf(s[k]) && q->qp.zero[k] == z[nz == 1 ? 0 : k];
        if (tol > 1e-6f && same) n_loose++;
        if (!same) {
            // an OMSE choice may differ only between candidates whose reference scores
            // agree closely (the FP activations differ from the GPU's in the last bits)
            char sn[160];
            snprintf(sn, sizeof sn, "%s.omse_scores", pre);
            ck_assert_msg(qtk_st_find(&t.fx, sn) != NULL, "%s: scale[0] %a zero %g, reference %a %g", q->name,
                          q->qp.scale[0], q->qp.zero[0], s[0], z[0]);
            size_t n90;
            float *sc = tu_load(&t.fx, pre, "omse_scores", &n90);
            int lo, hi, mine = -1, ref = 0;
            qtk_qrange(q->qp.bits, false, &lo, &hi);
            for (int i = 0; i < 90; i++) {
                if (sc[i] < sc[ref]) ref = i;
                float si, zi, f = (float)(1.0 - i * 0.01);
                qtk_params_asym(q->ob.min_val[0] * f, q->ob.max_val[0] * f, lo, hi, &si, &zi);
                if (mine < 0 && tu_same(si, q->qp.scale[0]) && zi == q->qp.zero[0]) mine = i;
            }
            ck_assert_msg(mine >= 0 && fabsf(sc[mine] - sc[ref]) <= 1e-4f * sc[ref],
                          "%s: qtk chose candidate %d (score %g), reference %d (score %g)", q->name, mine,
                          mine >= 0 ? sc[mine] : 0, ref, sc[ref]);
            omse_neighbour++;
            qtk_aligned_free(sc);
        }
        qtk_aligned_free(s);
        qtk_aligned_free(z);
        n_q++;
    }
    ck_assert_int_eq(n_q, cJSON_GetArraySize(names));
    ck_assert_msg(omse_neighbour <= n_q / 20, "%d of %d quantizers chose a neighbouring OMSE candidate", omse_neighbour, n_q);
    // logits: FP within 1e-4, quantized with the same argmax and within a grid step of head.out
    size_t nl;
    float *want_fp = tu_load(&t.fx, name, "logits_fp", &nl), *want_q = tu_load(&t.fx, name, "logits_q", &nl);
    float *got = malloc(nl * sizeof *got);
    ck_qtk(qtk_vit_forward(&t.m, &t.plan, t.eval, t.ne, got));
    double fp_d = 0, fp_v = 0;
    for (size_t i = 0; i < nl; i++) {
        fp_d = fmax(fp_d, fabs((double)got[i] - want_fp[i]));
        fp_v = fmax(fp_v, fabs((double)want_fp[i]));
    }
    ck_assert_msg(fp_d <= 1e-4 * fp_v, "%s FP logits: relative error %g", name, fp_d / fp_v);
    ck_qtk(qtk_vit_quant_forward(&t.qv, &t.plan, t.eval, t.ne, got));
    int NC = t.m.cfg.n_classes;
    size_t e2e_equal = 0;
    int e2e_argmax = 0;
    for (size_t i = 0; i < nl; i++) e2e_equal += got[i] == want_q[i];
    for (int b = 0; b < t.ne; b++) {
        int a1 = 0, a2 = 0;
        for (int j = 1; j < NC; j++) {
            if (got[b * NC + j] > got[b * NC + a1]) a1 = j;
            if (want_q[b * NC + j] > want_q[b * NC + a2]) a2 = j;
        }
        e2e_argmax += a1 == a2;
    }
    printf("%s end to end (qtk's own calibration): %zu of %zu quantized logits equal, argmax agrees on %d of %d\n",
           name, e2e_equal, nl, e2e_argmax, t.ne);
    if (expect_e2e_exact) ck_assert_uint_eq(e2e_equal, nl);
    // the quantized forward itself: given the reference's parameters, the same logits
    idx = 0;
    cJSON_ArrayForEach(nm, names) {
        while (!t.qv.reg.p[idx].name[0]) idx++;
        qtk_qpoint *q = &t.qv.reg.p[idx];
        char pre[128];
        snprintf(pre, sizeof pre, "%s.q.%s", name, q->name);
        size_t ns, nz;
        float *s = tu_load(&t.fx, pre, "scale", &ns), *z = tu_load(&t.fx, pre, "zero", &nz);
        for (size_t k = 0; k < ns; k++) {
            q->qp.scale[k] = s[k];
            q->qp.zero[k] = z[nz == 1 ? 0 : k];
        }
        if (q->kind == QTK_QPOINT_WEIGHT) ck_qtk(qtk_qreg_requantize(&t.qv.reg, idx));
        qtk_aligned_free(s);
        qtk_aligned_free(z);
        idx++;
    }
    ck_qtk(qtk_vit_quant_forward(&t.qv, &t.plan, t.eval, t.ne, got));
    // yardstick: PyTorch's own quantized forward on the CPU vs on the GPU, same parameters
    float *torch_cpu = tu_load(&t.fx, name, "logits_q_cpu", &nl);
    const qtk_qpoint *out = qtk_vit_quant_find(&t.qv, "head.out");
    size_t equal = 0, torch_equal = 0;
    double maxd = 0, maxv = 0, noise = 0;
    for (size_t i = 0; i < nl; i++) {
        equal += got[i] == want_q[i];
        torch_equal += torch_cpu[i] == want_q[i];
        maxd = fmax(maxd, fabs((double)got[i] - want_q[i]));
        noise = fmax(noise, fabs((double)torch_cpu[i] - want_q[i]));
        maxv = fmax(maxv, fabs((double)want_q[i]));
    }
    printf("%s with the reference's parameters: %zu of %zu quantized logits equal to PyTorch-GPU, max |diff| %.4f "
           "(relative %.2e); PyTorch-CPU vs PyTorch-GPU: %zu equal, max |diff| %.4f; head.out step %.4f; "
           "calibration: %d OMSE neighbours, %d softmax scales within 2e-5 only\n",
           name, equal, nl, maxd, maxd / maxv, torch_equal, noise, out->qp.scale[0], omse_neighbour, n_loose);
    double step = out->qp.scale[0];
    if (noise == 0) {
        // where PyTorch's two backends agree exactly, qtk must too
        ck_assert_msg(equal == nl, "%s: %zu of %zu logits differ from PyTorch", name, nl - equal, nl);
    } else {
        ck_assert_msg(maxd <= 1.5 * noise + 1.001 * step,
                      "%s: qtk drifts %g from PyTorch-GPU, more than PyTorch-CPU does (%g) plus one output step %g", name,
                      maxd, noise, step);
    }
    // top-1: identical wherever the decision is not within the backends' own noise
    for (int b = 0; b < t.ne; b++) {
        int a1 = 0, a2 = 0, s2 = -1;
        for (int j = 1; j < NC; j++) {
            if (got[b * NC + j] > got[b * NC + a1]) a1 = j;
            if (want_q[b * NC + j] > want_q[b * NC + a2]) a2 = j;
        }
        for (int j = 0; j < NC; j++)
            if (j != a2 && (s2 < 0 || want_q[b * NC + j] > want_q[b * NC + s2])) s2 = j;
        double margin = want_q[b * NC + a2] - want_q[b * NC + s2];
        if (margin > 2 * (noise + step)) ck_assert_msg(a1 == a2, "%s image %d: argmax %d, reference %d", name, b, a1, a2);
    }
    qtk_aligned_free(torch_cpu);
    free(got);
    qtk_aligned_free(want_fp);
    qtk_aligned_free(want_q);
    vq_close(&t);
}

START_TEST(test_custom28_w4) { check_model("custom28_w4", 1); }
END_TEST
START_TEST(test_deit_tiny_w8) { check_model("deit_tiny_w8", 0); }
END_TEST
START_TEST(test_deit_tiny_w4) { check_model("deit_tiny_w4", 0); }
END_TEST
START_TEST(test_deit_tiny_w8_wide) { check_model("deit_tiny_w8_wide", 0); }
END_TEST

START_TEST(test_switches_and_report) {
    vq_case t;
    vq_open(&t, "custom28_w4");
    ck_assert_int_eq(qtk_vit_quant_forward(&t.qv, &t.plan, t.eval, t.ne, t.eval), QTK_ERR_ARG); // not calibrated
    ck_qtk(qtk_vit_calibrate(&t.qv, &t.plan, t.calib, t.nb * t.bs, t.bs));
    ck_assert_ptr_nonnull(qtk_vit_quant_find(&t.qv, "blocks.2.attn.softmax"));
    ck_assert_ptr_null(qtk_vit_quant_find(&t.qv, "blocks.3.attn.softmax"));
    int NC = t.m.cfg.n_classes;
    float *fp = malloc((size_t)t.ne * NC * 4), *q = malloc((size_t)t.ne * NC * 4);
    ck_qtk(qtk_vit_forward(&t.m, &t.plan, t.eval, t.ne, fp));
    // everything off + float LayerNorm == the FP model
    ck_assert_int_eq(qtk_qreg_set_enabled(&t.qv.reg, "*", 0), 54);
    t.qv.qc.int_layernorm = 0;
    ck_qtk(qtk_vit_quant_forward(&t.qv, &t.plan, t.eval, t.ne, q));
    for (int i = 0; i < t.ne * NC; i++) ck_assert(tu_same(q[i], fp[i]));
    ck_assert_int_eq(qtk_qreg_set_enabled(&t.qv.reg, "blocks.*.attn.softmax", 1), 3);
    ck_qtk(qtk_vit_quant_forward(&t.qv, &t.plan, t.eval, t.ne, q));
    int differ = 0;
    for (int i = 0; i < t.ne * NC; i++) differ += q[i] != fp[i];
    ck_assert_int_gt(differ, 0);
    qtk_qreg_set_enabled(&t.qv.reg, "*", 1);
    t.qv.qc.int_layernorm = 1;
    // the report lists every quantizer with a finite MSE
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_qtk(qtk_vit_quant_report(&t.qv, &t.plan, t.calib, t.nb * t.bs, t.bs, f));
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "blocks.1.attn.qkv.weight"));
    ck_assert_ptr_nonnull(strstr(buf, "channel-ptf"));
    ck_assert_ptr_null(strstr(buf, "nan"));
    int lines = 0;
    for (char *p = buf; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 1 + 54);
    free(buf);
    // changing a weight scale and requantizing changes the effective weights
    qtk_qpoint *qq = qtk_vit_quant_find(&t.qv, "blocks.0.attn.qkv.weight");
    float before = qq->wq[0];
    qq->qp.scale[0] *= 1.5f;
    ck_qtk(qtk_qreg_requantize(&t.qv.reg, (int)(qq - t.qv.reg.p)));
    ck_assert(qq->wq[0] != before);
    ck_assert_int_eq(qtk_qreg_requantize(&t.qv.reg, 2), QTK_ERR_ARG); // an activation point
    free(fp);
    free(q);
    vq_close(&t);
}
END_TEST

// The qtk_model seam: cached block inputs + forward_from == the full quantized
// forward, bit for bit, for every block; searchable vectors; requantize.
START_TEST(test_model_interface) {
    vq_case t;
    vq_open(&t, "custom28_w4");
    ck_qtk(qtk_vit_calibrate(&t.qv, &t.plan, t.calib, t.nb * t.bs, t.bs));
    qtk_model mm;
    ck_qtk(qtk_vit_quant_model(&t.qv, &t.plan, &mm));
    ck_assert_int_eq(mm.n_blocks, 3);
    ck_assert_int_eq(mm.n_outputs, 10);
    int B = t.ne, NC = mm.n_outputs;
    float *full = malloc((size_t)B * NC * 4), *part = malloc((size_t)B * NC * 4);
    ck_assert_int_eq(mm.input_dtype, QTK_F32);
    ck_assert_uint_eq(mm.input_elems, 28 * 28);
    for (int b = 0; b < mm.n_blocks; b++) ck_assert_uint_eq(mm.block_input_elems[b], mm.block_input_elems[0]);
    ck_assert_ptr_eq(mm.q, &t.qv.reg);
    float *cache = malloc((size_t)B * qtk_model_max_block_input(&mm) * 4);
    ck_qtk(mm.forward(&mm, t.eval, B, full));
    // the seam's calibrate on a fresh model == qtk_vit_calibrate (the same quantized logits)
    vq_case u;
    vq_open(&u, "custom28_w4");
    qtk_model mu;
    ck_qtk(qtk_vit_quant_model(&u.qv, &u.plan, &mu));
    ck_assert_int_eq(mu.forward(&mu, u.eval, B, part), QTK_ERR_ARG); // not calibrated yet
    ck_qtk(mu.calibrate(&mu, u.calib, u.nb * u.bs, u.bs));
    ck_qtk(mu.forward(&mu, u.eval, B, part));
    ck_assert_int_lt(tu_first_diff(part, full, (size_t)B * NC), 0);
    vq_close(&u);
    for (int b = 0; b <= mm.n_blocks; b++) {
        ck_qtk(mm.block_input(&mm, t.eval, B, b, cache));
        ck_qtk(mm.forward_from(&mm, cache, B, b, part));
        ck_assert_msg(tu_first_diff(part, full, (size_t)B * NC) < 0, "forward from block %d differs", b);
    }
    // default vectors: qkv (3C scales) and proj (C scales) of each block
    qtk_model_vec v[16];
    ck_assert_int_eq(qtk_model_block_vectors(&mm, 1, v, 16), 2);
    ck_assert_uint_eq(v[0].n, 3 * 64);
    ck_assert_uint_eq(v[1].n, 64);
    ck_assert_str_eq(qtk_model_point_name(&mm, v[0].point), "blocks.1.attn.qkv.weight");
    ck_assert_str_eq(qtk_model_point_name(&mm, v[1].point), "blocks.1.attn.proj.weight");
    ck_assert(mm.q->p[v[0].point].kind == QTK_QPOINT_WEIGHT && mm.q->p[v[0].point + 1].kind == QTK_QPOINT_ACT);
    ck_assert_int_eq(qtk_model_block_vectors(&mm, 3, v, 16), 0);
    // perturbing a scale and requantizing changes the output from that block on, and only then
    ck_qtk(mm.block_input(&mm, t.eval, B, 1, cache));
    for (size_t k = 0; k < v[0].n; k++) v[0].scale[k] *= 1.25f;
    ck_qtk(mm.forward_from(&mm, cache, B, 1, part));
    ck_assert_int_lt(tu_first_diff(part, full, (size_t)B * NC), 0); // not requantized yet: unchanged
    ck_qtk(mm.requantize(&mm, v[0].point));
    ck_qtk(mm.forward_from(&mm, cache, B, 1, part));
    ck_assert_int_ge(tu_first_diff(part, full, (size_t)B * NC), 0);
    // all vectors: + fc1, fc2 and 9 activation scales
    static const char *const all[] = {"act", "fc2", "qkv", "fc1", "proj"}; // short names: a fixed order
    ck_qtk(qtk_vit_quant_targets(&t.qv, all, 5));
    ck_qtk(qtk_vit_quant_model(&t.qv, &t.plan, &mm));
    ck_assert_int_eq(qtk_model_block_vectors(&mm, 0, v, 16), 13);
    ck_assert_str_eq(qtk_model_point_name(&mm, v[2].point), "blocks.0.mlp.fc1.weight");
    ck_assert_str_eq(qtk_model_point_name(&mm, v[4].point), "blocks.0.norm1.out");
    ck_assert_uint_eq(v[4].n, 1);
    ck_assert_str_eq(qtk_model_point_name(&mm, v[12].point), "blocks.0.mlp.fc2.out");
    // globs over point names, in the order given, after the short names; each point once
    static const char *const globs[] = {"blocks.*.resid?", "fc1", "blocks.1.mlp.*", "blocks.*.mlp.fc1.weight"};
    ck_qtk(qtk_vit_quant_targets(&t.qv, globs, 4));
    ck_qtk(qtk_vit_quant_model(&t.qv, &t.plan, &mm)); // the model points at the targets it was made with
    ck_assert_int_eq(qtk_model_block_vectors(&mm, 1, v, 16), 6);
    ck_assert_str_eq(qtk_model_point_name(&mm, v[0].point), "blocks.1.mlp.fc1.weight");
    ck_assert_str_eq(qtk_model_point_name(&mm, v[1].point), "blocks.1.resid1");
    ck_assert_uint_eq(v[1].n, 64); // PTF: per channel
    ck_assert_str_eq(qtk_model_point_name(&mm, v[3].point), "blocks.1.mlp.act.out");
    ck_assert_int_eq(qtk_model_block_vectors(&mm, 0, v, 16), 3); // blocks.1.* only in block 1
    static const char *const bad[] = {"qkv", "blocks.*.attn.qkv.wieght"};
    ck_assert_int_eq(qtk_vit_quant_targets(&t.qv, bad, 2), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "\"blocks.*.attn.qkv.wieght\" matches no quantizer"));
    // FP forward of the model == the plain FP forward
    ck_qtk(mm.forward_fp(&mm, t.eval, B, part));
    ck_qtk(qtk_vit_forward(&t.m, &t.plan, t.eval, B, full));
    ck_assert_int_lt(tu_first_diff(part, full, (size_t)B * NC), 0);
    free(full);
    free(part);
    free(cache);
    vq_close(&t);
}
END_TEST

// export -> import into an uncalibrated model: the same quantized logits, bit
// for bit (also after a changed weight scale); mismatched files are refused.
static void import_roundtrip(const char *name) {
    vq_case t, u;
    vq_open(&t, name);
    ck_qtk(qtk_vit_calibrate(&t.qv, &t.plan, t.calib, t.nb * t.bs, t.bs));
    qtk_qpoint *qq = qtk_vit_quant_find(&t.qv, "blocks.0.attn.proj.weight");
    qq->qp.scale[3] *= 1.375f; // a searched scale
    ck_qtk(qtk_qreg_requantize(&t.qv.reg, (int)(qq - t.qv.reg.p)));
    char path[256];
    snprintf(path, sizeof path, "%s/export.safetensors", tu_tmp);
    ck_qtk(qtk_vit_quant_export(&t.qv, path, NULL, 0));
    int NC = t.m.cfg.n_classes;
    float *a = malloc((size_t)t.ne * NC * 4), *b = malloc((size_t)t.ne * NC * 4);
    ck_qtk(qtk_vit_quant_forward(&t.qv, &t.plan, t.eval, t.ne, a));
    vq_open(&u, name);
    ck_qtk(qtk_vit_quant_import(&u.qv, path));
    ck_qtk(qtk_vit_quant_forward(&u.qv, &u.plan, t.eval, t.ne, b));
    ck_assert_msg(tu_first_diff(a, b, (size_t)t.ne * NC) < 0, "%s: imported scales give other logits", name);
    for (int i = 0; i < t.qv.reg.n; i++) {
        const qtk_qparams *p = &t.qv.reg.p[i].qp, *q = &u.qv.reg.p[i].qp;
        if (!t.qv.reg.p[i].name[0]) continue;
        ck_assert_msg(p->n == q->n && p->bits == q->bits && p->is_signed == q->is_signed && p->symmetric == q->symmetric &&
                          p->gran == q->gran && p->formula == q->formula && (p->n == 1 || p->axis == q->axis),
                      "%s: layout of %s differs after import", name, t.qv.reg.p[i].name);
    }
    // other bit widths: refused, naming both
    u.qv.qc.w_bits = 3;
    ck_assert_int_eq(qtk_vit_quant_import(&u.qv, path), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "holds W"));
    u.qv.qc.w_bits = t.qv.qc.w_bits;
    // a non-positive scale in an otherwise good export: refused, naming the tensor
    {
        qtk_safetensors st;
        ck_qtk(qtk_st_open(&st, path));
        const qtk_st_tensor *ts = qtk_st_find(&st, "blocks.0.attn.proj.weight.scale");
        ck_assert_ptr_nonnull(ts);
        long at = (long)((const char *)ts->data - (const char *)st.map) + 4 * 3; // element 3
        qtk_st_close(&st);
        FILE *f = fopen(path, "r+b");
        ck_assert_ptr_nonnull(f);
        const float zero = 0.0f;
        ck_assert(fseek(f, at, SEEK_SET) == 0 && fwrite(&zero, 4, 1, f) == 1);
        fclose(f);
        ck_assert_int_eq(qtk_vit_quant_import(&u.qv, path), QTK_ERR_FORMAT);
        ck_assert_msg(strstr(qtk_last_error(), "blocks.0.attn.proj.weight.scale[3] = 0") &&
                          strstr(qtk_last_error(), "scales must be finite and > 0"),
                      "%s", qtk_last_error());
    }
    // a file without the model's quantizers
    qtk_st_entry e[2];
    int64_t one = 1;
    float sc = 0.5f, z = 0.0f;
    e[0] = (qtk_st_entry){"nothing.scale", QTK_F32, 1, &one, &sc};
    e[1] = (qtk_st_entry){"nothing.zero_point", QTK_F32, 1, &one, &z};
    char cfg[160];
    snprintf(cfg, sizeof cfg, "{\"w_bits\": %d, \"a_bits\": %d, \"bias_corr\": false, \"int_layernorm\": false}",
             t.qv.qc.w_bits, t.qv.qc.a_bits);
    const char *meta[1][2] = {{"config", cfg}};
    ck_qtk(qtk_st_write(path, e, 2, meta, 1));
    ck_assert_int_eq(qtk_vit_quant_import(&u.qv, path), QTK_ERR_FORMAT);
    ck_assert_msg(strstr(qtk_last_error(), "not an export of this model"), "%s", qtk_last_error());
    free(a);
    free(b);
    vq_close(&u);
    vq_close(&t);
}

START_TEST(test_import) {
    import_roundtrip("custom28_w4");
    import_roundtrip("deit_tiny_w4");
}
END_TEST

int main(void) {
    Suite *s = suite_create("vit_quant");
    TCase *tc = tcase_create("vision");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_custom28_w4);
    tcase_add_test(tc, test_deit_tiny_w8);
    tcase_add_test(tc, test_deit_tiny_w4);
    tcase_add_test(tc, test_deit_tiny_w8_wide);
    tcase_add_test(tc, test_switches_and_report);
    tcase_add_test(tc, test_model_interface);
    tcase_add_test(tc, test_import);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
