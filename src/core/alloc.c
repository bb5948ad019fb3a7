#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void *default_alloc(void *user, size_t size, size_t alignment) {
    (void)user;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    void *p = NULL;
    if (posix_memalign(&p, alignment, size ? size : 1) != 0) return NULL;
    return p;
}

static void default_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

void kiln__alloc_init(kiln__alloc *alloc, const kiln_allocator *user) {
    if (user && user->alloc && user->free) {
        alloc->a = *user;
    } else {
        alloc->a.alloc = default_alloc;
        alloc->a.free = default_free;
        alloc->a.user = NULL;
    }
}

void *kiln__malloc_aligned(const kiln__alloc *alloc, size_t size, size_t alignment) {
    void *p = alloc->a.alloc(alloc->a.user, size ? size : 1, alignment);
    if (!p) kiln__error(KILN_OUT_OF_MEMORY, "out of host memory (allocating %zu bytes)", size);
    return p;
}

void *kiln__malloc(const kiln__alloc *alloc, size_t size) { return kiln__malloc_aligned(alloc, size, 16); }

#define HUGE_PAGE ((size_t)2 << 20)

void *kiln__malloc_large(const kiln__alloc *alloc, size_t size) {
#ifdef MADV_HUGEPAGE
    bool huge = alloc->a.alloc == default_alloc && size >= HUGE_PAGE;
#else
    bool huge = false;
#endif
    void *p = kiln__malloc_aligned(alloc, size, huge ? HUGE_PAGE : 64);
#ifdef MADV_HUGEPAGE
    /* advice only: where Linux has no transparent huge pages the block keeps small ones */
    if (p && huge) madvise(p, size / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE);
#endif
    return p;
}

bool kiln__mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

void *kiln__calloc(const kiln__alloc *alloc, size_t count, size_t size) {
    size_t total;
    if (!kiln__mul_size(count, size, &total)) {
        kiln__error(KILN_OUT_OF_MEMORY, "allocation size overflows (%zu x %zu bytes)", count, size);
        return NULL;
    }
    void *p = kiln__malloc(alloc, total);
    if (p) memset(p, 0, total);
    return p;
}

void *kiln__realloc(const kiln__alloc *alloc, void *ptr, size_t old_size, size_t new_size) {
    void *p = kiln__malloc(alloc, new_size);
    if (!p) return NULL;
    if (ptr) memcpy(p, ptr, old_size < new_size ? old_size : new_size);
    kiln__free(alloc, ptr);
    return p;
}

void kiln__free(const kiln__alloc *alloc, void *ptr) {
    if (ptr) alloc->a.free(alloc->a.user, ptr);
}

char *kiln__strdup(const kiln__alloc *alloc, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = kiln__malloc(alloc, n);
    if (p) memcpy(p, s, n);
    return p;
}

kiln_status kiln__reserve(const kiln__alloc *alloc, void **items, int64_t *capacity, int64_t need, size_t elem) {
    if (need <= *capacity) return KILN_OK;
    int64_t cap = *capacity ? *capacity * 2 : 8;
    if (cap < need) cap = need;
    size_t old_bytes = (size_t)*capacity * elem, new_bytes;
    if (!kiln__mul_size((size_t)cap, elem, &new_bytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "array of %lld elements is too large", (long long)cap);
    void *p = kiln__realloc(alloc, *items, old_bytes, new_bytes);
    if (!p) return KILN_OUT_OF_MEMORY;
    memset((char *)p + old_bytes, 0, new_bytes - old_bytes);
    *items = p;
    *capacity = cap;
    return KILN_OK;
}

void kiln__buf_init(kiln__buf *buf, const kiln__alloc *alloc) {
    memset(buf, 0, sizeof *buf);
    buf->alloc = alloc;
}

void kiln__buf_free(kiln__buf *buf) {
    kiln__free(buf->alloc, buf->data);
    buf->data = NULL;
    buf->size = buf->capacity = 0;
}

static bool buf_grow(kiln__buf *buf, size_t extra) {
    if (buf->failed) return false;
    if (buf->size + extra < buf->size) {
        buf->failed = true;
        return false;
    }
    if (buf->size + extra <= buf->capacity) return true;
    size_t cap = buf->capacity ? buf->capacity * 2 : 256;
    while (cap < buf->size + extra) cap *= 2;
    uint8_t *p = kiln__malloc_aligned(buf->alloc, cap, 64);
    if (!p) {
        buf->failed = true;
        return false;
    }
    if (buf->size) memcpy(p, buf->data, buf->size);
    kiln__free(buf->alloc, buf->data);
    buf->data = p;
    buf->capacity = cap;
    return true;
}

void kiln__buf_append(kiln__buf *buf, const void *data, size_t size) {
    if (!size || !buf_grow(buf, size)) return;
    memcpy(buf->data + buf->size, data, size);
    buf->size += size;
}

void kiln__buf_printf(kiln__buf *buf, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        kiln__buf_append(buf, small, (size_t)n);
        return;
    }
    if (!buf_grow(buf, (size_t)n + 1)) return;
    va_start(ap, fmt);
    vsnprintf((char *)buf->data + buf->size, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->size += (size_t)n;
}

void kiln__buf_pad(kiln__buf *buf, size_t align) {
    static const uint8_t zeros[64];
    while (buf->size % align) {
        size_t n = align - buf->size % align;
        kiln__buf_append(buf, zeros, n < sizeof zeros ? n : sizeof zeros);
        if (buf->failed) return;
    }
}

kiln_status kiln__buf_status(const kiln__buf *buf) {
    if (buf->failed) return kiln__error(KILN_OUT_OF_MEMORY, "out of host memory while writing a buffer");
    return KILN_OK;
}

struct kiln_blob {
    kiln__alloc alloc;
    uint8_t *data;
    size_t size;
};

kiln_status kiln__blob_from_buf(kiln__buf *buf, kiln_blob **out) {
    *out = NULL;
    KILN__TRY(kiln__buf_status(buf));
    kiln_blob *blob = kiln__malloc(buf->alloc, sizeof *blob);
    if (!blob) return KILN_OUT_OF_MEMORY;
    blob->alloc = *buf->alloc;
    blob->data = buf->data;
    blob->size = buf->size;
    buf->data = NULL;
    buf->size = buf->capacity = 0;
    *out = blob;
    return KILN_OK;
}

const void *kiln_blob_data(const kiln_blob *blob) { return blob ? blob->data : NULL; }
size_t kiln_blob_size(const kiln_blob *blob) { return blob ? blob->size : 0; }

void kiln_blob_destroy(kiln_blob *blob) {
    if (!blob) return;
    kiln__alloc alloc = blob->alloc;
    kiln__free(&alloc, blob->data);
    kiln__free(&alloc, blob);
}
