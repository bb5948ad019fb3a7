/* Resize against a reference written the way the ONNX reference's original per-element code
 * works: for each output element and each resized axis, the n nearest input positions in an
 * edge-padded line with their coefficients, summed over the product of all axes' taps (not
 * separable, unlike the kernel). Covers every mode, coordinate transform, rounding mode,
 * cubic options, tf_crop_and_resize with roi and extrapolation, scales and sizes from params
 * or inputs, axes subsets, keep_aspect_ratio_policy and the dtypes. */
#include "layer_harness.h"

LH_LINK(resize)

typedef struct ref_axis {
    int32_t n; /* taps */
    int64_t idx[4];
    double w[4];
    bool extrapolate;
} ref_axis;

static void ref_coeffs(const kiln__resize_params *p, double ratio, double *c, int32_t *n) {
    if (p->mode == KILN_RESIZE_CUBIC) {
        double A = p->cubic_coeff;
        c[0] = ((A * (ratio + 1) - 5 * A) * (ratio + 1) + 8 * A) * (ratio + 1) - 4 * A;
        c[1] = ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1;
        c[2] = ((A + 2) * (1 - ratio) - (A + 3)) * (1 - ratio) * (1 - ratio) + 1;
        c[3] = ((A * ((1 - ratio) + 1) - 5 * A) * ((1 - ratio) + 1) + 8 * A) * ((1 - ratio) + 1) - 4 * A;
        *n = 4;
        return;
    }
    *n = 2;
    if (p->mode == KILN_RESIZE_LINEAR) {
        c[0] = 1 - ratio;
        c[1] = ratio;
        return;
    }
    bool integer = ratio == floor(ratio);
    switch (p->nearest_round) {
    case KILN_ROUND_HALF_DOWN: c[0] = integer ? 0 : ratio <= 0.5, c[1] = integer ? 1 : ratio > 0.5; break;
    case KILN_ROUND_HALF_UP: c[0] = integer ? 0 : ratio < 0.5, c[1] = integer ? 1 : ratio >= 0.5; break;
    case KILN_ROUND_FLOOR: c[0] = integer ? 0 : 1, c[1] = integer ? 1 : 0; break;
    default: c[0] = 0, c[1] = 1;
    }
}

/* The n indices nearest to x among [-pad, L + pad), ties to the smaller, ascending. */
static void nearest_indices(double x, int32_t n, int64_t L, int64_t *out) {
    int32_t pad = (n + 1) / 2, got = 0;
    bool used[64] = {false};
    while (got < n) {
        int64_t best = -1;
        for (int64_t i = 0; i < L + 2 * pad; i++) {
            if (used[i]) continue;
            if (best < 0 || fabs(x + pad - (double)i) < fabs(x + pad - (double)best)) best = i;
        }
        used[best] = true;
        got++;
    }
    int32_t k = 0;
    for (int64_t i = 0; i < L + 2 * pad; i++)
        if (used[i]) out[k++] = i - pad;
}

static void ref_axis_taps(const kiln__resize_params *p, int64_t o, double s, int64_t L, int64_t O, double r0,
                          double r1, ref_axis *t) {
    double width = s * (double)L, x;
    switch (p->coord) {
    case KILN_COORD_ALIGN_CORNERS: x = width == 1 ? 0 : (double)o * (double)(L - 1) / (width - 1); break;
    case KILN_COORD_ASYMMETRIC: x = (double)o / s; break;
    case KILN_COORD_TF_CROP_AND_RESIZE:
        x = width == 1 ? (r1 - r0) * (double)(L - 1) / 2 : (double)o * (r1 - r0) * (double)(L - 1) / (width - 1);
        x += r0 * (double)(L - 1);
        break;
    case KILN_COORD_PYTORCH_HALF_PIXEL: x = width == 1 ? -0.5 : ((double)o + 0.5) / s - 0.5; break;
    case KILN_COORD_TF_HALF_PIXEL_FOR_NN: x = ((double)o + 0.5) / s; break;
    case KILN_COORD_HALF_PIXEL_SYMMETRIC: {
        double adj = (double)O / width, center = (double)L / 2;
        x = center * (1 - adj) + ((double)o + 0.5) / s - 0.5;
        break;
    }
    default: x = ((double)o + 0.5) / s - 0.5;
    }
    t->extrapolate = p->coord == KILN_COORD_TF_CROP_AND_RESIZE && (x < 0 || x > (double)(L - 1));
    double ratio = x == floor(x) ? 1 : x - floor(x);
    ref_coeffs(p, ratio, t->w, &t->n);
    nearest_indices(x, t->n, L, t->idx);
    if (p->exclude_outside && p->mode == KILN_RESIZE_CUBIC) {
        double sum = 0;
        for (int32_t k = 0; k < t->n; k++) {
            if (t->idx[k] < 0 || t->idx[k] >= L) t->w[k] = 0;
            sum += t->w[k];
        }
        for (int32_t k = 0; k < t->n && sum != 0; k++) t->w[k] /= sum;
    }
    for (int32_t k = 0; k < t->n; k++) t->idx[k] = t->idx[k] < 0 ? 0 : t->idx[k] >= L ? L - 1 : t->idx[k];
}

/* Reference with per-dim scale/out/roi already decided (the test computes them separately). */
static void ref_resize(const kiln__resize_params *p, const double *x, const kiln_dims *in, const kiln_dims *out,
                       const double *scale, const double *r0, const double *r1, const bool *resized, double *y) {
    int32_t rank = in->nb_dims;
    int64_t n = kiln__dims_volume(out), c[KILN_MAX_DIMS], s[KILN_MAX_DIMS];
    lh_strides(in, s);
    for (int64_t e = 0; e < n; e++) {
        lh_unravel(e, out, c);
        ref_axis t[KILN_MAX_DIMS];
        bool extrap = false;
        for (int32_t a = 0; a < rank; a++) {
            if (!resized[a]) {
                t[a] = (ref_axis){.n = 1, .idx = {c[a]}, .w = {1}};
                continue;
            }
            ref_axis_taps(p, c[a], scale[a], in->d[a], out->d[a], r0[a], r1[a], &t[a]);
            extrap |= t[a].extrapolate;
        }
        if (extrap) {
            y[e] = p->extrapolation_value;
            continue;
        }
        int32_t k[KILN_MAX_DIMS] = {0};
        double sum = 0;
        for (;;) {
            double w = 1;
            int64_t off = 0;
            for (int32_t a = 0; a < rank; a++) {
                w *= t[a].w[k[a]];
                off += t[a].idx[k[a]] * s[a];
            }
            if (w != 0) sum += w * x[off];
            int32_t a = rank - 1;
            while (a >= 0 && ++k[a] == t[a].n) k[a--] = 0;
            if (a < 0) break;
        }
        y[e] = sum;
    }
}

static void check_case(const kiln__resize_params *p, kiln_dtype dt, const kiln_dims *in, const kiln__value *extra,
                       int32_t nb_extra, const kiln_dims *want_dims, const double *scale, const double *r0,
                       const double *r1, const bool *resized, const char *what) {
    int64_t n = kiln__dims_volume(in);
    size_t es = kiln_dtype_bits(dt) / 8;
    void *x = malloc(es * (size_t)n);
    double *xd = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        double v = dt == KILN_UINT8 ? (double)kt_randi(0, 255) : dt == KILN_INT8 ? (double)kt_randi(-128, 127) : kt_randf(-1, 1);
        kiln__store_f64(x, dt, i, v);
        xd[i] = kiln__load_f64(x, dt, i);
    }
    kiln_layer l = lh_layer(KILN_LAYER_RESIZE, 1 + nb_extra);
    l.p.resize = *p;
    kiln__value inputs[4] = {lh_val(dt, *in, x)};
    for (int32_t i = 0; i < nb_extra; i++) inputs[1 + i] = extra[i];
    kiln__value y;
    KT_OK(lh_run(&l, inputs, &y));
    bool dims_ok = kiln__dims_equal(&y.dims, want_dims);
    KT_CHECK(dims_ok);
    if (!dims_ok) {
        char a[128], b[128];
        kiln__dims_format(&y.dims, a, sizeof a);
        kiln__dims_format(want_dims, b, sizeof b);
        fprintf(stderr, "%s: dims %s, expected %s\n", what, a, b);
    }
    if (dims_ok && y.data) {
        int64_t m = kiln__dims_volume(want_dims);
        double *ref = malloc(sizeof(double) * (size_t)(m ? m : 1));
        float *got = malloc(sizeof(float) * (size_t)(m ? m : 1)), *want = malloc(sizeof(float) * (size_t)(m ? m : 1));
        ref_resize(p, xd, in, want_dims, scale, r0, r1, resized, ref);
        for (int64_t i = 0; i < m; i++) {
            got[i] = (float)kiln__load_f64(y.data, dt, i);
            double r = ref[i];
            if (dt == KILN_UINT8) r = fmin(fmax(nearbyint(r), 0), 255);
            else if (dt == KILN_INT8) r = fmin(fmax(nearbyint(r), -128), 127);
            want[i] = (float)r;
        }
        float tol = dt == KILN_FLOAT16 ? 2e-3f : (dt == KILN_UINT8 || dt == KILN_INT8) ? 1.0f : 1e-5f;
        kt_close(what, got, want, m, tol, tol);
        free(ref);
        free(got);
        free(want);
    }
    free(y.data);
    free(x);
    free(xd);
}

/* Scales given as params: random modes and coordinate transforms over 1..4-D inputs. */
static void test_random_scales(void) {
    static const float scale_choices[] = {0.5f, 0.6f, 0.75f, 1.0f, 1.5f, 2.0f, 2.5f, 3.0f, 0.8f};
    for (int trial = 0; trial < 300; trial++) {
        kiln__resize_params p = {0};
        p.mode = (int32_t)kt_randi(0, 2);
        p.coord = (int32_t)kt_randi(0, 6);
        p.nearest_round = (int32_t)kt_randi(0, 3);
        p.cubic_coeff = kt_randi(0, 1) ? -0.75f : -0.5f;
        p.exclude_outside = (int32_t)kt_randi(0, 1);
        p.extrapolation_value = 10.0f;
        kiln_dims in = {.nb_dims = (int32_t)kt_randi(1, 4)};
        for (int32_t i = 0; i < in.nb_dims; i++) in.d[i] = kt_randi(1, 5);
        double scale[KILN_MAX_DIMS], r0[KILN_MAX_DIMS], r1[KILN_MAX_DIMS];
        bool resized[KILN_MAX_DIMS];
        kiln_dims out = in;
        kiln__value extra[1];
        float roi[2 * KILN_MAX_DIMS];
        int32_t nb_extra = 0;
        for (int32_t i = 0; i < in.nb_dims; i++) {
            p.scales[i] = scale_choices[kt_randi(0, 8)];
            if (i < in.nb_dims - 2 && kt_randi(0, 1)) p.scales[i] = 1.0f; /* batch/channel dims mostly kept */
            scale[i] = (double)p.scales[i];
            out.d[i] = (int64_t)floor(scale[i] * (double)in.d[i]);
            resized[i] = true;
            r0[i] = 0;
            r1[i] = 1;
            roi[i] = kt_randf(-0.2f, 0.5f);
            roi[in.nb_dims + i] = kt_randf(0.5f, 1.2f);
        }
        if (p.coord == KILN_COORD_TF_CROP_AND_RESIZE) {
            extra[0] = lh_val(KILN_FLOAT32, DIMS(2 * in.nb_dims), roi);
            nb_extra = 1;
            for (int32_t i = 0; i < in.nb_dims; i++) {
                r0[i] = roi[i];
                r1[i] = roi[in.nb_dims + i];
            }
        }
        /* The kernel skips identity axes as the reference does; so must this reference. */
        for (int32_t i = 0; i < in.nb_dims; i++)
            if (out.d[i] == in.d[i] && scale[i] == 1 && (nb_extra == 0 || (r0[i] == 0 && r1[i] == 1))) resized[i] = false;
        kiln_dtype dt = trial % 10 == 0 ? KILN_FLOAT16 : trial % 10 == 1 ? KILN_UINT8 : trial % 10 == 2 ? KILN_INT8 : KILN_FLOAT32;
        char what[160];
        snprintf(what, sizeof what, "resize trial %d mode %d coord %d round %d excl %d %s", trial, p.mode, p.coord,
                 p.nearest_round, p.exclude_outside, kiln_dtype_name(dt));
        check_case(&p, dt, &in, extra, nb_extra, &out, scale, r0, r1, resized, what);
    }
}

/* Sizes (params and input), scales input, axes subsets, keep_aspect_ratio_policy. */
static void test_sizes_axes_aspect(void) {
    kiln_dims in = DIMS(1, 2, 4, 6);
    double r0[4] = {0, 0, 0, 0}, r1[4] = {1, 1, 1, 1};
    /* sizes on all dims, from the params */
    kiln__resize_params p = {.mode = KILN_RESIZE_LINEAR, .coord = KILN_COORD_PYTORCH_HALF_PIXEL, .use_sizes = 1,
                             .sizes = DIMS(1, 2, 3, 9)};
    double sc[4] = {1, 1, 3.0 / 4, 9.0 / 6};
    bool rs[4] = {false, false, true, true};
    check_case(&p, KILN_FLOAT32, &in, NULL, 0, &DIMS(1, 2, 3, 9), sc, r0, r1, rs, "sizes params");
    /* sizes from an int64 input, over axes [3, 2] */
    int64_t sizes[2] = {4, 7};
    kiln__value extra[3] = {{0}, {0}, lh_val(KILN_INT64, DIMS(2), sizes)};
    p = (kiln__resize_params){.mode = KILN_RESIZE_CUBIC, .coord = KILN_COORD_HALF_PIXEL, .cubic_coeff = -0.75f,
                              .nb_axes = 2, .axes = {3, -2}};
    double sc2[4] = {1, 1, 7.0 / 4, 4.0 / 6};
    check_case(&p, KILN_FLOAT32, &in, extra, 3, &DIMS(1, 2, 7, 4), sc2, r0, r1, rs, "sizes input axes");
    /* keep_aspect_ratio not_larger / not_smaller with sizes [8, 8] on axes 2, 3 */
    int64_t sq[2] = {8, 8};
    extra[2] = lh_val(KILN_INT64, DIMS(2), sq);
    p = (kiln__resize_params){.mode = KILN_RESIZE_NEAREST, .coord = KILN_COORD_HALF_PIXEL, .nb_axes = 2,
                              .axes = {2, 3}, .keep_aspect_ratio = 1};
    double s_nl = 8.0 / 6, sc3[4] = {1, 1, s_nl, s_nl};
    check_case(&p, KILN_FLOAT32, &in, extra, 3, &DIMS(1, 2, 5, 8), sc3, r0, r1, rs, "not_larger");
    p.keep_aspect_ratio = 2;
    double s_ns = 2.0, sc4[4] = {1, 1, s_ns, s_ns};
    check_case(&p, KILN_FLOAT32, &in, extra, 3, &DIMS(1, 2, 8, 12), sc4, r0, r1, rs, "not_smaller");
    /* scales from a float input; an empty roi input counts as absent */
    float scales[4] = {1, 1, 0.5f, 1.5f};
    float none[1];
    kiln__value ex2[2] = {lh_val(KILN_FLOAT32, DIMS(0), none), lh_val(KILN_FLOAT32, DIMS(4), scales)};
    p = (kiln__resize_params){.mode = KILN_RESIZE_LINEAR, .coord = KILN_COORD_ALIGN_CORNERS};
    double sc5[4] = {1, 1, 0.5, 1.5};
    bool rs5[4] = {false, false, true, true};
    check_case(&p, KILN_FLOAT32, &in, ex2, 2, &DIMS(1, 2, 2, 9), sc5, r0, r1, rs5, "scales input");
    /* tf_crop_and_resize over axes [2, 3] with roi for those axes only */
    float roi[4] = {0.4f, 0.6f, 0.6f, 0.8f};
    kiln__value ex3[2] = {lh_val(KILN_FLOAT32, DIMS(4), roi), lh_val(KILN_FLOAT32, DIMS(2), (float[]){2.0f, 1.5f})};
    p = (kiln__resize_params){.mode = KILN_RESIZE_LINEAR, .coord = KILN_COORD_TF_CROP_AND_RESIZE,
                              .extrapolation_value = 10, .nb_axes = 2, .axes = {2, 3}};
    double sc6[4] = {1, 1, 2.0, 1.5}, q0[4] = {0, 0, 0.4f, 0.6f}, q1[4] = {1, 1, 0.6f, 0.8f};
    check_case(&p, KILN_FLOAT32, &in, ex3, 2, &DIMS(1, 2, 8, 9), sc6, q0, q1, rs5, "tf_crop axes");
}

static void test_infer_and_errors(void) {
    kiln_layer l = lh_layer(KILN_LAYER_RESIZE, 4);
    kiln__value in[4] = {lh_val(KILN_FLOAT32, DIMS(1, 3, -1, 8), NULL), {0}, {0}, lh_val(KILN_INT64, DIMS(4), NULL)},
                y;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(-1, -1, -1, -1)));
    in[3] = (kiln__value){0};
    l.p.resize.scales[0] = l.p.resize.scales[1] = 1;
    l.p.resize.scales[2] = l.p.resize.scales[3] = 2;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(1, 3, -1, 16)));
    l.p.resize.scales[3] = 0;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    l.p.resize.scales[3] = 2;
    l.p.resize.mode = 7;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    l.p.resize.mode = 0;
    l.p.resize.nb_axes = 2;
    l.p.resize.axes[0] = 2;
    l.p.resize.axes[1] = -2;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    l.p.resize.axes[1] = 4;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    l.p.resize.nb_axes = 0;
    int64_t sz[3] = {1, 2, 3};
    in[3] = lh_val(KILN_INT64, DIMS(3), sz);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    in[3] = (kiln__value){0};
    in[0] = lh_val(KILN_INT32, DIMS(1, 3, 4, 8), NULL);
    KT_STATUS(lh_infer(&l, in, &y), KILN_UNSUPPORTED);

    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    kiln_tensor *x = NULL;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &DIMS(1, 1, 3, 4), &x));
    kiln_resize_desc d = {.struct_size = sizeof d, .mode = KILN_RESIZE_CUBIC, .coord = KILN_COORD_ASYMMETRIC,
                          .scales = {1, 1, 2, 2}};
    kiln_layer *r = NULL;
    KT_OK(kiln_network_add_resize(net, x, &d, &r));
    KT_CHECK(r->p.resize.cubic_coeff == -0.75f);
    kiln_dims od;
    KT_OK(kiln_tensor_shape(kiln_layer_output(r, 0), &od));
    KT_CHECK(kiln__dims_equal(&od, &DIMS(1, 1, 6, 8)));
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(r, 0)));
    d.use_sizes = 1;
    d.sizes = DIMS(1, 1, 5);
    KT_STATUS(kiln_network_add_resize(net, x, &d, NULL), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(Resize)") != NULL);
    float xv[12];
    double xd[12], ref[48];
    kt_fill(xv, 12, -1, 1);
    for (int i = 0; i < 12; i++) xd[i] = xv[i];
    size_t bytes = 0;
    float *out = lh_execute(b, net, "x", xv, sizeof xv, &bytes, &od);
    if (out) {
        kiln__resize_params p = r->p.resize;
        double sc[4] = {1, 1, 2, 2}, r0[4] = {0}, r1[4] = {1, 1, 1, 1};
        bool rs[4] = {false, false, true, true};
        ref_resize(&p, xd, &DIMS(1, 1, 3, 4), &DIMS(1, 1, 6, 8), sc, r0, r1, rs, ref);
        float want[48];
        for (int i = 0; i < 48; i++) want[i] = (float)ref[i];
        kt_close("resize end to end", out, want, 48, 1e-5f, 1e-5f);
    }
    free(out);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

int main(void) {
    lh_init();
    test_random_scales();
    test_sizes_axes_aspect();
    test_infer_and_errors();
    lh_done();
    return kt_summary("test_cpu_resize");
}
