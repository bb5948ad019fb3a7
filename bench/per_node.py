#!/usr/bin/env python3
"""Per-layer timing, kiln against ONNX Runtime: where a model's time goes, node by node.

Each node of the model is cut out into a one-node ONNX model (its weights kept as initializers,
shape-like integer inputs frozen to the values they take in the full model, other inputs fed as
graph inputs of the shapes they have at batch 1) and timed alone by `kiln bench --onnx` and by onnxruntime (intra_op_num_threads=N, sequential), median
latency. Nodes with identical op, attributes, weights' shapes and input shapes are timed once and
counted. Isolated nodes miss fusions (kiln and onnxruntime both fuse Conv + activation, and
onnxruntime fuses much more), so the sum differs from the whole-model latency; the ranking shows
which kernels to work on.

    python3 bench/per_node.py build/bench-models/mobilenet_v2/model.onnx --threads 1 --top 15
"""
import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "models"))
import export_models  # noqa: E402

FREEZE_MAX = 16  # integer inputs up to this size are shapes/axes/indices: frozen as initializers


def capture(model_path, feeds):
    """Every intermediate value of the model for these inputs, by name (onnxruntime, no fusion)."""
    m = onnx.load(model_path)
    m = onnx.shape_inference.infer_shapes(m)
    known = {o.name for o in m.graph.output}
    types = {vi.name: vi.type.tensor_type.elem_type for vi in m.graph.value_info}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in known and o in types:
                m.graph.output.append(helper.make_tensor_value_info(o, types[o], None))
                known.add(o)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    vals = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    vals.update(feeds)
    return onnx.load(model_path), vals


def node_model(model, node, vals):
    """A one-node model of `node`, its feeds, and a signature that identifies its work."""
    inits = {t.name: t for t in model.graph.initializer}
    g_inputs, g_inits, feeds, sig = [], [], {}, [node.op_type]
    for a in node.attribute:
        sig.append(f"{a.name}={helper.get_attribute_value(a)!r}"[:80])
    for name in node.input:
        if not name:
            sig.append("-")
            continue
        if name in inits:
            g_inits.append(inits[name])
            sig.append("w" + "x".join(map(str, inits[name].dims)))
            continue
        v = vals.get(name)
        if v is None:
            return None
        v = np.asarray(v)
        if v.dtype.kind in "iub" and v.size <= FREEZE_MAX:
            g_inits.append(numpy_helper.from_array(v, name))
            sig.append(f"c{v.tolist()}")
        else:
            g_inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
            feeds[name] = v
            sig.append("x".join(map(str, v.shape)) + str(v.dtype))
    if not g_inputs:  # nothing computed at run time (constant folded by both runtimes)
        return None
    outs = []
    for o in node.output:
        if o and o in vals:
            v = np.asarray(vals[o])
            outs.append(helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
    g = helper.make_graph([node], "one", g_inputs, outs, g_inits)
    m = helper.make_model(g, opset_imports=model.opset_import)
    m.ir_version = model.ir_version
    return m, feeds, " ".join(sig)


def time_ort(m, feeds, threads, duration):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, feeds)
    lat, start = [], time.perf_counter()
    while time.perf_counter() - start < duration or len(lat) < 10:
        t = time.perf_counter()
        sess.run(None, feeds)
        lat.append((time.perf_counter() - t) * 1e3)
    return statistics.median(lat)


def time_kiln(kiln, path, threads, duration):
    p = subprocess.run([kiln, "bench", f"--onnx={path}", "--device=cpu", f"--threads={threads}", "--warmUp=50",
                        f"--duration={duration}", "--iterations=10"], capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
    return float(re.search(r"median = ([\d.]+) ms", p.stdout).group(1)), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("onnx", help="model.onnx written by models/export_models.py (its meta names the model)")
    ap.add_argument("--model", help="model name in export_models.py (default: the directory's name)")
    ap.add_argument("--kiln", default=os.path.join(os.path.dirname(HERE), "build", "kiln"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--duration", type=float, default=0.3)
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    name = a.model or os.path.basename(os.path.dirname(os.path.abspath(a.onnx)))
    model, vals = capture(a.onnx, export_models.make_inputs(name, 1, 0))
    groups = collections.OrderedDict()
    for node in model.graph.node:
        made = node_model(model, node, vals)
        if made is None:
            continue
        m, feeds, sig = made
        groups.setdefault(sig, [m, feeds, node.op_type, []])[3].append(node.name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (sig, (m, feeds, op, names)) in enumerate(groups.items()):
            path = os.path.join(tmp, f"n{i}.onnx")
            onnx.save(m, path)
            k, err = time_kiln(a.kiln, path, a.threads, a.duration)
            o = time_ort(m, feeds, a.threads, a.duration)
            rows.append((op, sig, names, k, o, err))
    n = len(rows)
    print(f"# {name}: {sum(len(r[2]) for r in rows)} nodes timed alone as {n} distinct ones; threads {a.threads}; "
          "median ms per execution (kiln includes its per-execution overhead, about the same for every node)")
    by_op = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for op, _, names, k, o, _ in rows:
        if k is None:
            continue
        by_op[op][0] += len(names)
        by_op[op][1] += k * len(names)
        by_op[op][2] += o * len(names)
    print("\n| op | nodes | kiln ms | ORT ms | kiln/ORT | kiln - ORT ms |\n|---|---|---|---|---|---|")
    for op, (c, k, o) in sorted(by_op.items(), key=lambda t: -(t[1][1] - t[1][2])):
        print(f"| {op} | {c} | {k:.3f} | {o:.3f} | {k / o:.2f} | {k - o:.3f} |")
    tk, to = sum(v[1] for v in by_op.values()), sum(v[2] for v in by_op.values())
    print(f"| all | {sum(v[0] for v in by_op.values())} | {tk:.3f} | {to:.3f} | {tk / to:.2f} | {tk - to:.3f} |")
    print(f"\nTop {a.top} distinct nodes by time lost (kiln - ORT, times count):\n")
    print("| op | count | kiln ms | ORT ms | kiln/ORT | lost ms | signature (first node) |\n|---|---|---|---|---|---|---|")
    timed = [r for r in rows if r[3] is not None]
    for op, sig, names, k, o, _ in sorted(timed, key=lambda r: -(r[3] - r[4]) * len(r[2]))[:a.top]:
        print(f"| {op} | {len(names)} | {k:.3f} | {o:.3f} | {k / o:.2f} | {(k - o) * len(names):.3f} | "
              f"{sig[:110]} ({names[0]}) |")
    failed = [r for r in rows if r[3] is None]
    if failed:
        print(f"\nkiln could not build or run {len(failed)} one-node models alone (kiln bench feeds integer inputs "
              "random values 0..3, which can be out of range for a small embedding table):")
        for op, sig, names, _, _, err in failed:
            print(f"  {op} ({names[0]}): {err}")


if __name__ == "__main__":
    sys.exit(main())
