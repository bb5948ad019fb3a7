/* ONNX importers for sequences and optionals: SequenceEmpty, SequenceConstruct,
 * SequenceInsert, SequenceErase, SequenceAt, SequenceLength, ConcatFromSequence,
 * SplitToSequence, Optional, OptionalHasElement, OptionalGetElement. A sequence is a list of
 * network tensors known at import time (importer.h), so positions must be constants there;
 * the one exception is SequenceAt on a sequence whose elements share one shape, which
 * becomes a gather from the stacked elements. The table also lists the control-flow ops of
 * import_control.c. */
#include "onnx/import_sequence.h"

#include "cpu/cpu.h"
#include "network/tensor_layers.h"

#include <string.h>

/* ---------------------------------------------------------------- helpers */

kiln_tensor *kiln__onnx_unsqueeze_at(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int32_t axis,
                                     kiln_status *st) {
    int32_t r = x->dims.nb_dims;
    if (r + 1 > KILN_MAX_DIMS || axis < 0 || axis > r) {
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "cannot add a dim at %d to a tensor of rank %d", axis, r);
        return NULL;
    }
    /* Reshape appends the 1 (0 copies each input dim, known or not), the transpose moves it. */
    kiln__shuffle_params p = {.has_reshape = 1, .has_second_perm = 1};
    p.reshape.nb_dims = r + 1;
    p.reshape.d[r] = 1;
    for (int32_t i = 0, j = 0; i <= r; i++) p.second_perm[i] = i == axis ? r : j++;
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &x, 1, &p, sizeof p, st);
}

kiln_tensor *kiln__onnx_stack(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *const *items, int32_t n,
                              int32_t axis, kiln_status *st) {
    kiln_network *net = kiln__onnx_network(ctx);
    kiln_tensor **parts = kiln__malloc(&net->alloc, (size_t)n * sizeof *parts + 1), *out = NULL;
    if (!parts) {
        *st = KILN_OUT_OF_MEMORY;
        return NULL;
    }
    int32_t k = 0;
    for (; k < n; k++)
        if (!(parts[k] = kiln__onnx_unsqueeze_at(ctx, node, items[k], axis, st))) break;
    if (k == n) {
        kiln__concat_params cp = {.axis = axis};
        out = n == 1 ? parts[0] : kiln__onnx_add1(ctx, node, KILN_LAYER_CONCAT, parts, n, &cp, sizeof cp, st);
    }
    kiln__free(&net->alloc, parts);
    return out;
}

kiln_tensor *kiln__onnx_take(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int64_t index,
                             int32_t axis, kiln_status *st) {
    kiln_tensor *in[2] = {x, kiln__onnx_const_scalar(ctx, node, KILN_INT64, (double)index, 0, st)};
    if (!in[1]) return NULL;
    kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT, .axis = axis};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, in, 2, &gp, sizeof gp, st);
}

bool kiln__onnx_const_scalar_int(kiln__onnx_ctx *ctx, const kiln_tensor *t, int64_t *out) {
    kiln__value v;
    if (!kiln__onnx_const(ctx, t, &v) || kiln__dims_volume(&v.dims) != 1) return false;
    if (v.dtype != KILN_BOOL && !kiln__dtype_is_integer(v.dtype)) return false;
    *out = v.dtype == KILN_BOOL ? ((const uint8_t *)v.data)[0] != 0 : kiln__load_i64(v.data, v.dtype, 0);
    return true;
}

static const char *list_kind_name(kiln__onnx_list_kind kind) {
    switch (kind) {
    case KILN__ONNX_SEQUENCE: return "sequence";
    case KILN__ONNX_OPTIONAL_TENSOR: return "optional tensor";
    case KILN__ONNX_OPTIONAL_SEQUENCE: return "optional sequence";
    default: return "empty optional";
    }
}

/* Input i as a sequence (an optional holding one counts too), else an error in *st. */
static const kiln__onnx_list *seq_in(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, kiln_status *st) {
    kiln__onnx_val v;
    if (!kiln__onnx_in_val(ctx, node, i, &v)) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input %d (a sequence) is missing", i);
        return NULL;
    }
    if (!v.list || (v.list->kind != KILN__ONNX_SEQUENCE && v.list->kind != KILN__ONNX_OPTIONAL_SEQUENCE)) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input %d ('%s') is a %s, expected a sequence", i,
                                    node->inputs[i], v.list ? list_kind_name(v.list->kind) : "tensor");
        return NULL;
    }
    return v.list;
}

static kiln_status out_seq(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_dtype dtype,
                           kiln_tensor *const *items, int32_t count) {
    const kiln__onnx_list *list;
    KILN__TRY(kiln__onnx_list_new(ctx, KILN__ONNX_SEQUENCE, dtype, items, count, &list));
    kiln__onnx_val v = {.list = list};
    return kiln__onnx_out_val(ctx, node, 0, &v);
}

/* A position input (scalar or one-element int tensor) that must be a constant at import,
 * normalized against [lo, hi] after adding n to negative values. */
static kiln_status const_position(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, int64_t n, int64_t lo,
                                  int64_t hi, int64_t *out) {
    kiln_tensor *t = kiln__onnx_in(ctx, node, i);
    int64_t p;
    if (!kiln__onnx_const_scalar_int(ctx, t, &p))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "input %d (position) '%s' is not known at import time; kiln keeps sequences as "
                                     "fixed lists and needs constant positions",
                                     i, node->inputs[i]);
    if (p < lo || p > hi)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "position %lld is out of range [%lld, %lld]",
                                     (long long)p, (long long)lo, (long long)hi);
    *out = p < 0 ? p + n : p;
    return KILN_OK;
}

/* Checks that t can join a sequence of dtype `dtype` (UNDEFINED: any). */
static kiln_status check_elem(const kiln__onnx_node *node, kiln_dtype dtype, const kiln_tensor *t) {
    if (dtype != KILN_DTYPE_UNDEFINED && t->dtype != dtype)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "tensor '%s' has dtype %s, the sequence holds %s",
                                     t->name, kiln_dtype_name(t->dtype), kiln_dtype_name(dtype));
    return KILN_OK;
}

/* ---------------------------------------------------------------- sequence ops */

static kiln_status import_sequence_empty(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    int64_t dtype = KILN_FLOAT32;
    KILN__TRY(kiln__onnx_attr_int(node, "dtype", &dtype));
    if (!kiln__dtype_valid((kiln_dtype)dtype))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "dtype %lld is not supported", (long long)dtype);
    return out_seq(ctx, node, (kiln_dtype)dtype, NULL, 0);
}

static kiln_status import_sequence_construct(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    if (node->nb_inputs < 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "needs at least one input");
    if (node->nb_inputs > KILN__ONNX_MAX_UNROLL)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "%d inputs, at most %d", node->nb_inputs,
                                     KILN__ONNX_MAX_UNROLL);
    kiln_network *net = kiln__onnx_network(ctx);
    kiln_tensor **items = kiln__malloc(&net->alloc, (size_t)node->nb_inputs * sizeof *items);
    if (!items) return KILN_OUT_OF_MEMORY;
    for (int32_t i = 0; st == KILN_OK && i < node->nb_inputs; i++)
        if ((items[i] = kiln__onnx_in_required(ctx, node, i, "input", &st))) st = check_elem(node, items[0]->dtype, items[i]);
    if (st == KILN_OK) st = out_seq(ctx, node, items[0]->dtype, items, node->nb_inputs);
    kiln__free(&net->alloc, items);
    return st;
}

/* A copy of seq with `insert` at position `at` (when not NULL) or without the element at `at`. */
static kiln_status edit_sequence(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_list *seq,
                                 int64_t at, kiln_tensor *insert) {
    int32_t n = seq->count, m = insert ? n + 1 : n - 1;
    if (m > KILN__ONNX_MAX_UNROLL)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "sequences are limited to %d elements", KILN__ONNX_MAX_UNROLL);
    kiln_network *net = kiln__onnx_network(ctx);
    kiln_tensor **items = kiln__malloc(&net->alloc, (size_t)(n + 1) * sizeof *items);
    if (!items) return KILN_OUT_OF_MEMORY;
    for (int32_t i = 0, j = 0; i < m; i++)
        if (insert && i == at) items[i] = insert;
        else {
            if (!insert && j == at) j++;
            items[i] = seq->items[j++];
        }
    kiln_status st = out_seq(ctx, node, seq->dtype != KILN_DTYPE_UNDEFINED ? seq->dtype : insert ? insert->dtype
                                                                                                   : KILN_DTYPE_UNDEFINED,
                             items, m);
    kiln__free(&net->alloc, items);
    return st;
}

static kiln_status import_sequence_insert(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    const kiln__onnx_list *seq = seq_in(ctx, node, 0, &st);
    if (!seq) return st;
    kiln_tensor *t = kiln__onnx_in_required(ctx, node, 1, "tensor", &st);
    if (!t) return st;
    KILN__TRY(check_elem(node, seq->dtype, t));
    int64_t at = seq->count;
    if (kiln__onnx_in(ctx, node, 2)) KILN__TRY(const_position(ctx, node, 2, seq->count, -seq->count, seq->count, &at));
    return edit_sequence(ctx, node, seq, at, t);
}

static kiln_status import_sequence_erase(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    const kiln__onnx_list *seq = seq_in(ctx, node, 0, &st);
    if (!seq) return st;
    if (seq->count == 0) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "the sequence is empty");
    int64_t at = seq->count - 1;
    if (kiln__onnx_in(ctx, node, 1))
        KILN__TRY(const_position(ctx, node, 1, seq->count, -seq->count, seq->count - 1, &at));
    return edit_sequence(ctx, node, seq, at, NULL);
}

/* SequenceAt with a position known only at run time: the elements must share one known
 * shape, so that they stack into one tensor to gather from. */
static kiln_status sequence_at_dynamic(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_list *seq,
                                       kiln_tensor *pos) {
    kiln_status st = KILN_OK;
    if (seq->count == 0) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "the sequence is empty");
    const kiln_dims *d0 = &seq->items[0]->dims;
    bool same = kiln__dims_volume(d0) >= 0;
    for (int32_t i = 1; same && i < seq->count; i++) {
        const kiln_dims *d = &seq->items[i]->dims;
        same = d->nb_dims == d0->nb_dims && memcmp(d->d, d0->d, sizeof d->d[0] * (size_t)d->nb_dims) == 0;
    }
    if (!same)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "input 1 (position) '%s' is not known at import time and the elements do not all "
                                     "have one shape known at build time; kiln needs one of the two",
                                     node->inputs[1]);
    if (pos->dims.nb_dims > 1 || kiln__dims_volume(&pos->dims) != 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 1 (position) must hold one value");
    if (pos->dims.nb_dims == 1) {
        kiln__shuffle_params p = {.has_reshape = 1};
        if (!(pos = kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &pos, 1, &p, sizeof p, &st))) return st;
    }
    kiln_tensor *in[2] = {kiln__onnx_stack(ctx, node, seq->items, seq->count, 0, &st), pos};
    if (!in[0]) return st;
    kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT, .axis = 0};
    kiln_tensor *t = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, in, 2, &gp, sizeof gp, &st);
    return t ? kiln__onnx_out(ctx, node, 0, t) : st;
}

static kiln_status import_sequence_at(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    const kiln__onnx_list *seq = seq_in(ctx, node, 0, &st);
    if (!seq) return st;
    kiln_tensor *pos = kiln__onnx_in_required(ctx, node, 1, "position", &st);
    if (!pos) return st;
    int64_t at;
    if (!kiln__onnx_const_scalar_int(ctx, pos, &at)) return sequence_at_dynamic(ctx, node, seq, pos);
    KILN__TRY(const_position(ctx, node, 1, seq->count, -seq->count, seq->count - 1, &at));
    return kiln__onnx_out(ctx, node, 0, seq->items[at]);
}

static kiln_status import_sequence_length(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    const kiln__onnx_list *seq = seq_in(ctx, node, 0, &st);
    if (!seq) return st;
    kiln_tensor *t = kiln__onnx_const_scalar(ctx, node, KILN_INT64, seq->count, 0, &st);
    return t ? kiln__onnx_out(ctx, node, 0, t) : st;
}

static kiln_status import_concat_from_sequence(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    const kiln__onnx_list *seq = seq_in(ctx, node, 0, &st);
    if (!seq) return st;
    int64_t axis = 0, new_axis = 0;
    if (!kiln__onnx_node_attr(node, "axis"))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'axis' is required");
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_int(node, "new_axis", &new_axis));
    if (seq->count == 0)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "the sequence is empty; there is nothing to concat");
    int32_t rank = seq->items[0]->dims.nb_dims + (new_axis ? 1 : 0), ax;
    if (!kiln__norm_axis(axis, rank, &ax))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)axis, rank);
    kiln_tensor *t;
    if (new_axis) t = kiln__onnx_stack(ctx, node, seq->items, seq->count, ax, &st);
    else {
        kiln__concat_params cp = {.axis = ax};
        t = kiln__onnx_add1(ctx, node, KILN_LAYER_CONCAT, seq->items, seq->count, &cp, sizeof cp, &st);
    }
    return t ? kiln__onnx_out(ctx, node, 0, t) : st;
}

/* SplitToSequence with a 1-D split of known length but values known only at run time:
 * piece k slices [cumsum_exclusive[k], cumsum_inclusive[k]) along the axis. */
static kiln_status split_dynamic(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_tensor *split,
                                 int32_t ax) {
    kiln_status st = KILN_OK;
    int64_t n = split->dims.nb_dims == 1 ? split->dims.d[0] : -1;
    if (n < 0 || n > 256 || (split->dtype != KILN_INT32 && split->dtype != KILN_INT64))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "input 1 (split) '%s' is not known at import time; kiln needs it constant or a "
                                     "1-D int tensor of a length known at build time (at most 256)",
                                     node->inputs[1]);
    if (split->dtype != KILN_INT64 && !(split = kiln__onnx_cast(ctx, node, split, KILN_INT64, &st))) return st;
    kiln__cumsum_params inc = {.axis = 0}, exc = {.axis = 0, .exclusive = 1};
    kiln_tensor *ends = kiln__onnx_add1(ctx, node, KILN_LAYER_CUMSUM, &split, 1, &inc, sizeof inc, &st), *starts;
    if (!ends || !(starts = kiln__onnx_add1(ctx, node, KILN_LAYER_CUMSUM, &split, 1, &exc, sizeof exc, &st))) return st;
    kiln_tensor *axes = kiln__onnx_const_scalar(ctx, node, KILN_INT64, ax, 1, &st), *items[256];
    if (!axes) return st;
    for (int32_t k = 0; k < n; k++) {
        kiln_tensor *at = kiln__onnx_const_scalar(ctx, node, KILN_INT64, k, 1, &st), *se[2];
        if (!at) return st;
        kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT};
        for (int32_t j = 0; j < 2; j++) {
            kiln_tensor *g[2] = {j ? ends : starts, at};
            if (!(se[j] = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, g, 2, &gp, sizeof gp, &st))) return st;
        }
        kiln_tensor *in[4] = {x, se[0], se[1], axes};
        kiln__slice_params p = {0};
        if (!(items[k] = kiln__onnx_add1(ctx, node, KILN_LAYER_SLICE, in, 4, &p, sizeof p, &st))) return st;
    }
    return out_seq(ctx, node, x->dtype, items, (int32_t)n);
}

static kiln_status import_split_to_sequence(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    int64_t axis = 0, keepdims = 1;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_int(node, "keepdims", &keepdims));
    int32_t ax;
    if (!kiln__norm_axis(axis, x->dims.nb_dims, &ax))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)axis, x->dims.nb_dims);
    int64_t dim = x->dims.d[ax];
    /* sizes[k] of each piece; a scalar split gives pieces of that size, the last smaller. */
    kiln_tensor *split = kiln__onnx_in(ctx, node, 1);
    int64_t sizes[256];
    int32_t n = 0;
    kiln__value sv;
    bool list = split && kiln__onnx_const(ctx, split, &sv) && split->dims.nb_dims == 1;
    if (split && !list && !kiln__onnx_const(ctx, split, &sv)) return split_dynamic(ctx, node, x, split, ax);
    if (dim < 0 && !list)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "dim %d of the input is not known at build time; kiln needs it to fix the "
                                     "sequence's length", ax);
    if (split) {
        if ((sv.dtype != KILN_INT32 && sv.dtype != KILN_INT64) || sv.dims.nb_dims > 1)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 1 (split) must be an int scalar or 1-D tensor");
        if (!list) {
            int64_t chunk = kiln__value_int(&sv, 0);
            if (chunk <= 0)
                return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "split is %lld, expected > 0",
                                             (long long)chunk);
            if ((dim + chunk - 1) / chunk > 256)
                return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "more than 256 pieces");
            for (int64_t at = 0; at < dim; at += chunk) sizes[n++] = KILN__MIN(chunk, dim - at);
        } else {
            if (sv.dims.d[0] > 256) return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "more than 256 pieces");
            int64_t total = 0;
            for (; n < sv.dims.d[0]; n++) {
                sizes[n] = kiln__value_int(&sv, n);
                if (sizes[n] < 0)
                    return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "split entry %d is negative", n);
                total += sizes[n];
            }
            if (dim >= 0 && total != dim)
                return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "split sums to %lld, the axis dim is %lld",
                                             (long long)total, (long long)dim);
        }
    } else {
        if (dim > 256) return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "more than 256 pieces");
        for (; n < dim; n++) sizes[n] = 1;
    }
    kiln_tensor *items[256];
    int64_t start = 0;
    for (int32_t k = 0; k < n; k++) {
        if (!split && !keepdims) items[k] = kiln__onnx_take(ctx, node, x, k, ax, &st);
        else {
            kiln__slice_params p = {.nb_axes = 1, .axes = {ax}, .starts = {start}, .ends = {start + sizes[k]},
                                    .steps = {1}};
            items[k] = kiln__onnx_add1(ctx, node, KILN_LAYER_SLICE, &x, 1, &p, sizeof p, &st);
        }
        if (!items[k]) return st;
        start += sizes[k];
    }
    return out_seq(ctx, node, x->dtype, items, n);
}

/* ---------------------------------------------------------------- optionals */

static kiln_status import_optional(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln__onnx_val v;
    const kiln__onnx_list *list;
    if (!kiln__onnx_in_val(ctx, node, 0, &v)) {
        const kiln__onnx_attr *type = kiln__onnx_node_attr(node, "type");
        if (node->nb_inputs > 0 && node->inputs[0][0])
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 0 '%s' is not defined", node->inputs[0]);
        if (!type) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "with no input, attribute 'type' is required");
        kiln_dtype dtype = KILN_DTYPE_UNDEFINED;
        const kiln__onnx_type *tp = type->tp;
        if (tp && tp->kind == KILN__ONNX_TYPE_SEQUENCE) tp = tp->elem;
        if (tp && tp->kind == KILN__ONNX_TYPE_TENSOR) dtype = (kiln_dtype)tp->elem_type;
        KILN__TRY(kiln__onnx_list_new(ctx, KILN__ONNX_OPTIONAL_NONE, dtype, NULL, 0, &list));
    } else if (v.tensor) {
        KILN__TRY(kiln__onnx_list_new(ctx, KILN__ONNX_OPTIONAL_TENSOR, v.tensor->dtype, &v.tensor, 1, &list));
    } else if (v.list->kind == KILN__ONNX_SEQUENCE) {
        KILN__TRY(kiln__onnx_list_new(ctx, KILN__ONNX_OPTIONAL_SEQUENCE, v.list->dtype, v.list->items, v.list->count,
                                      &list));
    } else {
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 0 is an optional; optionals do not nest");
    }
    kiln__onnx_val out = {.list = list};
    return kiln__onnx_out_val(ctx, node, 0, &out);
}

static kiln_status import_optional_has_element(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln__onnx_val v;
    bool has = kiln__onnx_in_val(ctx, node, 0, &v) && (v.tensor || v.list->kind != KILN__ONNX_OPTIONAL_NONE);
    if (!has && node->nb_inputs > 0 && node->inputs[0][0] && !v.list)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 0 '%s' is not defined", node->inputs[0]);
    kiln_status st = KILN_OK;
    kiln_tensor *t = kiln__onnx_const_scalar(ctx, node, KILN_BOOL, has, 0, &st);
    return t ? kiln__onnx_out(ctx, node, 0, t) : st;
}

static kiln_status import_optional_get_element(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln__onnx_val v;
    if (!kiln__onnx_in_val(ctx, node, 0, &v))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 0 (an optional) is missing");
    if (v.list && v.list->kind == KILN__ONNX_OPTIONAL_NONE)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 0 ('%s') is an empty optional",
                                     node->inputs[0]);
    if (v.list && v.list->kind == KILN__ONNX_OPTIONAL_TENSOR) return kiln__onnx_out(ctx, node, 0, v.list->items[0]);
    if (v.list && v.list->kind == KILN__ONNX_OPTIONAL_SEQUENCE) return out_seq(ctx, node, v.list->dtype, v.list->items, v.list->count);
    /* A tensor or a sequence passes through (opset 18 accepts them). */
    return kiln__onnx_out_val(ctx, node, 0, &v);
}

const kiln__onnx_op kiln__onnx_ops_sequence[] = {
    {"", "SequenceEmpty", 11, import_sequence_empty},
    {"", "SequenceConstruct", 11, import_sequence_construct},
    {"", "SequenceInsert", 11, import_sequence_insert},
    {"", "SequenceErase", 11, import_sequence_erase},
    {"", "SequenceAt", 11, import_sequence_at},
    {"", "SequenceLength", 11, import_sequence_length},
    {"", "ConcatFromSequence", 11, import_concat_from_sequence},
    {"", "SplitToSequence", 11, import_split_to_sequence},
    {"", "SequenceMap", 17, kiln__onnx_import_sequence_map},
    {"", "Optional", 15, import_optional},
    {"", "OptionalHasElement", 15, import_optional_has_element},
    {"", "OptionalGetElement", 15, import_optional_get_element},
    {"", "If", 1, kiln__onnx_import_if},
    {"", "Loop", 1, kiln__onnx_import_loop},
    {"", "Scan", 8, kiln__onnx_import_scan},
    {NULL, NULL, 0, NULL},
};
