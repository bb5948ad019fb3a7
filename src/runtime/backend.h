/* The interface a device backend (src/cuda) implements. The CPU backend is the evaluator
 * itself (eval.c); device backends run the layers the host cannot fold. */
#ifndef KILN_BACKEND_H
#define KILN_BACKEND_H

#include "eval.h"

typedef struct kiln__device_backend {
    /* Number of usable devices (0 when none or when the driver is missing). Loads only the
     * driver (libcuda.so, through the static CUDA runtime); cuDNN and cuBLASLt are loaded by
     * select_tactics and context_create, the first calls that need them. */
    int (*device_count)(void);
    /* The current device's architecture, e.g. "sm_90". */
    kiln_status (*arch)(char *buf, size_t size);
    /* Build time: KILN_OK when the backend can run this layer; otherwise KILN_UNSUPPORTED with
     * a message naming the layer and why. */
    kiln_status (*check_layer)(const kiln_engine *engine, const kiln_layer *layer);
    /* Build time, after every check passed: chooses tactics (layer->tactic), timing candidates
     * on the device; may read and extend the timing cache (NULL when none). */
    kiln_status (*select_tactics)(kiln_engine *engine, kiln_timing_cache *cache);
    /* Per execution context state (device buffers, handles, workspace). */
    kiln_status (*context_create)(const kiln_engine *engine, void **state);
    void (*context_destroy)(void *state);
    /* Runs the network on `stream` (cudaStream_t). `shapes` holds every tensor's concrete
     * dims for this run, with host data for tensors the host folded (shape tensors): those
     * need no device kernel, only an upload when a device layer reads them. inputs/outputs
     * are device pointers (with byte sizes) in engine IO order: network inputs then outputs.
     * May return before the work finishes (asynchronous on the stream). */
    kiln_status (*enqueue)(void *state, const kiln_engine *engine, const kiln__eval *shapes, void *const *io_data,
                           const size_t *io_bytes, void *stream);
    /* Waits for the work queued on `stream`. */
    kiln_status (*synchronize)(void *stream);
} kiln__device_backend;

/* The CUDA backend (src/cuda), or NULL when this build has none. Looking it up touches no
 * CUDA library: nothing CUDA is loaded at process start or for CPU engines. */
const kiln__device_backend *kiln__cuda(void);

#endif
