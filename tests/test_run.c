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

static char out[65536];

static int run(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", QTK_CLI, args);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

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

static void write_config(const char *name, const char *dir, int images, int passes, const char *extra) {
    char text[2048], p[256];
    snprintf(text, sizeof text,
             "name: %s\nseed: 1\nmodel:\n  checkpoint: %s/vit.safetensors\n  desc: '{\"heads\": 4}'\n"
             "data:\n  format: tensor\n  root: %s/data.safetensors\n  test: %s/data.safetensors\n"
             "calibration:\n  images: %d\n  batch: 16\nquantization:\n  w_bits: 4\n"
             "search:\n  passes: %d\n  group: 16\noutput:\n  dir: %s\n%s",
             name, tu_tmp, tu_tmp, tu_tmp, images, passes, dir, extra);
    snprintf(p, sizeof p, "%s/%s.yaml", tu_tmp, name);
    write_text(p, text);
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
        {"--set quantization.w_bits=9", "w_bits: 9 is outside 2..8"},
        {"--set search.method=sgd", "search.method: \"sgd\" is not one of evolq, none"},
        {"--set model.checkpoint=/nonexistent.safetensors", "model.checkpoint: /nonexistent.safetensors does not exist"},
        {"--set calibration.images=40", "40 images do not split into infoNCE groups of 16"},
        {"--set search.colour=1", "--set search.colour: unknown key"},
        {"--set seed=x", "--set seed: expected an integer"},
        {"--set data.format=lmdb", "data.format: \"lmdb\" is not one of fashion-mnist, folder, tensor"},
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
    snprintf(args, sizeof args, "run %s/tiny.yaml", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_ptr_nonnull(strstr(out, "already done"));
    // qtk table over the run (and a CSV)
    snprintf(args, sizeof args, "table %s", dir);
    ck_assert_int_eq(run(args), 0);
    ck_assert_ptr_nonnull(strstr(out, "| tiny | W4A8 | 1 |"));
    ck_assert_ptr_nonnull(strstr(out, "| W4A8 | 1 |"));
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

START_TEST(test_kill9_resume) {
    make_assets(4, 160);
    char a[256], b[256], args[512], logp[300];
    snprintf(a, sizeof a, "%s/uninterrupted", tu_tmp);
    snprintf(b, sizeof b, "%s/killed", tu_tmp);
    write_config("a", a, 160, 4, "");
    write_config("b", b, 160, 4, "");
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
    static float sa[200000], sb[200000];
    char pa[300], pb[300];
    snprintf(pa, sizeof pa, "%s/quant.safetensors", a);
    snprintf(pb, sizeof pb, "%s/quant.safetensors", b);
    size_t na = scales_of(pa, sa, 200000), nb = scales_of(pb, sb, 200000);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(!memcmp(sa, sb, na * sizeof *sa), "scales after kill -9 and resume differ from the uninterrupted run");
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
    suite_add_tcase(s, tc);
    return tu_run(s);
}
