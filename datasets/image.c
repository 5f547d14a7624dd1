#include "image.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "../core/file.h"
#include "../core/scalar.h"
#include "../core/tensor.h"

void qtk_image_free(qtk_image *im) {
    free(im->rgb);
    memset(im, 0, sizeof *im);
}

// Hands px (h, w, 3) to out on success; frees it otherwise.
static qtk_status image_finish(qtk_image *out, int w, int h, uint8_t *px, qtk_status st) {
    if (st != QTK_OK) {
        free(px);
        return st;
    }
    out->w = w;
    out->h = h;
    out->rgb = px;
    return QTK_OK;
}

// Pillow's CMYK -> RGB: nk = 255 - k; r = nk - nk * c / 255 (rounded as MULDIV255).
static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

qtk_status qtk_jpeg_decode(const uint8_t *buf, size_t len, const char *name, qtk_image *out) {
    return qtk_jpeg_decode_scaled(buf, len, name, 0, out);
}

qtk_status qtk_jpeg_decode_scaled(const uint8_t *buf, size_t len, const char *name, int min_short, qtk_image *out) {
    memset(out, 0, sizeof *out);
    tjhandle tj = tjInitDecompress();
    if (!tj) return qtk_fail(QTK_ERR_NOMEM, "%s: cannot start the JPEG decoder", name);
    int w, h, subsamp, cs;
    qtk_status st = QTK_OK;
    if (len < 4 || buf[0] != 0xFF || buf[1] != 0xD8) {
        st = qtk_fail(QTK_ERR_FORMAT, "%s: not a JPEG file (no SOI marker)", name);
    } else if (tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
        st = qtk_fail(QTK_ERR_FORMAT, "%s: unreadable JPEG header: %s", name, tjGetErrorStr2(tj));
    } else if (w <= 0 || h <= 0 || (size_t)w * (size_t)h > QTK_IMAGE_MAX_PIXELS) {
        st = qtk_fail(QTK_ERR_FORMAT, "%s: implausible JPEG size %dx%d", name, w, h);
    } else if ((size_t)w * (size_t)h / QTK_JPEG_MAX_PIXELS_PER_BYTE > len) {
        st = qtk_fail(QTK_ERR_FORMAT, "%s: a %dx%d JPEG cannot fit in %zu bytes (truncated, or a decompression bomb)", name,
                      w, h, len);
    }
    uint8_t *px = NULL;
    if (st == QTK_OK && min_short > 0) {
        // the smallest scale whose shorter side still reaches min_short
        int nsf = 0, best_w = w, best_h = h;
        tjscalingfactor *sf = tjGetScalingFactors(&nsf);
        for (int i = 0; sf && i < nsf; i++) {
            int sw = TJSCALED(w, sf[i]), sh = TJSCALED(h, sf[i]);
            if ((sw < sh ? sw : sh) >= min_short && sw * sh < best_w * best_h) best_w = sw, best_h = sh;
        }
        w = best_w;
        h = best_h;
    }
    if (st == QTK_OK) {
        int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
        int pf = cmyk ? TJPF_CMYK : TJPF_RGB, ps = cmyk ? 4 : 3;
        px = malloc((size_t)w * h * ps);
        if (!px) st = qtk_fail(QTK_ERR_NOMEM, "%s: cannot allocate %dx%d pixels", name, w, h);
        // default flags: accurate integer IDCT and fancy upsampling, as PIL's libjpeg defaults
        else if (tjDecompress2(tj, buf, (unsigned long)len, px, w, 0, h, pf, 0) != 0 &&
                 (tjGetErrorCode(tj) == TJERR_FATAL || strstr(tjGetErrorStr2(tj), "Premature end")))
            // fatal errors, and truncation (a warning for libjpeg, an error for PIL: "image file is truncated")
            st = qtk_fail(QTK_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", name, tjGetErrorStr2(tj));
        else if (cmyk) {
            // TurboJPEG returns the file's values; Adobe CMYK JPEGs store them inverted,
            // as PIL's "CMYK;I" raw mode assumes: PIL's C = 255 - stored
            uint8_t *rgb = malloc((size_t)w * h * 3);
            if (!rgb) st = qtk_fail(QTK_ERR_NOMEM, "%s: cannot allocate %dx%d pixels", name, w, h);
            else {
                for (size_t i = 0; i < (size_t)w * h; i++) {
                    int c = 255 - px[4 * i], m = 255 - px[4 * i + 1], y = 255 - px[4 * i + 2], k = 255 - px[4 * i + 3];
                    int nk = 255 - k;
                    rgb[3 * i] = (uint8_t)(nk - muldiv255(c, nk));
                    rgb[3 * i + 1] = (uint8_t)(nk - muldiv255(m, nk));
                    rgb[3 * i + 2] = (uint8_t)(nk - muldiv255(y, nk));
                }
                free(px);
                px = rgb;
            }
        }
    }
    tjDestroy(tj);
    return image_finish(out, w, h, px, st);
}

qtk_status qtk_image_load(const char *path, qtk_image *out) { return qtk_image_load_scaled(path, 0, out); }

qtk_status qtk_image_load_scaled(const char *path, int min_short, qtk_image *out) {
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    QTK_TRY(qtk_file_read(path, "JPEG image", QTK_IMAGE_MAX_FILE_BYTES, &buf, &len));
    qtk_status st = qtk_jpeg_decode_scaled((const uint8_t *)buf, len, path, min_short, out);
    free(buf);
    return st;
}

void qtk_resize_dims(int w, int h, int size, int *out_w, int *out_h) {
    if (w <= h) {
        *out_w = size;
        *out_h = (int)((long long)size * h / w);
    } else {
        *out_h = size;
        *out_w = (int)((long long)size * w / h);
    }
}

// --- Pillow-exact bicubic resampling -----------------------------------------------

#define PREC 22 // fixed-point fraction bits of the coefficients (32 - 8 - 2)

static double bicubic(double x) {
    // a = -0.5 (Keys), as PIL
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// For each output index: the first input index, the tap count, and ksize
// fixed-point weights. Returns ksize, or 0 when out of memory.
static int coeffs(int in_size, int out_size, int **bounds_out, int32_t **w_out) {
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    int32_t *w = calloc((size_t)out_size * ksize, sizeof *w);
    double *k = malloc((size_t)ksize * sizeof *k);
    if (!bounds || !w || !k) {
        free(bounds);
        free(w);
        free(k);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            k[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? k[x] / ww : k[x];
            // round half away from zero to 22 fraction bits
            w[(size_t)xx * ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PREC)) : (int32_t)(0.5 + v * (1 << PREC));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(k);
    *bounds_out = bounds;
    *w_out = w;
    return ksize;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PREC; // arithmetic shift: floor
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

qtk_status qtk_resize_bicubic_pil_ref(const qtk_image *in, int out_w, int out_h, qtk_image *out) {
    memset(out, 0, sizeof *out);
    if (out_w <= 0 || out_h <= 0) return qtk_fail(QTK_ERR_ARG, "resize to %dx%d", out_w, out_h);
    int need_h = out_w != in->w, need_v = out_h != in->h;
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    int ksh = coeffs(in->w, out_w, &bh, &kh), ksv = coeffs(in->h, out_h, &bv, &kv);
    uint8_t *tmp = NULL, *dst = malloc((size_t)out_w * out_h * 3);
    qtk_status st = QTK_OK;
    if (!ksh || !ksv || !dst) st = qtk_fail(QTK_ERR_NOMEM, "resize: out of memory");
    // rows of the input that the vertical pass reads
    int y_first = st == QTK_OK ? bv[0] : 0, y_last = st == QTK_OK ? bv[2 * out_h - 2] + bv[2 * out_h - 1] : 0;
    const uint8_t *src = in->rgb;
    int src_w = in->w, row0 = 0;
    if (st == QTK_OK && need_h) {
        int rows = need_v ? y_last - y_first : in->h;
        int first = need_v ? y_first : 0;
        tmp = malloc((size_t)out_w * rows * 3);
        if (!tmp) st = qtk_fail(QTK_ERR_NOMEM, "resize: out of memory");
        else {
#pragma omp parallel for schedule(static) if ((size_t)rows * out_w >= 65536)
            for (int y = 0; y < rows; y++) {
                const uint8_t *r = in->rgb + (size_t)(y + first) * in->w * 3;
                for (int xx = 0; xx < out_w; xx++) {
                    const int32_t *k = kh + (size_t)xx * ksh;
                    int xmin = bh[2 * xx], n = bh[2 * xx + 1];
                    int32_t s0 = 1 << (PREC - 1), s1 = s0, s2 = s0;
                    for (int x = 0; x < n; x++) {
                        const uint8_t *p = r + (size_t)(x + xmin) * 3;
                        s0 += p[0] * k[x];
                        s1 += p[1] * k[x];
                        s2 += p[2] * k[x];
                    }
                    uint8_t *o = (need_v ? tmp : dst) + ((size_t)y * out_w + xx) * 3;
                    o[0] = clip8(s0);
                    o[1] = clip8(s1);
                    o[2] = clip8(s2);
                }
            }
            src = tmp;
            src_w = out_w;
            row0 = first;
        }
    }
    if (st == QTK_OK && need_v) {
#pragma omp parallel for schedule(static) if ((size_t)out_h * src_w >= 65536)
        for (int yy = 0; yy < out_h; yy++) {
            const int32_t *k = kv + (size_t)yy * ksv;
            int ymin = bv[2 * yy] - row0, n = bv[2 * yy + 1];
            for (int xx = 0; xx < src_w; xx++) {
                int32_t s0 = 1 << (PREC - 1), s1 = s0, s2 = s0;
                for (int y = 0; y < n; y++) {
                    const uint8_t *p = src + ((size_t)(y + ymin) * src_w + xx) * 3;
                    s0 += p[0] * k[y];
                    s1 += p[1] * k[y];
                    s2 += p[2] * k[y];
                }
                uint8_t *o = dst + ((size_t)yy * out_w + xx) * 3;
                o[0] = clip8(s0);
                o[1] = clip8(s1);
                o[2] = clip8(s2);
            }
        }
    }
    if (st == QTK_OK && !need_h && !need_v) memcpy(dst, in->rgb, (size_t)out_w * out_h * 3);
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    free(tmp);
    return image_finish(out, out_w, out_h, dst, st);
}

// Accumulates taps of whole rows: acc[i] += src_t[i] * k[t] over contiguous
// bytes, which vectorizes. Integer sums do not depend on order, so the result
// equals the reference bit for bit.
// Built twice, for AVX2 (8 lanes of 32-bit multiplies) and baseline x86-64
// (SSE2 has none); the loader picks one for the CPU it runs on.

QTK_AVX2_CLONES
static void taps_rows(const uint8_t *src, size_t stride, int first, int n, const int32_t *k, size_t len, int32_t *acc,
                      uint8_t *dst) {
    for (size_t i = 0; i < len; i++) acc[i] = 1 << (PREC - 1);
    for (int t = 0; t < n; t++) {
        const uint8_t *r = src + (size_t)(first + t) * stride;
        int32_t kt = k[t];
#pragma omp simd
        for (size_t i = 0; i < len; i++) acc[i] += (int32_t)r[i] * kt;
    }
    for (size_t i = 0; i < len; i++) dst[i] = clip8(acc[i]);
}

// (rows, cols, 3) -> (cols, rows, 3), in 32x32 tiles so both sides stay in cache
static void transpose3(const uint8_t *in, int rows, int cols, uint8_t *out) {
    enum { TILE = 32 };
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)rows * cols >= 65536)
    for (int x0 = 0; x0 < cols; x0 += TILE)
        for (int y0 = 0; y0 < rows; y0 += TILE)
            for (int x = x0; x < x0 + TILE && x < cols; x++)
                for (int y = y0; y < y0 + TILE && y < rows; y++) {
                    const uint8_t *p = in + ((size_t)y * cols + x) * 3;
                    uint8_t *q = out + ((size_t)x * rows + y) * 3;
                    q[0] = p[0];
                    q[1] = p[1];
                    q[2] = p[2];
                }
}

qtk_status qtk_resize_bicubic_pil(const qtk_image *in, int out_w, int out_h, qtk_image *out) {
    memset(out, 0, sizeof *out);
    if (out_w <= 0 || out_h <= 0) return qtk_fail(QTK_ERR_ARG, "resize to %dx%d", out_w, out_h);
    int need_h = out_w != in->w, need_v = out_h != in->h;
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    int ksh = coeffs(in->w, out_w, &bh, &kh), ksv = coeffs(in->h, out_h, &bv, &kv);
    uint8_t *dst = malloc((size_t)out_w * out_h * 3), *tin = NULL, *tout = NULL, *mid = NULL;
    qtk_status st = QTK_OK;
    if (!ksh || !ksv || !dst) st = qtk_fail(QTK_ERR_NOMEM, "resize: out of memory");
    const uint8_t *src = in->rgb;
    int src_w = in->w, row0 = 0;
    if (st == QTK_OK && need_h) {
        // horizontal pass on the transposed rows it needs, so taps run over contiguous memory
        int first = need_v ? bv[0] : 0, rows = need_v ? bv[2 * out_h - 2] + bv[2 * out_h - 1] - first : in->h;
        tin = malloc((size_t)in->w * rows * 3);
        tout = malloc((size_t)out_w * rows * 3);
        mid = need_v ? malloc((size_t)out_w * rows * 3) : dst;
        if (!tin || !tout || !mid) st = qtk_fail(QTK_ERR_NOMEM, "resize: out of memory");
        else {
            transpose3(in->rgb + (size_t)first * in->w * 3, rows, in->w, tin);
            size_t len = (size_t)rows * 3;
#pragma omp parallel if ((size_t)rows * out_w >= 65536)
            {
                int32_t *acc = malloc(len * sizeof *acc);
#pragma omp for schedule(static)
                for (int xx = 0; xx < out_w; xx++)
                    if (acc) taps_rows(tin, len, bh[2 * xx], bh[2 * xx + 1], kh + (size_t)xx * ksh, len, acc,
                                       tout + (size_t)xx * len);
                free(acc);
            }
            transpose3(tout, out_w, rows, mid);
            src = mid;
            src_w = out_w;
            row0 = first;
        }
    }
    if (st == QTK_OK && need_v) {
        size_t len = (size_t)src_w * 3;
#pragma omp parallel if ((size_t)out_h * src_w >= 65536)
        {
            int32_t *acc = malloc(len * sizeof *acc);
#pragma omp for schedule(static)
            for (int yy = 0; yy < out_h; yy++)
                if (acc) taps_rows(src, len, bv[2 * yy] - row0, bv[2 * yy + 1], kv + (size_t)yy * ksv, len, acc,
                                   dst + (size_t)yy * len);
            free(acc);
        }
    }
    if (st == QTK_OK && !need_h && !need_v) memcpy(dst, in->rgb, (size_t)out_w * out_h * 3);
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    free(tin);
    free(tout);
    if (mid != dst) free(mid);
    return image_finish(out, out_w, out_h, dst, st);
}

// Python's round(): half to even.
static int py_round_half(int twice) { // round(twice / 2)
    int q = twice / 2;
    return (twice % 2 == 0) ? q : (q % 2 == 0 ? q : q + 1);
}

qtk_status qtk_center_crop(const qtk_image *in, int crop, uint8_t *out) {
    if (crop > in->w || crop > in->h)
        return qtk_fail(QTK_ERR_ARG, "center crop %d of a %dx%d image (resize first)", crop, in->w, in->h);
    int top = py_round_half(in->h - crop), left = py_round_half(in->w - crop);
    for (int y = 0; y < crop; y++)
        memcpy(out + (size_t)y * crop * 3, in->rgb + ((size_t)(y + top) * in->w + left) * 3, (size_t)crop * 3);
    return QTK_OK;
}

void qtk_normalize_chw(const uint8_t *hwc, int crop, const float mean[3], const float std[3], float *chw) {
    // ToTensor: x / 255; Normalize: (x - mean) / std. Only 256 inputs per
    // channel, so tabulate them (the same float operations as per pixel).
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
    size_t n = (size_t)crop * crop;
    for (size_t i = 0; i < n; i++) {
        chw[i] = lut[0][hwc[3 * i]];
        chw[n + i] = lut[1][hwc[3 * i + 1]];
        chw[2 * n + i] = lut[2][hwc[3 * i + 2]];
    }
}

qtk_status qtk_preprocess_u8(const qtk_image *in, int img_size, float crop_pct, uint8_t *out) {
    // timm: scale_size = floor(img_size / crop_pct)
    int size = (int)floor((double)img_size / (double)crop_pct);
    int rw, rh;
    qtk_resize_dims(in->w, in->h, size, &rw, &rh);
    if ((size_t)rw * (size_t)rh > QTK_RESIZE_MAX_PIXELS)
        return qtk_fail(QTK_ERR_FORMAT, "a %dx%d image resizes to %dx%d (shorter side %d): more than %zu pixels (aspect ratio "
                        "too extreme)", in->w, in->h, rw, rh, size, QTK_RESIZE_MAX_PIXELS);
    qtk_image r;
    QTK_TRY(qtk_resize_bicubic_pil(in, rw, rh, &r));
    qtk_status st = qtk_center_crop(&r, img_size, out);
    qtk_image_free(&r);
    return st;
}

qtk_status qtk_preprocess_eval(const qtk_image *in, int img_size, float crop_pct, const float mean[3],
                               const float std[3], float *out) {
    uint8_t *crop = malloc((size_t)img_size * img_size * 3);
    if (!crop) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    qtk_status st = qtk_preprocess_u8(in, img_size, crop_pct, crop);
    if (st == QTK_OK) qtk_normalize_chw(crop, img_size, mean, std, out);
    free(crop);
    return st;
}
