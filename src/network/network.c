/* The network: ownership of layers and tensors, construction helpers, getters, constants. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

static void tensor_free(const kiln__alloc *alloc, kiln_tensor *t) {
    if (!t) return;
    kiln__free(alloc, t->name);
    for (int i = 0; i < KILN_MAX_DIMS; i++) kiln__free(alloc, t->dim_names[i]);
    kiln__free(alloc, t);
}

void kiln__shared_init(kiln__shared *s, void (*release)(void *ctx), void *ctx) {
    s->refs = 1;
    s->release = release;
    s->ctx = ctx;
}

void kiln__shared_ref(kiln__shared *s) { __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED); }

void kiln__shared_unref(kiln__shared *s) {
    /* Release ordering on every drop, acquire on the last: the releaser sees all prior uses. */
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) s->release(s->ctx);
}

/* Drops a layer's values: frees owned ones, gives back the reference on borrowed ones. */
static void drop_weights(const kiln__alloc *alloc, kiln_layer *l) {
    if (l->weights_owner) kiln__shared_unref(l->weights_owner);
    else kiln__free(alloc, l->weights);
    l->weights = NULL;
    l->weights_bytes = 0;
    l->weights_owner = NULL;
}

static void layer_free(const kiln__alloc *alloc, kiln_layer *l) {
    if (!l) return;
    kiln__free(alloc, l->name);
    kiln__free(alloc, l->inputs);
    kiln__free(alloc, l->outputs);
    drop_weights(alloc, l);
    kiln__free(alloc, l);
}

kiln_status kiln__network_create(const kiln__alloc *alloc, const kiln__log *log, kiln_network **out) {
    *out = NULL;
    kiln_network *net = kiln__calloc(alloc, 1, sizeof *net);
    if (!net) return KILN_OUT_OF_MEMORY;
    net->alloc = *alloc;
    if (log) net->log = *log;
    *out = net;
    return KILN_OK;
}

void kiln_network_destroy(kiln_network *net) {
    if (!net) return;
    kiln__alloc alloc = net->alloc;
    for (int64_t i = 0; i < net->nb_layers; i++) layer_free(&alloc, net->layers[i]);
    for (int64_t i = 0; i < net->nb_tensors; i++) tensor_free(&alloc, net->tensors[i]);
    kiln__free(&alloc, net->layers);
    kiln__free(&alloc, net->tensors);
    kiln__free(&alloc, net->inputs);
    kiln__free(&alloc, net->outputs);
    kiln__free(&alloc, net);
}

kiln_status kiln__layer_error(const kiln_layer *layer, kiln_status status, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln__error(status, "layer '%s' (%s): %s", layer->name ? layer->name : "?",
                       kiln_layer_type_name(layer->type), msg);
}

kiln_status kiln__check_tensor(const kiln_network *net, const kiln_tensor *t, const char *what) {
    if (!t) return kiln__error(KILN_INVALID_ARGUMENT, "%s is NULL", what);
    if (t->net != net || t->index < 0 || t->index >= net->nb_tensors || net->tensors[t->index] != t)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s ('%s') belongs to another network", what, t->name);
    return KILN_OK;
}

static bool name_taken(const kiln_network *net, const char *name) {
    for (int64_t i = 0; i < net->nb_tensors; i++)
        if (net->tensors[i]->name && strcmp(net->tensors[i]->name, name) == 0) return true;
    return false;
}

kiln_status kiln__network_new_tensor(kiln_network *net, const char *name, kiln_dtype dtype, const kiln_dims *dims,
                                     kiln_tensor **out) {
    *out = NULL;
    KILN__TRY(kiln__reserve(&net->alloc, (void **)&net->tensors, &net->cap_tensors, net->nb_tensors + 1,
                            sizeof(kiln_tensor *)));
    kiln_tensor *t = kiln__calloc(&net->alloc, 1, sizeof *t);
    if (!t) return KILN_OUT_OF_MEMORY;
    t->name = kiln__strdup(&net->alloc, name ? name : "");
    if (!t->name) {
        kiln__free(&net->alloc, t);
        return KILN_OUT_OF_MEMORY;
    }
    t->net = net;
    t->dtype = dtype;
    if (dims) t->dims = *dims;
    t->index = (int32_t)net->nb_tensors;
    net->tensors[net->nb_tensors++] = t;
    *out = t;
    return KILN_OK;
}

kiln_status kiln__network_new_layer_wired(kiln_network *net, kiln_layer_type type, const char *name,
                                          kiln_tensor *const *inputs, int32_t nb_inputs, kiln_tensor *const *outputs,
                                          int32_t nb_outputs, kiln_layer **out) {
    *out = NULL;
    if (nb_inputs < 0 || nb_outputs < 1)
        return kiln__error(KILN_INVALID_ARGUMENT, "layer '%s' needs at least one output", name ? name : "?");
    for (int32_t i = 0; i < nb_outputs; i++)
        if (!outputs[i] || outputs[i]->producer || outputs[i]->is_input)
            return kiln__error(KILN_INVALID_ARGUMENT, "layer '%s': output %d is missing or already produced",
                               name ? name : "?", i);
    KILN__TRY(kiln__reserve(&net->alloc, (void **)&net->layers, &net->cap_layers, net->nb_layers + 1,
                            sizeof(kiln_layer *)));
    kiln_layer *l = kiln__calloc(&net->alloc, 1, sizeof *l);
    if (!l) return KILN_OUT_OF_MEMORY;
    l->net = net;
    l->type = type;
    l->index = (int32_t)net->nb_layers;
    l->nb_inputs = nb_inputs;
    l->nb_outputs = nb_outputs;
    l->name = kiln__strdup(&net->alloc, name ? name : "");
    l->inputs = nb_inputs ? kiln__calloc(&net->alloc, (size_t)nb_inputs, sizeof *l->inputs) : NULL;
    l->outputs = kiln__calloc(&net->alloc, (size_t)nb_outputs, sizeof *l->outputs);
    if (!l->name || (nb_inputs && !l->inputs) || !l->outputs) {
        layer_free(&net->alloc, l);
        return KILN_OUT_OF_MEMORY;
    }
    for (int32_t i = 0; i < nb_inputs; i++) l->inputs[i] = inputs ? inputs[i] : NULL;
    for (int32_t i = 0; i < nb_outputs; i++) {
        l->outputs[i] = outputs[i];
        outputs[i]->producer = l;
        outputs[i]->producer_output = i;
    }
    net->layers[net->nb_layers++] = l;
    *out = l;
    return KILN_OK;
}

/* Removes the most recently added layer and the tensors created after `first_tensor`. */
static void drop_last_layer(kiln_network *net, int64_t first_tensor) {
    kiln_layer *l = net->layers[--net->nb_layers];
    layer_free(&net->alloc, l);
    while (net->nb_tensors > first_tensor) tensor_free(&net->alloc, net->tensors[--net->nb_tensors]);
}

kiln_status kiln__network_new_layer(kiln_network *net, kiln_layer_type type, kiln_tensor *const *inputs,
                                    int32_t nb_inputs, int32_t nb_outputs, kiln_layer **out) {
    *out = NULL;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "network is NULL");
    if (nb_outputs < 1 || nb_outputs > 16 || nb_inputs < 0)
        return kiln__error(KILN_INTERNAL_ERROR, "bad input/output count for a new layer");
    const kiln__layer_ops *ops = kiln__layer_ops_for(type);
    if (!ops) return kiln__error(KILN_UNSUPPORTED, "layer type %d is not implemented", (int)type);
    for (int32_t i = 0; i < nb_inputs; i++)
        if (inputs[i]) KILN__TRY(kiln__check_tensor(net, inputs[i], "input"));
    char name[KILN_MAX_NAME];
    snprintf(name, sizeof name, "%s_%lld", ops->name, (long long)net->nb_layers);
    int64_t first_tensor = net->nb_tensors;
    kiln_tensor *outs[16];
    kiln_status st = KILN_OK;
    for (int32_t i = 0; i < nb_outputs && st == KILN_OK; i++) {
        char tname[KILN_MAX_NAME + 16];
        snprintf(tname, sizeof tname, "%s_out%d", name, i);
        st = kiln__network_new_tensor(net, tname, KILN_DTYPE_UNDEFINED, NULL, &outs[i]);
    }
    if (st == KILN_OK) st = kiln__network_new_layer_wired(net, type, name, inputs, nb_inputs, outs, nb_outputs, out);
    if (st != KILN_OK)
        while (net->nb_tensors > first_tensor) tensor_free(&net->alloc, net->tensors[--net->nb_tensors]);
    return st;
}

kiln_status kiln__network_finish_layer(kiln_network *net, kiln_layer *layer, kiln_layer **out) {
    if (out) *out = NULL;
    kiln__value in[64], outv[16];
    kiln_status st = KILN_OK;
    if (layer->nb_inputs > 64) st = kiln__layer_error(layer, KILN_UNSUPPORTED, "more than 64 inputs");
    for (int32_t i = 0; st == KILN_OK && i < layer->nb_inputs; i++) {
        memset(&in[i], 0, sizeof in[i]);
        const kiln_tensor *t = layer->inputs[i];
        if (!t) continue;
        in[i].dtype = t->dtype;
        in[i].dims = t->dims;
        /* Constant inputs expose their values so shape-deciding inputs are known early. */
        if (t->producer && t->producer->type == KILN_LAYER_CONSTANT) {
            in[i].data = t->producer->weights;
            in[i].bytes = t->producer->weights_bytes;
        }
    }
    if (st == KILN_OK) {
        memset(outv, 0, sizeof outv);
        st = kiln__layer_ops_for(layer->type)->infer(layer, in, outv);
    }
    if (st != KILN_OK) {
        drop_last_layer(net, layer->outputs[0]->index);
        return st;
    }
    for (int32_t i = 0; i < layer->nb_outputs; i++) {
        layer->outputs[i]->dtype = outv[i].dtype;
        layer->outputs[i]->dims = outv[i].dims;
    }
    if (out) *out = layer;
    return KILN_OK;
}

kiln_status kiln__layer_set_weights(kiln_layer *layer, const void *data, size_t bytes) {
    const kiln__alloc *alloc = &layer->net->alloc;
    void *copy = kiln__malloc_aligned(alloc, bytes ? bytes : 1, 64);
    if (!copy) return KILN_OUT_OF_MEMORY;
    if (bytes) memcpy(copy, data, bytes);
    drop_weights(alloc, layer);
    layer->weights = copy;
    layer->weights_bytes = bytes;
    return KILN_OK;
}

void kiln__layer_borrow_weights(kiln_layer *layer, const void *data, size_t bytes, kiln__shared *owner) {
    kiln__shared_ref(owner); /* before the drop: the previous values may have the same owner */
    drop_weights(&layer->net->alloc, layer);
    layer->weights = (void *)data; /* never written: kernels read constants only */
    layer->weights_bytes = bytes;
    layer->weights_owner = owner;
}

kiln_status kiln__network_add_constant_raw(kiln_network *net, kiln_dtype dtype, const kiln_dims *dims,
                                           const void *data, size_t bytes, kiln_layer **out) {
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_CONSTANT, NULL, 0, 1, &l));
    l->p.constant.dims = *dims;
    l->p.constant.dtype = dtype;
    kiln_status st = kiln__layer_set_weights(l, data, bytes);
    if (st != KILN_OK) {
        drop_last_layer(net, l->outputs[0]->index);
        return st;
    }
    return kiln__network_finish_layer(net, l, out);
}

/* ---------------------------------------------------------------- constant layer */

static kiln_status constant_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    (void)inputs;
    const kiln__constant_params *p = &layer->p.constant;
    if (!kiln__dtype_valid((kiln_dtype)p->dtype) || p->dtype == KILN_STRING)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "constant of dtype %s is not supported",
                                 kiln_dtype_name((kiln_dtype)p->dtype));
    if (p->dims.nb_dims < 0 || p->dims.nb_dims > KILN_MAX_DIMS)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "rank %d is out of range", p->dims.nb_dims);
    int64_t volume = kiln__dims_volume(&p->dims);
    size_t bytes;
    if (volume < 0 || !kiln__dtype_bytes((kiln_dtype)p->dtype, volume, &bytes))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "dims are negative or too large");
    if (bytes != layer->weights_bytes)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %zu bytes of values, expected %zu for %lld %s",
                                 layer->weights_bytes, bytes, (long long)volume,
                                 kiln_dtype_name((kiln_dtype)p->dtype));
    outputs[0].dtype = (kiln_dtype)p->dtype;
    outputs[0].dims = p->dims;
    return KILN_OK;
}

static void constant_describe(const kiln_layer *layer, kiln__buf *out) {
    char dims[160];
    kiln__dims_format(&layer->p.constant.dims, dims, sizeof dims);
    kiln__buf_printf(out, "dtype=%s dims=%s", kiln_dtype_name((kiln_dtype)layer->p.constant.dtype), dims);
}

const kiln__layer_ops kiln__constant_ops = {"Constant", constant_infer, constant_describe};

kiln_status kiln_network_add_constant(kiln_network *net, const kiln_dims *dims, kiln_weights weights,
                                      kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!net || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "add_constant: network or dims is NULL");
    if (dims->nb_dims < 0 || dims->nb_dims > KILN_MAX_DIMS)
        return kiln__error(KILN_INVALID_ARGUMENT, "add_constant: rank %d is out of range 0..%d", dims->nb_dims,
                           KILN_MAX_DIMS);
    int64_t volume = kiln__dims_volume(dims);
    if (volume < 0) return kiln__error(KILN_INVALID_ARGUMENT, "add_constant: dims must be non-negative");
    if (weights.count != volume)
        return kiln__error(KILN_INVALID_ARGUMENT, "add_constant: %lld weights given, dims need %lld",
                           (long long)weights.count, (long long)volume);
    size_t bytes;
    if (!kiln__dtype_bytes(weights.dtype, volume, &bytes))
        return kiln__error(KILN_INVALID_ARGUMENT, "add_constant: dtype %s has no fixed size",
                           kiln_dtype_name(weights.dtype));
    if (volume && !weights.values) return kiln__error(KILN_INVALID_ARGUMENT, "add_constant: values is NULL");
    kiln_layer *l;
    KILN__TRY(kiln__network_add_constant_raw(net, weights.dtype, dims, weights.values, bytes, &l));
    if (layer) *layer = l;
    return KILN_OK;
}

/* ---------------------------------------------------------------- public network API */

int32_t kiln_network_num_layers(const kiln_network *net) { return net ? (int32_t)net->nb_layers : 0; }
kiln_layer *kiln_network_layer(const kiln_network *net, int32_t i) {
    return net && i >= 0 && i < net->nb_layers ? net->layers[i] : NULL;
}
int32_t kiln_network_num_inputs(const kiln_network *net) { return net ? (int32_t)net->nb_inputs : 0; }
kiln_tensor *kiln_network_input(const kiln_network *net, int32_t i) {
    return net && i >= 0 && i < net->nb_inputs ? net->inputs[i] : NULL;
}
int32_t kiln_network_num_outputs(const kiln_network *net) { return net ? (int32_t)net->nb_outputs : 0; }
kiln_tensor *kiln_network_output(const kiln_network *net, int32_t i) {
    return net && i >= 0 && i < net->nb_outputs ? net->outputs[i] : NULL;
}

kiln_tensor *kiln_network_find_tensor(const kiln_network *net, const char *name) {
    if (!net || !name) return NULL;
    for (int64_t i = 0; i < net->nb_tensors; i++)
        if (strcmp(net->tensors[i]->name, name) == 0) return net->tensors[i];
    return NULL;
}

kiln_status kiln__network_set_input(kiln_network *net, kiln_tensor *t) {
    KILN__TRY(kiln__reserve(&net->alloc, (void **)&net->inputs, &net->cap_inputs, net->nb_inputs + 1,
                            sizeof(kiln_tensor *)));
    t->is_input = true;
    net->inputs[net->nb_inputs++] = t;
    return KILN_OK;
}

kiln_status kiln__network_set_output(kiln_network *net, kiln_tensor *t) {
    for (int64_t i = 0; i < net->nb_outputs; i++)
        if (net->outputs[i] == t) return KILN_OK;
    KILN__TRY(kiln__reserve(&net->alloc, (void **)&net->outputs, &net->cap_outputs, net->nb_outputs + 1,
                            sizeof(kiln_tensor *)));
    t->is_output = true;
    net->outputs[net->nb_outputs++] = t;
    return KILN_OK;
}

kiln_status kiln_network_add_input(kiln_network *net, const char *name, kiln_dtype dtype, const kiln_dims *dims,
                                   kiln_tensor **out) {
    if (out) *out = NULL;
    if (!net || !name || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "add_input: network, name or dims is NULL");
    if (!*name) return kiln__error(KILN_INVALID_ARGUMENT, "add_input: the name is empty");
    if (name_taken(net, name))
        return kiln__error(KILN_INVALID_ARGUMENT, "add_input: a tensor named '%s' already exists", name);
    if (!kiln__dtype_valid(dtype) || dtype == KILN_STRING)
        return kiln__error(KILN_UNSUPPORTED, "add_input '%s': dtype %d is not supported", name, (int)dtype);
    if (dims->nb_dims < 0 || dims->nb_dims > KILN_MAX_DIMS)
        return kiln__error(KILN_INVALID_ARGUMENT, "add_input '%s': rank %d is out of range 0..%d", name,
                           dims->nb_dims, KILN_MAX_DIMS);
    for (int32_t i = 0; i < dims->nb_dims; i++)
        if (dims->d[i] < -1)
            return kiln__error(KILN_INVALID_ARGUMENT, "add_input '%s': dim %d is %lld (use -1 for dynamic)", name, i,
                               (long long)dims->d[i]);
    kiln_tensor *t;
    KILN__TRY(kiln__network_new_tensor(net, name, dtype, dims, &t));
    kiln_status st = kiln__network_set_input(net, t);
    if (st != KILN_OK) {
        tensor_free(&net->alloc, net->tensors[--net->nb_tensors]);
        return st;
    }
    if (out) *out = t;
    return KILN_OK;
}

kiln_status kiln_tensor_set_dim_name(kiln_tensor *t, int32_t index, const char *name) {
    if (!t || !name) return kiln__error(KILN_INVALID_ARGUMENT, "set_dim_name: tensor or name is NULL");
    if (!t->is_input) return kiln__error(KILN_INVALID_ARGUMENT, "set_dim_name: '%s' is not a network input", t->name);
    if (index < 0 || index >= t->dims.nb_dims)
        return kiln__error(KILN_INVALID_ARGUMENT, "set_dim_name: '%s' has no dim %d", t->name, index);
    char *copy = kiln__strdup(&t->net->alloc, name);
    if (!copy) return KILN_OUT_OF_MEMORY;
    kiln__free(&t->net->alloc, t->dim_names[index]);
    t->dim_names[index] = copy;
    return KILN_OK;
}

kiln_status kiln_network_mark_output(kiln_network *net, kiln_tensor *t) {
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "mark_output: network is NULL");
    KILN__TRY(kiln__check_tensor(net, t, "mark_output: tensor"));
    return kiln__network_set_output(net, t);
}

kiln_status kiln_tensor_set_name(kiln_tensor *t, const char *name) {
    if (!t || !name) return kiln__error(KILN_INVALID_ARGUMENT, "tensor_set_name: tensor or name is NULL");
    if (!*name) return kiln__error(KILN_INVALID_ARGUMENT, "tensor_set_name: the name is empty");
    if (strcmp(t->name, name) == 0) return KILN_OK;
    if (name_taken(t->net, name))
        return kiln__error(KILN_INVALID_ARGUMENT, "tensor_set_name: a tensor named '%s' already exists", name);
    char *copy = kiln__strdup(&t->net->alloc, name);
    if (!copy) return KILN_OUT_OF_MEMORY;
    kiln__free(&t->net->alloc, t->name);
    t->name = copy;
    return KILN_OK;
}

const char *kiln_tensor_name(const kiln_tensor *t) { return t ? t->name : NULL; }
kiln_dtype kiln_tensor_dtype(const kiln_tensor *t) { return t ? t->dtype : KILN_DTYPE_UNDEFINED; }

kiln_status kiln_tensor_shape(const kiln_tensor *t, kiln_dims *dims) {
    if (!t || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "tensor_shape: tensor or dims is NULL");
    *dims = t->dims;
    return KILN_OK;
}

kiln_layer_type kiln_layer_get_type(const kiln_layer *l) { return l ? l->type : KILN_LAYER_TYPE_COUNT; }

kiln_status kiln_layer_set_name(kiln_layer *l, const char *name) {
    if (!l || !name) return kiln__error(KILN_INVALID_ARGUMENT, "layer_set_name: layer or name is NULL");
    char *copy = kiln__strdup(&l->net->alloc, name);
    if (!copy) return KILN_OUT_OF_MEMORY;
    kiln__free(&l->net->alloc, l->name);
    l->name = copy;
    return KILN_OK;
}

const char *kiln_layer_name(const kiln_layer *l) { return l ? l->name : NULL; }
int32_t kiln_layer_num_inputs(const kiln_layer *l) { return l ? l->nb_inputs : 0; }
kiln_tensor *kiln_layer_input(const kiln_layer *l, int32_t i) {
    return l && i >= 0 && i < l->nb_inputs ? l->inputs[i] : NULL;
}
int32_t kiln_layer_num_outputs(const kiln_layer *l) { return l ? l->nb_outputs : 0; }
kiln_tensor *kiln_layer_output(const kiln_layer *l, int32_t i) {
    return l && i >= 0 && i < l->nb_outputs ? l->outputs[i] : NULL;
}

/* ---------------------------------------------------------------- copies and cleanup */

kiln_status kiln__network_clone(const kiln_network *src, kiln_network **out) {
    *out = NULL;
    kiln_network *dst;
    KILN__TRY(kiln__network_create(&src->alloc, &src->log, &dst));
    kiln_status st = KILN_OK;
    for (int64_t i = 0; st == KILN_OK && i < src->nb_tensors; i++) {
        const kiln_tensor *s = src->tensors[i];
        kiln_tensor *t;
        st = kiln__network_new_tensor(dst, s->name, s->dtype, &s->dims, &t);
        for (int d = 0; st == KILN_OK && d < KILN_MAX_DIMS; d++)
            if (s->dim_names[d] && !(t->dim_names[d] = kiln__strdup(&dst->alloc, s->dim_names[d])))
                st = KILN_OUT_OF_MEMORY;
    }
    for (int64_t i = 0; st == KILN_OK && i < src->nb_layers; i++) {
        const kiln_layer *s = src->layers[i];
        kiln_tensor *ins[64], *outs[16];
        if (s->nb_inputs > 64 || s->nb_outputs > 16) {
            st = kiln__error(KILN_UNSUPPORTED, "layer '%s' has too many inputs or outputs", s->name);
            break;
        }
        for (int32_t k = 0; k < s->nb_inputs; k++) ins[k] = s->inputs[k] ? dst->tensors[s->inputs[k]->index] : NULL;
        for (int32_t k = 0; k < s->nb_outputs; k++) outs[k] = dst->tensors[s->outputs[k]->index];
        kiln_layer *l;
        st = kiln__network_new_layer_wired(dst, s->type, s->name, ins, s->nb_inputs, outs, s->nb_outputs, &l);
        if (st != KILN_OK) break;
        l->p = s->p;
        l->tactic = s->tactic;
        if (s->weights_owner) kiln__layer_borrow_weights(l, s->weights, s->weights_bytes, s->weights_owner);
        else if (s->weights) st = kiln__layer_set_weights(l, s->weights, s->weights_bytes);
    }
    for (int64_t i = 0; st == KILN_OK && i < src->nb_inputs; i++)
        st = kiln__network_set_input(dst, dst->tensors[src->inputs[i]->index]);
    for (int64_t i = 0; st == KILN_OK && i < src->nb_outputs; i++)
        st = kiln__network_set_output(dst, dst->tensors[src->outputs[i]->index]);
    if (st != KILN_OK) {
        kiln_network_destroy(dst);
        return st;
    }
    *out = dst;
    return KILN_OK;
}

kiln_status kiln__network_remove_dead(kiln_network *net) {
    if (!net->nb_tensors) return KILN_OK;
    bool *live = kiln__calloc(&net->alloc, (size_t)net->nb_tensors, sizeof *live);
    if (!live) return KILN_OUT_OF_MEMORY;
    for (int64_t i = 0; i < net->nb_outputs; i++) live[net->outputs[i]->index] = true;
    for (int64_t i = 0; i < net->nb_inputs; i++) live[net->inputs[i]->index] = true;
    /* Layers are in topological order, so one backward sweep finds every needed layer. */
    for (int64_t i = net->nb_layers - 1; i >= 0; i--) {
        kiln_layer *l = net->layers[i];
        bool needed = false;
        for (int32_t k = 0; k < l->nb_outputs; k++) needed |= live[l->outputs[k]->index];
        if (!needed) continue;
        for (int32_t k = 0; k < l->nb_outputs; k++) live[l->outputs[k]->index] = true;
        for (int32_t k = 0; k < l->nb_inputs; k++)
            if (l->inputs[k]) live[l->inputs[k]->index] = true;
    }
    int64_t nl = 0;
    for (int64_t i = 0; i < net->nb_layers; i++) {
        kiln_layer *l = net->layers[i];
        if (live[l->outputs[0]->index]) {
            l->index = (int32_t)nl;
            net->layers[nl++] = l;
        } else {
            layer_free(&net->alloc, l);
        }
    }
    net->nb_layers = nl;
    int64_t nt = 0;
    for (int64_t i = 0; i < net->nb_tensors; i++) {
        kiln_tensor *t = net->tensors[i];
        if (live[i]) {
            t->index = (int32_t)nt;
            net->tensors[nt++] = t;
        } else {
            tensor_free(&net->alloc, t);
        }
    }
    net->nb_tensors = nt;
    kiln__free(&net->alloc, live);
    return KILN_OK;
}

kiln_status kiln__network_toposort(kiln_network *net) {
    int64_t n = net->nb_layers;
    if (n == 0) return KILN_OK;
    kiln_layer **order = kiln__calloc(&net->alloc, (size_t)n, sizeof *order);
    bool *placed = kiln__calloc(&net->alloc, (size_t)n, sizeof *placed);
    bool *ready = kiln__calloc(&net->alloc, (size_t)(net->nb_tensors ? net->nb_tensors : 1), sizeof *ready);
    kiln_status st = order && placed && ready ? KILN_OK : KILN_OUT_OF_MEMORY;
    for (int64_t i = 0; st == KILN_OK && i < net->nb_tensors; i++) ready[i] = !net->tensors[i]->producer;
    /* Repeated stable sweeps: each places every layer whose inputs are ready; graphs that are
     * nearly sorted (the usual case) finish in one or two sweeps. */
    int64_t count = 0;
    while (st == KILN_OK && count < n) {
        int64_t before = count;
        for (int64_t i = 0; i < n; i++) {
            kiln_layer *l = net->layers[i];
            if (placed[i]) continue;
            bool ok = true;
            for (int32_t k = 0; ok && k < l->nb_inputs; k++) ok = !l->inputs[k] || ready[l->inputs[k]->index];
            if (!ok) continue;
            placed[i] = true;
            order[count++] = l;
            for (int32_t k = 0; k < l->nb_outputs; k++) ready[l->outputs[k]->index] = true;
        }
        if (count == before) {
            for (int64_t i = 0; i < n; i++)
                if (!placed[i]) {
                    st = kiln__layer_error(net->layers[i], KILN_INVALID_ARGUMENT, "is on a cycle of layers");
                    break;
                }
        }
    }
    if (st == KILN_OK) {
        for (int64_t i = 0; i < n; i++) {
            net->layers[i] = order[i];
            order[i]->index = (int32_t)i;
        }
    }
    kiln__free(&net->alloc, order);
    kiln__free(&net->alloc, placed);
    kiln__free(&net->alloc, ready);
    return st;
}

/* ---------------------------------------------------------------- infer helpers */

bool kiln__norm_axis(int64_t axis, int32_t rank, int32_t *out) {
    if (axis < -(int64_t)rank || axis >= rank) return false;
    *out = (int32_t)(axis < 0 ? axis + rank : axis);
    return true;
}

bool kiln__broadcast_dims(const kiln_dims *a, const kiln_dims *b, kiln_dims *out) {
    int32_t rank = KILN__MAX(a->nb_dims, b->nb_dims);
    kiln_dims r = {.nb_dims = rank};
    for (int32_t i = 0; i < rank; i++) {
        int32_t ia = i - (rank - a->nb_dims), ib = i - (rank - b->nb_dims);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da == 1) {
            r.d[i] = db;
        } else if (db == 1) {
            r.d[i] = da;
        } else if (da == -1 || db == -1) {
            r.d[i] = da == -1 ? db : da; /* an unknown dim must equal the known one, or be 1 */
            if (da == -1 && db == -1) r.d[i] = -1;
        } else if (da == db) {
            r.d[i] = da;
        } else {
            return false;
        }
    }
    *out = r;
    return true;
}

int64_t kiln__value_int(const kiln__value *v, int64_t i) {
    if (v->dtype == KILN_INT32) {
        int32_t x;
        memcpy(&x, (const char *)v->data + i * 4, 4);
        return x;
    }
    int64_t x;
    memcpy(&x, (const char *)v->data + i * 8, 8);
    return x;
}
