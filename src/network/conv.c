/* Convolution and deconvolution layers (ONNX Conv / ConvTranspose semantics): the network API,
 * shape inference and descriptions. */
#include "ir.h"

#include <string.h>

static bool is_float_dtype(kiln_dtype t) {
    return t == KILN_FLOAT32 || t == KILN_FLOAT16 || t == KILN_BFLOAT16 || t == KILN_FLOAT64;
}

/* Checks what convolution and deconvolution share: input count and dtypes, ranks, params. */
static kiln_status check_common(const kiln_layer *layer, const kiln__value *in, bool deconv) {
    const kiln__conv_params *p = &layer->p.conv;
    if (layer->nb_inputs < 2 || layer->nb_inputs > 4)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 2 to 4", layer->nb_inputs);
    if (in[0].dtype == KILN_DTYPE_UNDEFINED || in[1].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (x) and input 1 (kernel) are required");
    if (!is_float_dtype(in[0].dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 0 (x) has dtype %s, expected a float type",
                                 kiln_dtype_name(in[0].dtype));
    static const char *const names[] = {"x", "kernel", "bias", "residual"};
    for (int32_t i = 1; i < layer->nb_inputs; i++)
        if (in[i].dtype != KILN_DTYPE_UNDEFINED && in[i].dtype != in[0].dtype)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has dtype %s, expected %s", i,
                                     names[i], kiln_dtype_name(in[i].dtype), kiln_dtype_name(in[0].dtype));
    int32_t ns = p->nb_spatial;
    if (ns < 1 || ns > 3)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d spatial dims, expected 1 to 3", ns);
    for (int32_t i = 0; i < 2; i++)
        if (in[i].dims.nb_dims != ns + 2)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has rank %d, expected %d", i,
                                     names[i], in[i].dims.nb_dims, ns + 2);
    if (p->groups < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "groups is %d, expected >= 1", p->groups);
    if (p->auto_pad < KILN__PAD_EXPLICIT || p->auto_pad > KILN__PAD_VALID)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "auto_pad %d is unknown", p->auto_pad);
    if (p->act.kind < -1 || p->act.kind >= KILN_ACT_COUNT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "fused activation %d is unknown", p->act.kind);
    for (int32_t i = 0; i < ns; i++) {
        if (p->stride[i] < 1 || p->dilation[i] < 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "spatial dim %d: stride %lld and dilation %lld must be >= 1", i,
                                     (long long)p->stride[i], (long long)p->dilation[i]);
        if (p->kernel[i] < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "spatial dim %d: kernel size %lld is negative", i,
                                     (long long)p->kernel[i]);
        if (p->auto_pad == KILN__PAD_EXPLICIT && !(deconv && p->has_output_shape) &&
            (p->pad_begin[i] < 0 || p->pad_end[i] < 0))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "spatial dim %d: pads %lld,%lld are negative", i,
                                     (long long)p->pad_begin[i], (long long)p->pad_end[i]);
        int64_t kd = in[1].dims.d[2 + i];
        if (p->kernel[i] > 0 && kd >= 0 && kd != p->kernel[i])
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 1 (kernel) has size %lld in spatial dim %d, expected %lld", (long long)kd,
                                     i, (long long)p->kernel[i]);
        if (kd == 0) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (kernel) has an empty dim");
    }
    return KILN_OK;
}

/* Bias must be [M]; residual must have the output's dims. */
static kiln_status check_bias_residual(const kiln_layer *layer, const kiln__value *in, const kiln_dims *out) {
    if (layer->nb_inputs > 2 && in[2].dtype != KILN_DTYPE_UNDEFINED) {
        const kiln_dims *b = &in[2].dims;
        if (b->nb_dims != 1 || (b->d[0] >= 0 && out->d[1] >= 0 && b->d[0] != out->d[1]))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (bias) must be [%lld]",
                                     (long long)out->d[1]);
    }
    if (layer->nb_inputs > 3 && in[3].dtype != KILN_DTYPE_UNDEFINED) {
        const kiln_dims *r = &in[3].dims;
        bool ok = r->nb_dims == out->nb_dims;
        for (int32_t i = 0; ok && i < r->nb_dims; i++) ok = r->d[i] < 0 || out->d[i] < 0 || r->d[i] == out->d[i];
        if (!ok) {
            char got[128], want[128];
            kiln__dims_format(r, got, sizeof got);
            kiln__dims_format(out, want, sizeof want);
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 3 (residual) has dims %s, expected %s", got,
                                     want);
        }
    }
    return KILN_OK;
}

/* Effective kernel size of spatial dim i: the kernel tensor's, else the params', else -1. */
static int64_t kernel_size(const kiln__conv_params *p, const kiln__value *kernel, int32_t i) {
    int64_t kd = kernel->dims.d[2 + i];
    return kd >= 0 ? kd : (p->kernel[i] > 0 ? p->kernel[i] : -1);
}

static kiln_status conv_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__conv_params *p = &layer->p.conv;
    KILN__TRY(check_common(layer, in, false));
    const kiln_dims *x = &in[0].dims, *w = &in[1].dims;
    int64_t m = w->d[0];
    if (p->nb_output_maps > 0 && m >= 0 && m != p->nb_output_maps)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (kernel) has %lld output maps, expected %d",
                                 (long long)m, p->nb_output_maps);
    if (m < 0 && p->nb_output_maps > 0) m = p->nb_output_maps;
    if (m >= 0 && m % p->groups != 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%lld output maps do not split into %d groups",
                                 (long long)m, p->groups);
    if (x->d[1] >= 0 && w->d[1] >= 0 && x->d[1] != w->d[1] * p->groups)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "input 0 (x) has %lld channels, expected %lld (kernel's %lld x %d groups)",
                                 (long long)x->d[1], (long long)(w->d[1] * p->groups), (long long)w->d[1], p->groups);
    kiln_dims o = {.nb_dims = x->nb_dims};
    o.d[0] = x->d[0];
    o.d[1] = m;
    for (int32_t i = 0; i < p->nb_spatial; i++) {
        int64_t n = x->d[2 + i], k = kernel_size(p, &in[1], i), s = p->stride[i];
        if (n < 0 || k < 0) {
            o.d[2 + i] = -1;
            continue;
        }
        int64_t span = p->dilation[i] * (k - 1) + 1, r;
        if (p->auto_pad == KILN__PAD_SAME_UPPER || p->auto_pad == KILN__PAD_SAME_LOWER)
            r = (n + s - 1) / s;
        else if (p->auto_pad == KILN__PAD_VALID)
            r = n >= span ? (n - span) / s + 1 : 0;
        else
            r = n + p->pad_begin[i] + p->pad_end[i] >= span ? (n + p->pad_begin[i] + p->pad_end[i] - span) / s + 1 : 0;
        if (r < 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "spatial dim %d: the kernel (extent %lld) is larger than the padded input (%lld)",
                                     i, (long long)span, (long long)n);
        o.d[2 + i] = r;
    }
    KILN__TRY(check_bias_residual(layer, in, &o));
    out[0].dtype = in[0].dtype;
    out[0].dims = o;
    return KILN_OK;
}

static kiln_status deconv_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__conv_params *p = &layer->p.conv;
    KILN__TRY(check_common(layer, in, true));
    const kiln_dims *x = &in[0].dims, *w = &in[1].dims;
    if (x->d[1] >= 0 && w->d[0] >= 0 && x->d[1] != w->d[0])
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "input 0 (x) has %lld channels, expected %lld (kernel dim 0)", (long long)x->d[1],
                                 (long long)w->d[0]);
    if (w->d[0] >= 0 && w->d[0] % p->groups != 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%lld input channels do not split into %d groups",
                                 (long long)w->d[0], p->groups);
    int64_t m = w->d[1] >= 0 ? w->d[1] * p->groups : -1;
    if (p->nb_output_maps > 0 && m >= 0 && m != p->nb_output_maps)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "input 1 (kernel) gives %lld output maps (%lld x %d groups), expected %d",
                                 (long long)m, (long long)w->d[1], p->groups, p->nb_output_maps);
    if (m < 0 && p->nb_output_maps > 0) m = p->nb_output_maps;
    kiln_dims o = {.nb_dims = x->nb_dims};
    o.d[0] = x->d[0];
    o.d[1] = m;
    for (int32_t i = 0; i < p->nb_spatial; i++) {
        int64_t s = p->stride[i], d = p->dilation[i], op = p->output_padding[i];
        if (op < 0 || (op >= s && op >= d))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "spatial dim %d: output padding %lld must be >= 0 and below stride or dilation", i,
                                     (long long)op);
        int64_t n = x->d[2 + i], k = kernel_size(p, &in[1], i), r;
        if (p->has_output_shape)
            r = p->output_shape[i];
        else if (n < 0 || k < 0)
            r = -1;
        else if (p->auto_pad == KILN__PAD_SAME_UPPER || p->auto_pad == KILN__PAD_SAME_LOWER)
            r = n * s;
        else if (p->auto_pad == KILN__PAD_VALID)
            r = s * (n - 1) + op + d * (k - 1) + 1;
        else
            r = s * (n - 1) + op + d * (k - 1) + 1 - p->pad_begin[i] - p->pad_end[i];
        if (r == 0 || r < -1 || (r == -1 && p->has_output_shape))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "spatial dim %d: output size %lld, expected >= 1",
                                     i, (long long)r);
        o.d[2 + i] = r;
    }
    KILN__TRY(check_bias_residual(layer, in, &o));
    out[0].dtype = in[0].dtype;
    out[0].dims = o;
    return KILN_OK;
}

static void print_list(kiln__buf *out, const char *key, const int64_t *v, int32_t n) {
    kiln__buf_printf(out, " %s=", key);
    for (int32_t i = 0; i < n; i++) kiln__buf_printf(out, i ? "x%lld" : "%lld", (long long)v[i]);
}

static void describe(const kiln_layer *layer, kiln__buf *out) {
    static const char *const pads[] = {"explicit", "same_upper", "same_lower", "valid"};
    const kiln__conv_params *p = &layer->p.conv;
    int32_t ns = KILN__MAX(0, KILN__MIN(p->nb_spatial, 3));
    kiln__buf_printf(out, "maps=%d", p->nb_output_maps);
    /* A kernel size of 0 means "from the weights' dims" (ONNX kernel_shape is optional). */
    int64_t kernel[3] = {p->kernel[0], p->kernel[1], p->kernel[2]};
    const kiln_tensor *w = layer->nb_inputs > 1 ? layer->inputs[1] : NULL;
    for (int32_t i = 0; i < ns; i++)
        if (kernel[i] == 0 && w && w->dims.nb_dims == ns + 2) kernel[i] = w->dims.d[2 + i];
    print_list(out, "kernel", kernel, ns);
    print_list(out, "stride", p->stride, ns);
    print_list(out, "dilation", p->dilation, ns);
    if (p->auto_pad >= 0 && p->auto_pad <= KILN__PAD_VALID && p->auto_pad != KILN__PAD_EXPLICIT)
        kiln__buf_printf(out, " auto_pad=%s", pads[p->auto_pad]);
    else {
        print_list(out, "pad_begin", p->pad_begin, ns);
        print_list(out, "pad_end", p->pad_end, ns);
    }
    if (layer->type == KILN_LAYER_DECONVOLUTION) {
        print_list(out, "output_padding", p->output_padding, ns);
        if (p->has_output_shape) print_list(out, "output_shape", p->output_shape, ns);
    }
    kiln__buf_printf(out, " groups=%d", p->groups);
    if (p->act.kind >= 0) kiln__buf_printf(out, " act=%d(%g,%g)", p->act.kind, p->act.alpha, p->act.beta);
    if (layer->nb_inputs > 3 && layer->inputs[3]) kiln__buf_printf(out, " residual=1");
}

const kiln__layer_ops kiln__conv_ops = {"Convolution", conv_infer, describe};
const kiln__layer_ops kiln__deconv_ops = {"Deconvolution", deconv_infer, describe};

/* ---------------------------------------------------------------- network API */

static kiln_status add_conv(kiln_network *net, kiln_layer_type type, kiln_tensor *input,
                            const kiln_convolution_desc *desc, kiln_weights kernel, kiln_weights bias,
                            kiln_layer **layer) {
    bool deconv = type == KILN_LAYER_DECONVOLUTION;
    const char *fn = deconv ? "kiln_network_add_deconvolution" : "kiln_network_add_convolution";
    if (layer) *layer = NULL;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "%s: network is NULL", fn);
    KILN__TRY(kiln__check_tensor(net, input, "input"));
    if (!desc || desc->struct_size < sizeof *desc)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: desc is NULL or its struct_size is too small", fn);
    int32_t ns = desc->nb_spatial_dims ? desc->nb_spatial_dims : 2;
    int32_t groups = desc->groups ? desc->groups : 1;
    if (ns < 1 || ns > 3)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: nb_spatial_dims is %d, expected 1 to 3", fn, ns);
    if (desc->nb_output_maps < 1 || groups < 1 || desc->nb_output_maps % groups != 0)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: %d output maps in %d groups, expected a positive multiple", fn,
                           desc->nb_output_maps, groups);
    if (input->dims.nb_dims != ns + 2)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: input '%s' has rank %d, expected %d", fn, input->name,
                           input->dims.nb_dims, ns + 2);
    int64_t kvol = 1;
    for (int32_t i = 0; i < ns; i++) {
        if (desc->kernel[i] < 1 || desc->stride[i] < 0 || desc->dilation[i] < 0 || desc->padding_begin[i] < 0 ||
            desc->padding_end[i] < 0 || desc->output_padding[i] < 0)
            return kiln__error(KILN_INVALID_ARGUMENT,
                               "%s: spatial dim %d: kernel must be >= 1 and stride, dilation, pads >= 0", fn, i);
        kvol *= desc->kernel[i];
    }
    if (kernel.dtype != input->dtype || (bias.count && bias.dtype != input->dtype))
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: weights must have the input's dtype %s", fn,
                           kiln_dtype_name(input->dtype));
    /* Kernel dims: conv [M, C/g, k...], deconv [C, M/g, k...]; the unknown one comes from the count. */
    int64_t known = deconv ? desc->nb_output_maps / groups : desc->nb_output_maps;
    if (!kernel.values || kernel.count < 1 || kernel.count % (known * kvol) != 0)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: kernel has %lld values, expected a multiple of %lld", fn,
                           (long long)kernel.count, (long long)(known * kvol));
    int64_t rest = kernel.count / (known * kvol);
    int64_t channels = deconv ? rest : rest * groups;
    if (input->dims.d[1] >= 0 && input->dims.d[1] != channels)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: kernel has %lld values, expected %lld for %lld input channels",
                           fn, (long long)kernel.count, (long long)(kernel.count / channels * input->dims.d[1]),
                           (long long)input->dims.d[1]);
    if (bias.count && (!bias.values || bias.count != desc->nb_output_maps))
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: bias has %lld values, expected %d", fn, (long long)bias.count,
                           desc->nb_output_maps);

    kiln_dims kd = {.nb_dims = ns + 2};
    kd.d[0] = deconv ? channels : desc->nb_output_maps;
    kd.d[1] = deconv ? known : rest;
    for (int32_t i = 0; i < ns; i++) kd.d[2 + i] = desc->kernel[i];
    size_t bytes;
    kiln_layer *kl, *bl = NULL;
    if (!kiln__dtype_bytes(kernel.dtype, kernel.count, &bytes))
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: kernel is too large", fn);
    KILN__TRY(kiln__network_add_constant_raw(net, kernel.dtype, &kd, kernel.values, bytes, &kl));
    if (bias.count) {
        kiln_dims bd = {.nb_dims = 1, .d = {bias.count}};
        kiln__dtype_bytes(bias.dtype, bias.count, &bytes);
        KILN__TRY(kiln__network_add_constant_raw(net, bias.dtype, &bd, bias.values, bytes, &bl));
    }
    kiln_tensor *inputs[3] = {input, kl->outputs[0], bl ? bl->outputs[0] : NULL};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, type, inputs, 3, 1, &l));
    kiln__conv_params *p = &l->p.conv;
    p->nb_output_maps = desc->nb_output_maps;
    p->nb_spatial = ns;
    p->groups = groups;
    p->auto_pad = KILN__PAD_EXPLICIT;
    p->act.kind = -1;
    for (int32_t i = 0; i < ns; i++) {
        p->kernel[i] = desc->kernel[i];
        p->stride[i] = desc->stride[i] ? desc->stride[i] : 1;
        p->dilation[i] = desc->dilation[i] ? desc->dilation[i] : 1;
        p->pad_begin[i] = desc->padding_begin[i];
        p->pad_end[i] = desc->padding_end[i];
        if (deconv) p->output_padding[i] = desc->output_padding[i];
    }
    return kiln__network_finish_layer(net, l, layer);
}

kiln_status kiln_network_add_convolution(kiln_network *network, kiln_tensor *input, const kiln_convolution_desc *desc,
                                         kiln_weights kernel, kiln_weights bias, kiln_layer **layer) {
    return add_conv(network, KILN_LAYER_CONVOLUTION, input, desc, kernel, bias, layer);
}

kiln_status kiln_network_add_deconvolution(kiln_network *network, kiln_tensor *input,
                                           const kiln_convolution_desc *desc, kiln_weights kernel, kiln_weights bias,
                                           kiln_layer **layer) {
    return add_conv(network, KILN_LAYER_DECONVOLUTION, input, desc, kernel, bias, layer);
}
