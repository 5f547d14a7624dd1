// Command-line options through getopt_long, from one table per command (opts.h).
#include "opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void qtk_opts_usage(const qtk_cmd_spec *spec, FILE *f) {
    fprintf(f, "usage: qtk %s %s\n", spec->cmd, spec->synopsis);
    if (spec->about) fprintf(f, "\n%s\n", spec->about);
    if (!spec->n_opts) return;
    fprintf(f, "\noptions:\n");
    for (int i = 0; i < spec->n_opts; i++) {
        const qtk_opt *o = &spec->opts[i];
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s%s", o->name, o->kind == QTK_OPT_FLAG ? "" : " ", o->kind == QTK_OPT_FLAG ? "" : o->arg);
        fprintf(f, "  %-22s %s\n", lhs, o->help);
    }
    fprintf(f, "  %-22s %s\n", "-h, --help", "this help");
}

int qtk_opts_parse(const qtk_cmd_spec *spec, int argc, char **argv, char **pos, int *n_pos) {
    struct option *lo = calloc((size_t)spec->n_opts + 2, sizeof *lo);
    if (!lo) return qtk_cli_error("out of memory");
    for (int i = 0; i < spec->n_opts; i++)
        lo[i] = (struct option){spec->opts[i].name, spec->opts[i].kind == QTK_OPT_FLAG ? no_argument : required_argument,
                                NULL, 256 + i};
    lo[spec->n_opts] = (struct option){"help", no_argument, NULL, 'h'};
    *n_pos = 0;
    int rc = 0, c, li;
    optind = 0; // a full re-initialization of getopt (a command may parse twice)
    opterr = 0; // its errors are ours: one line, naming the option
    // "-": positional arguments come back in order as value 1, so none is lost to permutation
    while (!rc && (c = getopt_long(argc, argv, "-h", lo, &li)) != -1) {
        if (c == 'h') {
            qtk_opts_usage(spec, stdout);
            rc = -1;
        } else if (c == 1) {
            if (*n_pos >= spec->max_pos)
                rc = spec->max_pos ? qtk_cli_usage_error("%s takes %d argument%s, got another: \"%s\"", spec->cmd,
                                                         spec->max_pos, spec->max_pos > 1 ? "s" : "", optarg)
                                   : qtk_cli_usage_error("%s takes no arguments, got \"%s\"", spec->cmd, optarg);
            else pos[(*n_pos)++] = optarg;
        } else if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (optopt >= 256 && strchr(bad, '=')) rc = qtk_cli_usage_error("%s: %s takes no value", spec->cmd, bad);
            else if (optopt >= 256) rc = qtk_cli_usage_error("%s: %s needs a value", spec->cmd, bad); // a known option
            else rc = qtk_cli_usage_error("%s: unknown option \"%s\"", spec->cmd, bad);
        } else {
            const qtk_opt *o = &spec->opts[c - 256];
            char name[80];
            snprintf(name, sizeof name, "--%s", o->name);
            switch (o->kind) {
            case QTK_OPT_FLAG: *(int *)o->dst = 1; break;
            case QTK_OPT_STR: *(const char **)o->dst = optarg; break;
            case QTK_OPT_INT: rc = qtk_cli_int_arg(name, optarg, (long)o->lo, (long)o->hi, (int *)o->dst); break;
            case QTK_OPT_U64: {
                char *end;
                errno = 0;
                unsigned long long x = strtoull(optarg, &end, 10);
                if (errno || *end || end == optarg || optarg[0] == '-')
                    rc = qtk_cli_usage_error("%s needs a non-negative integer, got \"%s\"", name, optarg);
                else *(unsigned long long *)o->dst = x;
                break;
            }
            case QTK_OPT_FLOAT: {
                char *end;
                double x = strtod(optarg, &end);
                if (*end || end == optarg || !(x >= o->lo && x <= o->hi))
                    rc = qtk_cli_usage_error("%s takes a number in %g..%g, got \"%s\"", name, o->lo, o->hi, optarg);
                else *(float *)o->dst = (float)x;
                break;
            }
            case QTK_OPT_SET:
            case QTK_OPT_LIST: {
                qtk_opt_sets *s = o->dst;
                if (s->n == QTK_OPT_MAX_SETS) rc = qtk_cli_usage_error("at most %d --%s", QTK_OPT_MAX_SETS, o->name);
                else if (o->kind == QTK_OPT_LIST || !(rc = qtk_cli_set_arg(optarg))) s->v[s->n++] = optarg;
                break;
            }
            }
        }
    }
    free(lo);
    if (!rc && *n_pos < spec->min_pos)
        rc = qtk_cli_usage_error("%s needs %s (usage: qtk %s %s)", spec->cmd, spec->min_pos > 1 ? "more arguments" : "an argument",
                                 spec->cmd, spec->synopsis);
    return rc;
}
