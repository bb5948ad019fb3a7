/* Plan reader: the bytes are untrusted, so every field is checked before it is used (layout and
 * rules: docs/plan-format.md). Layer params are copied as bytes and checked later by each
 * layer's infer (kiln__engine_validate). */
#include "plan.h"
#include "plan_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct section {
    const uint8_t *data;
    uint64_t size;
} section;

typedef struct plan_reader {
    kiln_engine *engine;
    kiln_network *net;
    /* Keeps the plan bytes alive: constants borrow their weights from it (NULL: copy). */
    kiln__shared *owner;
    section sec[KILN__SEC_COUNT];
    /* Per tensor: produced by a layer read so far, or a network input. */
    uint8_t *ready;
    /* Per tensor: -1 - the last layer that lists it as an output, then 1 + the last profile that
     * names it (duplicate detection without quadratic scans). */
    int32_t *seen;
    /* Network inputs sorted by name, for the profiles' lookups. */
    kiln_tensor **inputs_by_name;
    /* Scratch for one layer's input and output tensors. */
    kiln_tensor **io;
    int64_t io_capacity;
} plan_reader;

static const char *const section_names[KILN__SEC_COUNT] = {"strings", "tensors", "layers", "io", "profiles", "weights"};

static kiln_status bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static kiln_status bad(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln__error(KILN_INVALID_ARGUMENT, "invalid kiln plan: %s", msg);
}

static void version_text(uint32_t v, char *buf, size_t size) {
    snprintf(buf, size, "%u.%u.%u", v / 10000, v / 100 % 100, v % 100);
}

/* ---------------------------------------------------------------- header */

/* [p, p + size) lies inside the engine's plan file mapping, whose pages may be dropped. */
static bool in_map(const kiln_engine *e, const void *p, size_t size) {
    uintptr_t begin = (uintptr_t)e->map.data, at = (uintptr_t)p;
    return begin && at >= begin && at - begin <= e->map.size && size <= e->map.size - (at - begin);
}

/* The body's CRC-32. A body inside the engine's file mapping is checked in chunks, each one's
 * pages dropped once read: constants borrow their weights in place and kernels read them when
 * they need them, so checking the file does not leave it all resident. */
#define CRC_CHUNK ((size_t)16 << 20)

static uint32_t body_crc(const kiln_engine *e, const uint8_t *p, size_t size) {
    if (!in_map(e, p, size)) return kiln__crc32(p, size, 0);
    uint32_t crc = 0;
    for (size_t done = 0; done < size; done += CRC_CHUNK) {
        size_t n = KILN__MIN(CRC_CHUNK, size - done);
        crc = kiln__crc32(p + done, n, crc);
        kiln__file_map_release(p + done, n);
    }
    return crc;
}

static kiln_status check_header(const uint8_t *p, size_t size, plan_reader *r) {
    if (memcmp(p + KILN__H_MAGIC, KILN__PLAN_MAGIC, KILN__MIN(size, 8)) != 0)
        return kiln__error(KILN_INVALID_ARGUMENT, "not a kiln plan (bad magic)");
    if (size < KILN__PLAN_HEADER_SIZE)
        return bad("truncated: %zu bytes, smaller than the %d-byte header", size, (int)KILN__PLAN_HEADER_SIZE);
    uint32_t format = kiln__rd_u32(p + KILN__H_FORMAT);
    if (format != KILN__PLAN_FORMAT_VERSION)
        return kiln__error(KILN_INCOMPATIBLE, "plan format %u, this library reads %u", format,
                           KILN__PLAN_FORMAT_VERSION);
    uint32_t header_size = kiln__rd_u32(p + KILN__H_HEADER_SIZE);
    if (header_size != KILN__PLAN_HEADER_SIZE)
        return bad("header size %u, format %u uses %d", header_size, format, (int)KILN__PLAN_HEADER_SIZE);
    uint32_t library = kiln__rd_u32(p + KILN__H_LIBRARY);
    if (library != KILN_VERSION) {
        char theirs[32], ours[32];
        version_text(library, theirs, sizeof theirs);
        version_text(KILN_VERSION, ours, sizeof ours);
        return kiln__error(KILN_INCOMPATIBLE, "plan built by kiln %s, this is kiln %s; rebuild the engine", theirs,
                           ours);
    }
    uint64_t total = kiln__rd_u64(p + KILN__H_TOTAL_SIZE);
    if (total != size)
        return bad("size mismatch: the header says %llu bytes, got %zu%s", (unsigned long long)total, size,
                   total > size ? " (truncated)" : "");
    uint8_t header[KILN__PLAN_HEADER_SIZE];
    memcpy(header, p, sizeof header);
    kiln__wr_u32(header + KILN__H_HEADER_CRC, 0);
    if (kiln__crc32(header, sizeof header, 0) != kiln__rd_u32(p + KILN__H_HEADER_CRC))
        return bad("header checksum mismatch");
    if (body_crc(r->engine, p + header_size, size - header_size) != kiln__rd_u32(p + KILN__H_BODY_CRC))
        return bad("checksum mismatch");

    uint32_t params_size = kiln__rd_u32(p + KILN__H_PARAMS_SIZE);
    if (params_size != sizeof(kiln__params))
        return kiln__error(KILN_INCOMPATIBLE, "plan stores %u-byte layer params, this library uses %zu", params_size,
                           sizeof(kiln__params));
    uint32_t device = kiln__rd_u32(p + KILN__H_DEVICE);
    if (device != KILN_DEVICE_CPU && device != KILN_DEVICE_CUDA) return bad("unknown target device %u", device);
    const char *arch = (const char *)p + KILN__H_GPU_ARCH;
    size_t arch_len = strnlen(arch, KILN__GPU_ARCH_LEN);
    if (arch_len == KILN__GPU_ARCH_LEN) return bad("GPU architecture field is not terminated");
    for (size_t i = arch_len; i < KILN__GPU_ARCH_LEN; i++)
        if (arch[i]) return bad("GPU architecture field has bytes after its terminator");
    if (device == KILN_DEVICE_CPU && arch_len) return bad("CPU plan names GPU architecture '%s'", arch);
    if (device == KILN_DEVICE_CUDA && !arch_len) return bad("CUDA plan names no GPU architecture");
    if (kiln__rd_u32(p + KILN__H_NB_SECTIONS) != KILN__SEC_COUNT)
        return bad("%u sections, format %u has %d", kiln__rd_u32(p + KILN__H_NB_SECTIONS), format, KILN__SEC_COUNT);
    if (kiln__rd_u32(p + KILN__H_RESERVED)) return bad("reserved header field is not zero");

    uint64_t off[KILN__SEC_COUNT], len[KILN__SEC_COUNT];
    for (int s = 0; s < KILN__SEC_COUNT; s++) {
        off[s] = kiln__rd_u64(p + KILN__H_SECTIONS + 16 * s);
        len[s] = kiln__rd_u64(p + KILN__H_SECTIONS + 16 * s + 8);
        uint64_t align = s == KILN__SEC_WEIGHTS ? KILN__PLAN_WEIGHTS_ALIGN : KILN__PLAN_SECTION_ALIGN;
        if (off[s] < header_size || off[s] > size || len[s] > size - off[s])
            return bad("%s section [%llu, +%llu) lies outside the file body [%u, %zu)", section_names[s],
                       (unsigned long long)off[s], (unsigned long long)len[s], header_size, size);
        if (off[s] % align)
            return bad("%s section offset %llu is not %llu-byte aligned", section_names[s],
                       (unsigned long long)off[s], (unsigned long long)align);
        for (int t = 0; t < s; t++)
            if (len[s] && len[t] && off[s] < off[t] + len[t] && off[t] < off[s] + len[s])
                return bad("%s and %s sections overlap", section_names[t], section_names[s]);
        r->sec[s].data = p + off[s];
        r->sec[s].size = len[s];
    }
    r->engine->device = (kiln_device_type)device;
    memset(r->engine->gpu_arch, 0, sizeof r->engine->gpu_arch);
    memcpy(r->engine->gpu_arch, arch, arch_len);
    r->engine->flags = kiln__rd_u32(p + KILN__H_FLAGS);
    r->engine->workspace_limit = kiln__rd_u64(p + KILN__H_WORKSPACE);
    return KILN_OK;
}

/* ---------------------------------------------------------------- strings and dims */

/* A string reference: inside the strings section and terminated there. */
static kiln_status get_string(const plan_reader *r, uint32_t ref, const char *what, const char **out) {
    const section *s = &r->sec[KILN__SEC_STRINGS];
    if (ref >= s->size)
        return bad("%s: string offset %u is outside the %llu-byte strings section", what, ref,
                   (unsigned long long)s->size);
    const char *str = (const char *)s->data + ref;
    if (!memchr(str, 0, s->size - ref)) return bad("%s: string at offset %u is not terminated", what, ref);
    *out = str;
    return KILN_OK;
}

/* A section of `count` fixed records after an 8-byte count header; the size must match exactly. */
static kiln_status record_count(const plan_reader *r, int s, uint64_t record, uint32_t *count) {
    const section *sec = &r->sec[s];
    if (sec->size < 8) return bad("%s section is %llu bytes, too small", section_names[s], (unsigned long long)sec->size);
    *count = kiln__rd_u32(sec->data);
    if (kiln__rd_u32(sec->data + 4)) return bad("%s section: reserved field is not zero", section_names[s]);
    if (*count > INT32_MAX) return bad("%s section: count %u is too large", section_names[s], *count);
    if (record && ((sec->size - 8) / record != *count || (sec->size - 8) % record))
        return bad("%s section: %u records of %llu bytes do not fill its %llu bytes", section_names[s], *count,
                   (unsigned long long)record, (unsigned long long)sec->size);
    return KILN_OK;
}

/* rank + dims[8] as stored for tensors (dims >= -1) and profiles (dims >= 0). */
static kiln_status get_dims(const uint8_t *p, int32_t rank, int64_t min_dim, const char *what, kiln_dims *dims) {
    if (rank < 0 || rank > KILN_MAX_DIMS) return bad("%s: rank %d is out of range 0..%d", what, rank, KILN_MAX_DIMS);
    memset(dims, 0, sizeof *dims);
    dims->nb_dims = rank;
    for (int32_t i = 0; i < KILN_MAX_DIMS; i++) {
        int64_t d = kiln__rd_i64(p + 8 * i);
        if (i < rank && d < min_dim) return bad("%s: dim %d is %lld", what, i, (long long)d);
        if (i >= rank && d) return bad("%s: dim slot %d beyond rank %d is not zero", what, i, rank);
        if (i < rank) dims->d[i] = d;
    }
    return KILN_OK;
}

/* ---------------------------------------------------------------- tensors and io */

static kiln_status read_tensors(plan_reader *r) {
    uint32_t count;
    KILN__TRY(record_count(r, KILN__SEC_TENSORS, KILN__TENSOR_RECORD, &count));
    r->ready = kiln__calloc(&r->engine->alloc, count ? count : 1, 1);
    r->seen = kiln__calloc(&r->engine->alloc, count ? count : 1, sizeof *r->seen);
    if (!r->ready || !r->seen) return KILN_OUT_OF_MEMORY;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *rec = r->sec[KILN__SEC_TENSORS].data + 8 + (uint64_t)i * KILN__TENSOR_RECORD;
        char what[64];
        snprintf(what, sizeof what, "tensor %u", i);
        const char *name = NULL;
        KILN__TRY(get_string(r, kiln__rd_u32(rec + KILN__T_NAME), what, &name));
        kiln_dtype dtype = (kiln_dtype)kiln__rd_i32(rec + KILN__T_DTYPE);
        if (!kiln__dtype_valid(dtype) || dtype == KILN_STRING)
            return bad("tensor %u ('%s'): dtype %d is not a valid tensor dtype", i, name, (int)dtype);
        if (kiln__rd_u32(rec + KILN__T_RESERVED)) return bad("tensor %u ('%s'): reserved field is not zero", i, name);
        kiln_dims dims;
        KILN__TRY(get_dims(rec + KILN__T_DIMS, kiln__rd_i32(rec + KILN__T_RANK), -1, what, &dims));
        const char *dim_names[KILN_MAX_DIMS] = {0};
        for (int32_t d = 0; d < KILN_MAX_DIMS; d++) {
            uint32_t ref = kiln__rd_u32(rec + KILN__T_DIM_NAMES + 4 * d);
            if (ref == KILN__PLAN_NO_STRING) continue;
            if (d >= dims.nb_dims) return bad("tensor %u ('%s'): dim name %d beyond rank %d", i, name, d, dims.nb_dims);
            snprintf(what, sizeof what, "tensor %u dim name %d", i, d);
            KILN__TRY(get_string(r, ref, what, &dim_names[d]));
        }
        kiln_tensor *t;
        KILN__TRY(kiln__network_new_tensor(r->net, name, dtype, &dims, &t));
        for (int32_t d = 0; d < KILN_MAX_DIMS; d++)
            if (dim_names[d] && !(t->dim_names[d] = kiln__strdup(&r->net->alloc, dim_names[d])))
                return KILN_OUT_OF_MEMORY;
    }
    return KILN_OK;
}

static int compare_names(const void *a, const void *b) {
    return strcmp((*(kiln_tensor *const *)a)->name, (*(kiln_tensor *const *)b)->name);
}

/* IO names must be unique: the engine API finds IO tensors by name. Sorting keeps this and the
 * profiles' input lookups fast on hostile plans with very many inputs. */
static kiln_status check_io_names(plan_reader *r) {
    int64_t n = r->net->nb_inputs + r->net->nb_outputs;
    kiln_tensor **all = kiln__calloc(&r->engine->alloc, (size_t)n + 1, sizeof *all);
    r->inputs_by_name = kiln__calloc(&r->engine->alloc, (size_t)r->net->nb_inputs + 1, sizeof *all);
    if (!all || !r->inputs_by_name) {
        kiln__free(&r->engine->alloc, all);
        return KILN_OUT_OF_MEMORY;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < r->net->nb_inputs; i++) all[k++] = r->inputs_by_name[i] = r->net->inputs[i];
    for (int64_t i = 0; i < r->net->nb_outputs; i++)
        if (!r->net->outputs[i]->is_input) all[k++] = r->net->outputs[i]; /* an input may also be an output */
    qsort(all, (size_t)k, sizeof *all, compare_names);
    qsort(r->inputs_by_name, (size_t)r->net->nb_inputs, sizeof *all, compare_names);
    kiln_status st = KILN_OK;
    for (int64_t i = 1; i < k && st == KILN_OK; i++)
        if (strcmp(all[i - 1]->name, all[i]->name) == 0)
            st = bad("two network inputs/outputs are named '%s'", all[i]->name);
    kiln__free(&r->engine->alloc, all);
    return st;
}

/* Reads the IO lists; outputs are registered after the layers (they must be produced). */
static kiln_status read_io(plan_reader *r, bool outputs) {
    const section *s = &r->sec[KILN__SEC_IO];
    if (s->size < 8) return bad("io section is %llu bytes, too small", (unsigned long long)s->size);
    uint64_t nb_in = kiln__rd_u32(s->data), nb_out = kiln__rd_u32(s->data + 4);
    if (s->size != 8 + 4 * (nb_in + nb_out))
        return bad("io section: %llu inputs and %llu outputs do not fill its %llu bytes", (unsigned long long)nb_in,
                   (unsigned long long)nb_out, (unsigned long long)s->size);
    uint64_t first = outputs ? nb_in : 0, n = outputs ? nb_out : nb_in;
    const char *kind = outputs ? "output" : "input";
    for (uint64_t i = 0; i < n; i++) {
        int32_t index = kiln__rd_i32(s->data + 8 + 4 * (first + i));
        if (index < 0 || index >= r->net->nb_tensors)
            return bad("network %s %llu refers to tensor %d, out of range 0..%lld", kind, (unsigned long long)i, index,
                       (long long)r->net->nb_tensors - 1);
        kiln_tensor *t = r->net->tensors[index];
        if (outputs ? t->is_output : t->is_input)
            return bad("tensor %d ('%s') is listed twice as a network %s", index, t->name, kind);
        if (outputs) {
            if (!r->ready[index])
                return bad("network output '%s' is neither a network input nor produced by a layer", t->name);
            KILN__TRY(kiln__network_set_output(r->net, t));
        } else {
            KILN__TRY(kiln__network_set_input(r->net, t));
            r->ready[index] = 1;
        }
    }
    return outputs ? check_io_names(r) : KILN_OK;
}

/* ---------------------------------------------------------------- layers */

static kiln_status read_layer(plan_reader *r, uint32_t i, uint64_t *pos) {
    const section *s = &r->sec[KILN__SEC_LAYERS];
    if (s->size - *pos < KILN__LAYER_FIXED)
        return bad("layer %u: record runs past the end of the layers section", i);
    const uint8_t *rec = s->data + *pos;
    const char *name = NULL;
    char what[64];
    snprintf(what, sizeof what, "layer %u", i);
    KILN__TRY(get_string(r, kiln__rd_u32(rec + KILN__L_NAME), what, &name));
    int32_t type = kiln__rd_i32(rec + KILN__L_TYPE);
    if (type < 0 || type >= KILN_LAYER_TYPE_COUNT)
        return bad("layer %u ('%s'): type %d is out of range 0..%d", i, name, type, KILN_LAYER_TYPE_COUNT - 1);
    int32_t nb_in = kiln__rd_i32(rec + KILN__L_NB_INPUTS), nb_out = kiln__rd_i32(rec + KILN__L_NB_OUTPUTS);
    if (kiln__rd_u32(rec + KILN__L_RESERVED)) return bad("layer %u ('%s'): reserved field is not zero", i, name);
    /* Counts are bounded by the bytes left, so the record size below cannot overflow. */
    uint64_t left = s->size - *pos - KILN__LAYER_FIXED;
    if (nb_in < 0 || nb_out < 1 || (uint64_t)nb_in > left / 4 || (uint64_t)nb_out > left / 4 - (uint64_t)nb_in)
        return bad("layer %u ('%s'): %d inputs and %d outputs do not fit the layers section", i, name, nb_in, nb_out);
    uint64_t indices = 4 * ((uint64_t)nb_in + (uint64_t)nb_out), padded = (indices + 7) / 8 * 8;
    KILN__TRY(kiln__reserve(&r->engine->alloc, (void **)&r->io, &r->io_capacity, (int64_t)nb_in + nb_out,
                            sizeof *r->io));
    kiln_tensor **io = r->io;
    if (padded > left) return bad("layer %u ('%s'): record runs past the end of the layers section", i, name);
    const uint8_t *idx = rec + KILN__LAYER_FIXED;
    for (uint64_t k = indices; k < padded; k++)
        if (idx[k]) return bad("layer %u ('%s'): padding is not zero", i, name);

    for (int64_t k = 0; k < (int64_t)nb_in + nb_out; k++) {
        int32_t t = kiln__rd_i32(idx + 4 * k);
        bool input = k < nb_in;
        int32_t slot = (int32_t)(input ? k : k - nb_in);
        io[k] = NULL;
        if (input && t == -1) continue; /* absent optional input */
        if (t < 0 || t >= r->net->nb_tensors)
            return bad("layer %u ('%s'): %s %d refers to tensor %d, out of range 0..%lld", i, name,
                       input ? "input" : "output", slot, t, (long long)r->net->nb_tensors - 1);
        kiln_tensor *tensor = r->net->tensors[t];
        if (input && !r->ready[t])
            return bad("layer %u ('%s'): input %d ('%s') is neither a network input nor produced by an earlier layer",
                       i, name, slot, tensor->name);
        if (!input && tensor->is_input)
            return bad("layer %u ('%s'): output %d ('%s') is a network input", i, name, slot, tensor->name);
        if (!input && tensor->producer)
            return bad("layer %u ('%s'): output %d ('%s') is already produced by layer '%s'", i, name, slot,
                       tensor->name, tensor->producer->name);
        if (!input) {
            /* Stamps are negative here; the profiles use positive ones later. */
            if (r->seen[t] == -(int32_t)i - 1)
                return bad("layer %u ('%s'): tensor '%s' is its output twice", i, name, tensor->name);
            r->seen[t] = -(int32_t)i - 1;
        }
        io[k] = tensor;
    }

    uint64_t woff = kiln__rd_u64(rec + KILN__L_WEIGHTS_OFFSET), wsize = kiln__rd_u64(rec + KILN__L_WEIGHTS_SIZE);
    const section *w = &r->sec[KILN__SEC_WEIGHTS];
    if (type == KILN_LAYER_CONSTANT) {
        if (nb_in != 0 || nb_out != 1)
            return bad("layer %u ('%s'): a constant has 0 inputs and 1 output, not %d and %d", i, name, nb_in, nb_out);
        const kiln_tensor *out = io[0];
        int64_t volume = kiln__dims_volume(&out->dims);
        size_t expect;
        if (volume < 0 || !kiln__dtype_bytes(out->dtype, volume, &expect))
            return bad("layer %u ('%s'): constant output '%s' has no fixed size", i, name, out->name);
        if (wsize != expect)
            return bad("layer %u ('%s'): %llu weight bytes, its %s output '%s' needs %zu", i, name,
                       (unsigned long long)wsize, kiln_dtype_name(out->dtype), out->name, expect);
        if (woff % KILN__PLAN_WEIGHTS_ALIGN || woff > w->size || wsize > w->size - woff)
            return bad("layer %u ('%s'): weights [%llu, +%llu) are not a %u-aligned range of the %llu-byte weights "
                       "section", i, name, (unsigned long long)woff, (unsigned long long)wsize,
                       KILN__PLAN_WEIGHTS_ALIGN, (unsigned long long)w->size);
    } else if (woff || wsize) {
        return bad("layer %u ('%s'): only constants have weights", i, name);
    }

    kiln_layer *layer;
    KILN__TRY(kiln__network_new_layer_wired(r->net, (kiln_layer_type)type, name, io, nb_in, io + nb_in, nb_out,
                                            &layer));
    memcpy(&layer->p, rec + KILN__L_PARAMS, sizeof layer->p);
    layer->tactic = kiln__rd_i32(rec + KILN__L_TACTIC);
    if (wsize) {
        const uint8_t *src = w->data + woff;
        /* The format aligns weights within the file; the bytes themselves may not be (a
         * caller's buffer), and kernels expect 64-byte aligned constants. */
        if (r->owner && (uintptr_t)src % KILN__PLAN_WEIGHTS_ALIGN == 0)
            kiln__layer_borrow_weights(layer, src, (size_t)wsize, r->owner);
        else
            KILN__TRY(kiln__layer_set_weights(layer, src, (size_t)wsize));
    }
    for (int32_t k = 0; k < nb_out; k++) r->ready[io[nb_in + k]->index] = 1;
    *pos += KILN__LAYER_FIXED + padded;
    return KILN_OK;
}

static kiln_status read_layers(plan_reader *r) {
    const section *s = &r->sec[KILN__SEC_LAYERS];
    uint32_t count;
    KILN__TRY(record_count(r, KILN__SEC_LAYERS, 0, &count));
    /* Every record holds at least its fixed part: bounds the count before anything is allocated. */
    if (count > (s->size - 8) / KILN__LAYER_FIXED)
        return bad("layers section: %u layers cannot fit its %llu bytes", count, (unsigned long long)s->size);
    uint64_t pos = 8;
    for (uint32_t i = 0; i < count; i++) KILN__TRY(read_layer(r, i, &pos));
    if (pos != s->size)
        return bad("layers section has %llu bytes after its last layer", (unsigned long long)(s->size - pos));
    return KILN_OK;
}

/* ---------------------------------------------------------------- profiles */

static kiln_status read_profile_entry(plan_reader *r, const uint8_t *rec, int32_t pi, int32_t e,
                                      kiln__profile_dims *entry) {
    const char *input = NULL;
    char what[96];
    snprintf(what, sizeof what, "profile %d entry %d", pi, e);
    KILN__TRY(get_string(r, kiln__rd_u32(rec), what, &input));
    if (kiln__rd_u32(rec + 4)) return bad("%s: reserved field is not zero", what);
    kiln_tensor key = {.name = (char *)input}, *keyp = &key;
    kiln_tensor **found = bsearch(&keyp, r->inputs_by_name, (size_t)r->net->nb_inputs, sizeof *found, compare_names);
    if (!found) return bad("profile %d names '%s', which is not a network input", pi, input);
    const kiln_tensor *t = *found;
    if (r->seen[t->index] == pi + 1) return bad("profile %d names input '%s' twice", pi, input);
    r->seen[t->index] = pi + 1;
    const char *sel[3] = {"min", "opt", "max"};
    for (int k = 0; k < 3; k++) {
        const uint8_t *d = rec + KILN__PD_DIMS + k * KILN__PD_DIMS_RECORD;
        snprintf(what, sizeof what, "profile %d input '%.40s' %s", pi, input, sel[k]);
        if (kiln__rd_u32(d + 4)) return bad("%s: reserved field is not zero", what);
        KILN__TRY(get_dims(d + 8, kiln__rd_i32(d), 0, what, &entry->dims[k]));
        if (entry->dims[k].nb_dims != t->dims.nb_dims)
            return bad("%s: rank %d, the input has rank %d", what, entry->dims[k].nb_dims, t->dims.nb_dims);
    }
    for (int32_t d = 0; d < t->dims.nb_dims; d++) {
        int64_t lo = entry->dims[0].d[d], opt = entry->dims[1].d[d], hi = entry->dims[2].d[d];
        if (!(lo <= opt && opt <= hi))
            return bad("profile %d input '%s' dim %d: min %lld, opt %lld, max %lld (need min <= opt <= max)", pi, input,
                       d, (long long)lo, (long long)opt, (long long)hi);
    }
    entry->input = kiln__strdup(&r->engine->alloc, input);
    return entry->input ? KILN_OK : KILN_OUT_OF_MEMORY;
}

static kiln_status read_profiles(plan_reader *r) {
    const section *s = &r->sec[KILN__SEC_PROFILES];
    uint32_t count;
    KILN__TRY(record_count(r, KILN__SEC_PROFILES, 0, &count));
    if (count > (s->size - 8) / 8)
        return bad("profiles section: %u profiles cannot fit its %llu bytes", count, (unsigned long long)s->size);
    kiln_engine *engine = r->engine;
    if (count) {
        engine->profiles = kiln__calloc(&engine->alloc, count, sizeof *engine->profiles);
        if (!engine->profiles) return KILN_OUT_OF_MEMORY;
    }
    uint64_t pos = 8;
    for (uint32_t i = 0; i < count; i++) {
        if (s->size - pos < 8) return bad("profile %u runs past the end of the profiles section", i);
        uint32_t n = kiln__rd_u32(s->data + pos);
        if (kiln__rd_u32(s->data + pos + 4)) return bad("profile %u: reserved field is not zero", i);
        pos += 8;
        if (n > (s->size - pos) / KILN__PROFILE_ENTRY)
            return bad("profile %u: %u entries run past the end of the profiles section", i, n);
        kiln__profile *p = &engine->profiles[engine->nb_profiles++];
        if (n) {
            p->entries = kiln__calloc(&engine->alloc, n, sizeof *p->entries);
            if (!p->entries) return KILN_OUT_OF_MEMORY;
        }
        for (uint32_t e = 0; e < n; e++) {
            kiln__profile_dims *entry = &p->entries[e];
            KILN__TRY(read_profile_entry(r, s->data + pos, (int32_t)i, (int32_t)e, entry));
            p->nb_entries++;
            pos += KILN__PROFILE_ENTRY;
        }
    }
    if (pos != s->size)
        return bad("profiles section has %llu bytes after its last profile", (unsigned long long)(s->size - pos));
    return KILN_OK;
}

kiln_status kiln__plan_read(const void *data, size_t size, kiln__shared *owner, kiln_engine *engine) {
    if (!engine || (!data && size)) return kiln__error(KILN_INVALID_ARGUMENT, "plan reader: no engine or data");
    if (engine->net || engine->profiles) return kiln__error(KILN_INTERNAL_ERROR, "plan reader: engine is not empty");
    plan_reader r = {.engine = engine, .owner = owner};
    KILN__TRY(check_header(data ? data : "", size, &r));
    KILN__TRY(kiln__network_create(&engine->alloc, &engine->log, &engine->net));
    r.net = engine->net;
    kiln_status st = read_tensors(&r);
    if (st == KILN_OK) st = read_io(&r, false);
    if (st == KILN_OK) st = read_layers(&r);
    if (st == KILN_OK) st = read_io(&r, true);
    if (st == KILN_OK) st = read_profiles(&r);
    /* Reading the sections before the weights can map weight pages back in (the page cache
     * may hold the file in large folios, mapped whole). */
    const section *w = &r.sec[KILN__SEC_WEIGHTS];
    if (st == KILN_OK && in_map(engine, w->data, (size_t)w->size)) kiln__file_map_release(w->data, (size_t)w->size);
    kiln__free(&engine->alloc, r.ready);
    kiln__free(&engine->alloc, r.seen);
    kiln__free(&engine->alloc, r.inputs_by_name);
    kiln__free(&engine->alloc, r.io);
    return st;
}
