// Command-line options from one table per command: getopt_long parses them, the same table prints the
// usage, and every value is checked where it is read (whole numbers in their range, --set key=value).
#ifndef QTK_OPTS_H
#define QTK_OPTS_H

#include <stdio.h>

typedef enum {
    QTK_OPT_FLAG, // no value: *(int *)dst = 1
    QTK_OPT_STR,  // *(const char **)dst = the value
    QTK_OPT_INT,  // *(int *)dst = a whole number in [lo, hi]
    QTK_OPT_FLOAT, // *(float *)dst = a number in [lo, hi]
    QTK_OPT_U64,  // *(unsigned long long *)dst = a non-negative whole number (a seed)
    QTK_OPT_SET,  // --set key=value, repeatable: appended to a qtk_opt_sets
    QTK_OPT_LIST, // repeatable: each value appended to a qtk_opt_sets
} qtk_opt_kind;

#define QTK_OPT_MAX_SETS 64
typedef struct {
    char *v[QTK_OPT_MAX_SETS];
    int n;
} qtk_opt_sets;

typedef struct {
    const char *name;  // the long name without its dashes ("ctx")
    qtk_opt_kind kind;
    void *dst;
    const char *arg;   // the value's placeholder in the usage ("N", "FILE")
    double lo, hi;     // QTK_OPT_INT, QTK_OPT_FLOAT: the range
    const char *help;  // its line in the usage
} qtk_opt;

typedef struct {
    const char *cmd;      // "run", "sweep status"
    const char *synopsis; // the usage line after "qtk <cmd> "
    const char *about;    // what the command does (printed by --help)
    const qtk_opt *opts;
    int n_opts;
    int min_pos, max_pos; // positional arguments
} qtk_cmd_spec;

// Parses argv[1..argc) (argv[0] is the command name): options into their destinations, the positional
// arguments, in order, into pos (max_pos of them at most). -h / --help prints the usage to stdout and
// returns -1; a bad option, value or count of arguments prints one usage error and returns 2; else 0.
int qtk_opts_parse(const qtk_cmd_spec *spec, int argc, char **argv, char **pos, int *n_pos);
// The usage: synopsis, about, then one line per option.
void qtk_opts_usage(const qtk_cmd_spec *spec, FILE *f);

#endif
