/* GridSample and AffineGrid kernels, following ONNX's reference (GridSample-22): coordinates
 * are denormalized per dim, moved inside by the padding mode, then sampled with 1, 2 or 4 taps
 * per dim; taps outside the input read 0 (zeros), the edge (border) or their mirror image
 * (reflection). Computed in double. */
#include "cpu.h"

#include "../network/vision_layers.h"

#include <math.h>

#define GS_MAX_SPATIAL (KILN_MAX_DIMS - 2)

typedef struct gs_job {
    const kiln__gridsample_params *p;
    kiln_dtype dtype;
    const void *x, *grid;
    void *y;
    int32_t k;                      /* spatial dims */
    int64_t c, in_dims[GS_MAX_SPATIAL], in_stride[GS_MAX_SPATIAL];
    int64_t in_volume, out_volume;  /* per (n, c) */
} gs_job;

/* Mirrors x into [lo, hi] as the reference's _gs_reflect does. */
static double reflect(double x, double lo, double hi) {
    double range = hi - lo;
    if (range <= 0) return lo;
    if (x < lo) {
        double dx = lo - x;
        double n = floor(dx / range), r = dx - n * range;
        return fmod(n, 2) == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi;
        double n = floor(dx / range), r = dx - n * range;
        return fmod(n, 2) == 0 ? hi - r : lo + r;
    }
    return x;
}

/* Index of tap i along a dim of size d, or -1 when it reads zero. */
static int64_t tap_index(const gs_job *j, int64_t i, int64_t d, double lo, double hi) {
    switch (j->p->padding) {
    case KILN__GS_BORDER: return i < 0 ? 0 : i >= d ? d - 1 : i;
    case KILN__GS_REFLECTION: {
        int64_t r = (int64_t)reflect((double)i, lo, hi);
        return r < 0 ? 0 : r >= d ? d - 1 : r;
    }
    default: return i >= 0 && i < d ? i : -1;
    }
}

static void cubic_coeffs(double t, double *w) {
    const double a = -0.75;
    double x = t + 1;
    w[0] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    w[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
    x = 1 - t;
    w[2] = ((a + 2) * x - (a + 3)) * x * x + 1;
    x = 2 - t;
    w[3] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

static void gs_range(void *arg, int64_t begin, int64_t end) {
    const gs_job *j = arg;
    const kiln__gridsample_params *p = j->p;
    int32_t k = j->k, taps = p->mode == KILN__GS_NEAREST ? 1 : p->mode == KILN__GS_LINEAR ? 2 : 4;
    int64_t idx[GS_MAX_SPATIAL][4];
    double w[GS_MAX_SPATIAL][4];
    for (int64_t r = begin; r < end; r++) {
        /* Row r is one (n, output point). */
        int64_t n = r / j->out_volume, o = r % j->out_volume;
        for (int32_t d = 0; d < k; d++) {
            double g = kiln__load_f64(j->grid, j->dtype, r * k + (k - 1 - d)), size = (double)j->in_dims[d];
            double x = p->align_corners ? (g + 1) / 2 * (size - 1) : ((g + 1) * size - 1) / 2;
            double lo = p->align_corners ? 0 : -0.5, hi = p->align_corners ? size - 1 : size - 0.5;
            if (p->mode == KILN__GS_NEAREST) x = nearbyint(x);
            if (x < lo || x > hi) {
                if (p->padding == KILN__GS_BORDER) x = x < 0 ? 0 : x > size - 1 ? size - 1 : x;
                else if (p->padding == KILN__GS_REFLECTION) x = reflect(x, lo, hi);
            }
            if (p->mode == KILN__GS_NEAREST) {
                idx[d][0] = tap_index(j, (int64_t)x, j->in_dims[d], lo, hi);
                w[d][0] = 1;
                continue;
            }
            double f = floor(x), t = x - f;
            int64_t i0 = (int64_t)f - (taps == 4);
            if (taps == 2) {
                w[d][0] = 1 - t;
                w[d][1] = t;
            } else {
                cubic_coeffs(t, w[d]);
            }
            for (int32_t q = 0; q < taps; q++) idx[d][q] = tap_index(j, i0 + q, j->in_dims[d], lo, hi);
        }
        int64_t combos = 1;
        for (int32_t d = 0; d < k; d++) combos *= taps;
        for (int64_t c = 0; c < j->c; c++) {
            int64_t base = (n * j->c + c) * j->in_volume;
            double acc = 0;
            for (int64_t m = 0; m < combos; m++) {
                int64_t off = 0, rest = m;
                double wt = 1;
                for (int32_t d = k - 1; d >= 0; d--) {
                    int32_t q = (int32_t)(rest % taps);
                    rest /= taps;
                    if (idx[d][q] < 0) {
                        wt = 0;
                        break;
                    }
                    off += idx[d][q] * j->in_stride[d];
                    wt *= w[d][q];
                }
                if (wt != 0) acc += wt * kiln__load_f64(j->x, j->dtype, base + off);
            }
            kiln__store_f64(j->y, j->dtype, (n * j->c + c) * j->out_volume + o, acc);
        }
    }
}

kiln_status kiln__cpu_gridsample(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                 kiln__cpu_ctx *ctx) {
    const kiln_dims *xd = &inputs[0].dims, *yd = &outputs[0].dims;
    gs_job j = {(const kiln__gridsample_params *)layer->p.bytes, inputs[0].dtype, inputs[0].data, inputs[1].data,
                outputs[0].data, xd->nb_dims - 2, xd->d[1], {0}, {0}, 1, 1};
    if (j.k > GS_MAX_SPATIAL)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "%d spatial dims; at most %d", j.k, GS_MAX_SPATIAL);
    for (int32_t d = j.k - 1; d >= 0; d--) {
        j.in_dims[d] = xd->d[2 + d];
        j.in_stride[d] = j.in_volume;
        j.in_volume *= xd->d[2 + d];
        j.out_volume *= yd->d[2 + d];
    }
    int64_t rows = yd->d[0] * j.out_volume;
    if (rows == 0 || j.c == 0) return KILN_OK;
    kiln__parallel_for(ctx->pool, rows, 1 + 1024 / (j.c + 1), gs_range, &j);
    return KILN_OK;
}

/* Base-grid coordinate i of a dim of the given size, as the reference's construct_original_grid. */
static double base_coord(int64_t i, int64_t size, bool align_corners) {
    if (align_corners) return size > 1 ? -1 + 2.0 * (double)i / (double)(size - 1) : -1;
    return -1 + (2.0 * (double)i + 1) / (double)size;
}

kiln_status kiln__cpu_affinegrid(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                 kiln__cpu_ctx *ctx) {
    (void)ctx;
    const kiln__affinegrid_params *p = (const kiln__affinegrid_params *)layer->p.bytes;
    const kiln_dims *yd = &outputs[0].dims;
    int32_t k = yd->nb_dims - 2;
    kiln_dtype dt = inputs[0].dtype;
    int64_t points = 1;
    for (int32_t d = 0; d < k; d++) points *= yd->d[1 + d];
    for (int64_t n = 0; n < yd->d[0]; n++)
        for (int64_t pt = 0; pt < points; pt++) {
            /* Homogeneous base point: x along the last dim first, then 1. */
            double base[4];
            int64_t rest = pt;
            for (int32_t d = k - 1; d >= 0; d--) {
                int64_t size = yd->d[1 + d];
                base[k - 1 - d] = base_coord(rest % size, size, p->align_corners != 0);
                rest /= size;
            }
            base[k] = 1;
            for (int32_t i = 0; i < k; i++) {
                double acc = 0;
                for (int32_t m = 0; m <= k; m++)
                    acc += kiln__load_f64(inputs[0].data, dt, (n * k + i) * (k + 1) + m) * base[m];
                kiln__store_f64(outputs[0].data, dt, (n * points + pt) * k + i, acc);
            }
        }
    return KILN_OK;
}
