// Progress reporting for long CLI phases (calibration, evaluation, search), on stderr (stdout keeps
// the results): one updating bar with ETA on a terminal; plain lines otherwise, at most one every
// `every_s` seconds (30 by default, so logs of batch jobs stay short; 1 with --verbose; 0: every
// update, as for search steps) and a final line with the time. --quiet: none of it.
#ifndef QTK_PROGRESS_H
#define QTK_PROGRESS_H

typedef struct {
    char label[48];
    long long total, done;
    long long offset;   // units already done when this process started (resumed work): not in the ETA rate
    double t0, last_print;
    double every_s;
    int tty;
} qtk_progress;

// 0: --quiet, 1: default, 2: --verbose (set by qtk_main from the command line)
extern int qtk_progress_level;

// Starts a phase of `total` units (images, steps).
void qtk_progress_start(qtk_progress *p, const char *label, long long total);
// Reports that `done` units are finished; extra (may be NULL) is appended.
void qtk_progress_update(qtk_progress *p, long long done, const char *extra);
// Ends the phase with a final line giving the elapsed time; returns it in seconds.
double qtk_progress_end(qtk_progress *p);

// "ETA 1 h 02 min", "ETA 3 min 05 s", "ETA 12 s"
void qtk_format_duration(double seconds, char *buf, int size);

#endif
