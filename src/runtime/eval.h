/* The network evaluator: runs each layer's shape inference and, where values are wanted,
 * its CPU kernel. Used for build-time shape inference (with shape tensors folded), for the
 * CPU runtime, and by the CUDA backend to compute shape tensors on the host. */
#ifndef KILN_EVAL_H
#define KILN_EVAL_H

#include "engine.h"

typedef enum kiln__eval_mode {
    KILN__EVAL_SHAPES,  /* dims everywhere; values only for small tensors computable from constants/shapes */
    KILN__EVAL_EXECUTE  /* every tensor computed */
} kiln__eval_mode;

/* Where each tensor lives in one activation arena (-1: not planned, allocated on demand). */
typedef struct kiln__arena_plan {
    int64_t *offsets; /* one per tensor */
    uint64_t *bytes;  /* one per tensor: the planned size */
    uint64_t size;    /* bytes the arena needs */
} kiln__arena_plan;

/* Plans the arena from a SHAPES-mode run's values for the same input dims: every non-constant
 * tensor with known dims gets an offset; tensors whose lifetimes (producer .. last reader;
 * network outputs to the end) overlap never share bytes, but for a convolution's output written
 * over the residual it reads last (kiln__cpu_conv_inplace_ok). */
kiln_status kiln__arena_plan_make(const kiln_network *net, const kiln__value *shapes, const kiln__alloc *alloc,
                                  kiln__arena_plan *plan);
void kiln__arena_plan_free(const kiln__alloc *alloc, kiln__arena_plan *plan);

/* One layer's accumulated profiling time (kiln_context_set_profiling). */
typedef struct kiln__layer_timing {
    int64_t count;
    int64_t total_ns;
} kiln__layer_timing;

typedef struct kiln__eval {
    const kiln_network *net;
    const kiln__alloc *alloc;
    kiln__pool *pool;
    kiln__value *values; /* one per tensor */
    bool *owned;         /* values[i].data was allocated here */
    int32_t *uses_left;  /* execute mode: consumers still to run, to free early */
    /* Per tensor: the one layer reading it (as its first input) when no other layer reads it and
     * it is no network output, else NULL: such a tensor may pass in a layout the two agree on. */
    const kiln_layer **sole_reader;
    uint64_t live_bytes, peak_bytes; /* memory allocated on demand (outside the arena) */
    /* Execute mode: planned placement (both NULL when none). */
    const kiln__arena_plan *plan;
    uint8_t *arena;
    /* Execute mode: one persistent kernel cache slot per layer (kiln__cpu_ctx.cache), or NULL. */
    void **layer_cache;
    /* The engine's plan file mapping (kiln__cpu_ctx.map), or NULL. */
    const kiln__file_map *map;
    /* Execute mode: per-layer accumulators, one per layer, when profiling (else NULL). */
    kiln__layer_timing *timing;
} kiln__eval;

/* Prepares an evaluator for net (arrays sized to its tensors). */
kiln_status kiln__eval_init(kiln__eval *ev, const kiln_network *net, const kiln__alloc *alloc, kiln__pool *pool);
/* Frees every value the evaluator allocated and its arrays. */
void kiln__eval_free(kiln__eval *ev);

/* Sets input i's dims (and data, not owned; NULL in shape mode). */
void kiln__eval_set_input(kiln__eval *ev, int64_t input, const kiln_dims *dims, void *data);
/* Binds caller memory for a tensor (an output): the producing layer writes there when the size
 * fits. */
void kiln__eval_bind(kiln__eval *ev, int64_t tensor, void *data, size_t bytes);

/* Runs the network. Errors name the failing layer. */
kiln_status kiln__eval_run(kiln__eval *ev, kiln__eval_mode mode);

#endif
