/* The CUDA backend (src/runtime/backend.h): layer checks, conv tactic selection, per-context
 * device state, planning for the current shapes and the enqueue loop.
 *
 * Memory per context: every constant layer's values, uploaded at creation; one params buffer
 * holding the tensors the host folded (shape tensors and small constants computed from them)
 * and host-computed tables, uploaded when the shapes change; one arena with the activations
 * (offsets from lifetimes: a tensor's memory is reused after its last reader) followed by the
 * scratch the layers need. Network inputs and outputs are the caller's pointers: layers that
 * produce an output write there directly. */
#include "cu.cuh"

#include <string.h>

#define CU_LT_WORKSPACE (32u << 20)

/* ---------------------------------------------------------------- device queries */

static int cu_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the error so later calls do not see it */
        return 0;
    }
    return n;
}

static kiln_status cu_arch(char *buf, size_t size) {
    int dev = 0;
    cudaDeviceProp prop;
    CU_CHECK(cudaGetDevice(&dev));
    CU_CHECK(cudaGetDeviceProperties(&prop, dev));
    snprintf(buf, size, "sm_%d%d", prop.major, prop.minor);
    return KILN_OK;
}

/* ---------------------------------------------------------------- layer checks */

static const cu_layer_fn LAYER_FNS[KILN_LAYER_TYPE_COUNT] = {
    [KILN_LAYER_CONSTANT] = NULL,
    [KILN_LAYER_CONVOLUTION] = cu_conv,
    [KILN_LAYER_DECONVOLUTION] = cu_deconv,
    [KILN_LAYER_POOLING] = cu_pooling,
    [KILN_LAYER_MATMUL] = cu_matmul,
    [KILN_LAYER_ACTIVATION] = cu_activation,
    [KILN_LAYER_ELEMENTWISE] = cu_elementwise,
    [KILN_LAYER_UNARY] = cu_unary,
    [KILN_LAYER_SCALE] = cu_scale,
    [KILN_LAYER_SOFTMAX] = cu_softmax,
    [KILN_LAYER_NORMALIZATION] = cu_normalization,
    [KILN_LAYER_SHUFFLE] = cu_shuffle,
    [KILN_LAYER_CONCAT] = cu_concat,
    [KILN_LAYER_SLICE] = cu_slice,
    [KILN_LAYER_GATHER] = cu_gather,
    [KILN_LAYER_REDUCE] = cu_reduce,
    [KILN_LAYER_RESIZE] = cu_resize,
    [KILN_LAYER_CAST] = cu_cast,
    [KILN_LAYER_SHAPE] = NULL,
    [KILN_LAYER_IDENTITY] = cu_identity,
};

static bool is_signed_int(kiln_dtype t) {
    return t == KILN_INT8 || t == KILN_INT16 || t == KILN_INT32 || t == KILN_INT64;
}

/* Dtypes the integer paths read exactly through int64 (uint64 would need unsigned rules). */
static bool is_int_ok(kiln_dtype t) {
    return is_signed_int(t) || t == KILN_UINT8 || t == KILN_UINT16 || t == KILN_UINT32;
}

static bool is_copyable(kiln_dtype t) {
    uint32_t bits = kiln_dtype_bits(t);
    return t != KILN_STRING && (bits == 8 || bits == 16 || bits == 32 || bits == 64);
}

static bool is_cast_ok(kiln_dtype t) {
    return cu_float_math(t) || t == KILN_FLOAT64 || is_int_ok(t) || t == KILN_UINT64 || t == KILN_BOOL;
}

static kiln_status refuse_dtype(const kiln_layer *l, int32_t input, kiln_dtype t, const char *expected) {
    return kiln__layer_error(l, KILN_UNSUPPORTED, "input %d has dtype %s; the CUDA backend supports %s here", input,
                             kiln_dtype_name(t), expected);
}

static kiln_status cu_check_layer(const kiln_engine *e, const kiln_layer *l) {
    (void)e;
    if ((int)l->type < 0 || l->type >= KILN_LAYER_TYPE_COUNT || l->type > KILN_LAYER_IDENTITY)
        return kiln__layer_error(l, KILN_UNSUPPORTED, "the CUDA backend does not implement this layer type");
    kiln_dtype t = l->nb_inputs > 0 && l->inputs[0] ? l->inputs[0]->dtype : KILN_DTYPE_UNDEFINED;
    static const char *const FLOATS = "float32, float16 and bfloat16";
    switch (l->type) {
    case KILN_LAYER_CONSTANT:
    case KILN_LAYER_SHAPE: return KILN_OK;
    case KILN_LAYER_CONVOLUTION:
    case KILN_LAYER_DECONVOLUTION:
    case KILN_LAYER_MATMUL:
    case KILN_LAYER_SCALE:
    case KILN_LAYER_SOFTMAX:
    case KILN_LAYER_NORMALIZATION:
    case KILN_LAYER_RESIZE:
    case KILN_LAYER_REDUCE:
        if (!cu_float_math(t)) return refuse_dtype(l, 0, t, FLOATS);
        if (l->type == KILN_LAYER_NORMALIZATION || l->type == KILN_LAYER_SCALE)
            for (int32_t k = 1; k < l->nb_inputs; k++)
                if (l->inputs[k] && !cu_float_math(l->inputs[k]->dtype))
                    return refuse_dtype(l, k, l->inputs[k]->dtype, FLOATS);
        return KILN_OK;
    case KILN_LAYER_POOLING:
        if (!cu_float_math(t)) return refuse_dtype(l, 0, t, FLOATS);
        return KILN_OK;
    case KILN_LAYER_ACTIVATION:
        if (!cu_float_math(t) && !is_signed_int(t)) return refuse_dtype(l, 0, t, "float32, float16, bfloat16 and signed integers");
        return KILN_OK;
    case KILN_LAYER_ELEMENTWISE:
    case KILN_LAYER_UNARY:
        for (int32_t k = 0; k < l->nb_inputs; k++) {
            kiln_dtype tk = l->inputs[k] ? l->inputs[k]->dtype : KILN_DTYPE_UNDEFINED;
            if (!cu_float_math(tk) && !is_int_ok(tk) && tk != KILN_BOOL)
                return refuse_dtype(l, k, tk, "float32, float16, bfloat16, integers up to 32 bits, int64 and bool");
        }
        return KILN_OK;
    case KILN_LAYER_CAST: {
        kiln_dtype to = l->outputs[0]->dtype;
        if (!is_cast_ok(t)) return refuse_dtype(l, 0, t, "float, integer and bool types");
        if (!is_cast_ok(to))
            return kiln__layer_error(l, KILN_UNSUPPORTED, "casts to %s are not supported by the CUDA backend",
                                     kiln_dtype_name(to));
        return KILN_OK;
    }
    case KILN_LAYER_GATHER:
        if (!l->inputs[1] || (l->inputs[1]->dtype != KILN_INT32 && l->inputs[1]->dtype != KILN_INT64))
            return kiln__layer_error(l, KILN_UNSUPPORTED, "gather indices must be int32 or int64 on CUDA");
        [[fallthrough]]; /* the data is copied by element size */
    case KILN_LAYER_SHUFFLE:
    case KILN_LAYER_CONCAT:
    case KILN_LAYER_SLICE:
    case KILN_LAYER_IDENTITY:
        if (!is_copyable(t)) return refuse_dtype(l, 0, t, "dtypes of 1, 2, 4 or 8 bytes");
        return KILN_OK;
    default: return kiln__layer_error(l, KILN_UNSUPPORTED, "the CUDA backend does not implement this layer type");
    }
}

/* ---------------------------------------------------------------- tactics */

/* Shapes for tuning: the static dims, or profile 0's opt dims for dynamic inputs. */
static kiln_status tuning_shapes(const kiln_engine *e, kiln__eval *ev) {
    const kiln_network *net = e->net;
    KILN__TRY(kiln__eval_init(ev, net, &e->alloc, NULL));
    for (int64_t i = 0; i < net->nb_inputs; i++) {
        kiln_dims d = net->inputs[i]->dims;
        if (kiln__dims_volume(&d) < 0 && e->nb_profiles > 0 &&
            kiln_engine_profile_dims(e, 0, net->inputs[i]->name, KILN_PROFILE_OPT, &d) != KILN_OK) {
            kiln__eval_free(ev);
            return kiln__error(KILN_INVALID_ARGUMENT, "input '%s' has no opt dims in profile 0", net->inputs[i]->name);
        }
        kiln__eval_set_input(ev, i, &d, NULL);
    }
    kiln_status st = kiln__eval_run(ev, KILN__EVAL_SHAPES);
    if (st != KILN_OK) kiln__eval_free(ev);
    return st;
}

static uint64_t tactic_key(const kiln_engine *e, const kiln_layer *l, const kiln__value *in, const kiln__value *out) {
    struct {
        char arch[KILN__GPU_ARCH_LEN];
        size_t cudnn;
        int32_t type, dtype, tf32;
        uint64_t limit;
        kiln__conv_params p;
        kiln_dims x, w, y;
    } k;
    memset(&k, 0, sizeof k);
    memcpy(k.arch, e->gpu_arch, sizeof k.arch);
    k.cudnn = cu_cudnn.cudnnGetVersion();
    k.type = l->type;
    k.dtype = in[0].dtype;
    k.tf32 = (e->flags & KILN_FLAG_TF32) != 0;
    k.limit = e->workspace_limit;
    k.p = l->p.conv;
    k.x = in[0].dims;
    k.w = in[1].dims;
    k.y = out[0].dims;
    return kiln__hash64(&k, sizeof k, 0x6b696c6e63756461ull);
}

static kiln_status cu_select_tactics(kiln_engine *e, kiln_timing_cache *cache) {
    /* Every build loads the libraries, so that a missing one fails the build, not the first run. */
    KILN__TRY(cu_libs_load());
    const kiln_network *net = e->net;
    bool any = false;
    for (int64_t i = 0; i < net->nb_layers; i++)
        any = any || net->layers[i]->type == KILN_LAYER_CONVOLUTION || net->layers[i]->type == KILN_LAYER_DECONVOLUTION;
    if (!any) return KILN_OK;
    kiln__eval ev;
    KILN__TRY(tuning_shapes(e, &ev));
    cudnnHandle_t h = NULL;
    cudnnStatus_t cs = cu_cudnn.cudnnCreate(&h);
    kiln_status st = cs == CUDNN_STATUS_SUCCESS
                         ? KILN_OK
                         : kiln__error(KILN_DEVICE_ERROR, "cudnnCreate failed: %s", cu_cudnn.cudnnGetErrorString(cs));
    for (int64_t i = 0; st == KILN_OK && i < net->nb_layers; i++) {
        kiln_layer *l = net->layers[i];
        if (l->type != KILN_LAYER_CONVOLUTION && l->type != KILN_LAYER_DECONVOLUTION) continue;
        kiln__value in[4], out[1];
        bool known = true;
        for (int32_t k = 0; k < 2; k++) {
            in[k] = ev.values[l->inputs[k]->index];
            known = known && kiln__dims_volume(&in[k].dims) > 0;
        }
        out[0] = ev.values[l->outputs[0]->index];
        known = known && kiln__dims_volume(&out[0].dims) > 0;
        if (!known) continue; /* the run picks by heuristic */
        uint64_t key = tactic_key(e, l, in, out);
        int32_t tactic = 0;
        if (cache && kiln__timing_cache_lookup(cache, key, &tactic)) {
            l->tactic = tactic;
            continue;
        }
        float ms = 0;
        st = cu_conv_find(h, e, l, in, out, &tactic, &ms);
        if (st == KILN_OK) {
            l->tactic = tactic;
            if (cache && tactic > 0) st = kiln__timing_cache_insert(cache, key, tactic, ms >= 0 ? ms : 0);
        }
    }
    if (h) cu_cudnn.cudnnDestroy(h);
    kiln__eval_free(&ev);
    return st;
}

/* ---------------------------------------------------------------- context state */

static void cu_context_destroy(void *state) {
    cu_state *s = (cu_state *)state;
    if (!s) return;
    const kiln_network *net = s->engine->net;
    if (s->ls)
        for (int64_t i = 0; i < net->nb_layers; i++) cu_layer_state_clear(&s->ls[i]);
    cudaFree(s->weights);
    cudaFree(s->arena);
    cudaFree(s->params);
    cudaFree(s->lt_ws);
    if (s->lt) cu_cublaslt.cublasLtDestroy(s->lt);
    if (s->cudnn) cu_cudnn.cudnnDestroy(s->cudnn);
    kiln__buf_free(&s->params_host);
    kiln__alloc alloc = s->alloc;
    kiln__free(&alloc, s->weight_off);
    kiln__free(&alloc, s->ls);
    kiln__free(&alloc, s->at);
    kiln__free(&alloc, s->off);
    kiln__free(&alloc, s);
}

static kiln_status upload_weights(cu_state *s) {
    const kiln_network *net = s->engine->net;
    size_t total = 0;
    for (int64_t i = 0; i < net->nb_layers; i++) {
        const kiln_layer *l = net->layers[i];
        s->weight_off[i] = SIZE_MAX;
        if (l->type != KILN_LAYER_CONSTANT || !l->weights_bytes) continue;
        s->weight_off[i] = total;
        total += cu_align(l->weights_bytes);
    }
    if (!total) return KILN_OK;
    CU_CHECK(cudaMalloc(&s->weights, total));
    for (int64_t i = 0; i < net->nb_layers; i++)
        if (s->weight_off[i] != SIZE_MAX)
            CU_CHECK(cudaMemcpy((char *)s->weights + s->weight_off[i], net->layers[i]->weights,
                                net->layers[i]->weights_bytes, cudaMemcpyHostToDevice));
    return KILN_OK;
}

static kiln_status context_init(cu_state *s) {
    const kiln_engine *e = s->engine;
    const kiln_network *net = e->net;
    size_t nl = (size_t)(net->nb_layers ? net->nb_layers : 1), nt = (size_t)(net->nb_tensors ? net->nb_tensors : 1);
    s->weight_off = (size_t *)kiln__calloc(&s->alloc, nl, sizeof *s->weight_off);
    s->ls = (cu_layer_state *)kiln__calloc(&s->alloc, nl, sizeof *s->ls);
    s->at = (uint8_t *)kiln__calloc(&s->alloc, nt, sizeof *s->at);
    s->off = (size_t *)kiln__calloc(&s->alloc, nt, sizeof *s->off);
    if (!s->weight_off || !s->ls || !s->at || !s->off) return KILN_OUT_OF_MEMORY;
    CU_CHECK(cudaGetDevice(&s->device));
    KILN__TRY(cu_libs_load());
    CUDNN_CHECK(cu_cudnn.cudnnCreate(&s->cudnn));
    LT_CHECK(cu_cublaslt.cublasLtCreate(&s->lt));
    s->lt_ws_bytes = CU_LT_WORKSPACE;
    if (e->workspace_limit && e->workspace_limit < s->lt_ws_bytes) s->lt_ws_bytes = (size_t)e->workspace_limit;
    if (s->lt_ws_bytes) CU_CHECK(cudaMalloc(&s->lt_ws, s->lt_ws_bytes));
    return upload_weights(s);
}

static kiln_status cu_context_create(const kiln_engine *e, void **state) {
    *state = NULL;
    cu_state *s = (cu_state *)kiln__calloc(&e->alloc, 1, sizeof *s);
    if (!s) return KILN_OUT_OF_MEMORY;
    s->engine = e;
    s->alloc = e->alloc;
    kiln__buf_init(&s->params_host, &s->alloc);
    kiln_status st = context_init(s);
    if (st != KILN_OK) {
        cu_context_destroy(s);
        return st;
    }
    *state = s;
    return KILN_OK;
}

/* ---------------------------------------------------------------- planning */

kiln_status cu_add_params(cu_exec *x, const void *data, size_t bytes) {
    kiln__buf *b = &x->s->params_host;
    kiln__buf_pad(b, CU_ALIGN);
    x->ls->param_off = b->size;
    x->ls->has_params = true;
    kiln__buf_append(b, data, bytes);
    return kiln__buf_status(b);
}

const void *cu_layer_params(const cu_exec *x) { return (const char *)x->s->params + x->ls->param_off; }

/* Hash of what planning depends on: every tensor's dtype and dims, and the host values. */
static uint64_t shapes_key(const kiln__eval *ev) {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int64_t t = 0; t < ev->net->nb_tensors; t++) {
        const kiln__value *v = &ev->values[t];
        h = kiln__hash64(&v->dtype, sizeof v->dtype, h);
        h = kiln__hash64(&v->dims, sizeof(int32_t) + (size_t)KILN__MAX(v->dims.nb_dims, 0) * sizeof(int64_t), h);
        if (v->data) h = kiln__hash64(v->data, v->bytes, h ^ 1);
    }
    return h;
}

static bool folded_layer(const kiln_layer *l, const kiln__eval *ev) {
    for (int32_t k = 0; k < l->nb_outputs; k++)
        if (!ev->values[l->outputs[k]->index].data) return false;
    return true;
}

static void *tensor_ptr(const cu_state *s, int64_t t, void *const *io_data) {
    switch (s->at[t]) {
    case CU_AT_IO: return io_data[s->off[t]];
    case CU_AT_WEIGHTS: return (char *)s->weights + s->off[t];
    case CU_AT_PARAMS: return (char *)s->params + s->off[t];
    case CU_AT_ARENA: return (char *)s->arena + s->off[t];
    default: return NULL;
    }
}

/* Assigns arena offsets: in production order, each tensor takes the lowest gap among the
 * tensors still live when it is produced (live through the layer that reads them last). */
static kiln_status place_activations(cu_state *s, const kiln__eval *ev, const int64_t *first, const int64_t *last,
                                     size_t *total) {
    const kiln_network *net = s->engine->net;
    const kiln__alloc *a = &s->alloc;
    int64_t nt = net->nb_tensors, n = 0;
    int64_t *order = (int64_t *)kiln__calloc(a, (size_t)(nt ? nt : 1), sizeof *order);
    int64_t *live = (int64_t *)kiln__calloc(a, (size_t)(nt ? nt : 1), sizeof *live);
    size_t *bytes = (size_t *)kiln__calloc(a, (size_t)(nt ? nt : 1), sizeof *bytes);
    if (!order || !live || !bytes) {
        kiln__free(a, order);
        kiln__free(a, live);
        kiln__free(a, bytes);
        return KILN_OUT_OF_MEMORY;
    }
    *total = 0;
    for (int64_t t = 0; t < nt; t++)
        if (s->at[t] == CU_AT_ARENA)
            kiln__dtype_bytes(ev->values[t].dtype, kiln__dims_volume(&ev->values[t].dims), &bytes[t]);
    for (int64_t li = 0; li < net->nb_layers; li++) {
        const kiln_layer *l = net->layers[li];
        for (int32_t k = 0; k < l->nb_outputs; k++) {
            int64_t t = l->outputs[k]->index;
            if (s->at[t] != CU_AT_ARENA) continue;
            size_t need = cu_align(bytes[t]);
            /* Live blocks sorted by offset (insertion sort: networks are small). */
            int64_t nl = 0;
            for (int64_t j = 0; j < n; j++) {
                int64_t u = order[j];
                if (last[u] < first[t]) continue;
                int64_t p = nl++;
                while (p > 0 && s->off[live[p - 1]] > s->off[u]) {
                    live[p] = live[p - 1];
                    p--;
                }
                live[p] = u;
            }
            size_t at = 0;
            for (int64_t j = 0; j < nl; j++) {
                int64_t u = live[j];
                if (s->off[u] >= at + need) break;
                at = KILN__MAX(at, s->off[u] + cu_align(bytes[u]));
            }
            s->off[t] = at;
            order[n++] = t;
            *total = KILN__MAX(*total, at + need);
        }
    }
    kiln__free(a, order);
    kiln__free(a, live);
    kiln__free(a, bytes);
    return KILN_OK;
}

static kiln_status plan(cu_state *s, const kiln__eval *ev, cudaStream_t stream) {
    const kiln_engine *e = s->engine;
    const kiln_network *net = e->net;
    const kiln__alloc *a = &s->alloc;
    s->planned = false;
    s->params_host.size = 0;
    s->params_host.failed = false;
    int64_t nt = net->nb_tensors;
    memset(s->at, 0, (size_t)nt * sizeof *s->at);
    for (int64_t i = 0; i < net->nb_inputs; i++) {
        s->at[net->inputs[i]->index] = CU_AT_IO;
        s->off[net->inputs[i]->index] = (size_t)i;
    }
    int64_t *first = (int64_t *)kiln__calloc(a, (size_t)(nt ? nt : 1), sizeof *first);
    int64_t *last = (int64_t *)kiln__calloc(a, (size_t)(nt ? nt : 1), sizeof *last);
    if (!first || !last) {
        kiln__free(a, first);
        kiln__free(a, last);
        return KILN_OUT_OF_MEMORY;
    }
    kiln_status st = KILN_OK;
    /* Where each tensor lives, and the lifetimes of those in the arena. */
    for (int64_t li = 0; li < net->nb_layers && st == KILN_OK; li++) {
        const kiln_layer *l = net->layers[li];
        cu_layer_state_clear(&s->ls[li]);
        s->ls[li].on_device = l->type != KILN_LAYER_CONSTANT && !folded_layer(l, ev);
        for (int32_t k = 0; k < l->nb_outputs; k++) {
            int64_t t = l->outputs[k]->index;
            first[t] = last[t] = li;
            if (l->type == KILN_LAYER_CONSTANT) {
                s->at[t] = CU_AT_WEIGHTS;
                s->off[t] = s->weight_off[li] == SIZE_MAX ? 0 : s->weight_off[li];
            } else if (ev->values[t].data) {
                s->at[t] = CU_AT_PARAMS;
            } else if (kiln__dims_volume(&ev->values[t].dims) < 0) {
                st = kiln__layer_error(l, KILN_UNSUPPORTED,
                                       "output %d has dims that depend on data computed on the device, which the CUDA "
                                       "backend does not support", k);
            } else if (l->outputs[k]->is_output) {
                s->at[t] = CU_AT_IO;
                for (int64_t o = 0; o < net->nb_outputs; o++)
                    if (net->outputs[o] == l->outputs[k]) {
                        s->off[t] = (size_t)(net->nb_inputs + o);
                        break;
                    }
            } else {
                s->at[t] = CU_AT_ARENA;
            }
        }
        if (!s->ls[li].on_device) continue;
        for (int32_t k = 0; k < l->nb_inputs; k++)
            if (l->inputs[k]) last[l->inputs[k]->index] = li;
    }
    /* Folded tensors that the device reads (or that are outputs) go into the params buffer. */
    for (int64_t t = 0; t < nt && st == KILN_OK; t++) {
        if (s->at[t] != CU_AT_PARAMS) continue;
        const kiln_tensor *tt = net->tensors[t];
        bool needed = tt->is_output;
        for (int64_t li = 0; li < net->nb_layers && !needed; li++) {
            const kiln_layer *l = net->layers[li];
            if (!s->ls[li].on_device) continue;
            for (int32_t k = 0; k < l->nb_inputs; k++) needed = needed || l->inputs[k] == tt;
        }
        if (!needed) continue;
        kiln__buf_pad(&s->params_host, CU_ALIGN);
        s->off[t] = s->params_host.size;
        kiln__buf_append(&s->params_host, ev->values[t].data, ev->values[t].bytes);
        st = kiln__buf_status(&s->params_host);
    }
    size_t act_bytes = 0;
    if (st == KILN_OK) st = place_activations(s, ev, first, last, &act_bytes);
    kiln__free(a, first);
    kiln__free(a, last);
    /* Each device layer's own planning: descriptors, algorithms, scratch, tables. */
    size_t scratch = 0;
    for (int64_t li = 0; li < net->nb_layers && st == KILN_OK; li++) {
        const kiln_layer *l = net->layers[li];
        if (!s->ls[li].on_device) continue;
        cu_layer_fn fn = LAYER_FNS[l->type];
        if (!fn) {
            st = kiln__layer_error(l, KILN_UNSUPPORTED, "has no CUDA kernel and its values are not known on the host");
            break;
        }
        kiln__value in[64];
        if (l->nb_inputs > 64) {
            st = kiln__layer_error(l, KILN_UNSUPPORTED, "has more than 64 inputs");
            break;
        }
        for (int32_t k = 0; k < l->nb_inputs; k++) {
            if (l->inputs[k]) in[k] = ev->values[l->inputs[k]->index];
            else memset(&in[k], 0, sizeof in[k]);
        }
        cu_exec x;
        memset(&x, 0, sizeof x);
        x.s = s;
        x.mode = CU_PLAN;
        x.stream = stream;
        x.ls = &s->ls[li];
        x.layer = l;
        x.in = in;
        x.out = &ev->values[l->outputs[0]->index];
        x.flags = e->flags;
        st = fn(&x);
        scratch = KILN__MAX(scratch, s->ls[li].scratch);
    }
    if (st != KILN_OK) return st;
    s->scratch_off = cu_align(act_bytes);
    size_t arena = s->scratch_off + cu_align(scratch);
    if (arena > s->arena_bytes) {
        CU_CHECK(cudaDeviceSynchronize()); /* earlier runs may still read the old arena */
        CU_CHECK(cudaFree(s->arena));
        s->arena = NULL;
        s->arena_bytes = 0;
        CU_CHECK(cudaMalloc(&s->arena, arena));
        s->arena_bytes = arena;
    }
    size_t pbytes = s->params_host.size;
    if (pbytes > s->params_bytes) {
        CU_CHECK(cudaDeviceSynchronize());
        CU_CHECK(cudaFree(s->params));
        s->params = NULL;
        s->params_bytes = 0;
        CU_CHECK(cudaMalloc(&s->params, pbytes));
        s->params_bytes = pbytes;
    }
    if (pbytes)
        CU_CHECK(cudaMemcpyAsync(s->params, s->params_host.data, pbytes, cudaMemcpyHostToDevice, stream));
    s->planned = true;
    return KILN_OK;
}

/* ---------------------------------------------------------------- running */

/* Bytes of tensor t for the current shapes. */
static size_t value_bytes(const kiln__value *v) {
    size_t bytes = 0;
    kiln__dtype_bytes(v->dtype, kiln__dims_volume(&v->dims), &bytes);
    return bytes;
}

static kiln_status check_io(const kiln_network *net, const kiln__eval *ev, void *const *io_data,
                            const size_t *io_bytes) {
    int64_t nio = net->nb_inputs + net->nb_outputs;
    for (int64_t i = 0; i < nio; i++) {
        const kiln_tensor *t = i < net->nb_inputs ? net->inputs[i] : net->outputs[i - net->nb_inputs];
        size_t need = value_bytes(&ev->values[t->index]);
        if (need && !io_data[i])
            return kiln__error(KILN_INVALID_STATE, "enqueue: %s '%s' has no device memory bound",
                               i < net->nb_inputs ? "input" : "output", t->name);
        if (need > io_bytes[i])
            return kiln__error(KILN_INVALID_ARGUMENT, "enqueue: %s '%s' needs %zu bytes, the bound buffer has %zu",
                               i < net->nb_inputs ? "input" : "output", t->name, need, io_bytes[i]);
    }
    return KILN_OK;
}

static kiln_status run_layer(cu_state *s, const kiln__eval *ev, int64_t li, void *const *io_data,
                             cudaStream_t stream) {
    const kiln_layer *l = s->engine->net->layers[li];
    kiln__value in[64];
    const void *din[64];
    void *dout[16];
    if (l->nb_outputs > 16) return kiln__layer_error(l, KILN_UNSUPPORTED, "has more than 16 outputs");
    for (int32_t k = 0; k < l->nb_inputs; k++) {
        if (l->inputs[k]) {
            in[k] = ev->values[l->inputs[k]->index];
            din[k] = tensor_ptr(s, l->inputs[k]->index, io_data);
        } else {
            memset(&in[k], 0, sizeof in[k]);
            din[k] = NULL;
        }
    }
    for (int32_t k = 0; k < l->nb_outputs; k++) dout[k] = tensor_ptr(s, l->outputs[k]->index, io_data);
    cu_exec x;
    memset(&x, 0, sizeof x);
    x.s = s;
    x.mode = CU_RUN;
    x.stream = stream;
    x.ls = &s->ls[li];
    x.layer = l;
    x.in = in;
    x.out = &ev->values[l->outputs[0]->index];
    x.din = din;
    x.dout = dout;
    x.scratch = (char *)s->arena + s->scratch_off;
    x.flags = s->engine->flags;
    kiln_status st = LAYER_FNS[l->type](&x);
    if (st != KILN_OK && strncmp(kiln_last_error(), "layer '", 7) != 0)
        kiln__error_prefix(st, "layer '%s' (%s)", l->name, kiln_layer_type_name(l->type));
    return st;
}

static kiln_status cu_enqueue(void *state, const kiln_engine *e, const kiln__eval *shapes, void *const *io_data,
                              const size_t *io_bytes, void *stream_ptr) {
    cu_state *s = (cu_state *)state;
    const kiln_network *net = e->net;
    cudaStream_t stream = (cudaStream_t)stream_ptr;
    CU_CHECK(cudaSetDevice(s->device));
    CUDNN_CHECK(cu_cudnn.cudnnSetStream(s->cudnn, stream));
    KILN__TRY(check_io(net, shapes, io_data, io_bytes));
    uint64_t key = shapes_key(shapes);
    if (!s->planned || key != s->plan_key) {
        KILN__TRY(plan(s, shapes, stream));
        s->plan_key = key;
    }
    for (int64_t li = 0; li < net->nb_layers; li++)
        if (s->ls[li].on_device) KILN__TRY(run_layer(s, shapes, li, io_data, stream));
    /* Outputs not written in place: network inputs, constants, folded values, duplicates. */
    for (int64_t o = 0; o < net->nb_outputs; o++) {
        int64_t t = net->outputs[o]->index;
        void *src = tensor_ptr(s, t, io_data), *dst = io_data[net->nb_inputs + o];
        size_t bytes = value_bytes(&shapes->values[t]);
        if (bytes && src != dst) CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    }
    return KILN_OK;
}

static kiln_status cu_synchronize(void *stream) {
    CU_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    return KILN_OK;
}

extern "C" const kiln__device_backend kiln__cuda_backend = {
    cu_device_count, cu_arch, cu_check_layer, cu_select_tactics, cu_context_create, cu_context_destroy, cu_enqueue,
    cu_synchronize,
};
