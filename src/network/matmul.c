/* Matrix multiplication layer (numpy.matmul with transposes, ONNX MatMul and Gemm): the network
 * API (matmul, fully connected), shape inference and description. */
#include "ir.h"

#include <math.h>
#include <string.h>

static bool matmul_dtype(kiln_dtype t) {
    switch (t) {
    case KILN_FLOAT32:
    case KILN_FLOAT16:
    case KILN_BFLOAT16:
    case KILN_FLOAT64:
    case KILN_INT32:
    case KILN_INT64:
    case KILN_UINT32:
    case KILN_UINT64: return true;
    default: return false;
    }
}

static kiln_status matmul_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__matmul_params *p = &layer->p.matmul;
    if (layer->nb_inputs < 2 || layer->nb_inputs > 3)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 2 or 3", layer->nb_inputs);
    if (in[0].dtype == KILN_DTYPE_UNDEFINED || in[1].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "inputs 0 (a) and 1 (b) are required");
    kiln_dtype t = in[0].dtype;
    if (!matmul_dtype(t))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 0 (a) has dtype %s, which matmul does not support",
                                 kiln_dtype_name(t));
    bool has_c = layer->nb_inputs == 3 && in[2].dtype != KILN_DTYPE_UNDEFINED;
    if (in[1].dtype != t || (has_c && in[2].dtype != t)) {
        int32_t bad = in[1].dtype != t ? 1 : 2;
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d has dtype %s, expected %s (input 0's)", bad,
                                 kiln_dtype_name(in[bad].dtype), kiln_dtype_name(t));
    }
    if ((p->op_a != KILN_MATRIX_NONE && p->op_a != KILN_MATRIX_TRANSPOSE) ||
        (p->op_b != KILN_MATRIX_NONE && p->op_b != KILN_MATRIX_TRANSPOSE))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "matrix ops %d,%d are unknown", p->op_a, p->op_b);
    if (p->act.kind < -1 || p->act.kind >= KILN_ACT_COUNT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "fused activation %d is unknown", p->act.kind);
    if (!kiln__dtype_is_float(t)) {
        if (p->act.kind >= 0)
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "a fused activation needs a float dtype, not %s",
                                     kiln_dtype_name(t));
        if (p->alpha != truncf(p->alpha) || p->beta != truncf(p->beta))
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "alpha %g and beta %g must be integers for dtype %s",
                                     p->alpha, p->beta, kiln_dtype_name(t));
    }
    const kiln_dims *a = &in[0].dims, *b = &in[1].dims;
    int32_t ra = a->nb_dims, rb = b->nb_dims;
    if (ra < 1 || rb < 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d is a scalar, expected rank >= 1",
                                 ra < 1 ? 0 : 1);
    if ((ra == 1 && p->op_a) || (rb == 1 && p->op_b))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d is 1-D and cannot be transposed",
                                 ra == 1 && p->op_a ? 0 : 1);
    int64_t m = ra == 1 ? 1 : a->d[ra - 2 + (p->op_a ? 1 : 0)];
    int64_t ka = ra == 1 ? a->d[0] : a->d[ra - 1 - (p->op_a ? 1 : 0)];
    int64_t kb = rb == 1 ? b->d[0] : b->d[rb - 2 + (p->op_b ? 1 : 0)];
    int64_t n = rb == 1 ? 1 : b->d[rb - 1 - (p->op_b ? 1 : 0)];
    if (ka >= 0 && kb >= 0 && ka != kb)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "inner dims differ: input 0 (a) has %lld columns, input 1 (b) has %lld rows",
                                 (long long)ka, (long long)kb);
    kiln_dims ba = {.nb_dims = KILN__MAX(ra - 2, 0)}, bb = {.nb_dims = KILN__MAX(rb - 2, 0)}, o;
    for (int32_t i = 0; i < ba.nb_dims; i++) ba.d[i] = a->d[i];
    for (int32_t i = 0; i < bb.nb_dims; i++) bb.d[i] = b->d[i];
    if (!kiln__broadcast_dims(&ba, &bb, &o)) {
        char da[128], db[128];
        kiln__dims_format(a, da, sizeof da);
        kiln__dims_format(b, db, sizeof db);
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "batch dims of %s and %s do not broadcast", da, db);
    }
    if (ra > 1) o.d[o.nb_dims++] = m;
    if (rb > 1) o.d[o.nb_dims++] = n;
    if (has_c) {
        const kiln_dims *c = &in[2].dims;
        bool ok = c->nb_dims <= o.nb_dims;
        for (int32_t i = 0; ok && i < c->nb_dims; i++) {
            int64_t dc = c->d[i], dout = o.d[o.nb_dims - c->nb_dims + i];
            ok = dc == 1 || dc < 0 || dout < 0 || dc == dout;
        }
        if (!ok) {
            char dc[128], dout[128];
            kiln__dims_format(c, dc, sizeof dc);
            kiln__dims_format(&o, dout, sizeof dout);
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (c) with dims %s does not broadcast to %s",
                                     dc, dout);
        }
    }
    out[0].dtype = t;
    out[0].dims = o;
    return KILN_OK;
}

static void matmul_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__matmul_params *p = &layer->p.matmul;
    kiln__buf_printf(out, "op_a=%s op_b=%s", p->op_a ? "transpose" : "none", p->op_b ? "transpose" : "none");
    if (p->alpha != 1.0f || p->beta != 1.0f) kiln__buf_printf(out, " alpha=%g beta=%g", p->alpha, p->beta);
    if (layer->nb_inputs > 2 && layer->inputs[2]) kiln__buf_printf(out, " c=1");
    if (p->act.kind >= 0) kiln__buf_printf(out, " act=%d(%g,%g)", p->act.kind, p->act.alpha, p->act.beta);
}

const kiln__layer_ops kiln__matmul_ops = {"MatMul", matmul_infer, matmul_describe};

static kiln_status new_matmul(kiln_network *net, kiln_tensor *const *inputs, int32_t nb_inputs, int32_t op_a,
                              int32_t op_b, kiln_layer **layer) {
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_MATMUL, inputs, nb_inputs, 1, &l));
    kiln__matmul_params *p = &l->p.matmul;
    p->op_a = op_a;
    p->op_b = op_b;
    p->alpha = 1.0f;
    p->beta = 1.0f;
    p->act.kind = -1;
    return kiln__network_finish_layer(net, l, layer);
}

kiln_status kiln_network_add_matmul(kiln_network *network, kiln_tensor *a, kiln_matrix_op op_a, kiln_tensor *b,
                                    kiln_matrix_op op_b, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_matmul: network is NULL");
    KILN__TRY(kiln__check_tensor(network, a, "input a"));
    KILN__TRY(kiln__check_tensor(network, b, "input b"));
    if ((op_a != KILN_MATRIX_NONE && op_a != KILN_MATRIX_TRANSPOSE) ||
        (op_b != KILN_MATRIX_NONE && op_b != KILN_MATRIX_TRANSPOSE))
        return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_matmul: matrix ops %d,%d are unknown", (int)op_a,
                           (int)op_b);
    kiln_tensor *inputs[2] = {a, b};
    return new_matmul(network, inputs, 2, op_a, op_b, layer);
}

kiln_status kiln_network_add_fully_connected(kiln_network *network, kiln_tensor *input, int32_t nb_outputs,
                                             kiln_weights kernel, kiln_weights bias, kiln_layer **layer) {
    const char *fn = "kiln_network_add_fully_connected";
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "%s: network is NULL", fn);
    KILN__TRY(kiln__check_tensor(network, input, "input"));
    const kiln_dims *x = &input->dims;
    if (x->nb_dims < 2)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: input '%s' has rank %d, expected >= 2", fn, input->name,
                           x->nb_dims);
    if (nb_outputs < 1)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: nb_outputs is %d, expected >= 1", fn, nb_outputs);
    if (kernel.dtype != input->dtype || (bias.count && bias.dtype != input->dtype))
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: weights must have the input's dtype %s", fn,
                           kiln_dtype_name(input->dtype));
    int64_t flat = 1;
    for (int32_t i = 1; i < x->nb_dims && flat >= 0; i++) flat = x->d[i] < 0 ? -1 : flat * x->d[i];
    if (!kernel.values || kernel.count < 1 || kernel.count % nb_outputs != 0 ||
        (flat >= 0 && kernel.count != flat * nb_outputs))
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: kernel has %lld values, expected %d x %lld", fn,
                           (long long)kernel.count, nb_outputs, (long long)flat);
    if (bias.count && (!bias.values || bias.count != nb_outputs))
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: bias has %lld values, expected %d", fn, (long long)bias.count,
                           nb_outputs);
    /* The input is flattened to [N, C*...] by a shuffle; the kernel stays [K, C*...] and is
     * transposed by the matmul. */
    kiln_tensor *flat_in = input;
    if (x->nb_dims > 2) {
        kiln_shuffle_desc sd;
        memset(&sd, 0, sizeof sd);
        sd.struct_size = sizeof sd;
        sd.has_reshape = 1;
        sd.reshape.nb_dims = 2;
        sd.reshape.d[0] = 0;
        sd.reshape.d[1] = -1;
        kiln_layer *sl;
        KILN__TRY(kiln_network_add_shuffle(network, input, &sd, NULL, &sl));
        flat_in = sl->outputs[0];
    }
    size_t bytes;
    if (!kiln__dtype_bytes(kernel.dtype, kernel.count, &bytes))
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: kernel is too large", fn);
    kiln_dims kd = {.nb_dims = 2, .d = {nb_outputs, kernel.count / nb_outputs}};
    kiln_layer *kl, *bl = NULL;
    KILN__TRY(kiln__network_add_constant_raw(network, kernel.dtype, &kd, kernel.values, bytes, &kl));
    if (bias.count) {
        kiln_dims bd = {.nb_dims = 1, .d = {nb_outputs}};
        kiln__dtype_bytes(bias.dtype, bias.count, &bytes);
        KILN__TRY(kiln__network_add_constant_raw(network, bias.dtype, &bd, bias.values, bytes, &bl));
    }
    kiln_tensor *inputs[3] = {flat_in, kl->outputs[0], bl ? bl->outputs[0] : NULL};
    return new_matmul(network, inputs, 3, KILN_MATRIX_NONE, KILN_MATRIX_TRANSPOSE, layer);
}
