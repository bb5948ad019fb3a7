#!/usr/bin/env python3
"""Layer by layer inside the whole model, kiln against ONNX Runtime, at one or more thread counts.

Both runtimes run the full model with their own profilers on: kiln through `kiln bench
--exportProfile` (median time per layer after fusion), onnxruntime through its session profiling
(median per node over the profiled runs). Medians on both sides: a mean counts a layer's rare slow
runs (a worker thread the system did not schedule at once) in full (MobileNetV2 at 2 threads on a
2-core machine: single layers' means up to 1.26 times their medians). Each onnxruntime node is
charged to the kiln layer it belongs to: the layer of the same name, else the first ONNX node up
its inputs that names a kiln layer (onnxruntime's NCHWc and fused nodes are named after the output
of an activation that kiln fused into the convolution before it). A node of onnxruntime's own
making starts that walk from the node whose name its name extends ("<node>/MatMulScaleFusion/",
attention's scaled QK^T), or else from the node computing its first input in onnxruntime's
optimized graph ("BiasGelu_token_3" after a linear layer). Layers are then grouped by what they
compute: a convolution by its shape, anything else by its ONNX op. Per group, the sum of per-layer
minimums over the rounds (rounds alternate the two runtimes, so a drift of the machine reaches
both).

onnxruntime nodes that still lead to no kiln layer are summed under "other".

Unlike bench/per_node.py, which times every node cut out alone, this keeps what the model does
to the caches: a layer whose input its producer left in L2, weights that come from memory.
Profiled sums are not latencies (profiling costs a little per layer in both runtimes); the ranking
shows where kiln loses time inside a real model.

    python3 bench/layers_vs_ort.py build/bench-models/resnet50/model.onnx --threads 1,2 --rounds 3
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
WALK_UP = 4  # ONNX nodes walked up an input chain to find the kiln layer an onnxruntime node belongs to


def graph_index(path):
    """(nodes by name, producer node of each value, initializer dims, value dims) of the model."""
    m = onnx.shape_inference.infer_shapes(onnx.load(path, load_external_data=False))
    g = m.graph
    for i, n in enumerate(g.node):  # kiln's name for an unnamed node
        n.name = n.name or "%s_%d" % (n.op_type, i)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(g.value_info) + list(g.output) + list(g.input)}
    return ({n.name: n for n in g.node}, {o: n for n in g.node for o in n.output},
            {i.name: list(i.dims) for i in g.initializer}, dims)


def describe(node, inits, dims):
    """What a kiln layer named after this ONNX node computes, as a group name."""
    if node is None:
        return "other"
    if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
        w, y = inits[node.input[1]], dims.get(node.output[0], [])
        attr = {a.name: a for a in node.attribute}
        group = attr["group"].i if "group" in attr else 1
        stride = attr["strides"].ints[0] if "strides" in attr else 1
        kernel = "x".join(str(k) for k in w[2:])
        plane = "x".join(str(d) for d in y[2:]) if len(y) > 2 else "?"
        kind = "dw" if group > 1 and group == w[0] else ("g%d" % group if group > 1 else "")
        return "Conv %s s%d %s%d->%d @%s" % (kernel, stride, kind + " " if kind else "", w[1] * group, w[0], plane)
    if node.op_type in ("MatMul", "Gemm"):
        w = next((inits[i] for i in node.input[1:2] if i in inits), None)
        return "%s %s" % (node.op_type, "x".join(map(str, w)) if w else "activations")
    return node.op_type


def layer_node(layer, nodes):
    """The ONNX node a kiln layer comes from: kiln names a node's second and later layers "<node>:<i>"."""
    base, sep, index = layer.rpartition(":")
    return nodes.get(layer) or (nodes.get(base) if sep and index.isdigit() else None)


def owner(name, nodes, producer, layers, ort_inputs):
    """The kiln layer an onnxruntime node's time belongs to, or None. ort_inputs: the input names
    of each node of onnxruntime's optimized graph."""
    node = nodes.get(name)
    if node is None and name.endswith("_nchwc"):
        node = nodes.get(name[: -len("_nchwc")]) or producer.get(name[: -len("_nchwc")])
    prefix = name.rstrip("/")
    while node is None and "/" in prefix:
        prefix = prefix.rpartition("/")[0]
        node = nodes.get(prefix)
    if node is None:
        node = next((producer[i] for i in ort_inputs.get(name, []) if i in producer), None)
    for _ in range(WALK_UP):
        if node is None:
            return None
        if node.name in layers:
            return node.name
        ups = [producer[i] for i in node.input if i in producer]
        weighted = [u for u in ups if u.op_type in ("Conv", "MatMul", "Gemm")]
        node = (weighted or ups or [None])[0]
    return None


def kiln_profile(kiln, path, threads, duration):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "profile.json")
        p = subprocess.run([kiln, "bench", "--onnx=" + path, "--device=cpu", "--threads=%d" % threads,
                            "--duration=%g" % duration, "--exportProfile=" + out], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit("kiln bench failed (%d): %s" % (p.returncode, (p.stderr or p.stdout).strip()[-500:]))
        with open(out) as f:
            return {e["name"]: e["medianMs"] for e in json.load(f)}


def ort_profile(path, threads, runs, warmup):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = os.path.join(tmp, "ort")
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng()
        feeds = {}
        for i in s.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
            if "int" in i.type:
                feeds[i.name] = rng.integers(0, 2, size=shape).astype(np.int64 if "64" in i.type else np.int32)
            else:
                feeds[i.name] = rng.random(shape, dtype=np.float32)
        for _ in range(warmup + runs):
            s.run(None, feeds)
        with open(s.end_profiling()) as f:
            events = json.load(f)
    per = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[e["name"][: -len("_kernel_time")]].append(e["dur"] / 1000.0)
    return {k: float(np.median(v[warmup:] or v)) for k, v in per.items()}


def ort_node_inputs(path):
    """The input names of each node of onnxruntime's optimized graph (its fused nodes included)."""
    so = ort.SessionOptions()
    with tempfile.TemporaryDirectory() as tmp:
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        optimized = onnx.load(so.optimized_model_filepath, load_external_data=False)
    return {n.name: list(n.input) for n in optimized.graph.node}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("onnx")
    ap.add_argument("--kiln", default=os.path.join(os.path.dirname(HERE), "build", "kiln"))
    ap.add_argument("--threads", default="1", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0, help="seconds of kiln bench per round")
    ap.add_argument("--runs", type=int, default=50, help="profiled onnxruntime runs per round")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    nodes, producer, inits, dims = graph_index(args.onnx)
    ort_inputs = ort_node_inputs(args.onnx)

    best = {(rt, t): collections.defaultdict(lambda: float("inf")) for rt in ("kiln", "ort") for t in threads}
    for _ in range(args.rounds):
        for t in threads:
            for name, ms in kiln_profile(args.kiln, args.onnx, t, args.duration).items():
                best["kiln", t][name] = min(best["kiln", t][name], ms)
            for name, ms in ort_profile(args.onnx, t, args.runs, warmup=10).items():
                best["ort", t][name] = min(best["ort", t][name], ms)

    layers = set(best["kiln", threads[0]])
    groups = {(rt, t): collections.defaultdict(float) for rt, t in best}
    counts = collections.Counter()
    for name in layers:
        counts[describe(layer_node(name, nodes), inits, dims)] += 1
    for (rt, t), times in best.items():
        for name, ms in times.items():
            layer = name if rt == "kiln" else owner(name, nodes, producer, layers, ort_inputs)
            key = describe(layer_node(layer, nodes), inits, dims) if layer else "other"
            if rt == "ort" and name.startswith("Reorder"):
                key = "onnxruntime layout reorders"
            groups[rt, t][key] += ms

    t0 = threads[0]
    keys = sorted(set().union(*(g.keys() for g in groups.values())),
                  key=lambda k: groups["ort", t0][k] - groups["kiln", t0][k])
    head = "%-34s %3s" % ("layers (ms, sum of per-layer mins)", "n")
    for t in threads:
        head += " | %2dt: %8s %8s %6s" % (t, "kiln", "ORT", "k/ORT")
    print(head)
    for key in keys[: args.top] + ["TOTAL"]:
        row = "%-34s %3s" % (key[:34], counts.get(key, "") if key != "TOTAL" else "")
        for t in threads:
            k = sum(groups["kiln", t].values()) if key == "TOTAL" else groups["kiln", t][key]
            o = sum(groups["ort", t].values()) if key == "TOTAL" else groups["ort", t][key]
            row += " | %2dt: %8.3f %8.3f %6s" % (t, k, o, "%.2f" % (k / o) if o > 0 else "-")
        print(row)
    if len(keys) > args.top:
        print("(%d more groups; --top)" % (len(keys) - args.top))


if __name__ == "__main__":
    main()
