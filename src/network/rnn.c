/* RNN: ONNX RNN, GRU and LSTM over a whole sequence, one or both directions. */
#include "misc_layers.h"

static const char *const CELL_NAMES[] = {"RNN", "GRU", "LSTM"};

/* Checks that v (when present) has the given dims; -1 in want and unknown dims in v match anything. */
static kiln_status check_dims(const kiln_layer *layer, const kiln__value *v, int32_t i, const char *what,
                              const kiln_dims *want) {
    if (v->dims.nb_dims != want->nb_dims)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has rank %d, expected %d", i, what,
                                 v->dims.nb_dims, want->nb_dims);
    for (int32_t d = 0; d < want->nb_dims; d++)
        if (want->d[d] >= 0 && v->dims.d[d] >= 0 && v->dims.d[d] != want->d[d])
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has dim %d = %lld, expected %lld", i,
                                     what, d, (long long)v->dims.d[d], (long long)want->d[d]);
    return KILN_OK;
}

static bool act_valid(const kiln__act *a) {
    return a->kind == KILN__RNN_ACT_AFFINE || (a->kind >= 0 && a->kind < KILN_ACT_COUNT);
}

static kiln_status rnn_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__rnn_params *p = (const kiln__rnn_params *)layer->p.bytes;
    if (p->cell < 0 || p->cell > KILN__RNN_LSTM)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown cell %d", p->cell);
    if (p->direction < 0 || p->direction > KILN__RNN_BIDIRECTIONAL)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown direction %d", p->direction);
    if (p->hidden_size < 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "hidden_size is %lld, expected >= 1",
                                 (long long)p->hidden_size);
    if (p->layout != 0 && p->layout != 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "layout is %d, expected 0 or 1", p->layout);
    if (p->has_clip && !(p->clip > 0))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "clip is %g, expected > 0", (double)p->clip);
    int64_t dirs = p->direction == KILN__RNN_BIDIRECTIONAL ? 2 : 1;
    for (int32_t i = 0; i < dirs * kiln__rnn_nb_acts(p->cell); i++)
        if (!act_valid(&p->acts[i]))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "activation %d has unknown kind %d", i,
                                     p->acts[i].kind);
    if (layer->nb_inputs < 3 || layer->nb_inputs > 8)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 3 to 8", layer->nb_inputs);
    const kiln__value *x = &inputs[0];
    kiln_dtype dt = x->dtype;
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT64 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 0 (X) has dtype %s, expected a float type",
                                 kiln_dtype_name(dt));
    if (x->dims.nb_dims != 3)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (X) has rank %d, expected 3", x->dims.nb_dims);
    int64_t seq = x->dims.d[p->layout ? 1 : 0], batch = x->dims.d[p->layout ? 0 : 1], in = x->dims.d[2];
    int64_t h = p->hidden_size, g = kiln__rnn_gates(p->cell);
    static const char *const NAMES[8] = {"X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"};
    kiln_dims want[8] = {
        x->dims,
        {3, {dirs, g * h, in}},
        {3, {dirs, g * h, h}},
        {2, {dirs, 2 * g * h}},
        {1, {batch}},
        p->layout ? (kiln_dims){3, {batch, dirs, h}} : (kiln_dims){3, {dirs, batch, h}},
        p->layout ? (kiln_dims){3, {batch, dirs, h}} : (kiln_dims){3, {dirs, batch, h}},
        {2, {dirs, 3 * h}},
    };
    for (int32_t i = 1; i < layer->nb_inputs; i++) {
        if (!kiln__has_input(layer, inputs, i)) {
            if (i < 3) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) is required", i, NAMES[i]);
            continue;
        }
        if ((i == 6 || i == 7) && p->cell != KILN__RNN_LSTM)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) is for LSTM only", i, NAMES[i]);
        if (i == 4) {
            if (inputs[i].dtype != KILN_INT32 && inputs[i].dtype != KILN_INT64)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "input 4 (sequence_lens) has dtype %s, expected int32 or int64",
                                         kiln_dtype_name(inputs[i].dtype));
        } else if (inputs[i].dtype != dt) {
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has dtype %s, expected %s", i,
                                     NAMES[i], kiln_dtype_name(inputs[i].dtype), kiln_dtype_name(dt));
        }
        KILN__TRY(check_dims(layer, &inputs[i], i, NAMES[i], &want[i]));
    }
    if (layer->nb_outputs < 1 || layer->nb_outputs > (p->cell == KILN__RNN_LSTM ? 3 : 2))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d outputs, expected 1 to %d", layer->nb_outputs,
                                 p->cell == KILN__RNN_LSTM ? 3 : 2);
    outputs[0].dims = p->layout ? (kiln_dims){4, {batch, seq, dirs, h}} : (kiln_dims){4, {seq, dirs, batch, h}};
    for (int32_t o = 1; o < layer->nb_outputs; o++)
        outputs[o].dims = p->layout ? (kiln_dims){3, {batch, dirs, h}} : (kiln_dims){3, {dirs, batch, h}};
    for (int32_t o = 0; o < layer->nb_outputs; o++) outputs[o].dtype = dt;
    return KILN_OK;
}

static void rnn_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__rnn_params *p = (const kiln__rnn_params *)layer->p.bytes;
    static const char *const DIRS[] = {"forward", "reverse", "bidirectional"};
    kiln__buf_printf(
        out, "cell=%s direction=%s hidden=%lld layout=%d", p->cell >= 0 && p->cell < 3 ? CELL_NAMES[p->cell] : "?",
        p->direction >= 0 && p->direction < 3 ? DIRS[p->direction] : "?", (long long)p->hidden_size, p->layout);
    if (p->has_clip) kiln__buf_printf(out, " clip=%g", (double)p->clip);
    if (p->cell == KILN__RNN_GRU) kiln__buf_printf(out, " linear_before_reset=%d", p->linear_before_reset);
    if (p->cell == KILN__RNN_LSTM) kiln__buf_printf(out, " input_forget=%d", p->input_forget);
}

const kiln__layer_ops kiln__rnn_ops = {"RNN", rnn_infer, rnn_describe};
