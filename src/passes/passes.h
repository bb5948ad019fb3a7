/* Graph passes run by the builder on the engine's copy of the network. */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include "../network/ir.h"
#include "shapes.h"

/* Fuses conv+batchnorm(+residual add)(+activation) and matmul+activation; *fused counts the
 * layers absorbed. pts (or NULL): the shapes the engine accepts, for dims unknown at build time. */
kiln_status kiln__pass_fuse(kiln_network *net, const kiln__shape_points *pts, int32_t *fused);

/* Replaces layers whose inputs are all constants by constant layers computed with the CPU
 * kernels (outputs bounded in size); *folded counts the layers replaced. */
kiln_status kiln__pass_fold_constants(kiln_network *net, int32_t *folded);
/* Turns exported GELU (erf and tanh forms), SiLU and HardSwish arithmetic into one activation
 * layer each; *fused counts the activations made. */
kiln_status kiln__pass_fuse_activations(kiln_network *net, int32_t *fused);
/* Moves a Mul/Div by a scalar constant after a matmul, or on an input only the matmul reads, into
 * its alpha, and the Add of a constant bias along the last dim into its c input (beta 1); *fused
 * counts the layers absorbed. pts as for kiln__pass_fuse. */
kiln_status kiln__pass_fuse_matmul_bias(kiln_network *net, const kiln__shape_points *pts, int32_t *fused);
/* Moves the Add of a tensor with rows as wide as a matmul's result (attention's mask, a residual
 * block) into the matmul's c input (beta 1) when the matmul has none; *fused counts the Adds.
 * pts as for kiln__pass_fuse. */
kiln_status kiln__pass_fuse_matmul_add(kiln_network *net, const kiln__shape_points *pts, int32_t *fused);
/* Merges a reshape-only shuffle into the transpose-only shuffle that reads it, or a
 * transpose-only shuffle into the reshape-only one that reads it, when the tensor between them
 * has no other reader; *fused counts the layers absorbed. */
kiln_status kiln__pass_fuse_shuffles(kiln_network *net, int32_t *fused);
/* Runs the five passes above in the order that lets kiln__pass_fuse then put the activation
 * into the matmul's epilogue: folding first (patterns then see constants), then activations,
 * then biases, then other adds; shuffles last. *changed counts the rewrites. */
kiln_status kiln__pass_simplify(kiln_network *net, const kiln__shape_points *pts, int32_t *changed);

#endif
