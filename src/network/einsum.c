/* Einsum: Einstein summation over any number of inputs (ONNX Einsum): explicit or implicit
 * output, ellipsis with broadcasting, repeated labels in one input (diagonals). */
#include "tensor_layers.h"

#include <string.h>

/* Reads one term (letters and at most one "...") of the equation starting at *pos. */
static kiln_status parse_term(const kiln_layer *layer, const char *eq, size_t *pos, char *letters, int32_t *nb,
                              int32_t *ellipsis_at) {
    *nb = 0;
    *ellipsis_at = -1;
    for (;;) {
        char c = eq[*pos];
        if (c == ' ') {
            (*pos)++;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            if (*nb >= KILN_MAX_DIMS)
                return kiln__layer_error(layer, KILN_UNSUPPORTED, "equation '%s': a term has more than %d labels", eq,
                                         KILN_MAX_DIMS);
            letters[(*nb)++] = c;
            (*pos)++;
        } else if (c == '.') {
            if (strncmp(eq + *pos, "...", 3) != 0 || *ellipsis_at >= 0)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "equation '%s': bad ellipsis at %zu", eq, *pos);
            *ellipsis_at = *nb;
            *pos += 3;
        } else {
            return KILN_OK;
        }
    }
}

static int32_t letter_slot(char c) { return c >= 'a' ? c - 'a' + 26 : c - 'A'; } /* ASCII order */

kiln_status kiln__einsum_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__einsum_plan *plan) {
    const kiln__einsum_params *p = (const kiln__einsum_params *)layer->p.bytes;
    const char *eq = p->equation;
    if (!memchr(eq, 0, sizeof p->equation))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "equation is not terminated");
    memset(plan, 0, sizeof *plan);
    int32_t n = layer->nb_inputs;
    if (n < 1 || n > KILN__EINSUM_MAX_INPUTS)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "%d inputs, expected 1..%d", n, KILN__EINSUM_MAX_INPUTS);
    char letters[KILN__EINSUM_MAX_INPUTS][KILN_MAX_DIMS];
    int32_t nb_letters[KILN__EINSUM_MAX_INPUTS], ell_at[KILN__EINSUM_MAX_INPUTS], ell_rank = 0;
    size_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        KILN__TRY(parse_term(layer, eq, &pos, letters[i], &nb_letters[i], &ell_at[i]));
        if (i + 1 < n) {
            if (eq[pos] != ',')
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "equation '%s' has fewer terms than the %d inputs",
                                         eq, n);
            pos++;
        }
        int32_t r = inputs[i].dims.nb_dims, er = r - nb_letters[i];
        if (ell_at[i] < 0 ? er != 0 : er < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "equation '%s': term %d does not fit input rank %d",
                                     eq, i, r);
        if (ell_at[i] >= 0) ell_rank = KILN__MAX(ell_rank, er);
        if (inputs[i].dtype != inputs[0].dtype)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d has dtype %s, expected %s like input 0", i,
                                     kiln_dtype_name(inputs[i].dtype), kiln_dtype_name(inputs[0].dtype));
    }
    while (eq[pos] == ' ') pos++;
    bool explicit_out = false;
    char out_letters[KILN_MAX_DIMS];
    int32_t nb_out = 0, out_ell = -1;
    if (eq[pos] == '-' && eq[pos + 1] == '>') {
        pos += 2;
        explicit_out = true;
        KILN__TRY(parse_term(layer, eq, &pos, out_letters, &nb_out, &out_ell));
    }
    if (eq[pos] != 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "equation '%s': unexpected '%c' at %zu", eq, eq[pos], pos);
    /* Labels: ellipsis dims first (0..ell_rank-1), then letters in ASCII order. */
    int32_t letter_label[52], count[52] = {0};
    for (int32_t s = 0; s < 52; s++) letter_label[s] = -1;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < nb_letters[i]; j++) count[letter_slot(letters[i][j])]++;
    plan->nb_labels = ell_rank;
    for (int32_t s = 0; s < 52; s++)
        if (count[s]) letter_label[s] = plan->nb_labels++;
    plan->nb_inputs = n;
    for (int32_t l = 0; l < plan->nb_labels; l++) plan->size[l] = -2; /* not seen yet */
    for (int32_t i = 0; i < n; i++) {
        int32_t r = inputs[i].dims.nb_dims, er = r - nb_letters[i];
        plan->rank[i] = r;
        for (int32_t d = 0, j = 0; d < r; d++) {
            int32_t l;
            bool ell = ell_at[i] >= 0 && d >= ell_at[i] && d < ell_at[i] + er;
            if (ell) l = ell_rank - er + (d - ell_at[i]);
            else l = letter_label[letter_slot(letters[i][j++])];
            plan->label_of[i][d] = (int8_t)l;
            int64_t sz = inputs[i].dims.d[d], *have = &plan->size[l];
            if (*have == -2 || *have == -1 || (ell && *have == 1)) {
                if (!(ell && sz == 1 && *have >= 0)) *have = sz;
            } else if (sz >= 0 && sz != *have && !(ell && sz == 1)) {
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "equation '%s': input %d dim %d is %lld, expected %lld", eq, i, d,
                                         (long long)sz, (long long)*have);
            }
        }
    }
    if (explicit_out) {
        int32_t rank = nb_out + (out_ell >= 0 ? ell_rank : 0);
        if (rank > KILN_MAX_DIMS) return kiln__layer_error(layer, KILN_UNSUPPORTED, "output rank exceeds %d", KILN_MAX_DIMS);
        if (out_ell < 0 && ell_rank > 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "equation '%s': the inputs have an ellipsis but the output has none", eq);
        bool used[52] = {false};
        for (int32_t d = 0, j = 0; d < rank; d++) {
            if (out_ell >= 0 && d >= out_ell && d < out_ell + ell_rank) {
                plan->out_labels[d] = (int8_t)(d - out_ell);
                continue;
            }
            int32_t s = letter_slot(out_letters[j++]);
            if (letter_label[s] < 0 || used[s])
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "equation '%s': output label '%c' is repeated or not in any input", eq,
                                         out_letters[j - 1]);
            used[s] = true;
            plan->out_labels[d] = (int8_t)letter_label[s];
        }
        plan->out_rank = rank;
    } else {
        int32_t rank = 0;
        for (int32_t l = 0; l < ell_rank; l++) plan->out_labels[rank++] = (int8_t)l;
        for (int32_t s = 0; s < 52; s++)
            if (count[s] == 1) {
                if (rank >= KILN_MAX_DIMS)
                    return kiln__layer_error(layer, KILN_UNSUPPORTED, "output rank exceeds %d", KILN_MAX_DIMS);
                plan->out_labels[rank++] = (int8_t)letter_label[s];
            }
        plan->out_rank = rank;
    }
    return KILN_OK;
}

static kiln_status einsum_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    kiln_dtype dt = inputs[0].dtype;
    if (!kiln__dtype_is_float(dt) && !kiln__dtype_is_integer(dt))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(dt));
    kiln__einsum_plan plan;
    KILN__TRY(kiln__einsum_resolve(layer, inputs, &plan));
    kiln_dims out = {.nb_dims = plan.out_rank};
    for (int32_t d = 0; d < plan.out_rank; d++) out.d[d] = plan.size[plan.out_labels[d]];
    outputs[0].dtype = dt;
    outputs[0].dims = out;
    return KILN_OK;
}

static void einsum_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__einsum_params *p = (const kiln__einsum_params *)layer->p.bytes;
    kiln__buf_printf(out, "equation=%.*s", (int)sizeof p->equation, p->equation);
}

const kiln__layer_ops kiln__einsum_ops = {"Einsum", einsum_infer, einsum_describe};
