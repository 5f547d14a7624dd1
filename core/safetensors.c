#include "safetensors.h"

#include "file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int readable_dtype(qtk_dtype dt) { return dt != QTK_I4 && dt != QTK_U4; }

void qtk_st_close(qtk_safetensors *st) {
    if (st->map) munmap(st->map, st->map_size);
    for (size_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_vals);
    free(st->path);
    memset(st, 0, sizeof *st);
}

// A JSON number that is a non-negative integer below 2^53.
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0) || v > 9007199254740992.0 || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

static qtk_status parse_tensor(const char *path, const cJSON *item, size_t buf_size, qtk_st_tensor *t) {
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": header entry is not a JSON object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jd))
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": missing string \"dtype\"", path, name);
    if (qtk_dtype_from_name(jd->valuestring, &t->dtype) != QTK_OK || !readable_dtype(t->dtype))
        return qtk_fail(QTK_ERR_FORMAT,
                        "%s: tensor \"%s\": unsupported dtype \"%s\" (expected F32, F16, BF16, F64, I8, U8, I32 or I64)",
                        path, name, jd->valuestring);
    if (!cJSON_IsArray(js))
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": missing array \"shape\"", path, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > QTK_MAX_DIMS)
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": %d dimensions (at most %d supported)", path, name, nd,
                        QTK_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_uint(cJSON_GetArrayItem(js, i), &d) || d > (uint64_t)INT64_MAX)
            return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", path,
                            name, i);
        t->shape[i] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / d) overflow = 1;
        else numel *= d;
    }
    uint64_t b, e;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(cJSON_GetArrayItem(jo, 0), &b) ||
        !json_uint(cJSON_GetArrayItem(jo, 1), &e))
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] integers", path,
                        name);
    if (e < b)
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": data_offsets end %llu < begin %llu", path, name,
                        (unsigned long long)e, (unsigned long long)b);
    if (e > buf_size)
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] extend past the %zu-byte data "
                        "buffer (truncated file?)", path, name, (unsigned long long)b, (unsigned long long)e,
                        buf_size);
    size_t esz = qtk_dtype_nbytes(t->dtype, 1);
    char sh[200];
    if (overflow || numel > UINT64_MAX / esz || numel * esz != e - b)
        return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\": shape %s of %s needs %s bytes but data_offsets span %llu",
                        path, name, qtk_shape_str(t->ndim, t->shape, sh, sizeof sh), jd->valuestring,
                        overflow ? "more than 2^64" : "a different number of", (unsigned long long)(e - b));
    t->offset = (size_t)b;
    t->nbytes = (size_t)(e - b);
    return QTK_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const qtk_st_tensor *x = *(const qtk_st_tensor *const *)a, *y = *(const qtk_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static qtk_status parse_header(qtk_safetensors *st, const char *hdr, size_t hlen, size_t buf_size) {
    const char *path = st->path;
    if (hlen == 0 || hdr[0] != '{')
        return qtk_fail(QTK_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file?)", path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end ? (size_t)(end - hdr) : 0;
        cJSON_Delete(root);
        return qtk_fail(QTK_ERR_FORMAT, "%s: header is not a valid JSON object (parse stopped at byte %zu of %zu)",
                        path, at, hlen);
    }
    for (const char *p = end; p && p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\0' && *p != '\n' && *p != '\t' && *p != '\r') {
            cJSON_Delete(root);
            return qtk_fail(QTK_ERR_FORMAT, "%s: trailing bytes after the JSON header", path);
        }
    qtk_status st_ = QTK_OK;
    size_t n = 0;
    for (cJSON *it = root->child; it; it = it->next)
        if (strcmp(it->string, "__metadata__") != 0) n++;
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    const qtk_st_tensor **order = calloc(n ? n : 1, sizeof *order);
    if (!st->tensors || !order) {
        free(order);
        cJSON_Delete(root);
        return qtk_fail(QTK_ERR_NOMEM, "%s: cannot allocate %zu tensor records", path, n);
    }
    for (cJSON *it = root->child; it && st_ == QTK_OK; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                st_ = qtk_fail(QTK_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
                break;
            }
            size_t nm = (size_t)cJSON_GetArraySize(it);
            st->meta_keys = calloc(nm ? nm : 1, sizeof(char *));
            st->meta_vals = calloc(nm ? nm : 1, sizeof(char *));
            if (!st->meta_keys || !st->meta_vals) {
                st_ = qtk_fail(QTK_ERR_NOMEM, "%s: cannot allocate metadata", path);
                break;
            }
            for (cJSON *m = it->child; m; m = m->next) {
                if (!cJSON_IsString(m)) {
                    st_ = qtk_fail(QTK_ERR_FORMAT, "%s: __metadata__ value of \"%s\" is not a string", path, m->string);
                    break;
                }
                st->meta_keys[st->n_meta] = strdup(m->string);
                st->meta_vals[st->n_meta] = strdup(m->valuestring);
                st->n_meta++;
            }
            continue;
        }
        for (size_t i = 0; i < st->n_tensors; i++)
            if (strcmp(st->tensors[i].name, it->string) == 0) {
                st_ = qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\" appears twice in the header", path, it->string);
                break;
            }
        if (st_ != QTK_OK) break;
        qtk_st_tensor *t = &st->tensors[st->n_tensors];
        st_ = parse_tensor(path, it, buf_size, t);
        if (st_ != QTK_OK) break;
        t->name = strdup(it->string);
        order[st->n_tensors] = t;
        st->n_tensors++;
    }
    cJSON_Delete(root);
    if (st_ == QTK_OK) {
        // spans must tile the buffer: sorted by begin, each starts where the last ended
        qsort(order, st->n_tensors, sizeof *order, cmp_offset);
        size_t pos = 0;
        for (size_t i = 0; i < st->n_tensors && st_ == QTK_OK; i++) {
            if (order[i]->offset < pos)
                st_ = qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\" (bytes %zu..%zu) overlaps \"%s\"", path,
                               order[i]->name, order[i]->offset, order[i]->offset + order[i]->nbytes,
                               order[i - 1]->name);
            else if (order[i]->offset > pos)
                st_ = qtk_fail(QTK_ERR_FORMAT, "%s: %zu unused bytes before tensor \"%s\" (a hole in the data buffer)",
                               path, order[i]->offset - pos, order[i]->name);
            pos = order[i]->offset + order[i]->nbytes;
        }
        if (st_ == QTK_OK && pos != buf_size)
            st_ = qtk_fail(QTK_ERR_FORMAT, "%s: data buffer has %zu bytes but the tensors cover %zu", path, buf_size,
                           pos);
    }
    free(order);
    return st_;
}

qtk_status qtk_st_open(qtk_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    st->path = strdup(path);
    if (!st->path) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    int fd;
    size_t size;
    qtk_status ro = qtk_file_open_regular(path, NULL, &fd, &size);
    if (ro != QTK_OK) {
        qtk_st_close(st);
        return ro;
    }
    if (size < 8) {
        close(fd);
        qtk_st_close(st);
        return qtk_fail(QTK_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file (8-byte header length)",
                        path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        qtk_st_close(st);
        return qtk_fail(QTK_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    }
    st->map = map;
    st->map_size = size;
    const unsigned char *b = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen > QTK_ST_MAX_HEADER || hlen > size - 8) {
        qtk_status r = qtk_fail(QTK_ERR_FORMAT, "%s: header length %llu is impossible for a %zu-byte file%s", path,
                                (unsigned long long)hlen, size, hlen > QTK_ST_MAX_HEADER ? " (limit 100 MB)" : "");
        qtk_st_close(st);
        return r;
    }
    size_t buf_off = 8 + (size_t)hlen;
    qtk_status r = parse_header(st, (const char *)b + 8, (size_t)hlen, size - buf_off);
    if (r != QTK_OK) {
        qtk_st_close(st);
        return r;
    }
    for (size_t i = 0; i < st->n_tensors; i++) st->tensors[i].data = b + buf_off + st->tensors[i].offset;
    return QTK_OK;
}

const qtk_st_tensor *qtk_st_find(const qtk_safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *qtk_st_meta(const qtk_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

static qtk_status read_converted(const qtk_safetensors *st, const qtk_st_tensor *t, float *dst) {
    int64_t n = qtk_numel(t->ndim, t->shape);
    size_t esz = qtk_dtype_nbytes(t->dtype, 1);
    if ((uintptr_t)t->data % esz == 0) return qtk_convert_to_f32(t->dtype, t->data, dst, (size_t)n);
    // unaligned span (legal in the format): copy to aligned memory first
    void *tmp = qtk_aligned_alloc(t->nbytes);
    if (!tmp) return qtk_fail(QTK_ERR_NOMEM, "%s: cannot copy tensor \"%s\"", st->path, t->name);
    memcpy(tmp, t->data, t->nbytes);
    qtk_status r = qtk_convert_to_f32(t->dtype, tmp, dst, (size_t)n);
    qtk_aligned_free(tmp);
    return r;
}

qtk_status qtk_st_expect(const qtk_safetensors *st, const char *name, int ndim, const int64_t *shape,
                         const qtk_st_tensor **out) {
    const qtk_st_tensor *t = qtk_st_find(st, name);
    if (!t) return qtk_fail(QTK_ERR_NOT_FOUND, "%s: no tensor named \"%s\"", st->path, name);
    if (ndim >= 0) {
        int same = t->ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
        if (!same) {
            char a[200], b[200];
            return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\" has shape %s, expected %s", st->path, name,
                            qtk_shape_str(t->ndim, t->shape, a, sizeof a), qtk_shape_str(ndim, shape, b, sizeof b));
        }
    }
    if (out) *out = t;
    return QTK_OK;
}

qtk_status qtk_st_read_f32(const qtk_safetensors *st, const char *name, int ndim,
                           const int64_t *shape, float *dst) {
    const qtk_st_tensor *t;
    QTK_TRY(qtk_st_expect(st, name, ndim, shape, &t));
    return read_converted(st, t, dst);
}

qtk_status qtk_st_load_f32(const qtk_safetensors *st, const char *name, float **dst, size_t *numel) {
    *dst = NULL;
    const qtk_st_tensor *t = qtk_st_find(st, name);
    if (!t) return qtk_fail(QTK_ERR_NOT_FOUND, "%s: no tensor named \"%s\"", st->path, name);
    int64_t n = qtk_numel(t->ndim, t->shape);
    float *buf = qtk_aligned_alloc((size_t)n * sizeof *buf);
    if (!buf) return qtk_fail(QTK_ERR_NOMEM, "%s: cannot allocate %lld floats for \"%s\"", st->path, (long long)n, name);
    qtk_status r = read_converted(st, t, buf);
    if (r != QTK_OK) {
        qtk_aligned_free(buf);
        return r;
    }
    *dst = buf;
    if (numel) *numel = (size_t)n;
    return QTK_OK;
}

static qtk_status write_all(int fd, const void *p, size_t n, const char *path) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return qtk_fail(QTK_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        c += w;
        n -= (size_t)w;
    }
    return QTK_OK;
}

qtk_status qtk_st_write(const char *path, const qtk_st_entry *entries, size_t n,
                        const char *const (*meta)[2], size_t n_meta) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    qtk_status r = QTK_OK;
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; m && i < n_meta; i++) cJSON_AddStringToObject(m, meta[i][0], meta[i][1]);
    }
    // Data goes in order of decreasing element size, so every span is aligned
    // to its element (the buffer itself starts 8-aligned); the header keeps
    // the caller's order.
    size_t *order = malloc((n ? n : 1) * sizeof *order), *offs = malloc((n ? n : 1) * sizeof *offs);
    if (!order || !offs) {
        free(order);
        free(offs);
        cJSON_Delete(root);
        return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t esz = 8; esz >= 1; esz /= 2)
        for (size_t i = 0; i < n; i++)
            if (qtk_dtype_nbytes(entries[i].dtype, 1) == esz || (esz == 1 && qtk_dtype_nbytes(entries[i].dtype, 1) == 0))
                order[k++] = i;
    for (size_t i = k; i < n; i++) order[i] = i; // only reached for invalid dtypes, rejected below
    size_t pos = 0;
    for (size_t j = 0; j < n; j++) {
        offs[order[j]] = pos;
        pos += qtk_dtype_nbytes(entries[order[j]].dtype, qtk_numel(entries[order[j]].ndim, entries[order[j]].shape));
    }
    for (size_t i = 0; i < n && r == QTK_OK; i++) {
        const qtk_st_entry *e = &entries[i];
        int64_t numel = qtk_numel(e->ndim, e->shape);
        if (!readable_dtype(e->dtype) || (unsigned)e->dtype >= QTK_DTYPE_COUNT)
            r = qtk_fail(QTK_ERR_ARG, "%s: tensor \"%s\": dtype %s cannot be stored in safetensors (pack 4-bit codes "
                         "as U8)", path, e->name, qtk_dtype_name(e->dtype));
        else if (numel < 0 || e->ndim > QTK_MAX_DIMS)
            r = qtk_fail(QTK_ERR_ARG, "%s: tensor \"%s\": invalid shape", path, e->name);
        else if (cJSON_GetObjectItemCaseSensitive(root, e->name) || strcmp(e->name, "__metadata__") == 0)
            r = qtk_fail(QTK_ERR_ARG, "%s: tensor name \"%s\" is used twice or reserved", path, e->name);
        if (r != QTK_OK) break;
        size_t nb = qtk_dtype_nbytes(e->dtype, numel);
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON_AddStringToObject(t, "dtype", qtk_dtype_name(e->dtype));
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)offs[i]));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(offs[i] + nb)));
    }
    free(offs);
    char *json = r == QTK_OK ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (r != QTK_OK || !json) {
        free(order);
        free(json);
        return r != QTK_OK ? r : qtk_fail(QTK_ERR_NOMEM, "%s: cannot format the header", path);
    }
    size_t hlen = strlen(json), padded = (hlen + 7) / 8 * 8; // keep the buffer 8-byte aligned

    size_t tcap = strlen(path) + 48;
    char *tmp = malloc(tcap);
    if (!tmp) {
        free(order);
        free(json);
        return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    int fd = qtk_file_create_tmp(path, tmp, tcap);
    if (fd < 0) {
        free(order);
        free(tmp);
        free(json);
        return QTK_ERR_IO;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    r = write_all(fd, len8, 8, path);
    if (r == QTK_OK) r = write_all(fd, json, hlen, path);
    if (r == QTK_OK && padded > hlen) r = write_all(fd, "        ", padded - hlen, path);
    for (size_t j = 0; j < n && r == QTK_OK; j++) {
        const qtk_st_entry *e = &entries[order[j]];
        r = write_all(fd, e->data, qtk_dtype_nbytes(e->dtype, qtk_numel(e->ndim, e->shape)), path);
    }
    free(order);
    if (r == QTK_OK && fsync(fd) != 0) r = qtk_fail(QTK_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && r == QTK_OK) r = qtk_fail(QTK_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (r == QTK_OK && rename(tmp, path) != 0)
        r = qtk_fail(QTK_ERR_IO, "%s: cannot rename the temporary file into place: %s", path, strerror(errno));
    if (r != QTK_OK) unlink(tmp);
    else {
        // make the rename itself durable
        char *dcopy = strdup(path);
        int dfd = dcopy ? open(dirname(dcopy), O_RDONLY) : -1;
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
    free(tmp);
    free(json);
    return r;
}

// --- sharded checkpoints ------------------------------------------------------------------

void qtk_st_shards_close(qtk_st_shards *s) {
    for (int i = 0; i < s->n; i++) qtk_st_close(&s->st[i]);
    free(s->st);
    s->st = NULL;
    s->n = 0;
}

static int shard_base_is(const qtk_safetensors *st, const char *name) {
    const char *b = strrchr(st->path, '/');
    return !strcmp(b ? b + 1 : st->path, name);
}

// every tensor of every shard is where the map puts it, and every mapped tensor is in its shard
static qtk_status shards_check_map(const qtk_st_shards *s, const cJSON *map, const char *index) {
    for (int i = 0; i < s->n; i++)
        for (size_t k = 0; k < s->st[i].n_tensors; k++) {
            const char *name = s->st[i].tensors[k].name;
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(map, name);
            if (!e) return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\" is not in the weight_map of %s", s->st[i].path, name, index);
            if (!shard_base_is(&s->st[i], e->valuestring))
                return qtk_fail(QTK_ERR_FORMAT, "%s: tensor \"%s\" is also in %s, but the weight_map of %s puts it in %s "
                                "(duplicate or overlapping shards)", s->st[i].path, name, s->st[i].path, index, e->valuestring);
        }
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        int found = 0;
        for (int i = 0; i < s->n && !found; i++)
            if (shard_base_is(&s->st[i], e->valuestring)) {
                if (!qtk_st_find(&s->st[i], e->string))
                    return qtk_fail(QTK_ERR_FORMAT, "%s: the weight_map of %s puts tensor \"%s\" here, but it is not in it",
                                    s->st[i].path, index, e->string);
                found = 1;
            }
    }
    return QTK_OK;
}

qtk_status qtk_st_shards_open(qtk_st_shards *s, const char *dir, const char *file) {
    s->n = 0;
    s->st = NULL;
    char p[4096];
    if (file) {
        if (!(s->st = calloc(1, sizeof *s->st))) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
        qtk_status r = qtk_st_open(&s->st[0], file);
        if (r != QTK_OK) {
            qtk_st_shards_close(s);
            return r;
        }
        s->n = 1;
        return QTK_OK;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat sb;
    if (stat(p, &sb) == 0) return qtk_st_shards_open(s, NULL, p);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (stat(p, &sb) != 0) return qtk_fail(QTK_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    char *text;
    QTK_TRY(qtk_file_read(p, "shard index", 64 << 20, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return qtk_fail(QTK_ERR_FORMAT, "%s: no \"weight_map\" object", p);
    }
    // the distinct shard files, in first-mention order
    int cap = cJSON_GetArraySize(map);
    const char **names = calloc((size_t)cap + 1, sizeof *names);
    s->st = calloc((size_t)cap + 1, sizeof *s->st);
    qtk_status st = names && s->st ? QTK_OK : qtk_fail(QTK_ERR_NOMEM, "out of memory");
    const cJSON *e;
    int nn = 0;
    cJSON_ArrayForEach(e, map) {
        if (st != QTK_OK) break;
        if (!cJSON_IsString(e)) {
            st = qtk_fail(QTK_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a file name", p, e->string);
            break;
        }
        int k = 0;
        while (k < nn && strcmp(names[k], e->valuestring)) k++;
        if (k < nn) continue;
        if (strchr(e->valuestring, '/') || !e->valuestring[0] || !strcmp(e->valuestring, ".") || !strcmp(e->valuestring, "..")) {
            st = qtk_fail(QTK_ERR_FORMAT, "%s: shard \"%s\" is not a file in the folder", p, e->valuestring);
            break;
        }
        names[nn++] = e->valuestring;
        char sp[4096];
        snprintf(sp, sizeof sp, "%.3800s/%.200s", dir, e->valuestring);
        st = qtk_st_open(&s->st[s->n], sp);
        if (st == QTK_OK) s->n++;
    }
    if (st == QTK_OK) st = shards_check_map(s, map, p);
    free(names);
    cJSON_Delete(root);
    if (st != QTK_OK) qtk_st_shards_close(s);
    return st;
}

const qtk_st_tensor *qtk_st_shards_find(const qtk_st_shards *s, const char *name, const qtk_safetensors **in) {
    for (int i = 0; i < s->n; i++) {
        const qtk_st_tensor *t = qtk_st_find(&s->st[i], name);
        if (t) {
            *in = &s->st[i];
            return t;
        }
    }
    return NULL;
}
