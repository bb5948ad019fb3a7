/* The vision and signal layers (grid sample, affine grid, DFT/STFT, NMS, unique, col2im, RoI
 * align, det): each kernel against a reference written here (or an identity it must satisfy)
 * on fresh random inputs, plus infer error cases. */
#include "unit/layer_harness.h"
#include "network/vision_layers.h"

LH_LINK(gridsample)
LH_LINK(affinegrid)
LH_LINK(dft)
LH_LINK(nms)
LH_LINK(unique)
LH_LINK(col2im)
LH_LINK(roialign)
LH_LINK(det)

static kiln_network *net; /* layers whose infer allocates (NMS, Unique) use its allocator */

static const double PI = 3.14159265358979323846;

static kiln_layer layer_with(kiln_layer_type type, int32_t nb_inputs, const void *params, size_t size) {
    kiln_layer l = lh_layer(type, nb_inputs);
    l.net = net;
    if (size) memcpy(&l.p, params, size);
    return l;
}

/* infer + kernel for layers with several outputs; outputs malloc'ed. */
static kiln_status run_n(const kiln_layer *l, const kiln__value *in, kiln__value *out) {
    memset(out, 0, sizeof(*out) * (size_t)l->nb_outputs);
    kiln_status st = kiln__layer_ops_for(l->type)->infer(l, in, out);
    if (st != KILN_OK) return st;
    for (int32_t k = 0; k < l->nb_outputs; k++) {
        int64_t n = kiln__dims_volume(&out[k].dims);
        if (n < 0 || !kiln__dtype_bytes(out[k].dtype, n, &out[k].bytes)) return KILN_INTERNAL_ERROR;
        out[k].data = malloc(out[k].bytes ? out[k].bytes : 1);
        memset(out[k].data, 0xCD, out[k].bytes);
    }
    kiln__cpu_ctx ctx = {.pool = lh_pool, .alloc = &lh_alloc};
    return kiln__cpu_kernel_for(l->type)(l, in, out, &ctx);
}

/* ---------------------------------------------------------------- GridSample */

/* Plain 2-D reference: bilinear or nearest, zeros or border padding. */
static float ref_pixel(const float *img, int64_t h, int64_t w, int64_t y, int64_t x, bool border) {
    if (border) {
        y = y < 0 ? 0 : y >= h ? h - 1 : y;
        x = x < 0 ? 0 : x >= w ? w - 1 : x;
    } else if (y < 0 || y >= h || x < 0 || x >= w) {
        return 0;
    }
    return img[y * w + x];
}

static double denorm(double g, int64_t size, bool align) {
    return align ? (g + 1) / 2 * (double)(size - 1) : ((g + 1) * (double)size - 1) / 2;
}

static void test_gridsample_2d(void) {
    for (int iter = 0; iter < 24; iter++) {
        int64_t n = kt_randi(1, 2), c = kt_randi(1, 3), h = kt_randi(1, 6), w = kt_randi(1, 6);
        int64_t oh = kt_randi(1, 5), ow = kt_randi(1, 5);
        bool align = iter & 1, border = (iter >> 1) & 1, nearest = (iter >> 2) & 1;
        float *x = malloc((size_t)(n * c * h * w) * sizeof *x), *g = malloc((size_t)(n * oh * ow * 2) * sizeof *g);
        kt_fill(x, n * c * h * w, -2, 2);
        kt_fill(g, n * oh * ow * 2, -1.3f, 1.3f);
        kiln__gridsample_params p = {.mode = nearest ? KILN__GS_NEAREST : KILN__GS_LINEAR,
                                     .padding = border ? KILN__GS_BORDER : KILN__GS_ZEROS, .align_corners = align};
        kiln_layer l = layer_with(KILN_LAYER_GRID_SAMPLE, 2, &p, sizeof p);
        kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(n, c, h, w), x), lh_val(KILN_FLOAT32, DIMS(n, oh, ow, 2), g)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(n, c, oh, ow)));
        float *want = malloc((size_t)(n * c * oh * ow) * sizeof *want);
        for (int64_t b = 0; b < n; b++)
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t i = 0; i < oh * ow; i++) {
                    const float *img = x + (b * c + ch) * h * w;
                    double fx = denorm(g[(b * oh * ow + i) * 2], w, align);
                    double fy = denorm(g[(b * oh * ow + i) * 2 + 1], h, align);
                    if (border) {
                        fx = fx < 0 ? 0 : fx > (double)(w - 1) ? (double)(w - 1) : fx;
                        fy = fy < 0 ? 0 : fy > (double)(h - 1) ? (double)(h - 1) : fy;
                    }
                    double v;
                    if (nearest) {
                        v = ref_pixel(img, h, w, (int64_t)nearbyint(fy), (int64_t)nearbyint(fx), border);
                    } else {
                        int64_t x0 = (int64_t)floor(fx), y0 = (int64_t)floor(fy);
                        double tx = fx - (double)x0, ty = fy - (double)y0;
                        v = (1 - ty) * ((1 - tx) * ref_pixel(img, h, w, y0, x0, border) +
                                        tx * ref_pixel(img, h, w, y0, x0 + 1, border)) +
                            ty * ((1 - tx) * ref_pixel(img, h, w, y0 + 1, x0, border) +
                                  tx * ref_pixel(img, h, w, y0 + 1, x0 + 1, border));
                    }
                    want[(b * c + ch) * oh * ow + i] = (float)v;
                }
        kt_close("gridsample 2-D", y.data, want, n * c * oh * ow, 1e-5f, 1e-5f);
        free(y.data);
        free(want);
        free(x);
        free(g);
    }
}

/* Cubic convolution in 3-D: at whole-pixel coordinates it returns the pixel itself, and on a
 * constant image any point inside returns the constant (the weights sum to 1); reflection
 * padding leaves interior points alone. */
static void test_gridsample_cubic_3d(void) {
    int64_t d = 7, h = 8, w = 9, o = 20;
    float *x = malloc((size_t)(2 * d * h * w) * sizeof *x), *g = malloc((size_t)(o * 3) * sizeof *g), want[40];
    kt_fill(x, d * h * w, -2, 2);
    float k = kt_randf(-2, 2);
    for (int64_t i = 0; i < d * h * w; i++) x[d * h * w + i] = k;
    for (int64_t i = 0; i < o; i++) {
        /* align_corners: coordinate k maps to k; even points whole pixels, odd ones anywhere inside. */
        double px = kt_randf(1, (float)w - 3), py = kt_randf(1, (float)h - 3), pz = kt_randf(1, (float)d - 3);
        if (i % 2 == 0) {
            px = floor(px);
            py = floor(py);
            pz = floor(pz);
        }
        g[i * 3] = (float)(px / (double)(w - 1) * 2 - 1);
        g[i * 3 + 1] = (float)(py / (double)(h - 1) * 2 - 1);
        g[i * 3 + 2] = (float)(pz / (double)(d - 1) * 2 - 1);
        want[i] = i % 2 == 0 ? x[((int64_t)pz * h + (int64_t)py) * w + (int64_t)px] : NAN;
        want[o + i] = k;
    }
    kiln__gridsample_params p = {.mode = KILN__GS_CUBIC, .padding = KILN__GS_REFLECTION, .align_corners = 1};
    kiln_layer l = layer_with(KILN_LAYER_GRID_SAMPLE, 2, &p, sizeof p);
    kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(1, 2, d, h, w), x), lh_val(KILN_FLOAT32, DIMS(1, o, 1, 1, 3), g)}, y;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(1, 2, o, 1, 1)));
    for (int64_t i = 1; i < o; i += 2) want[i] = ((float *)y.data)[i]; /* not checked */
    kt_close("gridsample cubic 3-D", y.data, want, 2 * o, 1e-4f, 1e-4f);
    free(y.data);
    /* grid with 2 coordinates for a 3-D input */
    kiln__value bad[2] = {in[0], lh_val(KILN_FLOAT32, DIMS(1, o, 1, 1, 2), g)};
    KT_STATUS(lh_infer(&l, bad, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    free(x);
    free(g);
}

/* ---------------------------------------------------------------- AffineGrid */

static void test_affinegrid(void) {
    for (int align = 0; align < 2; align++) {
        int64_t n = 2, h = kt_randi(1, 5), w = kt_randi(2, 6);
        float theta[12];
        kt_fill(theta, 12, -2, 2);
        int64_t size[4] = {n, 3, h, w};
        kiln__affinegrid_params p = {.align_corners = align};
        kiln_layer l = layer_with(KILN_LAYER_AFFINE_GRID, 2, &p, sizeof p);
        kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(n, 2, 3), theta), lh_val(KILN_INT64, DIMS(4), size)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(n, h, w, 2)));
        float want[2 * 5 * 6 * 2];
        for (int64_t b = 0; b < n; b++)
            for (int64_t i = 0; i < h; i++)
                for (int64_t j = 0; j < w; j++) {
                    double bx = align ? -1 + 2.0 * (double)j / (double)(w - 1) : (2.0 * (double)j + 1) / (double)w - 1;
                    double by = align ? (h > 1 ? -1 + 2.0 * (double)i / (double)(h - 1) : -1)
                                      : (2.0 * (double)i + 1) / (double)h - 1;
                    for (int k = 0; k < 2; k++) {
                        const float *t = theta + b * 6 + k * 3;
                        want[((b * h + i) * w + j) * 2 + k] = (float)(t[0] * bx + t[1] * by + t[2]);
                    }
                }
        kt_close("affinegrid", y.data, want, n * h * w * 2, 1e-5f, 1e-5f);
        free(y.data);
        /* unknown size values: dims unknown, rank known */
        kiln__value unk[2] = {in[0], lh_val(KILN_INT64, DIMS(4), NULL)};
        KT_OK(lh_infer(&l, unk, &y));
        KT_CHECK(y.dims.nb_dims == 4 && y.dims.d[1] == -1 && y.dims.d[3] == 2);
    }
}

/* ---------------------------------------------------------------- DFT, STFT */

static void ref_dft(const double *re, const double *im, int64_t len, int64_t n, bool inverse, double *ore,
                    double *oim) {
    for (int64_t k = 0; k < n; k++) {
        double sr = 0, si = 0;
        for (int64_t t = 0; t < KILN__MIN(len, n); t++) {
            double ang = (inverse ? 2 : -2) * PI * (double)(k * t) / (double)n;
            sr += re[t] * cos(ang) - im[t] * sin(ang);
            si += re[t] * sin(ang) + im[t] * cos(ang);
        }
        ore[k] = inverse ? sr / (double)n : sr;
        oim[k] = inverse ? si / (double)n : si;
    }
}

static void test_dft(void) {
    for (int iter = 0; iter < 12; iter++) {
        int64_t b = kt_randi(1, 3), len = kt_randi(1, 12), m = kt_randi(1, 3), c = kt_randi(1, 2);
        bool inverse = iter % 3 == 1, onesided = iter % 3 == 2, given = iter & 1;
        int64_t n = given ? kt_randi(1, 14) : len;
        int64_t count = b * len * m * c;
        float *x = malloc((size_t)count * sizeof *x);
        kt_fill(x, count, -1, 1);
        int64_t nval = n, axis = -3; /* dim 1 of [b, len, m, c] */
        kiln__dft_params p = {.mode = KILN__DFT, .axis = 0, .inverse = inverse, .onesided = onesided};
        kiln_layer l = layer_with(KILN_LAYER_DFT, 3, &p, sizeof p);
        kiln__value in[3] = {lh_val(KILN_FLOAT32, DIMS(b, len, m, c), x),
                             given ? lh_val(KILN_INT64, DIMS0, &nval) : (kiln__value){0},
                             lh_val(KILN_INT64, DIMS0, &axis)},
                    y;
        KT_OK(lh_run(&l, in, &y));
        int64_t out_len = onesided ? n / 2 + 1 : n;
        KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(b, out_len, m, 2)));
        float *want = malloc((size_t)(b * out_len * m * 2) * sizeof *want);
        double re[16], im[16], ore[16], oim[16];
        for (int64_t bb = 0; bb < b; bb++)
            for (int64_t mm = 0; mm < m; mm++) {
                for (int64_t t = 0; t < len; t++) {
                    re[t] = x[((bb * len + t) * m + mm) * c];
                    im[t] = c == 2 ? x[((bb * len + t) * m + mm) * c + 1] : 0;
                }
                ref_dft(re, im, len, n, inverse, ore, oim);
                for (int64_t k = 0; k < out_len; k++) {
                    want[((bb * out_len + k) * m + mm) * 2] = (float)ore[k];
                    want[((bb * out_len + k) * m + mm) * 2 + 1] = (float)oim[k];
                }
            }
        kt_close("dft", y.data, want, b * out_len * m * 2, 1e-4f, 1e-4f);
        free(want);
        free(y.data);
        free(x);
    }
    /* inverse of a one-sided spectrum gives the real signal back */
    for (int64_t n = 1; n <= 9; n++) {
        float sig[9], spec[5 * 2];
        kt_fill(sig, n, -1, 1);
        kiln__dft_params fw = {.mode = KILN__DFT, .axis = 1, .onesided = 1};
        kiln_layer lf = layer_with(KILN_LAYER_DFT, 1, &fw, sizeof fw);
        kiln__value in = lh_val(KILN_FLOAT32, DIMS(1, n, 1), sig), s, back;
        KT_OK(lh_run(&lf, &in, &s));
        memcpy(spec, s.data, s.bytes);
        int64_t nval = n;
        kiln__dft_params inv = {.mode = KILN__DFT, .axis = 1, .inverse = 1, .onesided = 1};
        kiln_layer li = layer_with(KILN_LAYER_DFT, 2, &inv, sizeof inv);
        kiln__value in2[2] = {lh_val(KILN_FLOAT32, DIMS(1, n / 2 + 1, 2), spec), lh_val(KILN_INT32, DIMS(1), &(int32_t){(int32_t)nval})};
        KT_OK(lh_run(&li, in2, &back));
        KT_CHECK(kiln__dims_equal(&back.dims, &DIMS(1, n, 1)));
        kt_close("irfft(rfft(x))", back.data, sig, n, 1e-5f, 1e-5f);
        free(s.data);
        free(back.data);
    }
    /* axis on the complex dim */
    float x[4] = {0};
    int64_t axis = -1;
    kiln__dft_params p = {.mode = KILN__DFT};
    kiln_layer l = layer_with(KILN_LAYER_DFT, 3, &p, sizeof p);
    kiln__value in[3] = {lh_val(KILN_FLOAT32, DIMS(1, 2, 2), x), {0}, lh_val(KILN_INT64, DIMS0, &axis)}, y;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

static void test_stft(void) {
    int64_t b = 2, len = kt_randi(8, 30), fl = kt_randi(2, 8), step = kt_randi(1, 4);
    int64_t frames = 1 + (len - fl) / step, bins = fl / 2 + 1;
    float *x = malloc((size_t)(b * len) * sizeof *x), win[8];
    kt_fill(x, b * len, -1, 1);
    kt_fill(win, fl, 0, 1);
    kiln__dft_params p = {.mode = KILN__STFT, .axis = 1, .onesided = 1};
    kiln_layer l = layer_with(KILN_LAYER_DFT, 3, &p, sizeof p);
    kiln__value in[3] = {lh_val(KILN_FLOAT32, DIMS(b, len, 1), x), lh_val(KILN_INT64, DIMS0, &step),
                         lh_val(KILN_FLOAT32, DIMS(fl), win)},
                y;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(b, frames, bins, 2)));
    float *want = malloc((size_t)(b * frames * bins * 2) * sizeof *want);
    double re[8], im[8] = {0}, ore[8], oim[8];
    for (int64_t bb = 0; bb < b; bb++)
        for (int64_t f = 0; f < frames; f++) {
            for (int64_t t = 0; t < fl; t++) re[t] = x[bb * len + f * step + t] * win[t];
            ref_dft(re, im, fl, fl, false, ore, oim);
            for (int64_t k = 0; k < bins; k++) {
                want[((bb * frames + f) * bins + k) * 2] = (float)ore[k];
                want[((bb * frames + f) * bins + k) * 2 + 1] = (float)oim[k];
            }
        }
    kt_close("stft", y.data, want, b * frames * bins * 2, 1e-4f, 1e-4f);
    free(want);
    free(y.data);
    free(x);
}

/* ---------------------------------------------------------------- NMS */

static double ref_iou(const float *a, const float *b) {
    double ax1 = fmin(a[1], a[3]), ax2 = fmax(a[1], a[3]), ay1 = fmin(a[0], a[2]), ay2 = fmax(a[0], a[2]);
    double bx1 = fmin(b[1], b[3]), bx2 = fmax(b[1], b[3]), by1 = fmin(b[0], b[2]), by2 = fmax(b[0], b[2]);
    double iw = fmin(ax2, bx2) - fmax(ax1, bx1), ih = fmin(ay2, by2) - fmax(ay1, by1);
    if (iw <= 0 || ih <= 0) return 0;
    double inter = iw * ih;
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter);
}

static void test_nms(void) {
    for (int iter = 0; iter < 10; iter++) {
        int64_t batches = kt_randi(1, 2), classes = kt_randi(1, 3), n = kt_randi(0, 12), max_out = kt_randi(0, 5);
        float *boxes = malloc((size_t)(batches * n * 4 + 1) * sizeof *boxes);
        float *scores = malloc((size_t)(batches * classes * n + 1) * sizeof *scores);
        kt_fill(boxes, batches * n * 4, 0, 4);
        for (int64_t i = 0; i < batches * classes * n; i++) scores[i] = (float)kt_randi(0, 9) / 10; /* ties */
        float iou = kt_randf(0, 0.7f), thr = kt_randf(0, 0.5f);
        kiln__nms_params p = {0};
        kiln_layer l = layer_with(KILN_LAYER_NMS, 5, &p, sizeof p);
        kiln__value in[5] = {lh_val(KILN_FLOAT32, DIMS(batches, n, 4), boxes),
                             lh_val(KILN_FLOAT32, DIMS(batches, classes, n), scores),
                             lh_val(KILN_INT64, DIMS(1), &max_out), lh_val(KILN_FLOAT32, DIMS(1), &iou),
                             lh_val(KILN_FLOAT32, DIMS(1), &thr)},
                    y;
        KT_OK(lh_run(&l, in, &y));
        /* reference: greedy over candidates by score (then index), against those kept */
        int64_t want[3 * 2 * 3 * 12], nw = 0;
        for (int64_t b = 0; b < batches; b++)
            for (int64_t c = 0; c < classes; c++) {
                const float *s = scores + (b * classes + c) * n;
                bool used[12] = {false};
                int64_t kept[12], nk = 0;
                while (nk < max_out) {
                    int64_t best = -1;
                    for (int64_t i = 0; i < n; i++)
                        if (!used[i] && s[i] > thr && (best < 0 || s[i] > s[best])) best = i;
                    if (best < 0) break;
                    used[best] = true;
                    bool keep = true;
                    for (int64_t k = 0; k < nk && keep; k++)
                        keep = ref_iou(boxes + (b * n + best) * 4, boxes + (b * n + kept[k]) * 4) <= iou;
                    if (!keep) continue;
                    kept[nk++] = best;
                    want[nw * 3] = b;
                    want[nw * 3 + 1] = c;
                    want[nw * 3 + 2] = best;
                    nw++;
                }
            }
        KT_CHECK(y.dims.d[0] == nw && y.dims.d[1] == 3);
        KT_CHECK(y.dims.d[0] != nw || memcmp(y.data, want, (size_t)nw * 3 * sizeof *want) == 0);
        free(y.data);
        free(boxes);
        free(scores);
    }
    float boxes[4] = {0};
    kiln__nms_params p = {0};
    kiln_layer l = layer_with(KILN_LAYER_NMS, 2, &p, sizeof p);
    kiln__value bad[2] = {lh_val(KILN_FLOAT32, DIMS(1, 1, 4), boxes), lh_val(KILN_FLOAT32, DIMS(1, 1, 2), boxes)}, y;
    KT_STATUS(lh_infer(&l, bad, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

/* ---------------------------------------------------------------- Unique */

static int lexcmp(const int32_t *a, const int32_t *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
}

static void test_unique(void) {
    for (int iter = 0; iter < 12; iter++) {
        bool sorted = iter & 1, with_axis = iter & 2;
        int64_t r = kt_randi(1, 10), cols = with_axis ? kt_randi(1, 3) : 1;
        int32_t *x = malloc((size_t)(r * cols) * sizeof *x);
        for (int64_t i = 0; i < r * cols; i++) x[i] = (int32_t)kt_randi(-2, 2);
        kiln__unique_params p = {.has_axis = with_axis, .axis = 0, .sorted = sorted};
        kiln_layer l = layer_with(KILN_LAYER_UNIQUE, 1, &p, sizeof p);
        l.nb_outputs = 4;
        kiln__value in = lh_val(KILN_INT32, DIMS(r, cols), x), out[4];
        KT_OK(run_n(&l, &in, out));
        int64_t u = out[1].dims.d[0], n = with_axis ? r : r * cols, sl = with_axis ? cols : 1;
        const int32_t *y = out[0].data;
        const int64_t *first = out[1].data, *inv = out[2].data, *cnt = out[3].data;
        KT_CHECK(out[2].dims.d[0] == n && out[3].dims.d[0] == u);
        KT_CHECK(with_axis ? kiln__dims_equal(&out[0].dims, &DIMS(u, cols)) : kiln__dims_equal(&out[0].dims, &DIMS(u)));
        int64_t total = 0;
        bool ok = true;
        for (int64_t g = 0; g < u; g++) {
            total += cnt[g];
            ok &= memcmp(y + g * sl, x + first[g] * sl, (size_t)sl * sizeof *x) == 0;
            for (int64_t i = 0; i < first[g]; i++) ok &= memcmp(x + i * sl, y + g * sl, (size_t)sl * sizeof *x) != 0;
            if (g > 0 && sorted) ok &= lexcmp(y + (g - 1) * sl, y + g * sl, sl) < 0;
            if (g > 0 && !sorted) ok &= first[g - 1] < first[g];
        }
        for (int64_t i = 0; i < n; i++) ok &= inv[i] >= 0 && inv[i] < u && memcmp(x + i * sl, y + inv[i] * sl, (size_t)sl * sizeof *x) == 0;
        KT_CHECK(ok && total == n);
        for (int k = 0; k < 4; k++) free(out[k].data);
        free(x);
    }
}

/* ---------------------------------------------------------------- Col2Im */

static void test_col2im(void) {
    for (int iter = 0; iter < 10; iter++) {
        int64_t n = kt_randi(1, 2), c = kt_randi(1, 2), ih = kt_randi(2, 7), iw = kt_randi(2, 7);
        int64_t bh = kt_randi(1, 3), bw = kt_randi(1, 3);
        kiln__col2im_params p = {.nb_spatial = 2, .dilation = {kt_randi(1, 2), kt_randi(1, 2)},
                                 .stride = {kt_randi(1, 2), kt_randi(1, 2)},
                                 .pad_begin = {kt_randi(0, 1), kt_randi(0, 1)}, .pad_end = {kt_randi(0, 1), kt_randi(0, 1)}};
        int64_t ch = (ih + p.pad_begin[0] + p.pad_end[0] - (p.dilation[0] * (bh - 1) + 1)) / p.stride[0] + 1;
        int64_t cw = (iw + p.pad_begin[1] + p.pad_end[1] - (p.dilation[1] * (bw - 1) + 1)) / p.stride[1] + 1;
        if (ih + p.pad_begin[0] + p.pad_end[0] < p.dilation[0] * (bh - 1) + 1 ||
            iw + p.pad_begin[1] + p.pad_end[1] < p.dilation[1] * (bw - 1) + 1)
            continue;
        int64_t rows = c * bh * bw, cols = ch * cw, image[2] = {ih, iw}, block[2] = {bh, bw};
        float *x = malloc((size_t)(n * rows * cols) * sizeof *x), *want = calloc((size_t)(n * c * ih * iw), sizeof *want);
        kt_fill(x, n * rows * cols, -1, 1);
        for (int64_t b = 0; b < n; b++)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t col = 0; col < cols; col++) {
                    int64_t ch_ = r / (bh * bw), ky = r / bw % bh, kx = r % bw;
                    int64_t y = col / cw * p.stride[0] - p.pad_begin[0] + ky * p.dilation[0];
                    int64_t xx = col % cw * p.stride[1] - p.pad_begin[1] + kx * p.dilation[1];
                    if (y >= 0 && y < ih && xx >= 0 && xx < iw)
                        want[((b * c + ch_) * ih + y) * iw + xx] += x[(b * rows + r) * cols + col];
                }
        kiln_layer l = layer_with(KILN_LAYER_COL2IM, 3, &p, sizeof p);
        kiln__value in[3] = {lh_val(KILN_FLOAT32, DIMS(n, rows, cols), x), lh_val(KILN_INT64, DIMS(2), image),
                             lh_val(KILN_INT64, DIMS(2), block)},
                    y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(n, c, ih, iw)));
        kt_close("col2im", y.data, want, n * c * ih * iw, 1e-5f, 1e-5f);
        free(y.data);
        /* one column too many */
        in[0] = lh_val(KILN_FLOAT32, DIMS(n, rows, cols + 1), x);
        KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
        KT_CHECK(lh_names_layer());
        free(x);
        free(want);
    }
}

/* ---------------------------------------------------------------- RoiAlign */

/* Bilinear sampling reproduces a linear image exactly inside it, and the average of a bin's
 * symmetric sample grid is the value at the bin's center. */
static void test_roialign(void) {
    int64_t h = 12, w = 14, c = 2, ph = kt_randi(1, 4), pw = kt_randi(1, 4), rois = 5;
    float *x = malloc((size_t)(2 * c * h * w) * sizeof *x), roi[5 * 4], want[5 * 2 * 4 * 4];
    double a[4], bcoef[4], e[4];
    for (int k = 0; k < 4; k++) {
        a[k] = kt_randf(-1, 1);
        bcoef[k] = kt_randf(-1, 1);
        e[k] = kt_randf(-1, 1);
    }
    for (int64_t pl = 0; pl < 2 * c; pl++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t xx = 0; xx < w; xx++) x[(pl * h + y) * w + xx] = (float)(a[pl] * xx + bcoef[pl] * y + e[pl]);
    int64_t batch[5];
    float scale = 0.5f;
    for (int64_t r = 0; r < rois; r++) {
        batch[r] = kt_randi(0, 1);
        /* in image coordinates [1, size - 2] after scaling and the half-pixel shift */
        float x1 = kt_randf(3, 2 * (float)w - 12), y1 = kt_randf(3, 2 * (float)h - 12);
        roi[r * 4] = x1;
        roi[r * 4 + 1] = y1;
        roi[r * 4 + 2] = x1 + kt_randf(1, 8);
        roi[r * 4 + 3] = y1 + kt_randf(1, 8);
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < ph; i++)
                for (int64_t j = 0; j < pw; j++) {
                    double sx = roi[r * 4] * scale - 0.5, sy = roi[r * 4 + 1] * scale - 0.5;
                    double bw_ = (roi[r * 4 + 2] - roi[r * 4]) * scale / (double)pw;
                    double bh_ = (roi[r * 4 + 3] - roi[r * 4 + 1]) * scale / (double)ph;
                    double cx = sx + ((double)j + 0.5) * bw_, cy = sy + ((double)i + 0.5) * bh_;
                    int64_t pl = batch[r] * c + ch;
                    want[((r * c + ch) * ph + i) * pw + j] = (float)(a[pl] * cx + bcoef[pl] * cy + e[pl]);
                }
    }
    kiln__roialign_params p = {.mode = KILN__ROI_AVG, .half_pixel = 1, .out_h = ph, .out_w = pw,
                               .sampling_ratio = kt_randi(0, 3), .spatial_scale = scale};
    kiln_layer l = layer_with(KILN_LAYER_ROI_ALIGN, 3, &p, sizeof p);
    kiln__value in[3] = {lh_val(KILN_FLOAT32, DIMS(2, c, h, w), x), lh_val(KILN_FLOAT32, DIMS(rois, 4), roi),
                         lh_val(KILN_INT64, DIMS(rois), batch)},
                y;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(rois, c, ph, pw)));
    kt_close("roialign", y.data, want, rois * c * ph * pw, 1e-4f, 1e-4f);
    free(y.data);
    batch[2] = 2; /* out of range */
    KT_STATUS(lh_run(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    free(y.data);
    free(x);
}

/* ---------------------------------------------------------------- Det */

/* A = L U with L unit lower triangular: det A = prod diag U. */
static void test_det(void) {
    for (int iter = 0; iter < 8; iter++) {
        int64_t batch = kt_randi(1, 3), m = iter == 7 ? 40 : kt_randi(0, 6);
        double *a = malloc((size_t)(batch * m * m + 1) * sizeof *a);
        double want[3];
        for (int64_t b = 0; b < batch; b++) {
            double L[40 * 40], U[40 * 40];
            want[b] = 1;
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < m; j++) {
                    L[i * m + j] = i == j ? 1 : i > j ? kt_randf(-1, 1) : 0;
                    U[i * m + j] = i <= j ? kt_randf(-1, 1) : 0;
                    if (i == j) U[i * m + j] = (kt_randi(0, 1) ? 1 : -1) * kt_randf(0.5f, 1.5f);
                }
            for (int64_t i = 0; i < m; i++) want[b] *= U[i * m + i];
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < m; j++) {
                    double s = 0;
                    for (int64_t k = 0; k < m; k++) s += L[i * m + k] * U[k * m + j];
                    a[(b * m + i) * m + j] = s;
                }
        }
        kiln_layer l = layer_with(KILN_LAYER_DET, 1, NULL, 0);
        kiln__value in = lh_val(KILN_FLOAT64, DIMS(batch, m, m), a), y;
        KT_OK(lh_run(&l, &in, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(batch)));
        for (int64_t b = 0; b < batch; b++) KT_CHECK(fabs(((double *)y.data)[b] - want[b]) <= 1e-9 * (1 + fabs(want[b])));
        free(y.data);
        free(a);
    }
    float x[6] = {0};
    kiln_layer l = layer_with(KILN_LAYER_DET, 1, NULL, 0);
    kiln__value in = lh_val(KILN_FLOAT32, DIMS(2, 3), x), y;
    KT_STATUS(lh_infer(&l, &in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

int main(void) {
    lh_init();
    kiln__log log;
    kiln__log_init(&log, NULL);
    if (kiln__network_create(&lh_alloc, &log, &net) != KILN_OK) return 1;
    test_gridsample_2d();
    test_gridsample_cubic_3d();
    test_affinegrid();
    test_dft();
    test_stft();
    test_nms();
    test_unique();
    test_col2im();
    test_roialign();
    test_det();
    kiln_network_destroy(net);
    lh_done();
    return kt_summary("test_vision_layers");
}
