/* Padding kernel: each output coordinate maps to an input coordinate (edge: clamped, reflect:
 * mirrored without repeating the edge, wrap: modulo) or to the constant. */
#include "tensor_kernels.h"

typedef struct pad_job {
    int32_t mode, rank;
    const kiln_dims *in, *out;
    int64_t begin[KILN_MAX_DIMS], stride[KILN_MAX_DIMS];
    const char *x;
    char *y;
    uint8_t value[8];
    size_t es;
} pad_job;

static int64_t map_coord(int32_t mode, int64_t c, int64_t d) {
    if (c >= 0 && c < d) return c;
    switch (mode) {
    case KILN__PAD_EDGE: return c < 0 ? 0 : d - 1;
    case KILN__PAD_WRAP: return ((c % d) + d) % d;
    case KILN__PAD_REFLECT: {
        if (d == 1) return 0;
        int64_t period = 2 * (d - 1), m = ((c % period) + period) % period;
        return m < d ? m : period - m;
    }
    default: return -1;
    }
}

static void pad_range(void *arg, int64_t begin, int64_t end) {
    const pad_job *j = arg;
    for (int64_t e = begin; e < end; e++) {
        int64_t rest = e, off = 0;
        bool inside = true;
        for (int32_t i = j->rank - 1; i >= 0 && inside; i--) {
            int64_t c = map_coord(j->mode, rest % j->out->d[i] - j->begin[i], j->in->d[i]);
            rest /= j->out->d[i];
            if (c < 0) inside = false;
            else off += c * j->stride[i];
        }
        kiln__copy_elem(j->y + e * (int64_t)j->es, inside ? j->x + off * (int64_t)j->es : (const char *)j->value,
                        j->es);
    }
}

kiln_status kiln__cpu_padding(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                              kiln__cpu_ctx *ctx) {
    const kiln__padding_params *p = (const kiln__padding_params *)layer->p.bytes;
    const kiln__value *x = &inputs[0];
    pad_job j = {.mode = p->mode, .rank = x->dims.nb_dims, .in = &x->dims, .out = &outputs[0].dims, .x = x->data,
                 .y = outputs[0].data, .es = kiln__elem_bytes(x->dtype)};
    int64_t end[KILN_MAX_DIMS];
    bool known;
    KILN__TRY(kiln__padding_resolve(layer, inputs, j.begin, end, &known));
    int64_t n = kiln__dims_volume(j.out);
    if (n == 0) return KILN_OK;
    if (kiln__dims_volume(j.in) == 0 && p->mode != KILN__PAD_CONSTANT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "cannot pad an empty tensor in this mode");
    if (kiln__has_input(layer, inputs, 2) && kiln__dims_volume(&inputs[2].dims) == 1)
        kiln__copy_elem(j.value, inputs[2].data, j.es);
    else
        kiln__store_f64(j.value, x->dtype, 0, p->value);
    kiln__dims_strides(j.in, j.stride);
    kiln__parallel_for(ctx->pool, n, 4096, pad_range, &j);
    return KILN_OK;
}
