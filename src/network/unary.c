/* The unary layer: one math function (kiln_unary_op) applied to every element. */
#include "ir.h"

static const char *const UNARY_NAMES[KILN_UNARY_COUNT] = {
    "exp",  "log",  "sqrt",  "recip", "abs",   "neg",   "sin",  "cos",  "tan",  "sinh",    "cosh",   "asin",  "acos",
    "atan", "asinh", "acosh", "atanh", "ceil", "floor", "round", "erf", "not", "sign", "bit_not", "isnan", "isinf"};

static kiln_status unary_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    int32_t op = layer->p.unary.op;
    if (op < 0 || op >= KILN_UNARY_COUNT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "op %d is out of range 0..%d", op,
                                 KILN_UNARY_COUNT - 1);
    kiln_dtype t = in[0].dtype;
    bool ok;
    const char *expected;
    switch (op) {
    case KILN_UNARY_ABS:
    case KILN_UNARY_NEG:
    case KILN_UNARY_SIGN:
        ok = kiln__dtype_is_float(t) || kiln__dtype_is_integer(t);
        expected = "a numeric type";
        break;
    case KILN_UNARY_NOT:
        ok = t == KILN_BOOL;
        expected = "bool";
        break;
    case KILN_UNARY_BIT_NOT:
        ok = kiln__dtype_is_integer(t);
        expected = "an integer type";
        break;
    default:
        ok = kiln__dtype_is_float(t);
        expected = "a float type";
        break;
    }
    if (!ok)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s: input 0 has dtype %s, expected %s",
                                 UNARY_NAMES[op], kiln_dtype_name(t), expected);
    out[0].dtype = op == KILN_UNARY_ISNAN || op == KILN_UNARY_ISINF ? KILN_BOOL : t;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

static void unary_describe(const kiln_layer *layer, kiln__buf *out) {
    int32_t op = layer->p.unary.op;
    kiln__buf_printf(out, "op=%s", op >= 0 && op < KILN_UNARY_COUNT ? UNARY_NAMES[op] : "?");
}

const kiln__layer_ops kiln__unary_ops = {"Unary", unary_infer, unary_describe};

kiln_status kiln_network_add_unary(kiln_network *net, kiln_tensor *input, kiln_unary_op op, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "add_unary: network is NULL");
    KILN__TRY(kiln__check_tensor(net, input, "add_unary: input"));
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_UNARY, &input, 1, 1, &l));
    l->p.unary.op = (int32_t)op;
    return kiln__network_finish_layer(net, l, layer);
}
