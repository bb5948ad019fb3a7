/* Maps each layer type to its family's ops. Families live one per file in this folder. */
#include "ir.h"

/* X(enum suffix, family) for every layer type, in kiln_layer_type order. */
#define KILN__LAYER_FAMILIES(X)                                                                                \
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

#define KILN__DECLARE(E, fam) extern const kiln__layer_ops kiln__##fam##_ops;
KILN__LAYER_FAMILIES(KILN__DECLARE)

const kiln__layer_ops *kiln__layer_ops_for(kiln_layer_type type) {
    switch (type) {
#define KILN__CASE(E, fam)                                                                                     \
    case KILN_LAYER_##E: return &kiln__##fam##_ops;
        KILN__LAYER_FAMILIES(KILN__CASE)
    case KILN_LAYER_TYPE_COUNT: break;
    }
    return NULL;
}

const char *kiln_layer_type_name(kiln_layer_type type) {
    const kiln__layer_ops *ops = kiln__layer_ops_for(type);
    return ops ? ops->name : "Unknown";
}
