#include "plot.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/error.h"

static const char *gnuplot_name(void) {
    const char *g = getenv("QTK_GNUPLOT");
    return g && *g ? g : "gnuplot";
}

int qtk_plot_available(void) {
    const char *g = gnuplot_name();
    if (strchr(g, '/')) return access(g, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path) return 0;
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, g);
        if (n && access(dir, X_OK) == 0) return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

// Runs gnuplot on the script; the PNG is named inside it.
static int run_gnuplot(const char *script) {
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", gnuplot_name(), script);
    FILE *p = popen(cmd, "r");
    if (!p) {
        qtk_fail(QTK_ERR_IO, "cannot run %s", gnuplot_name());
        return -1;
    }
    char msg[512] = "";
    size_t n = fread(msg, 1, sizeof msg - 1, p);
    msg[n] = '\0';
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        msg[strcspn(msg, "\n")] = '\0';
        qtk_fail(QTK_ERR_IO, "gnuplot failed on %s: %s", script, msg[0] ? msg : "no message");
        return -1;
    }
    return 0;
}

static void script_path(const char *png, char *gp, size_t size) {
    snprintf(gp, size, "%s", png);
    char *dot = strrchr(gp, '.');
    if (dot && !strcmp(dot, ".png")) *dot = '\0';
    strncat(gp, ".gp", size - strlen(gp) - 1);
}

int qtk_plot_run_loss(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        qtk_fail(QTK_ERR_IO, "%s: no search log to plot", path);
        return -1;
    }
    int cap = 256, max_step = -1;
    double *loss = malloc((size_t)cap * sizeof *loss), *acc = malloc((size_t)cap * sizeof *acc);
    double loss0 = NAN;
    char line[2048];
    while (loss && acc && fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step"), *l = cJSON_GetObjectItemCaseSensitive(j, "loss_best");
        if (cJSON_IsNumber(s) && cJSON_IsNumber(l) && s->valueint >= 0 && s->valueint < 1000000) {
            int k = s->valueint;
            while (k >= cap) {
                cap *= 2;
                loss = realloc(loss, (size_t)cap * sizeof *loss);
                acc = realloc(acc, (size_t)cap * sizeof *acc);
                if (!loss || !acc) break;
            }
            if (!loss || !acc) break;
            for (int i = max_step + 1; i <= k; i++) loss[i] = acc[i] = NAN;
            if (k > max_step) max_step = k;
            loss[k] = l->valuedouble;
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "test_top1");
            acc[k] = cJSON_IsNumber(a) ? a->valuedouble : NAN;
            const cJSON *l0 = cJSON_GetObjectItemCaseSensitive(j, "loss_start");
            if (k == 0 && cJSON_IsNumber(l0)) loss0 = l0->valuedouble;
        }
        cJSON_Delete(j);
    }
    fclose(f);
    if (!loss || !acc) {
        free(loss);
        free(acc);
        qtk_fail(QTK_ERR_NOMEM, "plot: out of memory");
        return -1;
    }
    char png[4200], gp[4300];
    snprintf(png, sizeof png, "%s/loss.png", dir);
    script_path(png, gp, sizeof gp);
    FILE *g = fopen(gp, "w");
    int rc = g ? 0 : -1, any_acc = 0;
    if (g) {
        fprintf(g, "# qtk: infoNCE loss after each Evol-Q block step (from log.jsonl); gnuplot %s\n$loss << EOD\n", gp);
        if (!isnan(loss0)) fprintf(g, "0 %.9g\n", loss0);
        for (int k = 0; k <= max_step; k++)
            if (!isnan(loss[k])) fprintf(g, "%d %.9g\n", k + 1, loss[k]);
        fprintf(g, "EOD\n$acc << EOD\n");
        for (int k = 0; k <= max_step; k++)
            if (!isnan(acc[k])) fprintf(g, "%d %.4f\n", k + 1, acc[k]), any_acc = 1;
        fprintf(g, "EOD\nset terminal pngcairo size 900,540 noenhanced\nset output '%s'\n", png);
        fprintf(g, "set title 'Evol-Q search: %s'\nset xlabel 'block step'\nset ylabel 'infoNCE loss (calibration set)'\n"
                   "set format y '%%.7g'\nset grid\nset key top right\n", dir);
        if (any_acc)
            fprintf(g, "set y2label 'test top-1 (%%)'\nset y2tics\nset ytics nomirror\n"
                       "plot $loss using 1:2 with linespoints title 'loss', $acc using 1:2 axes x1y2 with linespoints "
                       "title 'test top-1 (reported only)'\n");
        else fprintf(g, "plot $loss using 1:2 with linespoints title 'loss'\n");
        if (fclose(g) != 0) rc = -1;
    }
    free(loss);
    free(acc);
    if (rc) {
        qtk_fail(QTK_ERR_IO, "cannot write %s", gp);
        return -1;
    }
    return run_gnuplot(gp);
}

int qtk_plot_bits(const char *png, const qtk_plot_bits_row *rows, int n) {
    char gp[4300];
    script_path(png, gp, sizeof gp);
    FILE *g = fopen(gp, "w");
    if (!g) {
        qtk_fail(QTK_ERR_IO, "cannot write %s", gp);
        return -1;
    }
    fprintf(g, "# qtk table --plot: mean top-1 per setting over its finished runs, error bars one standard deviation;"
               " gnuplot %s\n$d << EOD\n# w_bits a_bits fp32 fp32_sd baseline baseline_sd evolq evolq_sd\n", gp);
    for (int i = 0; i < n; i++)
        fprintf(g, "%d %d %.4f %.4f %.4f %.4f %.4f %.4f\n", rows[i].w_bits, rows[i].a_bits, rows[i].fp, rows[i].fp_sd,
                rows[i].base, rows[i].base_sd, rows[i].searched, rows[i].searched_sd);
    fprintf(g, "EOD\nset terminal pngcairo size 800,520 noenhanced\nset output '%s'\nset datafile missing 'nan'\n", png);
    fprintf(g, "set title 'top-1 against weight bits'\nset xlabel 'weight bits (activations: see the table)'\n"
               "set ylabel 'top-1 (%%)'\nset grid\nset key bottom right\nset xtics 1\n"
               "plot $d using 1:3 with lines dashtype 2 title 'FP32', "
               "$d using 1:5:6 with yerrorlines title 'baseline', $d using 1:7:8 with yerrorlines title 'Evol-Q'\n");
    if (fclose(g) != 0) {
        qtk_fail(QTK_ERR_IO, "cannot write %s", gp);
        return -1;
    }
    return run_gnuplot(gp);
}
