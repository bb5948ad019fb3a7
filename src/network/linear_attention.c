/* The linear attention layer: shape inference and description. */
#include "linear_attention.h"

#include <math.h>

/* Whether a known dim differs from an expected known value. */
static bool dim_bad(int64_t d, int64_t want) { return d >= 0 && want >= 0 && d != want; }

static kiln_status check_3d(const kiln_layer *layer, const kiln__value *v, int32_t i, const char *what,
                            const kiln__value *q) {
    if (v->dims.nb_dims != 3)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has rank %d, expected 3 ([B, T, ...])",
                                 i, what, v->dims.nb_dims);
    if (dim_bad(v->dims.d[0], q->dims.d[0]) || dim_bad(v->dims.d[1], q->dims.d[1]))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "input %d (%s) has batch and time dims %lld, %lld, expected query's %lld, %lld", i,
                                 what, (long long)v->dims.d[0], (long long)v->dims.d[1], (long long)q->dims.d[0],
                                 (long long)q->dims.d[1]);
    return KILN_OK;
}

static kiln_status la_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__linear_attention_params *p = (const kiln__linear_attention_params *)layer->p.bytes;
    if (layer->nb_inputs != 6)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 6", layer->nb_inputs);
    if (layer->nb_outputs != 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d outputs, expected 2", layer->nb_outputs);
    if (p->q_num_heads < 1 || p->kv_num_heads < 1 || p->q_num_heads % p->kv_num_heads != 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "q_num_heads %d must be a positive multiple of kv_num_heads %d", p->q_num_heads,
                                 p->kv_num_heads);
    if (!isfinite(p->scale) || p->scale < 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "scale %g must be finite and >= 0", (double)p->scale);
    const char *names[6] = {"query", "key", "value", "past_state", "decay", "beta"};
    kiln_dtype t = in[0].dtype;
    if (!kiln__dtype_is_float(t))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (query) has dtype %s, expected a float type",
                                 kiln_dtype_name(t));
    for (int32_t i = 1; i < 6; i++) {
        if (in[i].dtype == KILN_DTYPE_UNDEFINED) {
            if (i < 3) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) is missing", i, names[i]);
            continue;
        }
        bool ok = i == 3 ? kiln__dtype_is_float(in[i].dtype) : in[i].dtype == t;
        if (!ok)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has dtype %s, expected %s", i,
                                     names[i], kiln_dtype_name(in[i].dtype),
                                     i == 3 ? "a float type" : kiln_dtype_name(t));
    }
    bool has_decay = in[4].dtype != KILN_DTYPE_UNDEFINED, has_beta = in[5].dtype != KILN_DTYPE_UNDEFINED;
    if (has_decay != (p->gated != 0))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 4 (decay) is %s for a rule %s gating",
                                 has_decay ? "given" : "missing", p->gated ? "with" : "without");
    if (has_beta != (p->delta != 0))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 5 (beta) is %s for a rule %s delta correction",
                                 has_beta ? "given" : "missing", p->delta ? "with" : "without");
    for (int32_t i = 0; i < 6; i++)
        if (i != 3 && in[i].dtype != KILN_DTYPE_UNDEFINED) KILN__TRY(check_3d(layer, &in[i], i, names[i], &in[0]));
    int64_t hq = p->q_num_heads, hkv = p->kv_num_heads;
    int64_t qd = in[0].dims.d[2], kd = in[1].dims.d[2], vd = in[2].dims.d[2];
    if ((qd >= 0 && qd % hq) || (vd >= 0 && vd % hkv))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "query width %lld and value width %lld must divide by q_num_heads %lld and "
                                 "kv_num_heads %lld", (long long)qd, (long long)vd, (long long)hq, (long long)hkv);
    int64_t dk = qd >= 0 ? qd / hq : (kd >= 0 && kd % hkv == 0 ? kd / hkv : -1);
    int64_t dv = vd >= 0 ? vd / hkv : -1;
    if (dim_bad(kd, dk >= 0 ? dk * hkv : -1))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (key) has width %lld, expected %lld",
                                 (long long)kd, (long long)(dk * hkv));
    if (has_decay) {
        int64_t w = in[4].dims.d[2];
        if (w >= 0 && w != hkv && (dk < 0 || w != hkv * dk))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 4 (decay) has width %lld, expected kv_num_heads (%lld) or "
                                     "kv_num_heads * d_k (%lld)", (long long)w, (long long)hkv,
                                     (long long)(dk * hkv));
    }
    if (has_beta) {
        int64_t w = in[5].dims.d[2];
        if (w >= 0 && w != hkv && w != 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 5 (beta) has width %lld, expected kv_num_heads (%lld) or 1", (long long)w,
                                     (long long)hkv);
    }
    kiln_dims sd = {.nb_dims = 4, .d = {in[0].dims.d[0], hkv, dk, dv}};
    kiln_dtype state_t = t;
    if (in[3].dtype != KILN_DTYPE_UNDEFINED) {
        const kiln_dims *pd = &in[3].dims;
        if (pd->nb_dims != 4 || dim_bad(pd->d[0], sd.d[0]) || dim_bad(pd->d[1], hkv) || dim_bad(pd->d[2], dk) ||
            dim_bad(pd->d[3], dv)) {
            char s[128];
            kiln__dims_format(pd, s, sizeof s);
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 3 (past_state) has dims %s, expected [B, %lld, %lld, %lld]", s,
                                     (long long)hkv, (long long)dk, (long long)dv);
        }
        for (int32_t i = 0; i < 4; i++)
            if (sd.d[i] < 0) sd.d[i] = pd->d[i];
        state_t = in[3].dtype;
    }
    out[0].dtype = t;
    out[0].dims = (kiln_dims){.nb_dims = 3, .d = {in[0].dims.d[0], in[0].dims.d[1], dv >= 0 ? dv * hq : -1}};
    out[1].dtype = state_t;
    out[1].dims = sd;
    return KILN_OK;
}

static void la_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__linear_attention_params *p = (const kiln__linear_attention_params *)layer->p.bytes;
    kiln__buf_printf(out, "q_heads=%d kv_heads=%d gated=%d delta=%d scale=%g", p->q_num_heads, p->kv_num_heads,
                     p->gated, p->delta, (double)p->scale);
}

const kiln__layer_ops kiln__linear_attention_ops = {"LinearAttention", la_infer, la_describe};
