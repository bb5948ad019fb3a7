"""bench/cpu_vs_ort.py --interleave: two processes take turns, and only whole executions count.

Two stand-in engines (Python children that spin 5 ms per "execution" and record each one's start
and end on time.monotonic(), as kiln bench --exportTimes does) run by turns: neither may run during
the other's turn, and the executions cut by a turn's end (which include the other's whole turn)
must be left out of the turns' latencies. --cpus confines each engine's process to the CPUs given,
and every measurement reports its 10th-percentile latency.
"""
import importlib.util
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("cpu_vs_ort", os.path.join(HERE, "..", "..", "bench", "cpu_vs_ort.py"))
cpu_vs_ort = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_vs_ort)

ENGINE = """
import json, sys, time
out, wall = sys.argv[1], float(sys.argv[2])
times, t_end = [], time.monotonic() + wall
while time.monotonic() < t_end:
    s = time.monotonic()
    while time.monotonic() - s < 0.005:
        pass
    e = time.monotonic()
    times.append({"startMs": s * 1e3, "endMs": e * 1e3, "latencyMs": (e - s) * 1e3})
json.dump(times, open(out, "w"))
"""


def test_turns_exclude_each_other(tmp_path):
    turn_s = 0.2
    procs = {n: subprocess.Popen([sys.executable, "-c", ENGINE, str(tmp_path / n), "1.5"]) for n in ("a", "b")}
    turns, ended = cpu_vs_ort.take_turns(procs, turn_s)
    assert all(rc == 0 and rss > 1 for rc, rss in ended.values()), ended
    times = {n: json.loads((tmp_path / n).read_text()) for n in procs}
    for n, other in (("a", "b"), ("b", "a")):
        assert len(turns[n]) >= 3
        for t0, t1 in turns[n]:
            assert t0 < t1
        # no execution of n ends inside the other's turns: n was stopped throughout them
        for r in times[n]:
            assert not any(t0 < r["endMs"] < t1 for t0, t1 in turns[other]), r
        clean = cpu_vs_ort.per_turn(times[n], turns[n])
        assert sum(len(t) for t in clean) > 20
        assert max(x for t in clean for x in t) < 1e3 * turn_s / 2  # whole executions only
        # the executions in flight at a turn's end span the other's next turn, and are left out (those
        # before the first turn ran while the processes were being started)
        cut = [r for r in times[n] if r["startMs"] >= turns[n][0][0] and
               not any(t0 <= r["startMs"] and r["endMs"] <= t1 for t0, t1 in turns[n])]
        assert cut
        for r in cut:
            assert any(r["startMs"] <= t0 and t1 <= r["endMs"] for t0, t1 in turns[other]), r


AFFINITY = "import os; print(sorted(os.sched_getaffinity(0)))"


def test_cpus_pin_the_child():
    cpus = sorted(os.sched_getaffinity(0))
    rc, out, err, _ = cpu_vs_ort.run_measured([sys.executable, "-c", AFFINITY], cpus=cpus[-1:])
    assert rc == 0, err
    assert out.strip() == str(cpus[-1:])
    rc, out, err, _ = cpu_vs_ort.run_measured([sys.executable, "-c", AFFINITY])
    assert rc == 0, err
    assert out.strip() == str(cpus)


def test_fast_quantile_is_the_tenth_percentile():
    lat = [float(x) for x in range(20, 0, -1)]
    assert cpu_vs_ort.fast_ms(lat) == 2.0
    assert cpu_vs_ort.fast_ms([3.0, 1.5, 9.0]) == 1.5
