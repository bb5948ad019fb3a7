"""Real models end to end on the CPU: exported from PyTorch, built and run by kiln, compared with
onnxruntime.

models/export_models.py exports each model (under a Python with torch: KILN_TORCH_PYTHON, this
interpreter or /usr/bin/python3, whichever imports torch first) into KILN_MODELS_DIR, and this
interpreter writes onnxruntime's reference outputs. kiln then builds an engine with a dynamic
batch (profile 1..4, opt 2), runs it on the reference inputs at batch 2 and on the first row
alone at batch 1, and its outputs must match onnxruntime's in FP32 within rtol 1e-3, atol 1e-4.
KILN_MODELS (comma-separated) picks the models; tests/models.cmake makes one CTest test of each.
The architectures are export_models.py's own torch.nn ones, the same everywhere; with
KILN_MODELS_LIBRARY=1, torchvision's and transformers' where those are installed.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORT = os.path.join(HERE, "..", "..", "models", "export_models.py")
KILN = os.environ.get("KILN_BIN")
OUT = os.environ.get("KILN_MODELS_DIR")
MODELS = [m for m in os.environ.get("KILN_MODELS", "resnet18,mobilenet_v2,bert_small").split(",") if m]
RTOL, ATOL = 1e-3, 1e-4
if not KILN or not OUT:
    raise RuntimeError("set KILN_BIN (the kiln tool) and KILN_MODELS_DIR (where models are exported)")


def torch_python():
    for py in [os.environ.get("KILN_TORCH_PYTHON"), sys.executable, "/usr/bin/python3"]:
        if py and subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0:
            return py
    pytest.fail("no Python here imports torch: install Debian's python3-torch (scripts/setup.sh does) "
                "or set KILN_TORCH_PYTHON")


def run(cmd, timeout=900):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} -> {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    """Exports one model (fresh each run, so the script itself is tested) with its reference."""
    name = request.param
    own = [] if os.environ.get("KILN_MODELS_LIBRARY") == "1" else ["--own"]
    run([torch_python(), EXPORT, "--out", OUT, "--models", name, "--no-reference"] + own)
    run([sys.executable, EXPORT, "--out", OUT, "--models", name, "--reference-only", "--batch", "2"])
    d = os.path.join(OUT, name)
    if not os.path.exists(os.path.join(d, "model.onnx")):
        pytest.skip(f"{name} needs torchvision or transformers")
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    meta["dir"] = d
    return meta


def shapes(meta, batch):
    return ",".join(f"{i['name']}:" + "x".join(str(batch if s == "batch" else s) for s in i["shape"])
                    for i in meta["inputs"])


@pytest.fixture(scope="module")
def plan(model):
    path = os.path.join(model["dir"], "model.plan")
    run([KILN, "build", f"--onnx={model['dir']}/model.onnx", f"--saveEngine={path}", "--device=cpu",
         "--minShapes=" + shapes(model, 1), "--optShapes=" + shapes(model, 2), "--maxShapes=" + shapes(model, 4)])
    return path


def check_outputs(model, got_dir, rows):
    for name in model["outputs"]:
        ref = np.load(os.path.join(model["dir"], "ref", name + ".npy"))[rows]
        got = np.load(os.path.join(got_dir, name + ".npy"))
        assert got.dtype == ref.dtype and got.shape == ref.shape, (name, got.dtype, got.shape, ref.shape)
        assert np.abs(ref).max() > 1e-3, f"{name}: the reference is ~0 everywhere, which would test nothing"
        err = np.abs(got.astype(np.float64) - ref)
        print(f"{model['name']} {name}: max abs err {err.max():.3g}, max |ref| {np.abs(ref).max():.3g}")
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL, err_msg=f"{model['name']} output {name}")


def test_matches_onnxruntime(model, plan, tmp_path):
    inputs = ",".join(f"{i['name']}:{model['dir']}/inputs/{i['name']}.npy" for i in model["inputs"])
    run([KILN, "run", f"--loadEngine={plan}", f"--loadInputs={inputs}", f"--exportOutput={tmp_path}", "--threads=2"])
    check_outputs(model, tmp_path, slice(0, 2))


def test_batch_one_matches(model, plan, tmp_path):
    """Batch 1, not the profile's opt batch: the first row of the reference alone."""
    loads = []
    for i in model["inputs"]:
        f = tmp_path / f"{i['name']}.npy"
        np.save(f, np.load(os.path.join(model["dir"], "inputs", i["name"] + ".npy"))[:1])
        loads.append(f"{i['name']}:{f}")
    out = tmp_path / "out"
    run([KILN, "run", f"--loadEngine={plan}", "--loadInputs=" + ",".join(loads), f"--exportOutput={out}",
         "--threads=1"])
    check_outputs(model, out, slice(0, 1))
