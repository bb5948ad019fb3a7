/* Helpers for the data-movement and reduction layer tests: a fake layer, values, and a runner
 * that calls the layer's infer, allocates the output from the inferred dims and runs the CPU
 * kernel (with a 4-thread pool so the parallel paths run), plus an end-to-end runner through
 * the public builder/engine/context API. */
#ifndef KILN_LAYER_HARNESS_H
#define KILN_LAYER_HARNESS_H

#include "kiln.h"
#include "kt.h"
#include "cpu/cpu.h"

#define DIMS(...) ((kiln_dims){(int32_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), {__VA_ARGS__}})
#define DIMS0 ((kiln_dims){0, {0}})

/* The registries reference kernels and layer ops weakly, and a linker does not pull archive
 * members in for weak references: a strong reference here makes sure the families under test
 * are linked into the test binary whatever the library's link setup. */
#define LH_LINK(fam)                                                                                           \
    kiln_status kiln__cpu_##fam(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);     \
    extern const kiln__layer_ops kiln__##fam##_ops;                                                            \
    void *lh_link_##fam[2] = {(void *)kiln__cpu_##fam, (void *)&kiln__##fam##_ops};

static kiln__alloc lh_alloc;
static kiln__pool *lh_pool;

static inline void lh_init(void) {
    kt_seed();
    kiln__alloc_init(&lh_alloc, NULL);
    if (kiln__pool_create(&lh_alloc, 4, &lh_pool) != KILN_OK) lh_pool = NULL;
}

static inline void lh_done(void) { kiln__pool_destroy(lh_pool); }

static inline kiln_layer lh_layer(kiln_layer_type type, int32_t nb_inputs) {
    kiln_layer l;
    memset(&l, 0, sizeof l);
    l.type = type;
    l.name = (char *)"L";
    l.nb_inputs = nb_inputs;
    l.nb_outputs = 1;
    return l;
}

static inline kiln__value lh_val(kiln_dtype dtype, kiln_dims dims, void *data) {
    kiln__value v = {.dtype = dtype, .dims = dims, .data = data};
    int64_t n = kiln__dims_volume(&dims);
    if (n >= 0) kiln__dtype_bytes(dtype, n, &v.bytes);
    return v;
}

static inline kiln_status lh_infer(const kiln_layer *l, const kiln__value *in, kiln__value *out) {
    memset(out, 0, sizeof *out);
    return kiln__layer_ops_for(l->type)->infer(l, in, out);
}

/* infer + kernel; out->data is malloc'ed (free it) when infer succeeded. */
static inline kiln_status lh_run(const kiln_layer *l, const kiln__value *in, kiln__value *out) {
    kiln_status st = lh_infer(l, in, out);
    if (st != KILN_OK) return st;
    int64_t n = kiln__dims_volume(&out->dims);
    if (n < 0 || !kiln__dtype_bytes(out->dtype, n, &out->bytes)) return KILN_INTERNAL_ERROR;
    out->data = malloc(out->bytes ? out->bytes : 1);
    memset(out->data, 0xCD, out->bytes); /* garbage that a missed write would leave */
    kiln__cpu_ctx ctx = {.pool = lh_pool, .alloc = &lh_alloc};
    return kiln__cpu_kernel_for(l->type)(l, in, out, &ctx);
}

/* Checks that the last error names the fake layer. */
static inline int lh_names_layer(void) { return strstr(kiln_last_error(), "layer 'L'") != NULL; }

static inline void lh_fill_bytes(void *p, size_t n) {
    for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)kt_rand_u64();
}

/* Row-major strides of dims. */
static inline void lh_strides(const kiln_dims *d, int64_t *s) {
    int64_t acc = 1;
    for (int32_t i = d->nb_dims - 1; i >= 0; i--) {
        s[i] = acc;
        acc *= d->d[i];
    }
}

static inline void lh_unravel(int64_t idx, const kiln_dims *d, int64_t *c) {
    for (int32_t i = d->nb_dims - 1; i >= 0; i--) {
        c[i] = d->d[i] ? idx % d->d[i] : 0;
        idx = d->d[i] ? idx / d->d[i] : 0;
    }
}

/* Builds an engine from net (one output), runs it with `input` bound to input 0 and returns the
 * output copied into a malloc'ed buffer (NULL on failure, which is recorded as a failed check). */
static inline void *lh_execute(kiln_builder *b, kiln_network *net, const char *in_name, const void *input,
                               size_t in_bytes, size_t *out_bytes, kiln_dims *out_dims) {
    kiln_builder_config *cfg = NULL;
    kiln_engine *eng = NULL;
    kiln_context *ctx = NULL;
    void *result = NULL;
    kiln_status st = kiln_builder_config_create(b, &cfg);
    if (st == KILN_OK) st = kiln_builder_build_engine(b, net, cfg, &eng);
    if (st == KILN_OK) st = kiln_engine_create_context(eng, &ctx);
    if (st == KILN_OK) st = kiln_context_set_tensor_address(ctx, in_name, (void *)input, in_bytes);
    if (st == KILN_OK) st = kiln_context_execute(ctx);
    const char *out_name = kiln_tensor_name(kiln_network_output(net, 0));
    void *p = NULL;
    if (st == KILN_OK) st = kiln_context_get_tensor_shape(ctx, out_name, out_dims);
    if (st == KILN_OK) st = kiln_context_get_tensor_address(ctx, out_name, &p);
    if (st == KILN_OK) {
        kiln__dtype_bytes(kiln_tensor_dtype(kiln_network_output(net, 0)), kiln__dims_volume(out_dims), out_bytes);
        result = malloc(*out_bytes ? *out_bytes : 1);
        memcpy(result, p, *out_bytes);
    }
    kt_checks++;
    if (st != KILN_OK) {
        kt_failures++;
        fprintf(stderr, "end-to-end run failed: %s (%s)\n", kiln_status_name(st), kiln_last_error());
    }
    kiln_context_destroy(ctx);
    kiln_engine_destroy(eng);
    kiln_builder_config_destroy(cfg);
    return result;
}

#endif
