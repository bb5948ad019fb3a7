/* What the CPU convolution and deconvolution kernels share: their geometry (spatial dims padded
 * to 3), the float64 activation, and running float16/bfloat16 through float32. */
#ifndef KILN_CPU_CONV_COMMON_H
#define KILN_CPU_CONV_COMMON_H

#include "cpu.h"

/* Below this many flops per GEMM, running several (image, group) GEMMs at once, one per
 * thread, beats spreading each over the threads. */
#define KILN__SMALL_GEMM_FLOPS 8e6

/* Geometry with spatial dims padded to 3 (leading dims of size 1). */
typedef struct kiln__conv_geom {
    int64_t n, c, m, groups, cg, mg;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
    int64_t in_plane, out_plane, kvol;
} kiln__conv_geom;

/* Fills g from the inferred shapes of a Convolution or Deconvolution layer; the leading pads
 * follow the layer's auto_pad (and, for deconvolutions, its output_shape). */
void kiln__conv_geom_init(const kiln_layer *layer, const kiln__value *in, const kiln__value *out,
                          kiln__conv_geom *g);

/* Indices [lo, hi) of [0, count) whose mapped index i*s + base lies in [0, n): the positions
 * along the last dim that need no bounds check. */
static inline void kiln__conv_valid_range(int64_t base, int64_t s, int64_t n, int64_t count, int64_t *lo,
                                          int64_t *hi) {
    int64_t l = base >= 0 ? 0 : (-base + s - 1) / s;
    int64_t h = n - base <= 0 ? 0 : (n - base + s - 1) / s;
    *lo = KILN__MIN(l, count);
    *hi = KILN__MAX(*lo, KILN__MIN(h, count));
}

/* The fused activation in float64 (the ones a float32 evaluation would round differently). */
double kiln__conv_act_f64(const kiln__act *a, double x);

/* The float32 operands of a float32, float16 or bfloat16 (de)convolution: the tensors' own data
 * for float32, converted copies for the half types. bias and res are NULL when absent. */
typedef struct kiln__conv_f32 {
    const float *x, *w, *bias, *res;
    float *y;
    float *owned[5]; /* the copies to free (all NULL for float32) */
    kiln_dtype dtype; /* in[0]'s */
    int64_t ny;       /* output values */
} kiln__conv_f32;

/* Optional input i (2: bias, 3: residual) of layer, or NULL. */
const kiln__value *kiln__conv_optional(const kiln_layer *layer, const kiln__value *in, int32_t i);

/* Sets f up for in[0]'s dtype; an error names the layer for other dtypes. */
kiln_status kiln__conv_f32_begin(const kiln_layer *layer, const kiln__value *in, const kiln__value *out,
                                 const kiln__conv_geom *g, kiln__cpu_ctx *ctx, kiln__conv_f32 *f);

/* Finishes a run that returned st: for half types, stores y into out[0] when st is KILN_OK and
 * frees the copies. Returns st. */
kiln_status kiln__conv_f32_end(kiln__cpu_ctx *ctx, kiln__value *out, kiln_status st, kiln__conv_f32 *f);

/* Adds bias and residual (each may be NULL) and applies act to output maps [m0, m1) of image n of
 * y (NCHW float32, g's output shape). */
void kiln__conv_epilogue(const kiln__conv_geom *g, float *y, const float *bias, const float *res,
                         const kiln__act *act, int64_t n, int64_t m0, int64_t m1);

/* A depthwise convolution (g->groups == g->c == g->m), float32: y = act(conv(x, w) + bias + res);
 * bias and res may be NULL. x and y are NCHW, or NCHW16C when x_blocked / y_blocked (only where
 * kiln__conv_depthwise_blocked_ok(g); y_blocked without res). */
kiln_status kiln__conv_depthwise(const kiln__conv_geom *g, const float *x, bool x_blocked, const float *w,
                                 const float *bias, const float *res, const kiln__act *act, float *y,
                                 bool y_blocked, kiln__cpu_ctx *ctx);
bool kiln__conv_depthwise_blocked_ok(const kiln__conv_geom *g);

#endif
