// A monotonic clock in seconds, for phase timings and benchmarks.
#ifndef QTK_TIMER_H
#define QTK_TIMER_H

#include <time.h>

static inline double qtk_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#endif
