/* ONNX importer for RNN, GRU and LSTM (opset 7 on; layout from 14): one RNN layer each.
 * Listed in kiln__onnx_ops_misc (import_misc.c). */
#include "onnx/import_misc.h"

#include "network/misc_layers.h"

#include <string.h>
#include <strings.h>

/* ONNX activation names with their kiln kind and the ONNX defaults for alpha and beta;
 * uses_alpha/uses_beta say which of activation_alpha/activation_beta they consume. */
typedef struct rnn_act_name {
    const char *name;
    int32_t kind;
    float alpha, beta;
    bool uses_alpha, uses_beta;
} rnn_act_name;

static const rnn_act_name ACTS[] = {
    {"Relu", KILN_ACT_RELU, 0, 0, false, false},
    {"Tanh", KILN_ACT_TANH, 0, 0, false, false},
    {"Sigmoid", KILN_ACT_SIGMOID, 0, 0, false, false},
    {"Affine", KILN__RNN_ACT_AFFINE, 1, 0, true, true},
    {"LeakyRelu", KILN_ACT_LEAKY_RELU, 0.01f, 0, true, false},
    {"ThresholdedRelu", KILN_ACT_THRESHOLDED_RELU, 1, 0, true, false},
    {"ScaledTanh", KILN_ACT_SCALED_TANH, 1, 1, true, true},
    {"HardSigmoid", KILN_ACT_HARD_SIGMOID, 0.2f, 0.5f, true, true},
    {"Elu", KILN_ACT_ELU, 1, 0, true, false},
    {"Softsign", KILN_ACT_SOFTSIGN, 0, 0, false, false},
    {"Softplus", KILN_ACT_SOFTPLUS, 0, 0, false, false},
};

/* Fills p->acts from the `activations` list (or the op's defaults). alpha/beta values are
 * consumed in order by the activations that take them, as ONNX Runtime does. */
static kiln_status rnn_acts(const kiln__onnx_node *node, kiln__rnn_params *p, int32_t dirs) {
    static const char *const DEFAULTS[3][3] = {{"Tanh"}, {"Sigmoid", "Tanh"}, {"Sigmoid", "Tanh", "Tanh"}};
    int32_t per = kiln__rnn_nb_acts(p->cell);
    const kiln__onnx_attr *list = kiln__onnx_node_attr(node, "activations");
    if (list && list->type != KILN__ONNX_ATTR_STRINGS)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'activations': expected STRINGS, got %s",
                                     kiln__onnx_attr_type_name(list->type));
    int64_t given = list ? list->count : 0;
    /* A list of one direction's activations serves both; a longer one (RNN's default lists
     * two) is read from the start. */
    if (list && given < per * dirs && given != per)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "activations has %lld names, expected %d",
                                     (long long)given, per * dirs);
    const float *alphas = NULL, *betas = NULL;
    int64_t na = 0, nb = 0, ia = 0, ib = 0;
    KILN__TRY(kiln__onnx_attr_floats(node, "activation_alpha", &alphas, &na));
    KILN__TRY(kiln__onnx_attr_floats(node, "activation_beta", &betas, &nb));
    for (int32_t i = 0; i < per * dirs; i++) {
        const char *name = NULL;
        int32_t len = 0;
        if (list) {
            const kiln__onnx_bytes *s = &list->strings[given >= per * dirs ? i : i % per];
            name = (const char *)s->data;
            len = (int32_t)s->size;
        } else {
            name = DEFAULTS[p->cell][i % per];
            len = (int32_t)strlen(name);
        }
        const rnn_act_name *a = NULL;
        for (size_t k = 0; k < KILN__ARRAY_LEN(ACTS); k++)
            if ((size_t)len == strlen(ACTS[k].name) && strncasecmp(name, ACTS[k].name, (size_t)len) == 0) a = &ACTS[k];
        if (!a) return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "activation '%.*s' is not supported", len, name);
        p->acts[i] = (kiln__act){a->kind, a->alpha, a->beta};
        if (a->uses_alpha && ia < na) p->acts[i].alpha = alphas[ia++];
        if (a->uses_beta && ib < nb) p->acts[i].beta = betas[ib++];
    }
    return KILN_OK;
}

kiln_status kiln__misc_import_rnn(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln__rnn_params p = {.cell = KILN__RNN_SIMPLE, .direction = KILN__RNN_FORWARD};
    if (strcmp(node->op_type, "GRU") == 0)
        p.cell = KILN__RNN_GRU;
    else if (strcmp(node->op_type, "LSTM") == 0)
        p.cell = KILN__RNN_LSTM;
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *w = x ? kiln__onnx_in_required(ctx, node, 1, "W", &st) : NULL;
    kiln_tensor *r = w ? kiln__onnx_in_required(ctx, node, 2, "R", &st) : NULL;
    if (!r) return st;
    kiln__onnx_bytes dir = {0};
    KILN__TRY(kiln__onnx_attr_string(node, "direction", &dir));
    static const char *const DIRS[3] = {"forward", "reverse", "bidirectional"};
    if (dir.data) {
        p.direction = -1;
        for (int32_t i = 0; i < 3; i++)
            if (dir.size == strlen(DIRS[i]) && memcmp(dir.data, DIRS[i], dir.size) == 0) p.direction = i;
        if (p.direction < 0)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                         "direction is '%.*s', expected forward, reverse or bidirectional",
                                         (int)dir.size, (const char *)dir.data);
    }
    /* hidden_size may be left out: R's last dim gives it. */
    kiln_dims rd;
    KILN__TRY(kiln_tensor_shape(r, &rd));
    p.hidden_size = rd.nb_dims == 3 ? rd.d[2] : -1;
    KILN__TRY(kiln__onnx_attr_int(node, "hidden_size", &p.hidden_size));
    int64_t layout = 0, lbr = 0, forget = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "layout", &layout));
    KILN__TRY(kiln__onnx_attr_int(node, "linear_before_reset", &lbr));
    KILN__TRY(kiln__onnx_attr_int(node, "input_forget", &forget));
    p.layout = (int32_t)(layout != 0);
    p.linear_before_reset = lbr != 0;
    p.input_forget = forget != 0;
    if (kiln__onnx_node_attr(node, "clip")) {
        p.has_clip = 1;
        KILN__TRY(kiln__onnx_attr_float(node, "clip", &p.clip));
    }
    KILN__TRY(rnn_acts(node, &p, p.direction == KILN__RNN_BIDIRECTIONAL ? 2 : 1));
    int32_t nb_in = p.cell == KILN__RNN_LSTM ? 8 : 6, nb_out = p.cell == KILN__RNN_LSTM ? 3 : 2;
    kiln_tensor *in[8] = {0};
    for (int32_t i = 0; i < nb_in; i++) in[i] = kiln__onnx_in(ctx, node, i);
    kiln_layer *l;
    KILN__TRY(kiln__onnx_add_layer(ctx, node, KILN_LAYER_RNN, in, nb_in, nb_out, &p, sizeof p, &l));
    for (int32_t o = 0; o < nb_out; o++) KILN__TRY(kiln__onnx_out(ctx, node, o, kiln_layer_output(l, o)));
    return KILN_OK;
}
