/* The tensor-manipulation layers (select, topk, fill, padding, scatter, einsum, expand, tile,
 * cumsum, onehot, nonzero, trilu): each kernel against a reference written here on fresh
 * random inputs plus edge cases, and infer error cases. */
#include "unit/layer_harness.h"
#include "network/tensor_layers.h"

LH_LINK(select)
LH_LINK(topk)
LH_LINK(fill)
LH_LINK(padding)
LH_LINK(scatter)
LH_LINK(einsum)
LH_LINK(expand)
LH_LINK(tile)
LH_LINK(cumsum)
LH_LINK(onehot)
LH_LINK(nonzero)
LH_LINK(trilu)

/* infer + kernel for layers with several outputs; outputs malloc'ed (free with free_outs). */
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

static kiln_dims rand_dims(int32_t rank, int64_t lo, int64_t hi) {
    kiln_dims d = {.nb_dims = rank};
    for (int32_t i = 0; i < rank; i++) d.d[i] = kt_randi(lo, hi);
    return d;
}

static float *rand_floats(int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    kt_fill(x, n, -2, 2);
    return x;
}

/* Offset of a broadcast read: coordinate c of the output in an input of dims d. */
static int64_t bcast_off(const int64_t *c, int32_t out_rank, const kiln_dims *d) {
    int64_t off = 0;
    for (int32_t i = 0; i < d->nb_dims; i++) {
        int64_t ci = c[i + out_rank - d->nb_dims];
        off = off * d->d[i] + (d->d[i] == 1 ? 0 : ci);
    }
    return off;
}

/* Drops a random subset of dims to 1 and of leading dims entirely (for broadcasting). */
static kiln_dims bcast_of(const kiln_dims *out) {
    kiln_dims d = {.nb_dims = (int32_t)kt_randi(0, out->nb_dims)};
    for (int32_t i = 0; i < d.nb_dims; i++) {
        d.d[i] = out->d[i + out->nb_dims - d.nb_dims];
        if (kt_randi(0, 2) == 0) d.d[i] = 1;
    }
    return d;
}

/* ---------------------------------------------------------------- select, expand, tile */

static void test_select(void) {
    for (int it = 0; it < 100; it++) {
        kiln_dims out = rand_dims((int32_t)kt_randi(1, 4), 1, 5);
        kiln_dims dc = bcast_of(&out), da = bcast_of(&out), db = it % 3 ? bcast_of(&out) : out;
        int64_t nc = kiln__dims_volume(&dc), na = kiln__dims_volume(&da), nb = kiln__dims_volume(&db);
        uint8_t *c = malloc((size_t)nc);
        for (int64_t i = 0; i < nc; i++) c[i] = (uint8_t)kt_randi(0, 1);
        float *a = rand_floats(na), *b = rand_floats(nb);
        kiln_layer l = lh_layer(KILN_LAYER_SELECT, 3);
        kiln__value in[3] = {lh_val(KILN_BOOL, dc, c), lh_val(KILN_FLOAT32, da, a), lh_val(KILN_FLOAT32, db, b)}, y;
        KT_OK(lh_run(&l, in, &y));
        if (kiln__dims_equal(&y.dims, &out) || kiln__dims_volume(&y.dims) == kiln__dims_volume(&out)) {
            int64_t n = kiln__dims_volume(&y.dims), co[KILN_MAX_DIMS];
            float *ref = malloc(sizeof(float) * (size_t)n);
            for (int64_t e = 0; e < n; e++) {
                lh_unravel(e, &y.dims, co);
                ref[e] = c[bcast_off(co, y.dims.nb_dims, &dc)] ? a[bcast_off(co, y.dims.nb_dims, &da)]
                                                               : b[bcast_off(co, y.dims.nb_dims, &db)];
            }
            kt_close("select", y.data, ref, n, 0, 0);
            free(ref);
        }
        free(y.data);
        free(c);
        free(a);
        free(b);
    }
    /* float32 with a scalar on one side or both, as exported attention uses them */
    for (int it = 0; it < 12; it++) {
        kiln_dims out = rand_dims((int32_t)kt_randi(1, 4), 2, 9), one = {1, {1}};
        kiln_dims da = it % 3 == 1 ? out : one, db = it % 3 == 0 ? out : one;
        int64_t n = kiln__dims_volume(&out), na = kiln__dims_volume(&da), nb = kiln__dims_volume(&db);
        uint8_t *c = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) c[i] = (uint8_t)kt_randi(0, 1);
        float *a = rand_floats(na), *b = rand_floats(nb), *ref = malloc(sizeof(float) * (size_t)n);
        for (int64_t e = 0; e < n; e++) ref[e] = c[e] ? a[na == 1 ? 0 : e] : b[nb == 1 ? 0 : e];
        kiln_layer l = lh_layer(KILN_LAYER_SELECT, 3);
        kiln__value in[3] = {lh_val(KILN_BOOL, out, c), lh_val(KILN_FLOAT32, da, a), lh_val(KILN_FLOAT32, db, b)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &out));
        if (kiln__dims_equal(&y.dims, &out)) kt_close("select scalar side", y.data, ref, n, 0, 0);
        free(y.data);
        free(ref);
        free(c);
        free(a);
        free(b);
    }
    /* 8-byte elements (int64) take the generic copy; shapes with runs of every kind */
    for (int it = 0; it < 60; it++) {
        kiln_dims out = rand_dims((int32_t)kt_randi(1, 5), 1, 6);
        kiln_dims dc = bcast_of(&out), da = bcast_of(&out), db = it % 2 ? bcast_of(&out) : out;
        int64_t nc = kiln__dims_volume(&dc), na = kiln__dims_volume(&da), nb = kiln__dims_volume(&db);
        uint8_t *c = malloc((size_t)nc);
        int64_t *a = malloc(sizeof(int64_t) * (size_t)na), *b = malloc(sizeof(int64_t) * (size_t)nb);
        for (int64_t i = 0; i < nc; i++) c[i] = (uint8_t)kt_randi(0, 1);
        for (int64_t i = 0; i < na; i++) a[i] = kt_randi(-1000, 1000);
        for (int64_t i = 0; i < nb; i++) b[i] = kt_randi(-1000, 1000) + ((int64_t)1 << 40);
        kiln_layer l = lh_layer(KILN_LAYER_SELECT, 3);
        kiln__value in[3] = {lh_val(KILN_BOOL, dc, c), lh_val(KILN_INT64, da, a), lh_val(KILN_INT64, db, b)}, y;
        KT_OK(lh_run(&l, in, &y));
        int64_t n = kiln__dims_volume(&y.dims), co[KILN_MAX_DIMS], bad = 0;
        for (int64_t e = 0; e < n; e++) {
            lh_unravel(e, &y.dims, co);
            int64_t want = c[bcast_off(co, y.dims.nb_dims, &dc)] ? a[bcast_off(co, y.dims.nb_dims, &da)]
                                                                 : b[bcast_off(co, y.dims.nb_dims, &db)];
            bad += ((const int64_t *)y.data)[e] != want;
        }
        KT_CHECK(bad == 0);
        free(y.data);
        free(c);
        free(a);
        free(b);
    }
    /* condition must be bool; shapes must broadcast */
    kiln_layer l = lh_layer(KILN_LAYER_SELECT, 3);
    float f[6] = {0};
    kiln__value bad[3] = {lh_val(KILN_FLOAT32, DIMS(2), f), lh_val(KILN_FLOAT32, DIMS(2), f),
                          lh_val(KILN_FLOAT32, DIMS(2), f)},
                y;
    KT_STATUS(lh_infer(&l, bad, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    uint8_t c[3] = {0};
    kiln__value mism[3] = {lh_val(KILN_BOOL, DIMS(3), c), lh_val(KILN_FLOAT32, DIMS(2), f),
                           lh_val(KILN_FLOAT32, DIMS(2), f)};
    KT_STATUS(lh_infer(&l, mism, &y), KILN_INVALID_ARGUMENT);
}

static void test_expand_tile(void) {
    for (int it = 0; it < 20; it++) {
        kiln_dims out = rand_dims((int32_t)kt_randi(1, 4), 1, 4);
        kiln_dims dx = bcast_of(&out);
        int64_t nx = kiln__dims_volume(&dx);
        int16_t *x = malloc(sizeof(int16_t) * (size_t)nx);
        for (int64_t i = 0; i < nx; i++) x[i] = (int16_t)kt_randi(-1000, 1000);
        int64_t shape[KILN_MAX_DIMS];
        for (int32_t i = 0; i < out.nb_dims; i++) shape[i] = out.d[i];
        /* a target entry of 1 keeps the input's dim (bidirectional broadcast) */
        if (dx.nb_dims == out.nb_dims && dx.d[0] == out.d[0]) shape[0] = 1;
        kiln_layer l = lh_layer(KILN_LAYER_EXPAND, 2);
        kiln__value in[2] = {lh_val(KILN_INT16, dx, x), lh_val(KILN_INT64, DIMS(out.nb_dims), shape)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &out));
        int64_t n = kiln__dims_volume(&out), co[KILN_MAX_DIMS], bad = 0;
        for (int64_t e = 0; e < n && kiln__dims_equal(&y.dims, &out); e++) {
            lh_unravel(e, &out, co);
            bad += ((int16_t *)y.data)[e] != x[bcast_off(co, out.nb_dims, &dx)];
        }
        KT_CHECK(bad == 0);
        free(y.data);
        /* unknown shape values: dims -1 except where x's dim > 1 decides them */
        in[1].data = NULL;
        KT_OK(lh_infer(&l, in, &y));
        KT_CHECK(y.dims.nb_dims == out.nb_dims);

        kiln_dims dt = rand_dims((int32_t)kt_randi(1, 4), 0, 3);
        int64_t nt = kiln__dims_volume(&dt), reps[KILN_MAX_DIMS];
        float *t = rand_floats(nt);
        for (int32_t i = 0; i < dt.nb_dims; i++) reps[i] = kt_randi(0, 3);
        kiln_layer lt = lh_layer(KILN_LAYER_TILE, 2);
        kiln__value tin[2] = {lh_val(KILN_FLOAT32, dt, t), lh_val(KILN_INT64, DIMS(dt.nb_dims), reps)};
        KT_OK(lh_run(&lt, tin, &y));
        bool dims_ok = y.dims.nb_dims == dt.nb_dims;
        for (int32_t i = 0; i < dt.nb_dims && dims_ok; i++) dims_ok = y.dims.d[i] == dt.d[i] * reps[i];
        KT_CHECK(dims_ok);
        n = kiln__dims_volume(&y.dims);
        bad = 0;
        for (int64_t e = 0; e < n && dims_ok; e++) {
            lh_unravel(e, &y.dims, co);
            int64_t off = 0;
            for (int32_t i = 0; i < dt.nb_dims; i++) off = off * dt.d[i] + co[i] % dt.d[i];
            bad += ((float *)y.data)[e] != t[off];
        }
        KT_CHECK(bad == 0);
        free(y.data);
        free(t);
        free(x);
    }
    /* Elements of 1, 4 and 8 bytes over larger shapes: runs copied whole or one element repeated
     * (the attention mask [1, 1, 1, n] to [1, h, n, n]; a column [r, 1] to [r, n]). */
    for (int it = 0; it < 60; it++) {
        kiln_dims out = it == 0 ? (kiln_dims){4, {1, 3, 9, 9}} : rand_dims((int32_t)kt_randi(1, 5), 1, 7);
        kiln_dims dx = it == 0 ? (kiln_dims){4, {1, 1, 1, 9}} : bcast_of(&out);
        const kiln_dtype types[3] = {KILN_BOOL, KILN_FLOAT32, KILN_INT64};
        kiln_dtype t = types[it % 3];
        size_t es = kiln__elem_bytes(t);
        int64_t nx = kiln__dims_volume(&dx), shape[KILN_MAX_DIMS];
        uint8_t *x = malloc(es * (size_t)nx);
        for (int64_t i = 0; i < nx * (int64_t)es; i++)
            x[i] = (uint8_t)(t == KILN_BOOL ? kt_randi(0, 1) : kt_randi(1, 255));
        for (int32_t i = 0; i < out.nb_dims; i++) shape[i] = out.d[i];
        kiln_layer l = lh_layer(KILN_LAYER_EXPAND, 2);
        kiln__value in[2] = {lh_val(t, dx, x), lh_val(KILN_INT64, DIMS(out.nb_dims), shape)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &out));
        int64_t n = kiln__dims_volume(&out), co[KILN_MAX_DIMS], bad = 0;
        for (int64_t e = 0; e < n && kiln__dims_equal(&y.dims, &out); e++) {
            lh_unravel(e, &out, co);
            bad += memcmp((const uint8_t *)y.data + e * (int64_t)es, x + bcast_off(co, out.nb_dims, &dx) * (int64_t)es,
                          es) != 0;
        }
        KT_CHECK(bad == 0);
        free(y.data);
        free(x);
    }
    kiln_layer l = lh_layer(KILN_LAYER_EXPAND, 2);
    float x[3] = {0};
    int64_t shape[2] = {2, 4};
    kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(3), x), lh_val(KILN_INT64, DIMS(2), shape)}, y;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    kiln_layer lt = lh_layer(KILN_LAYER_TILE, 2);
    KT_STATUS(lh_infer(&lt, in, &y), KILN_INVALID_ARGUMENT); /* 2 repeats for rank 1 */
    int64_t neg[1] = {-1};
    kiln__value tin[2] = {lh_val(KILN_FLOAT32, DIMS(3), x), lh_val(KILN_INT64, DIMS(1), neg)};
    KT_STATUS(lh_infer(&lt, tin, &y), KILN_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- nonzero, topk */

static void test_nonzero(void) {
    for (int it = 0; it < 10; it++) {
        kiln_dims d = rand_dims((int32_t)kt_randi(1, 4), 0, 5);
        int64_t n = kiln__dims_volume(&d), co[KILN_MAX_DIMS];
        float *x = rand_floats(n);
        for (int64_t i = 0; i < n; i++)
            if (kt_randi(0, 2) == 0) x[i] = kt_randi(0, 1) ? 0.0f : -0.0f;
        kiln_layer l = lh_layer(KILN_LAYER_NONZERO, 1);
        kiln__value in = lh_val(KILN_FLOAT32, d, NULL), y;
        KT_OK(lh_infer(&l, &in, &y));
        KT_CHECK(y.dims.nb_dims == 2 && y.dims.d[0] == d.nb_dims && y.dims.d[1] == -1);
        in.data = x;
        KT_OK(lh_run(&l, &in, &y));
        int64_t count = y.dims.d[1], j = 0, bad = 0;
        for (int64_t e = 0; e < n; e++) {
            if (x[e] == 0) continue;
            lh_unravel(e, &d, co);
            for (int32_t k = 0; k < d.nb_dims && j < count; k++) bad += ((int64_t *)y.data)[k * count + j] != co[k];
            j++;
        }
        KT_CHECK(j == count && bad == 0);
        free(y.data);
        free(x);
    }
}

static void test_topk(void) {
    for (int it = 0; it < 20; it++) {
        kiln_dims d = rand_dims((int32_t)kt_randi(1, 3), 1, 6);
        int32_t axis = (int32_t)kt_randi(0, d.nb_dims - 1);
        int64_t n = kiln__dims_volume(&d), dim = d.d[axis], k = kt_randi(0, dim);
        int32_t *x = malloc(sizeof(int32_t) * (size_t)n);
        for (int64_t i = 0; i < n; i++) x[i] = (int32_t)kt_randi(-3, 3); /* many ties */
        kiln__topk_params p = {.axis = axis - (it % 2 ? d.nb_dims : 0), .largest = it % 4 < 2, .sorted = 1};
        kiln_layer l = lh_layer(KILN_LAYER_TOPK, 2);
        l.nb_outputs = 2;
        memcpy(l.p.bytes, &p, sizeof p);
        int64_t kv = k;
        kiln__value in[2] = {lh_val(KILN_INT32, d, x), lh_val(KILN_INT64, DIMS(1), &kv)}, out[2];
        KT_OK(run_n(&l, in, out));
        KT_CHECK(out[0].dims.d[axis] == k && out[1].dtype == KILN_INT64);
        int64_t inner = 1, outer = n / dim, bad = 0;
        for (int32_t i = axis + 1; i < d.nb_dims; i++) inner *= d.d[i];
        outer /= inner;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t in_ = 0; in_ < inner; in_++) {
                /* reference: repeated selection of the best unused element, lowest index on ties */
                bool used[6] = {false};
                for (int64_t j = 0; j < k; j++) {
                    int64_t best = -1;
                    for (int64_t a = 0; a < dim; a++) {
                        if (used[a]) continue;
                        int32_t v = x[(o * dim + a) * inner + in_];
                        if (best < 0) best = a;
                        int32_t bv = x[(o * dim + best) * inner + in_];
                        if (p.largest ? v > bv : v < bv) best = a;
                    }
                    used[best] = true;
                    int64_t e = (o * k + j) * inner + in_;
                    bad += ((int32_t *)out[0].data)[e] != x[(o * dim + best) * inner + in_];
                    bad += ((int64_t *)out[1].data)[e] != best;
                }
            }
        KT_CHECK(bad == 0);
        free(out[0].data);
        free(out[1].data);
        /* k larger than the dim is an error naming the layer */
        kv = dim + 1;
        KT_STATUS(run_n(&l, in, out), KILN_INVALID_ARGUMENT);
        KT_CHECK(lh_names_layer());
        free(x);
    }
    /* unsorted: the k largest in index order; static k without input 1 */
    float x[5] = {1, 5, 3, 4, 2};
    kiln__topk_params p = {.axis = 0, .largest = 1, .sorted = 0, .k = 3};
    kiln_layer l = lh_layer(KILN_LAYER_TOPK, 1);
    l.nb_outputs = 2;
    memcpy(l.p.bytes, &p, sizeof p);
    kiln__value in = lh_val(KILN_FLOAT32, DIMS(5), x), out[2];
    KT_OK(run_n(&l, &in, out));
    KT_CHECK(((int64_t *)out[1].data)[0] == 1 && ((int64_t *)out[1].data)[1] == 2 &&
             ((int64_t *)out[1].data)[2] == 3);
    free(out[0].data);
    free(out[1].data);
    p.axis = 1;
    memcpy(l.p.bytes, &p, sizeof p);
    KT_STATUS(run_n(&l, &in, out), KILN_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- fill */

static void test_fill(void) {
    kiln__fill_params p = {.mode = KILN__FILL_CONSTANT, .dtype = KILN_INT64, .ivalue = INT64_C(9007199254740993)};
    kiln_layer l = lh_layer(KILN_LAYER_FILL, 1);
    memcpy(l.p.bytes, &p, sizeof p);
    int64_t shape[3] = {2, 0, 3};
    kiln__value in[3] = {lh_val(KILN_INT64, DIMS(2), shape)}, y;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(y.dims.nb_dims == 2 && y.dims.d[0] == 2 && y.dims.d[1] == 0);
    free(y.data);
    shape[1] = 4;
    KT_OK(lh_run(&l, in, &y));
    bool ok = kiln__dims_volume(&y.dims) == 8;
    for (int i = 0; i < 8 && ok; i++) ok = ((int64_t *)y.data)[i] == INT64_C(9007199254740993);
    KT_CHECK(ok);
    free(y.data);
    in[0].data = NULL;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(y.dims.nb_dims == 2 && y.dims.d[0] == -1);
    p.dtype = KILN_FLOAT16;
    p.value = 1.5;
    memcpy(l.p.bytes, &p, sizeof p);
    in[0].data = shape;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(kiln__half_to_float(((uint16_t *)y.data)[7]) == 1.5f);
    free(y.data);
    shape[0] = -2;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);

    /* range: integer (exact ceil) and float, positive and negative delta */
    for (int it = 0; it < 20; it++) {
        int32_t s = (int32_t)kt_randi(-20, 20), lim = (int32_t)kt_randi(-20, 20), d = (int32_t)kt_randi(1, 5);
        if (it % 2) d = -d;
        kiln__fill_params rp = {.mode = KILN__FILL_RANGE};
        kiln_layer lr = lh_layer(KILN_LAYER_FILL, 3);
        memcpy(lr.p.bytes, &rp, sizeof rp);
        kiln__value rin[3] = {lh_val(KILN_INT32, DIMS0, &s), lh_val(KILN_INT32, DIMS0, &lim),
                              lh_val(KILN_INT32, DIMS0, &d)};
        KT_OK(lh_run(&lr, rin, &y));
        int64_t count = 0, bad = 0;
        for (int32_t v = s; d > 0 ? v < lim : v > lim; v += d) {
            bad += count >= y.dims.d[0] || ((int32_t *)y.data)[count] != v;
            count++;
        }
        KT_CHECK(y.dims.d[0] == count && bad == 0);
        free(y.data);
        float fs = kt_randf(-5, 5), fl = kt_randf(-5, 5), fd = kt_randf(0.25f, 1) * (it % 2 ? -1 : 1);
        kiln__value fin[3] = {lh_val(KILN_FLOAT32, DIMS0, &fs), lh_val(KILN_FLOAT32, DIMS0, &fl),
                              lh_val(KILN_FLOAT32, DIMS0, &fd)};
        KT_OK(lh_run(&lr, fin, &y));
        int64_t fc = (int64_t)fmax(ceil(((double)fl - fs) / fd), 0);
        KT_CHECK(y.dims.d[0] == fc);
        if (fc > 0) KT_CHECK(fabsf(((float *)y.data)[fc - 1] - (fs + (float)(fc - 1) * fd)) < 1e-4f);
        free(y.data);
        int32_t zero = 0;
        rin[2].data = &zero;
        KT_STATUS(lh_infer(&lr, rin, &y), KILN_INVALID_ARGUMENT);
    }

    /* eye-like */
    for (int64_t k = -4; k <= 4; k++) {
        kiln__fill_params ep = {.mode = KILN__FILL_EYE, .dtype = KILN_INT32, .k = k};
        kiln_layer le = lh_layer(KILN_LAYER_FILL, 1);
        memcpy(le.p.bytes, &ep, sizeof ep);
        kiln__value ein = lh_val(KILN_FLOAT32, DIMS(3, 5), NULL);
        KT_OK(lh_run(&le, &ein, &y));
        int64_t bad = 0;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 5; c++) bad += ((int32_t *)y.data)[r * 5 + c] != (c - r == k);
        KT_CHECK(bad == 0 && y.dtype == KILN_INT32);
        free(y.data);
        ein.dims = DIMS(3);
        KT_STATUS(lh_infer(&le, &ein, &y), KILN_INVALID_ARGUMENT);
    }
}

/* ---------------------------------------------------------------- padding */

static int64_t ref_map(int32_t mode, int64_t c, int64_t d) {
    if (c >= 0 && c < d) return c;
    if (mode == KILN__PAD_CONSTANT) return -1;
    if (mode == KILN__PAD_EDGE) return c < 0 ? 0 : d - 1;
    if (mode == KILN__PAD_WRAP) {
        while (c < 0) c += d;
        return c % d;
    }
    if (d == 1) return 0;
    while (c < 0 || c >= d) c = c < 0 ? -c : 2 * (d - 1) - c; /* mirror until inside */
    return c;
}

static void test_padding(void) {
    for (int it = 0; it < 40; it++) {
        int32_t mode = it % 4, rank = (int32_t)kt_randi(1, 3);
        kiln_dims d = rand_dims(rank, 1, 4);
        int64_t n = kiln__dims_volume(&d), pads[2 * KILN_MAX_DIMS];
        for (int32_t i = 0; i < 2 * rank; i++)
            pads[i] = mode == KILN__PAD_CONSTANT ? kt_randi(-1, 4) : kt_randi(0, 5);
        for (int32_t i = 0; i < rank; i++)
            if (d.d[i] + pads[i] + pads[rank + i] < 0) pads[i] = 0, pads[rank + i] = 0;
        double *x = malloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < n; i++) x[i] = kt_randf(-9, 9);
        double value = 7.25;
        kiln__padding_params p = {.mode = mode, .value = it % 8 < 4 ? 3.5 : 0};
        kiln_layer l = lh_layer(KILN_LAYER_PADDING, it % 8 < 4 ? 2 : 3);
        memcpy(l.p.bytes, &p, sizeof p);
        kiln__value in[3] = {lh_val(KILN_FLOAT64, d, x), lh_val(KILN_INT64, DIMS(2 * rank), pads),
                             lh_val(KILN_FLOAT64, DIMS0, &value)},
                    y;
        KT_OK(lh_run(&l, in, &y));
        double fill = it % 8 < 4 ? 3.5 : value;
        int64_t m = kiln__dims_volume(&y.dims), co[KILN_MAX_DIMS], bad = 0;
        for (int32_t i = 0; i < rank; i++) bad += y.dims.d[i] != d.d[i] + pads[i] + pads[rank + i];
        for (int64_t e = 0; e < m && !bad; e++) {
            lh_unravel(e, &y.dims, co);
            int64_t off = 0;
            bool inside = true;
            for (int32_t i = 0; i < rank && inside; i++) {
                int64_t c = ref_map(mode, co[i] - pads[i], d.d[i]);
                inside = c >= 0;
                off = off * d.d[i] + c;
            }
            bad += ((double *)y.data)[e] != (inside ? x[off] : fill);
        }
        KT_CHECK(bad == 0);
        free(y.data);
        free(x);
    }
    /* axes input: pad only dim 1 of a 2x2 int8 tensor; static pads; errors */
    int8_t x[4] = {1, 2, 3, 4};
    int64_t pads[2] = {1, 0}, axes[1] = {-1};
    kiln__padding_params p = {.mode = KILN__PAD_EDGE};
    kiln_layer l = lh_layer(KILN_LAYER_PADDING, 4);
    memcpy(l.p.bytes, &p, sizeof p);
    kiln__value in[4] = {lh_val(KILN_INT8, DIMS(2, 2), x), lh_val(KILN_INT64, DIMS(2), pads),
                         {.dtype = KILN_DTYPE_UNDEFINED}, lh_val(KILN_INT64, DIMS(1), axes)},
                y;
    KT_OK(lh_run(&l, in, &y));
    const int8_t want[6] = {1, 1, 2, 3, 3, 4};
    KT_CHECK(y.dims.d[0] == 2 && y.dims.d[1] == 3 && memcmp(y.data, want, 6) == 0);
    free(y.data);
    in[1].dims = DIMS(3);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    in[1].dims = DIMS(2);
    in[1].data = NULL;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(y.dims.d[0] == -1 && y.dims.d[1] == -1);
    kiln__padding_params sp = {.mode = KILN__PAD_CONSTANT, .pads = {0, -3, 0, 0}};
    kiln_layer ls = lh_layer(KILN_LAYER_PADDING, 1);
    memcpy(ls.p.bytes, &sp, sizeof sp);
    KT_STATUS(lh_infer(&ls, in, &y), KILN_INVALID_ARGUMENT); /* crops dim 1 below zero */
}

/* ---------------------------------------------------------------- scatter */

static void test_scatter(void) {
    for (int it = 0; it < 20; it++) {
        /* ScatterND: data [4, 3, 2], indices [m, k] */
        int32_t k = (int32_t)kt_randi(1, 3), red = it % 5, m = (int32_t)kt_randi(1, 5);
        kiln_dims dd = DIMS(4, 3, 2);
        int64_t inner = 1, nd = 24, idx[16], stride[3] = {6, 2, 1};
        for (int32_t i = k; i < 3; i++) inner *= dd.d[i];
        float data[24], upd[5 * 6], ref[24];
        kt_fill(data, 24, -3, 3);
        kt_fill(upd, m * inner, -3, 3);
        for (int32_t t = 0; t < m; t++)
            for (int32_t c = 0; c < k; c++) idx[t * k + c] = kt_randi(-dd.d[c], dd.d[c] - 1);
        memcpy(ref, data, sizeof ref);
        for (int32_t t = 0; t < m; t++) {
            int64_t off = 0;
            for (int32_t c = 0; c < k; c++) off += (idx[t * k + c] < 0 ? idx[t * k + c] + dd.d[c] : idx[t * k + c]) * stride[c];
            for (int64_t e = 0; e < inner; e++) {
                float *r = &ref[off + e], u = upd[t * inner + e];
                *r = red == 0 ? u : red == 1 ? *r + u : red == 2 ? *r * u : red == 3 ? fmaxf(*r, u) : fminf(*r, u);
            }
        }
        kiln__scatter_params p = {.mode = KILN__SCATTER_ND, .reduction = red};
        kiln_layer l = lh_layer(KILN_LAYER_SCATTER, 3);
        memcpy(l.p.bytes, &p, sizeof p);
        kiln_dims ud = {.nb_dims = 1 + 3 - k, .d = {m}};
        for (int32_t i = k; i < 3; i++) ud.d[1 + i - k] = dd.d[i];
        kiln__value in[3] = {lh_val(KILN_FLOAT32, dd, data), lh_val(KILN_INT64, DIMS(m, k), idx),
                             lh_val(KILN_FLOAT32, ud, upd)},
                    y;
        KT_OK(lh_run(&l, in, &y));
        kt_close("scatter_nd", y.data, ref, nd, 1e-6f, 1e-6f);
        free(y.data);
        idx[0] = 4;
        KT_STATUS(lh_run(&l, in, &y), KILN_INVALID_ARGUMENT);
        KT_CHECK(lh_names_layer());
        free(y.data);
        ud.d[0] = m + 1;
        in[2].dims = ud;
        KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);

        /* ScatterElements on int32 data [3, 4] along a random axis */
        int32_t axis = (int32_t)kt_randi(0, 1);
        int32_t d2[12], u2[6], r2[12];
        int32_t i32[6];
        for (int i = 0; i < 12; i++) d2[i] = (int32_t)kt_randi(-50, 50);
        for (int i = 0; i < 6; i++) u2[i] = (int32_t)kt_randi(-50, 50);
        kiln_dims id = axis == 0 ? DIMS(2, 3) : DIMS(3, 2);
        int64_t dim = axis == 0 ? 3 : 4;
        for (int i = 0; i < 6; i++) i32[i] = (int32_t)kt_randi(-dim, dim - 1);
        memcpy(r2, d2, sizeof r2);
        for (int i = 0; i < 6; i++) {
            int64_t r = i / id.d[1], c = i % id.d[1], w = i32[i] < 0 ? i32[i] + dim : i32[i];
            int32_t *t = &r2[(axis == 0 ? w : r) * 4 + (axis == 0 ? c : w)];
            *t = red == 0 ? u2[i] : red == 1 ? *t + u2[i] : red == 2 ? *t * u2[i] : red == 3 ? KILN__MAX(*t, u2[i]) : KILN__MIN(*t, u2[i]);
        }
        kiln__scatter_params pe = {.mode = KILN__SCATTER_ELEMENTS, .axis = axis - (it % 2 ? 2 : 0), .reduction = red};
        memcpy(l.p.bytes, &pe, sizeof pe);
        kiln__value ein[3] = {lh_val(KILN_INT32, DIMS(3, 4), d2), lh_val(KILN_INT32, id, i32),
                              lh_val(KILN_INT32, id, u2)};
        KT_OK(lh_run(&l, ein, &y));
        KT_CHECK(memcmp(y.data, r2, sizeof r2) == 0);
        free(y.data);
        i32[5] = (int32_t)dim;
        KT_STATUS(lh_run(&l, ein, &y), KILN_INVALID_ARGUMENT);
        free(y.data);
        ein[1].dtype = KILN_FLOAT32;
        KT_STATUS(lh_infer(&l, ein, &y), KILN_INVALID_ARGUMENT);
    }
}

/* ---------------------------------------------------------------- einsum */

static kiln_status run_einsum(const char *eq, kiln__value *in, int32_t n, kiln__value *y) {
    kiln__einsum_params p;
    memset(&p, 0, sizeof p);
    snprintf(p.equation, sizeof p.equation, "%s", eq);
    kiln_layer l = lh_layer(KILN_LAYER_EINSUM, n);
    memcpy(l.p.bytes, &p, sizeof p);
    return lh_run(&l, in, y);
}

static void test_einsum(void) {
    for (int it = 0; it < 10; it++) {
        int64_t B = kt_randi(1, 3), I = kt_randi(1, 4), J = kt_randi(1, 4), K = kt_randi(1, 4);
        float *a = rand_floats(B * I * J), *b = rand_floats(J * K), *ref = malloc(sizeof(float) * (size_t)(B * I * K));
        /* batched matmul with a broadcast ellipsis: "...ij,jk->...ik" */
        for (int64_t bb = 0; bb < B; bb++)
            for (int64_t i = 0; i < I; i++)
                for (int64_t k = 0; k < K; k++) {
                    double s = 0;
                    for (int64_t j = 0; j < J; j++) s += (double)a[(bb * I + i) * J + j] * b[j * K + k];
                    ref[(bb * I + i) * K + k] = (float)s;
                }
        kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(B, I, J), a), lh_val(KILN_FLOAT32, DIMS(J, K), b)}, y;
        KT_OK(run_einsum("...ij, jk -> ...ik", in, 2, &y));
        KT_CHECK(y.dims.nb_dims == 3 && y.dims.d[0] == B && y.dims.d[2] == K);
        kt_close("einsum batched", y.data, ref, B * I * K, 1e-5f, 1e-5f);
        free(y.data);
        /* implicit output: "bij,jk" sums j and orders the rest b, i, k */
        KT_OK(run_einsum("bij,jk", in, 2, &y));
        kt_close("einsum implicit", y.data, ref, B * I * K, 1e-5f, 1e-5f);
        free(y.data);
        /* transpose + sum: "bij->jb" */
        float *r2 = calloc((size_t)(J * B), sizeof(float));
        for (int64_t bb = 0; bb < B; bb++)
            for (int64_t i = 0; i < I; i++)
                for (int64_t j = 0; j < J; j++) r2[j * B + bb] += a[(bb * I + i) * J + j];
        KT_OK(run_einsum("bij->jb", in, 1, &y));
        kt_close("einsum reduce-transpose", y.data, r2, J * B, 1e-5f, 1e-5f);
        free(y.data);
        free(r2);
        /* diagonal and trace of a square matrix */
        float *sq = rand_floats(I * I), dg[8], tr = 0;
        for (int64_t i = 0; i < I; i++) tr += dg[i] = sq[i * I + i];
        kiln__value sin = lh_val(KILN_FLOAT32, DIMS(I, I), sq);
        KT_OK(run_einsum("ii->i", &sin, 1, &y));
        kt_close("einsum diagonal", y.data, dg, I, 0, 0);
        free(y.data);
        KT_OK(run_einsum("ii", &sin, 1, &y));
        KT_CHECK(y.dims.nb_dims == 0);
        kt_close("einsum trace", y.data, &tr, 1, 1e-5f, 1e-5f);
        free(y.data);
        free(sq);
        free(a);
        free(b);
        free(ref);
    }
    /* integer outer product with three inputs */
    int64_t u[2] = {2, 3}, v[3] = {1, -1, 4}, w[1] = {5};
    kiln__value in[3] = {lh_val(KILN_INT64, DIMS(2), u), lh_val(KILN_INT64, DIMS(3), v), lh_val(KILN_INT64, DIMS(1), w)},
                y;
    KT_OK(run_einsum("i,j,k->ij", in, 3, &y));
    const int64_t want[6] = {10, -10, 40, 15, -15, 60};
    KT_CHECK(y.dims.nb_dims == 2 && memcmp(y.data, want, sizeof want) == 0);
    free(y.data);
    /* errors: rank mismatch, bad character, label missing from inputs, size mismatch */
    KT_STATUS(run_einsum("ij,j->i", in, 2, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    KT_STATUS(run_einsum("i,j->i#", in, 2, &y), KILN_INVALID_ARGUMENT);
    KT_STATUS(run_einsum("i,j->z", in, 2, &y), KILN_INVALID_ARGUMENT);
    KT_STATUS(run_einsum("i,i->i", in, 2, &y), KILN_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- cumsum, onehot, trilu */

static void test_cumsum(void) {
    for (int it = 0; it < 16; it++) {
        kiln_dims d = rand_dims((int32_t)kt_randi(1, 3), 1, 5);
        int32_t axis = (int32_t)kt_randi(0, d.nb_dims - 1);
        int64_t n = kiln__dims_volume(&d), dim = d.d[axis], inner = 1;
        for (int32_t i = axis + 1; i < d.nb_dims; i++) inner *= d.d[i];
        float *x = rand_floats(n), *ref = malloc(sizeof(float) * (size_t)n);
        kiln__cumsum_params p = {.exclusive = it & 1, .reverse = (it >> 1) & 1, .product = (it >> 2) & 1};
        for (int64_t o = 0; o < n / (dim * inner); o++)
            for (int64_t in_ = 0; in_ < inner; in_++) {
                double acc = p.product ? 1 : 0;
                for (int64_t s = 0; s < dim; s++) {
                    int64_t a = p.reverse ? dim - 1 - s : s, e = (o * dim + a) * inner + in_;
                    if (p.exclusive) ref[e] = (float)acc;
                    acc = p.product ? acc * x[e] : acc + x[e];
                    if (!p.exclusive) ref[e] = (float)acc;
                }
            }
        int64_t ax = it & 8 ? axis - d.nb_dims : axis;
        kiln_layer l = lh_layer(KILN_LAYER_CUMSUM, 2);
        memcpy(l.p.bytes, &p, sizeof p);
        kiln__value in[2] = {lh_val(KILN_FLOAT32, d, x), lh_val(KILN_INT64, DIMS0, &ax)}, y;
        KT_OK(lh_run(&l, in, &y));
        kt_close("cumsum", y.data, ref, n, 1e-5f, 1e-5f);
        free(y.data);
        ax = d.nb_dims;
        KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
        KT_CHECK(lh_names_layer());
        free(x);
        free(ref);
    }
    /* integer cumsum wraps instead of overflowing */
    int64_t x[3] = {INT64_MAX, 1, 1}, ax = 0;
    kiln__cumsum_params p = {0};
    kiln_layer l = lh_layer(KILN_LAYER_CUMSUM, 2);
    memcpy(l.p.bytes, &p, sizeof p);
    kiln__value in[2] = {lh_val(KILN_INT64, DIMS(3), x), lh_val(KILN_INT32, DIMS(1), &ax)}, y;
    in[1].dtype = KILN_INT64;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(((int64_t *)y.data)[1] == INT64_MIN && ((int64_t *)y.data)[2] == INT64_MIN + 1);
    free(y.data);
}

static void test_onehot(void) {
    for (int it = 0; it < 10; it++) {
        kiln_dims d = rand_dims((int32_t)kt_randi(0, 2), 1, 4);
        int64_t n = kiln__dims_volume(&d), depth = kt_randi(1, 5), idx[16];
        for (int64_t i = 0; i < n; i++) idx[i] = kt_randi(-depth - 1, depth);
        int32_t rank = d.nb_dims + 1, axis = (int32_t)kt_randi(0, rank - 1);
        float vals[2] = {kt_randf(-1, 0), kt_randf(1, 2)}, fdepth = (float)depth;
        kiln__onehot_params p = {.axis = it % 2 ? axis - rank : axis};
        kiln_layer l = lh_layer(KILN_LAYER_ONE_HOT, 3);
        memcpy(l.p.bytes, &p, sizeof p);
        kiln__value in[3] = {lh_val(KILN_INT64, d, idx), lh_val(KILN_FLOAT32, DIMS(1), &fdepth),
                             lh_val(KILN_FLOAT32, DIMS(2), vals)},
                    y;
        KT_OK(lh_run(&l, in, &y));
        int64_t m = kiln__dims_volume(&y.dims), co[KILN_MAX_DIMS], bad = y.dims.d[axis] != depth;
        for (int64_t e = 0; e < m && !bad; e++) {
            lh_unravel(e, &y.dims, co);
            int64_t src = 0;
            for (int32_t i = 0, j = 0; i < rank; i++)
                if (i != axis) src = src * d.d[j++] + co[i];
            int64_t v = idx[src] < 0 ? idx[src] + depth : idx[src];
            bad += ((float *)y.data)[e] != (v == co[axis] ? vals[1] : vals[0]);
        }
        KT_CHECK(bad == 0);
        free(y.data);
        fdepth = 0;
        KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
        KT_CHECK(lh_names_layer());
    }
}

static void test_trilu(void) {
    for (int it = 0; it < 16; it++) {
        kiln_dims d = rand_dims((int32_t)kt_randi(2, 4), 1, 5);
        int64_t n = kiln__dims_volume(&d), rows = d.d[d.nb_dims - 2], cols = d.d[d.nb_dims - 1],
                k = kt_randi(-6, 6);
        uint16_t *x = malloc(2 * (size_t)n);
        for (int64_t i = 0; i < n; i++) x[i] = (uint16_t)kt_randi(1, 60000);
        kiln__trilu_params p = {.upper = it % 2, .k = it % 4 < 2 ? k : 0};
        kiln_layer l = lh_layer(KILN_LAYER_TRILU, it % 4 < 2 ? 1 : 2);
        memcpy(l.p.bytes, &p, sizeof p);
        kiln__value in[2] = {lh_val(KILN_FLOAT16, d, x), lh_val(KILN_INT64, DIMS(1), &k)}, y;
        KT_OK(lh_run(&l, in, &y));
        int64_t bad = 0;
        for (int64_t e = 0; e < n; e++) {
            int64_t c = e % cols, r = (e / cols) % rows;
            bool keep = p.upper ? c - r >= k : c - r <= k;
            bad += ((uint16_t *)y.data)[e] != (keep ? x[e] : 0);
        }
        KT_CHECK(bad == 0);
        free(y.data);
        free(x);
    }
    kiln_layer l = lh_layer(KILN_LAYER_TRILU, 1);
    float x[3];
    kiln__value in = lh_val(KILN_FLOAT32, DIMS(3), x), y;
    KT_STATUS(lh_infer(&l, &in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

int main(void) {
    lh_init();
    test_select();
    test_expand_tile();
    test_nonzero();
    test_topk();
    test_fill();
    test_padding();
    test_scatter();
    test_einsum();
    test_cumsum();
    test_onehot();
    test_trilu();
    lh_done();
    return kt_summary("test_cpu_tensor_layers");
}
