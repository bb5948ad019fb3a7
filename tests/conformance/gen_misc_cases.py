"""Extra ONNX cases for the misc family (import_misc.c, import_ml.c, import_rnn.c) that the
    upstream node tests do not cover: numeric LabelEncoder, RNN/GRU/LSTM with non-default
    directions and activations (expected values from onnxruntime), TreeEnsemble averaging,
    TfIdf IDF/TFIDF with weights, and RandomUniform/RandomNormalLike against the generator
    documented in src/network/misc_layers.h. Writes node/<case>/ folders under the current
    directory; run them with
      python3 gen_misc_cases.py && onnx_conformance_runner . results.tsv --write-results
"""
import numpy as np, onnx, os
from onnx import helper as h, TensorProto as T, numpy_helper as nh
from onnx.reference import ReferenceEvaluator

def save(name, node, inputs, outputs, feeds, opsets, expected=None):
    g = h.make_graph([node], name, inputs, outputs)
    m = h.make_model(g, opset_imports=[h.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = 10
    d = f"node/{name}"; os.makedirs(d + "/test_data_set_0", exist_ok=True)
    onnx.save(m, d + "/model.onnx")
    if expected == "ort":
        import onnxruntime as ort
        expected = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    elif expected is None:
        expected = ReferenceEvaluator(m).run(None, feeds)
    for i, (k, v) in enumerate(feeds.items()):
        open(f"{d}/test_data_set_0/input_{i}.pb", "wb").write(nh.from_array(v, k).SerializeToString())
    for i, (o, v) in enumerate(zip(outputs, expected)):
        open(f"{d}/test_data_set_0/output_{i}.pb", "wb").write(nh.from_array(np.asarray(v), o.name).SerializeToString())

rng = np.random.default_rng(0)
# LabelEncoder numeric: int64 -> float, float -> int64 (tensor attrs)
x = rng.integers(-5, 5, size=(4, 6)).astype(np.int64)
save("test_m1_label_int_float", h.make_node("LabelEncoder", ["X"], ["Y"], domain="ai.onnx.ml", keys_int64s=[3, -2, 0, 4], values_floats=[0.5, 1.5, -2.0, 7.0], default_float=9.0),
     [h.make_tensor_value_info("X", T.INT64, x.shape)], [h.make_tensor_value_info("Y", T.FLOAT, x.shape)], {"X": x}, [("ai.onnx.ml", 4), ("", 21)])
xf = np.array([0.5, 1.0, np.nan, 2.0, -1.0], np.float32)
save("test_m1_label_tensor", h.make_node("LabelEncoder", ["X"], ["Y"], domain="ai.onnx.ml", keys_tensor=nh.from_array(np.array([1.0, np.nan, 2.0], np.float32)), values_tensor=nh.from_array(np.array([10, 20, 30], np.int32)), default_tensor=nh.from_array(np.array([-9], np.int32))),
     [h.make_tensor_value_info("X", T.FLOAT, xf.shape)], [h.make_tensor_value_info("Y", T.INT32, xf.shape)], {"X": xf}, [("ai.onnx.ml", 4), ("", 21)],
     expected=[np.array([-9, 10, 20, 30, -9], np.int32)])
# RNN family with non-default settings
def rnn_case(name, op, g, **attrs):
    seq, b, i, hs = 5, 3, 4, 3
    d = 2 if attrs.get("direction") == "bidirectional" else 1
    X = rng.standard_normal((seq, b, i)).astype(np.float32)
    W = (rng.standard_normal((d, g*hs, i)) * 0.5).astype(np.float32)
    R = (rng.standard_normal((d, g*hs, hs)) * 0.5).astype(np.float32)
    B = (rng.standard_normal((d, 2*g*hs)) * 0.3).astype(np.float32)
    node = h.make_node(op, ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hs, **attrs)
    feeds = {"X": X, "W": W, "R": R, "B": B}
    ins = [h.make_tensor_value_info(k, T.FLOAT, v.shape) for k, v in feeds.items()]
    outs = [h.make_tensor_value_info("Y", T.FLOAT, None), h.make_tensor_value_info("Y_h", T.FLOAT, None)]
    save(name, node, ins, outs, feeds, [("", 22)], expected="ort")
rnn_case("test_m1_gru_lbr_bidir", "GRU", 3, direction="bidirectional", linear_before_reset=1)
rnn_case("test_m1_rnn_relu_reverse", "RNN", 1, direction="reverse", activations=["Relu"])
rnn_case("test_m1_lstm_bidir", "LSTM", 4, direction="bidirectional")
rnn_case("test_m1_rnn_leaky_bidir", "RNN", 1, direction="bidirectional", activations=["LeakyRelu", "HardSigmoid"], activation_alpha=[0.2, 0.3], activation_beta=[0.4])
# TreeEnsemble: average aggregation over 2 trees with a double input
X = rng.standard_normal((7, 2)).astype(np.float64)
node = h.make_node("TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", aggregate_function=0, n_targets=2,
    nodes_featureids=[0, 1, 1], nodes_modes=nh.from_array(np.array([0, 3, 1], np.uint8)), nodes_splits=nh.from_array(np.array([0.1, -0.2, 0.5])),
    nodes_truenodeids=[1, 0, 2], nodes_trueleafs=[0, 1, 1], nodes_falsenodeids=[0, 1, 3], nodes_falseleafs=[1, 1, 1],
    leaf_targetids=[0, 1, 0, 1], leaf_weights=nh.from_array(np.array([1.0, 2.0, 3.0, 4.0])), tree_roots=[0, 2])
save("test_m1_tree_average", node, [h.make_tensor_value_info("X", T.DOUBLE, X.shape)], [h.make_tensor_value_info("Y", T.DOUBLE, None)], {"X": X}, [("ai.onnx.ml", 5), ("", 21)])
# TfIdf IDF/TFIDF with weights and int64 input
X = rng.integers(0, 6, size=(2, 10)).astype(np.int64)
for mode in ["IDF", "TFIDF"]:
    node = h.make_node("TfIdfVectorizer", ["X"], ["Y"], mode=mode, min_gram_length=1, max_gram_length=3, max_skip_count=2,
        ngram_counts=[0, 3, 7], ngram_indexes=[4, 2, 0, 1, 3, 5, 6, 7], pool_int64s=[1, 2, 3, 1, 2, 4, 5, 2, 3, 3, 4, 1, 2], weights=[0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4])
    save(f"test_m1_tfidf_{mode.lower()}", node, [h.make_tensor_value_info("X", T.INT64, X.shape)], [h.make_tensor_value_info("Y", T.FLOAT, None)], {"X": X}, [("", 9)])
# Random: expected values from the documented generator
def u01(seed, c):
    M = (1 << 64) - 1
    z = (seed + (c + 1) * 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    z ^= z >> 31
    return (z >> 11) / 2.0**53
exp = np.array([-1 + 3 * u01(5, i) for i in range(12)], np.float32).reshape(3, 4)
node = h.make_node("RandomUniform", [], ["Y"], shape=[3, 4], low=-1.0, high=2.0, seed=5.0)
save("test_m1_random_uniform", node, [], [h.make_tensor_value_info("Y", T.FLOAT, [3, 4])], {}, [("", 22)], expected=[exp])
xin = np.zeros((2, 3), np.float64)
expn = np.array([0.5 + 2 * np.sqrt(-2 * np.log(1 - u01(7, 2*i))) * np.cos(2 * np.pi * u01(7, 2*i+1)) for i in range(6)]).reshape(2, 3)
node = h.make_node("RandomNormalLike", ["X"], ["Y"], mean=0.5, scale=2.0, seed=7.0)
save("test_m1_random_normal_like", node, [h.make_tensor_value_info("X", T.DOUBLE, [2, 3])], [h.make_tensor_value_info("Y", T.DOUBLE, [2, 3])], {"X": xin}, [("", 22)], expected=[expn])
