/* Engines: building, validation, queries, the inspector, serialization and the runtime. */
#include "engine.h"

#include "../passes/passes.h"
#include "../plan/plan.h"
#include "backend.h"
#include "eval.h"

#include <string.h>

#ifdef KILN_HAVE_CUDA
extern const kiln__device_backend kiln__cuda_backend;
const kiln__device_backend *kiln__cuda(void) { return &kiln__cuda_backend; }
#else
const kiln__device_backend *kiln__cuda(void) { return NULL; }
#endif

int kiln_device_available(kiln_device_type device) {
    if (device == KILN_DEVICE_CPU) return 1;
    if (device == KILN_DEVICE_CUDA && kiln__cuda()) return kiln__cuda()->device_count() > 0;
    return 0;
}

/* Build-time work of a device backend: target architecture, layer checks, tactics. */
static kiln_status prepare_device(kiln_engine *e, kiln_timing_cache *cache) {
    const kiln__device_backend *be = kiln__cuda();
    KILN__TRY(be->arch(e->gpu_arch, sizeof e->gpu_arch));
    for (int64_t i = 0; i < e->net->nb_layers; i++) KILN__TRY(be->check_layer(e, e->net->layers[i]));
    return be->select_tactics(e, cache);
}

kiln_status kiln__engine_alloc(const kiln__alloc *alloc, const kiln__log *log, kiln_engine **out) {
    *out = kiln__calloc(alloc, 1, sizeof **out);
    if (!*out) return KILN_OUT_OF_MEMORY;
    (*out)->alloc = *alloc;
    if (log) (*out)->log = *log;
    return KILN_OK;
}

void kiln_engine_destroy(kiln_engine *e) {
    if (!e) return;
    kiln__alloc alloc = e->alloc;
    kiln_network_destroy(e->net);
    for (int32_t i = 0; i < e->nb_profiles; i++) kiln__profile_clear(&alloc, &e->profiles[i]);
    kiln__free(&alloc, e->profiles);
    if (e->map_owner) kiln__shared_unref(e->map_owner);
    kiln__pool_destroy(e->owned_pool);
    kiln__free(&alloc, e);
}

static const kiln__profile_dims *profile_entry(const kiln__profile *p, const char *name) {
    for (int32_t i = 0; i < p->nb_entries; i++)
        if (strcmp(p->entries[i].input, name) == 0) return &p->entries[i];
    return NULL;
}

static const char *selector_name(int k) { return k == 0 ? "min" : k == 1 ? "opt" : "max"; }

/* Checks every profile against the network inputs. */
static kiln_status check_profiles(const kiln_engine *e) {
    const kiln_network *net = e->net;
    for (int64_t i = 0; i < net->nb_inputs; i++) {
        const kiln_tensor *t = net->inputs[i];
        bool dynamic = kiln__dims_volume(&t->dims) < 0;
        if (dynamic && e->nb_profiles == 0) {
            char dims[160];
            kiln__dims_format(&t->dims, dims, sizeof dims);
            return kiln__error(KILN_INVALID_ARGUMENT,
                               "input '%s' has dynamic dims %s: add an optimization profile with its min/opt/max dims",
                               t->name, dims);
        }
        for (int32_t p = 0; p < e->nb_profiles; p++) {
            const kiln__profile_dims *pd = profile_entry(&e->profiles[p], t->name);
            if (!pd) {
                if (dynamic)
                    return kiln__error(KILN_INVALID_ARGUMENT, "profile %d has no dims for dynamic input '%s'", p,
                                       t->name);
                continue;
            }
            for (int k = 0; k < 3; k++) {
                const kiln_dims *d = &pd->dims[k];
                if (d->nb_dims != t->dims.nb_dims)
                    return kiln__error(KILN_INVALID_ARGUMENT, "profile %d: %s dims of input '%s' have rank %d, expected %d",
                                       p, selector_name(k), t->name, d->nb_dims, t->dims.nb_dims);
                for (int32_t j = 0; j < d->nb_dims; j++) {
                    if (t->dims.d[j] >= 0 && d->d[j] != t->dims.d[j])
                        return kiln__error(KILN_INVALID_ARGUMENT,
                                           "profile %d: %s dim %d of input '%s' is %lld but the input fixes it to %lld",
                                           p, selector_name(k), j, t->name, (long long)d->d[j], (long long)t->dims.d[j]);
                    if (d->d[j] < 0)
                        return kiln__error(KILN_INVALID_ARGUMENT, "profile %d: %s dim %d of input '%s' is negative", p,
                                           selector_name(k), j, t->name);
                }
            }
            for (int32_t j = 0; j < t->dims.nb_dims; j++)
                if (pd->dims[0].d[j] > pd->dims[1].d[j] || pd->dims[1].d[j] > pd->dims[2].d[j])
                    return kiln__error(KILN_INVALID_ARGUMENT,
                                       "profile %d: input '%s' dim %d needs min <= opt <= max (got %lld, %lld, %lld)", p,
                                       t->name, j, (long long)pd->dims[0].d[j], (long long)pd->dims[1].d[j],
                                       (long long)pd->dims[2].d[j]);
        }
    }
    for (int32_t p = 0; p < e->nb_profiles; p++)
        for (int32_t i = 0; i < e->profiles[p].nb_entries; i++)
            if (!kiln_network_find_tensor(net, e->profiles[p].entries[i].input) ||
                !kiln_network_find_tensor(net, e->profiles[p].entries[i].input)->is_input)
                return kiln__error(KILN_NOT_FOUND, "profile %d names '%s', which is not a network input", p,
                                   e->profiles[p].entries[i].input);
    return KILN_OK;
}

/* Checks the graph's structure: inputs unproduced, every layer input available before use. */
static kiln_status check_structure(const kiln_network *net) {
    if (net->nb_outputs == 0) return kiln__error(KILN_INVALID_ARGUMENT, "the network has no outputs");
    kiln__alloc alloc = net->alloc;
    bool *ready = kiln__calloc(&alloc, (size_t)(net->nb_tensors ? net->nb_tensors : 1), sizeof *ready);
    if (!ready) return KILN_OUT_OF_MEMORY;
    kiln_status st = KILN_OK;
    for (int64_t i = 0; i < net->nb_inputs; i++) ready[net->inputs[i]->index] = true;
    for (int64_t i = 0; st == KILN_OK && i < net->nb_layers; i++) {
        const kiln_layer *l = net->layers[i];
        for (int32_t k = 0; st == KILN_OK && k < l->nb_inputs; k++)
            if (l->inputs[k] && !ready[l->inputs[k]->index])
                st = kiln__layer_error(l, KILN_INVALID_ARGUMENT, "input %d ('%s') is used before it is computed", k,
                                       l->inputs[k]->name);
        for (int32_t k = 0; k < l->nb_outputs; k++) ready[l->outputs[k]->index] = true;
    }
    for (int64_t i = 0; st == KILN_OK && i < net->nb_outputs; i++)
        if (!ready[net->outputs[i]->index])
            st = kiln__error(KILN_INVALID_ARGUMENT, "output '%s' is never computed", net->outputs[i]->name);
    kiln__free(&alloc, ready);
    return st;
}

/* Infers every tensor's dims for one set of input dims; merges them into `merged` (-1 where
 * evaluations disagree). first: merged is empty. */
static kiln_status infer_with(const kiln_engine *e, const kiln_dims *input_dims, kiln_dims *merged, bool first) {
    kiln__eval ev;
    KILN__TRY(kiln__eval_init(&ev, e->net, &e->alloc, NULL));
    for (int64_t i = 0; i < e->net->nb_inputs; i++) kiln__eval_set_input(&ev, i, &input_dims[i], NULL);
    kiln_status st = kiln__eval_run(&ev, KILN__EVAL_SHAPES);
    for (int64_t t = 0; st == KILN_OK && t < e->net->nb_tensors; t++) {
        const kiln_dims *d = &ev.values[t].dims;
        if (first) {
            merged[t] = *d;
        } else if (merged[t].nb_dims != d->nb_dims) {
            st = kiln__error(KILN_UNSUPPORTED, "tensor '%s' changes rank between profile shapes",
                             e->net->tensors[t]->name);
        } else {
            for (int32_t j = 0; j < d->nb_dims; j++)
                if (merged[t].d[j] != d->d[j]) merged[t].d[j] = -1;
        }
    }
    kiln__eval_free(&ev);
    return st;
}

kiln_status kiln__engine_validate(kiln_engine *e) {
    kiln_network *net = e->net;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "engine has no network");
    KILN__TRY(check_structure(net));
    KILN__TRY(check_profiles(e));
    size_t n = (size_t)(net->nb_tensors ? net->nb_tensors : 1);
    kiln_dims *merged = kiln__calloc(&e->alloc, n, sizeof *merged);
    kiln_dims *input_dims = kiln__calloc(&e->alloc, (size_t)(net->nb_inputs ? net->nb_inputs : 1), sizeof *input_dims);
    kiln_status st = merged && input_dims ? KILN_OK : KILN_OUT_OF_MEMORY;
    bool first = true;
    if (st == KILN_OK && e->nb_profiles == 0) {
        for (int64_t i = 0; i < net->nb_inputs; i++) input_dims[i] = net->inputs[i]->dims;
        st = infer_with(e, input_dims, merged, true);
        first = false;
    }
    for (int32_t p = 0; st == KILN_OK && p < e->nb_profiles; p++) {
        for (int k = 0; st == KILN_OK && k < 3; k++) {
            for (int64_t i = 0; i < net->nb_inputs; i++) {
                const kiln__profile_dims *pd = profile_entry(&e->profiles[p], net->inputs[i]->name);
                input_dims[i] = pd ? pd->dims[k] : net->inputs[i]->dims;
            }
            st = infer_with(e, input_dims, merged, first);
            if (st != KILN_OK) kiln__error_prefix(st, "with the %s shapes of profile %d", selector_name(k), p);
            first = false;
        }
    }
    if (st == KILN_OK)
        for (int64_t t = 0; t < net->nb_tensors; t++)
            if (!net->tensors[t]->is_input) {
                net->tensors[t]->dims = merged[t];
            }
    kiln__free(&e->alloc, merged);
    kiln__free(&e->alloc, input_dims);
    return st;
}

kiln_status kiln_builder_build_engine(kiln_builder *b, const kiln_network *network, const kiln_builder_config *config,
                                      kiln_engine **out) {
    if (out) *out = NULL;
    if (!b || !network || !config || !out)
        return kiln__error(KILN_INVALID_ARGUMENT, "build_engine: builder, network, config or output pointer is NULL");
    if (config->device == KILN_DEVICE_CUDA && !kiln_device_available(KILN_DEVICE_CUDA))
        return kiln__error(KILN_UNSUPPORTED, "build_engine: no CUDA device is available to this kiln build");
    kiln_engine *e;
    KILN__TRY(kiln__engine_alloc(&b->alloc, &b->log, &e));
    e->device = config->device;
    e->flags = config->flags;
    e->workspace_limit = config->workspace_limit;
    kiln_status st = kiln__network_clone(network, &e->net);
    if (st == KILN_OK) st = kiln__network_remove_dead(e->net);
    if (st == KILN_OK && config->nb_profiles) {
        e->profiles = kiln__calloc(&e->alloc, (size_t)config->nb_profiles, sizeof *e->profiles);
        if (!e->profiles) st = KILN_OUT_OF_MEMORY;
        for (int32_t i = 0; st == KILN_OK && i < config->nb_profiles; i++) {
            st = kiln__profile_copy(&e->alloc, &config->profiles[i], &e->profiles[i]);
            if (st == KILN_OK) e->nb_profiles++;
        }
    }
    /* The passes fuse on the shapes the profiles accept, so the profiles must be sound first. */
    if (st == KILN_OK) st = check_profiles(e);
    kiln__shape_points pts = {0};
    if (st == KILN_OK) st = kiln__shape_points_make(e->net, e->profiles, e->nb_profiles, &pts);
    int32_t fused = 0, simplified = 0;
    if (st == KILN_OK) st = kiln__pass_simplify(e->net, &pts, &simplified);
    if (st == KILN_OK) st = kiln__pass_fuse(e->net, &pts, &fused);
    if (e->net) kiln__shape_points_free(e->net, &pts);
    if (st == KILN_OK && fused) kiln__logf(&b->log, KILN_LOG_VERBOSE, "fusion absorbed %d layers", fused);
    if (st == KILN_OK) st = kiln__engine_validate(e);
    if (st == KILN_OK && e->device == KILN_DEVICE_CUDA) st = prepare_device(e, config->timing_cache);
    if (st == KILN_OK) st = kiln__pool_create(&e->alloc, 0, &e->owned_pool);
    if (st != KILN_OK) {
        kiln_engine_destroy(e);
        return st;
    }
    e->pool = e->owned_pool;
    kiln__logf(&b->log, KILN_LOG_INFO, "built a %s engine: %lld layers", e->device == KILN_DEVICE_CPU ? "CPU" : "CUDA",
               (long long)e->net->nb_layers);
    *out = e;
    return KILN_OK;
}

/* ---------------------------------------------------------------- queries */

kiln_device_type kiln_engine_device(const kiln_engine *e) { return e ? e->device : KILN_DEVICE_CPU; }

int32_t kiln_engine_num_io_tensors(const kiln_engine *e) {
    return e ? (int32_t)(e->net->nb_inputs + e->net->nb_outputs) : 0;
}

static const kiln_tensor *io_tensor(const kiln_engine *e, int32_t i) {
    if (!e || i < 0) return NULL;
    if (i < e->net->nb_inputs) return e->net->inputs[i];
    i -= (int32_t)e->net->nb_inputs;
    return i < e->net->nb_outputs ? e->net->outputs[i] : NULL;
}

const char *kiln_engine_io_tensor_name(const kiln_engine *e, int32_t i) {
    const kiln_tensor *t = io_tensor(e, i);
    return t ? t->name : NULL;
}

static const kiln_tensor *find_io(const kiln_engine *e, const char *name) {
    if (!e || !name) return NULL;
    for (int32_t i = 0; i < kiln_engine_num_io_tensors(e); i++)
        if (strcmp(io_tensor(e, i)->name, name) == 0) return io_tensor(e, i);
    return NULL;
}

kiln_io_mode kiln_engine_tensor_io_mode(const kiln_engine *e, const char *name) {
    const kiln_tensor *t = find_io(e, name);
    return !t ? KILN_IO_NONE : t->is_input ? KILN_IO_INPUT : KILN_IO_OUTPUT;
}

kiln_dtype kiln_engine_tensor_dtype(const kiln_engine *e, const char *name) {
    const kiln_tensor *t = find_io(e, name);
    return t ? t->dtype : KILN_DTYPE_UNDEFINED;
}

kiln_status kiln_engine_tensor_shape(const kiln_engine *e, const char *name, kiln_dims *dims) {
    if (!e || !name || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "engine_tensor_shape: NULL argument");
    const kiln_tensor *t = find_io(e, name);
    if (!t) return kiln__error(KILN_NOT_FOUND, "the engine has no input or output named '%s'", name);
    *dims = t->dims;
    return KILN_OK;
}

const char *kiln_engine_tensor_dim_name(const kiln_engine *e, const char *name, int32_t index) {
    const kiln_tensor *t = find_io(e, name);
    if (!t || index < 0 || index >= t->dims.nb_dims) return NULL;
    return t->dim_names[index];
}

int32_t kiln_engine_num_profiles(const kiln_engine *e) { return e ? e->nb_profiles : 0; }

kiln_status kiln_engine_profile_dims(const kiln_engine *e, int32_t profile, const char *input_name,
                                     kiln_profile_selector which, kiln_dims *dims) {
    if (!e || !input_name || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "engine_profile_dims: NULL argument");
    if (profile < 0 || profile >= e->nb_profiles)
        return kiln__error(KILN_NOT_FOUND, "engine has %d profiles, no profile %d", e->nb_profiles, profile);
    if (which < KILN_PROFILE_MIN || which > KILN_PROFILE_MAX)
        return kiln__error(KILN_INVALID_ARGUMENT, "engine_profile_dims: bad selector %d", (int)which);
    const kiln__profile_dims *pd = profile_entry(&e->profiles[profile], input_name);
    if (!pd) return kiln__error(KILN_NOT_FOUND, "profile %d has no dims for '%s'", profile, input_name);
    *dims = pd->dims[which];
    return KILN_OK;
}

int32_t kiln_engine_num_layers(const kiln_engine *e) { return e ? (int32_t)e->net->nb_layers : 0; }

static void describe_tensor(kiln__buf *b, const kiln_tensor *t) {
    char dims[160];
    kiln__dims_format(&t->dims, dims, sizeof dims);
    kiln__buf_printf(b, "%s:%s%s", t->name, kiln_dtype_name(t->dtype), dims);
}

static void describe_layer(const kiln_layer *l, kiln__buf *b) {
    kiln__buf_printf(b, "%s [%s] ", l->name, kiln_layer_type_name(l->type));
    const kiln__layer_ops *ops = kiln__layer_ops_for(l->type);
    if (ops && ops->describe) ops->describe(l, b);
    kiln__buf_printf(b, " tactic=%d in=(", l->tactic);
    for (int32_t k = 0; k < l->nb_inputs; k++) {
        if (k) kiln__buf_printf(b, ", ");
        if (l->inputs[k]) {
            describe_tensor(b, l->inputs[k]);
        } else {
            kiln__buf_printf(b, "-");
        }
    }
    kiln__buf_printf(b, ") out=(");
    for (int32_t k = 0; k < l->nb_outputs; k++) {
        if (k) kiln__buf_printf(b, ", ");
        describe_tensor(b, l->outputs[k]);
    }
    kiln__buf_printf(b, ")");
}

int64_t kiln_engine_layer_info(const kiln_engine *e, int32_t index, char *buf, size_t buf_size) {
    if (!e || index < 0 || index >= e->net->nb_layers) return -1;
    kiln__buf b;
    kiln__buf_init(&b, &e->alloc);
    describe_layer(e->net->layers[index], &b);
    if (b.failed) {
        kiln__buf_free(&b);
        return -1;
    }
    if (buf && buf_size) {
        size_t n = KILN__MIN(b.size, buf_size - 1);
        memcpy(buf, b.data, n);
        buf[n] = 0;
    }
    int64_t len = (int64_t)b.size;
    kiln__buf_free(&b);
    return len;
}

static void json_string(kiln__buf *b, const char *s) {
    kiln__buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            kiln__buf_printf(b, "\\%c", c);
        } else if (c < 0x20) {
            kiln__buf_printf(b, "\\u%04x", c);
        } else {
            kiln__buf_append(b, s, 1);
        }
    }
    kiln__buf_append(b, "\"", 1);
}

static void json_tensor(kiln__buf *b, const kiln_tensor *t) {
    kiln__buf_printf(b, "{\"name\":");
    json_string(b, t->name);
    kiln__buf_printf(b, ",\"dtype\":\"%s\",\"shape\":[", kiln_dtype_name(t->dtype));
    for (int32_t j = 0; j < t->dims.nb_dims; j++) kiln__buf_printf(b, j ? ",%lld" : "%lld", (long long)t->dims.d[j]);
    kiln__buf_printf(b, "]}");
}

kiln_status kiln_engine_inspect_json(const kiln_engine *e, kiln_blob **out) {
    if (!e || !out) return kiln__error(KILN_INVALID_ARGUMENT, "engine_inspect_json: NULL argument");
    *out = NULL;
    kiln__buf b;
    kiln__buf_init(&b, &e->alloc);
    kiln__buf_printf(&b, "{\"device\":\"%s\",\"gpu_arch\":", e->device == KILN_DEVICE_CPU ? "cpu" : "cuda");
    json_string(&b, e->gpu_arch);
    kiln__buf_printf(&b, ",\"inputs\":[");
    for (int64_t i = 0; i < e->net->nb_inputs; i++) {
        if (i) kiln__buf_printf(&b, ",");
        json_tensor(&b, e->net->inputs[i]);
    }
    kiln__buf_printf(&b, "],\"outputs\":[");
    for (int64_t i = 0; i < e->net->nb_outputs; i++) {
        if (i) kiln__buf_printf(&b, ",");
        json_tensor(&b, e->net->outputs[i]);
    }
    kiln__buf_printf(&b, "],\"layers\":[");
    for (int64_t i = 0; i < e->net->nb_layers; i++) {
        const kiln_layer *l = e->net->layers[i];
        kiln__buf params;
        kiln__buf_init(&params, &e->alloc);
        const kiln__layer_ops *ops = kiln__layer_ops_for(l->type);
        if (ops && ops->describe) ops->describe(l, &params);
        kiln__buf_append(&params, "", 1);
        if (i) kiln__buf_printf(&b, ",");
        kiln__buf_printf(&b, "{\"name\":");
        json_string(&b, l->name);
        kiln__buf_printf(&b, ",\"type\":\"%s\",\"params\":", kiln_layer_type_name(l->type));
        json_string(&b, params.failed ? "" : (const char *)params.data);
        if (params.failed) b.failed = true;
        kiln__buf_free(&params);
        kiln__buf_printf(&b, ",\"tactic\":%d,\"inputs\":[", l->tactic);
        for (int32_t k = 0; k < l->nb_inputs; k++) {
            if (k) kiln__buf_printf(&b, ",");
            if (l->inputs[k]) {
                json_tensor(&b, l->inputs[k]);
            } else {
                kiln__buf_printf(&b, "null");
            }
        }
        kiln__buf_printf(&b, "],\"outputs\":[");
        for (int32_t k = 0; k < l->nb_outputs; k++) {
            if (k) kiln__buf_printf(&b, ",");
            json_tensor(&b, l->outputs[k]);
        }
        kiln__buf_printf(&b, "]}");
    }
    kiln__buf_printf(&b, "]}");
    kiln_status st = kiln__blob_from_buf(&b, out);
    kiln__buf_free(&b);
    return st;
}

/* ---------------------------------------------------------------- serialization */

kiln_status kiln_engine_serialize(const kiln_engine *e, kiln_blob **out) {
    if (!e || !out) return kiln__error(KILN_INVALID_ARGUMENT, "engine_serialize: engine or output pointer is NULL");
    *out = NULL;
    kiln__buf b;
    kiln__buf_init(&b, &e->alloc);
    kiln_status st = kiln__plan_write(e, &b);
    if (st == KILN_OK) st = kiln__blob_from_buf(&b, out);
    kiln__buf_free(&b);
    return st;
}

kiln_status kiln_engine_save(const kiln_engine *e, const char *path) {
    if (!e || !path) return kiln__error(KILN_INVALID_ARGUMENT, "engine_save: engine or path is NULL");
    kiln__buf b;
    kiln__buf_init(&b, &e->alloc);
    kiln_status st = kiln__plan_write(e, &b);
    if (st == KILN_OK) st = kiln__buf_status(&b);
    if (st == KILN_OK) st = kiln__write_file(path, b.data, b.size);
    kiln__buf_free(&b);
    return st;
}

kiln_status kiln_runtime_create(const kiln_runtime_options *options, kiln_runtime **out) {
    if (!out) return kiln__error(KILN_INVALID_ARGUMENT, "runtime_create: output pointer is NULL");
    *out = NULL;
    if (options && options->struct_size < sizeof(size_t))
        return kiln__error(KILN_INVALID_ARGUMENT, "runtime_create: options.struct_size is not set");
    if (options && options->nb_threads < 0)
        return kiln__error(KILN_INVALID_ARGUMENT, "runtime_create: nb_threads is %d", options->nb_threads);
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, options ? options->allocator : NULL);
    kiln_runtime *rt = kiln__calloc(&alloc, 1, sizeof *rt);
    if (!rt) return KILN_OUT_OF_MEMORY;
    rt->alloc = alloc;
    kiln__log_init(&rt->log, options ? options->logger : NULL);
    rt->nb_threads = options ? options->nb_threads : 0;
    kiln_status st = kiln__pool_create(&alloc, rt->nb_threads, &rt->pool);
    if (st != KILN_OK) {
        kiln__free(&alloc, rt);
        return st;
    }
    *out = rt;
    return KILN_OK;
}

void kiln_runtime_destroy(kiln_runtime *rt) {
    if (!rt) return;
    kiln__alloc alloc = rt->alloc;
    kiln__pool_destroy(rt->pool);
    kiln__free(&alloc, rt);
}

/* Reads a plan into a new engine; owner as for kiln__plan_read. With map (the plan is that file
 * mapping, kept alive by owner), the engine records it and holds a reference on owner. */
static kiln_status deserialize(kiln_runtime *rt, const void *data, size_t size, kiln__shared *owner,
                               const kiln__file_map *map, kiln_engine **out) {
    kiln_engine *e;
    KILN__TRY(kiln__engine_alloc(&rt->alloc, &rt->log, &e));
    if (map) {
        kiln__shared_ref(owner);
        e->map_owner = owner;
        e->map = *map;
    }
    kiln_status st = kiln__plan_read(data, size, owner, e);
    if (st == KILN_OK && e->device == KILN_DEVICE_CUDA) {
        char arch[KILN__GPU_ARCH_LEN] = "";
        if (!kiln_device_available(KILN_DEVICE_CUDA))
            st = kiln__error(KILN_INCOMPATIBLE, "the plan was built for CUDA (%s) but no CUDA device is available",
                             e->gpu_arch);
        else if ((st = kiln__cuda()->arch(arch, sizeof arch)) == KILN_OK && strcmp(arch, e->gpu_arch) != 0)
            st = kiln__error(KILN_INCOMPATIBLE, "the plan was built for %s, this GPU is %s: rebuild the engine",
                             e->gpu_arch, arch);
    }
    if (st == KILN_OK) st = kiln__engine_validate(e);
    if (st != KILN_OK) {
        kiln_engine_destroy(e);
        return st;
    }
    e->pool = rt->pool;
    *out = e;
    return KILN_OK;
}

kiln_status kiln_runtime_deserialize_engine(kiln_runtime *rt, const void *data, size_t size, kiln_engine **out) {
    if (out) *out = NULL;
    if (!rt || !out) return kiln__error(KILN_INVALID_ARGUMENT, "deserialize_engine: runtime or output pointer is NULL");
    if (!data && size) return kiln__error(KILN_INVALID_ARGUMENT, "deserialize_engine: data is NULL");
    /* The caller may free its bytes once this returns: every constant is copied. */
    return deserialize(rt, data, size, NULL, NULL, out);
}

/* A mapped plan file, unmapped with the last holder: the engine, or a constant borrowing its
 * weights (of the engine or of any engine or network sharing them), so the weights are never
 * held twice. */
typedef struct plan_mapping {
    kiln__shared shared;
    kiln__alloc alloc;
    kiln__file_map map;
} plan_mapping;

static void plan_mapping_release(void *ctx) {
    plan_mapping *m = ctx;
    kiln__alloc alloc = m->alloc;
    kiln__unmap_file(&m->map);
    kiln__free(&alloc, m);
}

kiln_status kiln_runtime_load_engine(kiln_runtime *rt, const char *path, kiln_engine **out) {
    if (out) *out = NULL;
    if (!rt || !path || !out) return kiln__error(KILN_INVALID_ARGUMENT, "load_engine: runtime, path or output is NULL");
    plan_mapping *m = kiln__malloc(&rt->alloc, sizeof *m);
    if (!m) return KILN_OUT_OF_MEMORY;
    m->alloc = rt->alloc;
    kiln_status st = kiln__map_file(path, &m->map);
    if (st != KILN_OK) {
        kiln__free(&rt->alloc, m);
        return st;
    }
    kiln__shared_init(&m->shared, plan_mapping_release, m);
    st = deserialize(rt, m->map.data, m->map.size, &m->shared, &m->map, out);
    kiln__shared_unref(&m->shared); /* the load's reference: unmaps here unless the engine holds it */
    if (st != KILN_OK) kiln__error_prefix(st, "plan '%s'", path);
    return st;
}
