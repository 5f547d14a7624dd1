// qtk run: config errors (one line naming file, line and key), a tiny run end
// to end, and resume after kill -9 giving bit-identical scales.
#include <signal.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../vision/vit.h"
#include "testutil.h"

#ifndef QTK_CLI
#define QTK_CLI "build/qtk"
#endif

#define out tu_cli_out // the CLI's output (testutil.h)
#define run tu_cli

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

// A random small ViT and a labelled tensor data set in tu_tmp.
static void make_assets(int depth, int n_images) {
    char p[256];
    snprintf(p, sizeof p, "%s/vit.safetensors", tu_tmp);
    qtk_vit_config cfg = {.img_size = 28, .patch = 7, .in_chans = 1, .dim = 64, .depth = depth, .heads = 4,
                          .mlp_hidden = 128, .n_classes = 5};
    ck_qtk(qtk_vit_write_random(p, &cfg, 3));
    float *x = malloc((size_t)n_images * 784 * sizeof *x);
    int32_t *y = malloc((size_t)n_images * sizeof *y);
    qtk_rng r;
    qtk_rng_seed(&r, 11, 0);
    for (int i = 0; i < n_images * 784; i++) x[i] = qtk_rng_range(&r, -1, 1);
    for (int i = 0; i < n_images; i++) y[i] = (int32_t)qtk_rng_below(&r, 5);
    int64_t xs[4] = {n_images, 1, 28, 28}, ys[1] = {n_images};
    qtk_st_entry e[2] = {{"images", QTK_F32, 4, xs, x}, {"labels", QTK_I32, 1, ys, y}};
    snprintf(p, sizeof p, "%s/data.safetensors", tu_tmp);
    ck_qtk(qtk_st_write(p, e, 2, NULL, 0));
    free(x);
    free(y);
}

// search_extra: more keys of the search mapping ("  key: value\n" lines); extra: top-level lines
static void write_config_s(const char *name, const char *dir, int images, int passes, const char *search_extra,
                           const char *extra) {
    char text[4096], p[256];
    snprintf(text, sizeof text,
             "name: %s\nseed: 1\nmodel:\n  checkpoint: %s/vit.safetensors\n  desc: '{\"heads\": 4}'\n"
             "data:\n  format: tensor\n  root: %s/data.safetensors\n  test: %s/data.safetensors\n"
             "calibration:\n  images: %d\n  batch: 16\nquantization:\n  w_bits: 4\n"
             "search:\n  passes: %d\n  group: 16\n%soutput:\n  dir: %s\n%s",
             name, tu_tmp, tu_tmp, tu_tmp, images, passes, search_extra, dir, extra);
    snprintf(p, sizeof p, "%s/%s.yaml", tu_tmp, name);
    write_text(p, text);
}

static void write_config(const char *name, const char *dir, int images, int passes, const char *extra) {
    write_config_s(name, dir, images, passes, "", extra);
}

// A number from a JSON file (NAN when absent).
static double json_num(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s missing", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    ck_assert_msg(j != NULL, "%s: not JSON", path);
    const cJSON *v = j; // key: a path of names joined by dots ("metrics.fp32.top1")
    char part[128];
    for (const char *k = key; v && *k;) {
        size_t l = strcspn(k, ".");
        snprintf(part, sizeof part, "%.*s", (int)l, k);
        v = cJSON_GetObjectItem(v, part);
        k += l + (k[l] == '.');
    }
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(j);
    return x;
}

START_TEST(test_config_errors) {
    make_assets(2, 32);
    char cfg[256], args[512];
    snprintf(cfg, sizeof cfg, "%s/bad.yaml", tu_tmp);
    const struct { const char *yaml, *msg; } cases[] = {
        {"name: a\ncolour: red\n", ":2: colour: unknown key"},
        {"name: a\nmodel:\n  checkpoint: x\n  colour: red\n", ":4: model.colour: unknown key"},
        {"name: a\nseed: abc\n", ":2: seed: Invalid INT value"},
        {"seed: 1\n", "Missing required mapping field: name"},
        {"name: a\nmodel: [1, 2]\n", ":2: model:"},
        {"name: [unclosed\n", "bad.yaml"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(cfg, cases[i].yaml);
        snprintf(args, sizeof args, "run %s", cfg);
        ck_assert_int_eq(run(args), 1);
        ck_assert_msg(strstr(out, cases[i].msg) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, out, cases[i].msg);
        ck_assert_msg(strstr(out, "qtk: error: ") == out, "case %zu: not one error line: %s", i, out);
    }
    // semantic checks on an otherwise valid config
    write_config("ok", "/tmp/unused", 32, 1, "");
    snprintf(cfg, sizeof cfg, "%s/ok.yaml", tu_tmp);
    const struct { const char *set, *msg; } sets[] = {
        {"--set quantization.w_bits=9", "--set quantization.w_bits=9: 9 is outside 2..8 (in "},
        {"--set search.method=sgd", "--set search.method=sgd: \"sgd\" is not one of evolq, none"},
        {"--set model.checkpoint=/nonexistent.safetensors", "--set model.checkpoint=/nonexistent.safetensors: /nonexistent.safetensors does not exist"},
        {"--set calibration.images=40", "--set calibration.images=40: 40 images do not split into infoNCE groups of 16"},
        {"--set search.colour=1", "--set search.colour: unknown key"},
        {"--set seed=x", "--set seed: expected an integer"},
        {"--set data.format=lmdb", "--set data.format=lmdb: \"lmdb\" is not one of fashion-mnist, folder, tensor"},
        {"--set device=tpu", "--set device=tpu: \"tpu\" is not one of cpu, cuda"},
        {"--set gpu_gemm=fp16", "--set gpu_gemm=fp16: \"fp16\" is not one of fp32, tf32, int8"},
        {"--set gpus=2", "--set gpus=2: 2 GPUs, but device is cpu (gpus needs device: cuda)"},
        {"--set gpus=0", "--set gpus=0: \"0\": all, or a number of GPUs in 1..1024"},
        {"--set search.transport=nccl", "--set search.transport=nccl: nccl needs device: cuda"},
        {"--set search.transport=mpi", "--set search.transport=mpi: \"mpi\" is not one of auto, host, nccl"},
        {"--set search.ranks=2000", "--set search.ranks=2000: 2000 is outside 0..1024"},
        {"--set model.kind=resnet", "--set model.kind=resnet: \"resnet\" is not one of vit"},
        {"--set task=detection", "--set task=detection: \"detection\" is not one of classification, perplexity"},
        {"--set task=perplexity", "--set task=perplexity: a vit model is evaluated by classification, not perplexity"},
    };
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        snprintf(args, sizeof args, "run %s %s", cfg, sets[i].set);
        ck_assert_int_eq(run(args), 1);
        ck_assert_msg(strstr(out, sets[i].msg) != NULL, "%s: \"%s\" lacks \"%s\"", sets[i].set, out, sets[i].msg);
    }
    snprintf(args, sizeof args, "run %s/missing.yaml", tu_tmp);
    ck_assert_int_eq(run(args), 1);
    ck_assert_ptr_nonnull(strstr(out, "no such config file"));
    ck_assert_int_eq(run("run"), 2);
}
END_TEST

START_TEST(test_run_and_skip) {
    make_assets(2, 32);
    char dir[256], args[512], p[300];
    snprintf(dir, sizeof dir, "%s/out", tu_tmp);
    write_config("tiny", dir, 32, 2, "");
    snprintf(args, sizeof args, "run %s/tiny.yaml", tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "FP32 top-1"));
    const char *files[] = {"config.yaml", "log.jsonl", "summary.json", "table.md", "quant.safetensors"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        ck_assert_msg(access(p, F_OK) == 0, "%s missing", p);
    }
    snprintf(args, sizeof args, "test $(wc -l < %.200s/log.jsonl) -eq 4 && grep -q '\"status\":.*\"done\"' %.200s/summary.json", dir, dir);
    ck_assert_int_eq(system(args), 0);
    // the generic form of the results: kind, task, the metric and each stage's values
    snprintf(p, sizeof p, "%s/summary.json", dir);
    snprintf(args, sizeof args, "grep -q '\"kind\":.*\"vit\"' %.200s && grep -q '\"task\":.*\"classification\"' %.200s", p, p);
    ck_assert_int_eq(system(args), 0);
    const char *stages[] = {"fp32", "baseline", "searched"};
    for (int i = 0; i < 3; i++) {
        char k1[64], k2[64];
        snprintf(k1, sizeof k1, "metrics.%s.top1", stages[i]);
        snprintf(k2, sizeof k2, "%s_top1", stages[i]);
        ck_assert_msg(!isnan(json_num(p, k1)) && json_num(p, k1) == json_num(p, k2), "%s", k1);
    }
    snprintf(args, sizeof args, "run %s/tiny.yaml", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_ptr_nonnull(strstr(out, "already done"));
    // qtk table over the run (and a CSV)
    snprintf(args, sizeof args, "table %s", dir);
    ck_assert_int_eq(run(args), 0);
    ck_assert_ptr_nonnull(strstr(out, "| tiny | W4A8 | 1 |"));
    ck_assert_msg(strstr(out, "| W4A8 | ") && strstr(out, " 4 block steps | 1 |"), "%s", out);
    snprintf(args, sizeof args, "table %s --format csv", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_ptr_nonnull(strstr(out, "tiny,4,8,1,"));
    ck_assert_int_eq(run("table /nonexistent"), 1);
    // another config into the same folder, while a checkpoint is there, is refused
    snprintf(args, sizeof args, "run %s/tiny.yaml --set quantization.w_bits=3 --set search.max_steps=1 --force", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_ptr_nonnull(strstr(out, "paused after 1 of 4"));
    snprintf(args, sizeof args, "run %s/tiny.yaml", tu_tmp);
    ck_assert_int_eq(run(args), 1);
    ck_assert_ptr_nonnull(strstr(out, "different config"));
    snprintf(args, sizeof args, "table %s", dir); // the paused run is marked, not dropped
    ck_assert_int_eq(run(args), 0);
    ck_assert_ptr_nonnull(strstr(out, "**not finished**"));
}
END_TEST

// a run folder holding only a summary.json with this text
static void write_summary(const char *dir, const char *text) {
    char p[512], cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(p, sizeof p, "%s/summary.json", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void fake_summary(const char *dir, int seed, int test_images, const char *selection, double base, double searched) {
    char t[1024];
    snprintf(t, sizeof t,
             "{\"name\": \"r\", \"status\": \"done\", \"model\": \"fashion_vit\", \"seed\": %d, \"w_bits\": 3, "
             "\"a_bits\": 8, \"method\": \"evolq\", \"selection\": \"%s\", \"test_images\": %d, "
             "\"calibration_images\": 1000, \"block_steps\": 12, \"fp32_top1\": 90.0, \"baseline_top1\": %g, "
             "\"searched_top1\": %g, \"total_seconds\": 1}",
             seed, selection, test_images, base, searched);
    write_summary(dir, t);
}

// A summary in the generic form: the metric it names, its stages' values under "metrics"; qtk table reads
// them without knowing the model, and refuses to put two metrics in one column.
static void metric_summary(const char *dir, const char *metric, double fp, double base, double searched) {
    char t[1024];
    snprintf(t, sizeof t,
             "{\"name\": \"m\", \"status\": \"done\", \"model\": \"lm\", \"seed\": 0, \"w_bits\": 8, \"a_bits\": 8, "
             "\"method\": \"evolq\", \"selection\": \"last iterate\", \"test_images\": 100, \"calibration_images\": 10, "
             "\"block_steps\": 2, \"task\": \"x\", \"metric\": \"%s\", \"metrics\": {\"fp32\": {\"%s\": %g}, "
             "\"baseline\": {\"%s\": %g}, \"searched\": {\"%s\": %g}}, \"fp32_top1\": 1, \"total_seconds\": 1}",
             metric, metric, fp, metric, base, metric, searched);
    write_summary(dir, t);
}

START_TEST(test_table_metrics) {
    char d[300], args[600];
    snprintf(d, sizeof d, "%s/m/a", tu_tmp);
    metric_summary(d, "perplexity", 21.5, 24.25, 23.0);
    snprintf(args, sizeof args, "table %s/m", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "metric: perplexity") && strstr(out, "| 21.5000 | 24.2500 | 23.0000 | -1.2500 |"), "%s", out);
    snprintf(args, sizeof args, "table %s/m --format csv", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "fp32_perplexity,baseline_perplexity,searched_perplexity"), "%s", out);
    snprintf(d, sizeof d, "%s/m/b", tu_tmp);
    metric_summary(d, "top1", 90, 80, 81);
    snprintf(args, sizeof args, "table %s/m", tu_tmp);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "tabulate runs of one metric at a time"), "%s", out);
}
END_TEST

// qtk table averages only runs of one protocol: the same setting on another test-set size, or with
// test-set selection, gets its own row; means and standard deviations are those of the runs.
START_TEST(test_table_protocols) {
    char d[300], args[600];
    for (int s = 0; s < 3; s++) {
        snprintf(d, sizeof d, "%s/t/a%d", tu_tmp, s);
        fake_summary(d, s, 10000, "last iterate", 80 + s, 81 + 2 * s); // gains 1, 2, 3
    }
    snprintf(d, sizeof d, "%s/t/small", tu_tmp);
    fake_summary(d, 0, 500, "last iterate", 50, 50);
    snprintf(d, sizeof d, "%s/t/sel", tu_tmp);
    fake_summary(d, 0, 10000, "test-set selection", 60, 70);
    snprintf(args, sizeof args, "table %s/t", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "| W3A8 | fashion_vit, evolq, 10000 test images, 1000 calibration, 12 block steps | 3 | "
                              "90.00 ± 0.00 | 81.00 ± 1.00 | 83.00 ± 2.00 | +2.00 ± 1.00 |"), "%s", out);
    ck_assert_msg(strstr(out, "500 test images, 1000 calibration, 12 block steps | 1 | 90.00 ± 0.00 | 50.00 ± 0.00"), "%s", out);
    ck_assert_msg(strstr(out, "12 block steps, test-set selection | 1 | 90.00 ± 0.00 | 60.00 ± 0.00 | 70.00"), "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "they are not averaged"));
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) { // a plot of mixed protocols would draw one line through all of them
        snprintf(args, sizeof args, "table %s/t --plot %s/p.png", tu_tmp, tu_tmp);
        ck_assert_int_eq(run(args), 1);
        ck_assert_ptr_nonnull(strstr(out, "protocols for one setting"));
        snprintf(args, sizeof args, "rm -r %s/t/small %s/t/sel", tu_tmp, tu_tmp);
        ck_assert_int_eq(system(args), 0);
        snprintf(args, sizeof args, "table %s/t --plot %s/p.png", tu_tmp, tu_tmp);
        ck_assert_msg(run(args) == 0, "%s", out);
        snprintf(args, sizeof args, "grep -q '^3 8 90.0000 0.0000 81.0000 1.0000 83.0000 2.0000$' %s/p.gp", tu_tmp);
        ck_assert_int_eq(system(args), 0);
    }
}
END_TEST

// All ".scale" tensors of an export, concatenated.
static size_t scales_of(const char *path, float *buf, size_t cap) {
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, path));
    size_t k = 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const char *nm = st.tensors[i].name;
        size_t l = strlen(nm);
        if (l < 6 || strcmp(nm + l - 6, ".scale")) continue;
        size_t n = st.tensors[i].nbytes / 4;
        ck_assert(k + n <= cap);
        memcpy(buf + k, st.tensors[i].data, n * 4);
        k += n;
    }
    qtk_st_close(&st);
    return k;
}

// every tensor of two safetensors files equal byte for byte (metadata may differ)
static void same_tensors(const char *a, const char *b) {
    qtk_safetensors x, y;
    ck_qtk(qtk_st_open(&x, a));
    ck_qtk(qtk_st_open(&y, b));
    ck_assert_uint_eq(x.n_tensors, y.n_tensors);
    for (size_t i = 0; i < x.n_tensors; i++) {
        const qtk_st_tensor *t = qtk_st_find(&y, x.tensors[i].name);
        ck_assert_msg(t && t->nbytes == x.tensors[i].nbytes && !memcmp(t->data, x.tensors[i].data, t->nbytes),
                      "%s differs between %s and %s", x.tensors[i].name, a, b);
    }
    qtk_st_close(&x);
    qtk_st_close(&y);
}

// two runs' exports hold the same tensors and their searches the same final loss; returns it
static double same_run(const char *da, const char *db) {
    char pa[300], pb[300];
    snprintf(pa, sizeof pa, "%s/quant.safetensors", da);
    snprintf(pb, sizeof pb, "%s/quant.safetensors", db);
    same_tensors(pa, pb);
    snprintf(pa, sizeof pa, "%s/summary.json", da);
    snprintf(pb, sizeof pb, "%s/summary.json", db);
    ck_assert(json_num(pa, "loss_final") == json_num(pb, "loss_final"));
    return json_num(pb, "loss_final");
}

// search.ranks: the search over 3 processes (host transport; 4 groups: 2 + 1 + 1) ends where one process ends
START_TEST(test_ranks) {
    make_assets(2, 64);
    char d1[256], d3[256], args[600], p3[300];
    snprintf(d1, sizeof d1, "%s/r1", tu_tmp);
    snprintf(d3, sizeof d3, "%s/r3", tu_tmp);
    write_config("one", d1, 64, 2, "");
    write_config("three", d3, 64, 2, "");
    snprintf(args, sizeof args, "run %s/one.yaml", tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    snprintf(args, sizeof args, "run %s/three.yaml --set search.ranks=3", tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_msg(strstr(out, "the search over 3 processes (host transport)"), "%s", out);
    double loss = same_run(d1, d3);
    snprintf(p3, sizeof p3, "%s/summary.json", d3);
    ck_assert(json_num(p3, "search_ranks") == 3);
    printf("search over 3 processes: the export equals the single process's, loss %.9f\n", loss);
    if (qtk_cuda_device_count() > 0) { // on the GPU: 2 ranks sharing it (host transport) against 1
        char g1[256], g2[256];
        snprintf(g1, sizeof g1, "%s/g1", tu_tmp);
        snprintf(g2, sizeof g2, "%s/g2", tu_tmp);
        snprintf(args, sizeof args, "run %s/one.yaml --set device=cuda --set output.dir=%s", tu_tmp, g1);
        ck_assert_msg(run(args) == 0, "%s", out);
        snprintf(args, sizeof args, "run %s/one.yaml --set device=cuda --set search.ranks=2 --set output.dir=%s", tu_tmp, g2);
        ck_assert_msg(run(args) == 0, "%s", out);
        ck_assert_msg(strstr(out, "the search over 2 processes (host transport, sharing GPUs)"), "%s", out);
        printf("GPU: the search over 2 processes sharing the GPU equals 1 process (loss %.9f)\n", same_run(g1, g2));
    } else
        printf("GPU ranks: skipped: no CUDA device\n");
}
END_TEST

START_TEST(test_kill9_resume) {
    make_assets(4, 160);
    char a[256], b[256], args[1024], logp[300];
    snprintf(a, sizeof a, "%s/uninterrupted", tu_tmp);
    snprintf(b, sizeof b, "%s/killed", tu_tmp);
    // with the reference's test-set selection, whose state must survive the kill too
    write_config_s("a", a, 160, 4, "  select_on: val\n", "");
    write_config_s("b", b, 160, 4, "  select_on: val\n", "");
    snprintf(args, sizeof args, "run %s/a.yaml", tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    // the same search, killed with SIGKILL once it has finished two block steps
    char cfg[300];
    snprintf(cfg, sizeof cfg, "%s/b.yaml", tu_tmp);
    snprintf(logp, sizeof logp, "%s/log.jsonl", b);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execl(QTK_CLI, "qtk", "run", cfg, (char *)NULL);
        _exit(127);
    }
    int lines = 0;
    for (int tries = 0; tries < 20000 && lines < 2; tries++) {
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        FILE *f = fopen(logp, "r");
        lines = 0;
        if (f) {
            int ch;
            while ((ch = fgetc(f)) != EOF) lines += ch == '\n';
            fclose(f);
        }
    }
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the run ended before it could be killed");
    snprintf(args, sizeof args, "test -f %s/summary.json", b);
    ck_assert_int_ne(system(args), 0); // killed before writing its summary
    snprintf(args, sizeof args, "run %s/b.yaml", tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "resuming the search from search.ckpt"));
    // what was recorded before the search is not redone
    ck_assert_msg(strstr(out, "resumed: FP32 and baseline accuracy from start.json"), "%s", out);
    ck_assert_ptr_null(strstr(out, "FP32 eval:"));
    ck_assert_ptr_null(strstr(out, "calibration:"));
    ck_assert_ptr_null(strstr(out, "baseline eval:"));
    char sma[300], smb[300];
    snprintf(sma, sizeof sma, "%s/summary.json", a);
    snprintf(smb, sizeof smb, "%s/summary.json", b);
    ck_assert(json_num(sma, "fp32_top1") == json_num(smb, "fp32_top1"));
    ck_assert(json_num(sma, "baseline_top5") == json_num(smb, "baseline_top5"));
    static float sa[200000], sb[200000];
    char pa[300], pb[300];
    snprintf(pa, sizeof pa, "%s/quant.safetensors", a);
    snprintf(pb, sizeof pb, "%s/quant.safetensors", b);
    size_t na = scales_of(pa, sa, 200000), nb = scales_of(pb, sb, 200000);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(!memcmp(sa, sb, na * sizeof *sa), "scales after kill -9 and resume differ from the uninterrupted run");
    snprintf(pa, sizeof pa, "%s/quant_selected.safetensors", a);
    snprintf(pb, sizeof pb, "%s/quant_selected.safetensors", b);
    na = scales_of(pa, sa, 200000);
    nb = scales_of(pb, sb, 200000);
    ck_assert_msg(na == nb && !memcmp(sa, sb, na * sizeof *sa), "the test-set selection differs after kill -9 and resume");
    snprintf(args, sizeof args, "cmp -s %s/selected.json %s/selected.json", a, b);
    ck_assert_int_eq(system(args), 0);
}
END_TEST

// A CPU result does not depend on the thread count: calibration (observers, OMSE error sums) and two block
// steps of the search with 1, 2, 3 and 5 threads give exports equal byte for byte, and the same losses.
START_TEST(test_thread_count_invariance) {
    make_assets(2, 200);
    char dir[300], args[600], ref[320], cur[320];
    double loss0 = NAN, loss1 = NAN;
    const char *threads[] = {"1", "2", "3", "5"};
    for (int i = 0; i < 4; i++) {
        snprintf(dir, sizeof dir, "%s/t%s", tu_tmp, threads[i]);
        char name[16];
        snprintf(name, sizeof name, "t%s", threads[i]);
        // batch 100: activations of 100 x 17 x 64 and more, past every parallel threshold
        write_config_s(name, dir, 200, 1, "  max_steps: 2\n", "");
        snprintf(args, sizeof args, "run %s/%s.yaml --set calibration.batch=100 --set search.group=100", tu_tmp, name);
        setenv("OMP_NUM_THREADS", threads[i], 1);
        setenv("OPENBLAS_NUM_THREADS", threads[i], 1);
        int rc = run(args);
        unsetenv("OMP_NUM_THREADS");
        unsetenv("OPENBLAS_NUM_THREADS");
        ck_assert_msg(rc == 0, "%s threads: %s", threads[i], out);
        snprintf(cur, sizeof cur, "%s/quant.safetensors", dir);
        char sm[320];
        snprintf(sm, sizeof sm, "%s/summary.json", dir);
        double l0 = json_num(sm, "loss_initial"), l1 = json_num(sm, "loss_final");
        if (i == 0) {
            snprintf(ref, sizeof ref, "%s", cur);
            loss0 = l0, loss1 = l1;
            continue;
        }
        ck_assert_msg(l0 == loss0 && l1 == loss1, "%s threads: infoNCE %.9f -> %.9f, 1 thread %.9f -> %.9f", threads[i],
                      l0, l1, loss0, loss1);
        same_tensors(ref, cur);
    }
}
END_TEST

// qtk calibrate / qtk eval: an export evaluates to the calibration's own
// numbers; wrong bit widths, missing and corrupt files are one error line.
// CPT-V: search.init starts from the export (no calibration) and
// search.targets limits what the search changes.
START_TEST(test_calibrate_eval_cptv) {
    make_assets(2, 32);
    char dir[256], args[1024], cal[300], j1[300], j2[300], j3[300];
    snprintf(dir, sizeof dir, "%s/out", tu_tmp);
    write_config("ev", dir, 32, 1, "");
    snprintf(cal, sizeof cal, "%s/cal.safetensors", tu_tmp);
    snprintf(j1, sizeof j1, "%s/cal.json", tu_tmp);
    snprintf(j2, sizeof j2, "%s/eval.json", tu_tmp);
    snprintf(j3, sizeof j3, "%s/eval_fresh.json", tu_tmp);
    snprintf(args, sizeof args, "calibrate %s/ev.yaml --out %s --eval --json %s", tu_tmp, cal, j1);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "calibration: 32 done in"));
    ck_assert_ptr_nonnull(strstr(out, "baseline top-1"));
    // the export names its checkpoint and the checkpoint's CRC-32 (docs/export.md)
    snprintf(args, sizeof args, "info %s", cal);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_msg(strstr(out, "format_version: 1") && strstr(out, "checkpoint_crc32: crc32:") && strstr(out, "qtk_commit: "),
                  "%s", out);
    // progress goes to stderr (stdout keeps the results); --quiet drops it
    snprintf(args, sizeof args, "calibrate %s/ev.yaml --out %s --eval 2>/dev/null #", tu_tmp, cal);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_null(strstr(out, "done in"));
    ck_assert_ptr_nonnull(strstr(out, "baseline top-1"));
    snprintf(args, sizeof args, "calibrate %s/ev.yaml --quiet --out %s --eval", tu_tmp, cal);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_null(strstr(out, "done in"));
    ck_assert_ptr_nonnull(strstr(out, "baseline top-1"));
    // --report: every quantizer on the config's own data (as quant-report on files)
    snprintf(args, sizeof args, "calibrate %s/ev.yaml --quiet --report --out %s/rep.safetensors", tu_tmp, tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_msg(strstr(out, "quantizer                    bits granularity") && strstr(out, "blocks.0.attn.softmax ") &&
                      strstr(out, "channel-ptf") && strstr(out, "head.weight "),
                  "%s", out);
    // quant-report with a config: the old name of calibrate --report, the same report and export
    snprintf(args, sizeof args, "quant-report %s/ev.yaml --quiet --out %s/rep2.safetensors", tu_tmp, tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_msg(strstr(out, "quantizer                    bits granularity") && strstr(out, "head.weight "), "%s", out);
    snprintf(args, sizeof args, "cmp %s/rep.safetensors %s/rep2.safetensors", tu_tmp, tu_tmp);
    ck_assert_int_eq(system(args), 0);
    // output.weights: the optional tensors (codes, the forward's weights); the export still imports
    snprintf(args, sizeof args, "calibrate %s/ev.yaml --quiet --set output.weights=true --out %s/w.safetensors && %s info %s/w.safetensors",
             tu_tmp, tu_tmp, QTK_CLI, tu_tmp);
    ck_assert_msg(run(args) == 0 && strstr(out, "blocks.0.mlp.fc1.weight.codes ") && strstr(out, " U8 ") &&
                      strstr(out, "blocks.0.mlp.fc1.weight.weight_q ") && strstr(out, "head.weight.codes "),
                  "%.3000s", out);
    // --logits: the inputs, labels and both logits, for checking an export elsewhere (tools/apply_export.py)
    snprintf(args, sizeof args, "eval %s/ev.yaml --quiet --quant %s/w.safetensors --logits %s/lg.safetensors && %s info %s/lg.safetensors",
             tu_tmp, tu_tmp, tu_tmp, QTK_CLI, tu_tmp);
    ck_assert_msg(run(args) == 0 && strstr(out, "inputs     F32    [32, ") && strstr(out, "quantized  F32    [32, 5]"), "%.3000s",
                  out);
    snprintf(args, sizeof args, "eval %s/ev.yaml --quant %s --json %s", tu_tmp, cal, j2);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "| FP32 | 32 |"));
    double b1 = json_num(j1, "baseline_top1"), q1 = json_num(j2, "quantized_top1");
    ck_assert_msg(b1 == q1, "imported scales give top-1 %g, the calibration %g", q1, b1);
    ck_assert(json_num(j1, "fp32_top1") == json_num(j2, "fp32_top1") && !isnan(json_num(j2, "quantized_top5")));
    // no export anywhere: eval calibrates on the spot, to the same numbers
    snprintf(args, sizeof args, "eval %s/ev.yaml --json %s", tu_tmp, j3);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "calibrating the W4A8 baseline"));
    ck_assert(json_num(j3, "quantized_top1") == b1);
    // the bit widths come from the export: a W3 config evaluates a W4 export as W4
    write_config("ev3", dir, 32, 1, "");
    snprintf(args, sizeof args, "sed -i 's/w_bits: 4/w_bits: 3/' %s/ev3.yaml && grep -q 'w_bits: 3' %s/ev3.yaml", tu_tmp, tu_tmp);
    ck_assert_int_eq(system(args), 0);
    snprintf(args, sizeof args, "eval %s/ev3.yaml --quant %s --json %s", tu_tmp, cal, j2);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "W4A8 scales from"));
    ck_assert(json_num(j2, "quantized_top1") == b1);
    // bad input: a --set against the export, before any evaluation
    snprintf(args, sizeof args, "eval %s/ev.yaml --quant %s --set quantization.w_bits=3", tu_tmp, cal);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "--set quantization.w_bits=3, but ") && strstr(out, "holds W4A8 scales"), "%s", out);
    ck_assert_ptr_null(strstr(out, "FP32 eval"));
    snprintf(args, sizeof args, "eval %s/ev.yaml --quant %s/none.safetensors", tu_tmp, tu_tmp);
    ck_assert_int_eq(run(args), 1);
    ck_assert_ptr_nonnull(strstr(out, "no such file"));
    snprintf(args, sizeof args, "head -c 300 %s > %s/cut.safetensors", cal, tu_tmp);
    ck_assert_int_eq(system(args), 0);
    snprintf(args, sizeof args, "eval %s/ev.yaml --quant %s/cut.safetensors", tu_tmp, tu_tmp);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "qtk: error: ") && strstr(out, "cut.safetensors"), "%s", out);
    ck_assert_int_eq(run("eval"), 2);
    if (qtk_cuda_device_count() == 0) { // here (and in CI) there is no GPU: device: cuda is one clear error
        snprintf(args, sizeof args, "eval %s/ev.yaml --set device=cuda", tu_tmp);
        ck_assert_int_eq(run(args), 1);
        ck_assert_msg(strstr(out, "device: cuda, but") != NULL, "%s", out);
    }
    ck_assert_int_eq(run("calibrate --bogus x.yaml"), 2);
    // CPT-V from the export, searching fc1 weight and activation scales only
    char cdir[256], pq[300];
    snprintf(cdir, sizeof cdir, "%s/cptv", tu_tmp);
    char sx[512];
    snprintf(sx, sizeof sx, "  init: %s\n  targets: [fc1, act]\n", cal);
    write_config_s("cptv", cdir, 32, 1, sx, "");
    snprintf(args, sizeof args, "run %s/cptv.yaml", tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "CPT-V: starting from the scales of"));
    ck_assert_ptr_null(strstr(out, "calibration:"));
    snprintf(pq, sizeof pq, "%s/summary.json", cdir);
    ck_assert(json_num(pq, "baseline_top1") == b1); // the start is the export
    qtk_safetensors A, B;
    snprintf(pq, sizeof pq, "%s/quant.safetensors", cdir);
    ck_qtk(qtk_st_open(&A, cal));
    ck_qtk(qtk_st_open(&B, pq));
    int changed_fc1 = 0, changed_act = 0, changed_other = 0;
    for (size_t i = 0; i < A.n_tensors; i++) {
        const qtk_st_tensor *ta = &A.tensors[i], *tb = qtk_st_find(&B, ta->name);
        ck_assert_ptr_nonnull(tb);
        ck_assert_uint_eq(ta->nbytes, tb->nbytes);
        if (!memcmp(ta->data, tb->data, ta->nbytes)) continue;
        if (strstr(ta->name, "mlp.fc1.weight.scale")) changed_fc1++;
        else if (strstr(ta->name, ".out.scale") || strstr(ta->name, "attn.scores.scale") || strstr(ta->name, "softmax.scale") ||
                 strstr(ta->name, "context.scale"))
            changed_act++;
        else changed_other++, printf("changed outside the targets: %s\n", ta->name);
    }
    qtk_st_close(&A);
    qtk_st_close(&B);
    ck_assert_int_gt(changed_fc1 + changed_act, 0);
    ck_assert_int_eq(changed_other, 0);
    // a bad target name
    snprintf(sx, sizeof sx, "  targets: [qkv, mlp]\n");
    snprintf(cdir, sizeof cdir, "%s/badt", tu_tmp); // a fresh run: a finished one is not rerun
    write_config_s("badt", cdir, 32, 1, sx, "");
    snprintf(args, sizeof args, "run %s/badt.yaml", tu_tmp);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "search.targets: search target \"mlp\" matches no quantizer of a block"), "%s", out);
}
END_TEST

// select_on: val reproduces the reference's test-set selection (every step of
// pass 0, later only a strict rise), re-validated and labelled; validate_every
// only reports.
START_TEST(test_select_and_validate) {
    make_assets(2, 32);
    char dir[256], args[1024], p[300];
    snprintf(dir, sizeof dir, "%s/sel", tu_tmp);
    write_config_s("sel", dir, 32, 3, "  select_on: val\n", "");
    snprintf(args, sizeof args, "run %s/sel.yaml", tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "selected on the TEST set"));
    snprintf(p, sizeof p, "%s/log.jsonl", dir);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int sel = -1, n = 0;
    double best = NAN, acc[16];
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_ptr_nonnull(j);
        int step = cJSON_GetObjectItem(j, "step")->valueint, pass = cJSON_GetObjectItem(j, "pass")->valueint;
        const cJSON *a = cJSON_GetObjectItem(j, "test_top1");
        ck_assert_msg(cJSON_IsNumber(a), "step %d not validated", step);
        ck_assert_int_eq(step, n);
        acc[n++] = a->valuedouble;
        if (pass == 0 || a->valuedouble > best) best = a->valuedouble, sel = step;
        cJSON_Delete(j);
    }
    fclose(f);
    ck_assert_int_eq(n, 6);
    snprintf(p, sizeof p, "%s/summary.json", dir);
    ck_assert_int_eq((int)json_num(p, "selected_step"), sel);
    ck_assert_msg(json_num(p, "selected_top1") == acc[sel], "re-validation %g != %g", json_num(p, "selected_top1"), acc[sel]);
    ck_assert(json_num(p, "searched_top1") == acc[5]); // the last iterate
    ck_assert_int_eq((int)json_num(p, "validations"), 6);
    snprintf(args, sizeof args, "grep -q '\"selection\":.*\"test-set selection\"' %s/summary.json && grep -q 'test-set selection' "
                                "%s/table.md && test -f %s/quant_selected.safetensors", dir, dir, dir);
    ck_assert_int_eq(system(args), 0);
    snprintf(args, sizeof args, "table %s", dir);
    ck_assert_int_eq(run(args), 0);
    ck_assert_ptr_nonnull(strstr(out, "selected on test set †"));
    ck_assert_ptr_nonnull(strstr(out, "† test-set selection"));
    // validate_every: 4 reports at step 4 only (of 6) and selects nothing
    snprintf(dir, sizeof dir, "%s/val", tu_tmp);
    write_config_s("val", dir, 32, 3, "  validate_every: 4\n", "");
    snprintf(args, sizeof args, "run %s/val.yaml", tu_tmp);
    ck_assert_msg(run(args) == 0, "%s", out);
    snprintf(args, sizeof args, "test $(grep -c test_top1 %s/log.jsonl) -eq 1 && grep -q '\"step\": 3.*test_top1' %s/log.jsonl "
                                "&& ! test -f %s/quant_selected.safetensors", dir, dir, dir);
    ck_assert_int_eq(system(args), 0);
    snprintf(p, sizeof p, "%s/summary.json", dir);
    ck_assert(isnan(json_num(p, "selected_top1")));
    // plots, where gnuplot is installed
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        printf("plots: skipped: gnuplot not installed\n");
        return;
    }
    snprintf(args, sizeof args, "head -c 8 %s/loss.png | od -An -tx1 | grep -q '89 50 4e 47' && test -f %s/loss.gp", dir, dir);
    ck_assert_msg(system(args) == 0, "no loss.png in %s", dir);
    snprintf(args, sizeof args, "table %s --plot %s/bits.png", dir, tu_tmp); // one protocol (no test-set selection)
    ck_assert_msg(run(args) == 0, "%s", out);
    snprintf(args, sizeof args, "head -c 8 %s/bits.png | od -An -tx1 | grep -q '89 50 4e 47' && grep -q '^4 8 ' %s/bits.gp",
             tu_tmp, tu_tmp);
    ck_assert_int_eq(system(args), 0);
    snprintf(args, sizeof args, "table %s --plot %s/bits.png --format csv", tu_tmp, tu_tmp);
    ck_assert_int_eq(run(args), 2);
}
END_TEST

// ${VAR} / ${VAR:-default} in paths; --dry-run; the shipped ImageNet configs
// resolve once their variables are set.
START_TEST(test_env_and_shipped_configs) {
    make_assets(2, 32);
    char cfg[300], args[2048];
    snprintf(cfg, sizeof cfg, "%s/env.yaml", tu_tmp);
    write_text(cfg, "name: env\nmodel:\n  checkpoint: ${QTK_T_MODELS}/vit.safetensors\n  desc: '{\"heads\": 4}'\n"
                    "data:\n  format: tensor\n  root: ${QTK_T_DATA:-/nonexistent}/data.safetensors\n"
                    "calibration:\n  images: 32\n  batch: 16\nsearch:\n  group: 16\n");
    unsetenv("QTK_T_MODELS");
    unsetenv("QTK_T_DATA");
    snprintf(args, sizeof args, "run %s --dry-run", cfg);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "env.yaml:3: model.checkpoint: ${QTK_T_MODELS} is not set"), "%s", out);
    setenv("QTK_T_MODELS", tu_tmp, 1);
    ck_assert_int_eq(run(args), 1); // the default is used, and does not exist
    ck_assert_msg(strstr(out, "data.root: /nonexistent/data.safetensors does not exist"), "%s", out);
    setenv("QTK_T_DATA", tu_tmp, 1);
    ck_assert_msg(run(args) == 0, "%s", out);
    char want[300];
    snprintf(want, sizeof want, "root: %s/data.safetensors", tu_tmp);
    ck_assert_msg(strstr(out, want) && strstr(out, "passes: 10"), "%s", out);
    // every shipped ImageNet config, with its variables pointing at a stand-in tree
    char sh[2048];
    snprintf(sh, sizeof sh,
             "set -e; cd %s; d=%s; mkdir -p $d/imagenet/train $d/imagenet/val $d/models; "
             "for f in experiments/configs/imagenet/*.yaml; do "
             "c=$(sed -n 's/^ *checkpoint: *//p' $f); touch \"$d/models/${c#\\${QTK_MODELS\\}/}\"; done; ls $d/models | wc -l",
             getenv("QTK_SRC_DIR") ? getenv("QTK_SRC_DIR") : ".", tu_tmp);
    ck_assert_int_eq(system(sh), 0);
    snprintf(sh, sizeof sh, "%s/imagenet", tu_tmp);
    setenv("IMAGENET", sh, 1);
    snprintf(sh, sizeof sh, "%s/models", tu_tmp);
    setenv("QTK_MODELS", sh, 1);
    const char *models[] = {"deit_tiny", "deit_small", "deit_base", "vit_base"};
    const int bits[] = {3, 4, 8};
    for (int m = 0; m < 4; m++)
        for (int b = 0; b < 3; b++) {
            snprintf(args, sizeof args, "run experiments/configs/imagenet/%s_w%da8.yaml --dry-run", models[m], bits[b]);
            ck_assert_msg(run(args) == 0, "%s: %s", args, out);
            char w[64];
            snprintf(w, sizeof w, "w_bits: %d", bits[b]);
            ck_assert_msg(strstr(out, w) && strstr(out, "format: folder") && strstr(out, "images: 1000"), "%s: %s", args, out);
        }
}
END_TEST

int main(void) {
    Suite *s = suite_create("run");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_run_and_skip);
    tcase_add_test(tc, test_kill9_resume);
    tcase_add_test(tc, test_table_protocols);
    tcase_add_test(tc, test_table_metrics);
    tcase_add_test(tc, test_thread_count_invariance);
    tcase_add_test(tc, test_ranks);
    tcase_add_test(tc, test_calibrate_eval_cptv);
    tcase_add_test(tc, test_select_and_validate);
    tcase_add_test(tc, test_env_and_shipped_configs);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
