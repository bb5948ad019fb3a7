/* Winograd F(4x4, 3x3) for float32 3x3 stride-1 convolutions: 36 GEMMs over 6x6 input tiles
 * instead of im2col's 9 taps, a quarter of the multiplications; F(2x2, 3x3) for small planes: 16
 * GEMMs over 4x4 tiles, 1 / 2.25 of them; and for stride 2, F(2, 2) on the even taps: 25 GEMMs
 * over 5x5 tiles per 2x2 outputs instead of 36 multiplications. */
#ifndef KILN_CPU_CONV_WINOGRAD_H
#define KILN_CPU_CONV_WINOGRAD_H

#include "conv_common.h"

/* First field of the Winograd block in a layer's cache slot. The convolution's own block there
 * starts with a pointer, never equal to this value, so each path tells its block from the other's
 * and replaces it (the path can change with the input shape). */
#define KILN__WINOGRAD_MAGIC 0x57494e4fu
#define KILN__WINOGRAD_CV_MAGIC 0x57494e43u /* F(4x4) packed for the channel-vector GEMM */
#define KILN__WINOGRAD_F2_MAGIC 0x57494e32u
#define KILN__WINOGRAD_S2_MAGIC 0x57494e53u

/* Whether kiln__winograd_conv takes g: a 2-D (unit depth) 3x3 convolution, stride 1, dilation 1,
 * one group, pads at most 2, AVX2 present, and enough channels, maps and 4x4 output tiles over
 * the batch to pay (at least 16 of each, and 49 tiles below 32 channels). */
bool kiln__winograd_applies(const kiln__conv_geom *g);

/* y = act(conv(x, w) + bias + res) in NCHW float32 for a geometry kiln__winograd_applies takes
 * (or one of any size with its other conditions: the tests run those).
 * bias and res may be NULL. w_src identifies the weights in the cache slot (the layer's own
 * input data, of which w may be a float32 copy): when the layer's weights come from a constant
 * and ctx->cache is set, their transform is kept there across runs; layer may be NULL (nothing
 * cached). */
kiln_status kiln__winograd_conv(const kiln__conv_geom *g, const float *x, const float *w, const void *w_src,
                                const float *bias, const float *res, const kiln__act *act, float *y,
                                kiln__cpu_ctx *ctx, const kiln_layer *layer);

/* Whether kiln__winograd_f2_conv takes g: the geometries of kiln__winograd_conv (whatever their
 * tile count) with AVX-512, 25 to 64 2x2 output tiles per image and at most 15 across, at least 64
 * channels and 32 maps, the maps close to a multiple of 32. */
bool kiln__winograd_f2_applies(const kiln__conv_geom *g);

/* kiln__winograd_conv's contract, through F(2x2, 3x3) and the channel-vector GEMM, for a geometry
 * kiln__winograd_f2_applies takes (or one of any channel and map count with its other conditions:
 * the tests run those). */
kiln_status kiln__winograd_f2_conv(const kiln__conv_geom *g, const float *x, const float *w, const void *w_src,
                                   const float *bias, const float *res, const kiln__act *act, float *y,
                                   kiln__cpu_ctx *ctx, const kiln_layer *layer);

/* Whether kiln__winograd_s2_conv takes g: a 2-D 3x3 convolution of stride 2, dilation 1, one
 * group, pads at most 2, with AVX-512, 25 to 256 2x2 output tiles per image and at most 15 across,
 * at least 64 channels and 32 maps, the maps close to a multiple of 32. */
bool kiln__winograd_s2_applies(const kiln__conv_geom *g);

/* kiln__winograd_conv's contract for a geometry kiln__winograd_s2_applies takes (or one of any
 * channel and map count and tile count with its other conditions: the tests run those), by the
 * stride-2 decomposition into F(2, 2) and the odd taps: 25 GEMMs per 2x2 output tiles instead of
 * 36 multiplications. */
kiln_status kiln__winograd_s2_conv(const kiln__conv_geom *g, const float *x, const float *w, const void *w_src,
                                   const float *bias, const float *res, const kiln__act *act, float *y,
                                   kiln__cpu_ctx *ctx, const kiln_layer *layer);

#endif
