/* The elementwise layer: a binary op over two inputs with numpy broadcasting. */
#include "ir.h"

static const char *const EW_NAMES[KILN_EW_COUNT] = {
    "add",   "sub",     "mul",  "div",        "pow",           "min",     "max",    "mod",
    "fmod",  "equal",   "less", "less_equal", "greater",       "greater_equal",     "and",
    "or",    "xor",     "bit_and", "bit_or",  "bit_xor",       "shift_left",        "shift_right"};

static bool is_numeric(kiln_dtype t) { return kiln__dtype_is_float(t) || kiln__dtype_is_integer(t); }

static bool is_comparison(int32_t op) { return op >= KILN_EW_EQUAL && op <= KILN_EW_GREATER_EQUAL; }

/* Whether `op` is defined on `t` (the dtype of input 0; for pow, of the base). */
static bool op_accepts(int32_t op, kiln_dtype t) {
    switch (op) {
    case KILN_EW_AND:
    case KILN_EW_OR:
    case KILN_EW_XOR: return t == KILN_BOOL;
    case KILN_EW_BIT_AND:
    case KILN_EW_BIT_OR:
    case KILN_EW_BIT_XOR:
    case KILN_EW_SHIFT_LEFT:
    case KILN_EW_SHIFT_RIGHT: return kiln__dtype_is_integer(t);
    case KILN_EW_EQUAL: return is_numeric(t) || t == KILN_BOOL;
    default: return is_numeric(t);
    }
}

static const char *expected_types(int32_t op) {
    switch (op) {
    case KILN_EW_AND:
    case KILN_EW_OR:
    case KILN_EW_XOR: return "bool";
    case KILN_EW_BIT_AND:
    case KILN_EW_BIT_OR:
    case KILN_EW_BIT_XOR:
    case KILN_EW_SHIFT_LEFT:
    case KILN_EW_SHIFT_RIGHT: return "an integer type";
    case KILN_EW_EQUAL: return "a numeric type or bool";
    default: return "a numeric type";
    }
}

static kiln_status elementwise_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    int32_t op = layer->p.ew.op;
    if (op < 0 || op >= KILN_EW_COUNT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "op %d is out of range 0..%d", op, KILN_EW_COUNT - 1);
    kiln_dtype ta = in[0].dtype, tb = in[1].dtype;
    if (!op_accepts(op, ta))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s: input 0 has dtype %s, expected %s", EW_NAMES[op],
                                 kiln_dtype_name(ta), expected_types(op));
    /* ONNX Pow lets the exponent have its own numeric type; every other op needs equal dtypes. */
    if (op == KILN_EW_POW ? !is_numeric(tb) : tb != ta)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s: input 1 has dtype %s, expected %s",
                                 EW_NAMES[op], kiln_dtype_name(tb),
                                 op == KILN_EW_POW ? "a numeric type" : kiln_dtype_name(ta));
    if (!kiln__broadcast_dims(&in[0].dims, &in[1].dims, &out[0].dims)) {
        char da[160], db[160];
        kiln__dims_format(&in[0].dims, da, sizeof da);
        kiln__dims_format(&in[1].dims, db, sizeof db);
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input shapes %s and %s do not broadcast", da, db);
    }
    bool to_bool = is_comparison(op) || op == KILN_EW_AND || op == KILN_EW_OR || op == KILN_EW_XOR;
    out[0].dtype = to_bool ? KILN_BOOL : ta;
    return KILN_OK;
}

static void elementwise_describe(const kiln_layer *layer, kiln__buf *out) {
    int32_t op = layer->p.ew.op;
    kiln__buf_printf(out, "op=%s", op >= 0 && op < KILN_EW_COUNT ? EW_NAMES[op] : "?");
}

const kiln__layer_ops kiln__elementwise_ops = {"ElementWise", elementwise_infer, elementwise_describe};

kiln_status kiln_network_add_elementwise(kiln_network *net, kiln_tensor *a, kiln_tensor *b, kiln_elementwise_op op,
                                         kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "add_elementwise: network is NULL");
    KILN__TRY(kiln__check_tensor(net, a, "add_elementwise: input a"));
    KILN__TRY(kiln__check_tensor(net, b, "add_elementwise: input b"));
    kiln_tensor *inputs[2] = {a, b};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_ELEMENTWISE, inputs, 2, 1, &l));
    l->p.ew.op = (int32_t)op;
    return kiln__network_finish_layer(net, l, layer);
}
