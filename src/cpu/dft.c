/* DFT and STFT kernels: direct O(n^2) sums in double over a table of n twiddle factors (the
 * lengths ONNX models use are short; a length that is not a power of two costs the same). */
#include "cpu.h"

#include "../network/vision_layers.h"

#include <math.h>

typedef struct dft_job {
    const kiln__dft_params *p;
    kiln__dft_plan plan;
    kiln_dtype dtype;
    const void *x, *window;
    void *y;
    const double *cos_t, *sin_t; /* cos/sin(2 pi m / n), m < n */
    int64_t inner, in_c, out_c;  /* elements between successive samples; complex dims in and out */
    int64_t signal_len;          /* STFT: samples per batch row */
} dft_job;

/* Sample t of the line starting at element `base` (stride inner * in_c), as re/im. */
static void load(const dft_job *j, int64_t base, int64_t t, double *re, double *im) {
    int64_t e = base + t * j->inner * j->in_c;
    *re = kiln__load_f64(j->x, j->dtype, e);
    *im = j->in_c == 2 ? kiln__load_f64(j->x, j->dtype, e + 1) : 0;
}

/* Output bin k of one line: forward, inverse, or the real inverse of a one-sided spectrum. */
static void bin(const dft_job *j, int64_t in_base, int64_t k, double *ore, double *oim) {
    const kiln__dft_params *p = j->p;
    int64_t n = j->plan.n, len = KILN__MIN(j->plan.in_len, n);
    double re = 0, im = 0;
    if (p->inverse && p->onesided) {
        /* numpy irfft: bins 1..n/2 count twice (their mirror images), the Nyquist bin once,
         * imaginary parts of bin 0 and Nyquist ignored. */
        int64_t half = n / 2, avail = KILN__MIN(j->plan.in_len, half + 1);
        for (int64_t f = 0; f < avail; f++) {
            double xr, xi;
            load(j, in_base, f, &xr, &xi);
            int64_t m = (f * k) % n;
            double c = f == 0 || (n % 2 == 0 && f == half) ? 1 : 2;
            re += c * (xr * j->cos_t[m] - (f == 0 ? 0 : xi * j->sin_t[m]));
        }
        *ore = re / (double)n;
        *oim = 0;
        return;
    }
    double sign = p->inverse ? 1 : -1;
    for (int64_t t = 0; t < len; t++) {
        double xr, xi;
        load(j, in_base, t, &xr, &xi);
        if (j->window) {
            double w = kiln__load_f64(j->window, j->dtype, t);
            xr *= w;
            xi *= w;
        }
        int64_t m = (t * k) % n;
        double c = j->cos_t[m], s = sign * j->sin_t[m];
        re += xr * c - xi * s;
        im += xr * s + xi * c;
    }
    if (p->inverse) {
        re /= (double)n;
        im /= (double)n;
    }
    *ore = re;
    *oim = im;
}

static void dft_range(void *arg, int64_t begin, int64_t end) {
    const dft_job *j = arg;
    int64_t out_len = j->plan.out_len, inner = j->inner;
    for (int64_t r = begin; r < end; r++) {
        /* r enumerates (outer, k, inner) in output order. */
        int64_t i = r % inner, k = (r / inner) % out_len, o = r / inner / out_len;
        int64_t in_base;
        if (j->p->mode == KILN__STFT) {
            /* outer = (batch, frame): frame f starts f * frame_step samples into the signal. */
            int64_t b = o / j->plan.frames, f = o % j->plan.frames;
            in_base = (b * j->signal_len + f * j->plan.frame_step) * j->in_c;
        } else {
            in_base = (o * j->plan.in_len * inner + i) * j->in_c;
        }
        double re, im;
        bin(j, in_base, k, &re, &im);
        kiln__store_f64(j->y, j->dtype, r * j->out_c, re);
        if (j->out_c == 2) kiln__store_f64(j->y, j->dtype, r * j->out_c + 1, im);
    }
}

kiln_status kiln__cpu_dft(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                          kiln__cpu_ctx *ctx) {
    dft_job j = {(const kiln__dft_params *)layer->p.bytes, {0}, inputs[0].dtype, inputs[0].data, NULL,
                 outputs[0].data, NULL, NULL, 1, 1, 1, 0};
    KILN__TRY(kiln__dft_resolve(layer, inputs, &j.plan));
    if (!j.plan.known) return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "the transform geometry is unknown");
    const kiln_dims *xd = &inputs[0].dims;
    int32_t r = xd->nb_dims;
    j.in_c = xd->d[r - 1];
    j.out_c = j.plan.complex_out ? 2 : 1;
    int64_t outer = 1;
    if (j.p->mode == KILN__STFT) {
        outer = xd->d[0] * j.plan.frames;
        j.signal_len = xd->d[1];
        if (kiln__has_input(layer, inputs, 2)) j.window = inputs[2].data;
    } else {
        for (int32_t d = 0; d < j.plan.axis; d++) outer *= xd->d[d];
        for (int32_t d = j.plan.axis + 1; d < r - 1; d++) j.inner *= xd->d[d];
    }
    int64_t total = outer * j.plan.out_len * j.inner;
    if (total == 0) return KILN_OK;
    int64_t n = j.plan.n;
    double *table = kiln__malloc(ctx->alloc, 2 * (size_t)n * sizeof *table);
    if (!table) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for %lld twiddle factors", (long long)n);
    for (int64_t m = 0; m < n; m++) {
        double a = 2 * 3.14159265358979323846 * (double)m / (double)n;
        table[m] = cos(a);
        table[n + m] = sin(a);
    }
    j.cos_t = table;
    j.sin_t = table + n;
    kiln__parallel_for(ctx->pool, total, 1 + 16384 / (n + 1), dft_range, &j);
    kiln__free(ctx->alloc, table);
    return KILN_OK;
}
