#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../core/timer.h"

void qtk_format_duration(double s, char *buf, int size) {
    if (!(s >= 0)) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, (size_t)size, "%ld h %02ld min", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, (size_t)size, "%ld min %02ld s", t / 60, t % 60);
    else snprintf(buf, (size_t)size, "%ld s", t);
}

int qtk_progress_level = 1;

void qtk_progress_start(qtk_progress *p, const char *label, long long total) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 1;
    p->t0 = p->last_print = qtk_now();
    p->tty = isatty(fileno(stderr));
    p->every_s = qtk_progress_level >= 2 ? 1 : 30;
}

void qtk_progress_update(qtk_progress *p, long long done, const char *extra) {
    p->done = done;
    if (qtk_progress_level <= 0) return;
    double t = qtk_now(), el = t - p->t0;
    if (done < p->total && t - p->last_print < (p->tty ? 0.2 : p->every_s)) return;
    if (!p->tty && done == p->total && p->every_s > 0) return; // the end line says it
    p->last_print = t;
    char eta[32] = "?";
    if (done > p->offset) qtk_format_duration(el / (double)(done - p->offset) * (double)(p->total - done), eta, sizeof eta);
    int pct = (int)(100 * done / p->total);
    if (p->tty) {
        char bar[21];
        int fill = (int)(20 * done / p->total);
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = '\0';
        fprintf(stderr, "\r  %-12s [%s] %3d%% %lld/%lld  ETA %s%s%s\033[K", p->label, bar, pct, done, p->total, eta,
                extra ? "  " : "", extra ? extra : "");
    } else
        fprintf(stderr, "  %s: %lld/%lld (%d%%), ETA %s%s%s\n", p->label, done, p->total, pct, eta, extra ? ", " : "",
                extra ? extra : "");
    fflush(stderr);
}

double qtk_progress_end(qtk_progress *p) {
    double el = qtk_now() - p->t0;
    char d[32];
    qtk_format_duration(el, d, sizeof d);
    if (qtk_progress_level > 0) {
        fprintf(stderr, "%s  %s: %lld done in %s\n", p->tty ? "\r\033[K" : "", p->label, p->done, d);
        fflush(stderr);
    }
    return el;
}
