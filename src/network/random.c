/* Random: samples from a seeded counter-based generator (misc_layers.h documents it):
 * uniform, normal, Bernoulli and multinomial. */
#include "misc_layers.h"

static const char *const DIST_NAMES[] = {"uniform", "normal", "bernoulli", "multinomial"};

static bool is_sample_float(kiln_dtype t) { return kiln__dtype_is_float(t); }

static kiln_status random_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__random_params *p = (const kiln__random_params *)layer->p.bytes;
    bool has_in = kiln__has_input(layer, inputs, 0);
    kiln_dtype in_dt = has_in ? inputs[0].dtype : KILN_DTYPE_UNDEFINED;
    kiln_dtype out_dt = p->dtype ? (kiln_dtype)p->dtype : in_dt;
    switch (p->dist) {
    case KILN__RAND_UNIFORM:
    case KILN__RAND_NORMAL:
        if (!is_sample_float(out_dt))
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "%s samples must be a float dtype, got %s",
                                     DIST_NAMES[p->dist], kiln_dtype_name(out_dt));
        if (has_in) {
            outputs[0].dims = inputs[0].dims;
        } else {
            if (p->dims.nb_dims < 0 || p->dims.nb_dims > KILN_MAX_DIMS)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "rank %d is out of range 0..%d", p->dims.nb_dims,
                                         KILN_MAX_DIMS);
            for (int32_t i = 0; i < p->dims.nb_dims; i++)
                if (p->dims.d[i] < 0)
                    return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "dim %d is %lld, expected >= 0", i,
                                             (long long)p->dims.d[i]);
            outputs[0].dims = p->dims;
        }
        if (p->dist == KILN__RAND_NORMAL && !(p->b >= 0))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "scale is %g, expected >= 0", p->b);
        break;
    case KILN__RAND_BERNOULLI:
        if (!has_in || !kiln__dtype_is_float(in_dt))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (probabilities) must be a float tensor");
        if (!kiln__dtype_is_float(out_dt) && !kiln__dtype_is_integer(out_dt) && out_dt != KILN_BOOL)
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "output dtype %s is not supported",
                                     kiln_dtype_name(out_dt));
        outputs[0].dims = inputs[0].dims;
        break;
    case KILN__RAND_MULTINOMIAL:
        if (!has_in || !kiln__dtype_is_float(in_dt) || inputs[0].dims.nb_dims != 2)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 0 must be a 2-D float tensor [batch, classes]");
        if (out_dt != KILN_INT32 && out_dt != KILN_INT64)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "output dtype %s, expected int32 or int64",
                                     kiln_dtype_name(out_dt));
        if (p->sample_size < 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "sample_size is %lld, expected >= 1",
                                     (long long)p->sample_size);
        outputs[0].dims = (kiln_dims){2, {inputs[0].dims.d[0], p->sample_size}};
        break;
    default: return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown distribution %d", p->dist);
    }
    outputs[0].dtype = out_dt;
    return KILN_OK;
}

static void random_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__random_params *p = (const kiln__random_params *)layer->p.bytes;
    const char *dist = p->dist >= 0 && p->dist < 4 ? DIST_NAMES[p->dist] : "?";
    kiln__buf_printf(out, "dist=%s seed=%llu", dist, (unsigned long long)p->seed);
    if (p->dist == KILN__RAND_UNIFORM) kiln__buf_printf(out, " low=%g high=%g", p->a, p->b);
    if (p->dist == KILN__RAND_NORMAL) kiln__buf_printf(out, " mean=%g scale=%g", p->a, p->b);
    if (p->dist == KILN__RAND_MULTINOMIAL) kiln__buf_printf(out, " sample_size=%lld", (long long)p->sample_size);
}

const kiln__layer_ops kiln__random_ops = {"Random", random_infer, random_describe};
