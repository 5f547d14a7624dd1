// The monotonic clock of timer.h (out of line, so the header needs no POSIX feature macro).
#include "timer.h"

#include <time.h>

double qtk_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
