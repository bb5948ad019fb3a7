"""kiln bench --dumpProfile and --exportProfile: the per-layer table and its JSON export.

KILN_BIN and KILN_MNIST name the built binaries (tests/cli.cmake sets them); the engine is the
LeNet that mnist_api builds, so these tests need no ONNX packages.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data", "mnist"))
import make_weights  # noqa: E402

KILN = os.environ.get("KILN_BIN")
MNIST = os.environ.get("KILN_MNIST")
if not KILN or not MNIST:
    raise RuntimeError("set KILN_BIN and KILN_MNIST to the built kiln and mnist_api binaries")

ROW = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s+(.+?)\s*$")


def kiln(*args, check=None):
    p = subprocess.run([KILN, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check is not None:
        assert p.returncode == check, f"kiln {' '.join(map(str, args))} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    """The LeNet plan and its layers as (name, type) from kiln inspect --json."""
    d = tmp_path_factory.mktemp("profile")
    make_weights.write_wts(d / "lenet.wts", make_weights.make_weights(1))
    np.save(d / "digit.npy", np.random.default_rng().uniform(0, 255, (1, 1, 28, 28)).astype(np.float32))
    plan = d / "lenet.plan"
    p = subprocess.run([MNIST, d / "lenet.wts", d / "digit.npy", f"--saveEngine={plan}"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    layers = json.loads(kiln("inspect", f"--loadEngine={plan}", "--json", check=0).stdout)["layers"]
    return plan, [(layer["name"], layer["type"]) for layer in layers]


def bench(plan, *flags, iterations=7):
    return kiln("bench", f"--loadEngine={plan}", "--warmUp=5", "--duration=0", f"--iterations={iterations}",
                "--threads=1", *flags)


def test_dump_profile_table(lenet):
    plan, layers = lenet
    runs = np.random.default_rng().integers(3, 12)
    out = bench(plan, "--dumpProfile", iterations=runs).stdout
    count = int(re.search(r"Enqueue count: (\d+)", out).group(1))
    assert count >= runs
    assert f"=== Profile ({count} runs) ===" in out
    lines = out[out.index("=== Profile"):].splitlines()
    assert re.match(r"\s*Time\(ms\)\s+Avg\.\(ms\)\s+Median\(ms\)\s+Time\(%\)\s+Type\s+Layer$", lines[1])
    rows = [ROW.match(line) for line in lines[2:2 + len(layers)]]
    assert all(rows), lines
    # every engine layer once, with its type, sorted by total time, longest first
    assert sorted((m.group(6), m.group(5)) for m in rows) == sorted(layers)
    totals = [float(m.group(1)) for m in rows]
    assert totals == sorted(totals, reverse=True)
    for m in rows:  # average = total / runs, to the printed precision (total: 3 decimals, average: 5)
        assert float(m.group(2)) == pytest.approx(float(m.group(1)) / count, rel=1e-3, abs=5e-4 / count + 1e-5)
        assert 0 <= float(m.group(3)) <= float(m.group(1)) + 1e-3  # a median run is at most all of them
    assert sum(float(m.group(4)) for m in rows) == pytest.approx(100, abs=0.1 * len(rows))
    total = re.match(r"\s*([\d.]+)\s+([\d.]+)\s+100\.0\s+Total$", lines[2 + len(layers)])
    assert total, lines
    assert float(total.group(1)) == pytest.approx(sum(totals), abs=1e-3 * len(rows))
    mean = float(re.search(r"Latency: .* mean = ([\d.]+) ms", out).group(1))
    assert float(total.group(2)) <= mean * 1.001
    assert re.search(r"Layers cover [\d.]+% of the mean latency", out)


def test_export_profile_json(lenet, tmp_path):
    plan, layers = lenet
    f = tmp_path / "profile.json"
    p = bench(plan, f"--exportProfile={f}")
    assert p.returncode == 0, p.stderr
    assert "=== Profile" not in p.stdout  # the table needs --dumpProfile
    assert f"Profile written to {f}" in p.stdout
    count = int(re.search(r"Enqueue count: (\d+)", p.stdout).group(1))
    doc = json.loads(f.read_text())
    assert isinstance(doc, list) and sorted((e["name"], e["type"]) for e in doc) == sorted(layers)
    for e in doc:
        assert set(e) == {"name", "type", "averageMs", "medianMs", "totalMs", "percentage", "count"}
        assert e["count"] == count and e["averageMs"] >= 0 and 0 <= e["percentage"] <= 100
        assert e["averageMs"] == pytest.approx(e["totalMs"] / count, rel=1e-3, abs=1e-6)
        assert 0 <= e["medianMs"] <= e["totalMs"] * (1 + 1e-6) + 1e-6
    assert [e["totalMs"] for e in doc] == sorted((e["totalMs"] for e in doc), reverse=True)
    assert sum(e["percentage"] for e in doc) == pytest.approx(100, abs=0.01)


@pytest.mark.parametrize("runs", [1, 2])
def test_export_profile_median_of_few_runs(lenet, tmp_path, runs):
    """One run: the median is that run; two: the mean of both. Either way it equals the average."""
    plan, _ = lenet
    f = tmp_path / "profile.json"
    p = kiln("bench", f"--loadEngine={plan}", "--warmUp=0", "--duration=0", f"--iterations={runs}", "--threads=1",
             f"--exportProfile={f}", check=0)
    assert f"Enqueue count: {runs}\n" in p.stdout
    for e in json.loads(f.read_text()):
        assert e["count"] == runs
        assert e["medianMs"] == pytest.approx(e["averageMs"], rel=1e-4, abs=2e-6)  # 6 decimals printed


def test_profile_off_and_errors(lenet, tmp_path):
    plan, _ = lenet
    out = bench(plan).stdout
    assert "=== Profile" not in out and "Profile written" not in out
    assert "--dumpProfile" in kiln("bench", "--help", check=0).stdout
    assert "--exportProfile" in kiln("bench", "--help", check=0).stdout
    assert "takes no value" in kiln("bench", f"--loadEngine={plan}", "--dumpProfile=1", check=2).stderr
    assert "needs a file name" in kiln("bench", f"--loadEngine={plan}", "--exportProfile=", check=2).stderr
    bad = tmp_path / "missing" / "p.json"
    p = bench(plan, f"--exportProfile={bad}")
    assert p.returncode == 1 and "cannot write the profile" in p.stderr and str(bad) in p.stderr
