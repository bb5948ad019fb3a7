/* RoiAlign kernel, as ONNX's reference (a port of ONNX Runtime's): each output bin averages
 * (or takes the max of) a grid of bilinear samples; samples more than one pixel outside the
 * input count as 0. The max mode takes the largest weighted corner, as the reference does. */
#include "cpu.h"

#include "../network/vision_layers.h"

#include <math.h>

typedef struct roi_job {
    const kiln__roialign_params *p;
    const kiln__value *x, *rois, *batch;
    void *y;
    int64_t c, h, w;
} roi_job;

/* Bilinear sample of plane at (y, x); 0 for points outside [-1, size]. In max mode *mx gets
 * the largest of the four weighted corners. */
static double sample(const roi_job *j, int64_t plane, double y, double x, double *mx) {
    *mx = 0;
    if (y < -1.0 || y > (double)j->h || x < -1.0 || x > (double)j->w) return 0;
    y = y <= 0 ? 0 : y;
    x = x <= 0 ? 0 : x;
    int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1, x1;
    if (y0 >= j->h - 1) {
        y0 = y1 = j->h - 1;
        y = (double)y0;
    } else {
        y1 = y0 + 1;
    }
    if (x0 >= j->w - 1) {
        x0 = x1 = j->w - 1;
        x = (double)x0;
    } else {
        x1 = x0 + 1;
    }
    double ly = y - (double)y0, lx = x - (double)x0, hy = 1 - ly, hx = 1 - lx;
    kiln_dtype dt = j->x->dtype;
    double v[4] = {hy * hx * kiln__load_f64(j->x->data, dt, plane + y0 * j->w + x0),
                   hy * lx * kiln__load_f64(j->x->data, dt, plane + y0 * j->w + x1),
                   ly * hx * kiln__load_f64(j->x->data, dt, plane + y1 * j->w + x0),
                   ly * lx * kiln__load_f64(j->x->data, dt, plane + y1 * j->w + x1)};
    *mx = KILN__MAX(KILN__MAX(v[0], v[1]), KILN__MAX(v[2], v[3]));
    return v[0] + v[1] + v[2] + v[3];
}

static void roi_range(void *arg, int64_t begin, int64_t end) {
    const roi_job *j = arg;
    const kiln__roialign_params *p = j->p;
    double off = p->half_pixel ? 0.5 : 0, scale = p->spatial_scale;
    for (int64_t r = begin; r < end; r++) {
        int64_t b = kiln__value_int(j->batch, r);
        double roi[4];
        for (int32_t k = 0; k < 4; k++) roi[k] = kiln__load_f64(j->rois->data, j->rois->dtype, r * 4 + k) * scale - off;
        double rw = roi[2] - roi[0], rh = roi[3] - roi[1];
        if (!p->half_pixel) {
            rw = KILN__MAX(rw, 1.0);
            rh = KILN__MAX(rh, 1.0);
        }
        double bh = rh / (double)p->out_h, bw = rw / (double)p->out_w;
        int64_t gh = p->sampling_ratio > 0 ? p->sampling_ratio : (int64_t)ceil(rh / (double)p->out_h);
        int64_t gw = p->sampling_ratio > 0 ? p->sampling_ratio : (int64_t)ceil(rw / (double)p->out_w);
        double count = (double)KILN__MAX(gh * gw, 1);
        for (int64_t c = 0; c < j->c; c++) {
            int64_t plane = (b * j->c + c) * j->h * j->w;
            for (int64_t ph = 0; ph < p->out_h; ph++)
                for (int64_t pw = 0; pw < p->out_w; pw++) {
                    double acc = 0;
                    bool first = true;
                    for (int64_t iy = 0; iy < gh; iy++) {
                        double y = roi[1] + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
                        for (int64_t ix = 0; ix < gw; ix++) {
                            double x = roi[0] + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw, mx;
                            double s = sample(j, plane, y, x, &mx);
                            if (p->mode == KILN__ROI_AVG) acc += s;
                            else if (first || mx > acc) acc = mx;
                            first = false;
                        }
                    }
                    if (p->mode == KILN__ROI_AVG) acc /= count;
                    kiln__store_f64(j->y, j->x->dtype, ((r * j->c + c) * p->out_h + ph) * p->out_w + pw, acc);
                }
        }
    }
}

kiln_status kiln__cpu_roialign(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                               kiln__cpu_ctx *ctx) {
    const kiln_dims *xd = &inputs[0].dims;
    roi_job j = {(const kiln__roialign_params *)layer->p.bytes, &inputs[0], &inputs[1], &inputs[2], outputs[0].data,
                 xd->d[1], xd->d[2], xd->d[3]};
    int64_t rois = outputs[0].dims.d[0], volume = kiln__dims_volume(&outputs[0].dims);
    for (int64_t r = 0; r < rois; r++) {
        int64_t b = kiln__value_int(&inputs[2], r);
        if (b < 0 || b >= xd->d[0])
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "batch index %lld of RoI %lld is out of range [0, %lld)",
                                     (long long)b, (long long)r, (long long)xd->d[0]);
    }
    if (volume == 0) return KILN_OK;
    if (j.h == 0 || j.w == 0) {
        /* Every sample falls outside an empty image. */
        for (int64_t i = 0; i < volume; i++) kiln__store_f64(j.y, inputs[0].dtype, i, 0);
        return KILN_OK;
    }
    kiln__parallel_for(ctx->pool, rois, 1, roi_range, &j);
    return KILN_OK;
}
