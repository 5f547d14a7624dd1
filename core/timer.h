// A monotonic clock in seconds, for phase timings and benchmarks.
#ifndef QTK_TIMER_H
#define QTK_TIMER_H

#ifdef __cplusplus
extern "C" {
#endif

double qtk_now(void);

#ifdef __cplusplus
}
#endif

#endif
