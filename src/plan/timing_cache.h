/* The timing cache: measured tactic times keyed by a hash of (layer configuration, shapes,
 * device), so rebuilding a model skips timing what was timed before. Serialized layout:
 * docs/plan-format.md ("Timing cache"). */
#ifndef KILN_TIMING_CACHE_H
#define KILN_TIMING_CACHE_H

#include "../core/core.h"

#define KILN__TCACHE_MAGIC "KILNTCAC"
#define KILN__TCACHE_FORMAT_VERSION 1u
/* Header: magic[8], u32 format, u32 CRC-32 of the entries, u64 count, u64 total size. */
#define KILN__TC_FORMAT 8
#define KILN__TC_CRC 12
#define KILN__TC_COUNT 16
#define KILN__TC_TOTAL_SIZE 24
#define KILN__TCACHE_HEADER_SIZE 32
/* Entry: u64 key, i32 tactic, f32 time in ms (IEEE bits); entries sorted by key, keys unique. */
#define KILN__TCACHE_ENTRY_SIZE 16

typedef struct kiln__timing_entry {
    uint64_t key;
    int32_t tactic;
    float time_ms;
} kiln__timing_entry;

struct kiln_timing_cache {
    kiln__alloc alloc;
    kiln__timing_entry *entries; /* sorted by key */
    int64_t nb_entries, capacity;
};

/* True and *tactic set when the cache holds `key`. */
bool kiln__timing_cache_lookup(const kiln_timing_cache *cache, uint64_t key, int32_t *tactic);
/* Records the best tactic for `key`; replaces an existing entry for the key (the newer
 * measurement wins). time_ms must be finite and >= 0. */
kiln_status kiln__timing_cache_insert(kiln_timing_cache *cache, uint64_t key, int32_t tactic, float time_ms);

#endif
