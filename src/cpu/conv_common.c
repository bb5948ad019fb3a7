/* Geometry and dtype handling shared by the CPU convolution and deconvolution kernels. */
#include "conv_common.h"

static int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/* The leading pad of spatial dim i (j in g's padded dims) once in, out, k, s, d are set. */
static int64_t pad_begin(const kiln__conv_params *p, bool transposed, const kiln__conv_geom *g, int32_t i,
                         int32_t j) {
    if (transposed) {
        /* ONNX ConvTranspose: with output_shape or SAME, the pads split the total padding;
         * SAME_UPPER puts the smaller half first. */
        int64_t total = g->s[j] * (g->in[j] - 1) + p->output_padding[i] + g->d[j] * (g->k[j] - 1) + 1 - g->out[j];
        if (p->auto_pad == KILN__PAD_SAME_UPPER) return floor_half(total);
        if (p->auto_pad == KILN__PAD_SAME_LOWER || p->has_output_shape) return total - floor_half(total);
    } else if (p->auto_pad == KILN__PAD_SAME_UPPER || p->auto_pad == KILN__PAD_SAME_LOWER) {
        int64_t total = (g->out[j] - 1) * g->s[j] + g->d[j] * (g->k[j] - 1) + 1 - g->in[j];
        total = KILN__MAX(total, 0);
        return p->auto_pad == KILN__PAD_SAME_UPPER ? total / 2 : total - total / 2;
    }
    return p->auto_pad == KILN__PAD_VALID ? 0 : p->pad_begin[i];
}

void kiln__conv_geom_init(const kiln_layer *layer, const kiln__value *in, const kiln__value *out,
                          kiln__conv_geom *g) {
    const kiln__conv_params *p = &layer->p.conv;
    bool transposed = layer->type == KILN_LAYER_DECONVOLUTION;
    int32_t off = 3 - p->nb_spatial;
    g->n = in[0].dims.d[0];
    g->c = in[0].dims.d[1];
    g->m = out[0].dims.d[1];
    g->groups = p->groups;
    g->cg = g->c / g->groups;
    g->mg = g->m / g->groups;
    g->in_plane = g->out_plane = g->kvol = 1;
    for (int32_t j = 0; j < 3; j++) {
        int32_t i = j - off;
        if (i < 0) {
            g->in[j] = g->out[j] = g->k[j] = g->s[j] = g->d[j] = 1;
            g->pb[j] = 0;
        } else {
            g->in[j] = in[0].dims.d[2 + i];
            g->out[j] = out[0].dims.d[2 + i];
            g->k[j] = in[1].dims.d[2 + i];
            g->s[j] = p->stride[i];
            g->d[j] = p->dilation[i];
            g->pb[j] = pad_begin(p, transposed, g, i, j);
        }
        g->in_plane *= g->in[j];
        g->out_plane *= g->out[j];
        g->kvol *= g->k[j];
    }
}

double kiln__conv_act_f64(const kiln__act *a, double x) {
    switch (a->kind) {
    case KILN_ACT_RELU: return x > 0 ? x : 0;
    case KILN_ACT_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    case KILN_ACT_CLIP: return x < a->alpha ? a->alpha : (x > a->beta ? a->beta : x);
    default: return kiln__act_f32(a->kind, a->alpha, a->beta, (float)x);
    }
}

const kiln__value *kiln__conv_optional(const kiln_layer *layer, const kiln__value *in, int32_t i) {
    return layer->nb_inputs > i && in[i].data ? &in[i] : NULL;
}

/* A float32 copy of v's count half-type values; NULL when v is absent or on allocation failure. */
static float *to_f32(const kiln__alloc *alloc, const kiln__value *v, int64_t count) {
    if (!v || !v->data) return NULL;
    float *f = kiln__malloc_aligned(alloc, (size_t)KILN__MAX(count, 1) * sizeof(float), 64);
    if (!f) return NULL;
    const uint16_t *h = v->data;
    for (int64_t i = 0; i < count; i++)
        f[i] = v->dtype == KILN_FLOAT16 ? kiln__half_to_float(h[i]) : kiln__bf16_to_float(h[i]);
    return f;
}

kiln_status kiln__conv_f32_begin(const kiln_layer *layer, const kiln__value *in, const kiln__value *out,
                                 const kiln__conv_geom *g, kiln__cpu_ctx *ctx, kiln__conv_f32 *f) {
    const kiln__value *bias = kiln__conv_optional(layer, in, 2), *res = kiln__conv_optional(layer, in, 3);
    kiln_dtype t = in[0].dtype;
    *f = (kiln__conv_f32){0};
    if (t == KILN_FLOAT32) {
        f->x = in[0].data;
        f->w = in[1].data;
        f->bias = bias ? bias->data : NULL;
        f->res = res ? res->data : NULL;
        f->y = out[0].data;
        return KILN_OK;
    }
    if (t != KILN_FLOAT16 && t != KILN_BFLOAT16)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "no CPU %s for dtype %s",
                                 layer->type == KILN_LAYER_DECONVOLUTION ? "deconvolution" : "convolution",
                                 kiln_dtype_name(t));
    int64_t ny = g->n * g->m * g->out_plane;
    float *x = to_f32(ctx->alloc, &in[0], g->n * g->c * g->in_plane);
    float *w = to_f32(ctx->alloc, &in[1], g->m * g->cg * g->kvol); /* = c * mg * kvol for deconvolutions */
    float *b = to_f32(ctx->alloc, bias, g->m);
    float *r = to_f32(ctx->alloc, res, ny);
    float *y = kiln__malloc_aligned(ctx->alloc, (size_t)KILN__MAX(ny, 1) * sizeof(float), 64);
    *f = (kiln__conv_f32){x, w, b, r, y, {x, w, b, r, y}, t, ny};
    if (x && w && y && (b || !bias) && (r || !res)) return KILN_OK;
    return kiln__conv_f32_end(ctx, NULL, KILN_OUT_OF_MEMORY, f);
}

kiln_status kiln__conv_f32_end(kiln__cpu_ctx *ctx, kiln__value *out, kiln_status st, kiln__conv_f32 *f) {
    if (st == KILN_OK && f->owned[4]) {
        uint16_t *h = out[0].data;
        for (int64_t i = 0; i < f->ny; i++)
            h[i] = f->dtype == KILN_FLOAT16 ? kiln__float_to_half(f->y[i]) : kiln__float_to_bf16(f->y[i]);
    }
    for (int i = 0; i < 5; i++) kiln__free(ctx->alloc, f->owned[i]);
    return st;
}

void kiln__conv_epilogue(const kiln__conv_geom *g, float *y, const float *bias, const float *res,
                         const kiln__act *act, int64_t n, int64_t m0, int64_t m1) {
    int64_t plane = g->out_plane;
    for (int64_t m = m0; m < m1; m++) {
        float *ym = y + (n * g->m + m) * plane;
        float b = bias ? bias[m] : 0.0f;
        if (res) {
            const float *r = res + (n * g->m + m) * plane;
            for (int64_t i = 0; i < plane; i++) ym[i] += b + r[i];
        } else if (bias) {
            for (int64_t i = 0; i < plane; i++) ym[i] += b;
        }
        if (act->kind >= 0) kiln__apply_act_f32(act, ym, plane);
    }
}
