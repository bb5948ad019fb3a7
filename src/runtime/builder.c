/* Builder, builder config and optimization profiles. */
#include "engine.h"

#include <string.h>

kiln_status kiln_builder_create(const kiln_builder_options *options, kiln_builder **out) {
    if (!out) return kiln__error(KILN_INVALID_ARGUMENT, "builder_create: output pointer is NULL");
    *out = NULL;
    if (options && options->struct_size < sizeof(size_t))
        return kiln__error(KILN_INVALID_ARGUMENT, "builder_create: options.struct_size is not set");
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, options ? options->allocator : NULL);
    kiln_builder *b = kiln__calloc(&alloc, 1, sizeof *b);
    if (!b) return KILN_OUT_OF_MEMORY;
    b->alloc = alloc;
    kiln__log_init(&b->log, options ? options->logger : NULL);
    *out = b;
    return KILN_OK;
}

void kiln_builder_destroy(kiln_builder *b) {
    if (!b) return;
    kiln__alloc alloc = b->alloc;
    kiln__free(&alloc, b);
}

kiln_status kiln_network_create(kiln_builder *b, kiln_network **out) {
    if (!b || !out) return kiln__error(KILN_INVALID_ARGUMENT, "network_create: builder or output pointer is NULL");
    return kiln__network_create(&b->alloc, &b->log, out);
}

/* ---------------------------------------------------------------- profiles */

void kiln__profile_clear(const kiln__alloc *alloc, kiln__profile *p) {
    for (int32_t i = 0; i < p->nb_entries; i++) kiln__free(alloc, p->entries[i].input);
    kiln__free(alloc, p->entries);
    p->entries = NULL;
    p->nb_entries = 0;
}

kiln_status kiln__profile_copy(const kiln__alloc *alloc, const kiln__profile *src, kiln__profile *dst) {
    dst->nb_entries = 0;
    dst->entries = NULL;
    if (!src->nb_entries) return KILN_OK;
    dst->entries = kiln__calloc(alloc, (size_t)src->nb_entries, sizeof *dst->entries);
    if (!dst->entries) return KILN_OUT_OF_MEMORY;
    for (int32_t i = 0; i < src->nb_entries; i++) {
        dst->entries[i] = src->entries[i];
        dst->entries[i].input = kiln__strdup(alloc, src->entries[i].input);
        if (!dst->entries[i].input) {
            dst->nb_entries = i;
            kiln__profile_clear(alloc, dst);
            return KILN_OUT_OF_MEMORY;
        }
    }
    dst->nb_entries = src->nb_entries;
    return KILN_OK;
}

kiln_status kiln_optimization_profile_create(kiln_builder *b, kiln_optimization_profile **out) {
    if (!b || !out) return kiln__error(KILN_INVALID_ARGUMENT, "profile_create: builder or output pointer is NULL");
    *out = kiln__calloc(&b->alloc, 1, sizeof **out);
    if (!*out) return KILN_OUT_OF_MEMORY;
    (*out)->alloc = b->alloc;
    return KILN_OK;
}

void kiln_optimization_profile_destroy(kiln_optimization_profile *p) {
    if (!p) return;
    kiln__alloc alloc = p->alloc;
    kiln__profile_clear(&alloc, &p->profile);
    kiln__free(&alloc, p);
}

static kiln__profile_dims *profile_find(const kiln__profile *p, const char *name) {
    for (int32_t i = 0; i < p->nb_entries; i++)
        if (strcmp(p->entries[i].input, name) == 0) return &p->entries[i];
    return NULL;
}

kiln_status kiln_optimization_profile_set_dims(kiln_optimization_profile *p, const char *input_name,
                                               kiln_profile_selector which, const kiln_dims *dims) {
    if (!p || !input_name || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "profile_set_dims: NULL argument");
    if (which < KILN_PROFILE_MIN || which > KILN_PROFILE_MAX)
        return kiln__error(KILN_INVALID_ARGUMENT, "profile_set_dims: selector %d is not min, opt or max", (int)which);
    if (dims->nb_dims < 0 || dims->nb_dims > KILN_MAX_DIMS)
        return kiln__error(KILN_INVALID_ARGUMENT, "profile_set_dims '%s': rank %d is out of range", input_name,
                           dims->nb_dims);
    for (int32_t i = 0; i < dims->nb_dims; i++)
        if (dims->d[i] < 0)
            return kiln__error(KILN_INVALID_ARGUMENT, "profile_set_dims '%s': dim %d is %lld, must be >= 0",
                               input_name, i, (long long)dims->d[i]);
    kiln__profile_dims *e = profile_find(&p->profile, input_name);
    if (!e) {
        int64_t cap = p->profile.nb_entries;
        KILN__TRY(kiln__reserve(&p->alloc, (void **)&p->profile.entries, &cap, p->profile.nb_entries + 1,
                                sizeof *p->profile.entries));
        e = &p->profile.entries[p->profile.nb_entries];
        memset(e, 0, sizeof *e);
        e->input = kiln__strdup(&p->alloc, input_name);
        if (!e->input) return KILN_OUT_OF_MEMORY;
        for (int k = 0; k < 3; k++) e->dims[k].nb_dims = -1;
        p->profile.nb_entries++;
    }
    e->dims[which] = *dims;
    return KILN_OK;
}

kiln_status kiln_optimization_profile_get_dims(const kiln_optimization_profile *p, const char *input_name,
                                               kiln_profile_selector which, kiln_dims *dims) {
    if (!p || !input_name || !dims) return kiln__error(KILN_INVALID_ARGUMENT, "profile_get_dims: NULL argument");
    if (which < KILN_PROFILE_MIN || which > KILN_PROFILE_MAX)
        return kiln__error(KILN_INVALID_ARGUMENT, "profile_get_dims: selector %d is not min, opt or max", (int)which);
    const kiln__profile_dims *e = profile_find(&p->profile, input_name);
    if (!e || e->dims[which].nb_dims < 0)
        return kiln__error(KILN_NOT_FOUND, "profile has no %s dims for input '%s'",
                           which == KILN_PROFILE_MIN ? "min" : which == KILN_PROFILE_OPT ? "opt" : "max", input_name);
    *dims = e->dims[which];
    return KILN_OK;
}

/* ---------------------------------------------------------------- config */

kiln_status kiln_builder_config_create(kiln_builder *b, kiln_builder_config **out) {
    if (!b || !out) return kiln__error(KILN_INVALID_ARGUMENT, "config_create: builder or output pointer is NULL");
    *out = kiln__calloc(&b->alloc, 1, sizeof **out);
    if (!*out) return KILN_OUT_OF_MEMORY;
    (*out)->alloc = b->alloc;
    (*out)->device = KILN_DEVICE_CPU;
    return KILN_OK;
}

void kiln_builder_config_destroy(kiln_builder_config *c) {
    if (!c) return;
    kiln__alloc alloc = c->alloc;
    for (int32_t i = 0; i < c->nb_profiles; i++) kiln__profile_clear(&alloc, &c->profiles[i]);
    kiln__free(&alloc, c->profiles);
    kiln__free(&alloc, c);
}

kiln_status kiln_builder_config_set_flags(kiln_builder_config *c, uint32_t flags) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "config_set_flags: config is NULL");
    const uint32_t known = KILN_FLAG_FP16 | KILN_FLAG_BF16 | KILN_FLAG_TF32 | KILN_FLAG_INT8 | KILN_FLAG_FP8 |
                           KILN_FLAG_STRICT_TYPES;
    if (flags & ~known) return kiln__error(KILN_INVALID_ARGUMENT, "config_set_flags: unknown flag bits 0x%x", flags & ~known);
    c->flags = flags;
    return KILN_OK;
}

uint32_t kiln_builder_config_flags(const kiln_builder_config *c) { return c ? c->flags : 0; }

kiln_status kiln_builder_config_set_device(kiln_builder_config *c, kiln_device_type device) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "config_set_device: config is NULL");
    if (device != KILN_DEVICE_CPU && device != KILN_DEVICE_CUDA)
        return kiln__error(KILN_INVALID_ARGUMENT, "config_set_device: unknown device %d", (int)device);
    c->device = device;
    return KILN_OK;
}

kiln_status kiln_builder_config_set_workspace_limit(kiln_builder_config *c, uint64_t bytes) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "config_set_workspace_limit: config is NULL");
    c->workspace_limit = bytes;
    return KILN_OK;
}

kiln_status kiln_builder_config_add_profile(kiln_builder_config *c, const kiln_optimization_profile *p) {
    if (!c || !p) return kiln__error(KILN_INVALID_ARGUMENT, "config_add_profile: config or profile is NULL");
    for (int32_t i = 0; i < p->profile.nb_entries; i++)
        for (int k = 0; k < 3; k++)
            if (p->profile.entries[i].dims[k].nb_dims < 0)
                return kiln__error(KILN_INVALID_ARGUMENT, "config_add_profile: input '%s' has no %s dims",
                                   p->profile.entries[i].input, k == 0 ? "min" : k == 1 ? "opt" : "max");
    int64_t cap = c->nb_profiles;
    KILN__TRY(kiln__reserve(&c->alloc, (void **)&c->profiles, &cap, c->nb_profiles + 1, sizeof *c->profiles));
    KILN__TRY(kiln__profile_copy(&c->alloc, &p->profile, &c->profiles[c->nb_profiles]));
    c->nb_profiles++;
    return KILN_OK;
}

kiln_status kiln_builder_config_set_timing_cache(kiln_builder_config *c, kiln_timing_cache *cache) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "config_set_timing_cache: config is NULL");
    c->timing_cache = cache;
    return KILN_OK;
}
