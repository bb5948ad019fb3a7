/* ONNX importers for the basic op families: Identity, Dropout, Constant, Cast, CastLike,
 * elementwise binary and variadic ops, unary math, activations, PRelu, Clip and Shrink. */
#include "onnx/importer.h"

#include "cpu/cpu.h"
#include "network/tensor_layers.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- one-layer shorthands */

kiln_tensor *kiln__onnx_ew(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_elementwise_op op, kiln_tensor *a,
                           kiln_tensor *b, kiln_status *st) {
    kiln__elementwise_params p = {.op = (int32_t)op};
    kiln_tensor *in[2] = {a, b};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_ELEMENTWISE, in, 2, &p, sizeof p, st);
}

kiln_tensor *kiln__onnx_unary(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_unary_op op, kiln_tensor *x,
                              kiln_status *st) {
    kiln__unary_params p = {.op = (int32_t)op};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_UNARY, &x, 1, &p, sizeof p, st);
}

kiln_tensor *kiln__onnx_act(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_activation_type kind, float alpha,
                            float beta, kiln_tensor *x, kiln_status *st) {
    kiln__activation_params p = {.kind = (int32_t)kind, .alpha = alpha, .beta = beta};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_ACTIVATION, &x, 1, &p, sizeof p, st);
}

kiln_tensor *kiln__onnx_cast(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_dtype to,
                             kiln_status *st) {
    kiln__cast_params p = {.to = (int32_t)to, .saturate = 1};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_CAST, &x, 1, &p, sizeof p, st);
}

kiln_tensor *kiln__onnx_reshape(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x,
                                const kiln_dims *dims, kiln_status *st) {
    kiln__shuffle_params p = {.reshape = *dims, .has_reshape = 1};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &x, 1, &p, sizeof p, st);
}

kiln_tensor *kiln__onnx_reduce(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_reduce_op op, kiln_tensor *x,
                               uint32_t axes_mask, bool keep_dims, kiln_status *st) {
    kiln__reduce_params p = {.op = (int32_t)op, .axes_mask = axes_mask, .keep_dims = keep_dims};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_REDUCE, &x, 1, &p, sizeof p, st);
}

/* Binds output 0 to t, or returns the error that left t NULL. st is read through a pointer:
 * the call that sets it is usually another argument, and argument order is unspecified. */
static kiln_status out0(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *t, const kiln_status *st) {
    return t ? kiln__onnx_out(ctx, node, 0, t) : *st;
}

/* ---------------------------------------------------------------- Identity, Dropout */

static kiln_status import_identity(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    return out0(ctx, node, x, &st);
}

/* A tensor of x's dims filled with one value (a constant when the dims are known). */
static kiln_tensor *filled_like(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_dtype dtype,
                                double value, kiln_status *st) {
    int64_t n = kiln__dims_volume(&x->dims);
    if (n >= 0) {
        size_t bytes;
        if (!kiln__dtype_bytes(dtype, n, &bytes)) {
            *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "cannot fill a tensor of dtype %s",
                                        kiln_dtype_name(dtype));
            return NULL;
        }
        uint8_t *buf = kiln__malloc(&kiln__onnx_network(ctx)->alloc, bytes ? bytes : 1);
        if (!buf) {
            *st = KILN_OUT_OF_MEMORY;
            return NULL;
        }
        for (int64_t i = 0; i < n; i++) kiln__store_f64(buf, dtype, i, value);
        kiln_tensor *t;
        *st = kiln__onnx_add_constant(ctx, node, dtype, &x->dims, buf, &t);
        kiln__free(&kiln__onnx_network(ctx)->alloc, buf);
        return *st == KILN_OK ? t : NULL;
    }
    kiln__shape_params sp = {.start = 0, .end = INT64_MAX};
    kiln_tensor *shape = kiln__onnx_add1(ctx, node, KILN_LAYER_SHAPE, &x, 1, &sp, sizeof sp, st);
    if (!shape) return NULL;
    kiln__fill_params fp = {.mode = KILN__FILL_CONSTANT, .dtype = (int32_t)dtype, .value = value,
                            .ivalue = (int64_t)value};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_FILL, &shape, 1, &fp, sizeof fp, st);
}

static kiln_status import_dropout(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    int64_t opset = kiln__onnx_node_opset(ctx, node);
    /* Training mode draws a random mask; only the ratio-0 case is deterministic. */
    kiln_tensor *training = kiln__onnx_in(ctx, node, 2);
    if (training) {
        kiln__value tv, rv;
        if (!kiln__onnx_const(ctx, training, &tv) || !tv.data)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "input 2 (training_mode) must be a constant");
        if (kiln__load_i64(tv.data, tv.dtype, 0)) {
            kiln_tensor *ratio = kiln__onnx_in(ctx, node, 1);
            double r = 0.5;
            if (ratio) {
                if (!kiln__onnx_const(ctx, ratio, &rv) || !rv.data || kiln__dims_volume(&rv.dims) != 1)
                    return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                                 "input 1 (ratio) must be a constant scalar in training mode");
                r = kiln__load_f64(rv.data, rv.dtype, 0);
            }
            if (r != 0)
                return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                             "training_mode=1 with ratio %g (random dropout) is not supported", r);
        }
    }
    KILN__TRY(kiln__onnx_out(ctx, node, 0, x));
    if (!kiln__onnx_has_out(node, 1)) return KILN_OK;
    /* The mask is bool from opset 10; before that it has the data's type. */
    kiln_tensor *mask = filled_like(ctx, node, x, opset >= 10 ? KILN_BOOL : x->dtype, 1.0, &st);
    return mask ? kiln__onnx_out(ctx, node, 1, mask) : st;
}

/* ---------------------------------------------------------------- Constant */

static kiln_status constant_from_tensor(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_tensor *t,
                                        kiln_tensor **out) {
    if (t->dtype == KILN_DTYPE_UNDEFINED || t->dtype == KILN_STRING)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "value has ONNX data type %d, which kiln does not support",
                                     (int)t->data_type);
    if (t->nb_dims > KILN_MAX_DIMS)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "value has rank %d; kiln supports up to %d", t->nb_dims,
                                     KILN_MAX_DIMS);
    kiln_dims dims = {.nb_dims = t->nb_dims};
    for (int32_t i = 0; i < t->nb_dims; i++) dims.d[i] = t->dims[i];
    const kiln__alloc *alloc = &kiln__onnx_network(ctx)->alloc;
    kiln__onnx_data data;
    kiln_status st = kiln__onnx_tensor_data(alloc, t, &data);
    if (st != KILN_OK) return kiln__error_prefix(st, "node '%s' (%s)", node->name, node->op_type);
    st = kiln__onnx_add_constant(ctx, node, t->dtype, &dims, data.data, out);
    kiln__onnx_data_release(alloc, &data);
    return st;
}

static kiln_status import_constant(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    if (node->nb_attrs != 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "has %d attributes, expected exactly one value_*",
                                     node->nb_attrs);
    const kiln__onnx_attr *a = &node->attrs[0];
    kiln_tensor *t = NULL;
    kiln_status st = KILN_OK;
    if (strcmp(a->name, "value") == 0) {
        const kiln__onnx_tensor *v = NULL;
        KILN__TRY(kiln__onnx_attr_tensor(node, "value", &v));
        st = constant_from_tensor(ctx, node, v, &t);
    } else if (strcmp(a->name, "value_float") == 0) {
        float f = 0;
        KILN__TRY(kiln__onnx_attr_float(node, "value_float", &f));
        kiln_dims d = {.nb_dims = 0};
        st = kiln__onnx_add_constant(ctx, node, KILN_FLOAT32, &d, &f, &t);
    } else if (strcmp(a->name, "value_int") == 0) {
        int64_t i = 0;
        KILN__TRY(kiln__onnx_attr_int(node, "value_int", &i));
        kiln_dims d = {.nb_dims = 0};
        st = kiln__onnx_add_constant(ctx, node, KILN_INT64, &d, &i, &t);
    } else if (strcmp(a->name, "value_floats") == 0) {
        const float *f = NULL;
        int64_t n = 0;
        KILN__TRY(kiln__onnx_attr_floats(node, "value_floats", &f, &n));
        kiln_dims d = {.nb_dims = 1, .d = {n}};
        st = kiln__onnx_add_constant(ctx, node, KILN_FLOAT32, &d, f, &t);
    } else if (strcmp(a->name, "value_ints") == 0) {
        const int64_t *v = NULL;
        int64_t n = 0;
        KILN__TRY(kiln__onnx_attr_ints(node, "value_ints", &v, &n));
        kiln_dims d = {.nb_dims = 1, .d = {n}};
        st = kiln__onnx_add_constant(ctx, node, KILN_INT64, &d, v, &t);
    } else if (strcmp(a->name, "sparse_value") == 0) {
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "sparse_value (a sparse tensor) is not supported");
    } else if (strcmp(a->name, "value_string") == 0 || strcmp(a->name, "value_strings") == 0) {
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "%s: string tensors are not supported", a->name);
    } else {
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "unknown attribute '%s', expected a value_* one",
                                     a->name);
    }
    return out0(ctx, node, t, &st);
}

/* ---------------------------------------------------------------- Cast, CastLike */

static kiln_status import_cast(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    int64_t to = -1, saturate = 1;
    if (strcmp(node->op_type, "CastLike") == 0) {
        kiln_tensor *like = kiln__onnx_in_required(ctx, node, 1, "target_type", &st);
        if (!like) return st;
        to = like->dtype;
    } else {
        const kiln__onnx_attr *a = kiln__onnx_node_attr(node, "to");
        if (!a) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'to' is required");
        /* Opset 1 names the type as a string ("FLOAT"). */
        if (a->type == KILN__ONNX_ATTR_STRING) {
            static const struct {
                const char *name;
                kiln_dtype dtype;
            } names[] = {{"FLOAT", KILN_FLOAT32}, {"UINT8", KILN_UINT8},   {"INT8", KILN_INT8},
                         {"UINT16", KILN_UINT16}, {"INT16", KILN_INT16},   {"INT32", KILN_INT32},
                         {"INT64", KILN_INT64},   {"BOOL", KILN_BOOL},     {"FLOAT16", KILN_FLOAT16},
                         {"DOUBLE", KILN_FLOAT64}, {"UINT32", KILN_UINT32}, {"UINT64", KILN_UINT64}};
            for (size_t i = 0; i < KILN__ARRAY_LEN(names); i++)
                if (a->s.size == strlen(names[i].name) && memcmp(a->s.data, names[i].name, a->s.size) == 0)
                    to = names[i].dtype;
            if (to < 0)
                return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute 'to' names type '%.*s', which kiln "
                                             "does not support", (int)a->s.size, (const char *)a->s.data);
        } else {
            KILN__TRY(kiln__onnx_attr_int(node, "to", &to));
        }
    }
    KILN__TRY(kiln__onnx_attr_int(node, "saturate", &saturate));
    if (to <= 0 || to > INT32_MAX || to == KILN_STRING || !kiln__dtype_valid((kiln_dtype)to))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "cast to ONNX data type %lld is not supported",
                                     (long long)to);
    kiln__cast_params p = {.to = (int32_t)to, .saturate = saturate != 0};
    kiln_tensor *y = kiln__onnx_add1(ctx, node, KILN_LAYER_CAST, &x, 1, &p, sizeof p, &st);
    return out0(ctx, node, y, &st);
}

/* ---------------------------------------------------------------- elementwise binary */

typedef struct op_entry {
    const char *name;
    int32_t op;
} op_entry;

static int32_t lookup(const op_entry *table, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0) return table[i].op;
    return -1;
}

static const op_entry BINARY_OPS[] = {
    {"Add", KILN_EW_ADD},       {"Sub", KILN_EW_SUB},         {"Mul", KILN_EW_MUL},
    {"Div", KILN_EW_DIV},       {"Pow", KILN_EW_POW},         {"Equal", KILN_EW_EQUAL},
    {"Less", KILN_EW_LESS},     {"LessOrEqual", KILN_EW_LESS_EQUAL}, {"Greater", KILN_EW_GREATER},
    {"GreaterOrEqual", KILN_EW_GREATER_EQUAL}, {"And", KILN_EW_AND}, {"Or", KILN_EW_OR},
    {"Xor", KILN_EW_XOR},       {"BitwiseAnd", KILN_EW_BIT_AND}, {"BitwiseOr", KILN_EW_BIT_OR},
    {"BitwiseXor", KILN_EW_BIT_XOR}};

/* Opset < 7 broadcasting: with broadcast=1, b's dims line up with a's starting at `axis`
 * (default: suffix alignment, which is numpy's); trailing ones make numpy do the same. */
static kiln_tensor *legacy_broadcast(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *b,
                                     kiln_status *st) {
    int64_t broadcast = 0, axis = INT64_MIN;
    if ((*st = kiln__onnx_attr_int(node, "broadcast", &broadcast)) != KILN_OK) return NULL;
    if ((*st = kiln__onnx_attr_int(node, "axis", &axis)) != KILN_OK) return NULL;
    int32_t ra = a->dims.nb_dims, rb = b->dims.nb_dims;
    if (!broadcast || axis == INT64_MIN || rb >= ra) return b;
    if (axis < 0) axis += ra;
    if (axis < 0 || axis + rb > ra) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld does not fit input B (rank %d) into A "
                                    "(rank %d)", (long long)axis, rb, ra);
        return NULL;
    }
    if (axis + rb == ra) return b;
    kiln_dims d = b->dims;
    for (int32_t i = 0; i < rb; i++)
        if (d.d[i] < 0) {
            *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "legacy broadcasting needs B's dims known");
            return NULL;
        }
    while (d.nb_dims < ra - axis) d.d[d.nb_dims++] = 1;
    return kiln__onnx_reshape(ctx, node, b, &d, st);
}

static kiln_status import_binary(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *a = kiln__onnx_in_required(ctx, node, 0, "A", &st);
    kiln_tensor *b = a ? kiln__onnx_in_required(ctx, node, 1, "B", &st) : NULL;
    if (!b) return st;
    int32_t op = lookup(BINARY_OPS, KILN__ARRAY_LEN(BINARY_OPS), node->op_type);
    if (strcmp(node->op_type, "Mod") == 0) {
        int64_t fmod = 0;
        KILN__TRY(kiln__onnx_attr_int(node, "fmod", &fmod));
        if (!fmod && kiln__dtype_is_float(a->dtype))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "fmod must be 1 for float inputs");
        op = fmod ? KILN_EW_FMOD : KILN_EW_MOD;
    } else if (strcmp(node->op_type, "BitShift") == 0) {
        kiln__onnx_bytes dir = {0};
        KILN__TRY(kiln__onnx_attr_string(node, "direction", &dir));
        if (dir.size == 4 && memcmp(dir.data, "LEFT", 4) == 0) op = KILN_EW_SHIFT_LEFT;
        else if (dir.size == 5 && memcmp(dir.data, "RIGHT", 5) == 0) op = KILN_EW_SHIFT_RIGHT;
        else
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "direction must be LEFT or RIGHT, got '%.*s'",
                                         (int)dir.size, (const char *)dir.data);
    }
    if (op < 0) return kiln__onnx_node_error(node, KILN_INTERNAL_ERROR, "no elementwise op for %s", node->op_type);
    if (kiln__onnx_node_opset(ctx, node) < 7 && !(b = legacy_broadcast(ctx, node, a, b, &st))) return st;
    return out0(ctx, node, kiln__onnx_ew(ctx, node, (kiln_elementwise_op)op, a, b, &st), &st);
}

/* Sum, Mean, Max, Min over any number of inputs. */
static kiln_status import_variadic(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    static const op_entry ops[] = {{"Sum", KILN_EW_ADD}, {"Mean", KILN_EW_ADD}, {"Max", KILN_EW_MAX},
                                   {"Min", KILN_EW_MIN}};
    kiln_elementwise_op op = (kiln_elementwise_op)lookup(ops, KILN__ARRAY_LEN(ops), node->op_type);
    if (node->nb_inputs < 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "needs at least one input");
    kiln_tensor *acc = kiln__onnx_in_required(ctx, node, 0, "data_0", &st);
    for (int32_t i = 1; acc && i < node->nb_inputs; i++) {
        kiln_tensor *x = kiln__onnx_in_required(ctx, node, i, "data", &st);
        acc = x ? kiln__onnx_ew(ctx, node, op, acc, x, &st) : NULL;
    }
    if (acc && strcmp(node->op_type, "Mean") == 0 && node->nb_inputs > 1) {
        kiln_tensor *n = kiln__onnx_const_scalar(ctx, node, acc->dtype, node->nb_inputs, 0, &st);
        acc = n ? kiln__onnx_ew(ctx, node, KILN_EW_DIV, acc, n, &st) : NULL;
    }
    return out0(ctx, node, acc, &st);
}

/* ---------------------------------------------------------------- unary */

static const op_entry UNARY_OPS[] = {
    {"Abs", KILN_UNARY_ABS},     {"Neg", KILN_UNARY_NEG},     {"Exp", KILN_UNARY_EXP},
    {"Log", KILN_UNARY_LOG},     {"Sqrt", KILN_UNARY_SQRT},   {"Reciprocal", KILN_UNARY_RECIP},
    {"Sin", KILN_UNARY_SIN},     {"Cos", KILN_UNARY_COS},     {"Tan", KILN_UNARY_TAN},
    {"Asin", KILN_UNARY_ASIN},   {"Acos", KILN_UNARY_ACOS},   {"Atan", KILN_UNARY_ATAN},
    {"Sinh", KILN_UNARY_SINH},   {"Cosh", KILN_UNARY_COSH},   {"Asinh", KILN_UNARY_ASINH},
    {"Acosh", KILN_UNARY_ACOSH}, {"Atanh", KILN_UNARY_ATANH}, {"Ceil", KILN_UNARY_CEIL},
    {"Floor", KILN_UNARY_FLOOR}, {"Round", KILN_UNARY_ROUND}, {"Erf", KILN_UNARY_ERF},
    {"Not", KILN_UNARY_NOT},     {"Sign", KILN_UNARY_SIGN},   {"BitwiseNot", KILN_UNARY_BIT_NOT},
    {"IsNaN", KILN_UNARY_ISNAN}};

static kiln_status import_unary(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    kiln_unary_op op = (kiln_unary_op)lookup(UNARY_OPS, KILN__ARRAY_LEN(UNARY_OPS), node->op_type);
    return out0(ctx, node, kiln__onnx_unary(ctx, node, op, x, &st), &st);
}

static kiln_status import_isinf(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    int64_t pos = 1, neg = 1;
    KILN__TRY(kiln__onnx_attr_int(node, "detect_positive", &pos));
    KILN__TRY(kiln__onnx_attr_int(node, "detect_negative", &neg));
    kiln_tensor *y = kiln__onnx_unary(ctx, node, KILN_UNARY_ISINF, x, &st);
    if (y && !(pos && neg)) {
        /* Keep the infinities of the wanted sign: compare with zero (neither: compare fails). */
        kiln_tensor *zero = kiln__onnx_const_scalar(ctx, node, x->dtype, 0, 0, &st);
        kiln_tensor *sign = NULL;
        if (zero && pos) sign = kiln__onnx_ew(ctx, node, KILN_EW_GREATER, x, zero, &st);
        else if (zero && neg) sign = kiln__onnx_ew(ctx, node, KILN_EW_LESS, x, zero, &st);
        else if (zero) sign = kiln__onnx_unary(ctx, node, KILN_UNARY_NOT, y, &st);
        y = sign ? kiln__onnx_ew(ctx, node, KILN_EW_AND, y, sign, &st) : NULL;
    }
    return out0(ctx, node, y, &st);
}

/* ---------------------------------------------------------------- activations */

typedef struct act_entry {
    const char *name;
    kiln_activation_type kind;
    float alpha, beta; /* defaults of the ONNX attributes */
    const char *alpha_attr, *beta_attr;
} act_entry;

static const act_entry ACTS[] = {
    {"Relu", KILN_ACT_RELU, 0, 0, NULL, NULL},
    {"Sigmoid", KILN_ACT_SIGMOID, 0, 0, NULL, NULL},
    {"Tanh", KILN_ACT_TANH, 0, 0, NULL, NULL},
    {"LeakyRelu", KILN_ACT_LEAKY_RELU, 0.01f, 0, "alpha", NULL},
    {"Elu", KILN_ACT_ELU, 1.0f, 0, "alpha", NULL},
    {"Selu", KILN_ACT_SELU, 1.67326319217681884765625f, 1.05070102214813232421875f, "alpha", "gamma"},
    {"Celu", KILN_ACT_CELU, 1.0f, 0, "alpha", NULL},
    {"Softplus", KILN_ACT_SOFTPLUS, 0, 0, NULL, NULL},
    {"Softsign", KILN_ACT_SOFTSIGN, 0, 0, NULL, NULL},
    {"HardSigmoid", KILN_ACT_HARD_SIGMOID, 0.2f, 0.5f, "alpha", "beta"},
    {"HardSwish", KILN_ACT_HARD_SWISH, 0, 0, NULL, NULL},
    {"ThresholdedRelu", KILN_ACT_THRESHOLDED_RELU, 1.0f, 0, "alpha", NULL},
    {"Mish", KILN_ACT_MISH, 0, 0, NULL, NULL},
};

static kiln_status import_activation(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    const act_entry *e = NULL;
    for (size_t i = 0; i < KILN__ARRAY_LEN(ACTS); i++)
        if (strcmp(ACTS[i].name, node->op_type) == 0) e = &ACTS[i];
    if (!e) return kiln__onnx_node_error(node, KILN_INTERNAL_ERROR, "no activation for %s", node->op_type);
    float alpha = e->alpha, beta = e->beta;
    if (e->alpha_attr) KILN__TRY(kiln__onnx_attr_float(node, e->alpha_attr, &alpha));
    if (e->beta_attr) KILN__TRY(kiln__onnx_attr_float(node, e->beta_attr, &beta));
    return out0(ctx, node, kiln__onnx_act(ctx, node, e->kind, alpha, beta, x, &st), &st);
}

static kiln_status import_gelu(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    kiln__onnx_bytes approx = {(const uint8_t *)"none", 4};
    KILN__TRY(kiln__onnx_attr_string(node, "approximate", &approx));
    kiln_activation_type kind;
    if (approx.size == 4 && memcmp(approx.data, "none", 4) == 0) kind = KILN_ACT_GELU_ERF;
    else if (approx.size == 4 && memcmp(approx.data, "tanh", 4) == 0) kind = KILN_ACT_GELU_TANH;
    else
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "approximate must be 'none' or 'tanh', got '%.*s'",
                                     (int)approx.size, (const char *)approx.data);
    return out0(ctx, node, kiln__onnx_act(ctx, node, kind, 0, 0, x, &st), &st);
}

/* Swish(x) = x * sigmoid(alpha * x). */
static kiln_status import_swish(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    float alpha = 1.0f;
    KILN__TRY(kiln__onnx_attr_float(node, "alpha", &alpha));
    if (alpha == 1.0f) return out0(ctx, node, kiln__onnx_act(ctx, node, KILN_ACT_SILU, 0, 0, x, &st), &st);
    kiln_tensor *a = kiln__onnx_const_scalar(ctx, node, x->dtype, alpha, 0, &st);
    kiln_tensor *ax = a ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, x, a, &st) : NULL;
    kiln_tensor *s = ax ? kiln__onnx_act(ctx, node, KILN_ACT_SIGMOID, 0, 0, ax, &st) : NULL;
    return out0(ctx, node, s ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, x, s, &st) : NULL, &st);
}

/* PRelu(x, slope) = max(0, x) + slope * min(0, x), slope broadcast onto x. */
static kiln_status import_prelu(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *slope = x ? kiln__onnx_in_required(ctx, node, 1, "slope", &st) : NULL;
    if (!slope) return st;
    /* Opset < 7 lets a [C] slope apply per channel of an [N, C, ...] input. */
    if (kiln__onnx_node_opset(ctx, node) < 7 && slope->dims.nb_dims == 1 && x->dims.nb_dims > 2 &&
        slope->dims.d[0] > 1 && slope->dims.d[0] == x->dims.d[1]) {
        kiln_dims d = {.nb_dims = x->dims.nb_dims - 1};
        d.d[0] = slope->dims.d[0];
        for (int32_t i = 1; i < d.nb_dims; i++) d.d[i] = 1;
        if (!(slope = kiln__onnx_reshape(ctx, node, slope, &d, &st))) return st;
    }
    kiln_tensor *zero = kiln__onnx_const_scalar(ctx, node, x->dtype, 0, 0, &st);
    kiln_tensor *pos = zero ? kiln__onnx_ew(ctx, node, KILN_EW_MAX, x, zero, &st) : NULL;
    kiln_tensor *neg = pos ? kiln__onnx_ew(ctx, node, KILN_EW_MIN, x, zero, &st) : NULL;
    kiln_tensor *scaled = neg ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, neg, slope, &st) : NULL;
    return out0(ctx, node, scaled ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, pos, scaled, &st) : NULL, &st);
}

/* Clip: attributes before opset 11, optional min/max inputs after. */
static kiln_status import_clip(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    if (kiln__onnx_node_opset(ctx, node) < 11) {
        float lo = -FLT_MAX, hi = FLT_MAX;
        KILN__TRY(kiln__onnx_attr_float(node, "min", &lo));
        KILN__TRY(kiln__onnx_attr_float(node, "max", &hi));
        return out0(ctx, node, kiln__onnx_act(ctx, node, KILN_ACT_CLIP, lo, hi, x, &st), &st);
    }
    kiln_tensor *lo = kiln__onnx_in(ctx, node, 1), *hi = kiln__onnx_in(ctx, node, 2);
    kiln__value vlo, vhi;
    bool clo = !lo || (kiln__onnx_const(ctx, lo, &vlo) && kiln__dims_volume(&vlo.dims) == 1);
    bool chi = !hi || (kiln__onnx_const(ctx, hi, &vhi) && kiln__dims_volume(&vhi.dims) == 1);
    bool act_ok = kiln__dtype_is_float(x->dtype);
    if (clo && chi && act_ok) {
        double a = lo ? kiln__load_f64(vlo.data, vlo.dtype, 0) : -INFINITY;
        double b = hi ? kiln__load_f64(vhi.data, vhi.dtype, 0) : INFINITY;
        return out0(ctx, node, kiln__onnx_act(ctx, node, KILN_ACT_CLIP, (float)a, (float)b, x, &st), &st);
    }
    /* Bounds known only at run time, or integers (exact): elementwise max then min. */
    kiln_tensor *y = x;
    if (lo) y = kiln__onnx_ew(ctx, node, KILN_EW_MAX, y, lo, &st);
    if (y && hi) y = kiln__onnx_ew(ctx, node, KILN_EW_MIN, y, hi, &st);
    return out0(ctx, node, y, &st);
}

/* Shrink: x < -lambd ? x + bias : x > lambd ? x - bias : 0. */
static kiln_status import_shrink(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    float lambd = 0.5f, bias = 0.0f;
    KILN__TRY(kiln__onnx_attr_float(node, "lambd", &lambd));
    KILN__TRY(kiln__onnx_attr_float(node, "bias", &bias));
    kiln_tensor *l = kiln__onnx_const_scalar(ctx, node, x->dtype, lambd, 0, &st);
    kiln_tensor *nl = l ? kiln__onnx_const_scalar(ctx, node, x->dtype, -lambd, 0, &st) : NULL;
    kiln_tensor *b = nl ? kiln__onnx_const_scalar(ctx, node, x->dtype, bias, 0, &st) : NULL;
    kiln_tensor *zero = b ? kiln__onnx_const_scalar(ctx, node, x->dtype, 0, 0, &st) : NULL;
    kiln_tensor *below = zero ? kiln__onnx_ew(ctx, node, KILN_EW_LESS, x, nl, &st) : NULL;
    kiln_tensor *above = below ? kiln__onnx_ew(ctx, node, KILN_EW_GREATER, x, l, &st) : NULL;
    kiln_tensor *plus = above ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, x, b, &st) : NULL;
    kiln_tensor *minus = plus ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, x, b, &st) : NULL;
    kiln_tensor *hi = NULL, *y = NULL;
    if (minus) {
        kiln_tensor *in[3] = {above, minus, zero};
        hi = kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, &st);
    }
    if (hi) {
        kiln_tensor *in[3] = {below, plus, hi};
        y = kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, &st);
    }
    return out0(ctx, node, y, &st);
}

const kiln__onnx_op kiln__onnx_ops_basic[] = {
    {"", "Identity", 1, import_identity},
    {"", "Dropout", 1, import_dropout},
    {"", "Constant", 1, import_constant},
    {"", "Cast", 1, import_cast},
    {"", "CastLike", 15, import_cast},
    {"", "Add", 1, import_binary},
    {"", "Sub", 1, import_binary},
    {"", "Mul", 1, import_binary},
    {"", "Div", 1, import_binary},
    {"", "Pow", 1, import_binary},
    {"", "Mod", 10, import_binary},
    {"", "Equal", 1, import_binary},
    {"", "Less", 1, import_binary},
    {"", "LessOrEqual", 12, import_binary},
    {"", "Greater", 1, import_binary},
    {"", "GreaterOrEqual", 12, import_binary},
    {"", "And", 1, import_binary},
    {"", "Or", 1, import_binary},
    {"", "Xor", 1, import_binary},
    {"", "BitShift", 11, import_binary},
    {"", "BitwiseAnd", 18, import_binary},
    {"", "BitwiseOr", 18, import_binary},
    {"", "BitwiseXor", 18, import_binary},
    {"", "Sum", 1, import_variadic},
    {"", "Mean", 1, import_variadic},
    {"", "Max", 1, import_variadic},
    {"", "Min", 1, import_variadic},
    {"", "Abs", 1, import_unary},
    {"", "Neg", 1, import_unary},
    {"", "Exp", 1, import_unary},
    {"", "Log", 1, import_unary},
    {"", "Sqrt", 1, import_unary},
    {"", "Reciprocal", 1, import_unary},
    {"", "Sin", 7, import_unary},
    {"", "Cos", 7, import_unary},
    {"", "Tan", 7, import_unary},
    {"", "Asin", 7, import_unary},
    {"", "Acos", 7, import_unary},
    {"", "Atan", 7, import_unary},
    {"", "Sinh", 9, import_unary},
    {"", "Cosh", 9, import_unary},
    {"", "Asinh", 9, import_unary},
    {"", "Acosh", 9, import_unary},
    {"", "Atanh", 9, import_unary},
    {"", "Ceil", 1, import_unary},
    {"", "Floor", 1, import_unary},
    {"", "Round", 11, import_unary},
    {"", "Erf", 9, import_unary},
    {"", "Not", 1, import_unary},
    {"", "Sign", 9, import_unary},
    {"", "BitwiseNot", 18, import_unary},
    {"", "IsNaN", 9, import_unary},
    {"", "IsInf", 10, import_isinf},
    {"", "Relu", 1, import_activation},
    {"", "Sigmoid", 1, import_activation},
    {"", "Tanh", 1, import_activation},
    {"", "LeakyRelu", 1, import_activation},
    {"", "Elu", 1, import_activation},
    {"", "Selu", 1, import_activation},
    {"", "Celu", 12, import_activation},
    {"", "Softplus", 1, import_activation},
    {"", "Softsign", 1, import_activation},
    {"", "HardSigmoid", 1, import_activation},
    {"", "HardSwish", 14, import_activation},
    {"", "ThresholdedRelu", 10, import_activation},
    {"", "Mish", 18, import_activation},
    {"", "Gelu", 20, import_gelu},
    {"", "Swish", 1, import_swish},
    {"", "PRelu", 1, import_prelu},
    {"", "Clip", 1, import_clip},
    {"", "Shrink", 9, import_shrink},
    {NULL, NULL, 0, NULL},
};
