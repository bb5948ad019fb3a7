/* The on-disk layout of plan files (docs/plan-format.md): offsets, record sizes, constants and
 * little-endian field access. Shared by the plan writer, the reader and the tests. */
#ifndef KILN_PLAN_FORMAT_H
#define KILN_PLAN_FORMAT_H

#include "../network/ir.h"

#include <string.h>

/* Layer params are stored as the bytes of kiln__params, which are in host order. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kiln plan files are little-endian; big-endian hosts are not supported"
#endif

#define KILN__PLAN_MAGIC "KILNPLAN"
#define KILN__PLAN_FORMAT_VERSION 1u

enum {
    KILN__SEC_STRINGS = 0,
    KILN__SEC_TENSORS,
    KILN__SEC_LAYERS,
    KILN__SEC_IO,
    KILN__SEC_PROFILES,
    KILN__SEC_WEIGHTS,
    KILN__SEC_COUNT
};

/* Header field offsets. */
#define KILN__H_MAGIC 0           /* char[8] */
#define KILN__H_FORMAT 8          /* u32 */
#define KILN__H_LIBRARY 12        /* u32, KILN_VERSION */
#define KILN__H_HEADER_SIZE 16    /* u32 */
#define KILN__H_DEVICE 20         /* u32, kiln_device_type */
#define KILN__H_GPU_ARCH 24       /* char[KILN__GPU_ARCH_LEN], NUL-padded */
#define KILN__H_FLAGS 40          /* u32 */
#define KILN__H_PARAMS_SIZE 44    /* u32, sizeof(kiln__params) */
#define KILN__H_WORKSPACE 48      /* u64 */
#define KILN__H_TOTAL_SIZE 56     /* u64 */
#define KILN__H_BODY_CRC 64       /* u32, CRC-32 of bytes [header_size, total_size) */
#define KILN__H_HEADER_CRC 68     /* u32, CRC-32 of the header with this field zero */
#define KILN__H_NB_SECTIONS 72    /* u32, KILN__SEC_COUNT */
#define KILN__H_RESERVED 76       /* u32, zero */
#define KILN__H_SECTIONS 80       /* {u64 offset, u64 size} per section */
#define KILN__PLAN_HEADER_SIZE (KILN__H_SECTIONS + 16 * KILN__SEC_COUNT)

/* Sections start 8-aligned; weights (the section and each constant's values) 64-aligned. */
#define KILN__PLAN_SECTION_ALIGN 8u
#define KILN__PLAN_WEIGHTS_ALIGN 64u

/* A string reference meaning "none" (unnamed dims). */
#define KILN__PLAN_NO_STRING 0xFFFFFFFFu

/* Tensors section: u32 count, u32 zero, then records:
 * u32 name, i32 dtype, i32 rank, u32 zero, i64 dims[8], u32 dim_names[8]. */
#define KILN__T_NAME 0
#define KILN__T_DTYPE 4
#define KILN__T_RANK 8
#define KILN__T_RESERVED 12
#define KILN__T_DIMS 16
#define KILN__T_DIM_NAMES (KILN__T_DIMS + 8 * KILN_MAX_DIMS)
#define KILN__TENSOR_RECORD (KILN__T_DIM_NAMES + 4 * KILN_MAX_DIMS)

/* Layers section: u32 count, u32 zero, then records of a fixed part, the params bytes, the
 * input and output tensor indices (i32) and zero padding to 8 bytes. */
#define KILN__L_TYPE 0            /* i32 */
#define KILN__L_NAME 4            /* u32 */
#define KILN__L_NB_INPUTS 8       /* i32 */
#define KILN__L_NB_OUTPUTS 12     /* i32 */
#define KILN__L_TACTIC 16         /* i32 */
#define KILN__L_RESERVED 20       /* u32, zero */
#define KILN__L_WEIGHTS_OFFSET 24 /* u64, inside the weights section */
#define KILN__L_WEIGHTS_SIZE 32   /* u64 */
#define KILN__L_PARAMS 40
#define KILN__LAYER_FIXED (KILN__L_PARAMS + sizeof(kiln__params))

/* IO section: u32 nb_inputs, u32 nb_outputs, then i32 tensor indices (inputs, then outputs). */

/* Profiles section: u32 count, u32 zero; per profile u32 nb_entries, u32 zero, then entries:
 * u32 input name, u32 zero, then min, opt, max each as {i32 rank, u32 zero, i64 d[8]}. */
#define KILN__PD_DIMS 8
#define KILN__PD_DIMS_RECORD (8 + 8 * KILN_MAX_DIMS)
#define KILN__PROFILE_ENTRY (KILN__PD_DIMS + 3 * KILN__PD_DIMS_RECORD)

static inline uint32_t kiln__rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t kiln__rd_u64(const uint8_t *p) { return kiln__rd_u32(p) | (uint64_t)kiln__rd_u32(p + 4) << 32; }
static inline int32_t kiln__rd_i32(const uint8_t *p) { return (int32_t)kiln__rd_u32(p); }
static inline int64_t kiln__rd_i64(const uint8_t *p) { return (int64_t)kiln__rd_u64(p); }

static inline void kiln__wr_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void kiln__wr_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes both checksums of a complete plan in place (writer, and tests that mutate). */
static inline void kiln__plan_seal(uint8_t *plan, size_t size) {
    kiln__wr_u32(plan + KILN__H_BODY_CRC,
                 kiln__crc32(plan + KILN__PLAN_HEADER_SIZE, size - KILN__PLAN_HEADER_SIZE, 0));
    kiln__wr_u32(plan + KILN__H_HEADER_CRC, 0);
    kiln__wr_u32(plan + KILN__H_HEADER_CRC, kiln__crc32(plan, KILN__PLAN_HEADER_SIZE, 0));
}

#endif
