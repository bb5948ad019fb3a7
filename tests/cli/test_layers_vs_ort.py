"""bench/layers_vs_ort.py: onnxruntime's per-node times are charged to the kiln layers they belong to.

A small residual CNN (conv + relu, conv + add + relu, max pooling): kiln fuses each convolution
with what follows it, and onnxruntime renames fused and NCHWc nodes after their outputs, so every
group must still get time from both runtimes and nothing of onnxruntime's may stay unplaced.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "bench", "layers_vs_ort.py")
KILN = os.environ.get("KILN_BIN")
if not KILN:
    raise RuntimeError("set KILN_BIN to the built kiln binary")


def residual_cnn(path, named):
    rng = np.random.default_rng()

    def weights(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)

    inits = [weights("w1", (32, 16, 3, 3)), weights("b1", (32,)), weights("w2", (32, 32, 1, 1)), weights("b2", (32,))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Add", ["c2", "r1"], ["a2"], name="add2"),
        helper.make_node("Relu", ["a2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    ]
    for node in nodes if not named else []:  # kiln and onnxruntime name unnamed nodes themselves
        node.name = ""
    graph = helper.make_graph(nodes, "residual_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.mark.parametrize("named", [True, False])
def test_every_group_gets_both_runtimes_time(tmp_path, named):
    path = str(tmp_path / "model.onnx")
    residual_cnn(path, named)
    p = subprocess.run([sys.executable, TOOL, path, "--kiln", KILN, "--threads", "1,2", "--rounds", "1",
                        "--duration", "0.2", "--runs", "5"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {}
    for line in p.stdout.splitlines()[1:]:
        m = re.match(r"^(.*?)\s+\d*\s*\|  1t:\s+([\d.]+)\s+([\d.]+)\s+\S+ \|  2t:\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            rows[m.group(1).strip()] = [float(v) for v in m.groups()[1:]]
    for group in ("Conv 3x3 s1 16->32 @32x32", "Conv 1x1 s1 32->32 @32x32", "MaxPool", "TOTAL"):
        assert group in rows, p.stdout
        assert all(v > 0 for v in rows[group]), (group, p.stdout)
    other = rows.get("other", [0.0] * 4)
    assert other[1] == 0 and other[3] == 0, p.stdout  # onnxruntime time left unplaced
