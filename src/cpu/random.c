/* Random kernel: each element is a pure function of (seed, index), so the work splits over
 * threads without changing the values. */
#include "cpu.h"
#include "../network/misc_layers.h"

#include <math.h>

typedef struct random_job {
    const kiln__random_params *p;
    const kiln__value *in;
    kiln__value *out;
    int64_t classes;
} random_job;

static double normal_sample(uint64_t seed, int64_t i) {
    double u1 = 1.0 - kiln__rand_u01(seed, 2 * (uint64_t)i); /* in (0, 1]: log is finite */
    double u2 = kiln__rand_u01(seed, 2 * (uint64_t)i + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void random_range(void *arg, int64_t begin, int64_t end) {
    const random_job *j = arg;
    const kiln__random_params *p = j->p;
    kiln_dtype dt = j->out->dtype;
    for (int64_t i = begin; i < end; i++) {
        switch (p->dist) {
        case KILN__RAND_UNIFORM:
            kiln__store_f64(j->out->data, dt, i, p->a + (p->b - p->a) * kiln__rand_u01(p->seed, (uint64_t)i));
            break;
        case KILN__RAND_NORMAL: kiln__store_f64(j->out->data, dt, i, p->a + p->b * normal_sample(p->seed, i)); break;
        case KILN__RAND_BERNOULLI: {
            double prob = kiln__load_f64(j->in->data, j->in->dtype, i);
            kiln__store_f64(j->out->data, dt, i, kiln__rand_u01(p->seed, (uint64_t)i) < prob ? 1.0 : 0.0);
            break;
        }
        default: break;
        }
    }
}

/* Rows of a multinomial draw: softmax of the row (shifted by its max), then the inverse CDF. */
static void multinomial_range(void *arg, int64_t begin, int64_t end) {
    const random_job *j = arg;
    const kiln__random_params *p = j->p;
    int64_t c = j->classes;
    for (int64_t r = begin; r < end; r++) {
        double mx = -INFINITY, total = 0;
        for (int64_t k = 0; k < c; k++) {
            double v = kiln__load_f64(j->in->data, j->in->dtype, r * c + k);
            if (v > mx) mx = v;
        }
        for (int64_t k = 0; k < c; k++) total += exp(kiln__load_f64(j->in->data, j->in->dtype, r * c + k) - mx);
        for (int64_t s = 0; s < p->sample_size; s++) {
            double target = kiln__rand_u01(p->seed, (uint64_t)(r * p->sample_size + s)) * total, acc = 0;
            int64_t pick = -1;
            for (int64_t k = 0; k < c; k++) {
                double w = exp(kiln__load_f64(j->in->data, j->in->dtype, r * c + k) - mx);
                if (w > 0) pick = k; /* rounding can leave target past the sum: take the last possible class */
                acc += w;
                if (target < acc) break;
            }
            kiln__store_i64(j->out->data, j->out->dtype, r * p->sample_size + s, pick < 0 ? 0 : pick);
        }
    }
}

kiln_status kiln__cpu_random(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    const kiln__random_params *p = (const kiln__random_params *)layer->p.bytes;
    random_job job = {p, &inputs[0], &outputs[0], 0};
    if (p->dist == KILN__RAND_MULTINOMIAL) {
        job.classes = inputs[0].dims.d[1];
        if (job.classes < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has no classes");
        kiln__parallel_for(ctx->pool, inputs[0].dims.d[0], 1, multinomial_range, &job);
        return KILN_OK;
    }
    kiln__parallel_for(ctx->pool, kiln__dims_volume(&outputs[0].dims), 4096, random_range, &job);
    return KILN_OK;
}
