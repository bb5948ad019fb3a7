/* Shuffle: a reshape is a copy; transposes merge dims that stay adjacent, then either copy
 * contiguous rows or move 32x32 tiles so that reads and writes both stay in cache (4-byte
 * elements as 8x8 blocks in AVX2 registers where the CPU has them). */
#include "gemm.h"
#include "vmath.h"
#include "../network/layer_resolve.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SHUFFLE_X86 1
#include <immintrin.h>
#endif

#define TILE 32

/* A transpose after dropping size-1 dims and merging dims that stay adjacent: output dim k has
 * size[k] elements at input stride istride[k]; the output is contiguous. */
typedef struct transpose_plan {
    int32_t n;
    int64_t size[KILN_MAX_DIMS], istride[KILN_MAX_DIMS], ostride[KILN_MAX_DIMS];
    size_t es;
    const char *src;
    char *dst;
    int32_t j; /* tiled case: the output dim with the smallest input stride */
    int64_t tiles_j, tiles_last;
    bool vec8; /* tiled case through transpose8x8: 4-byte elements, dim j contiguous, AVX2 */
} transpose_plan;

static void plan_transpose(const kiln_dims *in, const int32_t *perm, transpose_plan *t) {
    int64_t istr[KILN_MAX_DIMS];
    int64_t s = 1;
    for (int32_t i = in->nb_dims - 1; i >= 0; i--) {
        istr[i] = s;
        s *= in->d[i];
    }
    t->n = 0;
    for (int32_t k = 0; k < in->nb_dims; k++) {
        int64_t size = in->d[perm[k]], stride = istr[perm[k]];
        if (size == 1) continue;
        if (t->n > 0 && t->istride[t->n - 1] == stride * size) {
            t->size[t->n - 1] *= size;
            t->istride[t->n - 1] = stride;
            continue;
        }
        t->size[t->n] = size;
        t->istride[t->n] = stride;
        t->n++;
    }
    int64_t o = 1;
    for (int32_t k = t->n - 1; k >= 0; k--) {
        t->ostride[k] = o;
        o *= t->size[k];
    }
}

/* Input offset (elements) of the output row `row` (all dims but the last). */
static int64_t row_offset(const transpose_plan *t, int64_t row) {
    int64_t off = 0;
    for (int32_t k = t->n - 2; k >= 0; k--) {
        off += (row % t->size[k]) * t->istride[k];
        row /= t->size[k];
    }
    return off;
}

static void copy_rows(void *arg, int64_t begin, int64_t end) {
    const transpose_plan *t = arg;
    size_t row_bytes = (size_t)t->size[t->n - 1] * t->es;
    for (int64_t r = begin; r < end; r++)
        memcpy(t->dst + (size_t)r * row_bytes, t->src + (size_t)row_offset(t, r) * t->es, row_bytes);
}

#define TILE_LOOP(T)                                                                                           \
    for (int64_t a = a0; a < a1; a++)                                                                          \
        for (int64_t b = b0; b < b1; b++)                                                                      \
            ((T *)t->dst)[obase + a * ostr_j + b] = ((const T *)t->src)[ibase + a * istr_j + b * istr_last];

/* Rows [a0, a1) of output dim j by columns [b0, b1) of the last output dim, one element at a time. */
static void tile_scalar(const transpose_plan *t, int64_t ibase, int64_t obase, int64_t a0, int64_t a1, int64_t b0,
                        int64_t b1) {
    int64_t istr_j = t->istride[t->j], ostr_j = t->ostride[t->j], istr_last = t->istride[t->n - 1];
    switch (t->es) {
    case 1: TILE_LOOP(uint8_t) break;
    case 2: TILE_LOOP(uint16_t) break;
    case 4: TILE_LOOP(uint32_t) break;
    case 8: TILE_LOOP(uint64_t) break;
    default:
        for (int64_t a = a0; a < a1; a++)
            for (int64_t b = b0; b < b1; b++)
                memcpy(t->dst + (size_t)(obase + a * ostr_j + b) * t->es,
                       t->src + (size_t)(ibase + a * istr_j + b * istr_last) * t->es, t->es);
    }
}

#ifdef SHUFFLE_X86
/* d[a * ld + b] = s[b * ls + a] for an 8x8 block of 4-byte elements, in registers. */
__attribute__((target("avx2"))) static void transpose8x8(const float *s, int64_t ls, float *d, int64_t ld) {
    __m256 r[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(s + k * ls);
    kiln__vm_transpose8(r);
    for (int k = 0; k < 8; k++) _mm256_storeu_ps(d + k * ld, r[k]);
}
#endif

static void copy_tiles(void *arg, int64_t begin, int64_t end) {
    const transpose_plan *t = arg;
    int32_t last = t->n - 1;
    for (int64_t item = begin; item < end; item++) {
        int64_t rest = item;
        int64_t tb = rest % t->tiles_last;
        rest /= t->tiles_last;
        int64_t ta = rest % t->tiles_j;
        rest /= t->tiles_j;
        int64_t ibase = 0, obase = 0;
        for (int32_t k = last - 1; k >= 0; k--) {
            if (k == t->j) continue;
            int64_t c = rest % t->size[k];
            rest /= t->size[k];
            ibase += c * t->istride[k];
            obase += c * t->ostride[k];
        }
        int64_t a0 = ta * TILE, a1 = KILN__MIN(a0 + TILE, t->size[t->j]);
        int64_t b0 = tb * TILE, b1 = KILN__MIN(b0 + TILE, t->size[last]);
#ifdef SHUFFLE_X86
        /* 4-byte elements contiguous along j: 8x8 blocks in registers, the ragged edges below. */
        if (t->vec8) {
            int64_t a8 = a0 + (a1 - a0) / 8 * 8, b8 = b0 + (b1 - b0) / 8 * 8;
            int64_t istr_last = t->istride[last], ostr_j = t->ostride[t->j];
            for (int64_t a = a0; a < a8; a += 8)
                for (int64_t b = b0; b < b8; b += 8)
                    transpose8x8((const float *)t->src + ibase + b * istr_last + a, istr_last,
                                 (float *)t->dst + obase + a * ostr_j + b, ostr_j);
            tile_scalar(t, ibase, obase, a0, a8, b8, b1);
            tile_scalar(t, ibase, obase, a8, a1, b0, b1);
            continue;
        }
#endif
        tile_scalar(t, ibase, obase, a0, a1, b0, b1);
    }
}

/* A plain copy of many bytes, in pieces the threads share (the copy reads what the threads
 * before it wrote into their own caches, so one core alone runs slower than both together). */
typedef struct copy_job {
    const char *src;
    char *dst;
    size_t bytes;
} copy_job;

#define COPY_PIECE ((size_t)64 << 10)

static void copy_range(void *arg, int64_t begin, int64_t end) {
    const copy_job *c = arg;
    size_t b0 = (size_t)begin * COPY_PIECE, b1 = KILN__MIN((size_t)end * COPY_PIECE, c->bytes);
    memcpy(c->dst + b0, c->src + b0, b1 - b0);
}

static void copy_bytes(kiln__pool *pool, void *dst, const void *src, size_t bytes) {
    copy_job c = {src, dst, bytes};
    kiln__parallel_for(pool, (int64_t)((bytes + COPY_PIECE - 1) / COPY_PIECE), 1, copy_range, &c);
}

/* dst = transpose(src) where src has dims `in` and output dim k is input dim perm[k]. */
static void transpose(kiln__pool *pool, const void *src, const kiln_dims *in, const int32_t *perm, size_t es,
                      void *dst) {
    int64_t volume = kiln__dims_volume(in);
    if (volume <= 0) return;
    transpose_plan t;
    plan_transpose(in, perm, &t);
    t.es = es;
    t.src = src;
    t.dst = dst;
    if (t.n <= 1) { /* the permutation keeps the memory order */
        copy_bytes(pool, dst, src, (size_t)volume * es);
        return;
    }
    int32_t last = t.n - 1;
    if (t.istride[last] == 1) {
        int64_t rows = volume / t.size[last];
        kiln__parallel_for(pool, rows, KILN__MAX(1, 16384 / t.size[last]), copy_rows, &t);
        return;
    }
    t.j = 0;
    for (int32_t k = 1; k < last; k++)
        if (t.istride[k] < t.istride[t.j]) t.j = k;
    t.vec8 = es == 4 && t.istride[t.j] == 1 && kiln__cpu_simd() != KILN__SIMD_NONE;
    t.tiles_j = (t.size[t.j] + TILE - 1) / TILE;
    t.tiles_last = (t.size[last] + TILE - 1) / TILE;
    int64_t items = volume / (t.size[t.j] * t.size[last]) * t.tiles_j * t.tiles_last;
    kiln__parallel_for(pool, items, 16, copy_tiles, &t);
}

static bool is_identity(const int32_t *perm, int32_t rank) {
    for (int32_t i = 0; i < rank; i++)
        if (perm[i] != i) return false;
    return true;
}

kiln_status kiln__cpu_shuffle(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                              kiln__cpu_ctx *ctx) {
    const kiln__shuffle_params *p = &layer->p.shuffle;
    const kiln__value *x = &inputs[0];
    kiln__value *y = &outputs[0];
    size_t es = kiln__elem_bytes(x->dtype);
    int64_t volume = kiln__dims_volume(&x->dims);
    if (!es || volume < 0 || kiln__dims_volume(&y->dims) != volume)
        return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "input and output do not match");
    bool first = p->has_first_perm && !is_identity(p->first_perm, x->dims.nb_dims);
    bool second = p->has_second_perm && !is_identity(p->second_perm, y->dims.nb_dims);
    if (!first && !second) {
        if (y->data != x->data && volume) copy_bytes(ctx->pool, y->data, x->data, (size_t)volume * es);
        return KILN_OK;
    }
    const void *src = x->data;
    void *scratch = NULL;
    if (first) {
        if (second) {
            scratch = kiln__malloc(ctx->alloc, (size_t)volume * es);
            if (!scratch) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for the transpose");
        }
        transpose(ctx->pool, x->data, &x->dims, p->first_perm, es, second ? scratch : y->data);
        src = scratch;
    }
    if (second) {
        /* The reshaped dims are the output dims taken back through the second permutation. */
        kiln_dims mid = {.nb_dims = y->dims.nb_dims};
        for (int32_t i = 0; i < mid.nb_dims; i++) mid.d[p->second_perm[i]] = y->dims.d[i];
        transpose(ctx->pool, src, &mid, p->second_perm, es, y->data);
    }
    kiln__free(ctx->alloc, scratch);
    return KILN_OK;
}
