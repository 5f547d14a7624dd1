// Errors: status codes, a thread-local message, and invariant checks.
//
// Library functions return qtk_status (0 = ok). On failure they set a message
// naming the file, tensor or key and what was expected; read it with
// qtk_last_error(). The library never exits on bad input.
#ifndef QTK_ERROR_H
#define QTK_ERROR_H

#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    QTK_OK = 0,
    QTK_ERR_ARG,         // bad argument: wrong shape, bits out of range, NULL
    QTK_ERR_IO,          // open/read/write/mmap failed
    QTK_ERR_FORMAT,      // malformed file contents
    QTK_ERR_NOMEM,       // allocation failed
    QTK_ERR_UNSUPPORTED, // valid request this build or device cannot do
    QTK_ERR_NOT_FOUND,   // missing tensor or key
    QTK_ERR_CUDA,        // CUDA / cuBLAS / cuDNN call failed
} qtk_status;

// Message of the last failure on this thread ("" if none).
const char *qtk_last_error(void);
// Short name of a status ("format error", ...).
const char *qtk_status_str(qtk_status st);
// Sets the thread-local message (printf format) and returns st, so callers
// can write `return qtk_fail(QTK_ERR_ARG, "...", ...);`.
qtk_status qtk_fail(qtk_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void qtk_clear_error(void);

// Propagate a failing status to the caller.
#define QTK_TRY(expr)                                                          \
    do {                                                                       \
        qtk_status qtk_try_st_ = (expr);                                       \
        if (qtk_try_st_ != QTK_OK) return qtk_try_st_;                         \
    } while (0)

// Internal invariant: a bug in qtk, not bad input. Prints file:line and aborts.
#define QTK_CHECK(cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "qtk: internal check failed: %s at %s:%d\n",       \
                    #cond, __FILE__, __LINE__);                                \
            abort();                                                           \
        }                                                                      \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
