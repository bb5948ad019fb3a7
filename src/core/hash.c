#include "core.h"

uint64_t kiln__hash64(const void *data, size_t size, uint64_t seed) {
    /* FNV-1a, 64-bit: stable across machines, good enough for cache keys. */
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint32_t kiln__crc32(const void *data, size_t size, uint32_t crc) {
    /* CRC-32 (IEEE 802.3), bytewise with a table built on first use per call site-free path. */
    static const uint32_t poly = 0xEDB88320u;
    uint32_t table[16];
    for (uint32_t i = 0; i < 16; i++) {
        uint32_t c = i;
        for (int k = 0; k < 4; k++) c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
        table[i] = c;
    }
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ table[crc & 15];
        crc = (crc >> 4) ^ table[crc & 15];
    }
    return ~crc;
}
