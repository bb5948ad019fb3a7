/* Maps each layer type to its CPU kernel. Kernels live one family per file in this folder. */
#include "cpu.h"

#define KILN__CPU_FAMILIES(X)                                                                                  \
    X(CONSTANT, constant)                                                                                      \
    X(CONVOLUTION, conv)                                                                                       \
    X(DECONVOLUTION, deconv)                                                                                   \
    X(POOLING, pooling)                                                                                        \
    X(MATMUL, matmul)                                                                                          \
    X(ACTIVATION, activation)                                                                                  \
    X(ELEMENTWISE, elementwise)                                                                                \
    X(UNARY, unary)                                                                                            \
    X(SCALE, scale)                                                                                            \
    X(SOFTMAX, softmax)                                                                                        \
    X(NORMALIZATION, normalization)                                                                            \
    X(SHUFFLE, shuffle)                                                                                        \
    X(CONCAT, concat)                                                                                          \
    X(SLICE, slice)                                                                                            \
    X(GATHER, gather)                                                                                          \
    X(REDUCE, reduce)                                                                                          \
    X(RESIZE, resize)                                                                                          \
    X(CAST, cast)                                                                                              \
    X(SHAPE, shape)                                                                                            \
    X(IDENTITY, identity)                                                                                      \
    X(SELECT, select)                                                                                          \
    X(TOPK, topk)                                                                                              \
    X(FILL, fill)                                                                                              \
    X(PADDING, padding)                                                                                        \
    X(SCATTER, scatter)                                                                                        \
    X(EINSUM, einsum)                                                                                          \
    X(EXPAND, expand)                                                                                          \
    X(TILE, tile)                                                                                              \
    X(CUMSUM, cumsum)                                                                                          \
    X(ONE_HOT, onehot)                                                                                         \
    X(NONZERO, nonzero)                                                                                        \
    X(TRILU, trilu)                                                                                            \
    X(QUANTIZE, quantize)                                                                                      \
    X(DEQUANTIZE, dequantize)                                                                                  \
    X(GRID_SAMPLE, gridsample)                                                                                 \
    X(LRN, lrn)                                                                                                \
    X(AFFINE_GRID, affinegrid)                                                                                 \
    X(DFT, dft)                                                                                                \
    X(NMS, nms)                                                                                                \
    X(UNIQUE, unique)                                                                                          \
    X(COL2IM, col2im)                                                                                          \
    X(ROI_ALIGN, roialign)                                                                                     \
    X(DET, det)                                                                                                \
    X(LINEAR_ATTENTION, linear_attention)                                                                      \
    X(BITCAST, bitcast)                                                                                        \
    X(RANDOM, random)                                                                                          \
    X(RNN, rnn)                                                                                                \
    X(TREE_ENSEMBLE, tree_ensemble)                                                                            \
    X(TFIDF, tfidf)                                                                                            \
    X(LABEL_ENCODER, label_encoder)

#define KILN__DECLARE(E, fam)                                                                                  \
    kiln_status kiln__cpu_##fam(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);
KILN__CPU_FAMILIES(KILN__DECLARE)

kiln__cpu_kernel_fn kiln__cpu_kernel_for(kiln_layer_type type) {
    switch (type) {
#define KILN__CASE(E, fam)                                                                                     \
    case KILN_LAYER_##E: return kiln__cpu_##fam;
        KILN__CPU_FAMILIES(KILN__CASE)
    case KILN_LAYER_TYPE_COUNT: break;
    }
    return NULL;
}
