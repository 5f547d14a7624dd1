#include "tokens.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/file.h"

void qtk_tokens_close(qtk_tokens *t) {
    if (t->map) munmap(t->map, t->map_size);
    free(t->path);
    memset(t, 0, sizeof *t);
}

uint32_t qtk_tokens_get(const qtk_tokens *t, size_t i) {
    const uint8_t *p = (const uint8_t *)t->map + i * (size_t)t->width;
    return t->width == 2 ? (uint32_t)(p[0] | p[1] << 8) : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static qtk_status read_sidecar(const char *path, int *width, size_t *count, uint32_t *vocab) {
    char side[4096];
    snprintf(side, sizeof side, "%s.json", path);
    char *buf;
    QTK_TRY(qtk_file_read(side, "token-file sidecar", 1 << 20, &buf, NULL));
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    const cJSON *d = j ? cJSON_GetObjectItemCaseSensitive(j, "dtype") : NULL;
    const cJSON *c = j ? cJSON_GetObjectItemCaseSensitive(j, "count") : NULL;
    const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, "vocab_size") : NULL;
    qtk_status st = QTK_OK;
    if (!cJSON_IsObject(j)) st = qtk_fail(QTK_ERR_FORMAT, "%s: not a JSON object", side);
    else if (!cJSON_IsString(d) || (strcmp(d->valuestring, "uint16") && strcmp(d->valuestring, "uint32")))
        st = qtk_fail(QTK_ERR_FORMAT, "%s: \"dtype\" must be \"uint16\" or \"uint32\"", side);
    // compared as doubles before any cast: 1e30 or 2^63 + 2048 cannot reach size_t arithmetic
    else if (!cJSON_IsNumber(c) || !(c->valuedouble >= 0) || c->valuedouble != floor(c->valuedouble) ||
             c->valuedouble > QTK_TOKENS_MAX_COUNT)
        st = qtk_fail(QTK_ERR_FORMAT, "%s: \"count\" must be an integer in 0..2^48, got %.17g", side,
                      cJSON_IsNumber(c) ? c->valuedouble : NAN);
    else if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 4294967296.0)
        st = qtk_fail(QTK_ERR_FORMAT, "%s: \"vocab_size\" must be an integer in 1..2^32", side);
    else {
        *width = !strcmp(d->valuestring, "uint16") ? 2 : 4;
        *count = (size_t)c->valuedouble;
        *vocab = (uint32_t)(v->valuedouble > 4294967295.0 ? 4294967295.0 : v->valuedouble);
    }
    cJSON_Delete(j);
    return st;
}

qtk_status qtk_tokens_open(qtk_tokens *t, const char *path) {
    memset(t, 0, sizeof *t);
    QTK_TRY(read_sidecar(path, &t->width, &t->count, &t->vocab_size));
    int fd;
    size_t fsize;
    QTK_TRY(qtk_file_open_regular(path, "token file", &fd, &fsize));
    // count <= 2^48 and width <= 4: the product cannot wrap
    if (fsize != t->count * (size_t)t->width) {
        close(fd);
        return qtk_fail(QTK_ERR_FORMAT, "%s: %zu bytes, but the sidecar says %zu ids of %d bytes (%zu bytes)", path, fsize,
                        t->count, t->width, t->count * (size_t)t->width);
    }
    if (t->count > 0) {
        t->map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
        if (t->map == MAP_FAILED) {
            t->map = NULL;
            close(fd);
            return qtk_fail(QTK_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        t->map_size = fsize;
    }
    close(fd);
    for (size_t i = 0; i < t->count; i++)
        if (qtk_tokens_get(t, i) >= t->vocab_size) {
            qtk_status st = qtk_fail(QTK_ERR_FORMAT, "%s: token %zu is %u, outside the vocabulary of %u", path, i,
                                     qtk_tokens_get(t, i), t->vocab_size);
            qtk_tokens_close(t);
            return st;
        }
    t->path = strdup(path);
    return QTK_OK;
}

size_t qtk_tokens_n_samples(const qtk_tokens *t, size_t seq_len, size_t stride) {
    if (seq_len == 0 || stride == 0 || t->count < seq_len) return 0;
    return (t->count - seq_len) / stride + 1;
}

qtk_status qtk_tokens_sample(const qtk_tokens *t, size_t i, size_t seq_len, size_t stride, int32_t *out) {
    if (i >= qtk_tokens_n_samples(t, seq_len, stride))
        return qtk_fail(QTK_ERR_ARG, "%s: sample %zu of length %zu, stride %zu does not exist (%zu tokens)", t->path, i,
                        seq_len, stride, t->count);
    for (size_t k = 0; k < seq_len; k++) out[k] = (int32_t)qtk_tokens_get(t, i * stride + k);
    return QTK_OK;
}

qtk_status qtk_tokens_write(const char *path, const uint32_t *ids, size_t count, uint32_t vocab_size) {
    int width = vocab_size <= 65536 ? 2 : 4;
    for (size_t i = 0; i < count; i++)
        if (ids[i] >= vocab_size) return qtk_fail(QTK_ERR_ARG, "%s: token %zu is %u, outside the vocabulary of %u", path, i, ids[i], vocab_size);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32), *side = malloc(plen + 8);
    if (!tmp || !side) {
        free(tmp);
        free(side);
        return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, plen + 32, "%s.tmp.%d", path, (int)getpid());
    snprintf(side, plen + 8, "%s.json", path);
    qtk_status st = QTK_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) st = qtk_fail(QTK_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    for (size_t i = 0; st == QTK_OK && i < count; i++) {
        uint8_t b[4] = {(uint8_t)ids[i], (uint8_t)(ids[i] >> 8), (uint8_t)(ids[i] >> 16), (uint8_t)(ids[i] >> 24)};
        if (fwrite(b, 1, (size_t)width, f) != (size_t)width) st = qtk_fail(QTK_ERR_IO, "%s: write failed", tmp);
    }
    if (f && fclose(f) != 0 && st == QTK_OK) st = qtk_fail(QTK_ERR_IO, "%s: close failed", tmp);
    if (st == QTK_OK) {
        FILE *s = fopen(side, "w");
        if (!s || fprintf(s, "{\"dtype\": \"%s\", \"count\": %zu, \"vocab_size\": %u}\n", width == 2 ? "uint16" : "uint32",
                          count, vocab_size) < 0 || fclose(s) != 0)
            st = qtk_fail(QTK_ERR_IO, "%s: cannot write the sidecar", side);
    }
    if (st == QTK_OK && rename(tmp, path) != 0) st = qtk_fail(QTK_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
    if (st != QTK_OK) unlink(tmp);
    free(tmp);
    free(side);
    return st;
}
