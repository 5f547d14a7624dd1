// Mamba1 / Mamba2 on the GPU against the CPU forward and transformers (the fixtures of test_mamba.c):
// logits of a whole prefill, prefill then decode (kernels one by one and the captured CUDA graph),
// and the final states. Without a device the suite prints "skipped: no CUDA device" and checks that
// the API refuses cleanly.
#define QTK_FIXTURES "tests/fixtures/ssm"
#include "../ssm/mamba_cuda.h"
#include "testutil.h"

static int have_gpu;

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
    // fp16 projections: within fp16 rounding of the float32 model, the same next-token choice nearly everywhere
    qtk_mamba_cuda *gh;
    ck_qtk(qtk_mamba_cuda_create(&gh, &m, B, L, 1));
    ck_qtk(qtk_mamba_cuda_reset(gh, B));
    ck_qtk(qtk_mamba_cuda_prefill(gh, tok, L, lg));
    double eh = max_rel(lg, lc, (size_t)B * L * V);
    int agree = 0;
    for (int row = 0; row < B * L; row++) {
        int a = 0, c = 0;
        for (int v = 1; v < V; v++) {
            if (lg[(size_t)row * V + v] > lg[(size_t)row * V + a]) a = v;
            if (lc[(size_t)row * V + v] > lc[(size_t)row * V + c]) c = v;
        }
        agree += a == c;
    }
    printf("  fp16 projections: logits %.2e relative to the CPU's float32, argmax agrees at %d of %d positions\n", eh,
           agree, B * L);
    ck_assert_msg(eh <= 5e-2 && agree * 10 >= B * L * 9, "%s: fp16 path off: %.3g, %d of %d argmax", dir, eh, agree, B * L);
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
    if (!have_gpu) return;
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
    suite_add_tcase(s, tc);
    return tu_run_mode(s, 0); // a CUDA context does not survive fork()
}
