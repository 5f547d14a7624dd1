// Images: JPEG decoding (TurboJPEG) and the evaluation preprocessing of
// timm / torchvision, reproducing Pillow's arithmetic (spec vit-baseline.md
// section 12): resize the shorter side with PIL's antialiased BICUBIC
// resampler, center crop, scale to [0, 1], normalize.
#ifndef QTK_IMAGE_H
#define QTK_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int w, h;
    uint8_t *rgb; // (h, w, 3) interleaved
} qtk_image;

// Bounds that keep a hostile image from costing more than a real one (errors name the file):
// a JPEG file of at most 256 MiB, of at most 2^28 pixels,
#define QTK_IMAGE_MAX_FILE_BYTES ((size_t)256 << 20)
#define QTK_IMAGE_MAX_PIXELS ((size_t)1 << 28)
// and of at most 1,024 pixels per byte of file: Huffman coding spends at least 2 bits on each 8x8 block
// (DC and end-of-block codes; 1 bit in a progressive DC scan), so no real JPEG comes near; a header-only
// file claiming 16384x16384 is refused before 800 MB are allocated and filled.
#define QTK_JPEG_MAX_PIXELS_PER_BYTE 1024
// The eval transform's resize of the shorter side makes at most 2^24 pixels (48 MiB): an aspect-ratio bomb
// (1x8000 -> 256x2048000) is a bad image, not a 1.6 GB allocation.
#define QTK_RESIZE_MAX_PIXELS ((size_t)1 << 24)

// Decodes a JPEG from memory into RGB, as PIL's Image.open(...).convert("RGB")
// does: grayscale is replicated, CMYK (Adobe, inverted) is converted with
// Pillow's formula. `name` is used in error messages.
qtk_status qtk_jpeg_decode(const uint8_t *buf, size_t len, const char *name, qtk_image *out);
// Reads and decodes a JPEG file.
qtk_status qtk_image_load(const char *path, qtk_image *out);
// Fast mode (off by default, NOT PIL-exact): decode at the smallest DCT-domain
// scale (TurboJPEG's 1/8 .. 1 factors) whose shorter side is still >= min_short,
// the size the resize goes to next. min_short <= 0 decodes at full size.
qtk_status qtk_jpeg_decode_scaled(const uint8_t *buf, size_t len, const char *name, int min_short, qtk_image *out);
qtk_status qtk_image_load_scaled(const char *path, int min_short, qtk_image *out);
void qtk_image_free(qtk_image *im);

// torchvision Resize(size) on the shorter side: short -> size, long ->
// int(size * long / short) (truncation).
void qtk_resize_dims(int w, int h, int size, int *out_w, int *out_h);

// Pillow's Image.resize((out_w, out_h), BICUBIC) bit for bit: antialiased
// separable bicubic (a = -0.5), 22-bit fixed-point coefficients, horizontal
// pass then vertical pass through an 8-bit intermediate.
qtk_status qtk_resize_bicubic_pil(const qtk_image *in, int out_w, int out_h, qtk_image *out);
// The same, written as Pillow's loops read (scalar): the reference the fast version is tested against.
qtk_status qtk_resize_bicubic_pil_ref(const qtk_image *in, int out_w, int out_h, qtk_image *out);

// torchvision CenterCrop(crop) of an RGB image into (crop, crop, 3) uint8:
// top = int(round((h - crop) / 2)), Python round (half to even).
qtk_status qtk_center_crop(const qtk_image *in, int crop, uint8_t *out);

// (crop, crop, 3) uint8 -> (3, crop, crop) float: (x / 255 - mean) / std.
void qtk_normalize_chw(const uint8_t *hwc, int crop, const float mean[3], const float std[3], float *chw);

// Resize the shorter side to floor(img_size / crop_pct) and center crop:
// out (img_size, img_size, 3) uint8, before scaling and normalization.
qtk_status qtk_preprocess_u8(const qtk_image *in, int img_size, float crop_pct, uint8_t *out);

// The whole eval transform: resize the shorter side to floor(img_size / crop_pct),
// center crop img_size, normalize; out is (3, img_size, img_size).
qtk_status qtk_preprocess_eval(const qtk_image *in, int img_size, float crop_pct, const float mean[3],
                               const float std[3], float *out);

#ifdef __cplusplus
}
#endif

#endif
