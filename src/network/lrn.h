/* Local response normalization (ONNX LRN): each element divided by a power of the sum of
 * squares over a window of neighbouring channels. Input [N, C, spatial...]. */
#ifndef KILN_LRN_H
#define KILN_LRN_H

#include "ir.h"

/* y = x / (bias + alpha / size * sum of x^2 over channels c - (size-1)/2 .. c + ceil((size-1)/2))^beta */
typedef struct kiln__lrn_params {
    int32_t size;
    float alpha, beta, bias;
} kiln__lrn_params;

_Static_assert(sizeof(kiln__lrn_params) <= sizeof(kiln__params), "LRN params must fit in kiln__params");

#endif
