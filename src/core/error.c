#include "core.h"

#include <stdio.h>
#include <string.h>

#define KILN__ERROR_SIZE 2048

static _Thread_local char last_error[KILN__ERROR_SIZE];

const char *kiln_last_error(void) { return last_error; }

kiln_status kiln__error(kiln_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

kiln_status kiln__error_prefix(kiln_status status, const char *fmt, ...) {
    char old[KILN__ERROR_SIZE];
    memcpy(old, last_error, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t used = KILN__MIN((size_t)n, sizeof last_error - 1);
    size_t room = sizeof last_error - used;
    if (room > 2) {
        memcpy(last_error + used, ": ", 3);
        size_t copy = KILN__MIN(strlen(old), room - 3);
        memcpy(last_error + used + 2, old, copy);
        last_error[used + 2 + copy] = 0;
    }
    return status;
}

const char *kiln_status_name(kiln_status status) {
    switch (status) {
    case KILN_OK: return "KILN_OK";
    case KILN_INVALID_ARGUMENT: return "KILN_INVALID_ARGUMENT";
    case KILN_OUT_OF_MEMORY: return "KILN_OUT_OF_MEMORY";
    case KILN_UNSUPPORTED: return "KILN_UNSUPPORTED";
    case KILN_INCOMPATIBLE: return "KILN_INCOMPATIBLE";
    case KILN_IO_ERROR: return "KILN_IO_ERROR";
    case KILN_INVALID_STATE: return "KILN_INVALID_STATE";
    case KILN_NOT_FOUND: return "KILN_NOT_FOUND";
    case KILN_DEVICE_ERROR: return "KILN_DEVICE_ERROR";
    case KILN_INTERNAL_ERROR: return "KILN_INTERNAL_ERROR";
    }
    return "KILN_UNKNOWN_STATUS";
}

uint32_t kiln_version(void) { return KILN_VERSION; }

const char *kiln_version_string(void) {
#define KILN__STR2(x) #x
#define KILN__STR(x) KILN__STR2(x)
    return KILN__STR(KILN_VERSION_MAJOR) "." KILN__STR(KILN_VERSION_MINOR) "." KILN__STR(KILN_VERSION_PATCH);
}
