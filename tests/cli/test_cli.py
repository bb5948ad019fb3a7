"""Tests of the kiln command-line tool and the mnist_api example.

KILN_BIN and KILN_MNIST name the built binaries (tests/cli.cmake sets them). The ONNX tests
build models with the onnx helper API and compare kiln's outputs with onnxruntime's.
"""
import json
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data", "mnist"))
import make_weights  # noqa: E402

KILN = os.environ.get("KILN_BIN")
MNIST = os.environ.get("KILN_MNIST")
if not KILN or not MNIST:
    raise RuntimeError("set KILN_BIN and KILN_MNIST to the built kiln and mnist_api binaries")

COMMANDS = ["build", "run", "bench", "inspect"]


def kiln(*args, check=None):
    """Runs kiln; check=0/1/2 asserts the exit status."""
    p = subprocess.run([KILN, *args], capture_output=True, text=True, timeout=300)
    if check is not None:
        assert p.returncode == check, f"kiln {' '.join(args)} -> {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


# ---------------------------------------------------------------- usage and errors


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help(cmd):
    p = kiln(cmd, "--help", check=0)
    assert p.stdout.startswith(f"usage: kiln {cmd}")
    assert "--" in p.stdout


def test_top_level_usage():
    assert "commands:" in kiln("--help", check=0).stdout
    assert re.match(r"kiln \d+\.\d+\.\d+", kiln("--version", check=0).stdout)
    assert "usage" in kiln(check=2).stderr
    p = kiln("frobnicate", check=2)
    assert "unknown command 'frobnicate'" in p.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "--bogus=1"], "unknown option '--bogus'"),
        (["build", "--onnx"], "--onnx needs a value"),
        (["build", "--fp16=yes"], "--fp16 takes no value"),
        (["build", "model.onnx"], "unexpected argument 'model.onnx'"),
        (["build", "--onnx=m.onnx"], "--saveEngine=FILE are required"),
        (["build", "--onnx=m.onnx", "--saveEngine=e", "--device=tpu"], "expected cpu or cuda"),
        (["build", "--onnx=m.onnx", "--saveEngine=e", "--workspace=lots"], "not an integer"),
        (["run"], "--loadEngine=FILE is required"),
        (["run", "--loadEngine=e", "--threads=-2"], "must be between"),
        (["run", "--loadEngine=e", "--seed=x"], "not an integer"),
        (["inspect"], "--loadEngine=FILE is required"),
        (["inspect", "--loadEngine=e", "--json=1"], "takes no value"),
        (["bench"], "exactly one of --loadEngine"),
        (["bench", "--loadEngine=e", "--onnx=m"], "exactly one of --loadEngine"),
        (["bench", "--loadEngine=e", "--fp16"], "build options need --onnx"),
        (["bench", "--loadEngine=e", "--duration=soon"], "not a number"),
        (["bench", "--loadEngine=e", "--iterations=0"], "must be between"),
        (["bench", "--loadEngine=e", "--warmUp=-5"], "must be between"),
        (["bench", "--loadEngine=e", "--exportTimes="], "needs a file name"),
    ],
)
def test_bad_flags(args, message):
    p = kiln(*args, check=2)
    assert message in p.stderr
    assert "error" in p.stderr


@pytest.mark.parametrize(
    "spec, message",
    [
        ("x", "has no ':'"),
        ("x:1xa", "expected dims like"),
        ("x:1x", "expected dims like"),
        ("x:1x2,", "trailing ','"),
        (":1x2", "empty or too long"),
        ("'x:1x2", "unterminated quote"),
        ("'x'1x2", "expected ':' after the quoted name"),
        ("x:1x2,x:3x4", "given twice"),
        ("x:1x2x3x4x5x6x7x8x9", "more than 8 dims"),
        ("x:99999999999999999", "too large"),
    ],
)
@pytest.mark.parametrize("flag", ["minShapes", "optShapes", "maxShapes"])
def test_bad_shape_specs(flag, spec, message):
    # shape specs are checked before the model is read
    p = kiln("build", "--onnx=missing.onnx", "--saveEngine=e.plan", f"--{flag}={spec}", check=2)
    assert message in p.stderr and f"--{flag}" in p.stderr


def test_missing_files(tmp_path):
    for cmd in ["run", "inspect", "bench"]:
        p = kiln(cmd, f"--loadEngine={tmp_path}/none.plan", check=1)
        assert "none.plan" in p.stderr and "error" in p.stderr
    p = kiln("build", f"--onnx={tmp_path}/none.onnx", f"--saveEngine={tmp_path}/e.plan", "--device=cpu", check=1)
    assert "none.onnx" in p.stderr
    assert not (tmp_path / "e.plan").exists()


def test_garbage_engine(tmp_path):
    bad = tmp_path / "bad.plan"
    bad.write_bytes(b"this is not a kiln plan" * 10)
    for cmd in ["run", "inspect"]:
        p = kiln(cmd, f"--loadEngine={bad}", check=1)
        assert "cannot load engine" in p.stderr and "KILN_" in p.stderr


# ---------------------------------------------------------------- mnist_api


def lenet_reference(w, pixels):
    """The network of mnist_api.c in numpy (float64)."""
    x = (pixels.reshape(1, 28, 28).astype(np.float64) - float(w["mean"][0])) * np.float32(0.0125)

    def conv(x, k, b):
        patches = np.lib.stride_tricks.sliding_window_view(x, (5, 5), axis=(1, 2))
        return np.einsum("chwij,kcij->khw", patches, k.astype(np.float64)) + b[:, None, None]

    def pool(x):
        c, h, ww = x.shape
        return x.reshape(c, h // 2, 2, ww // 2, 2).max(axis=(2, 4))

    x = pool(conv(x, w["conv1filter"], w["conv1bias"]))
    x = pool(conv(x, w["conv2filter"], w["conv2bias"]))
    x = np.maximum(w["ip1filter"].astype(np.float64) @ x.ravel() + w["ip1bias"], 0)
    x = w["ip2filter"].astype(np.float64) @ x + w["ip2bias"]
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.fixture(scope="session")
def mnist(tmp_path_factory):
    """Weights, a digit as .npy and .pgm, the reference probabilities and a saved engine."""
    d = tmp_path_factory.mktemp("mnist")
    w = make_weights.make_weights(1)
    make_weights.write_wts(d / "lenet.wts", w)
    rng = np.random.default_rng(7)
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255  # a "1" with noise, so the net sees a digit-like image
    img = np.clip(img.astype(int) + rng.integers(0, 60, (28, 28)), 0, 255).astype(np.uint8)
    np.save(d / "digit.npy", img.astype(np.float32).reshape(1, 1, 28, 28))
    with open(d / "digit.pgm", "wb") as f:
        f.write(b"P5\n# a test digit\n28 28\n255\n" + img.tobytes())
    return {
        "dir": d,
        "wts": d / "lenet.wts",
        "npy": d / "digit.npy",
        "pgm": d / "digit.pgm",
        "ref": lenet_reference(w, img.astype(np.float32)),
        "engine": d / "lenet.plan",
    }


def run_mnist(*args):
    return subprocess.run([MNIST, *map(str, args)], capture_output=True, text=True, timeout=300)


def parse_probs(stdout):
    probs = [float(v) for _, v in sorted(re.findall(r"prob\[(\d)\] = (\S+)", stdout), key=lambda t: int(t[0]))]
    assert len(probs) == 10, stdout
    m = re.search(r"argmax = (\d)", stdout)
    assert m, stdout
    return np.array(probs), int(m.group(1))


@pytest.mark.parametrize("digit", ["npy", "pgm"])
def test_mnist_matches_numpy(mnist, digit):
    p = run_mnist(mnist["wts"], mnist[digit], f"--saveEngine={mnist['engine']}")
    assert p.returncode == 0, p.stderr
    probs, best = parse_probs(p.stdout)
    np.testing.assert_allclose(probs, mnist["ref"], rtol=1e-4, atol=1e-7)
    assert best == int(np.argmax(mnist["ref"]))
    assert abs(probs.sum() - 1) < 1e-5
    assert mnist["engine"].stat().st_size > 400_000 * 4  # the plan holds the weights


def test_mnist_bad_inputs(mnist, tmp_path):
    assert run_mnist().returncode == 2
    p = run_mnist(tmp_path / "none.wts", mnist["npy"])
    assert p.returncode == 1 and "cannot open" in p.stderr
    short = tmp_path / "short.wts"
    short.write_text("2\nconv1filter 0 3 3f800000 3f800000\n")
    p = run_mnist(short, mnist["npy"])
    assert p.returncode == 1 and "conv1filter" in p.stderr
    # a complete file lacking one entry
    w = make_weights.make_weights(1)
    del w["ip2bias"]
    make_weights.write_wts(tmp_path / "partial.wts", w)
    p = run_mnist(tmp_path / "partial.wts", mnist["npy"])
    assert p.returncode == 1 and "no entry 'ip2bias'" in p.stderr
    bad_digit = tmp_path / "digit.npy"
    np.save(bad_digit, np.zeros((27, 28), np.float32))
    p = run_mnist(mnist["wts"], bad_digit)
    assert p.returncode == 1 and "784" in p.stderr


@pytest.fixture(scope="session")
def lenet_plan(mnist):
    if not mnist["engine"].exists():
        p = run_mnist(mnist["wts"], mnist["npy"], f"--saveEngine={mnist['engine']}")
        assert p.returncode == 0, p.stderr
    return mnist["engine"]


def test_inspect_text_and_json(lenet_plan):
    p = kiln("inspect", f"--loadEngine={lenet_plan}", check=0)
    assert re.search(r"Engine: device cpu, 2 IO tensors, \d+ layers", p.stdout)
    assert re.search(r"input\s+data\s+float32\s+\[1,1,28,28\]", p.stdout)
    assert re.search(r"output\s+prob\s+float32\s+\[1,10\]", p.stdout)
    layers = re.findall(r"^\s+\[\s*\d+\] (.*)$", p.stdout, re.M)
    assert layers and len(layers) == int(re.search(r"(\d+) layers", p.stdout).group(1))
    assert any("conv1" in line for line in layers)
    p = kiln("inspect", f"--loadEngine={lenet_plan}", "--json", check=0)
    doc = json.loads(p.stdout)
    assert "conv1" in json.dumps(doc)


def test_run_loads_and_exports(lenet_plan, mnist, tmp_path):
    out = tmp_path / "out"
    p = kiln("run", f"--loadEngine={lenet_plan}", f"--loadInputs=data:{mnist['npy']}", f"--exportOutput={out}",
             "--threads=2", check=0)
    prob = np.load(out / "prob.npy")
    assert prob.dtype == np.float32 and prob.shape == (1, 10)
    np.testing.assert_allclose(prob[0], mnist["ref"], rtol=1e-4, atol=1e-7)
    line = re.search(r"Output 'prob': float32 1x10 min=(\S+) max=(\S+) mean=(\S+) \[(.*)\]", p.stdout)
    assert line, p.stdout
    assert float(line.group(2)) == pytest.approx(prob.max(), rel=1e-5)
    assert float(line.group(3)) == pytest.approx(0.1, rel=1e-5)


def test_run_random_inputs_seed(lenet_plan, tmp_path):
    outs = []
    for i, seed in enumerate(["5", "5", "6"]):
        d = tmp_path / f"o{i}"
        p = kiln("run", f"--loadEngine={lenet_plan}", f"--seed={seed}", f"--exportOutput={d}", check=0)
        assert f"Random seed: {seed}" in p.stdout
        outs.append(np.load(d / "prob.npy"))
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    p = kiln("run", f"--loadEngine={lenet_plan}", check=0)
    assert re.search(r"Random seed: \d+", p.stdout)


def test_run_input_errors(lenet_plan, mnist, tmp_path):
    eng = f"--loadEngine={lenet_plan}"
    p = kiln("run", eng, "--loadInputs=nope:x.npy", check=2)
    assert "'nope'" in p.stderr and "inputs: data" in p.stderr
    p = kiln("run", eng, "--shapes=nope:1x2", check=2)
    assert "'nope'" in p.stderr
    p = kiln("run", eng, "--shapes=data:1x1x28x29", check=2)
    assert "1x1x28x29" in p.stderr
    p = kiln("run", eng, f"--loadInputs=data:{tmp_path}/none.npy", check=1)
    assert "cannot open" in p.stderr
    np.save(tmp_path / "f64.npy", np.zeros((1, 1, 28, 28)))
    p = kiln("run", eng, f"--loadInputs=data:{tmp_path}/f64.npy", check=2)
    assert "float32" in p.stderr and "float64" in p.stderr
    np.save(tmp_path / "shape.npy", np.zeros((1, 28, 28), np.float32))
    p = kiln("run", eng, f"--loadInputs=data:{tmp_path}/shape.npy", check=2)
    assert "shape" in p.stderr


def npy_bytes(header, data=b"", version=1):
    h = header.encode()
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(h)) + h + data


GOOD_DATA = np.zeros((1, 1, 28, 28), np.float32).tobytes()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"PK\x03\x04 zip file", "bad magic"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 28, 28), }\n", GOOD_DATA), "Fortran order"),
        (npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1, 28, 28), }\n", GOOD_DATA), "big-endian"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 28, 28), }\n", GOOD_DATA[:-4]),
         "data is 3132 bytes"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 28, 28), }\n", GOOD_DATA + b"xx"),
         "data is 3138 bytes"),
        (npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", b"\0" * 8), "unsupported dtype"),
        (npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", b"\0" * 4), "structured"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': False, }\n"), "once"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", b"\0" * 4), "unexpected key"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (a,), }\n"), "non-integer"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", b"\0" * 4, version=4),
         "format version 4.0"),
        (b"\x93NUMPY\x01\x00\xff\x00{'descr'", "ends inside the header"),
    ],
)
def test_npy_validation(lenet_plan, tmp_path, content, message):
    f = tmp_path / "in.npy"
    f.write_bytes(content)
    p = kiln("run", f"--loadEngine={lenet_plan}", f"--loadInputs=data:{f}", check=1)
    assert message in p.stderr and "in.npy" in p.stderr


def test_npy_version2_and_quoted_name(lenet_plan, mnist, tmp_path):
    digit = np.load(mnist["npy"])
    f = tmp_path / "v2.npy"
    f.write_bytes(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 28, 28), }\n",
                            digit.tobytes(), version=2))
    out = tmp_path / "out"
    kiln("run", f"--loadEngine={lenet_plan}", f"--loadInputs='data':{f}", f"--exportOutput={out}", check=0)
    np.testing.assert_allclose(np.load(out / "prob.npy")[0], mnist["ref"], rtol=1e-4, atol=1e-7)


def test_bench(lenet_plan, tmp_path):
    times = tmp_path / "times.json"
    before_ms = time.monotonic() * 1e3
    p = kiln("bench", f"--loadEngine={lenet_plan}", "--warmUp=10", "--duration=0.05", "--iterations=20",
             "--threads=1", f"--exportTimes={times}", check=0)
    after_ms = time.monotonic() * 1e3
    out = p.stdout
    assert "=== Performance summary ===" in out
    assert re.search(r"Throughput: [\d.]+ qps", out)
    lat = re.search(r"Latency: min = ([\d.]+) ms, max = ([\d.]+) ms, mean = ([\d.]+) ms, median = ([\d.]+) ms, "
                    r"percentile\(90%\) = ([\d.]+) ms, percentile\(95%\) = ([\d.]+) ms, percentile\(99%\) = ([\d.]+) ms",
                    out)
    assert lat, out
    v = [float(x) for x in lat.groups()]
    assert v[0] <= v[3] <= v[4] <= v[5] <= v[6] <= v[1] and v[0] <= v[2] <= v[1]
    count = int(re.search(r"Enqueue count: (\d+)", out).group(1))
    assert count >= 20
    # every timed execution, in order, on the clock of Python's time.monotonic()
    t = json.loads(times.read_text())
    assert len(t) == count
    assert before_ms < t[0]["startMs"] and t[-1]["endMs"] < after_ms
    for a, b in zip(t, t[1:]):
        assert a["startMs"] < a["endMs"] <= b["startMs"]
    for r in t:
        assert abs(r["endMs"] - r["startMs"] - r["latencyMs"]) < 1e-5
    assert min(r["latencyMs"] for r in t) == pytest.approx(v[0], abs=1e-5)
    assert max(r["latencyMs"] for r in t) == pytest.approx(v[1], abs=1e-5)
    assert re.search(r"Total Host Walltime: [\d.]+ s", out)
    act = int(re.search(r"Activation memory: [\d.]+ MiB \((\d+) bytes\)", out).group(1))
    assert act > 0
    assert float(re.search(r"Peak resident memory: ([\d.]+) MiB", out).group(1)) > 1
    p = kiln("bench", f"--loadEngine={lenet_plan}", "--device=cuda", "--duration=0", check=2)
    assert "built for cpu" in p.stderr


# ---------------------------------------------------------------- ONNX models

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # the tests above still run
    onnx = None

needs_onnx = pytest.mark.skipif(onnx is None, reason="needs the onnx and onnxruntime Python packages")


def save_model(path, nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build(model, plan, *flags):
    p = kiln("build", f"--onnx={model}", f"--saveEngine={plan}", "--device=cpu", *flags)
    if p.returncode != 0 and ("kiln_onnx_parse_file" in p.stderr or "ONNX importer" in p.stderr):
        pytest.skip("kiln was built without the ONNX importer: " + p.stderr.strip())
    assert p.returncode == 0, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def ort_run(model, feeds):
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


@pytest.fixture(scope="session")
def convnet(tmp_path_factory):
    """Conv -> Relu -> Flatten -> Gemm, with output names that need sanitizing."""
    d = tmp_path_factory.mktemp("convnet")
    rng = np.random.default_rng(3)
    inits = {
        "W": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3,
        "B": rng.standard_normal(4).astype(np.float32) * 0.1,
        "G": rng.standard_normal((10, 4 * 8 * 8)).astype(np.float32) * 0.05,
        "C": rng.standard_normal(10).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["input:0", "W", "B"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["feat map"]),
        helper.make_node("Flatten", ["feat map"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "G", "C"], ["logits/out:0"], transB=1),
    ]
    model = save_model(d / "convnet.onnx", nodes,
                       [helper.make_tensor_value_info("input:0", TensorProto.FLOAT, [2, 3, 8, 8])],
                       [helper.make_tensor_value_info("logits/out:0", TensorProto.FLOAT, [2, 10]),
                        helper.make_tensor_value_info("feat map", TensorProto.FLOAT, [2, 4, 8, 8])], inits)
    return {"dir": d, "model": model, "plan": d / "convnet.plan"}


@needs_onnx
def test_onnx_build_run_matches_onnxruntime(convnet, tmp_path):
    cache = tmp_path / "timing.cache"
    p = build(convnet["model"], convnet["plan"], f"--timingCacheFile={cache}", "--workspace=64")
    assert re.search(r"Build time: [\d.]+ ms", p.stdout)
    assert re.search(r"input\s+input:0\s+float32\s+\[2,3,8,8\]", p.stdout)
    assert re.search(r"output\s+logits/out:0\s+float32\s+\[2,10\]", p.stdout)
    assert cache.exists()
    assert "Timing cache loaded" in build(convnet["model"], convnet["plan"], f"--timingCacheFile={cache}").stdout

    x = np.random.default_rng(11).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    # the input name holds ':', so the split must find the name, not the path's last ':'
    kiln("run", f"--loadEngine={convnet['plan']}", f"--loadInputs=input:0:{tmp_path}/x.npy", f"--exportOutput={out}",
         check=0)
    ref = ort_run(convnet["model"], {"input:0": x})
    assert sorted(os.listdir(out)) == ["feat_map.npy", "logits_out_0.npy"]
    np.testing.assert_allclose(np.load(out / "logits_out_0.npy"), ref["logits/out:0"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.load(out / "feat_map.npy"), ref["feat map"], rtol=1e-4, atol=1e-5)


@needs_onnx
def test_onnx_inspect_and_bench(convnet):
    if not convnet["plan"].exists():
        build(convnet["model"], convnet["plan"])
    p = kiln("inspect", f"--loadEngine={convnet['plan']}", check=0)
    assert "Layers:" in p.stdout and re.search(r"\[\s*0\] ", p.stdout)
    json.loads(kiln("inspect", f"--loadEngine={convnet['plan']}", "--json", check=0).stdout)
    p = kiln("bench", f"--onnx={convnet['model']}", "--device=cpu", "--warmUp=0", "--duration=0", "--iterations=5",
             "--threads=1")
    if p.returncode != 0 and "kiln_onnx_parse_file" in p.stderr:
        pytest.skip("no ONNX importer")
    assert p.returncode == 0, p.stderr
    assert re.search(r"Latency: min = .* percentile\(99%\) = [\d.]+ ms", p.stdout)
    assert "Enqueue count: 5" in p.stdout


@needs_onnx
def test_onnx_dynamic_shapes(tmp_path):
    rng = np.random.default_rng(5)
    inits = {"W": rng.standard_normal((16, 8)).astype(np.float32), "B": rng.standard_normal(8).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])]
    model = save_model(tmp_path / "dyn.onnx", nodes,
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], inits)
    plan = tmp_path / "dyn.plan"
    p = build(model, plan, "--minShapes=x:1x16", "--optShapes=x:4x16", "--maxShapes=x:8x16")
    assert re.search(r"input\s+x\s+float32\s+\[(batch|\?),16\]", p.stdout)
    assert "profile 0: x min 1x16 opt 4x16 max 8x16" in p.stdout
    for batch in (2, 7):
        x = rng.uniform(-1, 1, (batch, 16)).astype(np.float32)
        np.save(tmp_path / "x.npy", x)
        out = tmp_path / f"out{batch}"
        # the shape comes from --shapes, and must agree with the .npy
        kiln("run", f"--loadEngine={plan}", f"--shapes=x:{batch}x16", f"--loadInputs=x:{tmp_path}/x.npy",
             f"--exportOutput={out}", check=0)
        y = np.load(out / "y.npy")
        assert y.shape == (batch, 8)
        np.testing.assert_allclose(y, x @ inits["W"] + inits["B"], rtol=1e-4, atol=1e-5)
    # without --shapes the profile's opt shape is used
    p = kiln("run", f"--loadEngine={plan}", f"--exportOutput={tmp_path}/opt", check=0)
    assert np.load(tmp_path / "opt" / "y.npy").shape == (4, 8)
    # outside the profile
    p = kiln("run", f"--loadEngine={plan}", "--shapes=x:9x16", check=1)
    assert "9x16" in p.stderr
    # a static dim that does not match, and a name that is not an input
    assert "has shape" in kiln("run", f"--loadEngine={plan}", "--shapes=x:2x15", check=2).stderr
    p = kiln("build", f"--onnx={model}", f"--saveEngine={plan}", "--device=cpu", "--optShapes=z:1x16", check=2)
    assert "'z'" in p.stderr and "not a network input" in p.stderr
    # only max given: min and opt take it
    p = build(model, plan, "--maxShapes=x:3x16", "--verbose")
    assert "profile 0: x min 3x16 opt 3x16 max 3x16" in p.stdout
    assert "[kiln] " in p.stderr  # --verbose passes the library's log through


@needs_onnx
def test_onnx_dtypes_random_inputs_and_name_collisions(tmp_path):
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    nodes = [
        helper.make_node("Cast", ["x"], ["x/f32"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["x/f32"], ["x:f16"], to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["x/f32"], ["x:bf16"], to=TensorProto.BFLOAT16),
        helper.make_node("Gather", ["table", "idx"], ["rows"], axis=0),
        helper.make_node("Identity", ["rows"], ["x:f32"]),  # sanitizes to the same file name as "x/f32"
    ]
    model = save_model(tmp_path / "dtypes.onnx", nodes,
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 3]),
                        helper.make_tensor_value_info("idx", TensorProto.INT64, [5])],
                       [helper.make_tensor_value_info("x/f32", TensorProto.FLOAT, [2, 3]),
                        helper.make_tensor_value_info("x:f16", TensorProto.FLOAT16, [2, 3]),
                        helper.make_tensor_value_info("x:bf16", TensorProto.BFLOAT16, [2, 3]),
                        helper.make_tensor_value_info("x:f32", TensorProto.FLOAT, [5, 4])],
                       {"table": table})
    plan = tmp_path / "dtypes.plan"
    build(model, plan)
    out = tmp_path / "out"
    p = kiln("run", f"--loadEngine={plan}", "--seed=42", f"--exportOutput={out}", check=0)
    assert "written as raw uint16 bits" in p.stderr
    files = sorted(os.listdir(out))
    assert files == ["x_bf16.npy", "x_f16.npy", "x_f32.npy", "x_f32_5.npy"], files
    xf = np.load(out / "x_f32.npy")
    assert xf.dtype == np.float32 and xf.shape == (2, 3)
    assert np.all(xf >= -1) and np.all(xf < 1) and len(np.unique(xf)) > 1  # random halves in [-1, 1)
    f16 = np.load(out / "x_f16.npy")
    assert f16.dtype == np.float16 and np.array_equal(f16.astype(np.float32), xf)
    bf = np.load(out / "x_bf16.npy")
    assert bf.dtype == np.uint16
    np.testing.assert_allclose((bf.astype(np.uint32) << 16).view(np.float32), xf, rtol=1e-2, atol=1e-6)
    rows = np.load(out / "x_f32_5.npy")
    assert rows.shape == (5, 4)
    for r in rows:  # random int64 indices are in [0, 4)
        assert any(np.array_equal(r, table[i]) for i in range(4)), rows
    m = re.search(r"Output 'x:f16': float16 2x3 min=(\S+)", p.stdout)
    assert m and float(m.group(1)) == pytest.approx(float(xf.min()), abs=1e-6)
