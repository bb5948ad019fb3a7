/* Shuffle: transpose, reshape, transpose (TensorRT's IShuffleLayer; ONNX Transpose, Reshape,
 * Flatten, Squeeze, Unsqueeze map onto it). */
#include "layer_resolve.h"

#include <string.h>

static kiln_status check_perm(const kiln_layer *layer, const char *which, const int32_t *perm, int32_t rank) {
    bool seen[KILN_MAX_DIMS] = {false};
    for (int32_t i = 0; i < rank; i++) {
        if (perm[i] < 0 || perm[i] >= rank || seen[perm[i]])
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "%s transpose is not a permutation of 0..%d (entry %d is %d)", which, rank - 1,
                                     i, perm[i]);
        seen[perm[i]] = true;
    }
    return KILN_OK;
}

static void apply_perm(const int32_t *perm, kiln_dims *d) {
    kiln_dims in = *d;
    for (int32_t i = 0; i < in.nb_dims; i++) d->d[i] = in.d[perm[i]];
}

/* Resolves reshape dims `spec` (0 copies, -1 inferred) against the dims `in`. */
static kiln_status reshape_dims(const kiln_layer *layer, const kiln_dims *in_dims, const int64_t *spec, int32_t n,
                                kiln_dims *out) {
    const kiln_dims in_copy = *in_dims, *in = &in_copy; /* out may alias in_dims */
    bool allow_zero = layer->p.shuffle.allow_zero != 0;
    int32_t infer_at = -1;
    bool has_zero = false, known = true;
    int64_t product = 1;
    out->nb_dims = n;
    for (int32_t i = 0; i < n; i++) {
        int64_t v = spec[i];
        if (v == -1) {
            if (infer_at >= 0)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "reshape dims have more than one -1 (at %d and %d)", infer_at, i);
            infer_at = i;
            out->d[i] = -1;
            continue;
        }
        if (v < -1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "reshape dim %d is %lld", i, (long long)v);
        if (v == 0 && !allow_zero) {
            if (i >= in->nb_dims)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "reshape dim %d is 0 (copy) but the input has rank %d", i, in->nb_dims);
            v = in->d[i];
        }
        if (v == 0) has_zero = true;
        out->d[i] = v;
        if (v < 0) known = false;
        else if (known && product > INT64_MAX / (v ? v : 1))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "reshape dims overflow");
        else if (known) product *= v;
    }
    int64_t in_volume = kiln__dims_volume(in);
    if (infer_at >= 0) {
        if (allow_zero && has_zero)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "reshape dims hold both 0 (with allow_zero) and -1");
        if (known && product == 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "reshape dim %d is -1 but the other dims have zero volume", infer_at);
        if (known && in_volume >= 0) {
            if (in_volume % product)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "cannot infer reshape dim %d: input volume %lld is not a multiple of %lld",
                                         infer_at, (long long)in_volume, (long long)product);
            out->d[infer_at] = in_volume / product;
        }
    } else if (known && in_volume >= 0 && in_volume != product) {
        char a[128], b[128];
        kiln__dims_format(in, a, sizeof a);
        kiln__dims_format(out, b, sizeof b);
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "cannot reshape %s (volume %lld) to %s (volume %lld)",
                                 a, (long long)in_volume, b, (long long)product);
    }
    return KILN_OK;
}

static kiln_status shuffle_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__shuffle_params *p = &layer->p.shuffle;
    const kiln__value *x = &inputs[0];
    if (!kiln__elem_bytes(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    kiln_dims d = x->dims;
    if (p->has_first_perm) {
        KILN__TRY(check_perm(layer, "first", p->first_perm, d.nb_dims));
        apply_perm(p->first_perm, &d);
    }
    if (kiln__has_input(layer, inputs, 1)) {
        const kiln__value *s = &inputs[1];
        if ((s->dtype != KILN_INT64 && s->dtype != KILN_INT32) || s->dims.nb_dims != 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 1 (shape) must be a 1-D int32/int64 tensor, got %s of rank %d",
                                     kiln_dtype_name(s->dtype), s->dims.nb_dims);
        int64_t n = s->dims.d[0];
        if (n < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (shape) has an unknown length");
        if (n > KILN_MAX_DIMS)
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 1 (shape) has %lld dims, at most %d supported",
                                     (long long)n, KILN_MAX_DIMS);
        if (s->data) {
            int64_t spec[KILN_MAX_DIMS];
            for (int64_t i = 0; i < n; i++) spec[i] = kiln__value_int(s, i);
            KILN__TRY(reshape_dims(layer, &d, spec, (int32_t)n, &d));
        } else {
            d.nb_dims = (int32_t)n;
            for (int32_t i = 0; i < d.nb_dims; i++) d.d[i] = -1;
        }
    } else if (p->has_reshape) {
        if (p->reshape.nb_dims < 0 || p->reshape.nb_dims > KILN_MAX_DIMS)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "reshape rank %d is out of range",
                                     p->reshape.nb_dims);
        KILN__TRY(reshape_dims(layer, &d, p->reshape.d, p->reshape.nb_dims, &d));
    }
    if (p->has_second_perm) {
        KILN__TRY(check_perm(layer, "second", p->second_perm, d.nb_dims));
        apply_perm(p->second_perm, &d);
    }
    outputs[0].dtype = x->dtype;
    outputs[0].dims = d;
    return KILN_OK;
}

static void describe_ints(kiln__buf *out, const char *key, const int32_t *v, int32_t n) {
    kiln__buf_printf(out, " %s=[", key);
    for (int32_t i = 0; i < n; i++) kiln__buf_printf(out, "%s%d", i ? "," : "", v[i]);
    kiln__buf_printf(out, "]");
}

static void shuffle_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__shuffle_params *p = &layer->p.shuffle;
    int32_t rank_in = layer->inputs[0] ? layer->inputs[0]->dims.nb_dims : 0;
    int32_t rank_out = layer->outputs[0] ? layer->outputs[0]->dims.nb_dims : 0;
    kiln__buf_printf(out, "allow_zero=%d", p->allow_zero);
    if (p->has_first_perm) describe_ints(out, "first_perm", p->first_perm, rank_in);
    if (p->has_reshape && !(layer->nb_inputs > 1 && layer->inputs[1])) {
        char buf[160];
        kiln__dims_format(&p->reshape, buf, sizeof buf);
        kiln__buf_printf(out, " reshape=%s", buf);
    }
    if (p->has_second_perm) describe_ints(out, "second_perm", p->second_perm, rank_out);
}

const kiln__layer_ops kiln__shuffle_ops = {"Shuffle", shuffle_infer, shuffle_describe};

kiln_status kiln_network_add_shuffle(kiln_network *network, kiln_tensor *input, const kiln_shuffle_desc *desc,
                                     kiln_tensor *shape_tensor, kiln_layer **layer) {
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_shuffle: network is NULL");
    if (!desc || desc->struct_size < sizeof(kiln_shuffle_desc))
        return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_shuffle: desc is NULL or has a bad struct_size");
    KILN__TRY(kiln__check_tensor(network, input, "input"));
    if (shape_tensor) KILN__TRY(kiln__check_tensor(network, shape_tensor, "shape_tensor"));
    kiln_tensor *ins[2] = {input, shape_tensor};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_SHUFFLE, ins, shape_tensor ? 2 : 1, 1, &l));
    kiln__shuffle_params *p = &l->p.shuffle;
    p->has_first_perm = desc->has_first_transpose != 0;
    memcpy(p->first_perm, desc->first_transpose, sizeof p->first_perm);
    p->has_reshape = desc->has_reshape != 0;
    p->reshape = desc->reshape;
    p->allow_zero = desc->allow_zero != 0;
    p->has_second_perm = desc->has_second_transpose != 0;
    memcpy(p->second_perm, desc->second_transpose, sizeof p->second_perm);
    return kiln__network_finish_layer(network, l, layer);
}
