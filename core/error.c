#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char qtk_errmsg[1024];

const char *qtk_last_error(void) { return qtk_errmsg; }

void qtk_clear_error(void) { qtk_errmsg[0] = '\0'; }

const char *qtk_status_str(qtk_status st) {
    switch (st) {
    case QTK_OK: return "ok";
    case QTK_ERR_ARG: return "invalid argument";
    case QTK_ERR_IO: return "i/o error";
    case QTK_ERR_FORMAT: return "format error";
    case QTK_ERR_NOMEM: return "out of memory";
    case QTK_ERR_UNSUPPORTED: return "unsupported";
    case QTK_ERR_NOT_FOUND: return "not found";
    case QTK_ERR_CUDA: return "cuda error";
    }
    return "unknown status";
}

qtk_status qtk_fail(qtk_status st, const char *fmt, ...) {
    // formatted aside first: an argument may be qtk_last_error() itself (adding context to a message)
    char msg[sizeof qtk_errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(qtk_errmsg, msg, sizeof msg);
    return st;
}
