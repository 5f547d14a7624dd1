// qtk table DIR... [--format md|csv] [--plot PNG]: one table from many runs'
// summary.json (searched recursively), failed or unfinished runs marked, mean
// +- std per weight/activation setting over seeds, runs that selected on the
// test set (select_on: val) labelled, and the metric against bits as a PNG.
// The metric is the runs' own (summary.json: "metric", the stages' values under
// "metrics"): top-1 for classification, perplexity for language models.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/error.h"
#include "cli.h"
#include "opts.h"
#include "plot.h"

typedef struct {
    char name[128], status[16];
    int w, a, seed;
    double fp, base, searched, selected, l0, l1, secs;
    // the protocol: runs are averaged together only where all of it is equal
    char model[64], method[32], selection[32], task[24], metric[24];
    int test_images, cal_images, steps;
} row;

// A stage's value of the run's metric: summary.json's metrics.<stage>.<metric>, or (runs written before
// the metrics object) its flat "<stage>_<metric>"
static double stage_metric(const cJSON *j, const char *stage, const char *metric) {
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metrics"), stage), metric);
    if (!v) {
        char k[64];
        snprintf(k, sizeof k, "%s_%s", stage, metric);
        v = cJSON_GetObjectItem(j, k);
    }
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int same_protocol(const row *x, const row *y) {
    return x->w == y->w && x->a == y->a && !strcmp(x->model, y->model) && !strcmp(x->method, y->method) &&
           !strcmp(x->task, y->task) && !strcmp(x->metric, y->metric) &&
           !strcmp(x->selection, y->selection) && x->test_images == y->test_images && x->cal_images == y->cal_images &&
           x->steps == y->steps;
}

// 0 (a run added, or no file), -1 (a summary.json that is no run's), or the exit status of an error
static int add_summary(const char *path, row **rows, int *n, int *cap) {
    char *buf = qtk_read_text(path, NULL);
    if (!buf) return 0;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) return qtk_cli_error("%s: not valid JSON", path);
    if (!cJSON_IsString(cJSON_GetObjectItem(j, "status"))) { // not a run's (qtk demo's summary of its runs): look below
        cJSON_Delete(j);
        return -1;
    }
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *rows = realloc(*rows, (size_t)*cap * sizeof **rows);
    }
    row *r = &(*rows)[(*n)++];
    memset(r, 0, sizeof *r);
#define NUM(k) (cJSON_IsNumber(cJSON_GetObjectItem(j, k)) ? cJSON_GetObjectItem(j, k)->valuedouble : NAN)
#define STRV(k, dst)                                                                                                   \
    snprintf(dst, sizeof dst, "%s", cJSON_IsString(cJSON_GetObjectItem(j, k)) ? cJSON_GetObjectItem(j, k)->valuestring : "?")
    STRV("name", r->name);
    STRV("status", r->status);
#define INT0(k) (isnan(NUM(k)) ? 0 : (int)NUM(k)) // absent: 0 (bits 0: a float-only run)
    r->w = INT0("w_bits");
    r->a = INT0("a_bits");
    r->seed = INT0("seed");
    STRV("task", r->task);
    if (!strcmp(r->task, "?")) strcpy(r->task, "classification"); // runs written before tasks were named
    STRV("metric", r->metric);
    if (!strcmp(r->metric, "?")) strcpy(r->metric, "top1");
    r->fp = stage_metric(j, "fp32", r->metric);
    r->base = stage_metric(j, "baseline", r->metric);
    r->searched = stage_metric(j, "searched", r->metric);
    r->selected = stage_metric(j, "selected", r->metric);
    r->l0 = NUM("loss_initial");
    r->l1 = NUM("loss_final");
    r->secs = NUM("total_seconds");
    STRV("model", r->model);
    STRV("method", r->method);
    STRV("selection", r->selection);
    r->test_images = cJSON_IsNumber(cJSON_GetObjectItem(j, "test_images")) ? (int)NUM("test_images") : 0;
    r->cal_images = INT0("calibration_images");
    r->steps = INT0("block_steps");
#undef INT0
#undef NUM
#undef STRV
    cJSON_Delete(j);
    return 0;
}

static int walk(const char *dir, row **rows, int *n, int *cap, int depth) {
    char p[4096];
    snprintf(p, sizeof p, "%s/summary.json", dir);
    struct stat st;
    if (stat(p, &st) == 0) {
        int rc = add_summary(p, rows, n, cap);
        if (rc >= 0) return rc;
    }
    if (depth > 4) return 0;
    DIR *d = opendir(dir);
    if (!d) return qtk_cli_error("%s: not a run folder or a folder of runs", dir);
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) rc = walk(p, rows, n, cap, depth + 1);
    }
    closedir(d);
    return rc;
}

static int cmp_row(const void *a, const void *b) {
    const row *x = a, *y = b;
    if (x->w != y->w) return y->w - x->w;
    if (x->a != y->a) return y->a - x->a;
    int c;
    if ((c = strcmp(x->model, y->model)) || (c = strcmp(x->method, y->method)) || (c = strcmp(x->selection, y->selection)))
        return c;
    if (x->test_images != y->test_images) return x->test_images - y->test_images;
    if (x->cal_images != y->cal_images) return x->cal_images - y->cal_images;
    if (x->steps != y->steps) return x->steps - y->steps;
    if (x->seed != y->seed) return x->seed - y->seed;
    return strcmp(x->name, y->name);
}

int qtk_cmd_table(int argc, char **argv) {
    const char *format = "md", *plot = NULL;
    const qtk_opt opts[] = {
        {"format", QTK_OPT_STR, &format, "md|csv", 0, 0, "markdown (default) or CSV"},
        {"plot", QTK_OPT_STR, &plot, "FILE.png", 0, 0, "draw the metric against weight bits (gnuplot; its script beside)"},
    };
    const qtk_cmd_spec spec = {
        "table", "DIR... [--format md|csv] [--plot FILE.png]",
        "One table of the runs under the folders (their summary.json), with mean +- std of the runs' metric\n"
        "(top-1 for classification) and gain per setting and protocol over seeds. Unfinished runs are marked,\n"
        "not dropped; runs that selected on the test set (search.select_on: val) are labelled.",
        opts, 2, 1, argc};
    char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    if (!dirs) return qtk_cli_error("out of memory");
    int nd, rc = qtk_opts_parse(&spec, argc, argv, dirs, &nd);
    if (!rc && strcmp(format, "md") && strcmp(format, "csv")) rc = qtk_cli_usage_error("--format takes md or csv, got \"%s\"", format);
    if (!rc) rc = qtk_table_print(stdout, dirs, nd, !strcmp(format, "csv"), plot);
    free(dirs);
    return rc < 0 ? 0 : rc;
}

int qtk_table_print(FILE *o, char *const *dirs, int nd, int csv, const char *plot) {
    int n = 0, cap = 0;
    row *rows = NULL;
    for (int i = 0; i < nd; i++)
        if (walk(dirs[i], &rows, &n, &cap, 0)) {
            free(rows);
            return 1;
        }
    if (n == 0) {
        free(rows);
        return qtk_cli_usage_error("table: no runs found (give run folders holding summary.json)");
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_row);
    // one metric per table: its columns are that metric at every stage
    for (int i = 1; i < n; i++)
        if (strcmp(rows[i].metric, rows[0].metric)) {
            int rc = qtk_cli_error("table: %s reports %s, %s reports %s: tabulate runs of one metric at a time", rows[0].name,
                                   rows[0].metric, rows[i].name, rows[i].metric);
            free(rows);
            return rc;
        }
    const char *met = rows[0].metric;
    const int prec = strcmp(met, "perplexity") ? 2 : 4; // perplexities of quantized LMs differ in the third decimal
    // a language model's quantized stage is the method's result (Quamba), not a baseline for a search
    const char *base_label = prec == 4 ? "quantized" : "baseline";
    int any_sel = 0;
    for (int i = 0; i < n; i++) any_sel |= !isnan(rows[i].selected);
    if (csv)
        fprintf(o, "name,w_bits,a_bits,seed,fp32_%s,baseline_%s,searched_%s,gain,loss_initial,loss_final,seconds,status,"
               "selected_on_test_%s\n", met, met, met, met);
    else {
        if (strcmp(met, "top1")) fprintf(o, "metric: %s\n\n", met);
        fprintf(o, "| run | bits | seed | FP32 | %s | Evol-Q | gain | infoNCE | time | status |%s\n"
               "|---|---|---|---|---|---|---|---|---|---|%s\n", base_label, any_sel ? " selected on test set † |" : "",
               any_sel ? "---|" : "");
    }
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        double gain = r->searched - r->base;
        if (csv)
            fprintf(o, "%s,%d,%d,%d,%.*f,%.*f,%.*f,%.*f,%.6f,%.6f,%.0f,%s,%.2f\n", r->name, r->w, r->a, r->seed, prec, r->fp,
                    prec, r->base, prec, r->searched, prec, gain, r->l0, r->l1, r->secs, r->status, r->selected);
        else {
            char bits[32], v[4][32], loss[64];
            if (r->w) snprintf(bits, sizeof bits, "W%dA%d", r->w, r->a);
            else snprintf(bits, sizeof bits, "float");
            const double vals[4] = {r->fp, r->base, r->searched, gain};
            for (int m = 0; m < 4; m++) // a stage the run does not have: a dash
                snprintf(v[m], sizeof v[m], isnan(vals[m]) ? "—" : m == 3 ? "%+.*f" : "%.*f", prec, vals[m]);
            if (isnan(r->l0)) snprintf(loss, sizeof loss, "—");
            else snprintf(loss, sizeof loss, "%.5f -> %.5f", r->l0, r->l1);
            fprintf(o, "| %s | %s | %d | %s | %s | %s | %s | %s | %.0f s | %s |", r->name, bits, r->seed, v[0], v[1], v[2], v[3],
                    loss, r->secs, strcmp(r->status, "done") ? "**not finished**" : "done");
            if (any_sel && !isnan(r->selected)) fprintf(o, " %.2f |", r->selected);
            else if (any_sel) fprintf(o, " — |");
            fprintf(o, "\n");
        }
    }
    if (!csv && any_sel)
        fprintf(o, "\n† test-set selection: the reference's protocol (search.select_on: val) keeps the state with the best\n"
               "test top-1 over the block steps, so that column is selected on the test set and biased upward;\n"
               "\"Evol-Q\" is the last iterate, which never looks at the test set.\n");
    qtk_plot_bits_row *pr = calloc(n > 0 ? (size_t)n : 1, sizeof *pr);
    int np = 0;
    if (!csv) {
        // mean +- std over seeds, per setting and protocol, finished runs only
        int groups = 0;
        for (int i = 0; i < n; i++) groups += i == 0 || !same_protocol(&rows[i], &rows[i - 1]);
        int protocols = 0; // settings (w, a) seen with more than one protocol
        for (int i = 1; i < n; i++)
            protocols |= !same_protocol(&rows[i], &rows[i - 1]) && rows[i].w == rows[i - 1].w && rows[i].a == rows[i - 1].a;
        fprintf(o, "\n| setting | protocol | runs | FP32 | %s | Evol-Q | gain |\n|---|---|---|---|---|---|---|\n", base_label);
        for (int i = 0; i < n;) {
            int j = i, k = 0;
            double s[4] = {0}, q[4] = {0}; // FP32, baseline, Evol-Q, gain
            for (; j < n && same_protocol(&rows[j], &rows[i]); j++) {
                if (strcmp(rows[j].status, "done") || isnan(rows[j].searched)) continue;
                double v[4] = {rows[j].fp, rows[j].base, rows[j].searched, rows[j].searched - rows[j].base};
                for (int m = 0; m < 4; m++) s[m] += v[m], q[m] += v[m] * v[m];
                k++;
            }
            if (k) {
                double mean[4], sd[4];
                for (int m = 0; m < 4; m++) {
                    mean[m] = s[m] / k;
                    sd[m] = k > 1 ? sqrt(fmax(0.0, (q[m] - s[m] * s[m] / k) / (k - 1))) : 0.0;
                }
                if (pr) pr[np++] = (qtk_plot_bits_row){rows[i].w, rows[i].a, mean[0], mean[1], mean[2], sd[0], sd[1], sd[2]};
                char proto[200];
                snprintf(proto, sizeof proto, "%s, %s, %d test images, %d calibration, %d block steps%s", rows[i].model,
                         rows[i].method, rows[i].test_images, rows[i].cal_images, rows[i].steps,
                         strcmp(rows[i].selection, "last iterate") ? ", test-set selection" : "");
                fprintf(o, "| W%dA%d | %s | %d | %.*f ± %.*f | %.*f ± %.*f | %.*f ± %.*f | %+.*f ± %.*f |\n", rows[i].w,
                        rows[i].a, proto, k, prec, mean[0], prec, sd[0], prec, mean[1], prec, sd[1], prec, mean[2], prec,
                        sd[2], prec, mean[3], prec, sd[3]);
            }
            i = j;
        }
        if (protocols)
            fprintf(o, "\nSome settings were run under different protocols (model, method, test-set size or selection,\n"
                       "calibration size, search length): each protocol has its own row; they are not averaged.\n");
        if (plot && groups > 0 && protocols) {
            free(pr);
            free(rows);
            return qtk_cli_error("--plot: the runs use %d protocols for one setting; plot the folders of one protocol",
                                 groups);
        }
    }
    int rc = 0;
    if (plot && csv) rc = qtk_cli_usage_error("--plot goes with the markdown table (--format md)");
    else if (plot && !qtk_plot_available())
        rc = qtk_cli_error("--plot needs gnuplot (Debian: apt-get install gnuplot-nox)");
    else if (plot && np == 0) rc = qtk_cli_error("--plot: no finished runs to plot");
    else if (plot && qtk_plot_bits(plot, pr, np) != 0) rc = qtk_cli_error("%s", qtk_last_error());
    else if (plot) fprintf(stderr, "plotted %s\n", plot);
    free(pr);
    free(rows);
    return rc;
}
