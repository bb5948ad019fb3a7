/* Input and output buffers of an execution context: shapes, random or loaded data, binding. */
#include "cli.h"
#include "npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bytes of count elements (sub-byte types round up); SIZE_MAX on overflow or no size. */
static size_t dtype_bytes(kiln_dtype dtype, int64_t count) {
    uint32_t bits = kiln_dtype_bits(dtype);
    if (!bits || count < 0 || (uint64_t)count > (SIZE_MAX - 7) / bits) return SIZE_MAX;
    return ((size_t)count * bits + 7) / 8;
}

/* splitmix64 */
static uint64_t rand_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float f;
    if (exp == 0) {
        f = ldexpf((float)mant, -24);
    } else if (exp == 31) {
        f = mant ? NAN : INFINITY;
    } else {
        f = ldexpf((float)(mant | 0x400), (int)exp - 25);
    }
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits |= sign;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest even; only called with finite values of magnitude < 1 here. */
static uint16_t float_to_half(float f) {
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    float a = fabsf(f);
    if (a < ldexpf(1.0f, -14)) return sign | (uint16_t)lrintf(ldexpf(a, 24)); /* subnormal */
    int e;
    float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    long mant = lrintf(ldexpf(m, 11));  /* 11 significant bits, 1024..2048 */
    if (mant == 2048) {
        mant = 1024;
        e++;
    }
    return sign | (uint16_t)((e + 14) << 10) | (uint16_t)(mant - 1024);
}

static float bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits += 0x7fff + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

/* Floats uniform in [-1, 1), integers in [0, 4), bools 0/1; other dtypes stay zero. */
static void fill_random(kiln_dtype dtype, void *data, int64_t count, uint64_t *state) {
    for (int64_t i = 0; i < count; i++) {
        uint64_t r = rand_next(state);
        float u = (float)((double)(r >> 40) * 0x1p-24 * 2.0 - 1.0); /* [-1, 1) on a 2^-23 grid */
        int64_t k = (int64_t)(r >> 62);                              /* 0..3 */
        switch (dtype) {
        case KILN_FLOAT32: ((float *)data)[i] = u; break;
        case KILN_FLOAT64: ((double *)data)[i] = u; break;
        case KILN_FLOAT16: ((uint16_t *)data)[i] = float_to_half(u); break;
        case KILN_BFLOAT16: ((uint16_t *)data)[i] = float_to_bf16(u); break;
        case KILN_INT8:
        case KILN_UINT8: ((uint8_t *)data)[i] = (uint8_t)k; break;
        case KILN_BOOL: ((uint8_t *)data)[i] = (uint8_t)(k & 1); break;
        case KILN_INT16:
        case KILN_UINT16: ((uint16_t *)data)[i] = (uint16_t)k; break;
        case KILN_INT32:
        case KILN_UINT32: ((uint32_t *)data)[i] = (uint32_t)k; break;
        case KILN_INT64:
        case KILN_UINT64: ((uint64_t *)data)[i] = (uint64_t)k; break;
        default: return; /* left zeroed by the caller */
        }
    }
}

double cli_element(kiln_dtype dtype, const void *data, int64_t i) {
    switch (dtype) {
    case KILN_FLOAT32: return ((const float *)data)[i];
    case KILN_FLOAT64: return ((const double *)data)[i];
    case KILN_FLOAT16: return half_to_float(((const uint16_t *)data)[i]);
    case KILN_BFLOAT16: return bf16_to_float(((const uint16_t *)data)[i]);
    case KILN_INT8: return ((const int8_t *)data)[i];
    case KILN_UINT8:
    case KILN_BOOL: return ((const uint8_t *)data)[i];
    case KILN_INT16: return ((const int16_t *)data)[i];
    case KILN_UINT16: return ((const uint16_t *)data)[i];
    case KILN_INT32: return ((const int32_t *)data)[i];
    case KILN_UINT32: return ((const uint32_t *)data)[i];
    case KILN_INT64: return (double)((const int64_t *)data)[i];
    case KILN_UINT64: return (double)((const uint64_t *)data)[i];
    default: return NAN;
    }
}

/* ---- --loadInputs */

typedef struct load {
    char name[KILN_MAX_NAME];
    const char *path_begin;
    size_t path_len;
    npy_array array;
} load;

static int is_input(const kiln_engine *engine, const char *name) {
    return kiln_engine_tensor_io_mode(engine, name) == KILN_IO_INPUT;
}

static void list_inputs(const kiln_engine *engine) {
    fprintf(stderr, "inputs:");
    for (int32_t i = 0; i < kiln_engine_num_io_tensors(engine); i++) {
        const char *name = kiln_engine_io_tensor_name(engine, i);
        if (is_input(engine, name)) fprintf(stderr, " %s", name);
    }
    fputc('\n', stderr);
}

/* "name:file.npy,'quoted:name':file2.npy". An unquoted entry splits at the last ':' whose
 * left part names an input, so both names and paths may hold ':'. */
static int parse_loads(const kiln_engine *engine, const char *text, load **out, int *count) {
    *out = NULL;
    *count = 0;
    int cap = 0;
    const char *p = text;
    while (*p) {
        load l;
        memset(&l, 0, sizeof l);
        const char *end = strchr(p, ',');
        if (*p == '\'' || *p == '"') {
            const char *close = strchr(p + 1, *p);
            if (!close || close[1] != ':' || close == p + 1 || (size_t)(close - p - 1) >= sizeof l.name) {
                cli_error("--loadInputs: bad quoted entry '%s'; expected 'name':file.npy", p);
                return CLI_USAGE;
            }
            memcpy(l.name, p + 1, (size_t)(close - p - 1));
            l.path_begin = close + 2;
            end = strchr(l.path_begin, ',');
            if (!end) end = l.path_begin + strlen(l.path_begin);
        } else {
            if (!end) end = p + strlen(p);
            const char *split = NULL, *any = NULL;
            for (const char *q = end; q-- > p;) {
                if (*q != ':') continue;
                if (!any) any = q;
                size_t n = (size_t)(q - p);
                if (n >= sizeof l.name) continue;
                char name[KILN_MAX_NAME];
                memcpy(name, p, n);
                name[n] = 0;
                if (is_input(engine, name)) {
                    split = q;
                    break;
                }
            }
            if (!any) {
                cli_error("--loadInputs: '%.*s' has no ':'; expected name:file.npy", (int)(end - p), p);
                return CLI_USAGE;
            }
            if (!split) split = any;
            if ((size_t)(split - p) >= sizeof l.name) {
                cli_error("--loadInputs: input name in '%.*s' is too long", (int)(end - p), p);
                return CLI_USAGE;
            }
            memcpy(l.name, p, (size_t)(split - p));
            l.path_begin = split + 1;
        }
        l.path_len = (size_t)(end - l.path_begin);
        if (!is_input(engine, l.name)) {
            cli_error("--loadInputs names '%s', which is not an input of the engine", l.name);
            list_inputs(engine);
            return CLI_USAGE;
        }
        if (l.path_len == 0) {
            cli_error("--loadInputs: no file given for '%s'", l.name);
            return CLI_USAGE;
        }
        for (int i = 0; i < *count; i++)
            if (strcmp((*out)[i].name, l.name) == 0) {
                cli_error("--loadInputs: input '%s' is given twice", l.name);
                return CLI_USAGE;
            }
        if (*count == cap) {
            cap = cap ? cap * 2 : 4;
            load *grown = realloc(*out, (size_t)cap * sizeof *grown);
            if (!grown) {
                cli_error("out of memory");
                return CLI_FAIL;
            }
            *out = grown;
        }
        (*out)[(*count)++] = l;
        p = *end ? end + 1 : end;
    }
    return CLI_OK;
}

static int dims_fit(const kiln_dims *engine_dims, const kiln_dims *dims) {
    if (engine_dims->nb_dims != dims->nb_dims) return 0;
    for (int i = 0; i < dims->nb_dims; i++)
        if (engine_dims->d[i] >= 0 && engine_dims->d[i] != dims->d[i]) return 0;
    return 1;
}

static int dims_same(const kiln_dims *a, const kiln_dims *b) {
    if (a->nb_dims != b->nb_dims) return 0;
    for (int i = 0; i < a->nb_dims; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

/* Chooses and sets the shape of one input; returns its dims in *dims. */
static int input_shape(const kiln_engine *engine, kiln_context *ctx, const char *name, const cli_shapes *shapes,
                       const load *loaded, kiln_dims *dims) {
    kiln_dims edims;
    char a[160], b[160];
    kiln_status st = kiln_engine_tensor_shape(engine, name, &edims);
    if (st != KILN_OK) return cli_kiln_fail(st, "shape of input '%s'", name);
    const cli_shape *given = cli_shapes_find(shapes, name);
    if (given) {
        *dims = given->dims;
    } else if (loaded) {
        *dims = loaded->array.dims;
    } else if (cli_volume(&edims) >= 0) {
        *dims = edims;
    } else if (kiln_engine_num_profiles(engine) > 0 &&
               kiln_engine_profile_dims(engine, 0, name, KILN_PROFILE_OPT, dims) == KILN_OK) {
        cli_format_dims(dims, a, sizeof a);
        printf("Input '%s': no --shapes given, using the profile's opt shape %s\n", name, a);
    } else {
        *dims = edims;
        for (int i = 0; i < dims->nb_dims; i++)
            if (dims->d[i] < 0) dims->d[i] = 1;
        cli_format_dims(dims, a, sizeof a);
        cli_warn("input '%s' has dynamic dims and no profile; using %s", name, a);
    }
    if (!dims_fit(&edims, dims)) {
        cli_format_dims(dims, a, sizeof a);
        cli_format_dims(&edims, b, sizeof b);
        cli_error("input '%s' is given shape %s but the engine's input has shape %s (-1 is free)", name, a, b);
        return CLI_USAGE;
    }
    if (cli_volume(&edims) < 0 && (st = kiln_context_set_input_shape(ctx, name, dims)) != KILN_OK) {
        cli_format_dims(dims, a, sizeof a);
        return cli_kiln_fail(st, "setting the shape of input '%s' to %s", name, a);
    }
    return CLI_OK;
}

static int fill_input(cli_io *io, const load *loaded, uint64_t *rng) {
    char a[160], b[160];
    io->host = calloc(1, io->nbytes ? io->nbytes : 1);
    if (!io->host) {
        cli_error("out of memory for input '%s' (%zu bytes)", io->name, io->nbytes);
        return CLI_FAIL;
    }
    if (!loaded) {
        if (!npy_descr(io->dtype)) /* fp8, int4, ...: no random generator here */
            cli_warn("no random data for %s input '%s'; it is zero", kiln_dtype_name(io->dtype), io->name);
        fill_random(io->dtype, io->host, cli_volume(&io->dims), rng);
        return CLI_OK;
    }
    const npy_array *arr = &loaded->array;
    int dtype_ok = arr->dtype == io->dtype || (io->dtype == KILN_BFLOAT16 && arr->dtype == KILN_UINT16);
    if (!dtype_ok) {
        cli_error("input '%s' is %s but %.*s holds %s", io->name, kiln_dtype_name(io->dtype), (int)loaded->path_len,
                  loaded->path_begin, kiln_dtype_name(arr->dtype));
        return CLI_USAGE;
    }
    if (io->dtype == KILN_BFLOAT16) cli_warn("input '%s' is bfloat16: reading the uint16 array as raw bits", io->name);
    if (!dims_same(&arr->dims, &io->dims)) {
        cli_format_dims(&arr->dims, a, sizeof a);
        cli_format_dims(&io->dims, b, sizeof b);
        cli_error("input '%s' has shape %s but %.*s holds %s", io->name, b, (int)loaded->path_len, loaded->path_begin,
                  a);
        return CLI_USAGE;
    }
    memcpy(io->host, arr->data, io->nbytes);
    return CLI_OK;
}

int cli_prepare_inputs(kiln_engine *engine, kiln_context *ctx, const char *shapes_spec, const char *loads,
                       uint64_t seed, cli_ios *ios) {
    int rc = CLI_FAIL, nb_loads = 0;
    load *loaded = NULL;
    cli_shapes shapes = {0, NULL};
    uint64_t rng = seed;
    memset(ios, 0, sizeof *ios);
    ios->device = kiln_engine_device(engine);

    if (shapes_spec) {
        if (cli_parse_shapes("shapes", shapes_spec, &shapes)) return CLI_USAGE;
        for (int i = 0; i < shapes.count; i++)
            if (!is_input(engine, shapes.items[i].name)) {
                cli_error("--shapes names '%s', which is not an input of the engine", shapes.items[i].name);
                list_inputs(engine);
                rc = CLI_USAGE;
                goto done;
            }
    }
    if (loads) {
        if ((rc = parse_loads(engine, loads, &loaded, &nb_loads)) != CLI_OK) goto done;
        rc = CLI_FAIL;
        for (int i = 0; i < nb_loads; i++) {
            char path[4096], err[1024];
            snprintf(path, sizeof path, "%.*s", (int)loaded[i].path_len, loaded[i].path_begin);
            if (npy_read(path, &loaded[i].array, err, sizeof err)) {
                cli_error("--loadInputs: %s", err);
                goto done;
            }
        }
    }

    int32_t nb_io = kiln_engine_num_io_tensors(engine);
    ios->items = calloc((size_t)(nb_io ? nb_io : 1), sizeof *ios->items);
    if (!ios->items) {
        cli_error("out of memory");
        goto done;
    }
    ios->count = nb_io;
    for (int32_t i = 0; i < nb_io; i++) {
        cli_io *io = &ios->items[i];
        io->name = kiln_engine_io_tensor_name(engine, i);
        io->mode = kiln_engine_tensor_io_mode(engine, io->name);
        io->dtype = kiln_engine_tensor_dtype(engine, io->name);
        if (io->mode != KILN_IO_INPUT) continue;
        const load *l = NULL;
        for (int k = 0; k < nb_loads; k++)
            if (strcmp(loaded[k].name, io->name) == 0) l = &loaded[k];
        if ((rc = input_shape(engine, ctx, io->name, &shapes, l, &io->dims)) != CLI_OK) goto done;
        rc = CLI_FAIL;
        io->nbytes = dtype_bytes(io->dtype, cli_volume(&io->dims));
        if (io->nbytes == SIZE_MAX) {
            cli_error("input '%s' of dtype %s has no fixed size", io->name, kiln_dtype_name(io->dtype));
            goto done;
        }
        if ((rc = fill_input(io, l, &rng)) != CLI_OK) goto done;
        rc = CLI_FAIL;
        void *bind = io->host;
        if (ios->device == KILN_DEVICE_CUDA) {
            if (cli_cuda_malloc(&io->device, io->nbytes ? io->nbytes : 1) ||
                cli_cuda_copy(io->device, io->host, io->nbytes, 1))
                goto done;
            bind = io->device;
        }
        kiln_status st = kiln_context_set_tensor_address(ctx, io->name, bind, io->nbytes);
        if (st != KILN_OK) {
            cli_kiln_fail(st, "binding input '%s'", io->name);
            goto done;
        }
    }
    /* CUDA engines need every output bound to device memory before enqueue. */
    for (int32_t i = 0; ios->device == KILN_DEVICE_CUDA && i < nb_io; i++) {
        cli_io *io = &ios->items[i];
        if (io->mode != KILN_IO_OUTPUT) continue;
        kiln_status st = kiln_context_get_tensor_shape(ctx, io->name, &io->dims);
        if (st != KILN_OK) {
            cli_kiln_fail(st, "shape of output '%s'", io->name);
            goto done;
        }
        io->nbytes = dtype_bytes(io->dtype, cli_volume(&io->dims));
        if (io->nbytes == SIZE_MAX) {
            cli_error("output '%s' has a data-dependent shape, which the tool cannot allocate on the GPU", io->name);
            goto done;
        }
        if (cli_cuda_malloc(&io->device, io->nbytes ? io->nbytes : 1)) goto done;
        if ((st = kiln_context_set_tensor_address(ctx, io->name, io->device, io->nbytes)) != KILN_OK) {
            cli_kiln_fail(st, "binding output '%s'", io->name);
            goto done;
        }
    }
    rc = CLI_OK;
done:
    for (int i = 0; i < nb_loads; i++) npy_free(&loaded[i].array);
    free(loaded);
    cli_shapes_free(&shapes);
    if (rc != CLI_OK) cli_ios_free(ios);
    return rc;
}

int cli_fetch_outputs(kiln_context *ctx, cli_ios *ios) {
    for (int i = 0; i < ios->count; i++) {
        cli_io *io = &ios->items[i];
        if (io->mode != KILN_IO_OUTPUT) continue;
        kiln_status st = kiln_context_get_tensor_shape(ctx, io->name, &io->dims);
        if (st != KILN_OK) return cli_kiln_fail(st, "shape of output '%s'", io->name);
        io->nbytes = dtype_bytes(io->dtype, cli_volume(&io->dims));
        if (io->nbytes == SIZE_MAX) {
            cli_error("output '%s' has no fixed size (dtype %s)", io->name, kiln_dtype_name(io->dtype));
            return CLI_FAIL;
        }
        void *addr = NULL;
        if ((st = kiln_context_get_tensor_address(ctx, io->name, &addr)) != KILN_OK)
            return cli_kiln_fail(st, "address of output '%s'", io->name);
        free(io->host);
        io->host = malloc(io->nbytes ? io->nbytes : 1);
        if (!io->host) {
            cli_error("out of memory for output '%s'", io->name);
            return CLI_FAIL;
        }
        if (io->nbytes && !addr) {
            cli_error("output '%s' has no memory after execution", io->name);
            return CLI_FAIL;
        }
        if (ios->device == KILN_DEVICE_CUDA) {
            if (cli_cuda_copy(io->host, addr, io->nbytes, 0)) return CLI_FAIL;
        } else if (io->nbytes) {
            memcpy(io->host, addr, io->nbytes);
        }
    }
    return CLI_OK;
}

void cli_ios_free(cli_ios *ios) {
    for (int i = 0; i < ios->count; i++) {
        free(ios->items[i].host);
        if (ios->items[i].device) cli_cuda_free(ios->items[i].device);
    }
    free(ios->items);
    ios->items = NULL;
    ios->count = 0;
}

int cli_execute(kiln_context *ctx, kiln_device_type device, void *stream) {
    kiln_status st = device == KILN_DEVICE_CUDA ? kiln_context_enqueue(ctx, stream) : kiln_context_execute(ctx);
    if (st != KILN_OK) return cli_kiln_fail(st, "execution failed");
    if (device == KILN_DEVICE_CUDA) return cli_cuda_stream_sync(stream);
    return CLI_OK;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
