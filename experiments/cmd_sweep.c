// qtk sweep: a grid of `qtk run`s from one base config, run locally or as one Slurm job array.
//
//   qtk sweep SWEEP.yaml [--backend local|slurm] [--dry-run]   expand, write the plan, run / submit
//   qtk sweep status DIR                                       per-run state from the run folders and squeue
//   qtk sweep table DIR                                        DIR/table.md (+ table.csv): every run, failures marked
//   qtk sweep cancel DIR                                       scancel the submitted array and table jobs
//   qtk sweep task DIR INDEX                                   one run with retries (what each array task runs)
//
// The sweep folder (`out`) holds sweep.json (the expanded plan: the base config, and per run its id, its
// folder runs/<id> and its --set overrides), the runs' folders, and for Slurm slurm/{array,table}.sbatch,
// slurm/jobs.json and the tasks' output. Each run folder gets sweep_task.json (state, attempts, exit
// status, host, pid, Slurm job) and run.log (the output of `qtk run`). A finished run (summary.json with
// status "done") is skipped by every later task and submission; an interrupted one resumes from its
// search.ckpt through `qtk run`'s own resume.
#include <cjson/cJSON.h>
#include <math.h>
#include <cyaml/cyaml.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "opts.h"
#include "config.h"

// --- the sweep file -------------------------------------------------------------------------------

typedef struct {
    char *key;
    char **values;
    unsigned values_count;
} sw_axis;

typedef struct {
    char *partition, *account, *time, *mem;
    int gpus, cpus, max_parallel;
    char **sbatch; // extra #SBATCH options, e.g. "--qos=high"
    unsigned sbatch_count;
    char **setup; // shell lines before each task (module load ..., source venv)
    unsigned setup_count;
} sw_slurm;

typedef struct {
    char *name, *base, *out;
    sw_axis *grid;
    unsigned grid_count;
    char **set;
    unsigned set_count;
    int retries, parallel;
    sw_slurm slurm;
} sw_spec;

#define OPT CYAML_FLAG_OPTIONAL
#define OPTP (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER)
static const cyaml_schema_value_t sw_str = {CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, CYAML_UNLIMITED)};
static const cyaml_schema_field_t axis_fields[] = {
    CYAML_FIELD_STRING_PTR("key", CYAML_FLAG_POINTER, sw_axis, key, 1, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("values", CYAML_FLAG_POINTER, sw_axis, values, &sw_str, 1, CYAML_UNLIMITED), CYAML_FIELD_END};
static const cyaml_schema_value_t axis_entry = {CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, sw_axis, axis_fields)};
static const cyaml_schema_field_t slurm_fields[] = {
    CYAML_FIELD_STRING_PTR("partition", OPTP, sw_slurm, partition, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("account", OPTP, sw_slurm, account, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("time", OPTP, sw_slurm, time, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("mem", OPTP, sw_slurm, mem, 1, CYAML_UNLIMITED),
    CYAML_FIELD_INT("gpus", OPT, sw_slurm, gpus), CYAML_FIELD_INT("cpus", OPT, sw_slurm, cpus),
    CYAML_FIELD_INT("max_parallel", OPT, sw_slurm, max_parallel),
    CYAML_FIELD_SEQUENCE("sbatch", OPTP, sw_slurm, sbatch, &sw_str, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("setup", OPTP, sw_slurm, setup, &sw_str, 0, CYAML_UNLIMITED), CYAML_FIELD_END};
static const cyaml_schema_field_t spec_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, sw_spec, name, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("base", CYAML_FLAG_POINTER, sw_spec, base, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("out", CYAML_FLAG_POINTER, sw_spec, out, 1, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("grid", OPTP, sw_spec, grid, &axis_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("set", OPTP, sw_spec, set, &sw_str, 0, CYAML_UNLIMITED),
    CYAML_FIELD_INT("retries", OPT, sw_spec, retries), CYAML_FIELD_INT("parallel", OPT, sw_spec, parallel),
    CYAML_FIELD_MAPPING("slurm", OPT, sw_spec, slurm, slurm_fields), CYAML_FIELD_END};
static const cyaml_schema_value_t spec_schema = {CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, sw_spec, spec_fields)};

// --- the plan ------------------------------------------------------------------------------------

#define MAX_RUNS 10000

typedef struct {
    char id[160], dir[PATH_MAX];
    char **sets; // "key=value": the sweep's set, the grid's values, output.dir and name
    int n_sets;
} sw_run;

typedef struct {
    char name[128], base[PATH_MAX], out[PATH_MAX], cwd[PATH_MAX], qtk[PATH_MAX];
    int retries;
    sw_run *runs;
    int n;
} sw_plan;

static void plan_free(sw_plan *p) {
    for (int i = 0; i < p->n; i++) {
        for (int k = 0; k < p->runs[i].n_sets; k++) free(p->runs[i].sets[k]);
        free(p->runs[i].sets);
    }
    free(p->runs);
    p->runs = NULL;
    p->n = 0;
}

// path made absolute against the working folder (it need not exist)
static int absolute(const char *path, char *out) {
    if (path[0] == '/') return snprintf(out, PATH_MAX, "%s", path) < PATH_MAX ? 0 : -1;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    return snprintf(out, PATH_MAX, "%s/%s", cwd, path) < PATH_MAX ? 0 : -1;
}

// a value as a piece of a run id: a path's file name without extension, other characters than
// [A-Za-z0-9.+-] as '_'
static void id_piece(const char *v, char *out, size_t cap) {
    const char *s = strrchr(v, '/') ? strrchr(v, '/') + 1 : v;
    size_t n = strlen(s);
    const char *dot = strchr(v, '/') ? strrchr(s, '.') : NULL;
    if (dot && dot > s) n = (size_t)(dot - s);
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        char c = s[i];
        out[k++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                           c == '+'
                       ? c
                       : '_';
    }
    out[k] = 0;
}

static char *dupf(const char *fmt, const char *a, const char *b) {
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, a, b);
    return s;
}

// The runs of the grid (the last axis varying fastest), each checked by loading the base config with
// its overrides, so a bad key or value stops the sweep before anything runs. 0, or an exit status.
static int expand(const sw_spec *sp, const char *file, sw_plan *p) {
    memset(p, 0, sizeof *p);
    if (strlen(sp->name) >= sizeof p->name) return qtk_cli_error("%s: name is longer than %zu characters", file, sizeof p->name - 1);
    for (const char *c = sp->name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' ||
              *c == '.'))
            return qtk_cli_error("%s: name \"%s\": only letters, digits, '_', '-' and '.'", file, sp->name);
    snprintf(p->name, sizeof p->name, "%s", sp->name);
    if (sp->retries < 0 || sp->retries > 100) return qtk_cli_error("%s: retries %d (0..100)", file, sp->retries);
    if (sp->parallel < 0) return qtk_cli_error("%s: parallel %d (0: one per GPU)", file, sp->parallel);
    p->retries = sp->retries;
    if (absolute(sp->base, p->base) || absolute(sp->out, p->out) || !getcwd(p->cwd, sizeof p->cwd))
        return qtk_cli_error("%s: a path is too long", file);
    if (access(p->base, R_OK) != 0) return qtk_cli_error("%s: base: %s: %s", file, sp->base, strerror(errno));
    ssize_t len = readlink("/proc/self/exe", p->qtk, sizeof p->qtk - 1);
    if (len <= 0) return qtk_cli_error("cannot find this qtk's own path (/proc/self/exe)");
    p->qtk[len] = 0;
    for (const char *paths[] = {p->base, p->out, p->cwd, p->qtk}, **q = paths; q < paths + 4; q++)
        if (strchr(*q, '\'') || strchr(*q, '\n')) return qtk_cli_error("%s: paths with quotes or newlines are not supported", *q);
    long total = 1;
    for (unsigned a = 0; a < sp->grid_count; a++) {
        for (unsigned b = 0; b < a; b++)
            if (!strcmp(sp->grid[a].key, sp->grid[b].key))
                return qtk_cli_error("%s: grid key \"%s\" appears twice", file, sp->grid[a].key);
        if (!strcmp(sp->grid[a].key, "output.dir") || !strcmp(sp->grid[a].key, "name"))
            return qtk_cli_error("%s: grid key \"%s\": the sweep sets it per run", file, sp->grid[a].key);
        total *= sp->grid[a].values_count;
        if (total > MAX_RUNS) return qtk_cli_error("%s: the grid has more than %d runs", file, MAX_RUNS);
    }
    for (unsigned k = 0; k < sp->set_count; k++)
        if (!strchr(sp->set[k], '=')) return qtk_cli_error("%s: set: \"%s\" is not key=value", file, sp->set[k]);
    p->runs = calloc((size_t)total, sizeof *p->runs);
    if (!p->runs) return qtk_cli_error("out of memory");
    for (long r = 0; r < total; r++) {
        sw_run *run = &p->runs[p->n++];
        run->sets = calloc(sp->set_count + sp->grid_count + 2, sizeof *run->sets);
        if (!run->sets) return qtk_cli_error("out of memory");
        for (unsigned k = 0; k < sp->set_count; k++) run->sets[run->n_sets++] = strdup(sp->set[k]);
        long rem = r;
        size_t idl = 0;
        for (int a = (int)sp->grid_count - 1; a >= 0; a--) { // mixed radix, the last axis fastest
            const sw_axis *ax = &sp->grid[a];
            const char *v = ax->values[rem % ax->values_count];
            rem /= ax->values_count;
            run->sets[run->n_sets++] = dupf("%s=%s", ax->key, v);
        }
        // the id, in grid order: "<last key part>-<value piece>" joined by '_'
        for (unsigned a = 0; a < sp->grid_count; a++) {
            const char *kv = run->sets[sp->set_count + (sp->grid_count - 1 - a)], *eq = strchr(kv, '='),
                       *dotk = sp->grid[a].key;
            for (const char *c = sp->grid[a].key; *c; c++)
                if (*c == '.') dotk = c + 1;
            char piece[64];
            id_piece(eq + 1, piece, sizeof piece);
            idl += (size_t)snprintf(run->id + idl, sizeof run->id - idl, "%s%s-%s", a ? "_" : "", dotk, piece);
            if (idl >= sizeof run->id) return qtk_cli_error("%s: run id longer than %zu characters", file, sizeof run->id - 1);
        }
        if (!sp->grid_count) snprintf(run->id, sizeof run->id, "run");
        for (int q = 0; q < p->n - 1; q++)
            if (!strcmp(p->runs[q].id, run->id))
                return qtk_cli_error("%s: runs %d and %ld get the same id \"%s\"; make the grid values differ in their "
                                     "file names", file, q, r, run->id);
        if (snprintf(run->dir, sizeof run->dir, "%s/runs/%s", p->out, run->id) >= (int)sizeof run->dir)
            return qtk_cli_error("%s: a run folder path is too long", file);
        run->sets[run->n_sets++] = dupf("output.dir=%s%s", run->dir, "");
        char nm[320];
        snprintf(nm, sizeof nm, "%s_%s", p->name, run->id);
        run->sets[run->n_sets++] = dupf("name=%s%s", nm, "");
        for (int k = 0; k < run->n_sets; k++)
            if (!run->sets[k]) return qtk_cli_error("out of memory");
    }
    for (int i = 0; i < p->n; i++) { // every run's config, once the ids are known to differ
        qtk_run_config *c = NULL;
        if (qtk_config_load(p->base, p->runs[i].sets, p->runs[i].n_sets, &c) != QTK_OK)
            return qtk_cli_error("sweep %s, run %s: %s", p->name, p->runs[i].id, qtk_last_error());
        qtk_config_free(c);
    }
    return 0;
}

int qtk_sweep_validate(const char *file) {
    sw_spec *sp = NULL;
    if (qtk_yaml_load(file, &spec_schema, (void **)&sp) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    sw_plan p;
    int rc = expand(sp, file, &p);
    if (p.runs) plan_free(&p);
    qtk_yaml_free(&spec_schema, sp);
    return rc;
}

static int plan_save(const sw_plan *p) {
    cJSON *o = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(o, "runs");
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "base", p->base);
    cJSON_AddStringToObject(o, "out", p->out);
    cJSON_AddStringToObject(o, "cwd", p->cwd);
    cJSON_AddStringToObject(o, "qtk", p->qtk);
    cJSON_AddNumberToObject(o, "retries", p->retries);
    for (int i = 0; i < p->n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "id", p->runs[i].id);
        cJSON_AddStringToObject(r, "dir", p->runs[i].dir);
        cJSON *s = cJSON_AddArrayToObject(r, "sets");
        for (int k = 0; k < p->runs[i].n_sets; k++) cJSON_AddItemToArray(s, cJSON_CreateString(p->runs[i].sets[k]));
        cJSON_AddItemToArray(runs, r);
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/sweep.json", p->out);
    int rc = 0;
    if (qtk_cli_mkdir_p(p->out) != 0) rc = qtk_cli_error("cannot create %s: %s", p->out, strerror(errno));
    else if (qtk_write_json_atomic(path, o) != QTK_OK) rc = qtk_cli_error("%s", qtk_last_error());
    cJSON_Delete(o);
    return rc;
}

static int jstr(const cJSON *o, const char *k, char *dst, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) return -1;
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

// DIR/sweep.json back into a plan; 0, or the exit status of the error
static int plan_load(const char *dir, sw_plan *p) {
    memset(p, 0, sizeof *p);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/sweep.json", dir);
    char *text = qtk_read_text(path, NULL);
    if (!text) return qtk_cli_error("%s: no sweep here (qtk sweep SWEEP.yaml writes it)", path);
    cJSON *o = cJSON_Parse(text);
    free(text);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(o, "runs"), *ret = cJSON_GetObjectItemCaseSensitive(o, "retries");
    int bad = !o || !cJSON_IsArray(runs) || !cJSON_IsNumber(ret) || jstr(o, "name", p->name, sizeof p->name) ||
              jstr(o, "base", p->base, sizeof p->base) || jstr(o, "out", p->out, sizeof p->out) ||
              jstr(o, "cwd", p->cwd, sizeof p->cwd) || jstr(o, "qtk", p->qtk, sizeof p->qtk);
    int n = bad ? 0 : cJSON_GetArraySize(runs);
    if (!bad) {
        p->retries = ret->valueint;
        p->runs = calloc((size_t)(n ? n : 1), sizeof *p->runs);
        bad = !p->runs;
    }
    for (int i = 0; !bad && i < n; i++) {
        const cJSON *r = cJSON_GetArrayItem(runs, i), *s = cJSON_GetObjectItemCaseSensitive(r, "sets");
        sw_run *run = &p->runs[p->n++];
        bad = jstr(r, "id", run->id, sizeof run->id) || jstr(r, "dir", run->dir, sizeof run->dir) || !cJSON_IsArray(s);
        int ns = bad ? 0 : cJSON_GetArraySize(s);
        run->sets = calloc((size_t)(ns ? ns : 1), sizeof *run->sets);
        for (int k = 0; !bad && k < ns; k++) {
            const cJSON *e = cJSON_GetArrayItem(s, k);
            bad = !cJSON_IsString(e) || !run->sets || !(run->sets[run->n_sets++] = strdup(e->valuestring));
        }
    }
    cJSON_Delete(o);
    if (bad) {
        plan_free(p);
        return qtk_cli_error("%s: not a sweep plan qtk wrote (malformed or truncated)", path);
    }
    return 0;
}

// --- run state ---------------------------------------------------------------------------------

// paused: stopped by search.max_steps, as asked; the next submission continues it (never a restart loop)
typedef enum { RS_PENDING, RS_RUNNING, RS_INTERRUPTED, RS_DONE, RS_FAILED, RS_PAUSED, RS_N } run_state;
static const char *rs_name[] = {"pending", "running", "interrupted", "done", "failed", "paused"};

typedef struct {
    run_state st;
    int attempts, exit_code, pid;
    char host[128], job[64];
    double result;     // the searched (else baseline) value of the run's metric; NAN: none
    char metric[24];
} run_info;

// summary.json's status is "done"
// summary.json's status is "done"; *result: the run's metric (summary "metric", its stages under "metrics")
// after the search, else at the baseline; runs written before the metrics object have the flat keys
static int run_done(const sw_run *r, double *result, char *metric, size_t cap) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    char *t = qtk_read_text(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "status"), *m = cJSON_GetObjectItemCaseSensitive(j, "metric");
    int done = cJSON_IsString(s) && !strcmp(s->valuestring, "done");
    const char *met = cJSON_IsString(m) ? m->valuestring : "top1";
    if (result) {
        *result = NAN;
        const char *stages[] = {"searched", "baseline", "fp32"}; // the last stage the run has (fp32: a float-only run)
        for (int i = 0; i < 3 && isnan(*result); i++) {
            char k[64];
            snprintf(k, sizeof k, "%s_%s", stages[i], met);
            const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "metrics");
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ms, stages[i]), met);
            if (!v) v = cJSON_GetObjectItemCaseSensitive(j, k);
            if (cJSON_IsNumber(v)) *result = v->valuedouble;
        }
        snprintf(metric, cap, "%s", met);
    }
    cJSON_Delete(j);
    return done;
}

static void task_state_write(const sw_run *r, const char *state, int attempts, int exit_code) {
    char host[128] = "", job[64] = "", text[512], path[PATH_MAX + 32];
    gethostname(host, sizeof host - 1);
    const char *aj = getenv("SLURM_ARRAY_JOB_ID"), *at = getenv("SLURM_ARRAY_TASK_ID"), *j = getenv("SLURM_JOB_ID");
    if (aj && at) snprintf(job, sizeof job, "%s_%s", aj, at);
    else if (j) snprintf(job, sizeof job, "%s", j);
    char gpus[64];
    snprintf(gpus, sizeof gpus, "%s", getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "");
    for (char *c = gpus; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 32) *c = '_';
    snprintf(text, sizeof text,
             "{\"state\": \"%s\", \"attempts\": %d, \"exit\": %d, \"host\": \"%s\", \"pid\": %d, \"job\": \"%s\", "
             "\"gpus\": \"%s\", \"updated\": %ld}\n",
             state, attempts, exit_code, host, (int)getpid(), job, gpus, (long)time(NULL));
    snprintf(path, sizeof path, "%s/sweep_task.json", r->dir);
    if (qtk_write_text_atomic(path, text) != QTK_OK) fprintf(stderr, "qtk sweep: %s\n", qtk_last_error());
}

// the output of a shell command (stdout + stderr) into buf; its exit status (-1 if it could not run)
static int shell(const char *cmd, char *buf, size_t cap) {
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    size_t n = 0;
    while (n + 1 < cap && !feof(f)) {
        size_t m = fread(buf + n, 1, cap - 1 - n, f);
        if (!m) break;
        n += m;
    }
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// the last submission's job ids (slurm/jobs.json); 0 when one is recorded
typedef struct {
    char array[32], table[32];
} sw_jobs;

static int jobs_read(const char *out, sw_jobs *jb) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/slurm/jobs.json", out);
    char *t = qtk_read_text(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    int bad = jstr(j, "array", jb->array, sizeof jb->array) || jstr(j, "table", jb->table, sizeof jb->table);
    cJSON_Delete(j);
    if (bad) jb->array[0] = jb->table[0] = 0;
    return bad ? -1 : 0;
}

// Slurm's view of the submission's jobs: lines "<array>_<task> STATE" from squeue (NULL when unavailable)
static char *squeue_text(const sw_jobs *jb) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "squeue -h -r -j %s,%s -o '%%i %%T' 2>/dev/null", jb->array, jb->table);
    char *buf = malloc(1 << 16);
    if (buf && shell(cmd, buf, 1 << 16) != 0) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

// the state of job "<array>_<task>" in squeue's text: 1 running, 2 pending, 0 absent
static int queued(const char *sq, const char *job) {
    if (!sq || !job[0]) return 0;
    size_t n = strlen(job);
    for (const char *l = sq; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
        if (!strncmp(l, job, n) && l[n] == ' ') return !strncmp(l + n + 1, "RUNNING", 7) || !strncmp(l + n + 1, "COMPLETING", 10) ? 1 : 2;
    return 0;
}

static void run_info_get(const sw_run *r, const char *sq, run_info *ri) {
    memset(ri, 0, sizeof *ri);
    if (run_done(r, &ri->result, ri->metric, sizeof ri->metric)) {
        ri->st = RS_DONE;
    }
    char path[PATH_MAX + 32], state[32] = "";
    snprintf(path, sizeof path, "%s/sweep_task.json", r->dir);
    char *t = qtk_read_text(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    if (j) {
        jstr(j, "state", state, sizeof state);
        jstr(j, "host", ri->host, sizeof ri->host);
        jstr(j, "job", ri->job, sizeof ri->job);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "attempts"), *e = cJSON_GetObjectItemCaseSensitive(j, "exit"),
                    *p = cJSON_GetObjectItemCaseSensitive(j, "pid");
        ri->attempts = cJSON_IsNumber(a) ? a->valueint : 0;
        ri->exit_code = cJSON_IsNumber(e) ? e->valueint : 0;
        ri->pid = cJSON_IsNumber(p) ? p->valueint : 0;
        cJSON_Delete(j);
    }
    if (ri->st == RS_DONE) return;
    if (!strcmp(state, "failed")) ri->st = RS_FAILED;
    else if (!strcmp(state, "paused")) ri->st = RS_PAUSED;
    else if (!strcmp(state, "running")) {
        // alive: its Slurm job still queued or running, or (no job) its process on this host
        char me[128] = "";
        gethostname(me, sizeof me - 1);
        int alive = ri->job[0] ? queued(sq, ri->job) != 0 : (!strcmp(me, ri->host) && ri->pid > 0 && kill(ri->pid, 0) == 0);
        ri->st = alive ? RS_RUNNING : RS_INTERRUPTED;
    } else {
        snprintf(path, sizeof path, "%s/search.ckpt", r->dir);
        ri->st = access(path, F_OK) == 0 ? RS_INTERRUPTED : RS_PENDING;
    }
}

// --- one run with retries (an array task) --------------------------------------------------------

// `qtk run BASE --set ...` as a child writing to DIR/run.log; its exit status (128 + signal when killed)
static int run_child(const sw_plan *p, const sw_run *r) {
    char log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/run.log", r->dir);
    char **argv = calloc((size_t)(2 * r->n_sets + 4), sizeof *argv);
    if (!argv) return 1;
    int k = 0;
    argv[k++] = (char *)p->qtk;
    argv[k++] = "run";
    argv[k++] = (char *)p->base;
    for (int i = 0; i < r->n_sets; i++) {
        argv[k++] = "--set";
        argv[k++] = r->sets[i];
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (chdir(p->cwd) != 0) _exit(126);
        execv(p->qtk, argv);
        _exit(127);
    }
    free(argv);
    if (pid < 0) return 1;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int cmd_task(const char *dir, const char *index) {
    sw_plan p;
    int rc = plan_load(dir, &p);
    if (rc) return rc;
    char *end;
    long i = strtol(index, &end, 10);
    if (*end || end == index || i < 0 || i >= p.n) {
        plan_free(&p);
        return qtk_cli_usage_error("sweep task: index \"%s\" is not a run of %s (0..%d)", index, dir, p.n - 1);
    }
    const sw_run *r = &p.runs[i];
    if (qtk_cli_mkdir_p(r->dir) != 0) {
        plan_free(&p);
        return qtk_cli_error("cannot create %s: %s", r->dir, strerror(errno));
    }
    // one task per run folder at a time (a second submission, or a local and a Slurm sweep over the same
    // folder): the lock is held until this process exits
    char lock[PATH_MAX + 16];
    snprintf(lock, sizeof lock, "%s/.task.lock", r->dir);
    int lfd = open(lock, O_RDWR | O_CREAT, 0644);
    if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        printf("qtk sweep %s: run %ld %s is being run by another task (%s held); leaving it to that one\n", p.name, i,
               r->id, lock);
        plan_free(&p);
        return 0;
    }
    if (run_done(r, NULL, NULL, 0)) {
        printf("qtk sweep %s: run %ld %s already done\n", p.name, i, r->id);
        plan_free(&p);
        return 0;
    }
    // attempts so far (a resubmission after failures starts a fresh retry budget)
    run_info prev;
    run_info_get(r, NULL, &prev);
    int attempts = prev.attempts, tries = 0, code = 0;
    // in a Slurm allocation: OpenMP / OpenBLAS threads = the CPUs granted (not every core of the node), unless set
    const char *cpus = getenv("SLURM_CPUS_PER_TASK") ? getenv("SLURM_CPUS_PER_TASK") : getenv("SLURM_CPUS_ON_NODE");
    if (cpus && atoi(cpus) > 0) {
        setenv("OMP_NUM_THREADS", cpus, 0);
        setenv("OPENBLAS_NUM_THREADS", cpus, 0);
    }
    const char *fault = getenv("QTK_SWEEP_FAIL_ONCE"); // testing aid: this run id fails its first attempt
    while (tries <= p.retries) {
        task_state_write(r, "running", attempts + 1, 0);
        printf("qtk sweep %s: run %ld %s, attempt %d of %d (log: %s/run.log)\n", p.name, i, r->id, tries + 1, p.retries + 1,
               r->dir);
        fflush(stdout);
        char marker[PATH_MAX + 32];
        snprintf(marker, sizeof marker, "%s/.injected_failure", r->dir);
        if (fault && !strcmp(fault, r->id) && access(marker, F_OK) != 0) {
            FILE *f = fopen(marker, "w");
            if (f) fclose(f);
            printf("  QTK_SWEEP_FAIL_ONCE: this attempt fails on purpose\n");
            code = 3;
        } else code = run_child(&p, r);
        attempts++;
        if (code == 0 && run_done(r, NULL, NULL, 0)) {
            task_state_write(r, "done", attempts, 0);
            printf("  done\n");
            plan_free(&p);
            return 0;
        }
        if (code == 0) { // paused by search.max_steps: as asked; the next submission continues it
            task_state_write(r, "paused", attempts, 0);
            printf("  paused by search.max_steps; run the sweep again to continue it\n");
            plan_free(&p);
            return 0;
        }
        printf("  exit status %d%s\n", code, tries < p.retries ? "; retrying" : "");
        tries++;
    }
    task_state_write(r, "failed", attempts, code);
    printf("qtk sweep %s: run %ld %s failed after %d attempts (exit status %d); see %s/run.log\n", p.name, i, r->id, tries,
           code, r->dir);
    plan_free(&p);
    return 1;
}

// --- table and status --------------------------------------------------------------------------

// DIR/table.md and DIR/table.csv: every run with its state (failures marked), then qtk table's results
static int cmd_table(const char *dir) {
    sw_plan p;
    int rc = plan_load(dir, &p);
    if (rc) return rc;
    char path[PATH_MAX + 32], tmp[PATH_MAX + 32], runs[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/table.md", p.out);
    snprintf(tmp, sizeof tmp, "%s/table.md.new", p.out);
    snprintf(runs, sizeof runs, "%s/runs", p.out);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        plan_free(&p);
        return qtk_cli_error("cannot write %s: %s", tmp, strerror(errno));
    }
    int count[RS_N] = {0};
    run_info *ri = calloc((size_t)(p.n ? p.n : 1), sizeof *ri);
    for (int i = 0; ri && i < p.n; i++) {
        run_info_get(&p.runs[i], NULL, &ri[i]);
        count[ri[i].st]++;
    }
    fprintf(o, "# Sweep %s\n\n%d runs: %d done, %d failed, %d paused (search.max_steps), %d not finished (pending, running or "
            "interrupted)\n\n", p.name, p.n, count[RS_DONE], count[RS_FAILED], count[RS_PAUSED],
            p.n - count[RS_DONE] - count[RS_FAILED] - count[RS_PAUSED]);
    fprintf(o, "| # | run | state | attempts | last exit | settings |\n|---|---|---|---|---|---|\n");
    for (int i = 0; ri && i < p.n; i++) {
        const sw_run *r = &p.runs[i];
        fprintf(o, "| %d | %s | %s | %d | %d | ", i, r->id, ri[i].st == RS_DONE ? "done" : ri[i].st == RS_FAILED ? "**FAILED**" :
                                                                 ri[i].st == RS_PENDING ? "**not run**" : ri[i].st == RS_PAUSED ? "paused" : "**not finished**",
                ri[i].attempts, ri[i].exit_code);
        for (int k = 0; k < r->n_sets - 2; k++) fprintf(o, "%s`%s`", k ? " " : "", r->sets[k]); // not output.dir, name
        fprintf(o, " |\n");
    }
    free(ri);
    struct stat sb;
    int have_runs = stat(runs, &sb) == 0;
    char *dirs[1] = {runs};
    if (have_runs && count[RS_DONE] + count[RS_INTERRUPTED] + count[RS_PAUSED] > 0) {
        fprintf(o, "\n## Results (`qtk table %s`)\n\n", runs);
        fflush(o);
        rc = qtk_table_print(o, dirs, 1, 0, NULL);
    } else fprintf(o, "\nNo run has finished yet.\n");
    int cerr = fclose(o) != 0;
    if (!rc && cerr) rc = qtk_cli_error("cannot write %s", tmp);
    if (!rc && rename(tmp, path) != 0) rc = qtk_cli_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (!rc && have_runs && count[RS_DONE] + count[RS_INTERRUPTED] + count[RS_PAUSED] > 0) { // the results as CSV beside it
        snprintf(path, sizeof path, "%s/table.csv", p.out);
        FILE *c = fopen(path, "w");
        if (!c || qtk_table_print(c, dirs, 1, 1, NULL) != 0) rc = qtk_cli_error("cannot write %s", path);
        if (c) fclose(c);
    }
    if (!rc) printf("qtk sweep %s: wrote %s/table.md (%d of %d runs done, %d failed%s)\n", p.name, p.out, count[RS_DONE], p.n,
                    count[RS_FAILED], count[RS_PAUSED] ? ", some paused by search.max_steps: run the sweep again" : "");
    plan_free(&p);
    return rc;
}

static int cmd_status(const char *dir) {
    sw_plan p;
    int rc = plan_load(dir, &p);
    if (rc) return rc;
    sw_jobs jb;
    char *sq = jobs_read(p.out, &jb) == 0 ? squeue_text(&jb) : NULL;
    int count[RS_N] = {0};
    printf("| # | run | state | attempts | last exit | job | result |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < p.n; i++) {
        run_info ri;
        run_info_get(&p.runs[i], sq, &ri);
        count[ri.st]++;
        char job[48]; // queued in the current submission, not started yet
        snprintf(job, sizeof job, "%s_%d", jb.array, i);
        if (ri.st == RS_PENDING && sq && queued(sq, job)) snprintf(ri.job, sizeof ri.job, "%s (queued)", job);
        printf("| %d | %s | %s | %d | %d | %s | ", i, p.runs[i].id, rs_name[ri.st], ri.attempts, ri.exit_code,
               ri.job[0] ? ri.job : "-");
        if (ri.st == RS_DONE && !isnan(ri.result)) printf("%s %.2f |\n", ri.metric, ri.result);
        else printf("- |\n");
    }
    printf("\n%s: %d runs: %d done, %d running, %d pending, %d interrupted, %d paused, %d failed%s\n", p.name, p.n,
           count[RS_DONE], count[RS_RUNNING], count[RS_PENDING], count[RS_INTERRUPTED], count[RS_PAUSED], count[RS_FAILED],
           sq ? "" : " (no Slurm queue consulted: none submitted, or squeue unavailable)");
    free(sq);
    plan_free(&p);
    return 0;
}

// scancel the sweep's array and table jobs (slurm/jobs.json); the runs keep their checkpoints
static int cmd_cancel(const char *dir) {
    sw_plan p;
    int rc = plan_load(dir, &p);
    if (rc) return rc;
    sw_jobs jb;
    char cmd[128], outb[1024];
    if (jobs_read(p.out, &jb) != 0) rc = qtk_cli_error("%s/slurm/jobs.json: no Slurm submission recorded", p.out);
    else {
        snprintf(cmd, sizeof cmd, "scancel %s %s 2>&1", jb.array, jb.table);
        int st = shell(cmd, outb, sizeof outb);
        if (st != 0) rc = qtk_cli_error("scancel failed (exit %d): %s", st, outb);
        else printf("cancelled array job %s and table job %s; submit the sweep again to resume\n", jb.array, jb.table);
    }
    plan_free(&p);
    return rc;
}

// --- backends ------------------------------------------------------------------------------------

// "0-3,5,7-9" for the sorted indices
static void array_spec(const int *idx, int n, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n && k < cap;) {
        int j = i;
        while (j + 1 < n && idx[j + 1] == idx[j] + 1) j++;
        k += (size_t)snprintf(out + k, cap - k, j > i ? "%s%d-%d" : "%s%d", k ? "," : "", idx[i], idx[j]);
        i = j + 1;
    }
}

static void sbatch_header(FILE *f, const sw_spec *sp, const char *job, const char *output, int task_resources) {
    const sw_slurm *s = &sp->slurm;
    fprintf(f, "#!/bin/bash\n#SBATCH --job-name=%s\n#SBATCH --output=%s\n", job, output);
    if (s->partition) fprintf(f, "#SBATCH --partition=%s\n", s->partition);
    if (s->account) fprintf(f, "#SBATCH --account=%s\n", s->account);
    if (task_resources) {
        if (s->time) fprintf(f, "#SBATCH --time=%s\n", s->time);
        if (s->mem) fprintf(f, "#SBATCH --mem=%s\n", s->mem);
        if (s->cpus > 0) fprintf(f, "#SBATCH --cpus-per-task=%d\n", s->cpus);
        if (s->gpus > 0) fprintf(f, "#SBATCH --gres=gpu:%d\n", s->gpus);
    } else fprintf(f, "#SBATCH --time=00:30:00\n#SBATCH --cpus-per-task=1\n");
    for (unsigned i = 0; i < s->sbatch_count; i++) fprintf(f, "#SBATCH %s\n", s->sbatch[i]);
}

static int backend_slurm(const sw_spec *sp, const sw_plan *p, const int *todo, int nt, int dry) {
    char sdir[PATH_MAX + 16], arr[PATH_MAX + 32], tab[PATH_MAX + 32], spec[8192], job[192], outp[PATH_MAX + 64];
    snprintf(sdir, sizeof sdir, "%s/slurm", p->out);
    snprintf(arr, sizeof arr, "%s/array.sbatch", sdir);
    snprintf(tab, sizeof tab, "%s/table.sbatch", sdir);
    if (qtk_cli_mkdir_p(sdir) != 0) return qtk_cli_error("cannot create %s: %s", sdir, strerror(errno));
    array_spec(todo, nt, spec, sizeof spec - 16);
    if (sp->slurm.max_parallel > 0) snprintf(spec + strlen(spec), 16, "%%%d", sp->slurm.max_parallel);
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(k ? tab : arr, "w");
        if (!f) return qtk_cli_error("cannot write %s: %s", k ? tab : arr, strerror(errno));
        snprintf(job, sizeof job, "qtk-%s%s", p->name, k ? "-table" : "");
        snprintf(outp, sizeof outp, "%s/%s", sdir, k ? "table_%j.out" : "%A_%a.out");
        sbatch_header(f, sp, job, outp, !k);
        if (!k) fprintf(f, "#SBATCH --array=%s\n", spec);
        fprintf(f, "# written by qtk sweep: %s\n",
                k ? "the combined table once the array has ended (afterany)" : "one array task per run of sweep.json");
        for (unsigned i = 0; i < sp->slurm.setup_count; i++) fprintf(f, "%s\n", sp->slurm.setup[i]);
        fprintf(f, "cd '%s' || exit 1\n", p->cwd);
        if (k) fprintf(f, "exec '%s' sweep table '%s'\n", p->qtk, p->out);
        else fprintf(f, "exec '%s' sweep task '%s' \"$SLURM_ARRAY_TASK_ID\"\n", p->qtk, p->out);
        if (fclose(f) != 0) return qtk_cli_error("cannot write %s", k ? tab : arr);
    }
    if (dry) {
        printf("\nwould submit %s (array %s) and then %s with --dependency=afterany:<array job>\n", arr, spec, tab);
        char *t = qtk_read_text(arr, NULL);
        if (t) printf("---- %s\n%s----\n", arr, t);
        free(t);
        return 0;
    }
    char cmd[PATH_MAX * 2], out1[256], out2[256];
    snprintf(cmd, sizeof cmd, "sbatch --parsable '%s' 2>&1", arr);
    int st = shell(cmd, out1, sizeof out1);
    if (st != 0) return qtk_cli_error("sbatch %s failed (exit %d): %s", arr, st, out1[0] ? out1 : "sbatch not found?");
    char *semi = strchr(out1, ';');
    if (semi) *semi = 0; // "jobid;cluster"
    snprintf(cmd, sizeof cmd, "sbatch --parsable --dependency=afterany:%s '%s' 2>&1", out1, tab);
    st = shell(cmd, out2, sizeof out2);
    if (st != 0) return qtk_cli_error("array job %s submitted, but the table job failed (exit %d): %s", out1, st, out2);
    if ((semi = strchr(out2, ';'))) *semi = 0;
    char path[PATH_MAX + 32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "array", out1);
    cJSON_AddStringToObject(o, "table", out2);
    cJSON_AddStringToObject(o, "tasks", spec);
    cJSON_AddNumberToObject(o, "submitted", (double)time(NULL));
    snprintf(path, sizeof path, "%s/jobs.json", sdir);
    qtk_status wst = qtk_write_json_atomic(path, o);
    cJSON_Delete(o);
    if (wst != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    printf("submitted array job %s (%d runs: %s) and table job %s (afterany)\n"
           "  qtk sweep status %s\n  results: %s/table.md once the table job has run\n",
           out1, nt, spec, out2, p->out, p->out);
    return 0;
}

// one task per run, at most `slots` at once; with several GPUs in CUDA_VISIBLE_DEVICES, one per GPU
static int backend_local(const sw_spec *sp, const sw_plan *p, const int *todo, int nt) {
    char gpus[64][32];
    int ng = 0;
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    if (cvd && *cvd) {
        char tmp[2048];
        snprintf(tmp, sizeof tmp, "%s", cvd);
        for (char *s = strtok(tmp, ","); s && ng < 64; s = strtok(NULL, ",")) snprintf(gpus[ng++], sizeof gpus[0], "%s", s);
    }
    int slots = sp->parallel > 0 ? sp->parallel : ng > 1 ? ng : 1;
    printf("running %d runs, %d at a time%s\n", nt, slots, ng > 1 && sp->parallel <= 0 ? " (one per GPU)" : "");
    pid_t *pid = calloc((size_t)slots, sizeof *pid);
    int next = 0, running = 0, failed = 0;
    if (!pid) return qtk_cli_error("out of memory");
    while (next < nt || running) {
        for (int s = 0; s < slots && next < nt; s++) {
            if (pid[s]) continue;
            char idx[16];
            snprintf(idx, sizeof idx, "%d", todo[next++]);
            fflush(stdout);
            pid_t c = fork();
            if (c == 0) {
                if (ng > 1 && sp->parallel <= 0) setenv("CUDA_VISIBLE_DEVICES", gpus[s % ng], 1);
                execl(p->qtk, p->qtk, "sweep", "task", p->out, idx, (char *)NULL);
                _exit(127);
            }
            if (c < 0) {
                failed++;
                continue;
            }
            pid[s] = c;
            running++;
        }
        int st;
        pid_t done = wait(&st);
        if (done < 0) break;
        for (int s = 0; s < slots; s++)
            if (pid[s] == done) {
                pid[s] = 0;
                running--;
                failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            }
    }
    free(pid);
    int rc = cmd_table(p->out);
    if (failed) return qtk_cli_error("%d of %d runs failed (see their run.log; qtk sweep status %s)", failed, nt, p->out);
    return rc;
}

// --- the command -------------------------------------------------------------------------------

static const char *const sweep_about =
    "Expands a grid of `qtk run`s from one base config and runs them, locally (at most `parallel` at once;\n"
    "default one per GPU of CUDA_VISIBLE_DEVICES, else one) or on Slurm as one job array (one task per\n"
    "run) plus a job that writes the combined table once the array has ended. Finished runs are skipped\n"
    "on every resubmission; an interrupted run resumes from its search.ckpt, and one paused by\n"
    "search.max_steps goes on by that many block steps per submission; a failing run is retried\n"
    "`retries` times, and the table marks runs that still failed. The sweep file:\n\n"
    "  name: bits_seeds\n"
    "  base: experiments/configs/fashion_w4a8.yaml\n"
    "  out: results/sweeps/bits_seeds          # sweep.json, runs/<id>/, table.md, slurm/\n"
    "  grid:                                   # any config keys; the last varies fastest\n"
    "    - {key: quantization.w_bits, values: [3, 4]}\n"
    "    - {key: seed, values: [0, 1, 2]}\n"
    "  set: [search.passes=10]                 # for every run\n"
    "  retries: 1\n"
    "  parallel: 0\n"
    "  slurm: {partition: gpu, gpus: 1, cpus: 8, mem: 32G, time: \"04:00:00\", account: proj,\n"
    "          max_parallel: 8, sbatch: [\"--qos=normal\"], setup: [\"module load cuda\"]}\n\n"
    "status shows each run's state (pending, running, interrupted, done, failed, paused) from its folder\n"
    "and squeue, with its result; table writes DIR/table.md and DIR/table.csv; cancel scancels the\n"
    "submitted jobs (resubmit to resume); task runs one run with its retries (the array tasks run it;\n"
    "QTK_SWEEP_FAIL_ONCE=<run id> makes that run's first attempt fail, for testing retries).";

int qtk_cmd_sweep(int argc, char **argv) {
    const char *backend = "local";
    int dry = 0, n_pos;
    const qtk_opt opts[] = {
        {"backend", QTK_OPT_STR, &backend, "local|slurm", 0, 0, "run here, or as one Slurm job array (local)"},
        {"dry-run", QTK_OPT_FLAG, &dry, NULL, 0, 0, "list the runs (and write, but not submit, the sbatch scripts)"},
    };
    const char *sub = argc > 1 ? argv[1] : "";
    const int is_task = !strcmp(sub, "task"), is_dir = !strcmp(sub, "status") || !strcmp(sub, "table") || !strcmp(sub, "cancel");
    char name[32];
    snprintf(name, sizeof name, "sweep %s", is_task || is_dir ? sub : "");
    const qtk_cmd_spec spec = {
        is_task || is_dir ? name : "sweep",
        is_task ? "DIR INDEX" : is_dir ? "DIR" : "SWEEP.yaml [--backend local|slurm] [--dry-run]\n"
                                                 "       qtk sweep status DIR | table DIR | cancel DIR | task DIR INDEX",
        sweep_about, is_task || is_dir ? NULL : opts, is_task || is_dir ? 0 : 2, is_task ? 2 : 1, is_task ? 2 : 1};
    char *pos[2];
    int rc = is_task || is_dir ? qtk_opts_parse(&spec, argc - 1, argv + 1, pos, &n_pos)
                               : qtk_opts_parse(&spec, argc, argv, pos, &n_pos);
    if (rc) return rc < 0 ? 0 : rc;
    if (is_task) return cmd_task(pos[0], pos[1]);
    if (is_dir) return !strcmp(sub, "status") ? cmd_status(pos[0]) : !strcmp(sub, "table") ? cmd_table(pos[0]) : cmd_cancel(pos[0]);
    const char *file = pos[0];
    if (strcmp(backend, "local") && strcmp(backend, "slurm"))
        return qtk_cli_usage_error("sweep: --backend takes local or slurm, got \"%s\"", backend);
    sw_spec *sp = NULL;
    if (qtk_yaml_load(file, &spec_schema, (void **)&sp) != QTK_OK) return qtk_cli_error("%s", qtk_last_error());
    sw_plan p;
    rc = expand(sp, file, &p);
    int *todo = rc ? NULL : calloc((size_t)(p.n ? p.n : 1), sizeof *todo), nt = 0;
    if (!rc && !todo) rc = qtk_cli_error("out of memory");
    if (!rc && !dry && !strcmp(backend, "slurm")) { // not while the last submission is still queued or running
        sw_jobs jb;
        char *sq = jobs_read(p.out, &jb) == 0 ? squeue_text(&jb) : NULL;
        if (sq && sq[0])
            rc = qtk_cli_error("%s: this sweep's jobs are still queued or running (squeue: %.200s); wait for them, or "
                               "qtk sweep cancel %s, then submit again", file, sq, p.out);
        free(sq);
    }
    if (!rc) rc = plan_save(&p);
    if (!rc) {
        printf("sweep %s: %d runs from %s into %s/runs\n", p.name, p.n, p.base, p.out);
        for (int i = 0; i < p.n; i++) {
            int done = run_done(&p.runs[i], NULL, NULL, 0);
            if (!done) todo[nt++] = i;
            printf("  %3d %-40s %s", i, p.runs[i].id, done ? "done (skipped)" : "to run");
            for (int k = 0; k < p.runs[i].n_sets - 2; k++) printf("%s%s", k ? " " : "   ", p.runs[i].sets[k]);
            printf("\n");
        }
    }
    if (!rc && nt == 0) {
        printf("every run is done\n");
        if (!dry) rc = cmd_table(p.out);
    } else if (!rc && !strcmp(backend, "slurm")) rc = backend_slurm(sp, &p, todo, nt, dry);
    else if (!rc && !dry) rc = backend_local(sp, &p, todo, nt);
    free(todo);
    if (p.runs) plan_free(&p);
    qtk_yaml_free(&spec_schema, sp);
    return rc;
}
