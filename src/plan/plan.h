/* Plan files: the serialized engine. Format: docs/plan-format.md. */
#ifndef KILN_PLAN_H
#define KILN_PLAN_H

#include "../runtime/engine.h"

/* Appends the serialized engine (header, network, weights, profiles, checksum) to out. */
kiln_status kiln__plan_write(const kiln_engine *engine, kiln__buf *out);

/* Decodes a plan into an engine shell made by kiln__engine_alloc (fills device, gpu_arch,
 * flags, workspace_limit, net, profiles). Validates everything structural (magic, versions,
 * sizes, offsets, checksum, indices, weights sizes); the caller then runs
 * kiln__engine_validate. Errors: KILN_INVALID_ARGUMENT for malformed data, KILN_INCOMPATIBLE
 * for another format/library version or target. On failure the engine's partial contents are
 * left for kiln_engine_destroy to free. owner: NULL copies every constant's weights; otherwise
 * the bytes stay valid while owner is referenced, and constants whose weights lie 64-byte
 * aligned in memory borrow them (taking a reference each) instead of copying. When the plan lies
 * in engine->map (a plan file mapping), its pages are dropped as the checksum is checked. */
kiln_status kiln__plan_read(const void *data, size_t size, kiln__shared *owner, kiln_engine *engine);

#endif
