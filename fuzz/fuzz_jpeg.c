// JPEG decoding (TurboJPEG, PIL's conversions) and the eval transform (Pillow's bicubic resize of the shorter
// side, center crop, normalization), as the folder loader runs them; the fast DCT-scaled decode too.
// The harness skips images over 2^16 pixels to keep executions fast (the library's own bounds are tested
// in tests/test_hostile.c).
#include <turbojpeg.h>

#include "../datasets/image.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_dir();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tjhandle tj = tjInitDecompress();
    int w = 0, h = 0, ss, cs;
    int ok = tj && size >= 4 && tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &ss, &cs) == 0;
    if (tj) tjDestroy(tj);
    if (ok && (size_t)w * (size_t)h > ((size_t)1 << 16)) return 0;
    static float chw[3 * 32 * 32];
    static uint8_t u8[32 * 32 * 3];
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    qtk_image im;
    if (qtk_jpeg_decode(data, size, "x.jpg", &im) == QTK_OK) {
        (void)qtk_preprocess_eval(&im, 32, 0.875f, mean, sd, chw);
        (void)qtk_preprocess_u8(&im, 24, 0.9f, u8);
        qtk_image_free(&im);
    }
    if (qtk_jpeg_decode_scaled(data, size, "x.jpg", 36, &im) == QTK_OK) {
        (void)qtk_preprocess_eval(&im, 32, 0.875f, mean, sd, chw);
        qtk_image_free(&im);
    }
    return 0;
}
