// Mamba1 / Mamba2 on the GPU against the CPU forward and transformers (the fixtures of test_mamba.c):
// logits of a whole prefill, prefill then decode (kernels one by one and the captured CUDA graph),
// and the final states. Without a device the suite prints "skipped: no CUDA device" and checks that
// the API refuses cleanly.
#define QTK_FIXTURES "tests/fixtures/ssm"
#include "../ssm/mamba_cuda.h"
#include "testutil.h"

static int have_gpu;
static float dt_hi; // when > 0: Mamba2's time_step_limit high end for the next check_model (the clamp)

#define max_rel tu_max_rel

START_TEST(test_no_device) {
    if (have_gpu) return;
    qtk_mamba m;
    ck_qtk(qtk_mamba_load(&m, "models/tiny_mamba2"));
    qtk_mamba_cuda *g = (qtk_mamba_cuda *)1;
    ck_assert_int_ne(qtk_mamba_cuda_create(&g, &m, 1, 8, 0), QTK_OK);
    ck_assert_ptr_null(g);
    qtk_mamba_free(&m);
}
END_TEST

// one model folder: GPU vs CPU on B sequences of L tokens (ids from seed)
static void check_model(const char *dir, int B, int L, uint64_t seed) {
    qtk_mamba m;
    ck_qtk(qtk_mamba_load(&m, dir));
    if (dt_hi > 0) m.cfg.dt_max = dt_hi;
    const int V = m.cfg.vocab;
    int32_t *tok = malloc((size_t)B * L * sizeof *tok), *part = malloc((size_t)B * L * sizeof *part);
    qtk_rng r;
    qtk_rng_seed(&r, seed, 1);
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)qtk_rng_below(&r, (uint32_t)V);
    float *lc = malloc((size_t)B * L * V * 4), *lg = malloc((size_t)B * L * V * 4), *d1 = malloc((size_t)B * V * 4),
          *d2 = malloc((size_t)B * V * 4);
    qtk_mamba_state s, sg;
    ck_qtk(qtk_mamba_state_init(&s, &m, B));
    ck_qtk(qtk_mamba_state_init(&sg, &m, B));
    ck_qtk(qtk_mamba_prefill(&m, &s, tok, L, lc, QTK_SCAN_RECURRENT));
    qtk_mamba_cuda *g;
    ck_qtk(qtk_mamba_cuda_create(&g, &m, B, L, 0));
    ck_qtk(qtk_mamba_cuda_reset(g, B));
    ck_qtk(qtk_mamba_cuda_prefill(g, tok, L, lg));
    double e = max_rel(lg, lc, (size_t)B * L * V);
    ck_qtk(qtk_mamba_cuda_get_state(g, &sg));
    double es = fmax(max_rel(sg.ssm, s.ssm, s.ssm_per_layer * m.cfg.n_layers),
                     max_rel(sg.conv, s.conv, s.conv_per_layer * m.cfg.n_layers));
    double mxl = 0;
    for (size_t i = 0; i < (size_t)B * L * V; i++) mxl = fmax(mxl, fabs((double)lc[i]));
    printf("%s (%s, B %d, L %d, max |logit| %.3g): GPU prefill vs CPU, logits %.2e, states %.2e relative\n", dir,
           m.cfg.arch == QTK_MAMBA1 ? "Mamba1" : "Mamba2", B, L, mxl, e, es);
    ck_assert_msg(e <= 1e-4 && es <= 1e-4, "%s: GPU prefill differs: logits %.3g, states %.3g", dir, e, es);
    if (m.cfg.arch == QTK_MAMBA2) { // the default above is the chunked SSD; the recurrence too
        ck_qtk(qtk_mamba_cuda_set_scan(g, QTK_SCAN_RECURRENT));
        ck_qtk(qtk_mamba_cuda_reset(g, B));
        ck_qtk(qtk_mamba_cuda_prefill(g, tok, L, lg));
        double er = max_rel(lg, lc, (size_t)B * L * V);
        printf("  GPU SSD recurrence: logits %.2e relative to the CPU\n", er);
        ck_assert_msg(er <= 1e-4, "%s: GPU SSD recurrence differs by %.3g", dir, er);
        ck_qtk(qtk_mamba_cuda_set_scan(g, QTK_SCAN_CHUNKED));
    } else
        ck_assert_int_eq(qtk_mamba_cuda_set_scan(g, QTK_SCAN_CHUNKED), QTK_ERR_ARG);
    // prefill half, decode the rest: kernels one by one, and the CUDA graph, against the CPU's full prefill
    const int L1 = L / 2;
    for (int graph = 0; graph < 2; graph++) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L1; t++) part[b * L1 + t] = tok[b * L + t];
        ck_qtk(qtk_mamba_cuda_reset(g, B));
        ck_qtk(qtk_mamba_cuda_prefill(g, part, L1, NULL));
        double worst = 0;
        for (int t = L1; t < L; t++) {
            for (int b = 0; b < B; b++) part[b] = tok[b * L + t];
            ck_qtk(qtk_mamba_cuda_decode(g, part, d1, graph));
            for (int b = 0; b < B; b++) memcpy(d2 + (size_t)b * V, lc + ((size_t)b * L + t) * V, (size_t)V * 4);
            worst = fmax(worst, max_rel(d1, d2, (size_t)B * V));
        }
        printf("  prefill %d + decode %d on the GPU (%s): %.2e relative to the CPU\n", L1, L - L1,
               graph ? "CUDA graph" : "kernel launches", worst);
        ck_assert_msg(worst <= 1e-4, "%s: GPU decode (%s) differs by %.3g", dir, graph ? "graph" : "launches", worst);
    }
    // two prefills (the second continues from the first's conv and SSM states) against the CPU's one
    {
        const int L2 = L - L1;
        float *l2 = malloc((size_t)B * L2 * V * 4), *ref = malloc((size_t)B * L2 * V * 4);
        ck_qtk(qtk_mamba_cuda_reset(g, B));
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L1; t++) part[b * L1 + t] = tok[b * L + t];
        ck_qtk(qtk_mamba_cuda_prefill(g, part, L1, NULL));
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L2; t++) {
                part[b * L2 + t] = tok[b * L + L1 + t];
                memcpy(ref + ((size_t)b * L2 + t) * V, lc + ((size_t)b * L + L1 + t) * V, (size_t)V * 4);
            }
        ck_qtk(qtk_mamba_cuda_prefill(g, part, L2, l2));
        double e2 = max_rel(l2, ref, (size_t)B * L2 * V);
        printf("  prefill %d + prefill %d on the GPU: %.2e relative to the CPU\n", L1, L2, e2);
        ck_assert_msg(e2 <= 1e-4, "%s: GPU prefill from a state differs by %.3g", dir, e2);
        free(l2);
        free(ref);
    }
    // fp16 projections against the CPU's fp16 reference (inputs and weights of every projection rounded to fp16,
    // float32 sums: qtk_mamba_fp16_reference), within 1e-3 of the largest logit (it was 5e-2 against float32).
    // Measured on an H100 over the 8 models and shapes below: 1.6e-5 to 5.6e-4, where the reference is 4.1e-5 to
    // 1.2e-3 from float32: closer than float32 by 2-3x, not as close as the float32 paths agree (1e-6). The rest
    // is not rounding of the outputs (the GPU's logits are not on the fp16 grid); not found yet
    // (results/ssm/fp16_reference_h100.txt).
    float *lh = malloc((size_t)B * L * V * 4);
    qtk_mamba_state sh;
    ck_qtk(qtk_mamba_state_init(&sh, &m, B));
    ck_qtk(qtk_mamba_fp16_reference(&m, 1));
    ck_qtk(qtk_mamba_prefill(&m, &sh, tok, L, lh, QTK_SCAN_RECURRENT));
    ck_qtk(qtk_mamba_fp16_reference(&m, 0));
    qtk_mamba_cuda *gh;
    ck_qtk(qtk_mamba_cuda_create(&gh, &m, B, L, 1));
    ck_qtk(qtk_mamba_cuda_reset(gh, B));
    ck_qtk(qtk_mamba_cuda_prefill(gh, tok, L, lg));
    double eh = max_rel(lg, lh, (size_t)B * L * V), e32 = max_rel(lh, lc, (size_t)B * L * V);
    printf("  fp16 projections: logits %.2e relative to the CPU's fp16 reference (which is %.2e from float32)\n", eh,
           e32);
    ck_assert_msg(eh <= 1e-3, "%s: fp16 prefill differs from the CPU's fp16 reference by %.3g", dir, eh);
    // fp16 decode (the fp16 GEMVs up to 8 sequences, cuBLAS beyond) against the reference's prefill
    ck_qtk(qtk_mamba_cuda_reset(gh, B));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L1; t++) part[b * L1 + t] = tok[b * L + t];
    ck_qtk(qtk_mamba_cuda_prefill(gh, part, L1, NULL));
    double ehd = 0;
    for (int t = L1; t < L; t++) {
        for (int b = 0; b < B; b++) part[b] = tok[b * L + t];
        ck_qtk(qtk_mamba_cuda_decode(gh, part, d1, 1));
        for (int b = 0; b < B; b++) memcpy(d2 + (size_t)b * V, lh + ((size_t)b * L + t) * V, (size_t)V * 4);
        ehd = fmax(ehd, max_rel(d1, d2, (size_t)B * V));
    }
    printf("  fp16 decode: logits %.2e relative to the CPU's fp16 reference\n", ehd);
    ck_assert_msg(ehd <= 1e-3, "%s: fp16 decode differs from the CPU's fp16 reference by %.3g", dir, ehd);
    qtk_mamba_state_free(&sh);
    free(lh);
    qtk_mamba_cuda_destroy(gh);
    // bad calls
    ck_assert_int_eq(qtk_mamba_cuda_prefill(g, tok, L + 1, NULL), QTK_ERR_ARG);
    ck_assert_int_eq(qtk_mamba_cuda_reset(g, B + 1), QTK_ERR_ARG);
    tok[0] = V;
    ck_assert_int_eq(qtk_mamba_cuda_prefill(g, tok, L, NULL), QTK_ERR_ARG);
    qtk_mamba_cuda_destroy(g);
    qtk_mamba_state_free(&s);
    qtk_mamba_state_free(&sg);
    qtk_mamba_free(&m);
    free(tok);
    free(part);
    free(lc);
    free(lg);
    free(d1);
    free(d2);
}

// The fixture cases' checkpoints (mamba-130m / mamba2-130m layer shapes) and the tiny trained models
START_TEST(test_gpu_vs_cpu) {
    if (!have_gpu) TU_SKIP("no CUDA device");
    check_model("models/tiny_mamba1", 3, 40, 1);
    check_model("models/tiny_mamba2", 2, 70, 2);
    // a 130m-shaped model with 2 layers (random weights, the fixtures' writer)
    qtk_mamba_config c1 = {.arch = QTK_MAMBA1, .d_model = 768, .d_inner = 1536, .d_state = 16, .d_conv = 4,
                           .n_layers = 2, .vocab = 512, .dt_rank = 48, .eps = 1e-5f, .conv_bias = 1, .tied = 1};
    qtk_mamba_config c2 = {.arch = QTK_MAMBA2, .d_model = 768, .d_inner = 1536, .d_state = 128, .d_conv = 4,
                           .n_layers = 2, .vocab = 512, .head_dim = 64, .n_heads = 24, .n_groups = 1, .chunk_size = 256,
                           .eps = 1e-5f, .conv_bias = 1, .tied = 0};
    ck_qtk(qtk_mamba_write_random(tu_tmp, &c1, 3, "F32"));
    check_model(tu_tmp, 2, 24, 3);
    ck_qtk(qtk_mamba_write_random(tu_tmp, &c2, 4, "BF16"));
    check_model(tu_tmp, 2, 24, 4);
    check_model(tu_tmp, 1, 600, 5); // three chunks of 256 (the last partial) at one sequence
    // Mamba2 with 2 groups, odd sizes (P 16, N 12) and chunks of 8: every sequence's chunks full (one batched
    // C B^T), then a partial last chunk; dt clamped above; decode at 10 sequences (cuBLAS, not the GEMVs)
    qtk_mamba_config c3 = {.arch = QTK_MAMBA2, .d_model = 64, .d_inner = 128, .d_state = 12, .d_conv = 4,
                           .n_layers = 2, .vocab = 96, .head_dim = 16, .n_heads = 8, .n_groups = 2, .chunk_size = 8,
                           .eps = 1e-5f, .conv_bias = 1, .tied = 1};
    ck_qtk(qtk_mamba_write_random(tu_tmp, &c3, 6, "F32"));
    dt_hi = 0.05f;
    check_model(tu_tmp, 3, 32, 6);
    check_model(tu_tmp, 10, 21, 7);
    dt_hi = 0;
    check_model("models/tiny_mamba1", 10, 12, 8);
}
END_TEST

// qtk perplexity / generate with --device cuda: the CPU's numbers (the same fixture text as test_mamba's CLI test)
START_TEST(test_cli_cuda) {
    if (!have_gpu) TU_SKIP("no CUDA device");
    const char *ppl = "perplexity --model models/tiny_mamba2 --text " QTK_FIXTURES "/kjv_heldout_8192.bin --ctx 256";
    char args[512], cpu_gen[512];
    ck_assert_int_eq(tu_cli(ppl), 0);
    ck_assert_msg(strstr(tu_cli_out, "perplexity 3.4328 over 8160 scored tokens"), "%s", tu_cli_out);
    snprintf(args, sizeof args, "%s --device cuda", ppl);
    ck_assert_int_eq(tu_cli(args), 0);
    printf("qtk %s\n  %s", args, tu_cli_out);
    ck_assert_msg(strstr(tu_cli_out, "perplexity 3.4328 over 8160 scored tokens") && strstr(tu_cli_out, "on the GPU"), "%s",
                  tu_cli_out);
    snprintf(args, sizeof args, "%s --device cuda --fp16 1", ppl);
    ck_assert_int_eq(tu_cli(args), 0);
    printf("qtk %s\n  %s", args, tu_cli_out);
    double p16 = 0;
    const char *at = strstr(tu_cli_out, "perplexity ");
    ck_assert_msg(at && sscanf(at, "perplexity %lf", &p16) == 1 && fabs(p16 - 3.4328) < 0.01, "%s", tu_cli_out);
    for (int arch = 1; arch <= 2; arch++) { // greedy continuation: the same text on both devices
        snprintf(args, sizeof args, "generate --model models/tiny_mamba%d --prompt 'And God said' --max-new 60", arch);
        ck_assert_int_eq(tu_cli(args), 0);
        snprintf(cpu_gen, sizeof cpu_gen, "%.*s", (int)strcspn(tu_cli_out, "\n"), tu_cli_out);
        strcat(args, " --device cuda");
        ck_assert_int_eq(tu_cli(args), 0);
        printf("qtk %s\n  %s", args, tu_cli_out);
        ck_assert_msg(!strncmp(tu_cli_out, cpu_gen, strlen(cpu_gen)) && strstr(tu_cli_out, "tokens/s, GPU"),
                      "GPU greedy text differs:\n%s\nCPU:\n%s", tu_cli_out, cpu_gen);
    }
}
END_TEST

int main(void) {
    have_gpu = qtk_cuda_device_count() > 0;
    if (!have_gpu)
        printf("skipped: no CUDA device (%s build): GPU Mamba checks not run\n", qtk_cuda_built() ? "CUDA" : "CPU-only");
    Suite *s = suite_create("mamba_cuda");
    TCase *tc = tcase_create("ssm");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_no_device);
    tcase_add_test(tc, test_gpu_vs_cpu);
    tcase_add_test(tc, test_cli_cuda);
    suite_add_tcase(s, tc);
    return tu_run_mode(s, 0); // a CUDA context does not survive fork()
}
