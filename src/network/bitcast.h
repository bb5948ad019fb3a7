/* BitCast (ONNX BitCast-26): the input's bytes read as another dtype of the same bit width. */
#ifndef KILN_BITCAST_H
#define KILN_BITCAST_H

#include "ir.h"

typedef struct kiln__bitcast_params {
    int32_t to; /* kiln_dtype */
} kiln__bitcast_params;

_Static_assert(sizeof(kiln__bitcast_params) <= sizeof(kiln__params), "BitCast params must fit in kiln__params");

#endif
