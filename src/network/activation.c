/* The activation layer: one nonlinearity (kiln_activation_type) applied to every element. */
#include "ir.h"

static const char *const ACT_NAMES[KILN_ACT_COUNT] = {
    "relu",     "sigmoid",  "tanh",      "clip",         "leaky_relu", "elu",      "selu",
    "softplus", "softsign", "gelu_erf",  "gelu_tanh",    "silu",       "hard_sigmoid", "hard_swish",
    "thresholded_relu",     "celu",      "mish",         "scaled_tanh"};

static kiln_status activation_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__activation_params *p = &layer->p.act;
    if (p->kind < 0 || p->kind >= KILN_ACT_COUNT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "activation kind %d is out of range 0..%d", p->kind,
                                 KILN_ACT_COUNT - 1);
    kiln_dtype t = in[0].dtype;
    /* Relu and clip are also defined on signed integers (ONNX Relu-14, Clip-12). */
    bool int_ok = (p->kind == KILN_ACT_RELU || p->kind == KILN_ACT_CLIP) && kiln__dtype_is_integer(t) &&
                  kiln__dtype_is_signed(t);
    if (!kiln__dtype_is_float(t) && !int_ok)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has dtype %s, expected a float type%s",
                                 kiln_dtype_name(t),
                                 p->kind == KILN_ACT_RELU || p->kind == KILN_ACT_CLIP ? " or a signed integer" : "");
    out[0].dtype = t;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

static void activation_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__activation_params *p = &layer->p.act;
    kiln__buf_printf(out, "kind=%s alpha=%g beta=%g",
                     p->kind >= 0 && p->kind < KILN_ACT_COUNT ? ACT_NAMES[p->kind] : "?", (double)p->alpha,
                     (double)p->beta);
}

const kiln__layer_ops kiln__activation_ops = {"Activation", activation_infer, activation_describe};

kiln_status kiln_network_add_activation(kiln_network *net, kiln_tensor *input, kiln_activation_type type, float alpha,
                                        float beta, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "add_activation: network is NULL");
    KILN__TRY(kiln__check_tensor(net, input, "add_activation: input"));
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_ACTIVATION, &input, 1, 1, &l));
    l->p.act.kind = (int32_t)type;
    l->p.act.alpha = alpha;
    l->p.act.beta = beta;
    return kiln__network_finish_layer(net, l, layer);
}
