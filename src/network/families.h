/* Every layer type with its family name, in kiln_layer_type order: X(ENUM_SUFFIX, family).
 * The network side defines kiln__<family>_ops, the CPU backend kiln__cpu_<family>. */
#ifndef KILN_FAMILIES_H
#define KILN_FAMILIES_H

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

#endif
