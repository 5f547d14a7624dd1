#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../core/file.h"

void qtk_idx_free(qtk_idx *x) {
    free(x->data);
    memset(x, 0, sizeof *x);
}

// The data after the header: a plain file must hold exactly n bytes (checked against its size before any
// allocation); a gzip stream grows its buffer as data arrives, so a header's promise costs nothing until kept.
static qtk_status idx_read_data(gzFile f, const char *path, int gz, size_t file_size, size_t header, size_t n,
                                uint8_t **out) {
    *out = NULL;
    if (!gz && file_size - header != n)
        return qtk_fail(QTK_ERR_FORMAT, "%s: %zu data bytes, the header promises %zu (%s)", path, file_size - header, n,
                        file_size - header < n ? "truncated?" : "bytes after the data");
    size_t cap = gz ? (n < ((size_t)1 << 20) ? n : ((size_t)1 << 20)) : n, got = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return qtk_fail(QTK_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
    while (got < n) {
        if (got == cap) {
            size_t nc = cap * 2 < n ? cap * 2 : n;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                return qtk_fail(QTK_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, nc);
            }
            buf = nb;
            cap = nc;
        }
        size_t want = cap - got < ((size_t)1 << 30) ? cap - got : ((size_t)1 << 30);
        int r = gzread(f, buf + got, (unsigned)want);
        if (r <= 0) break;
        got += (size_t)r;
    }
    unsigned char extra;
    qtk_status st = QTK_OK;
    if (got != n) st = qtk_fail(QTK_ERR_FORMAT, "%s: %zu data bytes, the header promises %zu (truncated?)", path, got, n);
    else if (gzread(f, &extra, 1) > 0) st = qtk_fail(QTK_ERR_FORMAT, "%s: bytes after the %zu the header promises", path, n);
    if (st != QTK_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return QTK_OK;
}

qtk_status qtk_idx_read(const char *path, qtk_idx *out) {
    memset(out, 0, sizeof *out);
    int fd;
    size_t file_size;
    QTK_TRY(qtk_file_open_regular(path, "IDX file", &fd, &file_size));
    unsigned char magic[2] = {0, 0};
    int gz = pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    gzFile f = gzdopen(fd, "rb"); // reads plain files too; owns fd from here
    if (!f) {
        close(fd);
        return qtk_fail(QTK_ERR_NOMEM, "%s: cannot start reading", path);
    }
    unsigned char h[4];
    qtk_status st = QTK_OK;
    if (gzread(f, h, 4) != 4) st = qtk_fail(QTK_ERR_FORMAT, "%s: shorter than an IDX header", path);
    else if (h[0] != 0 || h[1] != 0) st = qtk_fail(QTK_ERR_FORMAT, "%s: bad IDX magic %02x %02x (expected 00 00)", path, h[0], h[1]);
    else if (h[2] != 0x08) st = qtk_fail(QTK_ERR_UNSUPPORTED, "%s: IDX element type 0x%02x (only unsigned bytes, 0x08)", path, h[2]);
    else if (h[3] < 1 || h[3] > 8) st = qtk_fail(QTK_ERR_FORMAT, "%s: IDX rank %d (expected 1..8)", path, h[3]);
    size_t n = 1;
    if (st == QTK_OK) {
        out->ndim = h[3];
        for (int i = 0; i < out->ndim && st == QTK_OK; i++) {
            unsigned char d[4];
            if (gzread(f, d, 4) != 4) st = qtk_fail(QTK_ERR_FORMAT, "%s: truncated IDX header", path);
            else {
                out->dims[i] = (int)((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]);
                if (out->dims[i] < 0 || (out->dims[i] && n > ((size_t)1 << 40) / (size_t)out->dims[i]))
                    st = qtk_fail(QTK_ERR_FORMAT, "%s: implausible IDX dimension %d", path, out->dims[i]);
                n *= (size_t)out->dims[i];
            }
        }
    }
    if (st == QTK_OK) st = idx_read_data(f, path, gz, file_size, 4 + 4 * (size_t)out->ndim, n, &out->data);
    gzclose(f);
    if (st != QTK_OK) {
        qtk_idx_free(out);
        return st;
    }
    out->n = n;
    return QTK_OK;
}

qtk_status qtk_idx_write(const char *path, int ndim, const int *dims, const uint8_t *data) {
    if (ndim < 1 || ndim > 8) return qtk_fail(QTK_ERR_ARG, "%s: IDX rank %d", path, ndim);
    size_t n = 1, plen = strlen(path);
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    int gz = plen > 3 && !strcmp(path + plen - 3, ".gz");
    char *tmp = malloc(plen + 16);
    if (!tmp) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp.%d", path, (int)getpid());
    gzFile f = gzopen(tmp, gz ? "wb6" : "wbT"); // T: plain, no compression
    qtk_status st = QTK_OK;
    if (!f) st = qtk_fail(QTK_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    else {
        unsigned char h[4 + 32] = {0, 0, 0x08, (unsigned char)ndim};
        for (int i = 0; i < ndim; i++) {
            uint32_t d = (uint32_t)dims[i];
            h[4 + 4 * i] = (unsigned char)(d >> 24), h[5 + 4 * i] = (unsigned char)(d >> 16);
            h[6 + 4 * i] = (unsigned char)(d >> 8), h[7 + 4 * i] = (unsigned char)d;
        }
        if (gzwrite(f, h, (unsigned)(4 + 4 * ndim)) != 4 + 4 * ndim) st = qtk_fail(QTK_ERR_IO, "%s: write failed", tmp);
        for (size_t off = 0; st == QTK_OK && off < n; off += 1u << 30) {
            unsigned len = (unsigned)((n - off) > (1u << 30) ? (1u << 30) : (n - off));
            if (gzwrite(f, data + off, len) != (int)len) st = qtk_fail(QTK_ERR_IO, "%s: write failed", tmp);
        }
        if (gzclose(f) != Z_OK && st == QTK_OK) st = qtk_fail(QTK_ERR_IO, "%s: close failed", tmp);
        if (st == QTK_OK && rename(tmp, path) != 0) st = qtk_fail(QTK_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        if (st != QTK_OK) unlink(tmp);
    }
    free(tmp);
    return st;
}

qtk_status qtk_cifar_read(const char *path, int cifar100, uint8_t **images, uint8_t **labels, size_t *n) {
    *images = *labels = NULL;
    *n = 0;
    FILE *f = qtk_file_fopen_regular(path, "CIFAR batch");
    if (!f) return QTK_ERR_IO;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t rec = (size_t)(cifar100 ? 2 : 1) + 3072;
    if (len <= 0 || (size_t)len % rec != 0) {
        fclose(f);
        return qtk_fail(QTK_ERR_FORMAT, "%s: %ld bytes is not a whole number of %zu-byte CIFAR-%d records", path, len, rec,
                        cifar100 ? 100 : 10);
    }
    size_t cnt = (size_t)len / rec;
    uint8_t *im = malloc(cnt * 3072), *lb = malloc(cnt), *r = malloc(rec);
    qtk_status st = QTK_OK;
    if (!im || !lb || !r) st = qtk_fail(QTK_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < cnt && st == QTK_OK; i++) {
        if (fread(r, 1, rec, f) != rec) st = qtk_fail(QTK_ERR_IO, "%s: read error at record %zu", path, i);
        else {
            lb[i] = r[cifar100 ? 1 : 0];
            if (lb[i] >= (cifar100 ? 100 : 10))
                st = qtk_fail(QTK_ERR_FORMAT, "%s: record %zu has label %d (CIFAR-%d has %d classes)", path, i, lb[i],
                              cifar100 ? 100 : 10, cifar100 ? 100 : 10);
            memcpy(im + i * 3072, r + rec - 3072, 3072);
        }
    }
    fclose(f);
    free(r);
    if (st != QTK_OK) {
        free(im);
        free(lb);
        return st;
    }
    *images = im;
    *labels = lb;
    *n = cnt;
    return QTK_OK;
}
