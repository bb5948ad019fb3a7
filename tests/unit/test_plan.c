/* Plan files: bit-exact round trips of hand-built, random and builder-made engines, a table of
 * malformed plans (each refused with a specific message), random corruption, and the timing
 * cache's serialized form. */
#include "kt.h"

#include "plan/plan.h"
#include "plan/plan_format.h"
#include "plan/timing_cache.h"

#include <stdbool.h>
#include <unistd.h>

static kiln__alloc g_alloc;

/* ---------------------------------------------------------------- building engines by hand */

static kiln_dims dims_of(int32_t rank, const int64_t *d) {
    kiln_dims dims = {.nb_dims = rank};
    for (int32_t i = 0; i < rank; i++) dims.d[i] = d[i];
    return dims;
}

static void random_bytes(void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)kt_rand_u64();
}

static kiln_tensor *tensor(kiln_network *net, const char *name, kiln_dtype dtype, int32_t rank, const int64_t *d) {
    kiln_dims dims = dims_of(rank, d);
    kiln_tensor *t = NULL;
    KT_OK(kiln__network_new_tensor(net, name, dtype, &dims, &t));
    return t;
}

static kiln_tensor *input(kiln_network *net, const char *name, kiln_dtype dtype, int32_t rank, const int64_t *d) {
    kiln_tensor *t = tensor(net, name, dtype, rank, d);
    KT_OK(kiln__network_set_input(net, t));
    return t;
}

static void name_dim(kiln_network *net, kiln_tensor *t, int32_t d, const char *name) {
    t->dim_names[d] = kiln__strdup(&net->alloc, name);
}

static kiln_tensor *constant(kiln_network *net, const char *name, kiln_dtype dtype, int32_t rank, const int64_t *d) {
    char out_name[64];
    snprintf(out_name, sizeof out_name, "%s_out", name);
    kiln_tensor *t = tensor(net, out_name, dtype, rank, d);
    kiln_layer *l = NULL;
    KT_OK(kiln__network_new_layer_wired(net, KILN_LAYER_CONSTANT, name, NULL, 0, &t, 1, &l));
    l->p.constant.dims = t->dims;
    l->p.constant.dtype = dtype;
    l->tactic = (int32_t)kt_randi(-1, 3);
    size_t bytes = 0;
    KT_CHECK(kiln__dtype_bytes(dtype, kiln__dims_volume(&t->dims), &bytes));
    uint8_t *values = malloc(bytes + 1);
    random_bytes(values, bytes);
    if (bytes) KT_OK(kiln__layer_set_weights(l, values, bytes));
    free(values);
    return t;
}

/* A layer with random params bytes (the plan stores them without reading them). */
static kiln_layer *layer(kiln_network *net, kiln_layer_type type, const char *name, kiln_tensor **in, int32_t nb_in,
                         kiln_tensor **out, int32_t nb_out) {
    kiln_layer *l = NULL;
    KT_OK(kiln__network_new_layer_wired(net, type, name, in, nb_in, out, nb_out, &l));
    if (l) {
        random_bytes(&l->p, sizeof l->p);
        l->tactic = (int32_t)kt_randi(0, 1000);
    }
    return l;
}

static void add_profile_entry(kiln_engine *e, int32_t p, const char *name, const kiln_dims *min, const kiln_dims *opt,
                              const kiln_dims *max) {
    kiln__profile *prof = &e->profiles[p];
    prof->entries = realloc(prof->entries, sizeof *prof->entries * (size_t)(prof->nb_entries + 1));
    kiln__profile_dims *pd = &prof->entries[prof->nb_entries++];
    /* Engines free profile entries with their allocator: allocate them with it too. */
    pd->input = kiln__strdup(&e->alloc, name);
    pd->dims[0] = *min;
    pd->dims[1] = *opt;
    pd->dims[2] = *max;
}

/* Moves realloc'd profile entry arrays into allocator memory. */
static void own_profiles(kiln_engine *e) {
    for (int32_t p = 0; p < e->nb_profiles; p++) {
        kiln__profile *prof = &e->profiles[p];
        if (!prof->nb_entries) continue;
        kiln__profile_dims *owned = kiln__calloc(&e->alloc, (size_t)prof->nb_entries, sizeof *owned);
        memcpy(owned, prof->entries, sizeof *owned * (size_t)prof->nb_entries);
        free(prof->entries);
        prof->entries = owned;
    }
}

static kiln_engine *new_engine(void) {
    kiln_engine *e = NULL;
    KT_OK(kiln__engine_alloc(&g_alloc, NULL, &e));
    KT_OK(kiln__network_create(&e->alloc, &e->log, &e->net));
    return e;
}

/* The fixed engine the mutation table refers to by name. Layers: constants w, h, b16, i64,
 * flag, q4, scalar, empty, u8, then conv (x, w, -, -) -> y, ew (y, scalar) -> z,
 * split (ids) -> s0, s1. Outputs z, s1, y. Tensor "orphan" is never produced. */
static kiln_engine *hand_engine(bool cuda) {
    kiln_engine *e = new_engine();
    kiln_network *net = e->net;
    kiln_tensor *x = input(net, "x", KILN_FLOAT32, 4, (int64_t[]){-1, 3, 8, 8});
    name_dim(net, x, 0, "batch");
    kiln_tensor *ids = input(net, "ids", KILN_INT64, 2, (int64_t[]){-1, -1});
    name_dim(net, ids, 0, "batch");
    name_dim(net, ids, 1, "seq");
    kiln_tensor *w = constant(net, "w", KILN_FLOAT32, 4, (int64_t[]){4, 3, 3, 3});
    constant(net, "h", KILN_FLOAT16, 1, (int64_t[]){5});
    constant(net, "b16", KILN_BFLOAT16, 2, (int64_t[]){2, 3});
    constant(net, "i64", KILN_INT64, 2, (int64_t[]){2, 2});
    constant(net, "flag", KILN_BOOL, 1, (int64_t[]){3});
    constant(net, "q4", KILN_INT4, 1, (int64_t[]){5});
    kiln_tensor *scalar = constant(net, "scalar", KILN_FLOAT32, 0, NULL);
    constant(net, "empty", KILN_FLOAT32, 1, (int64_t[]){0});
    constant(net, "u8", KILN_UINT8, 1, (int64_t[]){70});
    kiln_tensor *y = tensor(net, "y", KILN_FLOAT32, 4, (int64_t[]){-1, 4, 6, 6});
    layer(net, KILN_LAYER_CONVOLUTION, "conv", (kiln_tensor *[]){x, w, NULL, NULL}, 4, &y, 1);
    kiln_tensor *z = tensor(net, "z", KILN_FLOAT32, 4, (int64_t[]){-1, 4, 6, 6});
    layer(net, KILN_LAYER_ELEMENTWISE, "ew", (kiln_tensor *[]){y, scalar}, 2, &z, 1);
    kiln_tensor *s[2] = {tensor(net, "s0", KILN_INT64, 1, (int64_t[]){2}), tensor(net, "s1", KILN_INT32, 1, (int64_t[]){-1})};
    layer(net, KILN_LAYER_SLICE, "split", &ids, 1, s, 2);
    tensor(net, "orphan", KILN_FLOAT16, 3, (int64_t[]){1, 2, 3});
    KT_OK(kiln__network_set_output(net, z));
    KT_OK(kiln__network_set_output(net, s[1]));
    KT_OK(kiln__network_set_output(net, y));

    e->device = cuda ? KILN_DEVICE_CUDA : KILN_DEVICE_CPU;
    if (cuda) strcpy(e->gpu_arch, "sm_90");
    e->flags = KILN_FLAG_FP16 | KILN_FLAG_TF32;
    e->workspace_limit = 3ull << 30;
    e->nb_profiles = 3;
    e->profiles = kiln__calloc(&e->alloc, 3, sizeof *e->profiles);
    kiln_dims x1 = dims_of(4, (int64_t[]){1, 3, 8, 8}), x4 = dims_of(4, (int64_t[]){4, 3, 8, 8}),
              x8 = dims_of(4, (int64_t[]){8, 3, 8, 8});
    kiln_dims i1 = dims_of(2, (int64_t[]){1, 1}), i4 = dims_of(2, (int64_t[]){4, 64}), i8 = dims_of(2, (int64_t[]){8, 512});
    add_profile_entry(e, 0, "x", &x1, &x4, &x8);
    add_profile_entry(e, 0, "ids", &i1, &i4, &i8);
    add_profile_entry(e, 1, "x", &x8, &x8, &x8);
    /* profile 2 has no entries */
    own_profiles(e);
    return e;
}

/* A random DAG: random dtypes, dims (some -1), names, optional inputs, multi-output layers,
 * constants of every fixed-size dtype, IO lists and profiles. */
static kiln_engine *random_engine(void) {
    static const kiln_dtype dtypes[] = {KILN_FLOAT32, KILN_UINT8,   KILN_INT8,  KILN_UINT16, KILN_INT16,
                                        KILN_INT32,   KILN_INT64,   KILN_BOOL,  KILN_FLOAT16, KILN_FLOAT64,
                                        KILN_UINT32,  KILN_UINT64,  KILN_BFLOAT16, KILN_FP8_E4M3FN, KILN_UINT4,
                                        KILN_INT4,    KILN_FP4_E2M1, KILN_INT2};
    kiln_engine *e = new_engine();
    kiln_network *net = e->net;
    int nb_inputs = (int)kt_randi(0, 3), nb_layers = (int)kt_randi(0, 14), next = 0;
    char name[32];
    for (int i = 0; i < nb_inputs; i++) {
        int64_t d[KILN_MAX_DIMS];
        int32_t rank = (int32_t)kt_randi(0, KILN_MAX_DIMS);
        for (int32_t k = 0; k < rank; k++) d[k] = kt_randi(-1, 6);
        snprintf(name, sizeof name, "in%d", i);
        kiln_tensor *t = input(net, name, dtypes[kt_randi(0, KILN__ARRAY_LEN(dtypes) - 1)], rank, d);
        for (int32_t k = 0; k < rank; k++)
            if (kt_randi(0, 2) == 0) name_dim(net, t, k, k % 2 ? "seq" : "batch");
    }
    for (int i = 0; i < nb_layers; i++) {
        int64_t d[KILN_MAX_DIMS];
        int32_t rank = (int32_t)kt_randi(0, 4);
        kiln_layer_type type = (kiln_layer_type)kt_randi(0, KILN_LAYER_TYPE_COUNT - 1);
        snprintf(name, sizeof name, "L%d", i);
        if (type == KILN_LAYER_CONSTANT || net->nb_tensors == 0) {
            for (int32_t k = 0; k < rank; k++) d[k] = kt_randi(0, 5);
            constant(net, name, dtypes[kt_randi(0, KILN__ARRAY_LEN(dtypes) - 1)], rank, d);
            continue;
        }
        /* Inputs: tensors available so far (inputs or produced), or absent. */
        kiln_tensor *in[5], *out[3];
        int32_t nb_in = (int32_t)kt_randi(0, 5), nb_out = (int32_t)kt_randi(1, 3);
        for (int32_t k = 0; k < nb_in; k++) {
            kiln_tensor *t = net->tensors[kt_randi(0, net->nb_tensors - 1)];
            in[k] = (t->is_input || t->producer) && kt_randi(0, 4) ? t : NULL;
        }
        for (int32_t k = 0; k < nb_out; k++) {
            for (int32_t j = 0; j < rank; j++) d[j] = kt_randi(-1, 9);
            snprintf(name, sizeof name, "t%d", next++);
            out[k] = tensor(net, name, dtypes[kt_randi(0, KILN__ARRAY_LEN(dtypes) - 1)], rank, d);
        }
        snprintf(name, sizeof name, "L%d", i);
        layer(net, type, name, in, nb_in, out, nb_out);
    }
    for (int64_t i = 0; i < net->nb_tensors; i++)
        if (net->tensors[i]->producer && kt_randi(0, 2) == 0) KT_OK(kiln__network_set_output(net, net->tensors[i]));
    e->device = kt_randi(0, 1) ? KILN_DEVICE_CUDA : KILN_DEVICE_CPU;
    if (e->device == KILN_DEVICE_CUDA) strcpy(e->gpu_arch, kt_randi(0, 1) ? "sm_90a" : "sm_100");
    e->flags = (uint32_t)kt_rand_u64();
    e->workspace_limit = kt_rand_u64();
    e->nb_profiles = (int32_t)kt_randi(0, 3);
    e->profiles = e->nb_profiles ? kiln__calloc(&e->alloc, (size_t)e->nb_profiles, sizeof *e->profiles) : NULL;
    for (int32_t p = 0; p < e->nb_profiles; p++)
        for (int64_t i = 0; i < net->nb_inputs; i++) {
            if (kt_randi(0, 3) == 0) continue;
            const kiln_tensor *t = net->inputs[i];
            kiln_dims dims[3] = {{.nb_dims = t->dims.nb_dims}, {.nb_dims = t->dims.nb_dims}, {.nb_dims = t->dims.nb_dims}};
            for (int32_t k = 0; k < t->dims.nb_dims; k++) {
                dims[0].d[k] = kt_randi(0, 4);
                dims[1].d[k] = dims[0].d[k] + kt_randi(0, 4);
                dims[2].d[k] = dims[1].d[k] + kt_randi(0, 1000);
            }
            add_profile_entry(e, p, t->name, &dims[0], &dims[1], &dims[2]);
        }
    own_profiles(e);
    return e;
}

/* ---------------------------------------------------------------- comparing */

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static int64_t index_of(const kiln_tensor *t) { return t ? t->index : -1; }

static void check_equal(const kiln_engine *a, const kiln_engine *b) {
    KT_CHECK(a->device == b->device);
    KT_CHECK(strcmp(a->gpu_arch, b->gpu_arch) == 0);
    KT_CHECK(a->flags == b->flags);
    KT_CHECK(a->workspace_limit == b->workspace_limit);
    const kiln_network *na = a->net, *nb = b->net;
    KT_CHECK(na->nb_tensors == nb->nb_tensors);
    KT_CHECK(na->nb_layers == nb->nb_layers);
    KT_CHECK(na->nb_inputs == nb->nb_inputs);
    KT_CHECK(na->nb_outputs == nb->nb_outputs);
    if (na->nb_tensors != nb->nb_tensors || na->nb_layers != nb->nb_layers || na->nb_inputs != nb->nb_inputs ||
        na->nb_outputs != nb->nb_outputs)
        return;
    for (int64_t i = 0; i < na->nb_tensors; i++) {
        const kiln_tensor *ta = na->tensors[i], *tb = nb->tensors[i];
        KT_CHECK(tb->index == i);
        KT_CHECK(strcmp(ta->name, tb->name) == 0);
        KT_CHECK(ta->dtype == tb->dtype);
        KT_CHECK(kiln__dims_equal(&ta->dims, &tb->dims));
        for (int d = 0; d < KILN_MAX_DIMS; d++) KT_CHECK(str_eq(ta->dim_names[d], tb->dim_names[d]));
        KT_CHECK(ta->is_input == tb->is_input && ta->is_output == tb->is_output);
        KT_CHECK(ta->producer ? tb->producer && ta->producer->index == tb->producer->index : !tb->producer);
        if (ta->producer) KT_CHECK(ta->producer_output == tb->producer_output);
    }
    for (int64_t i = 0; i < na->nb_layers; i++) {
        const kiln_layer *la = na->layers[i], *lb = nb->layers[i];
        KT_CHECK(la->type == lb->type);
        KT_CHECK(strcmp(la->name, lb->name) == 0);
        KT_CHECK(la->nb_inputs == lb->nb_inputs && la->nb_outputs == lb->nb_outputs);
        if (la->nb_inputs != lb->nb_inputs || la->nb_outputs != lb->nb_outputs) continue;
        for (int32_t k = 0; k < la->nb_inputs; k++) KT_CHECK(index_of(la->inputs[k]) == index_of(lb->inputs[k]));
        for (int32_t k = 0; k < la->nb_outputs; k++) KT_CHECK(index_of(la->outputs[k]) == index_of(lb->outputs[k]));
        KT_CHECK(memcmp(&la->p, &lb->p, sizeof la->p) == 0);
        KT_CHECK(la->tactic == lb->tactic);
        KT_CHECK(la->weights_bytes == lb->weights_bytes);
        if (la->weights_bytes == lb->weights_bytes && la->weights_bytes)
            KT_CHECK(memcmp(la->weights, lb->weights, la->weights_bytes) == 0);
        if (lb->weights) KT_CHECK((uintptr_t)lb->weights % 64 == 0);
    }
    for (int64_t i = 0; i < na->nb_inputs; i++) KT_CHECK(na->inputs[i]->index == nb->inputs[i]->index);
    for (int64_t i = 0; i < na->nb_outputs; i++) KT_CHECK(na->outputs[i]->index == nb->outputs[i]->index);
    KT_CHECK(a->nb_profiles == b->nb_profiles);
    for (int32_t p = 0; p < a->nb_profiles && a->nb_profiles == b->nb_profiles; p++) {
        const kiln__profile *pa = &a->profiles[p], *pb = &b->profiles[p];
        KT_CHECK(pa->nb_entries == pb->nb_entries);
        for (int32_t k = 0; k < pa->nb_entries && pa->nb_entries == pb->nb_entries; k++) {
            KT_CHECK(strcmp(pa->entries[k].input, pb->entries[k].input) == 0);
            for (int s = 0; s < 3; s++) KT_CHECK(kiln__dims_equal(&pa->entries[k].dims[s], &pb->entries[k].dims[s]));
        }
    }
}

/* ---------------------------------------------------------------- round trips */

static void write_plan(const kiln_engine *e, kiln__buf *buf) {
    kiln__buf_init(buf, &g_alloc);
    KT_OK(kiln__plan_write(e, buf));
}

static kiln_status read_plan(const void *data, size_t size, kiln_engine **out) {
    kiln_engine *e = NULL;
    kiln_status st = kiln__engine_alloc(&g_alloc, NULL, &e);
    if (st == KILN_OK) st = kiln__plan_read(data, size, NULL, e);
    if (st != KILN_OK || !out) {
        kiln_engine_destroy(e);
        e = NULL;
    }
    if (out) *out = e;
    return st;
}

static uint64_t sec_off(const uint8_t *p, int s) { return kiln__rd_u64(p + KILN__H_SECTIONS + 16 * s); }
static uint64_t sec_size(const uint8_t *p, int s) { return kiln__rd_u64(p + KILN__H_SECTIONS + 16 * s + 8); }

/* write -> read -> compare -> write gives the same bytes. */
static void round_trip(kiln_engine *e, const char *what) {
    kiln__buf a, b;
    write_plan(e, &a);
    kiln_engine *back = NULL;
    KT_OK(read_plan(a.data, a.size, &back));
    if (!back) {
        fprintf(stderr, "round trip of %s failed\n", what);
        kiln__buf_free(&a);
        return;
    }
    check_equal(e, back);
    write_plan(back, &b);
    KT_CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
    /* Layout promises: sections 8-aligned, weights and every constant's values 64-aligned. */
    for (int s = 0; s < KILN__SEC_COUNT; s++)
        KT_CHECK(sec_off(a.data, s) % (s == KILN__SEC_WEIGHTS ? 64 : 8) == 0);
    for (int64_t i = 0; i < back->net->nb_layers; i++) {
        const kiln_layer *l = back->net->layers[i];
        if (l->weights_bytes) {
            const uint8_t *found = NULL;
            const uint8_t *w = a.data + sec_off(a.data, KILN__SEC_WEIGHTS);
            for (uint64_t off = 0; off + l->weights_bytes <= sec_size(a.data, KILN__SEC_WEIGHTS); off += 64)
                if (memcmp(w + off, l->weights, l->weights_bytes) == 0) {
                    found = w + off;
                    break;
                }
            KT_CHECK(found && (found - a.data) % 64 == 0);
        }
    }
    /* Appending to a buffer that already holds bytes gives the same plan after them. */
    kiln__buf c;
    kiln__buf_init(&c, &g_alloc);
    kiln__buf_append(&c, "prefix-", 7);
    KT_OK(kiln__plan_write(e, &c));
    KT_CHECK(c.size == a.size + 7 && memcmp(c.data + 7, a.data, a.size) == 0);
    kiln__buf_free(&c);
    kiln__buf_free(&a);
    kiln__buf_free(&b);
    kiln_engine_destroy(back);
}

static void test_round_trips(void) {
    kiln_engine *e = hand_engine(false);
    round_trip(e, "hand-built CPU engine");
    kiln_engine_destroy(e);
    e = hand_engine(true);
    round_trip(e, "hand-built CUDA engine");
    kiln_engine_destroy(e);
    e = new_engine(); /* empty network, no profiles */
    round_trip(e, "empty engine");
    kiln_engine_destroy(e);
    for (int i = 0; i < 60; i++) {
        e = random_engine();
        round_trip(e, "random engine");
        kiln_engine_destroy(e);
    }
}

/* ---------------------------------------------------------------- locating things in a plan */

static uint8_t *section(uint8_t *p, int s) { return p + sec_off(p, s); }

static const char *string_at(uint8_t *p, uint32_t ref) { return (const char *)section(p, KILN__SEC_STRINGS) + ref; }

static uint8_t *tensor_rec(uint8_t *p, uint32_t i) { return section(p, KILN__SEC_TENSORS) + 8 + i * KILN__TENSOR_RECORD; }

static int32_t find_tensor(uint8_t *p, const char *name) {
    uint32_t n = kiln__rd_u32(section(p, KILN__SEC_TENSORS));
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(string_at(p, kiln__rd_u32(tensor_rec(p, i) + KILN__T_NAME)), name) == 0) return (int32_t)i;
    fprintf(stderr, "no tensor '%s' in the plan\n", name);
    exit(2);
}

static uint8_t *layer_rec(uint8_t *p, const char *name) {
    uint8_t *rec = section(p, KILN__SEC_LAYERS) + 8;
    uint32_t n = kiln__rd_u32(section(p, KILN__SEC_LAYERS));
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(string_at(p, kiln__rd_u32(rec + KILN__L_NAME)), name) == 0) return rec;
        uint64_t idx = 4 * (uint64_t)(kiln__rd_i32(rec + KILN__L_NB_INPUTS) + kiln__rd_i32(rec + KILN__L_NB_OUTPUTS));
        rec += KILN__LAYER_FIXED + (idx + 7) / 8 * 8;
    }
    fprintf(stderr, "no layer '%s' in the plan\n", name);
    exit(2);
}

/* Slot k of a layer's index list: inputs first, then outputs. */
static uint8_t *layer_index(uint8_t *p, const char *name, int k) { return layer_rec(p, name) + KILN__LAYER_FIXED + 4 * k; }

static uint8_t *io_slot(uint8_t *p, int k) { return section(p, KILN__SEC_IO) + 8 + 4 * k; }

static uint8_t *profile_entry(uint8_t *p, int entry) {
    return section(p, KILN__SEC_PROFILES) + 16 + (size_t)entry * KILN__PROFILE_ENTRY; /* profile 0 */
}

static uint8_t *profile_dims(uint8_t *p, int entry, int which) {
    return profile_entry(p, entry) + KILN__PD_DIMS + which * KILN__PD_DIMS_RECORD;
}

static void add_u32(uint8_t *at, uint32_t v) { kiln__wr_u32(at, kiln__rd_u32(at) + v); }
static void add_u64(uint8_t *at, uint64_t v) { kiln__wr_u64(at, kiln__rd_u64(at) + v); }

/* ---------------------------------------------------------------- the mutation table */

typedef void (*mutate_fn)(uint8_t *p, size_t *size);

#define H(field) (p + KILN__H_##field)
#define SEC_OFF(s) (p + KILN__H_SECTIONS + 16 * KILN__SEC_##s)
#define SEC_SIZE(s) (p + KILN__H_SECTIONS + 16 * KILN__SEC_##s + 8)
#define MUT(fn, body)                                                                                          \
    static void fn(uint8_t *p, size_t *size) {                                                                 \
        (void)p, (void)size;                                                                                   \
        body;                                                                                                  \
    }

MUT(m_magic, p[3] ^= 0x20)
MUT(m_format, kiln__wr_u32(H(FORMAT), 3))
MUT(m_library, kiln__wr_u32(H(LIBRARY), 200))
MUT(m_header_size, kiln__wr_u32(H(HEADER_SIZE), 200))
MUT(m_total_size, add_u64(H(TOTAL_SIZE), 64))
MUT(m_trailing, (*size)++)
MUT(m_body_crc, p[KILN__H_BODY_CRC] ^= 1)
MUT(m_header_crc, p[KILN__H_HEADER_CRC + 2] ^= 0x80)
MUT(m_flags_unsealed, add_u32(H(FLAGS), 1))
MUT(m_workspace_unsealed, add_u64(H(WORKSPACE), 4096))
MUT(m_device_unsealed, kiln__wr_u32(H(DEVICE), 1))
MUT(m_sections_unsealed, add_u64(SEC_OFF(LAYERS), 8))
MUT(m_device, kiln__wr_u32(H(DEVICE), 7))
MUT(m_cuda_no_arch, kiln__wr_u32(H(DEVICE), KILN_DEVICE_CUDA))
MUT(m_cpu_arch, memcpy(H(GPU_ARCH), "sm_90", 5))
MUT(m_arch_unterminated, memset(H(GPU_ARCH), 'a', KILN__GPU_ARCH_LEN))
MUT(m_arch_junk, H(GPU_ARCH)[9] = 'x')
MUT(m_params_size, kiln__wr_u32(H(PARAMS_SIZE), 256))
MUT(m_nb_sections, kiln__wr_u32(H(NB_SECTIONS), 5))
MUT(m_reserved, kiln__wr_u32(H(RESERVED), 1))
MUT(m_sec_in_header, kiln__wr_u64(SEC_OFF(TENSORS), 0))
MUT(m_sec_past_end, kiln__wr_u64(SEC_OFF(IO), *size + 8))
MUT(m_sec_huge_size, kiln__wr_u64(SEC_SIZE(STRINGS), UINT64_MAX))
MUT(m_sec_wrap, kiln__wr_u64(SEC_OFF(PROFILES), UINT64_MAX - 7))
MUT(m_sec_misaligned, add_u64(SEC_OFF(TENSORS), 4); add_u64(SEC_SIZE(TENSORS), (uint64_t)-4))
MUT(m_weights_misaligned, add_u64(SEC_OFF(WEIGHTS), 8); add_u64(SEC_SIZE(WEIGHTS), (uint64_t)-8))
MUT(m_overlap, kiln__wr_u64(SEC_OFF(LAYERS), kiln__rd_u64(SEC_OFF(TENSORS))))
MUT(m_strings_truncated, kiln__wr_u64(SEC_SIZE(STRINGS), 3))
MUT(m_tensor_count_huge, kiln__wr_u32(section(p, KILN__SEC_TENSORS), 0xFFFFFFFFu))
MUT(m_tensor_count_off, add_u32(section(p, KILN__SEC_TENSORS), 1))
MUT(m_tensor_name_range, kiln__wr_u32(tensor_rec(p, 0) + KILN__T_NAME, 0x7FFFFFF0u))
MUT(m_unterminated, section(p, KILN__SEC_STRINGS)[sec_size(p, KILN__SEC_STRINGS) - 1] = 'x')
MUT(m_dtype_bad, kiln__wr_u32(tensor_rec(p, (uint32_t)find_tensor(p, "z")) + KILN__T_DTYPE, 99))
MUT(m_dtype_undefined, kiln__wr_u32(tensor_rec(p, (uint32_t)find_tensor(p, "y")) + KILN__T_DTYPE, 0))
MUT(m_dtype_string, kiln__wr_u32(tensor_rec(p, (uint32_t)find_tensor(p, "y")) + KILN__T_DTYPE, KILN_STRING))
MUT(m_rank9, kiln__wr_u32(tensor_rec(p, (uint32_t)find_tensor(p, "y")) + KILN__T_RANK, 9))
MUT(m_rank_negative, kiln__wr_u32(tensor_rec(p, (uint32_t)find_tensor(p, "y")) + KILN__T_RANK, (uint32_t)-1))
MUT(m_dim_negative, kiln__wr_u64(tensor_rec(p, (uint32_t)find_tensor(p, "x")) + KILN__T_DIMS, (uint64_t)-2))
MUT(m_dim_beyond_rank, kiln__wr_u64(tensor_rec(p, (uint32_t)find_tensor(p, "x")) + KILN__T_DIMS + 8 * 5, 7))
MUT(m_dim_name_beyond_rank, kiln__wr_u32(tensor_rec(p, (uint32_t)find_tensor(p, "ids")) + KILN__T_DIM_NAMES + 4 * 3, 0))
MUT(m_dim_name_range, kiln__wr_u32(tensor_rec(p, (uint32_t)find_tensor(p, "ids")) + KILN__T_DIM_NAMES + 4, 0xFFFFFF00u))
MUT(m_tensor_reserved, kiln__wr_u32(tensor_rec(p, 0) + KILN__T_RESERVED, 5))
MUT(m_input_range, kiln__wr_u32(layer_index(p, "conv", 0), 9999))
MUT(m_input_negative, kiln__wr_u32(layer_index(p, "conv", 0), (uint32_t)-2))
MUT(m_output_absent, kiln__wr_u32(layer_index(p, "ew", 2), (uint32_t)-1))
MUT(m_forward_ref, kiln__wr_u32(layer_index(p, "conv", 1), (uint32_t)find_tensor(p, "z")))
MUT(m_self_ref, kiln__wr_u32(layer_index(p, "conv", 0), (uint32_t)find_tensor(p, "y")))
MUT(m_double_producer, kiln__wr_u32(layer_index(p, "ew", 2), (uint32_t)find_tensor(p, "y")))
MUT(m_output_twice, kiln__wr_u32(layer_index(p, "split", 2), (uint32_t)find_tensor(p, "s0")))
MUT(m_produces_input, kiln__wr_u32(layer_index(p, "ew", 2), (uint32_t)find_tensor(p, "x")))
MUT(m_layer_type_count, kiln__wr_u32(layer_rec(p, "ew") + KILN__L_TYPE, 1000))
MUT(m_layer_type_negative, kiln__wr_u32(layer_rec(p, "ew") + KILN__L_TYPE, (uint32_t)-3))
MUT(m_layer_name_range, kiln__wr_u32(layer_rec(p, "ew") + KILN__L_NAME, (uint32_t)sec_size(p, KILN__SEC_STRINGS)))
MUT(m_layer_inputs_huge, kiln__wr_u32(layer_rec(p, "conv") + KILN__L_NB_INPUTS, 0x7FFFFFFFu))
MUT(m_layer_no_outputs, kiln__wr_u32(layer_rec(p, "conv") + KILN__L_NB_OUTPUTS, 0))
MUT(m_layer_reserved, kiln__wr_u32(layer_rec(p, "conv") + KILN__L_RESERVED, 1))
MUT(m_layer_count_huge, kiln__wr_u32(section(p, KILN__SEC_LAYERS), 0x7FFFFFFFu))
MUT(m_layer_count_less, add_u32(section(p, KILN__SEC_LAYERS), (uint32_t)-1))
MUT(m_layer_count_more, add_u32(section(p, KILN__SEC_LAYERS), 1))
MUT(m_layers_short, add_u64(SEC_SIZE(LAYERS), (uint64_t)-128)) /* room for 12 fixed parts, not the last record */
MUT(m_layer_padding, kiln__wr_u32(layer_index(p, "ew", 3), 1))
MUT(m_weights_size, add_u64(layer_rec(p, "w") + KILN__L_WEIGHTS_SIZE, 4))
MUT(m_weights_offset_misaligned, add_u64(layer_rec(p, "h") + KILN__L_WEIGHTS_OFFSET, 8))
MUT(m_weights_offset_range, kiln__wr_u64(layer_rec(p, "u8") + KILN__L_WEIGHTS_OFFSET, UINT64_MAX - 63))
MUT(m_weights_on_conv, kiln__wr_u64(layer_rec(p, "conv") + KILN__L_WEIGHTS_SIZE, 64))
MUT(m_constant_output_dims, kiln__wr_u64(tensor_rec(p, (uint32_t)find_tensor(p, "w_out")) + KILN__T_DIMS, (uint64_t)-1))
MUT(m_io_counts, kiln__wr_u32(section(p, KILN__SEC_IO), 0xFFFFFFFFu))
MUT(m_io_input_range, kiln__wr_u32(io_slot(p, 0), 5000))
MUT(m_io_input_twice, kiln__wr_u32(io_slot(p, 1), kiln__rd_u32(io_slot(p, 0))))
MUT(m_io_output_twice, kiln__wr_u32(io_slot(p, 3), kiln__rd_u32(io_slot(p, 2))))
MUT(m_io_output_unproduced, kiln__wr_u32(io_slot(p, 2), (uint32_t)find_tensor(p, "orphan")))
MUT(m_io_output_negative, kiln__wr_u32(io_slot(p, 4), (uint32_t)-1))
MUT(m_io_same_name, kiln__wr_u32(tensor_rec(p, (uint32_t)find_tensor(p, "z")) + KILN__T_NAME,
                                 kiln__rd_u32(tensor_rec(p, (uint32_t)find_tensor(p, "x")) + KILN__T_NAME)))
MUT(m_profile_min_gt_max, kiln__wr_u64(profile_dims(p, 0, 0) + 8, 100))
MUT(m_profile_opt_gt_max, kiln__wr_u64(profile_dims(p, 1, 1) + 8 + 8, 600))
MUT(m_profile_negative, kiln__wr_u64(profile_dims(p, 0, 0) + 8, (uint64_t)-1))
MUT(m_profile_rank, kiln__wr_u32(profile_dims(p, 0, 2), 3); kiln__wr_u64(profile_dims(p, 0, 2) + 8 + 24, 0))
MUT(m_profile_rank9, kiln__wr_u32(profile_dims(p, 0, 1), 9))
MUT(m_profile_not_input, kiln__wr_u32(profile_entry(p, 0), kiln__rd_u32(tensor_rec(p, (uint32_t)find_tensor(p, "y")))))
MUT(m_profile_twice, kiln__wr_u32(profile_entry(p, 1), kiln__rd_u32(profile_entry(p, 0))))
MUT(m_profile_count_huge, kiln__wr_u32(section(p, KILN__SEC_PROFILES), 0x7FFFFFFFu))
MUT(m_profile_count_u32, kiln__wr_u32(section(p, KILN__SEC_PROFILES), 0xFFFFFFFFu))
MUT(m_profile_entries_huge, kiln__wr_u32(section(p, KILN__SEC_PROFILES) + 8, 0x10000000u))
MUT(m_profile_count_less, add_u32(section(p, KILN__SEC_PROFILES), (uint32_t)-1))
MUT(m_profile_name_range, kiln__wr_u32(profile_entry(p, 0), 0xFFFFFFFEu))

typedef struct mutation {
    const char *name;
    mutate_fn fn;
    bool reseal; /* recompute the checksums so that the structural checks must catch it */
    kiln_status status;
    const char *message; /* a substring of kiln_last_error() */
} mutation;

static const mutation mutations[] = {
    {"magic", m_magic, false, KILN_INVALID_ARGUMENT, "not a kiln plan (bad magic)"},
    {"format version", m_format, false, KILN_INCOMPATIBLE, "plan format 3, this library reads 1"},
    {"library version", m_library, false, KILN_INCOMPATIBLE, "plan built by kiln 0.2.0, this is kiln 0.1.0"},
    {"header size", m_header_size, false, KILN_INVALID_ARGUMENT, "header size 200, format 1 uses 176"},
    {"total size field", m_total_size, false, KILN_INVALID_ARGUMENT, "bytes, got"},
    {"trailing byte", m_trailing, false, KILN_INVALID_ARGUMENT, "size mismatch"},
    {"body checksum field", m_body_crc, false, KILN_INVALID_ARGUMENT, "header checksum mismatch"}, /* it covers the field */
    {"header checksum field", m_header_crc, false, KILN_INVALID_ARGUMENT, "header checksum mismatch"},
    {"flags (unsealed)", m_flags_unsealed, false, KILN_INVALID_ARGUMENT, "header checksum mismatch"},
    {"workspace (unsealed)", m_workspace_unsealed, false, KILN_INVALID_ARGUMENT, "header checksum mismatch"},
    {"device (unsealed)", m_device_unsealed, false, KILN_INVALID_ARGUMENT, "header checksum mismatch"},
    {"section table (unsealed)", m_sections_unsealed, false, KILN_INVALID_ARGUMENT, "header checksum mismatch"},
    {"unknown device", m_device, true, KILN_INVALID_ARGUMENT, "unknown target device 7"},
    {"cuda without arch", m_cuda_no_arch, true, KILN_INVALID_ARGUMENT, "CUDA plan names no GPU architecture"},
    {"cpu with arch", m_cpu_arch, true, KILN_INVALID_ARGUMENT, "CPU plan names GPU architecture 'sm_90'"},
    {"arch unterminated", m_arch_unterminated, true, KILN_INVALID_ARGUMENT, "is not terminated"},
    {"arch junk", m_arch_junk, true, KILN_INVALID_ARGUMENT, "bytes after its terminator"},
    {"params size", m_params_size, true, KILN_INCOMPATIBLE, "256-byte layer params"},
    {"section count", m_nb_sections, true, KILN_INVALID_ARGUMENT, "5 sections, format 1 has 6"},
    {"reserved header", m_reserved, true, KILN_INVALID_ARGUMENT, "reserved header field"},
    {"section inside header", m_sec_in_header, true, KILN_INVALID_ARGUMENT, "tensors section [0, "},
    {"section past end", m_sec_past_end, true, KILN_INVALID_ARGUMENT, "io section"},
    {"section size huge", m_sec_huge_size, true, KILN_INVALID_ARGUMENT, "lies outside the file body"},
    {"section offset wraps", m_sec_wrap, true, KILN_INVALID_ARGUMENT, "lies outside the file body"},
    {"section misaligned", m_sec_misaligned, true, KILN_INVALID_ARGUMENT, "is not 8-byte aligned"},
    {"weights misaligned", m_weights_misaligned, true, KILN_INVALID_ARGUMENT, "is not 64-byte aligned"},
    {"sections overlap", m_overlap, true, KILN_INVALID_ARGUMENT, "tensors and layers sections overlap"},
    {"strings cut short", m_strings_truncated, true, KILN_INVALID_ARGUMENT, "is not terminated"},
    {"tensor count huge", m_tensor_count_huge, true, KILN_INVALID_ARGUMENT, "count 4294967295 is too large"},
    {"tensor count off by one", m_tensor_count_off, true, KILN_INVALID_ARGUMENT, "do not fill"},
    {"tensor name offset", m_tensor_name_range, true, KILN_INVALID_ARGUMENT, "string offset 2147483632 is outside"},
    {"unterminated string", m_unterminated, true, KILN_INVALID_ARGUMENT, "is not terminated"},
    {"bad dtype", m_dtype_bad, true, KILN_INVALID_ARGUMENT, "('z'): dtype 99 is not a valid tensor dtype"},
    {"undefined dtype", m_dtype_undefined, true, KILN_INVALID_ARGUMENT, "dtype 0 is not"},
    {"string dtype", m_dtype_string, true, KILN_INVALID_ARGUMENT, "dtype 8 is not"},
    {"rank 9", m_rank9, true, KILN_INVALID_ARGUMENT, "rank 9 is out of range 0..8"},
    {"rank -1", m_rank_negative, true, KILN_INVALID_ARGUMENT, "rank -1 is out of range"},
    {"dim -2", m_dim_negative, true, KILN_INVALID_ARGUMENT, "dim 0 is -2"},
    {"dim beyond rank", m_dim_beyond_rank, true, KILN_INVALID_ARGUMENT, "dim slot 5 beyond rank 4"},
    {"dim name beyond rank", m_dim_name_beyond_rank, true, KILN_INVALID_ARGUMENT, "dim name 3 beyond rank 2"},
    {"dim name offset", m_dim_name_range, true, KILN_INVALID_ARGUMENT, "dim name 1: string offset"},
    {"tensor reserved", m_tensor_reserved, true, KILN_INVALID_ARGUMENT, "reserved field is not zero"},
    {"input index out of range", m_input_range, true, KILN_INVALID_ARGUMENT, "('conv'): input 0 refers to tensor 9999"},
    {"input index -2", m_input_negative, true, KILN_INVALID_ARGUMENT, "input 0 refers to tensor -2"},
    {"absent output", m_output_absent, true, KILN_INVALID_ARGUMENT, "output 0 refers to tensor -1"},
    {"forward reference", m_forward_ref, true, KILN_INVALID_ARGUMENT,
     "input 1 ('z') is neither a network input nor produced by an earlier layer"},
    {"layer reads its own output", m_self_ref, true, KILN_INVALID_ARGUMENT, "input 0 ('y') is neither"},
    {"doubled producer", m_double_producer, true, KILN_INVALID_ARGUMENT, "('y') is already produced by layer 'conv'"},
    {"same output twice", m_output_twice, true, KILN_INVALID_ARGUMENT, "tensor 's0' is its output twice"},
    {"layer produces an input", m_produces_input, true, KILN_INVALID_ARGUMENT, "output 0 ('x') is a network input"},
    {"layer type count", m_layer_type_count, true, KILN_INVALID_ARGUMENT, "('ew'): type 1000 is out of range"},
    {"layer type negative", m_layer_type_negative, true, KILN_INVALID_ARGUMENT, "type -3 is out of range"},
    {"layer name offset", m_layer_name_range, true, KILN_INVALID_ARGUMENT, "is outside the"},
    {"layer inputs huge", m_layer_inputs_huge, true, KILN_INVALID_ARGUMENT, "2147483647 inputs and 1 outputs do not fit"},
    {"layer without outputs", m_layer_no_outputs, true, KILN_INVALID_ARGUMENT, "4 inputs and 0 outputs"},
    {"layer reserved", m_layer_reserved, true, KILN_INVALID_ARGUMENT, "('conv'): reserved field is not zero"},
    {"layer count huge", m_layer_count_huge, true, KILN_INVALID_ARGUMENT, "2147483647 layers cannot fit"},
    {"layer count low", m_layer_count_less, true, KILN_INVALID_ARGUMENT, "bytes after its last layer"},
    {"layer count high", m_layer_count_more, true, KILN_INVALID_ARGUMENT, "13 layers cannot fit"},
    {"layers section short", m_layers_short, true, KILN_INVALID_ARGUMENT, "layer 11: record runs past the end"},
    {"layer padding", m_layer_padding, true, KILN_INVALID_ARGUMENT, "('ew'): padding is not zero"},
    {"weights size", m_weights_size, true, KILN_INVALID_ARGUMENT, "('w'): 436 weight bytes, its float32 output 'w_out' needs 432"},
    {"weights offset misaligned", m_weights_offset_misaligned, true, KILN_INVALID_ARGUMENT, "are not a 64-aligned range"},
    {"weights offset out of range", m_weights_offset_range, true, KILN_INVALID_ARGUMENT, "are not a 64-aligned range"},
    {"weights on a conv", m_weights_on_conv, true, KILN_INVALID_ARGUMENT, "('conv'): only constants have weights"},
    {"constant of unknown dims", m_constant_output_dims, true, KILN_INVALID_ARGUMENT, "output 'w_out' has no fixed size"},
    {"io counts", m_io_counts, true, KILN_INVALID_ARGUMENT, "io section: 4294967295 inputs"},
    {"io input out of range", m_io_input_range, true, KILN_INVALID_ARGUMENT, "network input 0 refers to tensor 5000"},
    {"io input twice", m_io_input_twice, true, KILN_INVALID_ARGUMENT, "('x') is listed twice as a network input"},
    {"io output twice", m_io_output_twice, true, KILN_INVALID_ARGUMENT, "('z') is listed twice as a network output"},
    {"io output never produced", m_io_output_unproduced, true, KILN_INVALID_ARGUMENT,
     "network output 'orphan' is neither a network input nor produced by a layer"},
    {"io output -1", m_io_output_negative, true, KILN_INVALID_ARGUMENT, "network output 2 refers to tensor -1"},
    {"io names clash", m_io_same_name, true, KILN_INVALID_ARGUMENT, "two network inputs/outputs are named 'x'"},
    {"profile min > max", m_profile_min_gt_max, true, KILN_INVALID_ARGUMENT,
     "profile 0 input 'x' dim 0: min 100, opt 4, max 8"},
    {"profile opt > max", m_profile_opt_gt_max, true, KILN_INVALID_ARGUMENT, "input 'ids' dim 1: min 1, opt 600, max 512"},
    {"profile negative dim", m_profile_negative, true, KILN_INVALID_ARGUMENT, "profile 0 input 'x' min: dim 0 is -1"},
    {"profile rank", m_profile_rank, true, KILN_INVALID_ARGUMENT, "profile 0 input 'x' max: rank 3, the input has rank 4"},
    {"profile rank 9", m_profile_rank9, true, KILN_INVALID_ARGUMENT, "opt: rank 9 is out of range"},
    {"profile names a non-input", m_profile_not_input, true, KILN_INVALID_ARGUMENT, "names 'y', which is not a network input"},
    {"profile names an input twice", m_profile_twice, true, KILN_INVALID_ARGUMENT, "profile 0 names input 'x' twice"},
    {"profile count huge", m_profile_count_huge, true, KILN_INVALID_ARGUMENT, "2147483647 profiles cannot fit"},
    {"profile count u32", m_profile_count_u32, true, KILN_INVALID_ARGUMENT, "count 4294967295 is too large"},
    {"profile entries huge", m_profile_entries_huge, true, KILN_INVALID_ARGUMENT, "268435456 entries run past"},
    {"profile count low", m_profile_count_less, true, KILN_INVALID_ARGUMENT, "bytes after its last profile"},
    {"profile name offset", m_profile_name_range, true, KILN_INVALID_ARGUMENT, "profile 0 entry 0: string offset"},
};

static void expect_refused(const char *what, const uint8_t *data, size_t size, kiln_status status, const char *message) {
    kiln_engine *e = NULL;
    kiln_status st = read_plan(data, size, &e);
    kt_checks++;
    if (st != status || !strstr(kiln_last_error(), message)) {
        kt_failures++;
        fprintf(stderr, "mutation '%s': got %s \"%s\", expected %s containing \"%s\"\n", what, kiln_status_name(st),
                kiln_last_error(), kiln_status_name(status), message);
    }
    kiln_engine_destroy(e);
}

static void test_mutations(void) {
    kiln_engine *e = hand_engine(false);
    kiln__buf plan;
    write_plan(e, &plan);
    kiln_engine_destroy(e);
    KT_OK(read_plan(plan.data, plan.size, NULL));

    /* Each mutation works on a private copy with one spare byte (for "trailing byte"). */
    for (size_t i = 0; i < KILN__ARRAY_LEN(mutations); i++) {
        const mutation *m = &mutations[i];
        size_t size = plan.size;
        uint8_t *p = malloc(size + 1);
        memcpy(p, plan.data, size);
        p[size] = 0;
        m->fn(p, &size);
        if (m->reseal) kiln__plan_seal(p, size);
        expect_refused(m->name, p, size, m->status, m->message);
        free(p);
    }

    /* Truncation at every length, each in a buffer of exactly that size (ASan sees overreads). */
    for (size_t len = 0; len < plan.size; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, plan.data, len);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", len);
        expect_refused(what, p, len, KILN_INVALID_ARGUMENT, "truncated");
        free(p);
    }
    expect_refused("NULL data", NULL, 0, KILN_INVALID_ARGUMENT, "truncated");

    /* A flipped byte anywhere after the header is a checksum mismatch, in every section and
     * in the padding between them. */
    for (int s = 0; s < KILN__SEC_COUNT; s++) {
        uint64_t off = sec_off(plan.data, s), n = sec_size(plan.data, s);
        KT_CHECK(n > 0);
        uint64_t at[3] = {off, off + n / 2, off + n - 1};
        for (int k = 0; k < 3; k++) {
            plan.data[at[k]] ^= 0x10;
            char what[64];
            snprintf(what, sizeof what, "flipped byte %llu (section %d)", (unsigned long long)at[k], s);
            expect_refused(what, plan.data, plan.size, KILN_INVALID_ARGUMENT, "kiln plan: checksum mismatch");
            plan.data[at[k]] ^= 0x10;
        }
    }
    uint64_t gap = sec_off(plan.data, KILN__SEC_WEIGHTS) - 1; /* padding before the weights */
    plan.data[gap] ^= 1;
    expect_refused("flipped padding byte", plan.data, plan.size, KILN_INVALID_ARGUMENT, "kiln plan: checksum mismatch");
    plan.data[gap] ^= 1;
    /* Every header byte matters: each flip is caught by a field check or the header checksum. */
    for (size_t i = 0; i < KILN__PLAN_HEADER_SIZE; i++) {
        plan.data[i] ^= 0x04;
        kiln_status st = read_plan(plan.data, plan.size, NULL);
        KT_CHECK(st == KILN_INVALID_ARGUMENT || st == KILN_INCOMPATIBLE);
        plan.data[i] ^= 0x04;
    }
    KT_OK(read_plan(plan.data, plan.size, NULL));
    kiln__buf_free(&plan);
}

/* Random damage with valid checksums: the reader may accept or refuse but must never crash,
 * and what it accepts must write back out. */
static void test_random_corruption(void) {
    int accepted = 0, refused = 0;
    for (int round = 0; round < 40; round++) {
        kiln_engine *e = round % 2 ? random_engine() : hand_engine(round % 4 == 0);
        kiln__buf plan;
        write_plan(e, &plan);
        kiln_engine_destroy(e);
        uint8_t *p = malloc(plan.size);
        int64_t weights_at = (int64_t)sec_off(plan.data, KILN__SEC_WEIGHTS);
        for (int iter = 0; iter < 100; iter++) {
            memcpy(p, plan.data, plan.size);
            int flips = (int)kt_randi(1, 4);
            for (int k = 0; k < flips; k++) {
                /* Header fields and the structural sections, not the weights. */
                size_t at = (size_t)kt_randi(KILN__H_DEVICE, weights_at - 1);
                p[at] = kt_randi(0, 3) ? (uint8_t)(p[at] ^ (1u << kt_randi(0, 7))) : (uint8_t)kt_rand_u64();
            }
            kiln__plan_seal(p, plan.size);
            kiln_engine *back = NULL;
            kiln_status st = read_plan(p, plan.size, &back);
            KT_CHECK(st == KILN_OK || st == KILN_INVALID_ARGUMENT || st == KILN_INCOMPATIBLE);
            if (st == KILN_OK) {
                kiln__buf again;
                write_plan(back, &again);
                kiln__buf_free(&again);
                accepted++;
            } else {
                refused++;
            }
            kiln_engine_destroy(back);
        }
        free(p);
        kiln__buf_free(&plan);
    }
    printf("random corruption: %d accepted, %d refused\n", accepted, refused);
    KT_CHECK(refused > 0);
}

/* ---------------------------------------------------------------- out of memory */

static int g_fail_after = -1, g_allocs;

static void *failing_alloc(void *user, size_t size, size_t alignment) {
    (void)user;
    if (g_fail_after >= 0 && g_allocs++ >= g_fail_after) return NULL;
    void *p = NULL;
    return posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, size ? size : 1) ? NULL : p;
}

static void failing_free(void *user, void *p) {
    (void)user;
    free(p);
}

/* Every allocation of reading and writing a plan fails in turn: each failure is reported as
 * KILN_OUT_OF_MEMORY and leaks nothing (LeakSanitizer in the sanitizer build). */
static void test_out_of_memory(void) {
    kiln_engine *e = hand_engine(true);
    kiln__buf plan;
    write_plan(e, &plan);
    kiln_engine_destroy(e);
    kiln_allocator user = {failing_alloc, failing_free, NULL};
    kiln__alloc fa;
    kiln__alloc_init(&fa, &user);
    int k = 0;
    for (;; k++) {
        g_allocs = 0;
        g_fail_after = k;
        kiln_engine *r = NULL;
        kiln_status st = kiln__engine_alloc(&fa, NULL, &r);
        if (st == KILN_OK) st = kiln__plan_read(plan.data, plan.size, NULL, r);
        if (st == KILN_OK) {
            kiln__buf out;
            kiln__buf_init(&out, &fa);
            st = kiln__plan_write(r, &out);
            if (st == KILN_OK) KT_CHECK(out.size == plan.size && memcmp(out.data, plan.data, plan.size) == 0);
            kiln__buf_free(&out);
        }
        kiln_engine_destroy(r);
        g_fail_after = -1;
        KT_CHECK(st == KILN_OK || st == KILN_OUT_OF_MEMORY);
        if (st != KILN_OUT_OF_MEMORY) break;
    }
    printf("out of memory: succeeded once %d allocations could succeed\n", k);
    KT_CHECK(k > 20);
    kiln__buf_free(&plan);
}

/* ---------------------------------------------------------------- through the public API */

static void test_public_api(void) {
    kiln_builder *b = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    kiln_network *net = NULL;
    KT_OK(kiln_network_create(b, &net));
    kiln_tensor *x = NULL;
    kiln_dims xd = dims_of(4, (int64_t[]){-1, 3, 6, 6});
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    KT_OK(kiln_tensor_set_dim_name(x, 0, "batch"));
    float kernel[4 * 3 * 3 * 3], bias[4];
    kt_fill(kernel, 108, -1, 1);
    kt_fill(bias, 4, -1, 1);
    kiln_convolution_desc desc = {sizeof desc, .nb_output_maps = 4, .nb_spatial_dims = 2, .kernel = {3, 3}};
    kiln_layer *conv = NULL, *act = NULL;
    KT_OK(kiln_network_add_convolution(net, x, &desc, (kiln_weights){KILN_FLOAT32, kernel, 108},
                                       (kiln_weights){KILN_FLOAT32, bias, 4}, &conv));
    if (!conv) goto done;
    KT_OK(kiln_network_add_activation(net, kiln_layer_output(conv, 0), KILN_ACT_RELU, 0, 0, &act));
    if (!act) goto done;
    KT_OK(kiln_tensor_set_name(kiln_layer_output(act, 0), "y"));
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(act, 0)));
    kiln_builder_config *config = NULL;
    KT_OK(kiln_builder_config_create(b, &config));
    kiln_optimization_profile *prof = NULL;
    KT_OK(kiln_optimization_profile_create(b, &prof));
    kiln_dims mins = dims_of(4, (int64_t[]){1, 3, 6, 6}), opts = dims_of(4, (int64_t[]){2, 3, 6, 6}),
              maxs = dims_of(4, (int64_t[]){4, 3, 6, 6});
    KT_OK(kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_MIN, &mins));
    KT_OK(kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_OPT, &opts));
    KT_OK(kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_MAX, &maxs));
    KT_OK(kiln_builder_config_add_profile(config, prof));
    kiln_engine *built = NULL;
    KT_OK(kiln_builder_build_engine(b, net, config, &built));
    kiln_optimization_profile_destroy(prof);
    kiln_builder_config_destroy(config);
    if (built) {
        kiln_blob *blob = NULL, *again = NULL;
        kiln_runtime *rt = NULL;
        kiln_engine *loaded = NULL;
        KT_OK(kiln_engine_serialize(built, &blob));
        KT_OK(kiln_runtime_create(NULL, &rt));
        KT_OK(kiln_runtime_deserialize_engine(rt, kiln_blob_data(blob), kiln_blob_size(blob), &loaded));
        if (loaded) {
            check_equal(built, loaded);
            KT_OK(kiln_engine_serialize(loaded, &again));
            KT_CHECK(kiln_blob_size(again) == kiln_blob_size(blob) &&
                     memcmp(kiln_blob_data(again), kiln_blob_data(blob), kiln_blob_size(blob)) == 0);
            KT_CHECK(kiln_engine_tensor_dim_name(loaded, "x", 0) && strcmp(kiln_engine_tensor_dim_name(loaded, "x", 0), "batch") == 0);
            /* Both engines compute the same thing. */
            float in[2 * 3 * 6 * 6], *outs[2] = {NULL, NULL};
            kt_fill(in, 216, -1, 1);
            kiln_dims run = dims_of(4, (int64_t[]){2, 3, 6, 6});
            kiln_engine *engines[2] = {built, loaded};
            kiln_context *ctx[2] = {NULL, NULL};
            for (int k = 0; k < 2; k++) {
                KT_OK(kiln_engine_create_context(engines[k], &ctx[k]));
                if (!ctx[k]) continue;
                KT_OK(kiln_context_set_input_shape(ctx[k], "x", &run));
                KT_OK(kiln_context_set_tensor_address(ctx[k], "x", in, sizeof in));
                KT_OK(kiln_context_execute(ctx[k]));
                void *addr = NULL;
                KT_OK(kiln_context_get_tensor_address(ctx[k], "y", &addr));
                outs[k] = addr;
            }
            KT_CHECK(outs[0] && outs[1] && memcmp(outs[0], outs[1], 2 * 4 * 4 * 4 * sizeof(float)) == 0);
            for (int k = 0; k < 2; k++) kiln_context_destroy(ctx[k]);
        }
        /* Saved to a file and loaded back. */
        char path[] = "/tmp/kiln_test_plan_XXXXXX";
        int fd = mkstemp(path);
        KT_CHECK(fd >= 0);
        if (fd >= 0) {
            fclose(fdopen(fd, "w"));
            KT_OK(kiln_engine_save(built, path));
            kiln_engine *from_file = NULL;
            KT_OK(kiln_runtime_load_engine(rt, path, &from_file));
            if (from_file) check_equal(built, from_file);
            kiln_engine_destroy(from_file);
            remove(path);
        }
        /* A plan from another library version is refused by the runtime as incompatible. */
        uint8_t *copy = malloc(kiln_blob_size(blob));
        memcpy(copy, kiln_blob_data(blob), kiln_blob_size(blob));
        kiln__wr_u32(copy + KILN__H_LIBRARY, KILN_VERSION + 100);
        kiln_engine *refused = NULL;
        KT_STATUS(kiln_runtime_deserialize_engine(rt, copy, kiln_blob_size(blob), &refused), KILN_INCOMPATIBLE);
        KT_CHECK(refused == NULL && strstr(kiln_last_error(), "plan built by kiln 0.2.0, this is kiln 0.1.0"));
        /* Params the layer's infer rejects pass the reader but not the runtime's validation. */
        const kiln_layer *l0 = NULL;
        for (int64_t i = 0; loaded && i < loaded->net->nb_layers; i++)
            if (loaded->net->layers[i]->type == KILN_LAYER_CONVOLUTION) l0 = loaded->net->layers[i];
        if (l0) {
            memcpy(copy, kiln_blob_data(blob), kiln_blob_size(blob));
            uint8_t *rec = layer_rec(copy, l0->name);
            int32_t groups = 7;
            memcpy(rec + KILN__L_PARAMS + offsetof(kiln__conv_params, groups), &groups, sizeof groups);
            kiln__plan_seal(copy, kiln_blob_size(blob));
            KT_OK(read_plan(copy, kiln_blob_size(blob), NULL));
            kiln_status st = kiln_runtime_deserialize_engine(rt, copy, kiln_blob_size(blob), &refused);
            KT_CHECK(st != KILN_OK && refused == NULL);
        }
        free(copy);
        kiln_engine_destroy(loaded);
        kiln_blob_destroy(again);
        kiln_blob_destroy(blob);
        kiln_runtime_destroy(rt);
    }
    kiln_engine_destroy(built);
done:
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

/* ---------------------------------------------------------------- borrowed weights */

typedef struct test_owner {
    kiln__shared shared;
    int released;
} test_owner;

static void test_owner_release(void *ctx) { ((test_owner *)ctx)->released++; }

/* Counts the constants of an engine that borrow from `owner` (NULL: any owner) and those that
 * own their copy. */
static void count_weights(const kiln_engine *e, const kiln__shared *owner, int *borrowed, int *owned) {
    *borrowed = *owned = 0;
    for (int64_t i = 0; e && i < e->net->nb_layers; i++) {
        const kiln_layer *l = e->net->layers[i];
        if (!l->weights_bytes) continue;
        if (!l->weights_owner) (*owned)++;
        else if (!owner || l->weights_owner == owner) (*borrowed)++;
    }
}

/* With an owner, constants point into the plan bytes (when aligned) and hold one reference each;
 * misaligned bytes are copied. Out of memory at every allocation leaves no reference behind. */
static void test_borrowed_read(void) {
    kiln_engine *e = hand_engine(false);
    kiln__buf plan;
    write_plan(e, &plan);
    int nb_constants = 0, owned = 0;
    count_weights(e, NULL, &nb_constants, &owned);
    KT_CHECK(owned > 0); /* the hand engine owns its weights */
    /* Aligned copy at offset 0 and a copy one byte off. */
    uint8_t *aligned = NULL;
    KT_CHECK(posix_memalign((void **)&aligned, 64, plan.size + 64) == 0);
    for (int shift = 0; shift < 2; shift++) {
        memcpy(aligned + shift, plan.data, plan.size);
        test_owner o = {0};
        kiln__shared_init(&o.shared, test_owner_release, &o);
        kiln_engine *r = NULL;
        KT_OK(kiln__engine_alloc(&g_alloc, NULL, &r));
        KT_OK(kiln__plan_read(aligned + shift, plan.size, &o.shared, r));
        int borrowed = 0, copied = 0;
        count_weights(r, &o.shared, &borrowed, &copied);
        KT_CHECK(shift ? borrowed == 0 && copied == owned : borrowed == owned && copied == 0);
        KT_CHECK(o.shared.refs == 1 + borrowed && o.released == 0);
        for (int64_t i = 0; !shift && i < r->net->nb_layers; i++) {
            const uint8_t *w = r->net->layers[i]->weights;
            if (w) KT_CHECK(w >= aligned && w + r->net->layers[i]->weights_bytes <= aligned + plan.size);
        }
        check_equal(e, r);
        kiln_engine_destroy(r);
        KT_CHECK(o.shared.refs == 1 && o.released == 0);
        kiln__shared_unref(&o.shared);
        KT_CHECK(o.released == 1);
    }

    kiln_allocator user = {failing_alloc, failing_free, NULL};
    kiln__alloc fa;
    kiln__alloc_init(&fa, &user);
    memcpy(aligned, plan.data, plan.size);
    int k = 0;
    for (;; k++) {
        test_owner o = {0};
        kiln__shared_init(&o.shared, test_owner_release, &o);
        g_allocs = 0;
        g_fail_after = k;
        kiln_engine *r = NULL;
        kiln_status st = kiln__engine_alloc(&fa, NULL, &r);
        if (st == KILN_OK) st = kiln__plan_read(aligned, plan.size, &o.shared, r);
        kiln_engine_destroy(r);
        g_fail_after = -1;
        KT_CHECK(st == KILN_OK || st == KILN_OUT_OF_MEMORY);
        KT_CHECK(o.shared.refs == 1 && o.released == 0);
        kiln__shared_unref(&o.shared);
        if (st != KILN_OUT_OF_MEMORY) break;
    }
    KT_CHECK(k > 10);
    free(aligned);
    kiln__buf_free(&plan);
    kiln_engine_destroy(e);
}

/* How many mappings of `path` this process holds (/proc/self/maps names the file). */
static int mappings_of(const char *path) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, path)) n++;
    fclose(f);
    return n;
}

/* A small built engine: y = relu(conv3x3(x)) + a constant, x [1,3,6,6]. */
static kiln_engine *small_engine(kiln_builder *b) {
    kiln_network *net = NULL;
    KT_OK(kiln_network_create(b, &net));
    if (!net) return NULL;
    kiln_tensor *x = NULL;
    kiln_dims xd = dims_of(4, (int64_t[]){1, 3, 6, 6}), cd = dims_of(4, (int64_t[]){1, 4, 4, 4});
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    float kernel[4 * 3 * 3 * 3], bias[4], add[64];
    kt_fill(kernel, 108, -1, 1);
    kt_fill(bias, 4, -1, 1);
    kt_fill(add, 64, -1, 1);
    kiln_convolution_desc desc = {sizeof desc, .nb_output_maps = 4, .nb_spatial_dims = 2, .kernel = {3, 3}};
    kiln_layer *conv = NULL, *act = NULL, *c = NULL, *sum = NULL;
    kiln_engine *e = NULL;
    KT_OK(kiln_network_add_convolution(net, x, &desc, (kiln_weights){KILN_FLOAT32, kernel, 108},
                                       (kiln_weights){KILN_FLOAT32, bias, 4}, &conv));
    if (conv) KT_OK(kiln_network_add_activation(net, kiln_layer_output(conv, 0), KILN_ACT_RELU, 0, 0, &act));
    if (act) KT_OK(kiln_network_add_constant(net, &cd, (kiln_weights){KILN_FLOAT32, add, 64}, &c));
    if (c)
        KT_OK(kiln_network_add_elementwise(net, kiln_layer_output(act, 0), kiln_layer_output(c, 0), KILN_EW_ADD,
                                           &sum));
    if (sum) {
        KT_OK(kiln_tensor_set_name(kiln_layer_output(sum, 0), "y"));
        KT_OK(kiln_network_mark_output(net, kiln_layer_output(sum, 0)));
        kiln_builder_config *config = NULL;
        KT_OK(kiln_builder_config_create(b, &config));
        if (config) KT_OK(kiln_builder_build_engine(b, net, config, &e));
        kiln_builder_config_destroy(config);
    }
    kiln_network_destroy(net);
    return e;
}

/* Runs an engine on `in` and copies y (64 floats) out; false on failure. */
static bool run_small(kiln_engine *e, const float *in, float *y) {
    kiln_context *ctx = NULL;
    KT_OK(kiln_engine_create_context(e, &ctx));
    if (!ctx) return false;
    void *addr = NULL;
    KT_OK(kiln_context_set_tensor_address(ctx, "x", (void *)in, 108 * sizeof(float)));
    KT_OK(kiln_context_execute(ctx));
    KT_OK(kiln_context_get_tensor_address(ctx, "y", &addr));
    if (addr) memcpy(y, addr, 64 * sizeof(float));
    kiln_context_destroy(ctx);
    return addr != NULL;
}

/* Engines loaded from a file borrow their weights from its mapping, which lives exactly as long
 * as they do (whatever the order of destruction, even once the path is gone); engines from a
 * caller's buffer copy theirs. Loading fails cleanly at every allocation. */
static void test_file_backed(void) {
    kiln_builder *b = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    kiln_engine *built = b ? small_engine(b) : NULL;
    kiln_runtime *rt = NULL;
    KT_OK(kiln_runtime_create(NULL, &rt));
    char path[] = "/tmp/kiln_test_borrow_XXXXXX";
    int fd = mkstemp(path);
    KT_CHECK(fd >= 0);
    if (!built || !rt || fd < 0) goto done;
    close(fd);
    KT_OK(kiln_engine_save(built, path));
    float in[108], want[64], got[64];
    kt_fill(in, 108, -1, 1);
    KT_CHECK(run_small(built, in, want));
    int borrowed = 0, owned = 0, built_owned = 0;
    count_weights(built, NULL, &borrowed, &built_owned);
    KT_CHECK(borrowed == 0 && built_owned >= 2);

    kiln_engine *a = NULL, *c = NULL, *copy = NULL;
    KT_OK(kiln_runtime_load_engine(rt, path, &a));
    KT_OK(kiln_runtime_load_engine(rt, path, &c));
    KT_CHECK(mappings_of(path) == 2);
    count_weights(a, NULL, &borrowed, &owned);
    KT_CHECK(borrowed == built_owned && owned == 0);
    /* From a buffer: copies, so the buffer can go at once. */
    kiln_blob *blob = NULL;
    KT_OK(kiln_engine_serialize(built, &blob));
    if (blob) KT_OK(kiln_runtime_deserialize_engine(rt, kiln_blob_data(blob), kiln_blob_size(blob), &copy));
    kiln_blob_destroy(blob);
    count_weights(copy, NULL, &borrowed, &owned);
    KT_CHECK(copy && borrowed == 0 && owned == built_owned);

    /* The path goes; the mappings stay valid. */
    char gone[sizeof path];
    memcpy(gone, path, sizeof path);
    KT_CHECK(remove(path) == 0);
    kiln_engine *engines[3] = {a, c, copy};
    for (int k = 0; k < 3; k++) {
        memset(got, 0, sizeof got);
        KT_CHECK(engines[k] && run_small(engines[k], in, got) && memcmp(got, want, sizeof got) == 0);
    }
    /* Destroying the first-loaded engine unmaps only its file; the other keeps running. */
    kiln_engine_destroy(a);
    KT_CHECK(mappings_of(gone) == 1);
    memset(got, 0, sizeof got);
    KT_CHECK(c && run_small(c, in, got) && memcmp(got, want, sizeof got) == 0);
    kiln_engine_destroy(c);
    KT_CHECK(mappings_of(gone) == 0);
    kiln_engine_destroy(copy);

    /* Out of memory at every allocation of a load: reported, nothing leaked, nothing left mapped. */
    KT_OK(kiln_engine_save(built, path));
    kiln_allocator user = {failing_alloc, failing_free, NULL};
    kiln_runtime_options opts = {.struct_size = sizeof opts, .allocator = &user, .nb_threads = 1};
    kiln_runtime *frt = NULL;
    KT_OK(kiln_runtime_create(&opts, &frt));
    int k = 0;
    for (; frt; k++) {
        g_allocs = 0;
        g_fail_after = k;
        kiln_engine *e = NULL;
        kiln_status st = kiln_runtime_load_engine(frt, path, &e);
        g_fail_after = -1;
        KT_CHECK(st == KILN_OK || st == KILN_OUT_OF_MEMORY);
        KT_CHECK((st == KILN_OK) == (e != NULL) && mappings_of(path) == (e ? 1 : 0));
        if (e) {
            memset(got, 0, sizeof got);
            KT_CHECK(run_small(e, in, got) && memcmp(got, want, sizeof got) == 0);
        }
        kiln_engine_destroy(e);
        KT_CHECK(mappings_of(path) == 0);
        if (st != KILN_OUT_OF_MEMORY) break;
    }
    printf("load from file, out of memory: succeeded once %d allocations could succeed\n", k);
    KT_CHECK(k > 10);
    kiln_runtime_destroy(frt);
    remove(path);
done:
    kiln_runtime_destroy(rt);
    kiln_engine_destroy(built);
    kiln_builder_destroy(b);
}

/* ---------------------------------------------------------------- timing cache */

static kiln_status cache_from(kiln_builder *b, const uint8_t *p, size_t size, kiln_timing_cache **c) {
    return kiln_timing_cache_create(b, p, size, c);
}

static void reseal_cache(uint8_t *p, size_t size) {
    kiln__wr_u32(p + KILN__TC_CRC, kiln__crc32(p + KILN__TCACHE_HEADER_SIZE, size - KILN__TCACHE_HEADER_SIZE, 0));
}

static void expect_cache_refused(kiln_builder *b, const char *what, const uint8_t *p, size_t size, kiln_status status,
                                 const char *message) {
    kiln_timing_cache *c = NULL;
    kiln_status st = cache_from(b, p, size, &c);
    kt_checks++;
    if (st != status || c || !strstr(kiln_last_error(), message)) {
        kt_failures++;
        fprintf(stderr, "timing cache '%s': got %s \"%s\", expected %s containing \"%s\"\n", what,
                kiln_status_name(st), kiln_last_error(), kiln_status_name(status), message);
    }
    kiln_timing_cache_destroy(c);
}

static void test_timing_cache(void) {
    kiln_builder *b = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    kiln_timing_cache *c = NULL;
    KT_STATUS(kiln_timing_cache_create(NULL, NULL, 0, &c), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_timing_cache_create(b, NULL, 12, &c), KILN_INVALID_ARGUMENT);
    KT_OK(kiln_timing_cache_create(b, NULL, 0, &c));
    KT_CHECK(kiln_timing_cache_num_entries(c) == 0);
    int32_t tactic = -5;
    KT_CHECK(!kiln__timing_cache_lookup(c, 42, &tactic) && tactic == -5);
    KT_STATUS(kiln__timing_cache_insert(c, 1, 1, NAN), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln__timing_cache_insert(c, 1, 1, -1.0f), KILN_INVALID_ARGUMENT);

    /* Random inserts (with repeated keys) against a reference list. */
    enum { N = 400 };
    uint64_t keys[N];
    int32_t tactics[N];
    int nb = 0;
    for (int i = 0; i < N; i++) {
        uint64_t key = kt_randi(0, 2) ? kt_rand_u64() : (uint64_t)kt_randi(0, 50);
        int32_t t = (int32_t)kt_randi(-1, 100000);
        KT_OK(kiln__timing_cache_insert(c, key, t, kt_randf(0, 10)));
        int j = 0;
        while (j < nb && keys[j] != key) j++;
        if (j == nb) nb++;
        keys[j] = key;
        tactics[j] = t;
    }
    KT_CHECK(kiln_timing_cache_num_entries(c) == nb);
    for (int j = 0; j < nb; j++) KT_CHECK(kiln__timing_cache_lookup(c, keys[j], &tactic) && tactic == tactics[j]);

    kiln_blob *blob = NULL, *blob2 = NULL;
    KT_OK(kiln_timing_cache_serialize(c, &blob));
    KT_CHECK(kiln_blob_size(blob) == KILN__TCACHE_HEADER_SIZE + (size_t)nb * KILN__TCACHE_ENTRY_SIZE);
    kiln_timing_cache *c2 = NULL;
    KT_OK(kiln_timing_cache_create(b, kiln_blob_data(blob), kiln_blob_size(blob), &c2));
    KT_CHECK(kiln_timing_cache_num_entries(c2) == nb);
    for (int j = 0; j < nb; j++) KT_CHECK(kiln__timing_cache_lookup(c2, keys[j], &tactic) && tactic == tactics[j]);
    for (int64_t j = 0; j < nb && c2; j++)
        KT_CHECK(c2->entries[j].time_ms == c->entries[j].time_ms && c2->entries[j].key == c->entries[j].key);
    KT_OK(kiln_timing_cache_serialize(c2, &blob2));
    KT_CHECK(kiln_blob_size(blob2) == kiln_blob_size(blob) &&
             memcmp(kiln_blob_data(blob2), kiln_blob_data(blob), kiln_blob_size(blob)) == 0);
    kiln_timing_cache_destroy(c2);
    kiln_blob_destroy(blob2);

    /* An empty cache round-trips too. */
    kiln_timing_cache *empty = NULL;
    KT_OK(kiln_timing_cache_create(b, NULL, 0, &empty));
    KT_OK(kiln_timing_cache_serialize(empty, &blob2));
    kiln_timing_cache_destroy(empty);
    empty = NULL;
    KT_OK(kiln_timing_cache_create(b, kiln_blob_data(blob2), kiln_blob_size(blob2), &empty));
    KT_CHECK(empty && kiln_timing_cache_num_entries(empty) == 0);
    kiln_timing_cache_destroy(empty);
    kiln_blob_destroy(blob2);

    /* Corruption. */
    size_t size = kiln_blob_size(blob);
    uint8_t *p = malloc(size + 16);
    for (size_t len = 0; len < size; len += (len < 64 ? 1 : 13)) {
        uint8_t *t = malloc(len ? len : 1);
        memcpy(t, kiln_blob_data(blob), len);
        expect_cache_refused(b, "truncated", t, len, KILN_INVALID_ARGUMENT, len < KILN__TCACHE_HEADER_SIZE ? "truncated" : "size mismatch");
        free(t);
    }
#define CACHE_CASE(what, mutate, reseal, status, message)                                                      \
    do {                                                                                                       \
        memcpy(p, kiln_blob_data(blob), size);                                                                 \
        size_t n = size;                                                                                       \
        mutate;                                                                                                \
        if (reseal) reseal_cache(p, n);                                                                        \
        expect_cache_refused(b, what, p, n, status, message);                                                  \
    } while (0)
    uint8_t *e0 = p + KILN__TCACHE_HEADER_SIZE, *e1 = e0 + KILN__TCACHE_ENTRY_SIZE;
    CACHE_CASE("magic", p[0] = 'X', false, KILN_INVALID_ARGUMENT, "not a kiln timing cache (bad magic)");
    CACHE_CASE("a plan is not a cache", memcpy(p, KILN__PLAN_MAGIC, 8), false, KILN_INVALID_ARGUMENT, "bad magic");
    CACHE_CASE("version", kiln__wr_u32(p + KILN__TC_FORMAT, 2), false, KILN_INCOMPATIBLE,
               "timing cache format 2, this library reads 1");
    CACHE_CASE("count", add_u64(p + KILN__TC_COUNT, 1), false, KILN_INVALID_ARGUMENT, "entries of 16 bytes do not fill");
    CACHE_CASE("count huge", kiln__wr_u64(p + KILN__TC_COUNT, UINT64_MAX / 8), false, KILN_INVALID_ARGUMENT, "do not fill");
    CACHE_CASE("total size", add_u64(p + KILN__TC_TOTAL_SIZE, 16), false, KILN_INVALID_ARGUMENT, "size mismatch");
    CACHE_CASE("trailing bytes", (n += 3, add_u64(p + KILN__TC_TOTAL_SIZE, 3)), false, KILN_INVALID_ARGUMENT,
               "do not fill");
    CACHE_CASE("checksum field", p[KILN__TC_CRC] ^= 1, false, KILN_INVALID_ARGUMENT, "checksum mismatch");
    CACHE_CASE("flipped entry byte", e1[5] ^= 0x40, false, KILN_INVALID_ARGUMENT, "checksum mismatch");
    CACHE_CASE("flipped last byte", p[n - 1] ^= 0x01, false, KILN_INVALID_ARGUMENT, "checksum mismatch");
    CACHE_CASE("keys out of order", kiln__wr_u64(e0, UINT64_MAX), true,
               KILN_INVALID_ARGUMENT, "entry 1: keys are not strictly increasing");
    CACHE_CASE("duplicate key", memcpy(e1, e0, 8), true, KILN_INVALID_ARGUMENT, "entry 1: keys are not strictly");
    CACHE_CASE("NaN time", kiln__wr_u32(e1 + 12, 0x7FC00000u), true, KILN_INVALID_ARGUMENT, "entry 1: time nan ms");
    CACHE_CASE("infinite time", kiln__wr_u32(e0 + 12, 0x7F800000u), true, KILN_INVALID_ARGUMENT, "entry 0: time inf ms");
    CACHE_CASE("negative time", kiln__wr_u32(e0 + 12, 0xBF800000u), true, KILN_INVALID_ARGUMENT, "entry 0: time -1 ms");
#undef CACHE_CASE
    /* Random damage, resealed: never a crash. */
    for (int iter = 0; iter < 500; iter++) {
        memcpy(p, kiln_blob_data(blob), size);
        p[kt_randi(0, (int64_t)size - 1)] ^= (uint8_t)(1u << kt_randi(0, 7));
        if (kt_randi(0, 1)) reseal_cache(p, size);
        kiln_timing_cache *t = NULL;
        kiln_status st = cache_from(b, p, size, &t);
        KT_CHECK(st == KILN_OK || st == KILN_INVALID_ARGUMENT || st == KILN_INCOMPATIBLE);
        kiln_timing_cache_destroy(t);
    }
    free(p);
    kiln_blob_destroy(blob);
    kiln_timing_cache_destroy(c);
    kiln_timing_cache_destroy(NULL);
    KT_CHECK(kiln_timing_cache_num_entries(NULL) == 0);
    kiln_builder_destroy(b);
}

int main(void) {
    kt_seed();
    kiln__alloc_init(&g_alloc, NULL);
    test_round_trips();
    test_mutations();
    test_random_corruption();
    test_out_of_memory();
    test_public_api();
    test_borrowed_read();
    test_file_backed();
    test_timing_cache();
    return kt_summary("test_plan");
}
