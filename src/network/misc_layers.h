/* Parameters of the layers added for the ONNX "misc" family (import_misc.c, import_rnn.c):
 * random sampling, recurrent networks (RNN/GRU/LSTM), tree ensembles, n-gram counting
 * (TfIdfVectorizer) and numeric label encoding. Each lives in layer->p.bytes; infer
 * validates every field before a kernel reads it. Large tables (trees, n-gram pools, keys)
 * travel as constant input tensors, not params. */
#ifndef KILN_MISC_LAYERS_H
#define KILN_MISC_LAYERS_H

#include "layer_resolve.h"

/* ---------------------------------------------------------------- random */

typedef enum kiln__random_dist {
    KILN__RAND_UNIFORM = 0,    /* a + (b - a) * u */
    KILN__RAND_NORMAL = 1,     /* a + b * n (mean a, standard deviation b) */
    KILN__RAND_BERNOULLI = 2,  /* input 0 holds probabilities p: u < p ? 1 : 0 */
    KILN__RAND_MULTINOMIAL = 3 /* input 0 [batch, classes] unnormalized log-probabilities */
} kiln__random_dist;

/* Inputs: uniform/normal: 0 (optional) a tensor whose dims the output takes (the *Like ops);
 * without it the output has `dims`. Bernoulli, multinomial: 0 required, as above.
 * Output dtype: `dtype`, or 0 for the input's. Multinomial: [batch, sample_size] of int32/int64.
 *
 * The generator is counter based, so a value depends only on (seed, element index) and the
 * kernel can run in any order on any thread:
 *   bits(c) = splitmix64 finalizer of (seed + (c + 1) * 0x9E3779B97F4A7C15)
 *   u(c)    = (bits(c) >> 11) * 2^-53                         in [0, 1)
 * Element i of uniform/Bernoulli uses u(i); normal uses Box-Muller on u(2i), u(2i + 1):
 *   sqrt(-2 ln(1 - u(2i))) * cos(2 pi u(2i + 1)); multinomial sample s of row r uses
 * u(r * sample_size + s) by inverse CDF over softmax(row). */
typedef struct kiln__random_params {
    int32_t dist;  /* kiln__random_dist */
    int32_t dtype; /* kiln_dtype; 0: the input's */
    uint64_t seed;
    double a, b;
    kiln_dims dims;      /* uniform/normal without input 0 */
    int64_t sample_size; /* multinomial */
} kiln__random_params;

static inline uint64_t kiln__rand_bits(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double kiln__rand_u01(uint64_t seed, uint64_t counter) {
    return (double)(kiln__rand_bits(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---------------------------------------------------------------- RNN, GRU, LSTM */

typedef enum kiln__rnn_cell { KILN__RNN_SIMPLE = 0, KILN__RNN_GRU = 1, KILN__RNN_LSTM = 2 } kiln__rnn_cell;
typedef enum kiln__rnn_dir { KILN__RNN_FORWARD = 0, KILN__RNN_REVERSE = 1, KILN__RNN_BIDIRECTIONAL = 2 } kiln__rnn_dir;

/* An activation of a recurrent cell: a kiln_activation_type, or this for ONNX Affine
 * (alpha * x + beta), which has no activation layer kind. */
#define KILN__RNN_ACT_AFFINE 1000

/* Gates per cell: RNN 1, GRU 3 (z, r, h), LSTM 4 (i, o, f, c), as ONNX orders W, R and B. */
static inline int32_t kiln__rnn_gates(int32_t cell) {
    return cell == KILN__RNN_LSTM ? 4 : cell == KILN__RNN_GRU ? 3 : 1;
}
/* Activations per direction: RNN 1 (f), GRU 2 (f, g), LSTM 3 (f, g, h). */
static inline int32_t kiln__rnn_nb_acts(int32_t cell) {
    return cell == KILN__RNN_LSTM ? 3 : cell == KILN__RNN_GRU ? 2 : 1;
}

/* ONNX RNN/GRU/LSTM. Inputs: 0 X [seq, batch, in] ([batch, seq, in] with layout 1),
 * 1 W [dirs, gates*hidden, in], 2 R [dirs, gates*hidden, hidden], then optional
 * 3 B [dirs, 2*gates*hidden], 4 sequence_lens [batch] (int32/int64), 5 initial_h
 * [dirs, batch, hidden] ([batch, dirs, hidden]), 6 initial_c (LSTM, as initial_h), 7 P [dirs, 3*hidden] (LSTM peepholes
 * i, o, f). Outputs: 0 Y [seq, dirs, batch, hidden] ([batch, seq, dirs, hidden]), 1 Y_h [dirs, batch, hidden] ([batch,
 * dirs, hidden]), 2 Y_c (LSTM). Steps past a sequence's length give zeros in Y; Y_h/Y_c hold the state after its last
 * step. */
typedef struct kiln__rnn_params {
    int32_t cell;      /* kiln__rnn_cell */
    int32_t direction; /* kiln__rnn_dir */
    int64_t hidden_size;
    int32_t layout;
    int32_t linear_before_reset; /* GRU */
    int32_t input_forget;        /* LSTM: f = 1 - i */
    int32_t has_clip;
    float clip;        /* inputs of the gate activations f and g are clamped to [-clip, clip] */
    kiln__act acts[6]; /* per direction, kiln__rnn_nb_acts each: forward's then reverse's */
} kiln__rnn_params;

/* ---------------------------------------------------------------- TreeEnsemble */

typedef enum kiln__tree_mode {
    KILN__TREE_LEQ = 0,
    KILN__TREE_LT,
    KILN__TREE_GTE,
    KILN__TREE_GT,
    KILN__TREE_EQ,
    KILN__TREE_NEQ,
    KILN__TREE_MEMBER
} kiln__tree_mode;

typedef enum kiln__tree_aggregate {
    KILN__TREE_AVERAGE = 0,
    KILN__TREE_SUM,
    KILN__TREE_MIN,
    KILN__TREE_MAX
} kiln__tree_aggregate;

typedef enum kiln__tree_post {
    KILN__TREE_POST_NONE = 0,
    KILN__TREE_POST_SOFTMAX,
    KILN__TREE_POST_LOGISTIC,
    KILN__TREE_POST_SOFTMAX_ZERO,
    KILN__TREE_POST_PROBIT
} kiln__tree_post;

/* Columns of the int64 node table (input 1), one row per interior node. */
enum {
    KILN__TREE_COL_FEATURE = 0,
    KILN__TREE_COL_MODE,
    KILN__TREE_COL_TRUE_ID, /* a node row, or a leaf index when TRUE_LEAF */
    KILN__TREE_COL_TRUE_LEAF,
    KILN__TREE_COL_FALSE_ID,
    KILN__TREE_COL_FALSE_LEAF,
    KILN__TREE_COL_MISSING_TRUE, /* NaN features take the true branch */
    KILN__TREE_COL_SET_BEGIN,    /* MEMBER: range of the node's set in input 6 */
    KILN__TREE_COL_SET_END,
    KILN__TREE_COLS
};

/* ONNX-ML TreeEnsemble (opset 5). Inputs: 0 X [N, F] (float types), 1 nodes int64
 * [nodes, KILN__TREE_COLS], 2 splits float64 [nodes], 3 roots int64 [trees] (a negative
 * root -1 - l is a tree that is the single leaf l), 4 leaf target ids int64 [leaves],
 * 5 leaf weights float64 [leaves], 6 set members float64 (optional). Output [N, n_targets]
 * in X's dtype. */
typedef struct kiln__tree_params {
    int64_t n_targets;
    int32_t aggregate; /* kiln__tree_aggregate */
    int32_t post;      /* kiln__tree_post */
} kiln__tree_params;

/* ---------------------------------------------------------------- TfIdfVectorizer */

typedef enum kiln__tfidf_mode { KILN__TFIDF_TF = 0, KILN__TFIDF_IDF, KILN__TFIDF_TFIDF } kiln__tfidf_mode;

/* Inputs: 0 X int32/int64 [C] or [N, C], 1 grams int64 [G, 2 + max_gram] (each row: length
 * n, output index, then the n tokens, zero padded), sorted by (n, tokens) with no
 * duplicates, 2 weights float32 [output_size] (optional). Output float32 [output_size] or
 * [N, output_size]. n-grams of length n >= 2 are counted for every skip 0..max_skip
 * (tokens `skip + 1` apart); unigrams once. */
typedef struct kiln__tfidf_params {
    int32_t mode; /* kiln__tfidf_mode */
    int32_t min_gram, max_gram;
    int32_t max_skip;
    int64_t output_size;
} kiln__tfidf_params;

/* ---------------------------------------------------------------- LabelEncoder */

/* ONNX-ML LabelEncoder over numbers. Inputs: 0 X, 1 keys (X's dtype, 1-D, sorted ascending
 * with NaN last, no duplicates), 2 values (1-D, keys' length), 3 default (one element,
 * values' dtype). Output: X's dims, values' dtype. No params. */

_Static_assert(sizeof(kiln__random_params) <= sizeof(kiln__params), "random params fit");
_Static_assert(sizeof(kiln__rnn_params) <= sizeof(kiln__params), "rnn params fit");
_Static_assert(sizeof(kiln__tree_params) <= sizeof(kiln__params), "tree params fit");
_Static_assert(sizeof(kiln__tfidf_params) <= sizeof(kiln__params), "tfidf params fit");

#endif
