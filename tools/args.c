/* Messages, flag parsing, numbers and shape specs. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cli_cmd = "kiln";

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", cli_cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: warning: ", cli_cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_kiln_fail(kiln_status status, const char *what, ...) {
    va_list ap;
    va_start(ap, what);
    fprintf(stderr, "%s: error: ", cli_cmd);
    vfprintf(stderr, what, ap);
    fprintf(stderr, ": %s (%s)\n", kiln_last_error(), kiln_status_name(status));
    va_end(ap);
    return CLI_FAIL;
}

int cli_parse(int argc, char **argv, const cli_opt *opts, int nb_opts) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return -1;
        if (strncmp(arg, "--", 2) != 0) {
            cli_error("unexpected argument '%s' (options look like --name=value; see %s --help)", arg, cli_cmd);
            return CLI_USAGE;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = NULL;
        for (int k = 0; k < nb_opts; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0) o = &opts[k];
        if (!o) {
            cli_error("unknown option '--%.*s' (see %s --help)", (int)len, name, cli_cmd);
            return CLI_USAGE;
        }
        if (o->value) {
            if (!eq) {
                cli_error("option --%s needs a value: --%s=...", o->name, o->name);
                return CLI_USAGE;
            }
            *o->value = eq + 1;
        } else {
            if (eq) {
                cli_error("option --%s takes no value", o->name);
                return CLI_USAGE;
            }
            *o->flag = 1;
        }
    }
    return CLI_OK;
}

int cli_parse_i64(const char *flag, const char *text, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno) {
        cli_error("--%s=%s: not an integer", flag, text);
        return CLI_USAGE;
    }
    if (v < min || v > max) {
        cli_error("--%s=%s: must be between %lld and %lld", flag, text, (long long)min, (long long)max);
        return CLI_USAGE;
    }
    *out = v;
    return CLI_OK;
}

int cli_parse_f64(const char *flag, const char *text, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !isfinite(v)) {
        cli_error("--%s=%s: not a number", flag, text);
        return CLI_USAGE;
    }
    if (v < min || v > max) {
        cli_error("--%s=%s: must be between %g and %g", flag, text, min, max);
        return CLI_USAGE;
    }
    *out = v;
    return CLI_OK;
}

/* ---- shape specs */

static int parse_dims(const char *flag, const char *name, const char *s, size_t len, kiln_dims *dims) {
    dims->nb_dims = 0;
    if (len == 0) return CLI_OK; /* "name:" is a scalar */
    size_t i = 0;
    for (;;) {
        if (i >= len || s[i] < '0' || s[i] > '9') {
            cli_error("--%s: shape of '%s' is '%.*s'; expected dims like 1x3x224x224", flag, name, (int)len, s);
            return CLI_USAGE;
        }
        int64_t v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (s[i++] - '0');
            if (v > (INT64_C(1) << 40)) {
                cli_error("--%s: dimension of '%s' is too large", flag, name);
                return CLI_USAGE;
            }
        }
        if (dims->nb_dims == KILN_MAX_DIMS) {
            cli_error("--%s: shape of '%s' has more than %d dims", flag, name, KILN_MAX_DIMS);
            return CLI_USAGE;
        }
        dims->d[dims->nb_dims++] = v;
        if (i == len) return CLI_OK;
        if (s[i] != 'x' && s[i] != 'X') {
            cli_error("--%s: shape of '%s' is '%.*s'; expected dims like 1x3x224x224", flag, name, (int)len, s);
            return CLI_USAGE;
        }
        i++;
    }
}

int cli_parse_shapes(const char *flag, const char *text, cli_shapes *out) {
    out->count = 0;
    out->items = NULL;
    int cap = 0;
    const char *p = text;
    if (!*p) {
        cli_error("--%s is empty; expected name:1x3x224x224[,name2:...]", flag);
        return CLI_USAGE;
    }
    while (*p) {
        char name[KILN_MAX_NAME];
        const char *dims_text, *entry_end;
        if (*p == '\'' || *p == '"') {
            const char *close = strchr(p + 1, *p);
            if (!close) {
                cli_error("--%s: unterminated quote in '%s'", flag, p);
                goto fail;
            }
            size_t n = (size_t)(close - p - 1);
            if (n == 0 || n >= sizeof name) {
                cli_error("--%s: input name in '%s' is empty or too long", flag, p);
                goto fail;
            }
            memcpy(name, p + 1, n);
            name[n] = 0;
            if (close[1] != ':') {
                cli_error("--%s: expected ':' after the quoted name %.*s", flag, (int)(n + 2), p);
                goto fail;
            }
            dims_text = close + 2;
            entry_end = strchr(dims_text, ',');
            if (!entry_end) entry_end = dims_text + strlen(dims_text);
        } else {
            entry_end = strchr(p, ',');
            if (!entry_end) entry_end = p + strlen(p);
            const char *colon = NULL;
            for (const char *q = p; q < entry_end; q++)
                if (*q == ':') colon = q;
            if (!colon) {
                cli_error("--%s: '%.*s' has no ':'; expected name:1x3x224x224", flag, (int)(entry_end - p), p);
                goto fail;
            }
            size_t n = (size_t)(colon - p);
            if (n == 0 || n >= sizeof name) {
                cli_error("--%s: input name in '%.*s' is empty or too long", flag, (int)(entry_end - p), p);
                goto fail;
            }
            memcpy(name, p, n);
            name[n] = 0;
            dims_text = colon + 1;
        }
        kiln_dims dims;
        if (parse_dims(flag, name, dims_text, (size_t)(entry_end - dims_text), &dims)) goto fail;
        for (int i = 0; i < out->count; i++)
            if (strcmp(out->items[i].name, name) == 0) {
                cli_error("--%s: input '%s' is given twice", flag, name);
                goto fail;
            }
        if (out->count == cap) {
            cap = cap ? cap * 2 : 4;
            cli_shape *items = realloc(out->items, (size_t)cap * sizeof *items);
            if (!items) {
                cli_error("out of memory");
                goto fail;
            }
            out->items = items;
        }
        strcpy(out->items[out->count].name, name);
        out->items[out->count++].dims = dims;
        p = *entry_end ? entry_end + 1 : entry_end;
        if (*entry_end && !*p) {
            cli_error("--%s: trailing ','", flag);
            goto fail;
        }
    }
    return CLI_OK;
fail:
    cli_shapes_free(out);
    return CLI_USAGE;
}

void cli_shapes_free(cli_shapes *shapes) {
    free(shapes->items);
    shapes->items = NULL;
    shapes->count = 0;
}

const cli_shape *cli_shapes_find(const cli_shapes *shapes, const char *name) {
    for (int i = 0; i < shapes->count; i++)
        if (strcmp(shapes->items[i].name, name) == 0) return &shapes->items[i];
    return NULL;
}

void cli_format_dims(const kiln_dims *dims, char *buf, size_t size) {
    if (dims->nb_dims == 0) {
        snprintf(buf, size, "scalar");
        return;
    }
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < dims->nb_dims && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? "x" : "", (long long)dims->d[i]);
}

int64_t cli_volume(const kiln_dims *dims) {
    int64_t v = 1;
    for (int i = 0; i < dims->nb_dims; i++) {
        if (dims->d[i] < 0) return -1;
        if (dims->d[i] && v > INT64_MAX / dims->d[i]) return -1;
        v *= dims->d[i];
    }
    return v;
}
