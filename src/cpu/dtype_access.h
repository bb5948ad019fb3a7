/* Conversions between doubles and the narrow float formats, shared by the cast kernel and
 * kiln__load_f64/kiln__store_f64 (declared in cpu.h). */
#ifndef KILN_CPU_DTYPE_ACCESS_H
#define KILN_CPU_DTYPE_ACCESS_H

#include "cpu.h"

#include <math.h>

/* kiln__store_f64 with a choice of saturation for the fp8 kinds (ONNX Cast `saturate`):
 * with saturate 0, values that overflow become NaN (E5M2: infinity) as ONNX's table says.
 * Other dtypes ignore the flag. */
void kiln__store_f64_sat(void *data, kiln_dtype dtype, int64_t i, double v, int saturate);

/* Float to integer as kiln's casts define it: truncation toward zero, then (by the caller's
 * store) the low bits of the two's complement value. NaN and values beyond the 64-bit range
 * give INT64_MIN, as x86 does; [2^63, 2^64) keeps its uint64 bits. */
static inline int64_t kiln__f64_to_i64_wrap(double v) {
    double t = trunc(v);
    if (t >= -9223372036854775808.0 && t < 9223372036854775808.0) return (int64_t)t;
    if (t >= 9223372036854775808.0 && t < 18446744073709551616.0) return (int64_t)(uint64_t)t;
    return INT64_MIN;
}

#endif
