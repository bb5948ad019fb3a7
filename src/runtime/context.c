/* Execution contexts: per-run shapes, bound memory and the CPU run loop. */
#include "backend.h"
#include "engine.h"
#include "eval.h"

#include <string.h>

typedef struct io_slot {
    kiln_dims dims;    /* inputs: the shape set (or the static one); outputs: last known */
    bool dims_set;
    void *data;        /* bound memory */
    size_t bytes;
} io_slot;

struct kiln_context {
    kiln_engine *engine;
    int32_t profile;
    io_slot *io; /* inputs then outputs */
    kiln__eval ev;
    bool ev_ready;
    bool shapes_valid; /* output dims in io[] match the current input dims */
    bool executed;
    uint64_t activation_bytes;
    kiln__arena_plan plan; /* CPU engines: activation placement for the current shapes */
    bool plan_ready;
    uint8_t *arena;
    uint64_t arena_capacity;
    void **layer_cache; /* CPU engines: one kernel cache slot per layer (kiln__cpu_ctx.cache) */
    kiln__layer_timing *timing; /* per-layer profiling accumulators, allocated when first enabled */
    bool profiling;
    void *device_state; /* device engines: the backend's per-context state */
    void **io_data;     /* device engines: IO pointers in engine order, for the backend */
    size_t *io_bytes;
};

static int32_t nb_io(const kiln_context *c) { return kiln_engine_num_io_tensors(c->engine); }

static int32_t io_index(const kiln_context *c, const char *name) {
    if (!name) return -1;
    for (int32_t i = 0; i < nb_io(c); i++)
        if (strcmp(kiln_engine_io_tensor_name(c->engine, i), name) == 0) return i;
    return -1;
}

static const kiln_tensor *io_tensor(const kiln_context *c, int32_t i) {
    const kiln_network *net = c->engine->net;
    return i < net->nb_inputs ? net->inputs[i] : net->outputs[i - net->nb_inputs];
}

kiln_status kiln_engine_create_context(kiln_engine *e, kiln_context **out) {
    if (!e || !out) return kiln__error(KILN_INVALID_ARGUMENT, "create_context: engine or output pointer is NULL");
    *out = NULL;
    kiln_context *c = kiln__calloc(&e->alloc, 1, sizeof *c);
    if (!c) return KILN_OUT_OF_MEMORY;
    c->engine = e;
    c->io = kiln__calloc(&e->alloc, (size_t)(nb_io(c) ? nb_io(c) : 1), sizeof *c->io);
    if (!c->io) {
        kiln__free(&e->alloc, c);
        return KILN_OUT_OF_MEMORY;
    }
    for (int32_t i = 0; i < e->net->nb_inputs; i++) {
        c->io[i].dims = e->net->inputs[i]->dims;
        c->io[i].dims_set = kiln__dims_volume(&c->io[i].dims) >= 0;
    }
    if (e->device == KILN_DEVICE_CPU) {
        c->layer_cache = kiln__calloc(&e->alloc, (size_t)(e->net->nb_layers ? e->net->nb_layers : 1),
                                      sizeof *c->layer_cache);
        if (!c->layer_cache) {
            kiln_context_destroy(c);
            return KILN_OUT_OF_MEMORY;
        }
    }
    if (e->device == KILN_DEVICE_CUDA) {
        kiln_status st = KILN_OK;
        size_t n = (size_t)(nb_io(c) ? nb_io(c) : 1);
        c->io_data = kiln__calloc(&e->alloc, n, sizeof *c->io_data);
        c->io_bytes = kiln__calloc(&e->alloc, n, sizeof *c->io_bytes);
        if (!c->io_data || !c->io_bytes) st = KILN_OUT_OF_MEMORY;
        if (st == KILN_OK && !kiln__cuda())
            st = kiln__error(KILN_INCOMPATIBLE, "CUDA engine, but this kiln was built without the CUDA backend");
        if (st == KILN_OK) st = kiln__cuda()->context_create(e, &c->device_state);
        if (st != KILN_OK) {
            kiln_context_destroy(c);
            return st;
        }
    }
    *out = c;
    return KILN_OK;
}

static void drop_eval(kiln_context *c) {
    if (c->ev_ready) kiln__eval_free(&c->ev);
    c->ev_ready = false;
}

void kiln_context_destroy(kiln_context *c) {
    if (!c) return;
    kiln__alloc alloc = c->engine->alloc;
    drop_eval(c);
    kiln__arena_plan_free(&alloc, &c->plan);
    kiln__free(&alloc, c->arena);
    if (c->layer_cache)
        for (int64_t i = 0; i < c->engine->net->nb_layers; i++) kiln__free(&alloc, c->layer_cache[i]);
    kiln__free(&alloc, c->layer_cache);
    kiln__free(&alloc, c->timing);
    if (c->device_state) kiln__cuda()->context_destroy(c->device_state);
    kiln__free(&alloc, c->io_data);
    kiln__free(&alloc, c->io_bytes);
    kiln__free(&alloc, c->io);
    kiln__free(&alloc, c);
}

kiln_status kiln_context_set_profile(kiln_context *c, int32_t profile) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "set_profile: context is NULL");
    int32_t n = c->engine->nb_profiles;
    if (profile < 0 || (profile > 0 && profile >= n))
        return kiln__error(KILN_NOT_FOUND, "set_profile: the engine has %d profiles, no profile %d", n, profile);
    c->profile = profile;
    c->shapes_valid = false;
    return KILN_OK;
}

kiln_status kiln_context_set_input_shape(kiln_context *c, const char *name, const kiln_dims *dims) {
    if (!c || !name || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "set_input_shape: NULL argument");
    int32_t i = io_index(c, name);
    if (i < 0 || i >= c->engine->net->nb_inputs)
        return kiln__error(KILN_NOT_FOUND, "set_input_shape: the engine has no input named '%s'", name);
    const kiln_tensor *t = io_tensor(c, i);
    char got[160], want[160];
    kiln__dims_format(dims, got, sizeof got);
    kiln__dims_format(&t->dims, want, sizeof want);
    if (dims->nb_dims != t->dims.nb_dims)
        return kiln__error(KILN_INVALID_ARGUMENT, "set_input_shape '%s': shape %s has rank %d, expected %s", name, got,
                           dims->nb_dims, want);
    for (int32_t j = 0; j < dims->nb_dims; j++) {
        if (dims->d[j] < 0)
            return kiln__error(KILN_INVALID_ARGUMENT, "set_input_shape '%s': shape %s has a negative dim", name, got);
        if (t->dims.d[j] >= 0 && dims->d[j] != t->dims.d[j])
            return kiln__error(KILN_INVALID_ARGUMENT, "set_input_shape '%s': shape %s does not match the engine's %s",
                               name, got, want);
    }
    if (c->engine->nb_profiles) {
        kiln_dims lo, hi;
        if (kiln_engine_profile_dims(c->engine, c->profile, name, KILN_PROFILE_MIN, &lo) == KILN_OK &&
            kiln_engine_profile_dims(c->engine, c->profile, name, KILN_PROFILE_MAX, &hi) == KILN_OK) {
            for (int32_t j = 0; j < dims->nb_dims; j++)
                if (dims->d[j] < lo.d[j] || dims->d[j] > hi.d[j]) {
                    char slo[160], shi[160];
                    kiln__dims_format(&lo, slo, sizeof slo);
                    kiln__dims_format(&hi, shi, sizeof shi);
                    return kiln__error(KILN_INVALID_ARGUMENT,
                                       "set_input_shape '%s': shape %s is outside profile %d (min %s, max %s)", name,
                                       got, c->profile, slo, shi);
                }
        }
    }
    c->io[i].dims = *dims;
    c->io[i].dims_set = true;
    c->shapes_valid = false;
    return KILN_OK;
}

static kiln_status check_inputs_shaped(const kiln_context *c) {
    for (int32_t i = 0; i < c->engine->net->nb_inputs; i++)
        if (!c->io[i].dims_set)
            return kiln__error(KILN_INVALID_STATE, "input '%s' has dynamic dims: call kiln_context_set_input_shape first",
                               io_tensor(c, i)->name);
    return KILN_OK;
}

/* Infers output dims for the current input shapes (shape tensors folded on the host). */
static kiln_status infer_outputs(kiln_context *c) {
    if (c->shapes_valid) return KILN_OK;
    KILN__TRY(check_inputs_shaped(c));
    const kiln_network *net = c->engine->net;
    kiln__eval ev;
    KILN__TRY(kiln__eval_init(&ev, net, &c->engine->alloc, NULL));
    for (int32_t i = 0; i < net->nb_inputs; i++) kiln__eval_set_input(&ev, i, &c->io[i].dims, NULL);
    kiln_status st = kiln__eval_run(&ev, KILN__EVAL_SHAPES);
    if (st == KILN_OK && c->engine->device == KILN_DEVICE_CPU) {
        kiln__arena_plan_free(&c->engine->alloc, &c->plan);
        c->plan_ready = false;
        st = kiln__arena_plan_make(net, ev.values, &c->engine->alloc, &c->plan);
        c->plan_ready = st == KILN_OK;
    }
    if (st == KILN_OK) {
        for (int64_t o = 0; o < net->nb_outputs; o++)
            c->io[net->nb_inputs + o].dims = ev.values[net->outputs[o]->index].dims;
        c->shapes_valid = true;
    }
    kiln__eval_free(&ev);
    return st;
}

kiln_status kiln_context_get_tensor_shape(kiln_context *c, const char *name, kiln_dims *dims) {
    if (!c || !name || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "get_tensor_shape: NULL argument");
    int32_t i = io_index(c, name);
    if (i < 0) return kiln__error(KILN_NOT_FOUND, "get_tensor_shape: the engine has no input or output named '%s'", name);
    if (i < c->engine->net->nb_inputs) {
        *dims = c->io[i].dims;
        return KILN_OK;
    }
    if (!(c->executed && c->shapes_valid)) KILN__TRY(infer_outputs(c));
    *dims = c->io[i].dims;
    return KILN_OK;
}

kiln_status kiln_context_set_tensor_address(kiln_context *c, const char *name, void *data, size_t size) {
    if (!c || !name) return kiln__error(KILN_INVALID_ARGUMENT, "set_tensor_address: context or name is NULL");
    int32_t i = io_index(c, name);
    if (i < 0)
        return kiln__error(KILN_NOT_FOUND, "set_tensor_address: the engine has no input or output named '%s'", name);
    if (!data && size) return kiln__error(KILN_INVALID_ARGUMENT, "set_tensor_address '%s': data is NULL", name);
    c->io[i].data = data;
    c->io[i].bytes = size;
    return KILN_OK;
}

kiln_status kiln_context_get_tensor_address(kiln_context *c, const char *name, void **data) {
    if (!c || !name || !data) return kiln__error(KILN_INVALID_ARGUMENT, "get_tensor_address: NULL argument");
    *data = NULL;
    int32_t i = io_index(c, name);
    if (i < 0)
        return kiln__error(KILN_NOT_FOUND, "get_tensor_address: the engine has no input or output named '%s'", name);
    if (c->io[i].data) {
        *data = c->io[i].data;
        return KILN_OK;
    }
    if (i >= c->engine->net->nb_inputs && c->executed && c->ev_ready) {
        *data = c->ev.values[io_tensor(c, i)->index].data;
        return KILN_OK;
    }
    return kiln__error(KILN_INVALID_STATE, "get_tensor_address '%s': no memory is bound%s", name,
                       i >= c->engine->net->nb_inputs ? " and the context has not executed" : "");
}

/* Device engines: host shape inference (cached while the input shapes stay), then the
 * backend queues the kernels. */
static kiln_status enqueue_device(kiln_context *c, void *stream) {
    kiln_engine *e = c->engine;
    const kiln_network *net = e->net;
    KILN__TRY(check_inputs_shaped(c));
    for (int32_t i = 0; i < nb_io(c); i++) {
        if (!c->io[i].data && c->io[i].bytes == 0 && i >= net->nb_inputs)
            return kiln__error(KILN_INVALID_STATE, "enqueue: output '%s' has no device memory bound (CUDA engines need "
                               "every output bound)", io_tensor(c, i)->name);
        c->io_data[i] = c->io[i].data;
        c->io_bytes[i] = c->io[i].bytes;
    }
    if (!c->shapes_valid || !c->ev_ready) {
        drop_eval(c);
        KILN__TRY(kiln__eval_init(&c->ev, net, &e->alloc, NULL));
        c->ev_ready = true;
        for (int32_t i = 0; i < net->nb_inputs; i++) kiln__eval_set_input(&c->ev, i, &c->io[i].dims, NULL);
        kiln_status st = kiln__eval_run(&c->ev, KILN__EVAL_SHAPES);
        if (st != KILN_OK) {
            drop_eval(c);
            return st;
        }
        for (int64_t o = 0; o < net->nb_outputs; o++)
            c->io[net->nb_inputs + o].dims = c->ev.values[net->outputs[o]->index].dims;
        c->shapes_valid = true;
    }
    KILN__TRY(kiln__cuda()->enqueue(c->device_state, e, &c->ev, c->io_data, c->io_bytes, stream));
    c->executed = true;
    return KILN_OK;
}

kiln_status kiln_context_execute(kiln_context *c) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "execute: context is NULL");
    kiln_engine *e = c->engine;
    const kiln_network *net = e->net;
    if (e->device == KILN_DEVICE_CUDA) {
        KILN__TRY(enqueue_device(c, NULL));
        return kiln__cuda()->synchronize(NULL);
    }
    KILN__TRY(check_inputs_shaped(c));
    c->executed = false;
    for (int32_t i = 0; i < net->nb_inputs; i++) {
        size_t need = 0;
        kiln__dtype_bytes(net->inputs[i]->dtype, kiln__dims_volume(&c->io[i].dims), &need);
        if (!c->io[i].data && need)
            return kiln__error(KILN_INVALID_STATE, "execute: input '%s' has no memory bound", net->inputs[i]->name);
        if (c->io[i].bytes < need)
            return kiln__error(KILN_INVALID_ARGUMENT, "execute: input '%s' needs %zu bytes, the bound buffer has %zu",
                               net->inputs[i]->name, need, c->io[i].bytes);
    }
    if (!c->shapes_valid || !c->plan_ready) KILN__TRY(infer_outputs(c));
    if (c->arena_capacity < c->plan.size) {
        kiln__free(&e->alloc, c->arena);
        c->arena_capacity = 0;
        c->arena = kiln__malloc_large(&e->alloc, (size_t)c->plan.size);
        if (!c->arena) return kiln__error(KILN_OUT_OF_MEMORY, "execute: no memory for %llu bytes of activations",
                                          (unsigned long long)c->plan.size);
        c->arena_capacity = c->plan.size;
    }
    drop_eval(c);
    KILN__TRY(kiln__eval_init(&c->ev, net, &e->alloc, e->pool));
    c->ev_ready = true;
    c->ev.plan = &c->plan;
    c->ev.arena = c->arena;
    c->ev.layer_cache = c->layer_cache;
    c->ev.map = e->map.data ? &e->map : NULL;
    c->ev.timing = c->profiling ? c->timing : NULL;
    for (int32_t i = 0; i < net->nb_inputs; i++) kiln__eval_set_input(&c->ev, i, &c->io[i].dims, c->io[i].data);
    for (int64_t o = 0; o < net->nb_outputs; o++) {
        const io_slot *s = &c->io[net->nb_inputs + o];
        if (s->data && !net->outputs[o]->is_input) kiln__eval_bind(&c->ev, net->outputs[o]->index, s->data, s->bytes);
    }
    kiln_status st = kiln__eval_run(&c->ev, KILN__EVAL_EXECUTE);
    for (int64_t o = 0; st == KILN_OK && o < net->nb_outputs; o++) {
        io_slot *s = &c->io[net->nb_inputs + o];
        const kiln__value *v = &c->ev.values[net->outputs[o]->index];
        s->dims = v->dims;
        /* Outputs that alias an input or a constant are copied into the bound buffer. */
        if (s->data && v->data != s->data) {
            if (s->bytes < v->bytes)
                st = kiln__error(KILN_INVALID_ARGUMENT, "execute: output '%s' needs %zu bytes, the bound buffer has %zu",
                                 net->outputs[o]->name, v->bytes, s->bytes);
            else if (v->bytes)
                memcpy(s->data, v->data, v->bytes);
        }
    }
    c->activation_bytes = c->plan.size + c->ev.peak_bytes;
    if (st != KILN_OK) {
        drop_eval(c);
        return st;
    }
    c->shapes_valid = true;
    c->executed = true;
    return KILN_OK;
}

kiln_status kiln_context_enqueue(kiln_context *c, void *stream) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "enqueue: context is NULL");
    if (c->engine->device == KILN_DEVICE_CUDA) return enqueue_device(c, stream);
    return kiln_context_execute(c);
}

uint64_t kiln_context_activation_bytes(const kiln_context *c) { return c ? c->activation_bytes : 0; }

kiln_status kiln_context_set_profiling(kiln_context *c, int enabled) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "set_profiling: context is NULL");
    if (!enabled) {
        c->profiling = false;
        return KILN_OK;
    }
    if (c->engine->device != KILN_DEVICE_CPU)
        return kiln__error(KILN_UNSUPPORTED, "set_profiling: per-layer profiling is implemented for CPU engines only, "
                           "not yet for CUDA engines");
    if (!c->timing) {
        size_t n = (size_t)(c->engine->net->nb_layers ? c->engine->net->nb_layers : 1);
        c->timing = kiln__calloc(&c->engine->alloc, n, sizeof *c->timing);
        if (!c->timing)
            return kiln__error(KILN_OUT_OF_MEMORY, "set_profiling: no memory for %zu layer accumulators", n);
    }
    c->profiling = true;
    return KILN_OK;
}

kiln_status kiln_context_profiling_num_layers(const kiln_context *c, int32_t *count) {
    if (!c || !count) return kiln__error(KILN_INVALID_ARGUMENT, "profiling_num_layers: NULL argument");
    *count = c->timing ? (int32_t)c->engine->net->nb_layers : 0;
    return KILN_OK;
}

kiln_status kiln_context_profiling_layer(const kiln_context *c, int32_t index, kiln_layer_profile *profile) {
    if (!c || !profile) return kiln__error(KILN_INVALID_ARGUMENT, "profiling_layer: NULL argument");
    if (profile->struct_size < sizeof profile->struct_size)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "profiling_layer: struct_size is %zu; set it to sizeof(kiln_layer_profile)",
                           profile->struct_size);
    int32_t n = c->timing ? (int32_t)c->engine->net->nb_layers : 0;
    if (index < 0 || index >= n)
        return kiln__error(KILN_NOT_FOUND, "profiling_layer: index %d is out of range (%d entries%s)", index, n,
                           c->timing ? "" : ": profiling was never enabled");
    const kiln_layer *l = c->engine->net->layers[index];
    kiln_layer_profile full = {
        .struct_size = profile->struct_size,
        .name = l->name,
        .type_name = kiln_layer_type_name(l->type),
        .type = l->type,
        .count = c->timing[index].count,
        .total_ms = (double)c->timing[index].total_ns * 1e-6,
    };
    /* Callers compiled against an older, shorter struct get the fields that fit. */
    memcpy(profile, &full, profile->struct_size < sizeof full ? profile->struct_size : sizeof full);
    return KILN_OK;
}

kiln_status kiln_context_reset_profiling(kiln_context *c) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "reset_profiling: context is NULL");
    if (c->timing) memset(c->timing, 0, (size_t)c->engine->net->nb_layers * sizeof *c->timing);
    return KILN_OK;
}
