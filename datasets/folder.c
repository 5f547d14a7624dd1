#include "folder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>
#include <sys/stat.h>

#include "image.h"
#include "../core/file.h"
#include "../core/safetensors.h"
#include "../core/tensor.h"
#include <zlib.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void sort_names(char **v, size_t n) {
    if (n > 1) qsort(v, n, sizeof *v, cmp_str); // qsort's base may not be NULL, even for n = 0
}

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

static int sv_push(strvec *s, char *x) {
    if (!x) return -1;
    if (s->n == s->cap) {
        size_t c = s->cap ? 2 * s->cap : 64;
        char **nv = realloc(s->v, c * sizeof *nv);
        if (!nv) {
            free(x);
            return -1;
        }
        s->v = nv;
        s->cap = c;
    }
    s->v[s->n++] = x;
    return 0;
}

static void sv_free(strvec *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode); // follows links, as os.walk(followlinks=True)
}

static int has_ext(const char *name, const char *const *exts) {
    size_t l = strlen(name);
    for (int i = 0; exts[i]; i++) {
        size_t e = strlen(exts[i]);
        if (l > e && !strcasecmp(name + l - e, exts[i])) return 1;
    }
    return 0;
}

static const char *const jpeg_exts[] = {".jpg", ".jpeg", NULL};
static const char *const other_exts[] = {".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", NULL};

// The walk below one class folder: the (device, inode) of each folder on the current path, to recognise a
// link back to one of them (os.walk(followlinks=True) would loop forever), and a bound on all folders visited
// (links to siblings can multiply paths without a loop).
enum { WALK_MAX_DEPTH = 64, WALK_MAX_DIRS = 1 << 20 };
typedef struct {
    dev_t dev[WALK_MAX_DEPTH + 1];
    ino_t ino[WALK_MAX_DEPTH + 1];
    size_t visited;
} walk_state;

// All directories under dir (itself included), then sorted: the order of sorted(os.walk(dir)).
static qtk_status walk_dirs(const char *dir, strvec *out, int depth, walk_state *w) {
    if (depth > WALK_MAX_DEPTH) return qtk_fail(QTK_ERR_FORMAT, "%s: folders nested more than %d deep", dir, WALK_MAX_DEPTH);
    if (++w->visited > WALK_MAX_DIRS)
        return qtk_fail(QTK_ERR_FORMAT, "%s: more than %d folders under one class (links that multiply paths?)", dir,
                        WALK_MAX_DIRS);
    struct stat sb;
    if (stat(dir, &sb) != 0) return qtk_fail(QTK_ERR_IO, "%s: cannot stat: %s", dir, strerror(errno));
    for (int i = 0; i < depth; i++)
        if (w->dev[i] == sb.st_dev && w->ino[i] == sb.st_ino)
            return qtk_fail(QTK_ERR_FORMAT, "%s: a link loop: this is the folder %d level%s up (the same device and inode)",
                            dir, depth - i, depth - i == 1 ? "" : "s");
    w->dev[depth] = sb.st_dev;
    w->ino[depth] = sb.st_ino;
    if (sv_push(out, strdup(dir))) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d) return qtk_fail(QTK_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    qtk_status st = QTK_OK;
    while (st == QTK_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t l = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(l);
        if (!p) {
            st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(p, l, "%s/%s", dir, e->d_name);
        if (is_dir(p)) st = walk_dirs(p, out, depth + 1, w);
        free(p);
    }
    closedir(d);
    return st;
}

void qtk_folder_free(qtk_image_folder *f) {
    for (int i = 0; i < f->n_classes; i++) free(f->classes[i]);
    for (size_t i = 0; i < f->n; i++) free(f->paths[i]);
    free(f->classes);
    free(f->paths);
    free(f->labels);
    free(f->root);
    memset(f, 0, sizeof *f);
}

static qtk_status read_class_index(const char *path, strvec *classes) {
    FILE *fp = qtk_file_fopen_regular(path, "class-index file");
    if (!fp) return QTK_ERR_IO;
    char line[4096];
    int lineno = 0;
    qtk_status st = QTK_OK;
    while (st == QTK_OK && fgets(line, sizeof line, fp)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *name = line;
        while (*name == ' ' || *name == '\t') name++;
        if (!*name) continue;
        for (size_t i = 0; i < classes->n; i++)
            if (!strcmp(classes->v[i], name)) st = qtk_fail(QTK_ERR_FORMAT, "%s:%d: class \"%s\" listed twice", path, lineno, name);
        if (st == QTK_OK && sv_push(classes, strdup(name))) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    fclose(fp);
    if (st == QTK_OK && classes->n == 0) st = qtk_fail(QTK_ERR_FORMAT, "%s: no class names", path);
    if (st != QTK_OK) sv_free(classes);
    return st;
}

qtk_status qtk_folder_open(qtk_image_folder *f, const char *root, const char *class_index) {
    memset(f, 0, sizeof *f);
    if (!is_dir(root)) return qtk_fail(QTK_ERR_IO, "%s: not a folder", root);
    strvec classes = {0}, paths = {0};
    qtk_status st = QTK_OK;
    // class folders: sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    strvec found = {0};
    DIR *d = opendir(root);
    if (!d) return qtk_fail(QTK_ERR_IO, "%s: cannot list: %s", root, strerror(errno));
    struct dirent *e;
    while (st == QTK_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", root, e->d_name);
        if (is_dir(p) && sv_push(&found, strdup(e->d_name))) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    closedir(d);
    sort_names(found.v, found.n);
    if (st == QTK_OK && class_index) {
        st = read_class_index(class_index, &classes);
        for (size_t i = 0; st == QTK_OK && i < found.n; i++) {
            int listed = 0;
            for (size_t j = 0; j < classes.n && !listed; j++) listed = !strcmp(found.v[i], classes.v[j]);
            if (!listed) st = qtk_fail(QTK_ERR_FORMAT, "%s: folder \"%s\" is not in the class-index file %s", root, found.v[i], class_index);
        }
        for (size_t j = 0; st == QTK_OK && j < classes.n; j++) {
            int present = 0;
            for (size_t i = 0; i < found.n && !present; i++) present = !strcmp(found.v[i], classes.v[j]);
            if (!present) st = qtk_fail(QTK_ERR_NOT_FOUND, "%s: class \"%s\" of %s has no folder", root, classes.v[j], class_index);
        }
        sv_free(&found);
    } else {
        classes = found;
    }
    if (st == QTK_OK && classes.n == 0) st = qtk_fail(QTK_ERR_NOT_FOUND, "%s: no class folders (expected root/<class>/<image>)", root);
    size_t cap_labels = 0;
    int *labels = NULL;
    for (size_t c = 0; st == QTK_OK && c < classes.n; c++) {
        char cdir[4096];
        snprintf(cdir, sizeof cdir, "%s/%s", root, classes.v[c]);
        strvec dirs = {0};
        walk_state ws = {.visited = 0};
        st = walk_dirs(cdir, &dirs, 0, &ws);
        sort_names(dirs.v, dirs.n);
        size_t before = paths.n;
        for (size_t k = 0; st == QTK_OK && k < dirs.n; k++) {
            strvec files = {0};
            DIR *dd = opendir(dirs.v[k]);
            if (!dd) {
                st = qtk_fail(QTK_ERR_IO, "%s: cannot list: %s", dirs.v[k], strerror(errno));
                break;
            }
            while (st == QTK_OK && (e = readdir(dd))) {
                char p[4096];
                snprintf(p, sizeof p, "%s/%s", dirs.v[k], e->d_name);
                if (is_dir(p)) continue;
                if (has_ext(e->d_name, jpeg_exts)) {
                    if (sv_push(&files, strdup(p))) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
                } else if (has_ext(e->d_name, other_exts)) {
                    f->n_other++;
                }
            }
            closedir(dd);
            sort_names(files.v, files.n);
            for (size_t i = 0; st == QTK_OK && i < files.n; i++) {
                if (paths.n + 1 > cap_labels) {
                    cap_labels = cap_labels ? 2 * cap_labels : 1024;
                    int *nl = realloc(labels, cap_labels * sizeof *labels);
                    if (!nl) {
                        st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
                        break;
                    }
                    labels = nl;
                }
                labels[paths.n] = (int)c;
                if (sv_push(&paths, files.v[i])) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
                files.v[i] = NULL;
            }
            sv_free(&files);
        }
        sv_free(&dirs);
        if (paths.n == before) f->n_empty++;
    }
    if (st != QTK_OK) {
        sv_free(&classes);
        sv_free(&paths);
        free(labels);
        return st;
    }
    f->root = strdup(root);
    f->n_classes = (int)classes.n;
    f->classes = classes.v;
    f->n = paths.n;
    f->paths = paths.v;
    f->labels = labels;
    return QTK_OK;
}

typedef struct {
    char *path;
    int label;
} labelled;

static int cmp_labelled(const void *a, const void *b) {
    return strcmp(((const labelled *)a)->path, ((const labelled *)b)->path);
}

qtk_status qtk_folder_open_list(qtk_image_folder *f, const char *root, const char *list, const char *class_index) {
    memset(f, 0, sizeof *f);
    if (!is_dir(root)) return qtk_fail(QTK_ERR_IO, "%s: not a folder", root);
    strvec classes = {0};
    QTK_TRY(read_class_index(class_index, &classes));
    FILE *fp = qtk_file_fopen_regular(list, "label list");
    if (!fp) {
        sv_free(&classes);
        return QTK_ERR_IO;
    }
    labelled *items = NULL;
    size_t n = 0, cap = 0;
    char line[8192];
    int lineno = 0;
    qtk_status st = QTK_OK;
    while (st == QTK_OK && fgets(line, sizeof line, fp)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) continue;
        char *sep = strchr(line, ',');
        if (!sep) sep = strpbrk(line, " \t");
        if (!sep) {
            st = qtk_fail(QTK_ERR_FORMAT, "%s:%d: expected \"<file>,<class>\" or \"<file> <class>\"", list, lineno);
            break;
        }
        *sep = '\0';
        char *cls = sep + 1;
        while (*cls == ' ' || *cls == '\t') cls++;
        cls[strcspn(cls, " \t")] = '\0';
        if (lineno == 1 && (!strcmp(line, "ImageId") || !strcmp(line, "file"))) continue; // header
        int label = -1;
        for (size_t c = 0; c < classes.n && label < 0; c++)
            if (!strcmp(classes.v[c], cls)) label = (int)c;
        if (label < 0) {
            st = qtk_fail(QTK_ERR_FORMAT, "%s:%d: class \"%s\" is not in %s", list, lineno, cls, class_index);
            break;
        }
        char path[8192 + 4096 + 8];
        snprintf(path, sizeof path, "%s/%s%s", root, line, strchr(line, '.') ? "" : ".JPEG");
        struct stat sb;
        if (stat(path, &sb) != 0) {
            st = qtk_fail(QTK_ERR_NOT_FOUND, "%s:%d: %s does not exist", list, lineno, path);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            labelled *ni = realloc(items, cap * sizeof *ni);
            if (!ni) {
                st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
                break;
            }
            items = ni;
        }
        items[n].path = strdup(path);
        items[n].label = label;
        n++;
    }
    fclose(fp);
    if (st == QTK_OK && n == 0) st = qtk_fail(QTK_ERR_FORMAT, "%s: no images listed", list);
    if (st == QTK_OK) {
        if (n > 1) qsort(items, n, sizeof *items, cmp_labelled);
        f->paths = malloc(n * sizeof *f->paths);
        f->labels = malloc(n * sizeof *f->labels);
        if (!f->paths || !f->labels) st = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    if (st != QTK_OK) {
        for (size_t i = 0; i < n; i++) free(items[i].path);
        free(items);
        free(f->paths);
        free(f->labels);
        memset(f, 0, sizeof *f);
        sv_free(&classes);
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        f->paths[i] = items[i].path;
        f->labels[i] = items[i].label;
    }
    free(items);
    f->n = n;
    f->root = strdup(root);
    f->n_classes = (int)classes.n;
    f->classes = classes.v;
    return QTK_OK;
}

int qtk_transform_resize_short(const qtk_transform *t) { return (int)floor((double)t->size / (double)t->crop_pct); }

// --- loader ------------------------------------------------------------------------------

struct qtk_loader {
    const qtk_image_folder *f;
    uint32_t *idx;
    size_t n, next; // next sample position to prepare
    int batch;
    qtk_transform t;
    qtk_bad_policy policy;
    qtk_bad_list bad;
    float *buf[2];  // (batch, 3, size, size)
    int *lab[2];
    int count[2];
    qtk_status status[2];
    char err[2][512];
    int cur;        // buffer the caller holds
    pthread_t th;
    int th_running;
};

// One image through the transform: the uint8 crop (u8) or the normalized floats (chw). A failure's message,
// in msg, names the file whatever step failed.
static qtk_status load_one(const char *path, const qtk_transform *t, uint8_t *u8, float *chw, char *msg, size_t cap) {
    qtk_image im;
    qtk_status st = qtk_image_load_scaled(path, t->fast_decode ? qtk_transform_resize_short(t) : 0, &im);
    if (st != QTK_OK) {
        snprintf(msg, cap, "%s", qtk_last_error()); // the decoder names the file
        return st;
    }
    st = u8 ? qtk_preprocess_u8(&im, t->size, t->crop_pct, u8) : qtk_preprocess_eval(&im, t->size, t->crop_pct, t->mean, t->std, chw);
    qtk_image_free(&im);
    if (st != QTK_OK) snprintf(msg, cap, "%s: %s", path, qtk_last_error());
    return st;
}

static void bad_add(qtk_bad_list *b, const char *path, const char *why) {
    char **p = realloc(b->paths, (b->n + 1) * sizeof *p);
    if (p) b->paths = p;
    char **r = realloc(b->reasons, (b->n + 1) * sizeof *r);
    if (r) b->reasons = r;
    if (!p || !r) return; // out of memory: the list is incomplete, the run goes on
    b->paths[b->n] = strdup(path);
    b->reasons[b->n] = strdup(why);
    b->n++;
}

// Decodes the next batch into buffer b (runs in the prefetch thread).
static void fill(qtk_loader *ld, int b) {
    int B = ld->batch, S = ld->t.size, count = 0;
    size_t per = (size_t)3 * S * S;
    ld->status[b] = QTK_OK;
    while (count < B && ld->next < ld->n && ld->status[b] == QTK_OK) {
        // decode up to the missing number of images in parallel, then compact the good ones
        int want = B - count;
        size_t avail = ld->n - ld->next;
        int m = (size_t)want < avail ? want : (int)avail;
        qtk_status *st = calloc((size_t)m, sizeof *st);
        char (*msg)[512] = calloc((size_t)m, sizeof *msg);
        if (!st || !msg) {
            free(st);
            free(msg);
            ld->status[b] = qtk_fail(QTK_ERR_NOMEM, "loader: out of memory");
            break;
        }
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < m; i++) {
            const char *path = ld->f->paths[ld->idx[ld->next + (size_t)i]];
            st[i] = load_one(path, &ld->t, NULL, ld->buf[b] + (size_t)(count + i) * per, msg[i], sizeof msg[i]);
        }
        int w = count;
        for (int i = 0; i < m && ld->status[b] == QTK_OK; i++) {
            uint32_t sample = ld->idx[ld->next + (size_t)i];
            if (st[i] != QTK_OK) {
                if (ld->policy == QTK_BAD_FAIL) {
                    ld->status[b] = st[i];
                    snprintf(ld->err[b], sizeof ld->err[b], "%s (on_bad_image: fail)", msg[i]);
                } else {
                    bad_add(&ld->bad, ld->f->paths[sample], msg[i]);
                }
                continue;
            }
            if (w != count + i) memmove(ld->buf[b] + (size_t)w * per, ld->buf[b] + (size_t)(count + i) * per, per * sizeof(float));
            ld->lab[b][w++] = ld->f->labels[sample];
        }
        ld->next += (size_t)m;
        count = w;
        free(st);
        free(msg);
    }
    ld->count[b] = count;
}

static void *prefetch_main(void *arg) {
    qtk_loader *ld = arg;
    fill(ld, 1 - ld->cur);
    return NULL;
}

qtk_status qtk_loader_open(qtk_loader **out, const qtk_image_folder *f, const uint32_t *indices, size_t n, int batch,
                           const qtk_transform *t, qtk_bad_policy policy) {
    *out = NULL;
    if (batch < 1) return qtk_fail(QTK_ERR_ARG, "loader batch %d", batch);
    for (size_t i = 0; i < n; i++)
        if (indices[i] >= f->n) return qtk_fail(QTK_ERR_ARG, "sample index %u out of range (%zu images)", indices[i], f->n);
    qtk_loader *ld = calloc(1, sizeof *ld);
    size_t per = (size_t)3 * t->size * t->size;
    if (ld) {
        ld->idx = malloc((n ? n : 1) * sizeof *ld->idx);
        for (int b = 0; b < 2; b++) {
            ld->buf[b] = malloc((size_t)batch * per * sizeof(float));
            ld->lab[b] = malloc((size_t)batch * sizeof(int));
        }
    }
    if (!ld || !ld->idx || !ld->buf[0] || !ld->buf[1] || !ld->lab[0] || !ld->lab[1]) {
        qtk_loader_close(ld);
        return qtk_fail(QTK_ERR_NOMEM, "loader: cannot allocate two batches of %d images", batch);
    }
    memcpy(ld->idx, indices, n * sizeof *indices);
    ld->f = f;
    ld->n = n;
    ld->batch = batch;
    ld->t = *t;
    ld->policy = policy;
    ld->cur = 1; // the first prefetch fills buffer 0
    ld->th_running = pthread_create(&ld->th, NULL, prefetch_main, ld) == 0;
    if (!ld->th_running) prefetch_main(ld);
    *out = ld;
    return QTK_OK;
}

qtk_status qtk_loader_next(qtk_loader *ld, const float **images, const int **labels, int *count) {
    if (ld->th_running) {
        pthread_join(ld->th, NULL);
        ld->th_running = 0;
    }
    int b = 1 - ld->cur; // the buffer just prepared
    if (ld->status[b] != QTK_OK) return qtk_fail(ld->status[b], "%s", ld->err[b]);
    ld->cur = b;
    *images = ld->buf[b];
    *labels = ld->lab[b];
    *count = ld->count[b];
    // start on the next batch while the caller works on this one
    if (ld->next < ld->n) ld->th_running = pthread_create(&ld->th, NULL, prefetch_main, ld) == 0;
    else ld->count[1 - b] = 0, ld->status[1 - b] = QTK_OK;
    if (!ld->th_running && ld->next < ld->n) prefetch_main(ld);
    return QTK_OK;
}

const qtk_bad_list *qtk_loader_bad(const qtk_loader *ld) { return &ld->bad; }

void qtk_loader_close(qtk_loader *ld) {
    if (!ld) return;
    if (ld->th_running) pthread_join(ld->th, NULL);
    qtk_bad_list_free(&ld->bad);
    for (int b = 0; b < 2; b++) {
        free(ld->buf[b]);
        free(ld->lab[b]);
    }
    free(ld->idx);
    free(ld);
}

// --- preprocessed-tensor cache ------------------------------------------------------------

void qtk_bad_list_free(qtk_bad_list *b) {
    for (size_t i = 0; i < b->n; i++) {
        free(b->paths[i]);
        free(b->reasons[i]);
    }
    free(b->paths);
    free(b->reasons);
    memset(b, 0, sizeof *b);
}

// crc32 over the transform and each sample's path, size and mtime
static void cache_key(const qtk_image_folder *f, const uint32_t *idx, size_t n, const qtk_transform *t, char key[64]) {
    char buf[256];
    int k = snprintf(buf, sizeof buf, "qtk-cache-v1 size=%d crop_pct=%.9g fast=%d n=%zu", t->size, (double)t->crop_pct,
                     t->fast_decode, n);
    uLong c = crc32(0L, (const Bytef *)buf, (uInt)k);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        const char *p = f->paths[idx[i]];
        long long sz = -1, mt = -1;
        if (stat(p, &st) == 0) sz = (long long)st.st_size, mt = (long long)st.st_mtime;
        k = snprintf(buf, sizeof buf, "|%d|%lld|%lld|", f->labels[idx[i]], sz, mt);
        c = crc32(c, (const Bytef *)p, (uInt)strlen(p));
        c = crc32(c, (const Bytef *)buf, (uInt)k);
    }
    snprintf(key, 64, "crc32:%08lx", c);
}

static qtk_status cache_read(const char *path, const char *key, const qtk_transform *t, float **images, int **labels,
                             size_t *n_out, qtk_bad_list *bad) {
    qtk_safetensors st;
    if (qtk_st_open(&st, path) != QTK_OK) return QTK_ERR_NOT_FOUND;
    const char *k = qtk_st_meta(&st, "qtk.cache.key");
    const qtk_st_tensor *im = qtk_st_find(&st, "crops"), *lb = qtk_st_find(&st, "labels");
    qtk_status r = QTK_ERR_NOT_FOUND;
    if (k && !strcmp(k, key) && im && lb && im->dtype == QTK_U8 && lb->dtype == QTK_I32 && im->ndim == 4 &&
        im->shape[1] == t->size && im->shape[2] == t->size && im->shape[3] == 3 && lb->shape[0] == im->shape[0]) {
        size_t n = (size_t)im->shape[0], per = (size_t)3 * t->size * t->size;
        *images = malloc((n ? n : 1) * per * sizeof(float));
        *labels = malloc((n ? n : 1) * sizeof(int));
        if (*images && *labels) {
            for (size_t i = 0; i < n; i++) {
                qtk_normalize_chw((const uint8_t *)im->data + i * per, t->size, t->mean, t->std, *images + i * per);
                int32_t v;
                memcpy(&v, (const uint8_t *)lb->data + i * 4, 4);
                (*labels)[i] = v;
            }
            *n_out = n;
            r = QTK_OK;
            // the skipped files of the run that built the cache
            const char *sk = qtk_st_meta(&st, "qtk.cache.skipped");
            for (const char *p = sk; p && *p;) {
                const char *e = strchr(p, '\n');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                char *s1 = malloc(l + 1);
                if (s1) {
                    memcpy(s1, p, l);
                    s1[l] = '\0';
                    bad_add(bad, s1, "skipped when the cache was built");
                    free(s1);
                }
                p = e ? e + 1 : p + l;
            }
        } else {
            free(*images);
            free(*labels);
            *images = NULL;
            *labels = NULL;
            r = qtk_fail(QTK_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    qtk_st_close(&st);
    return r;
}

qtk_status qtk_folder_cached(const qtk_image_folder *f, const uint32_t *indices, size_t n, const qtk_transform *t,
                             qtk_bad_policy policy, const char *cache_path, float **images, int **labels,
                             size_t *n_out, int *hit, qtk_bad_list *bad) {
    *images = NULL;
    *labels = NULL;
    *n_out = 0;
    *hit = 0;
    memset(bad, 0, sizeof *bad);
    for (size_t i = 0; i < n; i++)
        if (indices[i] >= f->n) return qtk_fail(QTK_ERR_ARG, "sample index %u out of range (%zu images)", indices[i], f->n);
    char key[64];
    cache_key(f, indices, n, t, key);
    if (cache_path) {
        qtk_status r = cache_read(cache_path, key, t, images, labels, n_out, bad);
        if (r == QTK_OK) {
            *hit = 1;
            return QTK_OK;
        }
        if (r != QTK_ERR_NOT_FOUND) return r;
    }
    // decode everything in parallel into uint8 crops
    size_t per = (size_t)3 * t->size * t->size;
    uint8_t *crops = malloc((n ? n : 1) * per);
    qtk_status *st = calloc(n ? n : 1, sizeof *st);
    char (*msg)[512] = calloc(n ? n : 1, sizeof *msg);
    if (!crops || !st || !msg) {
        free(crops);
        free(st);
        free(msg);
        return qtk_fail(QTK_ERR_NOMEM, "cache: cannot hold %zu crops", n);
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < n; i++) {
        st[i] = load_one(f->paths[indices[i]], t, crops + i * per, NULL, msg[i], sizeof msg[i]);
    }
    qtk_status r = QTK_OK;
    size_t w = 0, skipped_len = 1;
    int32_t *lab32 = malloc((n ? n : 1) * sizeof *lab32);
    if (!lab32) r = qtk_fail(QTK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && r == QTK_OK; i++) {
        if (st[i] != QTK_OK) {
            if (policy == QTK_BAD_FAIL) {
                r = qtk_fail(st[i], "%s (on_bad_image: fail)", msg[i]);
                break;
            }
            bad_add(bad, f->paths[indices[i]], msg[i]);
            skipped_len += strlen(f->paths[indices[i]]) + 1;
            continue;
        }
        if (w != i) memmove(crops + w * per, crops + i * per, per);
        lab32[w++] = f->labels[indices[i]];
    }
    free(st);
    free(msg);
    if (r == QTK_OK && cache_path) {
        char *skipped = calloc(skipped_len, 1);
        for (size_t i = 0; skipped && i < bad->n; i++) {
            strcat(skipped, bad->paths[i]);
            if (i + 1 < bad->n) strcat(skipped, "\n");
        }
        char tr[160];
        snprintf(tr, sizeof tr, "{\"size\": %d, \"crop_pct\": %.9g, \"interpolation\": \"bicubic\", \"fast_decode\": %s}",
                 t->size, (double)t->crop_pct, t->fast_decode ? "true" : "false");
        int64_t cs[4] = {(int64_t)w, t->size, t->size, 3}, ls[1] = {(int64_t)w};
        qtk_st_entry e[2] = {{"crops", QTK_U8, 4, cs, crops}, {"labels", QTK_I32, 1, ls, lab32}};
        // the file list (one path per line, in sample order) for whoever reads the cache later
        size_t fl = 1;
        for (size_t i = 0; i < n; i++) fl += strlen(f->paths[indices[i]]) + 1;
        char *files = malloc(fl);
        if (files) {
            size_t o = 0;
            for (size_t i = 0; i < n; i++) o += (size_t)snprintf(files + o, fl - o, "%s%s", i ? "\n" : "", f->paths[indices[i]]);
        }
        const char *meta[][2] = {{"qtk.cache.key", key}, {"qtk.cache.transform", tr}, {"qtk.cache.root", f->root},
                                 {"qtk.cache.skipped", skipped ? skipped : ""}, {"qtk.cache.files", files ? files : ""}};
        r = qtk_st_write(cache_path, e, 2, meta, 5);
        free(skipped);
        free(files);
    }
    if (r == QTK_OK) {
        *images = malloc((w ? w : 1) * per * sizeof(float));
        *labels = malloc((w ? w : 1) * sizeof(int));
        if (!*images || !*labels) r = qtk_fail(QTK_ERR_NOMEM, "out of memory");
        for (size_t i = 0; r == QTK_OK && i < w; i++) {
            qtk_normalize_chw(crops + i * per, t->size, t->mean, t->std, *images + i * per);
            (*labels)[i] = lab32[i];
        }
        *n_out = w;
    }
    free(crops);
    free(lab32);
    if (r != QTK_OK) {
        free(*images);
        free(*labels);
        *images = NULL;
        *labels = NULL;
        qtk_bad_list_free(bad);
    }
    return r;
}
