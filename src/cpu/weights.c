/* Releasing the resident pages of constant weights that kernels keep packed copies of. */
#include "cpu.h"

void kiln__cpu_release_weights(const kiln__cpu_ctx *ctx, const void *p, size_t bytes) {
    /* Only inside the mapping: on any other memory (weights copied to the heap, a float32 copy
     * of float16 weights) the release would zero live data. */
    if (!ctx || !ctx->map || !ctx->map->data || !p) return;
    uintptr_t begin = (uintptr_t)ctx->map->data, at = (uintptr_t)p;
    if (at < begin || at - begin > ctx->map->size || bytes > ctx->map->size - (at - begin)) return;
    kiln__file_map_release(p, bytes);
}
