#include "core.h"

#include <stdio.h>

void kiln__log_init(kiln__log *log, const kiln_logger *user) {
    if (user && user->log) {
        log->logger = *user;
        log->enabled = true;
    } else {
        log->enabled = false;
    }
}

void kiln__logf(const kiln__log *log, kiln_log_level level, const char *fmt, ...) {
    if (!log || !log->enabled || level > log->logger.level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log->logger.log(log->logger.user, level, msg);
}
