/* Graph passes run by the builder on the engine's copy of the network. */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include "../network/ir.h"

/* Fuses conv+batchnorm(+residual add)(+activation) and matmul+activation; *fused counts the
 * layers absorbed. */
kiln_status kiln__pass_fuse(kiln_network *net, int32_t *fused);

#endif
