// Image pipeline benchmark (make bench): JPEG decode + eval preprocessing to
// (3, 224, 224) floats, images/s on all cores and per core, beside PIL + numpy
// doing the same transform on the same files in the same run (one core).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qtk.h"
#include "../datasets/image.h"
#include "timer.h"

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len);
    if (b && fread(b, 1, *len, f) != *len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void bench_set(const char *label, char **files, int n, int repeat, int fast) {
    uint8_t **bufs = malloc((size_t)n * sizeof *bufs);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    for (int i = 0; i < n; i++) bufs[i] = read_file(files[i], &lens[i]);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    int threads = omp_get_max_threads(), total = n * repeat, errors = 0;
    float *out = malloc((size_t)threads * 3 * 224 * 224 * sizeof *out);
    double t0 = qtk_now();
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : errors)
    for (int k = 0; k < total; k++) {
        qtk_image im;
        int i = k % n;
        // fast: DCT-domain downscale to a short side >= 256 while decoding (not PIL-exact)
        if (!bufs[i] || qtk_jpeg_decode_scaled(bufs[i], lens[i], files[i], fast ? 256 : 0, &im) != QTK_OK) {
            errors++;
            continue;
        }
        errors += qtk_preprocess_eval(&im, 224, 0.875f, mean, sd, out + (size_t)omp_get_thread_num() * 3 * 224 * 224) != QTK_OK;
        qtk_image_free(&im);
    }
    double qtk_rate = total / (qtk_now() - t0);
    // PIL + numpy, one process, same files
    size_t cl = 64;
    for (int i = 0; i < n; i++) cl += strlen(files[i]) + 3;
    char *cmd = malloc(cl);
    int k = snprintf(cmd, cl, "/usr/bin/python3 tools/bench_pil.py %d", repeat);
    for (int i = 0; i < n; i++) k += snprintf(cmd + k, cl - (size_t)k, " '%s'", files[i]);
    FILE *p = popen(cmd, "r");
    double pil_rate = 0;
    if (!p || fscanf(p, "%lf", &pil_rate) != 1) pil_rate = 0;
    if (p) pclose(p);
    printf("%s: %d images (%d errors)\n", label, total, errors);
    printf("  qtk: %.1f images/s on %d threads = %.1f per core\n", qtk_rate, threads, qtk_rate / threads);
    if (pil_rate > 0)
        printf("  PIL + numpy (one core): %.1f images/s; qtk per core / PIL = %.2fx\n", pil_rate,
               qtk_rate / threads / pil_rate);
    else
        printf("  PIL baseline unavailable (needs /usr/bin/python3 with python3-pil and python3-numpy)\n");
    free(cmd);
    free(out);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(lens);
}

int main(void) {
    char *imagenet_like[] = {"tests/fixtures/datasets/rgb_500x375.jpg", "tests/fixtures/datasets/progressive_333x500.jpg"};
    bench_set("ImageNet-sized JPEGs (500x375 and 333x500), decode + resize 256 + crop 224 + normalize", imagenet_like,
              2, 100, 0);
    bench_set("  the same with --fast-decode (DCT-domain downscaling; NOT PIL-exact)", imagenet_like, 2, 100, 1);
    // the real photos, when fetched (make photos)
    FILE *ls = popen("ls build/cache/opencv-doc/*.jpg 2>/dev/null", "r");
    char *files[128], line[512];
    int n = 0;
    while (ls && n < 128 && fgets(line, sizeof line, ls)) {
        line[strcspn(line, "\n")] = '\0';
        files[n++] = strdup(line);
    }
    if (ls) pclose(ls);
    if (n > 0) bench_set("Debian opencv-doc photos (mixed sizes)", files, n, 3, 0);
    for (int i = 0; i < n; i++) free(files[i]);
    return 0;
}
