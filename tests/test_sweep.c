// qtk sweep: the plan and its errors, the local backend (retries, the failure-marking table, skipping
// finished runs), and a real single-node Slurm cluster (tools/slurm_local.sh): a job array of runs on
// the built-in default with a retried task, the combined table from the dependent job, and a task
// cancelled mid-search that resumes on resubmission. If Slurm cannot start, the Slurm test fails.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define out tu_cli_out // the CLI's output (testutil.h)
#define run tu_cli

static const char *fashion = "build/cache/fashion-mnist/train-images-idx3-ubyte";

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

// A sweep file in tu_tmp: name, the out folder, grid lines and extra top-level lines
static void write_sweep(const char *file, const char *name, const char *grid, const char *extra) {
    char text[4096];
    snprintf(text, sizeof text,
             "name: %s\nbase: experiments/configs/fashion_w4a8.yaml\nout: %s/%s\ngrid:\n%s"
             "set: [search.passes=1, calibration.images=100, data.test_images=100]\n%s",
             name, tu_tmp, name, grid, extra);
    write_text(file, text);
}

START_TEST(test_plan_and_errors) {
    char f[256], args[512];
    snprintf(f, sizeof f, "%s/s.yaml", tu_tmp);
    write_sweep(f, "bits", "  - {key: quantization.w_bits, values: [3, 4]}\n  - {key: seed, values: [0, 1, 2]}\n",
                "retries: 2\nslurm: {partition: gpu, account: proj1, gpus: 1, cpus: 8, mem: 32G, time: \"04:00:00\",\n"
                "        max_parallel: 4, sbatch: [\"--qos=normal\"], setup: [\"module load cuda\"]}\n");
    snprintf(args, sizeof args, "sweep %s --backend slurm --dry-run", f);
    ck_assert_int_eq(run(args), 0);
    // 6 runs, the last axis fastest, ids from the varied keys
    const char *ids[] = {"0 w_bits-3_seed-0", "1 w_bits-3_seed-1", "2 w_bits-3_seed-2", "5 w_bits-4_seed-2"};
    for (int i = 0; i < 4; i++) ck_assert_msg(strstr(out, ids[i]), "%s missing in\n%s", ids[i], out);
    const char *lines[] = {"#SBATCH --array=0-5%4", "#SBATCH --partition=gpu", "#SBATCH --account=proj1",
                           "#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32G",
                           "#SBATCH --time=04:00:00", "#SBATCH --qos=normal", "module load cuda", "sweep task"};
    for (int i = 0; i < 10; i++) ck_assert_msg(strstr(out, lines[i]), "\"%s\" missing in\n%s", lines[i], out);
    snprintf(args, sizeof args, "%s/bits/sweep.json", tu_tmp);
    ck_assert_msg(tu_slurp(args) && strstr(tu_slurp(args), "output.dir="), "no plan written");
    // status of a sweep that never ran: every run pending
    snprintf(args, sizeof args, "sweep status %s/bits", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "6 runs: 0 done, 0 running, 6 pending"), "%s", out);
    // bad sweeps: each names what is wrong, nothing runs
    const struct {
        const char *grid, *extra, *msg;
    } bad[] = {
        {"  - {key: seed, values: [0]}\n", "colour: red\n", "s.yaml:7: colour: unknown key"},
        {"  - {key: seed, values: [0]}\n  - {key: seed, values: [1]}\n", "", "grid key \"seed\" appears twice"},
        {"  - {key: quantization.w_bitz, values: [3]}\n", "", "run w_bitz-3: "},
        {"  - {key: quantization.w_bits, values: [3, eleven]}\n", "", "run w_bits-eleven"},
        {"  - {key: model.checkpoint, values: [a/m.safetensors, b/m.safetensors]}\n", "", "get the same id"},
        {"  - {key: output.dir, values: [x]}\n", "", "the sweep sets it per run"},
        {"  - {key: seed, values: []}\n", "", "s.yaml"},
        {"  - {key: seed, values: [0]}\n", "retries: -1\n", "retries -1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_sweep(f, "bad", bad[i].grid, bad[i].extra);
        snprintf(args, sizeof args, "sweep %s --dry-run", f);
        ck_assert_int_eq(run(args), 1);
        ck_assert_msg(strstr(out, bad[i].msg), "case %zu: \"%s\" lacks \"%s\"", i, out, bad[i].msg);
    }
    const struct {
        const char *args, *msg;
        int rc;
    } badcli[] = {
        {"sweep /nonexistent.yaml", "/nonexistent.yaml: no such config file", 1},
        {"sweep x.yaml --backend pbs", "--backend takes local or slurm, got \"pbs\"", 2},
        {"sweep status /nonexistent", "/nonexistent/sweep.json: no sweep here", 1},
        {"sweep task /nonexistent 0", "no sweep here", 1},
    };
    for (size_t i = 0; i < sizeof badcli / sizeof *badcli; i++) {
        ck_assert_int_eq(run(badcli[i].args), badcli[i].rc);
        ck_assert_msg(strstr(out, badcli[i].msg), "%s: \"%s\" lacks \"%s\"", badcli[i].args, out, badcli[i].msg);
    }
    snprintf(args, sizeof args, "sweep task %s/bits 6", tu_tmp);
    ck_assert_int_eq(run(args), 2);
    ck_assert_msg(strstr(out, "is not a run of"), "%s", out);
    snprintf(args, sizeof args, "%s/bits/sweep.json", tu_tmp);
    write_text(args, "{\"name\": \"bits\", \"runs\": [");
    snprintf(args, sizeof args, "sweep status %s/bits", tu_tmp);
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "not a sweep plan qtk wrote"), "%s", out);
}
END_TEST

// the local backend: a retried run, a run that still fails marked in the table, finished runs skipped
START_TEST(test_local) {
    if (access(fashion, R_OK) != 0) {
        TU_SKIP("local sweep: Fashion-MNIST not in build/cache (make fashion-mnist)");
    }
    char f[256], args[512], path[512];
    snprintf(f, sizeof f, "%s/s.yaml", tu_tmp);
    write_sweep(f, "loc", "  - {key: quantization.w_bits, values: [3, 4]}\n", "retries: 1\n");
    snprintf(args, sizeof args, "sweep %s", f);
    setenv("QTK_SWEEP_FAIL_ONCE", "w_bits-3", 1);
    setenv("CUDA_VISIBLE_DEVICES", "5,7", 1); // two GPUs listed: two runs at once, one per GPU
    ck_assert_int_eq(run(args), 0);
    unsetenv("CUDA_VISIBLE_DEVICES");
    ck_assert_msg(strstr(out, "this attempt fails on purpose") && strstr(out, "2 of 2 runs done, 0 failed") &&
                      strstr(out, "2 at a time (one per GPU)"),
                  "%s", out);
    snprintf(path, sizeof path, "%s/loc/runs/w_bits-3/sweep_task.json", tu_tmp);
    ck_assert_msg(tu_slurp(path) && strstr(tu_slurp(path), "\"gpus\": \"5\""), "%s", tu_slurp(path));
    snprintf(path, sizeof path, "%s/loc/runs/w_bits-4/sweep_task.json", tu_tmp);
    ck_assert_msg(tu_slurp(path) && strstr(tu_slurp(path), "\"gpus\": \"7\""), "%s", tu_slurp(path));
    snprintf(path, sizeof path, "%s/loc/table.md", tu_tmp);
    char *t = tu_slurp(path);
    ck_assert_msg(t && strstr(t, "| 0 | w_bits-3 | done | 2 |") && strstr(t, "| 1 | w_bits-4 | done | 1 |") &&

                      strstr(t, "| W3A8 | fashion_vit, evolq, 100 test images, 100 calibration, 6 block steps | 1 |") && strstr(t, "| W4A8 | fashion_vit,"),
                  "%s", t ? t : "no table.md");
    snprintf(args, sizeof args, "sweep status %s/loc", tu_tmp); // each run's metric, read without knowing the model
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "| result |") && strstr(out, "| 1 | w_bits-4 | done | 1 | 0 | - | top1 "), "%s", out);
    // a task whose run folder is locked by another task leaves the run alone
    snprintf(args, sizeof args, "flock %s/loc/runs/w_bits-3/.task.lock %s sweep task %s/loc 0 2>&1", tu_tmp, QTK_CLI, tu_tmp);
    FILE *pf = popen(args, "r");
    ck_assert_ptr_nonnull(pf);
    size_t nr = fread(out, 1, sizeof out - 1, pf);
    out[nr] = 0;
    ck_assert_int_eq(pclose(pf), 0);
    ck_assert_msg(strstr(out, "is being run by another task"), "%s", out);
    // again: both done, nothing runs
    snprintf(args, sizeof args, "sweep %s", f);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "done (skipped)") && strstr(out, "every run is done"), "%s", out);
    // no retries: the injected failure stays, the table says so, the exit status is 1
    write_sweep(f, "fail", "  - {key: quantization.w_bits, values: [3, 4]}\n", "retries: 0\n");
    ck_assert_int_eq(run(args), 1);
    ck_assert_msg(strstr(out, "1 of 2 runs failed"), "%s", out);
    snprintf(path, sizeof path, "%s/fail/table.md", tu_tmp);
    t = tu_slurp(path);
    ck_assert_msg(t && strstr(t, "| 0 | w_bits-3 | **FAILED** | 1 | 3 |") && strstr(t, "2 runs: 1 done, 1 failed"), "%s",
                  t ? t : "no table.md");
    snprintf(args, sizeof args, "sweep status %s/fail", tu_tmp);
    ck_assert_int_eq(run(args), 0);
    ck_assert_msg(strstr(out, "| 0 | w_bits-3 | failed | 1 | 3 |"), "%s", out);
    unsetenv("QTK_SWEEP_FAIL_ONCE");
    // search.max_steps: each submission advances a run by that many block steps and leaves it paused, as
    // asked, instead of restarting it in a loop; the second one (6 block steps in all) finishes it
    snprintf(f, sizeof f, "%s/p.yaml", tu_tmp);
    char text[1024];
    snprintf(text, sizeof text,
             "name: pause\nbase: experiments/configs/fashion_w4a8.yaml\nout: %s/pause\ngrid:\n  - {key: seed, values: [0]}\n"
             "set: [search.passes=1, calibration.images=100, data.test_images=100, search.max_steps=3]\n", tu_tmp);
    write_text(f, text);
    snprintf(args, sizeof args, "sweep %s", f);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(run(args), 0);
        snprintf(path, sizeof path, "%s/pause/runs/seed-0/sweep_task.json", tu_tmp);
        ck_assert_msg(tu_slurp(path) && strstr(tu_slurp(path), k < 1 ? "\"state\": \"paused\"" : "\"state\": \"done\""), "%d: %s", k,
                      tu_slurp(path));
        char *one = strstr(out, "attempt 1 of");
        ck_assert_msg(one && !strstr(one + 1, "attempt 2 of"), "submission %d: %s", k, out); // one start each
        if (k < 1) ck_assert_msg(strstr(out, "paused by search.max_steps; run the sweep again"), "%s", out);
    }
}
END_TEST

// --- real Slurm ------------------------------------------------------------------------------

static char fail_msg[1 << 17];
#define REQUIRE(cond, ...)                                                                                             \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            snprintf(fail_msg, sizeof fail_msg, __VA_ARGS__);                                                          \
            goto cleanup;                                                                                              \
        }                                                                                                              \
    } while (0)

static int sh(const char *cmd, char *buf, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(buf, 1, cap - 1, p);
    buf[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// waits until squeue lists no job of the sweep (by its job name) and path exists; 0 on time
static int wait_for(const char *name, const char *path, int seconds) {
    char cmd[256], buf[4096];
    snprintf(cmd, sizeof cmd, "squeue -h -n qtk-%s,qtk-%s-table -o %%i 2>&1", name, name);
    for (int s = 0; s < seconds; s++) {
        if (sh(cmd, buf, sizeof buf) == 0 && buf[0] == 0 && (!path || access(path, F_OK) == 0)) return 0;
        sleep(1);
    }
    return -1;
}

START_TEST(test_slurm) {
    if (access(fashion, R_OK) != 0) {
        TU_SKIP("Slurm sweep: Fashion-MNIST not in build/cache (make fashion-mnist)");
    }
    char dir[] = "/tmp/qtk_slurm_XXXXXX", cmd[1024], buf[8192], f[256], args[512], path[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "bash tools/slurm_local.sh start %s/cluster 2>&1", dir);
    int st = sh(cmd, buf, sizeof buf);
    char *conf = strstr(buf, "export SLURM_CONF=");
    fail_msg[0] = 0;
    REQUIRE(st == 0 && conf, "Slurm could not start on this machine (tools/slurm_local.sh, exit %d): %s", st, buf);
    conf += strlen("export SLURM_CONF=");
    conf[strcspn(conf, "\n")] = 0;
    setenv("SLURM_CONF", conf, 1);
    printf("Slurm: single-node cluster up (%s)\n", conf);
    // 4 runs on the built-in default, one CPU each; run w_bits-3_seed-1 fails once and is retried
    snprintf(f, sizeof f, "%s/s.yaml", tu_tmp);
    write_sweep(f, "slurm4", "  - {key: quantization.w_bits, values: [3, 4]}\n  - {key: seed, values: [0, 1]}\n",
                "retries: 1\nslurm: {partition: debug, cpus: 1, time: \"00:20:00\"}\n");
    setenv("QTK_SWEEP_FAIL_ONCE", "w_bits-3_seed-1", 1);
    snprintf(args, sizeof args, "sweep %s --backend slurm", f);
    st = run(args);
    unsetenv("QTK_SWEEP_FAIL_ONCE");
    REQUIRE(st == 0 && strstr(out, "submitted array job"), "submission failed: %s", out);
    snprintf(path, sizeof path, "%s/slurm4/table.md", tu_tmp);
    REQUIRE(wait_for("slurm4", path, 600) == 0, "the sweep's jobs did not finish within 600 s");
    char *t = tu_slurp(path);
    REQUIRE(t && strstr(t, "4 runs: 4 done, 0 failed") && strstr(t, "| 1 | w_bits-3_seed-1 | done | 2 |") &&
                strstr(t, "| W3A8 | fashion_vit, evolq, ") && strstr(t, " block steps | 2 |"),
            "combined table wrong:\n%s", t ? t : "(none)");
    for (int i = 0; i < 4; i++) {
        const char *id[] = {"w_bits-3_seed-0", "w_bits-3_seed-1", "w_bits-4_seed-0", "w_bits-4_seed-1"};
        snprintf(path, sizeof path, "%s/slurm4/runs/%s/summary.json", tu_tmp, id[i]);
        t = tu_slurp(path);
        REQUIRE(t && strstr(t, "\"status\":\t\"done\""), "%s: %s", path, t ? t : "missing");
    }
    printf("Slurm: 4 runs done, one after a retry; the table job wrote the combined table\n");
    // a run cancelled mid-search (scancel) resumes from its checkpoint on resubmission
    write_sweep(f, "kill", "  - {key: seed, values: [3]}\n", "slurm: {cpus: 1}\n");
    static char text[1 << 17];
    snprintf(text, sizeof text, "%s", tu_slurp(f));
    char *sp = strstr(text, "search.passes=1");
    if (sp) sp[14] = '3';
    write_text(f, text);
    st = run(args);
    REQUIRE(st == 0 && strstr(out, "submitted array job"), "submission failed: %s", out);
    st = run(args); // again while its job runs: refused
    REQUIRE(st == 1 && strstr(out, "still queued or running"), "a second submission was not refused: %s", out);
    snprintf(path, sizeof path, "%s/kill/runs/seed-3/search.ckpt", tu_tmp);
    int s = 0;
    for (; s < 300 && access(path, F_OK) != 0; s++) sleep(1);
    REQUIRE(s < 300, "no search.ckpt after 300 s");
    snprintf(args, sizeof args, "sweep cancel %s/kill", tu_tmp);
    st = run(args);
    REQUIRE(st == 0 && strstr(out, "cancelled array job"), "qtk sweep cancel: %s", out);
    REQUIRE(wait_for("kill", NULL, 120) == 0, "scancel did not end the jobs");
    snprintf(args, sizeof args, "sweep status %s/kill", tu_tmp);
    run(args);
    REQUIRE(strstr(out, "| 0 | seed-3 | interrupted |"), "after scancel: %s", out);
    snprintf(args, sizeof args, "sweep %s --backend slurm", f);
    st = run(args);
    REQUIRE(st == 0 && strstr(out, "submitted array job"), "resubmission failed: %s", out);
    snprintf(path, sizeof path, "%s/kill/table.md", tu_tmp);
    REQUIRE(wait_for("kill", path, 600) == 0, "the resubmitted run did not finish within 600 s");
    snprintf(path, sizeof path, "%s/kill/runs/seed-3/run.log", tu_tmp);
    t = tu_slurp(path);
    REQUIRE(t && strstr(t, "resuming the search from search.ckpt"), "the run did not resume:\n%s", t ? t : "(no log)");
    snprintf(path, sizeof path, "%s/kill/table.md", tu_tmp);
    t = tu_slurp(path);
    REQUIRE(t && strstr(t, "1 runs: 1 done, 0 failed"), "%s", t ? t : "(none)");
    printf("Slurm: a run cancelled mid-search resumed from search.ckpt on resubmission and finished\n");
cleanup:
    snprintf(cmd, sizeof cmd, "bash tools/slurm_local.sh stop %s/cluster 2>&1; rm -rf %s", dir, dir);
    sh(cmd, buf, sizeof buf);
    ck_assert_msg(!fail_msg[0], "%s", fail_msg);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");
    tcase_set_timeout(tc, 1800);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_plan_and_errors);
    tcase_add_test(tc, test_local);
    tcase_add_test(tc, test_slurm);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
