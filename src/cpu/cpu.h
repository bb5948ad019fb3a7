/* CPU backend: kernels for every layer type, a thread pool, scratch memory. */
#ifndef KILN_CPU_H
#define KILN_CPU_H

#include "../network/ir.h"

typedef struct kiln__pool kiln__pool;

/* A pool of nb_threads - 1 workers (the caller is the last thread); nb_threads <= 0 means one per core. */
kiln_status kiln__pool_create(const kiln__alloc *alloc, int32_t nb_threads, kiln__pool **pool);
void kiln__pool_destroy(kiln__pool *pool);
int32_t kiln__pool_threads(const kiln__pool *pool);

/* Calls fn(arg, begin, end) over [0, n) in chunks of at least `grain` items, spread over the
 * pool's threads; returns when all are done. When another caller holds the pool (another
 * context), the work runs on the calling thread alone. pool may be NULL (serial). */
typedef void (*kiln__range_fn)(void *arg, int64_t begin, int64_t end);
void kiln__parallel_for(kiln__pool *pool, int64_t n, int64_t grain, kiln__range_fn fn, void *arg);
/* fn(arg, s, s + 1) once for each slot s < n, on thread s of the pool (the caller is thread 0),
 * so that layers split the same way in a row each read on one core what that core wrote. A slot
 * whose thread has not joined the call by the time another thread is free runs on that one
 * instead (a worker the system is not running does not hold the call up). n at most the pool's
 * threads; serial (fn(arg, 0, n)) where kiln__parallel_for would be. */
void kiln__parallel_slots(kiln__pool *pool, int64_t n, kiln__range_fn fn, void *arg);
/* fn(arg, i, i + 1) once for each item i < n: with T = min(n, the pool's threads), thread t takes
 * items [t * n / T, (t + 1) * n / T) in order, so that layers split the same way in a row mostly
 * read on one core what that core wrote; a thread done with its own items takes those the others
 * have not started, from the front of their ranges (a slow or absent thread holds the call up by
 * one item at most). Serial (fn(arg, 0, n)) where kiln__parallel_for would be. */
void kiln__parallel_ranges(kiln__pool *pool, int64_t n, kiln__range_fn fn, void *arg);
/* fn(arg, begin, end) over pieces of [0, n) that together cover it once: with T = min(n, the pool's
 * threads), thread t's share [t * n / T, (t + 1) * n / T) comes in pieces of a half, a quarter and
 * so on (none smaller than min_piece), in order, so that layers split the same way in a row mostly
 * read on one core what that core wrote; a thread done with its share takes the pieces of the
 * others' that they have not started (a slower thread holds the call up by a small piece).
 * Threads past T take no pieces: scratch per thread through kiln__pool_thread, below T. Serial
 * (fn(arg, 0, n)) where kiln__parallel_for would be. */
void kiln__parallel_shares(kiln__pool *pool, int64_t n, int64_t min_piece, kiln__range_fn fn, void *arg);
/* The index of the pool thread running the calling item (0: the caller), for scratch per thread
 * when items move between threads. Outside a parallel loop it is stale, at most some pool's
 * thread count - 1: callers clamp it to their scratch slots (a serial run uses one). */
int32_t kiln__pool_thread(void);

typedef struct kiln__cpu_ctx {
    kiln__pool *pool;          /* may be NULL */
    const kiln__alloc *alloc;  /* for scratch buffers; free them before returning */
    /* The layer's slot in the execution context that runs it, or NULL (no context, e.g. constant
     * folding): a kernel may keep data derived from constant inputs there across runs (packed
     * weights), as one block from kiln__malloc/kiln__malloc_aligned(alloc); the context frees it
     * with kiln__free when destroyed. Only one run at a time touches a context's slots. */
    void **cache;
    /* The plan file mapping the engine's constants borrow from, or NULL (no engine, or one built
     * in-process or read from memory). */
    const kiln__file_map *map;
} kiln__cpu_ctx;

/* For a kernel that keeps a packed copy of constant weights in its cache slot and will not read
 * the originals again: drops the resident pages of [p, p + bytes) when the range lies inside
 * ctx->map (read again, they fault back in from the file); does nothing otherwise. */
void kiln__cpu_release_weights(const kiln__cpu_ctx *ctx, const void *p, size_t bytes);

/* Runs a layer. Inputs have concrete dims and data; outputs have dims and dtype from the
 * layer's infer function and allocated (uninitialized) data of the right size. Returns an
 * error naming the layer for what only shows at run time (e.g. an index out of range). */
typedef kiln_status (*kiln__cpu_kernel_fn)(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                           kiln__cpu_ctx *ctx);

/* Whether tensor `t`, written by `producer` (inputs p_in) and read only by `reader` (as its first
 * input; inputs r_in, outputs r_out inferred), passes between their kernels in NCHW16C: both have
 * kernels for it and gain from it at these shapes. kiln__cpu_blocked_pair says from the two layers
 * alone whether it can (false: kiln__cpu_blocked_edge is false whatever the shapes), so callers
 * skip inferring the reader's outputs for every other edge. */
bool kiln__cpu_blocked_pair(const kiln_layer *producer, const kiln_layer *reader);
bool kiln__cpu_blocked_edge(const kiln_layer *producer, const kiln__value *p_in, const kiln__value *t,
                            const kiln_layer *reader, const kiln__value *r_in, const kiln__value *r_out);

/* Whether a convolution with a residual input (in[3]; dims and dtypes suffice) may write its
 * output over the residual where that is the residual's last read: the stores then go to lines
 * the residual's loads have just brought in, not to others they must fetch first. Its float32
 * kernels other than the depthwise ones read each residual element before storing the output
 * element at the same place (the GEMMs take a residual that is C itself as C's initial value). */
bool kiln__cpu_conv_inplace_ok(const kiln_layer *layer, const kiln__value *in, const kiln__value *out);

/* Whether a pooling layer (inputs in, outputs out inferred) reads its input in NCHW16C. */
bool kiln__cpu_pool_blocked_ok(const kiln_layer *layer, const kiln__value *in, const kiln__value *out);

/* NULL when the CPU backend has no kernel for the type. */
kiln__cpu_kernel_fn kiln__cpu_kernel_for(kiln_layer_type type);

/* Element access by dtype for kernels that work in float or int64 internally. */
double kiln__load_f64(const void *data, kiln_dtype dtype, int64_t i);
void kiln__store_f64(void *data, kiln_dtype dtype, int64_t i, double v);
int64_t kiln__load_i64(const void *data, kiln_dtype dtype, int64_t i);
void kiln__store_i64(void *data, kiln_dtype dtype, int64_t i, int64_t v);

/* Applies a fused epilogue activation in place to n floats. */
void kiln__apply_act_f32(const kiln__act *act, float *x, int64_t n);
/* One activation on one value (reference formulas shared by the activation layer). */
float kiln__act_f32(int32_t kind, float alpha, float beta, float x);

#endif
