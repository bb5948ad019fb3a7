/* Fill: tensors made from a few numbers: constant-of-shape, range(start, limit, delta) and
 * eye-like (ones on a diagonal). */
#include "tensor_layers.h"
#include "../cpu/cpu.h"

#include <math.h>

static const char *const mode_names[3] = {"constant", "range", "eye"};

static bool numeric(kiln_dtype t) { return kiln__dtype_is_float(t) || kiln__dtype_is_integer(t); }

kiln_status kiln__range_count(const kiln_layer *layer, const kiln__value *inputs, int64_t *count) {
    kiln_dtype t = inputs[0].dtype;
    *count = -1;
    for (int32_t i = 0; i < 3; i++)
        if (inputs[i].dtype != t || !kiln__value_is_single(&inputs[i]) || inputs[i].dims.nb_dims > 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "inputs 0..2 (start, limit, delta) must be scalars of one dtype");
    if (!numeric(t))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "range of dtype %s is not supported", kiln_dtype_name(t));
    for (int32_t i = 0; i < 3; i++)
        if (!inputs[i].data || kiln__dims_volume(&inputs[i].dims) != 1) return KILN_OK;
    double n;
    if (kiln__dtype_is_integer(t)) {
        int64_t s = kiln__load_i64(inputs[0].data, t, 0), l = kiln__load_i64(inputs[1].data, t, 0),
                d = kiln__load_i64(inputs[2].data, t, 0);
        if (d == 0) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "delta is 0");
        /* ceil((l - s) / d) in exact integer arithmetic. */
        int64_t num, q;
        if (__builtin_sub_overflow(l, s, &num))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "limit - start overflows");
        q = num / d;
        if (q * d != num && ((num > 0) == (d > 0))) q++;
        n = (double)q;
    } else {
        double s = kiln__load_f64(inputs[0].data, t, 0), l = kiln__load_f64(inputs[1].data, t, 0),
               d = kiln__load_f64(inputs[2].data, t, 0);
        if (d == 0 || !isfinite(s) || !isfinite(l) || !isfinite(d))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "start/limit/delta must be finite and delta non-zero");
        n = ceil((l - s) / d);
    }
    if (n > (double)(INT64_C(1) << 40))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "range has %.0f elements, too many", n);
    *count = n > 0 ? (int64_t)n : 0;
    return KILN_OK;
}

static kiln_status fill_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__fill_params *p = (const kiln__fill_params *)layer->p.bytes;
    kiln_dims out = {0};
    kiln_dtype dt = (kiln_dtype)p->dtype;
    switch (p->mode) {
    case KILN__FILL_CONSTANT:
        if (kiln__has_input(layer, inputs, 0)) {
            const kiln__value *s = &inputs[0];
            if ((s->dtype != KILN_INT64 && s->dtype != KILN_INT32) || s->dims.nb_dims != 1 || s->dims.d[0] < 0)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "input 0 (shape) must be a 1-D int32/int64 tensor of known length");
            if (s->dims.d[0] > KILN_MAX_DIMS)
                return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 0 (shape) has %lld entries, at most %d",
                                         (long long)s->dims.d[0], KILN_MAX_DIMS);
            out.nb_dims = (int32_t)s->dims.d[0];
            for (int32_t i = 0; i < out.nb_dims; i++) {
                out.d[i] = s->data ? kiln__value_int(s, i) : -1;
                if (s->data && out.d[i] < 0)
                    return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "shape entry %d is %lld, expected >= 0", i,
                                             (long long)out.d[i]);
            }
        } else {
            if (p->dims.nb_dims < 0 || p->dims.nb_dims > KILN_MAX_DIMS || kiln__dims_volume(&p->dims) < 0)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "static dims are invalid");
            out = p->dims;
        }
        if (!kiln__elem_bytes(dt) || (!numeric(dt) && dt != KILN_BOOL))
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(dt));
        break;
    case KILN__FILL_RANGE: {
        if (layer->nb_inputs != 3) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "range needs 3 inputs");
        int64_t n;
        KILN__TRY(kiln__range_count(layer, inputs, &n));
        out.nb_dims = 1;
        out.d[0] = n;
        dt = inputs[0].dtype;
        break;
    }
    case KILN__FILL_EYE:
        if (!kiln__has_input(layer, inputs, 0) || inputs[0].dims.nb_dims != 2)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 must be a 2-D tensor");
        out = inputs[0].dims;
        if (dt == KILN_DTYPE_UNDEFINED) dt = inputs[0].dtype;
        if (!numeric(dt) && dt != KILN_BOOL)
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(dt));
        break;
    default: return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown fill mode %d", p->mode);
    }
    outputs[0].dtype = dt;
    outputs[0].dims = out;
    return KILN_OK;
}

static void fill_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__fill_params *p = (const kiln__fill_params *)layer->p.bytes;
    const char *mode = p->mode >= 0 && p->mode < 3 ? mode_names[p->mode] : "?";
    kiln__buf_printf(out, "mode=%s", mode);
    if (p->mode == KILN__FILL_CONSTANT) {
        if (kiln__dtype_is_integer((kiln_dtype)p->dtype)) kiln__buf_printf(out, " value=%lld", (long long)p->ivalue);
        else kiln__buf_printf(out, " value=%g", p->value);
    }
    if (p->mode == KILN__FILL_EYE) kiln__buf_printf(out, " k=%lld", (long long)p->k);
}

const kiln__layer_ops kiln__fill_ops = {"Fill", fill_infer, fill_describe};
