// The qtk command line: exit codes and messages, info on real and broken files, demo.
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "../vision/vit.h"

#ifndef QTK_CLI
#define QTK_CLI "build/qtk"
#endif

// Runs `qtk ARGS` and returns its exit code; stdout+stderr into out.
static int run(const char *args, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", QTK_CLI, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out[65536];

START_TEST(test_help_version_usage) {
    ck_assert_int_eq(run("--help", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "info FILE.safetensors"));
    ck_assert_int_eq(run("--version", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, QTK_VERSION));
    ck_assert_ptr_nonnull(strstr(out, "OpenBLAS kernels: "));
    ck_assert_int_eq(run("frobnicate", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "qtk: usage error: unknown command \"frobnicate\""));
    ck_assert_int_eq(run("", out, sizeof out), 2);
    ck_assert_int_eq(run("info", out, sizeof out), 2);
    // --set: key=value or a usage error; a bad value is named as the --set that gave it, not as the
    // YAML line it replaced
    const char *cfg = "experiments/configs/fashion_w4a8.yaml";
    static const char *const cmds[] = {"run", "calibrate", "eval"};
    char args[512];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "%s %s --set quantization.w_bits", cmds[i], cfg);
        ck_assert_int_eq(run(args, out, sizeof out), 2);
        ck_assert_ptr_nonnull(strstr(out, "--set takes key=value, got \"quantization.w_bits\""));
    }
    snprintf(args, sizeof args, "run %s --set quantization.w_bits=9 --dry-run", cfg);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "--set quantization.w_bits=9: 9 is outside 2..8 (in experiments/configs/fashion_w4a8.yaml)"),
                  "%s", out);
    ck_assert_ptr_null(strstr(out, "fashion_w4a8.yaml:"));
    // a run is named after the widths it has: fashion_w4a8 at W3 is fashion_w3a8 (name and folder)
    snprintf(args, sizeof args, "run %s --set quantization.w_bits=3 --dry-run", cfg);
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "name: fashion_w3a8\n") && strstr(out, "dir: results/runs/fashion_w3a8\n"), "%s", out);
    snprintf(args, sizeof args, "run %s --set quantization.w_bits=3 --set name=mine --set output.dir=/tmp/w4a8 --dry-run", cfg);
    ck_assert_int_eq(run(args, out, sizeof out), 0); // what a --set names stays
    ck_assert_msg(strstr(out, "name: mine\n") && strstr(out, "dir: /tmp/w4a8\n"), "%s", out);
    snprintf(args, sizeof args, "run %s --set calibration.images=999 --dry-run", cfg);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "--set calibration.images=999: 999 images do not split"), "%s", out);
}
END_TEST

// Every command's options come from one table (experiments/opts.h, getopt_long): --help prints it, values
// may follow "=", unambiguous abbreviations work, and each kind of mistake is one usage error (exit 2).
START_TEST(test_option_tables) {
    const char *cfg = "experiments/configs/fashion_w4a8.yaml";
    char args[512];
    static const struct {
        const char *cmd, *help_has;
    } helps[] = {{"run", "--dry-run "}, {"eval", "--logits FILE"}, {"calibrate", "--report "}, {"table", "--format md|csv"},
                 {"perplexity", "--max-windows N"}, {"generate", "--temperature T"}, {"demo", "--gemm fp32|tf32|int8"},
                 {"preprocess", "--crop-pct F"}, {"quant-report", "--off PATTERN"}, {"sweep", "--backend local|slurm"},
                 {"dataset bytes", "--from BYTE"}, {"info", "usage: qtk info FILE.safetensors"}};
    for (size_t i = 0; i < sizeof helps / sizeof *helps; i++) {
        snprintf(args, sizeof args, "%s --help", helps[i].cmd);
        ck_assert_int_eq(run(args, out, sizeof out), 0);
        ck_assert_msg(strstr(out, helps[i].help_has) && strstr(out, "usage: qtk "), "%s: %s", helps[i].cmd, out);
    }
    snprintf(args, sizeof args, "run %s --dry --set=quantization.w_bits=3", cfg); // an abbreviation, and --opt=value
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "name: fashion_w3a8\n"), "%s", out);
    static const struct {
        const char *args, *msg;
    } bad[] = {
        {"perplexity --model x --ctx", "perplexity: --ctx needs a value"},
        {"perplexity --model x --ctx 1", "--ctx takes a whole number in 2..1048576, got \"1\""},
        {"generate --model x --prompt a --temperature hot", "--temperature takes a number in 0.001..100, got \"hot\""},
        {"run a.yaml b.yaml", "run takes 1 argument, got another: \"b.yaml\""},
        {"run", "run needs an argument"},
        {"run a.yaml --force=yes", "run: --force=yes takes no value"},
        {"table --colour x", "table: unknown option \"--colour\""},
        {"demo extra", "demo takes no arguments, got \"extra\""},
        {"demo --core --passes 1", "demo --core takes --out and --seed only"},
        {"sweep task DIR", "sweep task needs more arguments"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(run(bad[i].args, out, sizeof out) == 2, "%s: exit not 2: %s", bad[i].args, out);
        ck_assert_msg(strstr(out, "qtk: usage error: ") && strstr(out, bad[i].msg), "%s: %s", bad[i].args, out);
    }
}
END_TEST

START_TEST(test_info) {
    ck_assert_int_eq(run(QTK_FIXTURES "/torch_written.safetensors", out, sizeof out), 2);
    ck_assert_int_eq(run("info " QTK_FIXTURES "/torch_written.safetensors", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "12 tensors"));
    ck_assert_ptr_nonnull(strstr(out, "blocks.0.attn.qkv.weight  F32    [12, 4]"));
    ck_assert_ptr_nonnull(strstr(out, "format: pt"));
    ck_assert_int_eq(run("info /nonexistent.safetensors", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "qtk: error: /nonexistent.safetensors: cannot open"));
    char path[] = "/tmp/qtk_cli_bad_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)write(fd, "\x05\0\0\0\0\0\0\0{\"a\":", 13), 13);
    close(fd);
    char args[128];
    snprintf(args, sizeof args, "info %s", path);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "qtk: error:"));
    ck_assert_ptr_nonnull(strstr(out, path));
    unlink(path);
}
END_TEST

static cJSON *read_json(const char *path) {
    const char *t = tu_slurp(path);
    return t ? cJSON_Parse(t) : NULL;
}

START_TEST(test_demo) {
    char dir[] = "/tmp/qtk_cli_demo_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char args[256];
    snprintf(args, sizeof args, "demo --core --out %s/run --seed 3", dir);
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "per-channel + Hadamard"));
    snprintf(args, sizeof args, "info %s/run/quant.safetensors", dir);
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "linear.weight.scale"));
    ck_assert_ptr_nonnull(strstr(out, "seed: 3"));
    snprintf(args, sizeof args, "%s/run/summary.json", dir);
    cJSON *j = read_json(args);
    ck_assert_ptr_nonnull(j);
    cJSON *rows = cJSON_GetObjectItem(j, "results"), *row;
    ck_assert_int_eq(cJSON_GetArraySize(rows), 16);
    // the rotation must help 8-bit activations with outlier channels a lot
    double plain = 0, had = 0;
    cJSON_ArrayForEach(row, rows) {
        if (cJSON_GetObjectItem(row, "w_bits")->valueint != 8) continue;
        const char *m = cJSON_GetObjectItem(row, "method")->valuestring;
        double v = cJSON_GetObjectItem(row, "sqnr_db_w_and_a8")->valuedouble;
        if (!strcmp(m, "per-channel")) plain = v;
        if (!strcmp(m, "per-channel + Hadamard")) had = v;
    }
    ck_assert_msg(had > plain + 10, "Hadamard W8A8 SQNR %g dB vs plain %g dB", had, plain);
    cJSON_Delete(j);
    ck_assert_int_eq(run("demo --core --seed x", out, sizeof out), 2);
    ck_assert_int_eq(run("demo --frobnicate", out, sizeof out), 2);
    ck_assert_int_eq(run("demo --device tpu", out, sizeof out), 2);
    if (qtk_cuda_device_count() == 0) { // no GPU here: one clear error before any work
        ck_assert_int_eq(run("demo --device cuda", out, sizeof out), 1);
        ck_assert_msg(strstr(out, "--device cuda, but") != NULL, "%s", out);
    }
    snprintf(args, sizeof args, "rm -rf %s", dir);
    ck_assert_int_eq(system(args), 0);
}
END_TEST


// qtk demo runs its built-in configs through the run pipeline: three run folders, their configs rerunnable by
// `qtk run`, one table and summary made of the runs' own numbers (a fast variant: no search, fewer images)
START_TEST(test_demo_pipeline) {
    if (access("build/cache/fashion-mnist/train-images-idx3-ubyte", R_OK) != 0)
        TU_SKIP("demo: Fashion-MNIST not in build/cache (make fashion-mnist)");
    char dir[] = "/tmp/qtk_cli_demo_XXXXXX", args[512], path[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(args, sizeof args,
             "demo --out %s/d --set search.method=none --set data.test_images=300 --set calibration.images=200", dir);
    ck_assert_msg(run(args, out, sizeof out) == 0, "%s", out);
    ck_assert_int_eq(strstr(out, "FP32 eval") != NULL, 1); // FP32 evaluated once, for the first setting only
    ck_assert_ptr_null(strstr(strstr(out, "FP32 eval") + 1, "FP32 eval"));
    snprintf(path, sizeof path, "%s/d/summary.json", dir);
    cJSON *d = read_json(path), *rows = cJSON_GetObjectItem(d, "results");
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(cJSON_GetArraySize(rows), 3);
    const double fp = cJSON_GetObjectItem(d, "fp32_top1")->valuedouble;
    const int bits[3] = {4, 3, 2};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/d/w%da8/summary.json", dir, bits[k]);
        cJSON *r = read_json(path), *row = cJSON_GetArrayItem(rows, k);
        ck_assert_msg(r != NULL, "%s", path);
        ck_assert_str_eq(cJSON_GetObjectItem(r, "status")->valuestring, "done");
        ck_assert_int_eq(cJSON_GetObjectItem(r, "w_bits")->valueint, bits[k]);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "test_images")->valueint, 300);
        ck_assert(cJSON_GetObjectItem(r, "fp32_top1")->valuedouble == fp); // shared, not re-evaluated
        ck_assert(cJSON_GetObjectItem(r, "baseline_top1")->valuedouble == cJSON_GetObjectItem(row, "baseline_top1")->valuedouble);
        ck_assert_ptr_null(cJSON_GetObjectItem(row, "evolq_top1")); // search.method none: no searched number
        cJSON_Delete(r);
    }
    cJSON_Delete(d);
    snprintf(path, sizeof path, "%s/d/table.md", dir);
    const char *t = tu_slurp(path);
    ck_assert_ptr_nonnull(t);
    ck_assert_msg(strstr(t, "| W4A8 |") && strstr(t, "| W3A8 |") && strstr(t, "| W2A8 * |"), "%s", t);
    ck_assert_msg(strstr(t, "Overridden in every setting: --set search.method=none"), "%s", t);
    // a setting's config is a plain run config: `qtk run` finds its run finished
    snprintf(args, sizeof args, "run %s/d/configs/w2a8.yaml --set search.method=none --set data.test_images=300 "
                                "--set calibration.images=200", dir);
    ck_assert_msg(run(args, out, sizeof out) == 0 && strstr(out, "already done"), "%s", out);
    snprintf(args, sizeof args, "demo --out %s/d --passes 0", dir);
    ck_assert_int_eq(run(args, out, sizeof out), 2);
    snprintf(args, sizeof args, "demo --out %s/d --gemm int8", dir);
    ck_assert_int_eq(run(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--gemm is for --device cuda"), "%s", out);
    snprintf(args, sizeof args, "demo --out %s/d --set quantization.colour=red", dir);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "quantization.colour"), "%s", out);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    ck_assert_int_eq(system(args), 0);
}
END_TEST

START_TEST(test_quant_report) {
    char dir[] = "/tmp/qtk_cli_vit_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char model[128], imgs[128], exp_path[128], args[1024];
    snprintf(model, sizeof model, "%s/vit.safetensors", dir);
    snprintf(imgs, sizeof imgs, "%s/images.safetensors", dir);
    snprintf(exp_path, sizeof exp_path, "%s/quant.safetensors", dir);
    qtk_vit_config cfg = {.img_size = 16, .patch = 4, .in_chans = 1, .dim = 32, .depth = 2, .heads = 2,
                          .mlp_hidden = 64, .n_classes = 5};
    ck_qtk(qtk_vit_write_random(model, &cfg, 9));
    enum { N = 24 };
    static float x[N * 16 * 16];
    qtk_rng r;
    qtk_rng_seed(&r, 4, 0);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = qtk_rng_range(&r, -1.0f, 1.0f);
    int64_t shape[4] = {N, 1, 16, 16}, bad_shape[4] = {N / 2, 2, 16, 16};
    qtk_st_entry e[2] = {{"images", QTK_F32, 4, shape, x}, {"rgb", QTK_F32, 4, bad_shape, x}};
    ck_qtk(qtk_st_write(imgs, e, 2, NULL, 0));

    snprintf(args, sizeof args, "quant-report --model %s --images %s --batch 8 --w-bits 3 --export %s", model, imgs, exp_path);
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "W3A8, bias correction on, integer LayerNorm"));
    ck_assert_ptr_nonnull(strstr(out, "calibration: 24 images in 3 batches of 8"));
    ck_assert_ptr_nonnull(strstr(out, "blocks.1.attn.softmax"));
    ck_assert_ptr_nonnull(strstr(out, "channel-ptf"));
    // 2 blocks: 5 model-level + 2 * 15 + 3 quantizers, no input quantizer for a custom ViT
    int lines = 0;
    for (char *p = strstr(out, "quantizer "); p && *p; p++) lines += *p == '\n';
    ck_assert_int_ge(lines, 38);
    snprintf(args, sizeof args, "info %s", exp_path);
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "blocks.0.attn.qkv.weight.scale"));
    ck_assert_ptr_nonnull(strstr(out, "\"w_bits\":3"));
    // switching quantizers off, float LayerNorm
    snprintf(args, sizeof args, "quant-report --model %s --images %s --batch 8 --off 'blocks.*.attn.softmax' --float-layernorm",
             model, imgs);
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "(off)"));
    ck_assert_ptr_nonnull(strstr(out, "float LayerNorm"));
    // bad inputs: clear errors, exit 1 or 2
    snprintf(args, sizeof args, "quant-report --model %s --images %s:rgb", model, imgs);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "tensor \"rgb\" has shape [12, 2, 16, 16]; the model needs (N, 1, 16, 16)"));
    snprintf(args, sizeof args, "quant-report --model %s --images %s:nope", model, imgs);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "\"nope\" is missing"));
    snprintf(args, sizeof args, "quant-report --model %s --images %s --w-bits 9", model, imgs);
    ck_assert_int_eq(run(args, out, sizeof out), 2);
    snprintf(args, sizeof args, "quant-report --model %s --images %s --off 'nothing.*'", model, imgs);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "matches no quantizer"));
    snprintf(args, sizeof args, "quant-report --model %s --images %s --calib 100", model, imgs);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    snprintf(args, sizeof args, "quant-report --model %s --images %s", imgs, imgs);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "missing tensor \"patch_embed.proj.weight\""));
    snprintf(args, sizeof args, "rm -rf %s", dir);
    ck_assert_int_eq(system(args), 0);
}
END_TEST

START_TEST(test_quant_report_folder) {
    char dir[] = "/tmp/qtk_cli_fold_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char model[128], args[1024], cmd[1024];
    snprintf(model, sizeof model, "%s/vit.safetensors", dir);
    qtk_vit_config cfg = {.img_size = 32, .patch = 8, .in_chans = 3, .dim = 24, .depth = 1, .heads = 2,
                          .mlp_hidden = 48, .n_classes = 2};
    ck_qtk(qtk_vit_write_random(model, &cfg, 5));
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/data/cat %s/data/dog && cp tests/fixtures/datasets/rgb_61x47.jpg %s/data/cat/a.jpg && "
             "cp tests/fixtures/datasets/cmyk_120x90.jpg %s/data/cat/b.jpg && "
             "cp tests/fixtures/datasets/gray_300x200.jpg %s/data/dog/c.jpg && "
             "cp tests/fixtures/datasets/rgb444_257x256.jpg %s/data/dog/d.jpg && "
             "cp tests/fixtures/datasets/rgb_61x47.jpg %s/data/dog/e.jpg && printf garbage > %s/data/dog/f.jpg",
             dir, dir, dir, dir, dir, dir, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(args, sizeof args,
             "quant-report --model %s --desc '{\"heads\": 2, \"crop_pct\": 0.875}' --images %s/data --calib 6 "
             "--batch 2 --cache %s/cache.safetensors --export %s/q.safetensors",
             model, dir, dir, dir);
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "2 classes, 6 images; calibration sample of 6 (seed 0, crc32:"));
    ck_assert_ptr_nonnull(strstr(out, "1 unreadable images skipped"));
    ck_assert_ptr_nonnull(strstr(out, "dog/f.jpg"));
    ck_assert_ptr_nonnull(strstr(out, "calibration: 4 images in 2 batches of 2"));
    ck_assert_ptr_null(strstr(out, "from the cache"));
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "from the cache"));
    snprintf(args, sizeof args, "info %s/q.safetensors", dir);
    ck_assert_int_eq(run(args, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "calibration_sample: crc32:"));
    snprintf(cmd, sizeof cmd, "test $(wc -l < %s/q.safetensors.calibration.txt) -eq 6 && grep -q 'f.jpg.*skipped' %s/q.safetensors.calibration.txt", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(args, sizeof args, "quant-report --model %s --desc '{\"heads\": 2}' --images %s/data --on-bad-image fail",
             model, dir);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "f.jpg"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_help_version_usage);
    tcase_add_test(tc, test_option_tables);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_demo);
    tcase_add_test(tc, test_demo_pipeline);
    tcase_add_test(tc, test_quant_report);
    tcase_add_test(tc, test_quant_report_folder);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
