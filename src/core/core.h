/* Internal core: errors, allocation, logging, dtypes, hashing, file mapping, growable buffers. */
#ifndef KILN_CORE_H
#define KILN_CORE_H

#include "kiln.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KILN__MIN(a, b) ((a) < (b) ? (a) : (b))
#define KILN__MAX(a, b) ((a) > (b) ? (a) : (b))

/* Records `status` with a printf-style message as this thread's last error; returns status. */
kiln_status kiln__error(kiln_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current last error with "context: " (keeps the status); returns status. */
kiln_status kiln__error_prefix(kiln_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define KILN__TRY(expr)                                                                                        \
    do {                                                                                                       \
        kiln_status kiln__st_ = (expr);                                                                        \
        if (kiln__st_ != KILN_OK) return kiln__st_;                                                            \
    } while (0)

/* The allocator every object carries; never NULL inside the library. */
typedef struct kiln__alloc {
    kiln_allocator a;
} kiln__alloc;

void kiln__alloc_init(kiln__alloc *alloc, const kiln_allocator *user);
/* These record KILN_OUT_OF_MEMORY as the last error when they return NULL. */
void *kiln__malloc(const kiln__alloc *alloc, size_t size);
void *kiln__malloc_aligned(const kiln__alloc *alloc, size_t size, size_t alignment);
void *kiln__calloc(const kiln__alloc *alloc, size_t count, size_t size);
/* A large block that lives as long as its owner (activation arena, packed weights), 64-byte
 * aligned. From the default allocator it is aligned to 2 MiB and its whole 2 MiB pages are marked
 * for transparent huge pages, which the kernels' scattered reads (rows a plane apart) and the
 * streamed weights miss the TLB on far less. Freed with kiln__free. */
void *kiln__malloc_large(const kiln__alloc *alloc, size_t size);
/* Grows a buffer to new_size bytes, keeping old_size bytes; frees the old block only on success. */
void *kiln__realloc(const kiln__alloc *alloc, void *ptr, size_t old_size, size_t new_size);
void kiln__free(const kiln__alloc *alloc, void *ptr);
char *kiln__strdup(const kiln__alloc *alloc, const char *s);
/* Multiplies with overflow check; false on overflow. */
bool kiln__mul_size(size_t a, size_t b, size_t *out);

/* Grows *items (element size elem) so that it holds at least need elements. */
kiln_status kiln__reserve(const kiln__alloc *alloc, void **items, int64_t *capacity, int64_t need, size_t elem);

typedef struct kiln__log {
    kiln_logger logger;
    bool enabled;
} kiln__log;

void kiln__log_init(kiln__log *log, const kiln_logger *user);
void kiln__logf(const kiln__log *log, kiln_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Bytes of `count` elements of dtype (packed sub-byte types round up); false on overflow or
 * for dtypes without a fixed size. */
bool kiln__dtype_bytes(kiln_dtype dtype, int64_t count, size_t *bytes);
bool kiln__dtype_valid(kiln_dtype dtype);
bool kiln__dtype_is_float(kiln_dtype dtype);   /* f16/bf16/f32/f64 */
bool kiln__dtype_is_integer(kiln_dtype dtype); /* signed or unsigned 8..64-bit */
bool kiln__dtype_is_signed(kiln_dtype dtype);

float kiln__half_to_float(uint16_t h);
uint16_t kiln__float_to_half(float f);
float kiln__bf16_to_float(uint16_t b);
uint16_t kiln__float_to_bf16(float f);

/* Number of elements of dims; -1 if any dim is negative or the product overflows. */
int64_t kiln__dims_volume(const kiln_dims *dims);
bool kiln__dims_equal(const kiln_dims *a, const kiln_dims *b);
/* Writes "[1,3,224,224]" into buf. */
void kiln__dims_format(const kiln_dims *dims, char *buf, size_t size);

uint64_t kiln__hash64(const void *data, size_t size, uint64_t seed);
uint32_t kiln__crc32(const void *data, size_t size, uint32_t crc);

/* A read-only mapping of a whole file. */
typedef struct kiln__file_map {
    const uint8_t *data;
    size_t size;
} kiln__file_map;

kiln_status kiln__map_file(const char *path, kiln__file_map *map);
void kiln__unmap_file(kiln__file_map *map);
/* Drops the resident pages of [p, p + bytes) inside a kiln__map_file mapping (the whole pages
 * within the range; the partial ones at its ends stay). The bytes read the same afterwards,
 * faulted back in from the file. Only for such mappings: other memory would read as zeros. */
void kiln__file_map_release(const void *p, size_t bytes);
kiln_status kiln__write_file(const char *path, const void *data, size_t size);

/* Growable byte buffer, e.g. for text or serialized output. */
typedef struct kiln__buf {
    const kiln__alloc *alloc;
    uint8_t *data;
    size_t size;
    size_t capacity;
    bool failed; /* an append ran out of memory; later appends do nothing */
} kiln__buf;

void kiln__buf_init(kiln__buf *buf, const kiln__alloc *alloc);
void kiln__buf_free(kiln__buf *buf);
void kiln__buf_append(kiln__buf *buf, const void *data, size_t size);
void kiln__buf_printf(kiln__buf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends zero bytes until size is a multiple of align. */
void kiln__buf_pad(kiln__buf *buf, size_t align);
/* KILN_OUT_OF_MEMORY (recorded) if any append failed. */
kiln_status kiln__buf_status(const kiln__buf *buf);

/* The public blob: bytes owned by kiln. Takes the buffer's memory. */
kiln_status kiln__blob_from_buf(kiln__buf *buf, kiln_blob **blob);

#endif
