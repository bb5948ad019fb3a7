/* Timing cache: a sorted array of (key, tactic, time) with a checksummed serialized form. The
 * bytes handed to kiln_timing_cache_create are untrusted and validated like a plan's. */
#include "timing_cache.h"

#include "../plan/plan_format.h"
#include "../runtime/engine.h"

#include <math.h>
#include <string.h>

/* Index of the first entry with entry.key >= key. */
static int64_t lower_bound(const kiln_timing_cache *c, uint64_t key) {
    int64_t lo = 0, hi = c->nb_entries;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (c->entries[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool kiln__timing_cache_lookup(const kiln_timing_cache *c, uint64_t key, int32_t *tactic) {
    if (!c) return false;
    int64_t i = lower_bound(c, key);
    if (i == c->nb_entries || c->entries[i].key != key) return false;
    *tactic = c->entries[i].tactic;
    return true;
}

kiln_status kiln__timing_cache_insert(kiln_timing_cache *c, uint64_t key, int32_t tactic, float time_ms) {
    if (!c) return kiln__error(KILN_INVALID_ARGUMENT, "timing cache insert: cache is NULL");
    if (!isfinite(time_ms) || time_ms < 0)
        return kiln__error(KILN_INVALID_ARGUMENT, "timing cache insert: time %g ms is not a finite value >= 0",
                           (double)time_ms);
    int64_t i = lower_bound(c, key);
    if (i == c->nb_entries || c->entries[i].key != key) {
        KILN__TRY(kiln__reserve(&c->alloc, (void **)&c->entries, &c->capacity, c->nb_entries + 1, sizeof *c->entries));
        memmove(&c->entries[i + 1], &c->entries[i], (size_t)(c->nb_entries - i) * sizeof *c->entries);
        c->nb_entries++;
    }
    c->entries[i] = (kiln__timing_entry){.key = key, .tactic = tactic, .time_ms = time_ms};
    return KILN_OK;
}

static float f32_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

static kiln_status bad(const char *what) {
    return kiln__error(KILN_INVALID_ARGUMENT, "invalid kiln timing cache: %s", what);
}

/* Fills an empty cache from serialized bytes, checking everything first. */
static kiln_status parse(kiln_timing_cache *c, const uint8_t *p, size_t size) {
    if (memcmp(p, KILN__TCACHE_MAGIC, KILN__MIN(size, 8)) != 0)
        return kiln__error(KILN_INVALID_ARGUMENT, "not a kiln timing cache (bad magic)");
    if (size < KILN__TCACHE_HEADER_SIZE)
        return kiln__error(KILN_INVALID_ARGUMENT, "invalid kiln timing cache: truncated: %zu bytes, the header is %d",
                           size, KILN__TCACHE_HEADER_SIZE);
    uint32_t format = kiln__rd_u32(p + KILN__TC_FORMAT);
    if (format != KILN__TCACHE_FORMAT_VERSION)
        return kiln__error(KILN_INCOMPATIBLE, "timing cache format %u, this library reads %u", format,
                           KILN__TCACHE_FORMAT_VERSION);
    uint64_t total = kiln__rd_u64(p + KILN__TC_TOTAL_SIZE), count = kiln__rd_u64(p + KILN__TC_COUNT);
    if (total != size)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "invalid kiln timing cache: size mismatch: the header says %llu bytes, got %zu",
                           (unsigned long long)total, size);
    if (count != (size - KILN__TCACHE_HEADER_SIZE) / KILN__TCACHE_ENTRY_SIZE ||
        (size - KILN__TCACHE_HEADER_SIZE) % KILN__TCACHE_ENTRY_SIZE)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "invalid kiln timing cache: %llu entries of %d bytes do not fill its %zu-byte body",
                           (unsigned long long)count, KILN__TCACHE_ENTRY_SIZE, size - KILN__TCACHE_HEADER_SIZE);
    if (kiln__crc32(p + KILN__TCACHE_HEADER_SIZE, size - KILN__TCACHE_HEADER_SIZE, 0) != kiln__rd_u32(p + KILN__TC_CRC))
        return bad("checksum mismatch");
    KILN__TRY(kiln__reserve(&c->alloc, (void **)&c->entries, &c->capacity, (int64_t)count, sizeof *c->entries));
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *e = p + KILN__TCACHE_HEADER_SIZE + i * KILN__TCACHE_ENTRY_SIZE;
        kiln__timing_entry entry = {kiln__rd_u64(e), kiln__rd_i32(e + 8), f32_from_bits(kiln__rd_u32(e + 12))};
        if (i && entry.key <= c->entries[i - 1].key)
            return kiln__error(KILN_INVALID_ARGUMENT,
                               "invalid kiln timing cache: entry %llu: keys are not strictly increasing",
                               (unsigned long long)i);
        if (!isfinite(entry.time_ms) || entry.time_ms < 0)
            return kiln__error(KILN_INVALID_ARGUMENT, "invalid kiln timing cache: entry %llu: time %g ms",
                               (unsigned long long)i, (double)entry.time_ms);
        c->entries[i] = entry;
    }
    c->nb_entries = (int64_t)count;
    return KILN_OK;
}

kiln_status kiln_timing_cache_create(kiln_builder *builder, const void *data, size_t size, kiln_timing_cache **out) {
    if (out) *out = NULL;
    if (!builder || !out) return kiln__error(KILN_INVALID_ARGUMENT, "timing_cache_create: builder or output is NULL");
    if (!data && size)
        return kiln__error(KILN_INVALID_ARGUMENT, "timing_cache_create: data is NULL but size is %zu", size);
    kiln_timing_cache *c = kiln__calloc(&builder->alloc, 1, sizeof *c);
    if (!c) return KILN_OUT_OF_MEMORY;
    c->alloc = builder->alloc;
    if (data) {
        kiln_status st = parse(c, data, size);
        if (st != KILN_OK) {
            kiln_timing_cache_destroy(c);
            return st;
        }
    }
    *out = c;
    return KILN_OK;
}

void kiln_timing_cache_destroy(kiln_timing_cache *c) {
    if (!c) return;
    kiln__alloc alloc = c->alloc;
    kiln__free(&alloc, c->entries);
    kiln__free(&alloc, c);
}

kiln_status kiln_timing_cache_serialize(const kiln_timing_cache *c, kiln_blob **out) {
    if (out) *out = NULL;
    if (!c || !out) return kiln__error(KILN_INVALID_ARGUMENT, "timing_cache_serialize: cache or output is NULL");
    kiln__buf b;
    kiln__buf_init(&b, &c->alloc);
    uint8_t header[KILN__TCACHE_HEADER_SIZE] = {0};
    kiln__buf_append(&b, header, sizeof header);
    for (int64_t i = 0; i < c->nb_entries; i++) {
        uint8_t e[KILN__TCACHE_ENTRY_SIZE];
        kiln__wr_u64(e, c->entries[i].key);
        kiln__wr_u32(e + 8, (uint32_t)c->entries[i].tactic);
        kiln__wr_u32(e + 12, f32_bits(c->entries[i].time_ms));
        kiln__buf_append(&b, e, sizeof e);
    }
    kiln_status st = kiln__buf_status(&b);
    if (st == KILN_OK) {
        memcpy(b.data, KILN__TCACHE_MAGIC, 8);
        kiln__wr_u32(b.data + KILN__TC_FORMAT, KILN__TCACHE_FORMAT_VERSION);
        kiln__wr_u64(b.data + KILN__TC_COUNT, (uint64_t)c->nb_entries);
        kiln__wr_u64(b.data + KILN__TC_TOTAL_SIZE, b.size);
        kiln__wr_u32(b.data + KILN__TC_CRC,
                     kiln__crc32(b.data + KILN__TCACHE_HEADER_SIZE, b.size - KILN__TCACHE_HEADER_SIZE, 0));
        st = kiln__blob_from_buf(&b, out);
    }
    kiln__buf_free(&b);
    return st;
}

int64_t kiln_timing_cache_num_entries(const kiln_timing_cache *c) { return c ? c->nb_entries : 0; }
