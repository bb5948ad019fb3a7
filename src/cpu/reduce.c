/* Reduce: each output element walks its reduced elements (the innermost reduced dim as a
 * plain loop). Floats accumulate in double; integers in 64-bit two's complement, so sums and
 * products wrap like numpy's. */
#include "cpu.h"
#include "dtype_access.h"
#include "../network/layer_resolve.h"

#include <math.h>

typedef struct reduce_job {
    const void *src;
    void *dst;
    kiln_dtype in_type, out_type;
    int32_t op, select_last;
    bool is_float;
    /* kept dims (output order) and reduced dims, with input strides; reduced dims are merged
     * where adjacent and the last one is walked by the inner loop */
    int32_t nk, nr;
    int64_t ksize[KILN_MAX_DIMS], kstride[KILN_MAX_DIMS];
    int64_t rsize[KILN_MAX_DIMS], rstride[KILN_MAX_DIMS];
    int64_t nred, rlast, rlast_stride;
} reduce_job;

static inline double load_f(const reduce_job *j, int64_t off) {
    switch (j->in_type) {
    case KILN_FLOAT32: return ((const float *)j->src)[off];
    case KILN_FLOAT64: return ((const double *)j->src)[off];
    default: return kiln__load_f64(j->src, j->in_type, off);
    }
}

static inline int64_t load_i(const reduce_job *j, int64_t off) {
    switch (j->in_type) {
    case KILN_INT32: return ((const int32_t *)j->src)[off];
    case KILN_INT64: return ((const int64_t *)j->src)[off];
    default: return kiln__load_i64(j->src, j->in_type, off);
    }
}

/* Input offset of the start of the q-th run of the innermost reduced dim. */
static inline int64_t run_offset(const reduce_job *j, int64_t q) {
    int64_t off = 0;
    for (int32_t k = j->nr - 2; k >= 0; k--) {
        off += (q % j->rsize[k]) * j->rstride[k];
        q /= j->rsize[k];
    }
    return off;
}

/* Runs BODY with `off` set to each reduced element's input offset and `pos` to its index in
 * the reduction order. */
#define FOR_EACH_REDUCED(j, base, BODY)                                                                        \
    do {                                                                                                       \
        int64_t pos = 0;                                                                                       \
        for (int64_t q_ = 0; q_ < (j)->nred / KILN__MAX((j)->rlast, 1); q_++) {                                \
            int64_t o_ = (base) + run_offset((j), q_);                                                         \
            for (int64_t i_ = 0; i_ < (j)->rlast; i_++, pos++) {                                               \
                int64_t off = o_ + i_ * (j)->rlast_stride;                                                     \
                BODY                                                                                           \
            }                                                                                                  \
        }                                                                                                      \
        (void)pos;                                                                                             \
    } while (0)

static double reduce_float(const reduce_job *j, int64_t base) {
    double acc;
    switch (j->op) {
    case KILN_REDUCE_SUM:
    case KILN_REDUCE_MEAN:
    case KILN_REDUCE_LOG_SUM:
        acc = 0;
        FOR_EACH_REDUCED(j, base, acc += load_f(j, off););
        if (j->op == KILN_REDUCE_MEAN) return acc / (double)j->nred;
        return j->op == KILN_REDUCE_LOG_SUM ? log(acc) : acc;
    case KILN_REDUCE_L1:
        acc = 0;
        FOR_EACH_REDUCED(j, base, acc += fabs(load_f(j, off)););
        return acc;
    case KILN_REDUCE_L2:
    case KILN_REDUCE_SUM_SQUARE:
        acc = 0;
        FOR_EACH_REDUCED(j, base, {
            double v = load_f(j, off);
            acc += v * v;
        });
        return j->op == KILN_REDUCE_L2 ? sqrt(acc) : acc;
    case KILN_REDUCE_PROD:
        acc = 1;
        FOR_EACH_REDUCED(j, base, acc *= load_f(j, off););
        return acc;
    case KILN_REDUCE_MAX:
    case KILN_REDUCE_MIN: {
        /* NaN propagates, as numpy's maximum.reduce does. */
        bool is_max = j->op == KILN_REDUCE_MAX;
        acc = is_max ? -INFINITY : INFINITY;
        FOR_EACH_REDUCED(j, base, {
            double v = load_f(j, off);
            if (!isnan(acc) && (isnan(v) || (is_max ? v > acc : v < acc))) acc = v;
        });
        return acc;
    }
    case KILN_REDUCE_LOG_SUM_EXP: {
        double m = -INFINITY;
        FOR_EACH_REDUCED(j, base, m = fmax(m, load_f(j, off)););
        if (isinf(m)) return m; /* empty, all -inf, or a +inf present */
        acc = 0;
        FOR_EACH_REDUCED(j, base, acc += exp(load_f(j, off) - m););
        return m + log(acc);
    }
    default: break;
    }
    return NAN;
}

static int64_t int_lowest(kiln_dtype t) {
    switch (t) {
    case KILN_INT8: return INT8_MIN;
    case KILN_INT32: return INT32_MIN;
    case KILN_INT64: return INT64_MIN;
    default: return 0; /* uint8, bool */
    }
}

static int64_t int_highest(kiln_dtype t) {
    switch (t) {
    case KILN_INT8: return INT8_MAX;
    case KILN_UINT8: return UINT8_MAX;
    case KILN_INT32: return INT32_MAX;
    case KILN_BOOL: return 1;
    default: return INT64_MAX;
    }
}

static int64_t reduce_int(const reduce_job *j, int64_t base) {
    uint64_t acc;
    switch (j->op) {
    case KILN_REDUCE_SUM:
    case KILN_REDUCE_MEAN:
        acc = 0;
        FOR_EACH_REDUCED(j, base, acc += (uint64_t)load_i(j, off););
        if (j->op == KILN_REDUCE_MEAN) return j->nred ? (int64_t)acc / j->nred : 0;
        return (int64_t)acc;
    case KILN_REDUCE_L1:
        acc = 0;
        FOR_EACH_REDUCED(j, base, {
            int64_t v = load_i(j, off);
            acc += v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        });
        return (int64_t)acc;
    case KILN_REDUCE_SUM_SQUARE:
        acc = 0;
        FOR_EACH_REDUCED(j, base, {
            uint64_t v = (uint64_t)load_i(j, off);
            acc += v * v;
        });
        return (int64_t)acc;
    case KILN_REDUCE_PROD:
        acc = 1;
        FOR_EACH_REDUCED(j, base, acc *= (uint64_t)load_i(j, off););
        return (int64_t)acc;
    case KILN_REDUCE_MAX: {
        int64_t m = int_lowest(j->in_type);
        FOR_EACH_REDUCED(j, base, {
            int64_t v = load_i(j, off);
            if (v > m) m = v;
        });
        return m;
    }
    case KILN_REDUCE_MIN: {
        int64_t m = int_highest(j->in_type);
        FOR_EACH_REDUCED(j, base, {
            int64_t v = load_i(j, off);
            if (v < m) m = v;
        });
        return m;
    }
    default: /* l2, log_sum, log_sum_exp of integers: computed in double, truncated */
        return kiln__f64_to_i64_wrap(reduce_float(j, base));
    }
}

/* ArgMax/ArgMin over the single reduced dim: first occurrence, or last with select_last. NaN
 * counts as the largest and the smallest value, as numpy's argmax/argmin do. */
static int64_t reduce_arg(const reduce_job *j, int64_t base) {
    bool is_max = j->op == KILN_REDUCE_ARGMAX, last = j->select_last != 0;
    int64_t best = -1;
    if (j->is_float) {
        double b = 0;
        FOR_EACH_REDUCED(j, base, {
            double v = load_f(j, off);
            bool better = best < 0 || (!isnan(b) && (isnan(v) || (is_max ? v > b : v < b))) ||
                          (last && (v == b || (isnan(v) && isnan(b))));
            if (better) {
                b = v;
                best = pos;
            }
        });
    } else {
        int64_t b = 0;
        FOR_EACH_REDUCED(j, base, {
            int64_t v = load_i(j, off);
            if (best < 0 || (is_max ? v > b : v < b) || (last && v == b)) {
                b = v;
                best = pos;
            }
        });
    }
    return best;
}

static void reduce_range(void *arg, int64_t begin, int64_t end) {
    const reduce_job *j = arg;
    bool arg_op = j->op == KILN_REDUCE_ARGMAX || j->op == KILN_REDUCE_ARGMIN;
    for (int64_t o = begin; o < end; o++) {
        int64_t base = 0, rest = o;
        for (int32_t k = j->nk - 1; k >= 0; k--) {
            base += (rest % j->ksize[k]) * j->kstride[k];
            rest /= j->ksize[k];
        }
        if (arg_op) ((int64_t *)j->dst)[o] = reduce_arg(j, base);
        else if (j->out_type == KILN_FLOAT32) ((float *)j->dst)[o] = (float)reduce_float(j, base);
        else if (j->is_float) kiln__store_f64(j->dst, j->out_type, o, reduce_float(j, base));
        else kiln__store_i64(j->dst, j->out_type, o, reduce_int(j, base));
    }
}

kiln_status kiln__cpu_reduce(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    const kiln__value *x = &inputs[0];
    kiln__reduce_axes ax;
    KILN__TRY(kiln__reduce_resolve(layer, inputs, &ax));
    if (ax.nb_unknown >= 0) return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "axes unknown at run time");
    reduce_job j = {.src = x->data,
                    .dst = outputs[0].data,
                    .in_type = x->dtype,
                    .out_type = outputs[0].dtype,
                    .op = layer->p.reduce.op,
                    .select_last = layer->p.reduce.select_last,
                    .is_float = kiln__dtype_is_float(x->dtype),
                    .nred = 1};
    int64_t stride = 1, strides[KILN_MAX_DIMS];
    for (int32_t i = x->dims.nb_dims - 1; i >= 0; i--) {
        strides[i] = stride;
        stride *= x->dims.d[i];
    }
    for (int32_t i = 0; i < x->dims.nb_dims; i++) {
        int64_t size = x->dims.d[i];
        if (!(ax.mask & (1u << i))) {
            j.ksize[j.nk] = size;
            j.kstride[j.nk++] = strides[i];
            continue;
        }
        j.nred *= size;
        if (j.nr > 0 && j.rstride[j.nr - 1] == strides[i] * size) { /* adjacent reduced dims: one */
            j.rsize[j.nr - 1] *= size;
            j.rstride[j.nr - 1] = strides[i];
            continue;
        }
        j.rsize[j.nr] = size;
        j.rstride[j.nr++] = strides[i];
    }
    j.rlast = j.nr ? j.rsize[j.nr - 1] : 1;
    j.rlast_stride = j.nr ? j.rstride[j.nr - 1] : 0;
    int64_t nout = kiln__dims_volume(&outputs[0].dims);
    if ((j.op == KILN_REDUCE_ARGMAX || j.op == KILN_REDUCE_ARGMIN) && j.nred == 0 && nout > 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "arg reduction over an empty dim");
    kiln__parallel_for(ctx->pool, nout, KILN__MAX(1, 32768 / KILN__MAX(j.nred, 1)), reduce_range, &j);
    return KILN_OK;
}
