/* Reduce over a set of axes (ONNX Reduce* and ArgMax/ArgMin). */
#include "layer_resolve.h"

static const char *const op_names[KILN_REDUCE_COUNT] = {
    "sum", "mean", "max", "min", "prod", "l1", "l2", "log_sum", "log_sum_exp", "sum_square", "argmax", "argmin"};

kiln_status kiln__reduce_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__reduce_axes *axes) {
    const kiln__reduce_params *p = &layer->p.reduce;
    int32_t rank = inputs[0].dims.nb_dims;
    axes->mask = 0;
    axes->nb_unknown = -1;
    axes->identity = false;
    int64_t n = 0;
    if (kiln__has_input(layer, inputs, 1)) {
        const kiln__value *a = &inputs[1];
        if ((a->dtype != KILN_INT64 && a->dtype != KILN_INT32) || a->dims.nb_dims != 1 || a->dims.d[0] < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 1 (axes) must be a 1-D int32/int64 tensor of known length");
        n = a->dims.d[0];
        if (n > rank)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (axes) has %lld entries, rank is %d",
                                     (long long)n, rank);
        if (n > 0 && !a->data) {
            axes->nb_unknown = (int32_t)n;
            return KILN_OK;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t v = kiln__value_int(a, i);
            int32_t ax;
            if (!kiln__norm_axis(v, rank, &ax))
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                         (long long)v, rank);
            if (axes->mask & (1u << ax))
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is given twice", ax);
            axes->mask |= 1u << ax;
        }
    } else {
        if (rank < 32 && (p->axes_mask >> rank))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axes_mask 0x%x names dims beyond rank %d",
                                     p->axes_mask, rank);
        axes->mask = p->axes_mask;
    }
    if (!axes->mask) {
        if (p->noop_with_empty_axes) axes->identity = true;
        else axes->mask = rank ? (1u << rank) - 1 : 0; /* ONNX: no axes reduces everything */
    }
    return KILN_OK;
}

static bool dtype_ok(kiln_dtype t, int32_t op) {
    switch (t) {
    case KILN_FLOAT32:
    case KILN_FLOAT16:
    case KILN_BFLOAT16:
    case KILN_FLOAT64:
    case KILN_INT32:
    case KILN_INT64:
    case KILN_INT8:
    case KILN_UINT8: return true;
    case KILN_BOOL:
        return op == KILN_REDUCE_MAX || op == KILN_REDUCE_MIN || op == KILN_REDUCE_ARGMAX || op == KILN_REDUCE_ARGMIN;
    default: return false;
    }
}

static kiln_status reduce_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__reduce_params *p = &layer->p.reduce;
    const kiln__value *x = &inputs[0];
    int32_t rank = x->dims.nb_dims;
    if (p->op < 0 || p->op >= KILN_REDUCE_COUNT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown reduce op %d", p->op);
    if (!dtype_ok(x->dtype, p->op))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "%s of dtype %s is not supported", op_names[p->op],
                                 kiln_dtype_name(x->dtype));
    kiln__reduce_axes ax;
    KILN__TRY(kiln__reduce_resolve(layer, inputs, &ax));
    bool arg = p->op == KILN_REDUCE_ARGMAX || p->op == KILN_REDUCE_ARGMIN;
    kiln_dims out = {0};
    if (ax.nb_unknown >= 0) {
        if (arg && ax.nb_unknown != 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s takes exactly one axis, got %d",
                                     op_names[p->op], ax.nb_unknown);
        out.nb_dims = p->keep_dims ? rank : rank - ax.nb_unknown;
        for (int32_t i = 0; i < out.nb_dims; i++) out.d[i] = -1;
    } else if (ax.identity) {
        if (arg) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s needs an axis", op_names[p->op]);
        out = x->dims;
    } else {
        int32_t count = 0;
        for (int32_t i = 0; i < rank; i++) {
            bool reduced = ax.mask & (1u << i);
            count += reduced;
            if (reduced && x->dims.d[i] == 0 && arg)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s over the empty dim %d", op_names[p->op], i);
            if (!reduced) out.d[out.nb_dims++] = x->dims.d[i];
            else if (p->keep_dims) out.d[out.nb_dims++] = 1;
        }
        if (arg && count != 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s takes exactly one axis, got %d",
                                     op_names[p->op], count);
    }
    outputs[0].dtype = arg ? KILN_INT64 : x->dtype;
    outputs[0].dims = out;
    return KILN_OK;
}

static void reduce_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__reduce_params *p = &layer->p.reduce;
    const char *op = p->op >= 0 && p->op < KILN_REDUCE_COUNT ? op_names[p->op] : "?";
    kiln__buf_printf(out, "op=%s axes_mask=0x%x keep_dims=%d select_last=%d noop_with_empty_axes=%d", op,
                     p->axes_mask, p->keep_dims, p->select_last, p->noop_with_empty_axes);
}

const kiln__layer_ops kiln__reduce_ops = {"Reduce", reduce_infer, reduce_describe};

kiln_status kiln_network_add_reduce(kiln_network *network, kiln_tensor *input, kiln_reduce_op op, uint32_t axes_mask,
                                    int32_t keep_dims, int32_t select_last, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_reduce: network is NULL");
    KILN__TRY(kiln__check_tensor(network, input, "input"));
    kiln_tensor *ins[1] = {input};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_REDUCE, ins, 1, 1, &l));
    l->p.reduce.op = op;
    l->p.reduce.axes_mask = axes_mask;
    l->p.reduce.keep_dims = keep_dims != 0;
    l->p.reduce.select_last = select_last != 0;
    return kiln__network_finish_layer(network, l, layer);
}
