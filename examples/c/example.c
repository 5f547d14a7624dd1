// Using libqtk from outside the source tree (see examples/README.md):
//
//   cc example.c $(pkg-config --cflags --libs libqtk) -o example
//   ./example models/fashion_vit.safetensors models/tiny_mamba1
//
// Fake-quantizes a vector, runs a ViT checkpoint on one image and a Mamba
// checkpoint on a prompt, and prints the results (floats in hex, exactly).
#include <error.h> // glibc's: qtk's headers live under <qtk/...> and shadow nothing
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qtk/core/qtk.h>
#include <qtk/ssm/mamba.h>
#include <qtk/vision/vit.h>

static int fail(const char *what) {
    fprintf(stderr, "example: %s: %s\n", what, qtk_last_error());
    return 1;
}

static int argmax(const float *x, int n) {
    int k = 0;
    for (int i = 1; i < n; i++) k = x[i] > x[k] ? i : k;
    return k;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: example VIT.safetensors MAMBA_DIR\n");
        return 2;
    }
    // 1. fake quantization: 4-bit asymmetric over [-1, 2]
    float x[6] = {-1.0f, -0.3f, 0.0f, 0.7f, 1.3f, 2.5f}, y[6], s, z;
    int lo, hi;
    if (qtk_qrange(4, false, &lo, &hi) != QTK_OK) return fail("qrange");
    qtk_params_asym(-1.0f, 2.0f, lo, hi, &s, &z);
    qtk_fake_quant_per_tensor(x, y, 6, s, z, lo, hi, QTK_FQ_REF);
    printf("fake-quant s=%a z=%g:", s, z);
    for (int i = 0; i < 6; i++) printf(" %a", y[i]);
    printf("\n");

    // 2. a ViT checkpoint on one constant image
    qtk_vit vit;
    qtk_vit_plan plan;
    if (qtk_vit_load(&vit, argv[1], NULL) != QTK_OK) return fail(argv[1]);
    if (qtk_vit_plan_init(&plan, &vit, 1) != QTK_OK) return fail("plan");
    size_t npx = (size_t)vit.cfg.in_chans * vit.cfg.img_size * vit.cfg.img_size;
    float *img = malloc(npx * sizeof *img), *logits = malloc((size_t)vit.cfg.n_classes * sizeof *logits);
    for (size_t i = 0; i < npx; i++) img[i] = (float)(i % 7) / 7.0f - 0.5f;
    if (qtk_vit_forward(&vit, &plan, img, 1, logits) != QTK_OK) return fail("vit forward");
    printf("vit %s: class %d, logit[0] %a\n", vit.cfg.name, argmax(logits, vit.cfg.n_classes), logits[0]);
    free(img);
    free(logits);
    qtk_vit_plan_free(&plan);
    qtk_vit_free(&vit);

    // 3. a Mamba checkpoint (byte-level vocabulary) on a prompt
    qtk_mamba mm;
    qtk_mamba_state st;
    if (qtk_mamba_load(&mm, argv[2]) != QTK_OK) return fail(argv[2]);
    if (qtk_mamba_state_init(&st, &mm, 1) != QTK_OK) return fail("state");
    const char *prompt = "In the beginning God created the heaven";
    int L = (int)strlen(prompt), V = mm.cfg.vocab;
    int32_t *tok = malloc((size_t)L * sizeof *tok);
    float *lg = malloc((size_t)L * V * sizeof *lg);
    for (int i = 0; i < L; i++) tok[i] = (unsigned char)prompt[i];
    if (qtk_mamba_prefill(&mm, &st, tok, L, lg, QTK_SCAN_AUTO) != QTK_OK) return fail("mamba prefill");
    const float *last = lg + (size_t)(L - 1) * V;
    printf("mamba: next byte %d, logit %a\n", argmax(last, V), last[argmax(last, V)]);
    free(tok);
    free(lg);
    qtk_mamba_state_free(&st);
    qtk_mamba_free(&mm);

    // 4. errors come back as a status and a message, never an exit
    if (qtk_vit_load(&vit, "no/such/file.safetensors", NULL) == QTK_OK) return 1;
    printf("error: %s\n", qtk_last_error());
    return 0;
}
