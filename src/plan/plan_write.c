/* Plan writer: serializes an engine into the layout of docs/plan-format.md. The output depends
 * only on the engine's contents, so writing a plan read back from a plan gives the same bytes. */
#include "plan.h"
#include "plan_format.h"

#include <string.h>

/* Sections other than weights are built in their own buffers, then copied behind the header. */
typedef struct plan_writer {
    const kiln_network *net;
    kiln__buf sec[KILN__SEC_WEIGHTS];
    uint64_t weights_size; /* weights section size so far (the values are copied at the end) */
} plan_writer;

static void put_u32(kiln__buf *b, uint32_t v) {
    uint8_t bytes[4];
    kiln__wr_u32(bytes, v);
    kiln__buf_append(b, bytes, 4);
}

static void put_u64(kiln__buf *b, uint64_t v) {
    uint8_t bytes[8];
    kiln__wr_u64(bytes, v);
    kiln__buf_append(b, bytes, 8);
}

static void put_zeros(kiln__buf *b, size_t n) {
    static const uint8_t zeros[64];
    while (n) {
        size_t k = KILN__MIN(n, sizeof zeros);
        kiln__buf_append(b, zeros, k);
        n -= k;
    }
}

/* Appends s (NULL writes "") to the strings section; returns its offset. */
static kiln_status put_string(plan_writer *w, const char *s, uint32_t *ref) {
    kiln__buf *strings = &w->sec[KILN__SEC_STRINGS];
    size_t n = strlen(s ? s : "") + 1;
    if (strings->size + n >= KILN__PLAN_NO_STRING)
        return kiln__error(KILN_UNSUPPORTED, "plan writer: names exceed the 4 GiB string table");
    *ref = (uint32_t)strings->size;
    kiln__buf_append(strings, s ? s : "", n);
    return KILN_OK;
}

/* The index of a tensor, checked against the network it must belong to. */
static kiln_status tensor_index(const plan_writer *w, const kiln_tensor *t, int32_t *index) {
    if (!t) {
        *index = -1;
        return KILN_OK;
    }
    if (t->index < 0 || t->index >= w->net->nb_tensors || w->net->tensors[t->index] != t)
        return kiln__error(KILN_INTERNAL_ERROR, "plan writer: tensor '%s' is not in the engine's network",
                           t->name ? t->name : "");
    *index = t->index;
    return KILN_OK;
}

static void put_dims(kiln__buf *b, const kiln_dims *dims) {
    for (int32_t i = 0; i < KILN_MAX_DIMS; i++) put_u64(b, i < dims->nb_dims ? (uint64_t)dims->d[i] : 0);
}

static kiln_status write_tensors(plan_writer *w) {
    kiln__buf *b = &w->sec[KILN__SEC_TENSORS];
    put_u32(b, (uint32_t)w->net->nb_tensors);
    put_u32(b, 0);
    for (int64_t i = 0; i < w->net->nb_tensors; i++) {
        const kiln_tensor *t = w->net->tensors[i];
        if (t->dims.nb_dims < 0 || t->dims.nb_dims > KILN_MAX_DIMS)
            return kiln__error(KILN_INTERNAL_ERROR, "plan writer: tensor '%s' has rank %d", t->name,
                               (int)t->dims.nb_dims);
        uint32_t name = 0, dim_names[KILN_MAX_DIMS];
        KILN__TRY(put_string(w, t->name, &name));
        for (int32_t d = 0; d < KILN_MAX_DIMS; d++) {
            dim_names[d] = KILN__PLAN_NO_STRING;
            if (d < t->dims.nb_dims && t->dim_names[d]) KILN__TRY(put_string(w, t->dim_names[d], &dim_names[d]));
        }
        put_u32(b, name);
        put_u32(b, (uint32_t)t->dtype);
        put_u32(b, (uint32_t)t->dims.nb_dims);
        put_u32(b, 0);
        put_dims(b, &t->dims);
        for (int32_t d = 0; d < KILN_MAX_DIMS; d++) put_u32(b, dim_names[d]);
    }
    return KILN_OK;
}

static kiln_status write_layers(plan_writer *w) {
    kiln__buf *b = &w->sec[KILN__SEC_LAYERS];
    put_u32(b, (uint32_t)w->net->nb_layers);
    put_u32(b, 0);
    for (int64_t i = 0; i < w->net->nb_layers; i++) {
        const kiln_layer *l = w->net->layers[i];
        uint32_t name = 0;
        KILN__TRY(put_string(w, l->name, &name));
        uint64_t woff = 0, wsize = l->weights ? l->weights_bytes : 0;
        if (wsize) {
            woff = (w->weights_size + KILN__PLAN_WEIGHTS_ALIGN - 1) / KILN__PLAN_WEIGHTS_ALIGN * KILN__PLAN_WEIGHTS_ALIGN;
            w->weights_size = woff + wsize;
        }
        put_u32(b, (uint32_t)l->type);
        put_u32(b, name);
        put_u32(b, (uint32_t)l->nb_inputs);
        put_u32(b, (uint32_t)l->nb_outputs);
        put_u32(b, (uint32_t)l->tactic);
        put_u32(b, 0);
        put_u64(b, woff);
        put_u64(b, wsize);
        kiln__buf_append(b, &l->p, sizeof l->p);
        for (int32_t k = 0; k < l->nb_inputs; k++) {
            int32_t index = -1;
            KILN__TRY(tensor_index(w, l->inputs[k], &index));
            put_u32(b, (uint32_t)index);
        }
        for (int32_t k = 0; k < l->nb_outputs; k++) {
            int32_t index = -1;
            if (!l->outputs[k])
                return kiln__error(KILN_INTERNAL_ERROR, "plan writer: layer '%s' has no output %d", l->name, (int)k);
            KILN__TRY(tensor_index(w, l->outputs[k], &index));
            put_u32(b, (uint32_t)index);
        }
        if ((l->nb_inputs + l->nb_outputs) % 2) put_u32(b, 0);
    }
    return KILN_OK;
}

static kiln_status write_io(plan_writer *w) {
    kiln__buf *b = &w->sec[KILN__SEC_IO];
    put_u32(b, (uint32_t)w->net->nb_inputs);
    put_u32(b, (uint32_t)w->net->nb_outputs);
    for (int64_t i = 0; i < w->net->nb_inputs + w->net->nb_outputs; i++) {
        const kiln_tensor *t = i < w->net->nb_inputs ? w->net->inputs[i] : w->net->outputs[i - w->net->nb_inputs];
        int32_t index = -1;
        if (!t) return kiln__error(KILN_INTERNAL_ERROR, "plan writer: missing IO tensor %lld", (long long)i);
        KILN__TRY(tensor_index(w, t, &index));
        put_u32(b, (uint32_t)index);
    }
    return KILN_OK;
}

static kiln_status write_profiles(plan_writer *w, const kiln_engine *engine) {
    kiln__buf *b = &w->sec[KILN__SEC_PROFILES];
    put_u32(b, (uint32_t)engine->nb_profiles);
    put_u32(b, 0);
    for (int32_t i = 0; i < engine->nb_profiles; i++) {
        const kiln__profile *p = &engine->profiles[i];
        put_u32(b, (uint32_t)p->nb_entries);
        put_u32(b, 0);
        for (int32_t e = 0; e < p->nb_entries; e++) {
            uint32_t name = 0;
            KILN__TRY(put_string(w, p->entries[e].input, &name));
            put_u32(b, name);
            put_u32(b, 0);
            for (int s = 0; s < 3; s++) {
                const kiln_dims *dims = &p->entries[e].dims[s];
                if (dims->nb_dims < 0 || dims->nb_dims > KILN_MAX_DIMS)
                    return kiln__error(KILN_INTERNAL_ERROR, "plan writer: profile %d input '%s' has rank %d",
                                       (int)i, p->entries[e].input, (int)dims->nb_dims);
                put_u32(b, (uint32_t)dims->nb_dims);
                put_u32(b, 0);
                put_dims(b, dims);
            }
        }
    }
    return KILN_OK;
}

static kiln_status write_sections(plan_writer *w, const kiln_engine *engine) {
    const kiln_network *net = w->net;
    if (net->nb_tensors > INT32_MAX || net->nb_layers > INT32_MAX || net->nb_inputs > INT32_MAX ||
        net->nb_outputs > INT32_MAX)
        return kiln__error(KILN_UNSUPPORTED, "plan writer: network too large for the plan format");
    KILN__TRY(write_tensors(w));
    KILN__TRY(write_layers(w));
    KILN__TRY(write_io(w));
    KILN__TRY(write_profiles(w, engine));
    for (int s = 0; s < KILN__SEC_WEIGHTS; s++) KILN__TRY(kiln__buf_status(&w->sec[s]));
    return KILN_OK;
}

/* Appends the header, the sections and the weights to out, relative to its current end. */
static kiln_status assemble(plan_writer *w, const kiln_engine *engine, kiln__buf *out) {
    size_t base = out->size;
    uint64_t offsets[KILN__SEC_COUNT], sizes[KILN__SEC_COUNT];
    put_zeros(out, KILN__PLAN_HEADER_SIZE);
    for (int s = 0; s < KILN__SEC_COUNT; s++) {
        size_t align = s == KILN__SEC_WEIGHTS ? KILN__PLAN_WEIGHTS_ALIGN : KILN__PLAN_SECTION_ALIGN;
        size_t at = out->size - base;
        put_zeros(out, (align - at % align) % align);
        offsets[s] = out->size - base;
        if (s != KILN__SEC_WEIGHTS) {
            sizes[s] = w->sec[s].size;
            kiln__buf_append(out, w->sec[s].data, w->sec[s].size);
        }
    }
    /* Weights in layer order, at the offsets write_layers gave them. */
    sizes[KILN__SEC_WEIGHTS] = w->weights_size;
    for (int64_t i = 0; i < w->net->nb_layers; i++) {
        const kiln_layer *l = w->net->layers[i];
        if (!l->weights || !l->weights_bytes) continue;
        size_t at = out->size - base - offsets[KILN__SEC_WEIGHTS];
        put_zeros(out, (KILN__PLAN_WEIGHTS_ALIGN - at % KILN__PLAN_WEIGHTS_ALIGN) % KILN__PLAN_WEIGHTS_ALIGN);
        kiln__buf_append(out, l->weights, l->weights_bytes);
    }
    KILN__TRY(kiln__buf_status(out));

    uint8_t *h = out->data + base;
    size_t total = out->size - base;
    memcpy(h + KILN__H_MAGIC, KILN__PLAN_MAGIC, 8);
    kiln__wr_u32(h + KILN__H_FORMAT, KILN__PLAN_FORMAT_VERSION);
    kiln__wr_u32(h + KILN__H_LIBRARY, KILN_VERSION);
    kiln__wr_u32(h + KILN__H_HEADER_SIZE, KILN__PLAN_HEADER_SIZE);
    kiln__wr_u32(h + KILN__H_DEVICE, (uint32_t)engine->device);
    /* strnlen keeps the NUL padding deterministic whatever follows the terminator in memory. */
    memcpy(h + KILN__H_GPU_ARCH, engine->gpu_arch, strnlen(engine->gpu_arch, KILN__GPU_ARCH_LEN - 1));
    kiln__wr_u32(h + KILN__H_FLAGS, engine->flags);
    kiln__wr_u32(h + KILN__H_PARAMS_SIZE, (uint32_t)sizeof(kiln__params));
    kiln__wr_u64(h + KILN__H_WORKSPACE, engine->workspace_limit);
    kiln__wr_u64(h + KILN__H_TOTAL_SIZE, total);
    kiln__wr_u32(h + KILN__H_NB_SECTIONS, KILN__SEC_COUNT);
    for (int s = 0; s < KILN__SEC_COUNT; s++) {
        kiln__wr_u64(h + KILN__H_SECTIONS + 16 * s, offsets[s]);
        kiln__wr_u64(h + KILN__H_SECTIONS + 16 * s + 8, sizes[s]);
    }
    kiln__plan_seal(h, total);
    return KILN_OK;
}

kiln_status kiln__plan_write(const kiln_engine *engine, kiln__buf *out) {
    if (!engine || !engine->net || !out) return kiln__error(KILN_INVALID_ARGUMENT, "plan writer: no engine");
    if (engine->device != KILN_DEVICE_CPU && engine->device != KILN_DEVICE_CUDA)
        return kiln__error(KILN_INTERNAL_ERROR, "plan writer: unknown device %d", (int)engine->device);
    if (engine->nb_profiles < 0 || (engine->nb_profiles && !engine->profiles))
        return kiln__error(KILN_INTERNAL_ERROR, "plan writer: bad profile list");
    plan_writer w = {.net = engine->net};
    for (int s = 0; s < KILN__SEC_WEIGHTS; s++) kiln__buf_init(&w.sec[s], &engine->alloc);
    size_t base = out->size;
    kiln_status st = write_sections(&w, engine);
    if (st == KILN_OK) st = assemble(&w, engine, out);
    for (int s = 0; s < KILN__SEC_WEIGHTS; s++) kiln__buf_free(&w.sec[s]);
    if (st != KILN_OK) out->size = base;
    return st;
}
