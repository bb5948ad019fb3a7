/* Engine, builder and runtime internals shared by the builder, the plan reader/writer and the
 * execution context. */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include "../cpu/cpu.h"

/* min/opt/max dims of one input in one profile. */
typedef struct kiln__profile_dims {
    char *input;
    kiln_dims dims[3]; /* indexed by kiln_profile_selector */
} kiln__profile_dims;

typedef struct kiln__profile {
    int32_t nb_entries;
    kiln__profile_dims *entries;
} kiln__profile;

struct kiln_builder {
    kiln__alloc alloc;
    kiln__log log;
};

struct kiln_optimization_profile {
    kiln__alloc alloc;
    kiln__profile profile;
};

struct kiln_builder_config {
    kiln__alloc alloc;
    uint32_t flags;
    kiln_device_type device;
    uint64_t workspace_limit;
    int32_t nb_profiles;
    kiln__profile *profiles;
    kiln_timing_cache *timing_cache;
};

struct kiln_runtime {
    kiln__alloc alloc;
    kiln__log log;
    kiln__pool *pool;
    int32_t nb_threads;
};

#define KILN__GPU_ARCH_LEN 16

struct kiln_engine {
    kiln__alloc alloc;
    kiln__log log;
    kiln__pool *pool;       /* the runtime's, or owned_pool */
    kiln__pool *owned_pool; /* engines built by a builder own a pool */
    kiln_device_type device;
    char gpu_arch[KILN__GPU_ARCH_LEN]; /* "sm_90" for CUDA engines, "" for CPU */
    uint32_t flags;                   /* builder flags it was built with */
    uint64_t workspace_limit;
    /* The optimized network: inputs, outputs, layers in execution order, weights. Tensor dims
     * are the build-time dims (-1 where they vary with the profile or with data). */
    kiln_network *net;
    int32_t nb_profiles;
    kiln__profile *profiles;
    /* The plan file mapping that constants borrow their weights from, and a reference on it held
     * while the engine lives (so the range never names other memory): CPU kernels drop its pages
     * once they keep packed copies. Zero for engines built in-process or read from memory. */
    kiln__file_map map;
    kiln__shared *map_owner;
};

/* Frees the profile arrays of `p` (not p itself). */
void kiln__profile_clear(const kiln__alloc *alloc, kiln__profile *p);
kiln_status kiln__profile_copy(const kiln__alloc *alloc, const kiln__profile *src, kiln__profile *dst);

/* Creates an engine shell with the given allocator/logger; fields are zero. */
kiln_status kiln__engine_alloc(const kiln__alloc *alloc, const kiln__log *log, kiln_engine **engine);
/* Checks a deserialized or built engine: topological order, IO lists, every layer's infer on
 * the build-time dims and on each profile's min/opt/max. */
kiln_status kiln__engine_validate(kiln_engine *engine);

#endif
