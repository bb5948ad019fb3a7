/* Layers for the classic-ML ops: TreeEnsemble, TfIdf (n-gram counts) and LabelEncoder. Their
 * tables are constant inputs; infer checks shapes and dtypes, the kernels check the values
 * they follow (node and leaf indices, key order) as they use them. */
#include "misc_layers.h"

static kiln_status need(const kiln_layer *layer, const kiln__value *v, int32_t i, const char *what, kiln_dtype dt,
                        int32_t rank) {
    if (!kiln__has_input(layer, v, i))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) is required", i, what);
    if (dt != KILN_DTYPE_UNDEFINED && v[i].dtype != dt)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has dtype %s, expected %s", i, what,
                                 kiln_dtype_name(v[i].dtype), kiln_dtype_name(dt));
    if (rank >= 0 && v[i].dims.nb_dims != rank)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has rank %d, expected %d", i, what,
                                 v[i].dims.nb_dims, rank);
    return KILN_OK;
}

static bool same_len(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

/* ---------------------------------------------------------------- TreeEnsemble */

static kiln_status tree_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__tree_params *p = (const kiln__tree_params *)layer->p.bytes;
    if (layer->nb_inputs < 6 || layer->nb_inputs > 7)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 6 or 7", layer->nb_inputs);
    if (p->n_targets < 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "n_targets is %lld, expected >= 1",
                                 (long long)p->n_targets);
    if (p->aggregate < KILN__TREE_AVERAGE || p->aggregate > KILN__TREE_MAX)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown aggregate function %d", p->aggregate);
    if (p->post < KILN__TREE_POST_NONE || p->post > KILN__TREE_POST_PROBIT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown post transform %d", p->post);
    KILN__TRY(need(layer, inputs, 0, "X", KILN_DTYPE_UNDEFINED, 2));
    if (!kiln__dtype_is_float(inputs[0].dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 0 (X) has dtype %s, expected a float type",
                                 kiln_dtype_name(inputs[0].dtype));
    KILN__TRY(need(layer, inputs, 1, "nodes", KILN_INT64, 2));
    KILN__TRY(need(layer, inputs, 2, "splits", KILN_FLOAT64, 1));
    KILN__TRY(need(layer, inputs, 3, "roots", KILN_INT64, 1));
    KILN__TRY(need(layer, inputs, 4, "leaf target ids", KILN_INT64, 1));
    KILN__TRY(need(layer, inputs, 5, "leaf weights", KILN_FLOAT64, 1));
    if (inputs[1].dims.d[1] >= 0 && inputs[1].dims.d[1] != KILN__TREE_COLS)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (nodes) has %lld columns, expected %d",
                                 (long long)inputs[1].dims.d[1], KILN__TREE_COLS);
    if (!same_len(inputs[1].dims.d[0], inputs[2].dims.d[0]))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "inputs 1 (nodes) and 2 (splits) differ in length");
    if (!same_len(inputs[4].dims.d[0], inputs[5].dims.d[0]))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "inputs 4 (leaf target ids) and 5 (leaf weights) differ in length");
    if (kiln__has_input(layer, inputs, 6)) KILN__TRY(need(layer, inputs, 6, "set members", KILN_FLOAT64, 1));
    outputs[0].dtype = inputs[0].dtype;
    outputs[0].dims = (kiln_dims){2, {inputs[0].dims.d[0], p->n_targets}};
    return KILN_OK;
}

static void tree_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__tree_params *p = (const kiln__tree_params *)layer->p.bytes;
    static const char *const AGG[] = {"average", "sum", "min", "max"};
    static const char *const POST[] = {"none", "softmax", "logistic", "softmax_zero", "probit"};
    kiln__buf_printf(out, "n_targets=%lld aggregate=%s post=%s", (long long)p->n_targets,
                     p->aggregate >= 0 && p->aggregate < 4 ? AGG[p->aggregate] : "?",
                     p->post >= 0 && p->post < 5 ? POST[p->post] : "?");
}

const kiln__layer_ops kiln__tree_ensemble_ops = {"TreeEnsemble", tree_infer, tree_describe};

/* ---------------------------------------------------------------- TfIdf */

static kiln_status tfidf_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__tfidf_params *p = (const kiln__tfidf_params *)layer->p.bytes;
    if (p->mode < KILN__TFIDF_TF || p->mode > KILN__TFIDF_TFIDF)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown mode %d", p->mode);
    if (p->min_gram < 1 || p->max_gram < p->min_gram)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "gram lengths %d..%d, expected 1 <= min <= max",
                                 p->min_gram, p->max_gram);
    if (p->max_skip < 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "max_skip_count is %d, expected >= 0", p->max_skip);
    if (p->output_size < 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "output size is %lld, expected >= 1",
                                 (long long)p->output_size);
    if (layer->nb_inputs < 2 || layer->nb_inputs > 3)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 2 or 3", layer->nb_inputs);
    const kiln__value *x = &inputs[0];
    if (x->dtype != KILN_INT32 && x->dtype != KILN_INT64)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 0 (X) has dtype %s, expected int32 or int64",
                                 kiln_dtype_name(x->dtype));
    if (x->dims.nb_dims < 1 || x->dims.nb_dims > 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (X) has rank %d, expected 1 or 2",
                                 x->dims.nb_dims);
    KILN__TRY(need(layer, inputs, 1, "grams", KILN_INT64, 2));
    if (inputs[1].dims.d[1] >= 0 && inputs[1].dims.d[1] < 2 + p->max_gram)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (grams) has %lld columns, expected >= %d",
                                 (long long)inputs[1].dims.d[1], 2 + p->max_gram);
    if (kiln__has_input(layer, inputs, 2)) {
        KILN__TRY(need(layer, inputs, 2, "weights", KILN_FLOAT32, 1));
        if (!same_len(inputs[2].dims.d[0], p->output_size))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (weights) has %lld values, expected %lld",
                                     (long long)inputs[2].dims.d[0], (long long)p->output_size);
    }
    outputs[0].dtype = KILN_FLOAT32;
    outputs[0].dims =
        x->dims.nb_dims == 1 ? (kiln_dims){1, {p->output_size}} : (kiln_dims){2, {x->dims.d[0], p->output_size}};
    return KILN_OK;
}

static void tfidf_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__tfidf_params *p = (const kiln__tfidf_params *)layer->p.bytes;
    static const char *const MODES[] = {"TF", "IDF", "TFIDF"};
    kiln__buf_printf(out, "mode=%s grams=%d..%d max_skip=%d output_size=%lld",
                     p->mode >= 0 && p->mode < 3 ? MODES[p->mode] : "?", p->min_gram, p->max_gram, p->max_skip,
                     (long long)p->output_size);
}

const kiln__layer_ops kiln__tfidf_ops = {"TfIdf", tfidf_infer, tfidf_describe};

/* ---------------------------------------------------------------- LabelEncoder */

static bool encodable(kiln_dtype t) { return kiln__dtype_is_float(t) || kiln__dtype_is_integer(t); }

static kiln_status label_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    if (layer->nb_inputs != 4)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 4", layer->nb_inputs);
    const kiln__value *x = &inputs[0];
    if (!encodable(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 0 (X) has dtype %s, expected a number type",
                                 kiln_dtype_name(x->dtype));
    KILN__TRY(need(layer, inputs, 1, "keys", x->dtype, 1));
    KILN__TRY(need(layer, inputs, 2, "values", KILN_DTYPE_UNDEFINED, 1));
    kiln_dtype vt = inputs[2].dtype;
    if (!encodable(vt))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 2 (values) has dtype %s, expected a number type",
                                 kiln_dtype_name(vt));
    if (!same_len(inputs[1].dims.d[0], inputs[2].dims.d[0]))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "inputs 1 (keys) and 2 (values) differ in length");
    KILN__TRY(need(layer, inputs, 3, "default", vt, -1));
    if (kiln__dims_volume(&inputs[3].dims) != 1 && kiln__dims_volume(&inputs[3].dims) != -1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 3 (default) must hold one value");
    outputs[0].dtype = vt;
    outputs[0].dims = x->dims;
    return KILN_OK;
}

static void label_describe(const kiln_layer *layer, kiln__buf *out) {
    (void)layer;
    kiln__buf_printf(out, "keys=input1 values=input2");
}

const kiln__layer_ops kiln__label_encoder_ops = {"LabelEncoder", label_infer, label_describe};
