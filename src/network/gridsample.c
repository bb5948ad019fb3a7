/* GridSample and AffineGrid: shape inference and description. */
#include "vision_layers.h"

static const char *const gs_modes[3] = {"nearest", "linear", "cubic"};
static const char *const gs_paddings[3] = {"zeros", "border", "reflection"};

static kiln_status gridsample_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__gridsample_params *p = (const kiln__gridsample_params *)layer->p.bytes;
    if (layer->nb_inputs != 2 || in[0].dtype == KILN_DTYPE_UNDEFINED || in[1].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 2 (x, grid)", layer->nb_inputs);
    if (p->mode < KILN__GS_NEAREST || p->mode > KILN__GS_CUBIC || p->padding < KILN__GS_ZEROS ||
        p->padding > KILN__GS_REFLECTION)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "mode %d or padding %d is out of range", p->mode,
                                 p->padding);
    const kiln_dims *x = &in[0].dims, *g = &in[1].dims;
    if (!kiln__dtype_is_float(in[0].dtype) || in[1].dtype != in[0].dtype)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "inputs have dtypes %s and %s, expected one float type",
                                 kiln_dtype_name(in[0].dtype), kiln_dtype_name(in[1].dtype));
    int32_t k = x->nb_dims - 2;
    if (k < 1 || g->nb_dims != x->nb_dims)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "x has rank %d and grid rank %d, expected one rank of at least 3", x->nb_dims,
                                 g->nb_dims);
    if (g->d[k + 1] >= 0 && g->d[k + 1] != k)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "grid's last dim is %lld, expected %d coordinates",
                                 (long long)g->d[k + 1], k);
    if (x->d[0] >= 0 && g->d[0] >= 0 && x->d[0] != g->d[0])
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "x has batch %lld and grid %lld, expected equal",
                                 (long long)x->d[0], (long long)g->d[0]);
    out[0].dtype = in[0].dtype;
    out[0].dims.nb_dims = x->nb_dims;
    out[0].dims.d[0] = x->d[0] >= 0 ? x->d[0] : g->d[0];
    out[0].dims.d[1] = x->d[1];
    for (int32_t i = 0; i < k; i++) out[0].dims.d[2 + i] = g->d[1 + i];
    return KILN_OK;
}

static void gridsample_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__gridsample_params *p = (const kiln__gridsample_params *)layer->p.bytes;
    kiln__buf_printf(out, "mode=%s padding=%s align_corners=%d", gs_modes[(uint32_t)p->mode % 3],
                     gs_paddings[(uint32_t)p->padding % 3], p->align_corners);
}

const kiln__layer_ops kiln__gridsample_ops = {"GridSample", gridsample_infer, gridsample_describe};

static kiln_status affinegrid_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    if (layer->nb_inputs != 2 || in[0].dtype == KILN_DTYPE_UNDEFINED || in[1].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 2 (theta, size)",
                                 layer->nb_inputs);
    const kiln_dims *t = &in[0].dims, *s = &in[1].dims;
    if (!kiln__dtype_is_float(in[0].dtype) || t->nb_dims != 3 || (t->d[1] >= 0 && t->d[1] != 2 && t->d[1] != 3))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "theta must be a float [N, 2, 3] or [N, 3, 4] tensor");
    int32_t k = t->d[1] >= 0 ? (int32_t)t->d[1] : (s->nb_dims == 1 && s->d[0] >= 0 ? (int32_t)s->d[0] - 2 : -1);
    if (k != 2 && k != 3)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "cannot tell whether the grid is 2-D or 3-D");
    if ((t->d[2] >= 0 && t->d[2] != k + 1) || (in[1].dtype != KILN_INT64 && in[1].dtype != KILN_INT32) ||
        s->nb_dims != 1 || (s->d[0] >= 0 && s->d[0] != k + 2))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "theta [N, %d, %d] needs size as a 1-D int tensor of %d values", k, k + 1, k + 2);
    out[0].dtype = in[0].dtype;
    out[0].dims.nb_dims = k + 2;
    out[0].dims.d[0] = t->d[0];
    for (int32_t i = 0; i < k; i++) out[0].dims.d[1 + i] = -1;
    out[0].dims.d[k + 1] = k;
    if (in[1].data) {
        int64_t n = kiln__value_int(&in[1], 0);
        if (t->d[0] >= 0 && n != t->d[0])
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "size gives batch %lld, theta has %lld",
                                     (long long)n, (long long)t->d[0]);
        for (int32_t i = 0; i < k; i++) {
            int64_t d = kiln__value_int(&in[1], 2 + i);
            if (d < 0)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "size[%d] is %lld, expected >= 0", 2 + i,
                                         (long long)d);
            out[0].dims.d[1 + i] = d;
        }
    }
    return KILN_OK;
}

static void affinegrid_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__affinegrid_params *p = (const kiln__affinegrid_params *)layer->p.bytes;
    kiln__buf_printf(out, "align_corners=%d", p->align_corners);
}

const kiln__layer_ops kiln__affinegrid_ops = {"AffineGrid", affinegrid_infer, affinegrid_describe};
