#!/usr/bin/env python3
"""kiln against ONNX Runtime on the CPU: same models, same machine, one run.

For each model and thread count N, kiln (`kiln bench --threads=N`) and onnxruntime (CPU
execution provider, intra_op_num_threads=N, inter_op_num_threads=1, sequential execution, all
graph optimizations) each run in their own subprocess on the same batch-1 input shape: warm-up,
then timed executions for at least --duration seconds; the median latency is reported. Memory is
measured the same way for both: the subprocess's peak resident set (ru_maxrss from wait4), and
for onnxruntime also its growth over the interpreter's resident set just before the session was
created (the Python interpreter, numpy and onnxruntime's library are not the model's cost).
kiln's own report (latency, activation memory) is kept in the JSON output.

On a shared machine, whose speed drifts by tens of percent over seconds to minutes, --interleave S
runs both engines at once and lets them take turns of S seconds (the other stopped with SIGSTOP):
each turn's executions that ran wholly inside it (`kiln bench --exportTimes` and the worker's own
times) give a median per turn, and the ratio reported is the median over the pairs of turns next to
each other, kiln's and onnxruntime's, so the drift reaches both alike.

Where the cores of one machine differ in speed (a virtual machine whose cores share their physical
cores with other tenants: on the GPU machine's CPU one core's median throughput was 36% above
another's), --cpus pins each engine's process to the first N of the given CPUs for N threads, the
same CPUs for both, so a 1-thread process does not move between a fast core and a slow one. Each
measurement also reports the 10th percentile of its latencies: slowdowns only add time, so where
the host's speed swings within seconds the fast executions still compare the engines themselves.

Models come from models/export_models.py (exported first when OUT/<name>/model.onnx is missing).

    python3 bench/cpu_vs_ort.py --models resnet18,mobilenet_v2,bert_small --threads 1,2
"""
import argparse
import json
import os
import re
import resource
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "models"))
import export_models  # noqa: E402


def torch_python():
    for py in [sys.executable, "/usr/bin/python3"]:
        if subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0:
            return py
    sys.exit("no Python here imports torch: pass --torch-python")


def pin(cpus):
    """The preexec_fn that confines a child to cpus (None: the parent's CPUs)."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def fast_ms(lat):
    """The 10th percentile (nearest rank) of the latencies."""
    return sorted(lat)[(len(lat) - 1) // 10]


def run_measured(cmd, env=None, cpus=None):
    """Runs cmd to completion, confined to cpus when given, and returns (returncode, stdout, stderr,
    peak RSS MiB of that child)."""
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    proc = subprocess.Popen(cmd, stdout=w_out, stderr=w_err, env=env, preexec_fn=pin(cpus))
    os.close(w_out)
    os.close(w_err)
    chunks = {r_out: [], r_err: []}
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(chunks)
    while open_fds:
        for key, _ in sel.select():
            data = os.read(key.fd, 65536)
            if data:
                chunks[key.fd].append(data)
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
                open_fds.discard(key.fd)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, b"".join(chunks[r_out]).decode(), b"".join(chunks[r_err]).decode(),
            ru.ru_maxrss / 1024.0)


# ------------------------------------------------------------------ the onnxruntime worker


def ort_worker(a):
    """In its own process: one onnxruntime session, timed like kiln bench. Prints JSON."""
    import onnxruntime as ort

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    feeds = export_models.make_inputs(a.model, a.batch, 0)
    base = rss_mib()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if a.profile:
        so.enable_profiling = True
        so.profile_file_prefix = a.profile
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    warm = 0
    while (time.perf_counter() - t0) * 1e3 < a.warmup_ms:
        sess.run(None, feeds)
        warm += 1
    lat, starts = [], []
    start = time.perf_counter()
    while time.perf_counter() - start < a.duration or len(lat) < a.iterations:
        t = time.perf_counter()
        starts.append(time.monotonic() * 1e3)
        sess.run(None, feeds)
        lat.append((time.perf_counter() - t) * 1e3)
    prof = sess.end_profiling() if a.profile else None
    if a.times:  # as kiln bench --exportTimes writes them
        with open(a.times, "w") as f:
            json.dump([{"startMs": s, "endMs": s + x, "latencyMs": x} for s, x in zip(starts, lat)], f)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"median_ms": statistics.median(lat), "mean_ms": statistics.fmean(lat), "min_ms": min(lat),
                      "p10_ms": fast_ms(lat),
                      "runs": len(lat), "warmup_runs": warm, "baseline_rss_mib": base, "peak_rss_mib": peak,
                      "ort": ort.__version__, "profile": prof}))


# ------------------------------------------------------------------ kiln


def kiln_shapes(meta, batch):
    return ",".join(f"{i['name']}:" + "x".join(str(batch if s == "batch" else s) for s in i["shape"])
                    for i in meta["inputs"])


def kiln_cmd(a, plan, threads, warmup_ms, duration, times=None):
    return [a.kiln, "bench", f"--loadEngine={plan}", f"--threads={threads}", f"--warmUp={warmup_ms}",
            f"--duration={duration}", f"--iterations={a.iterations}"] + ([f"--exportTimes={times}"] if times else [])


def kiln_report(out, peak):
    med = float(re.search(r"median = ([\d.]+) ms", out).group(1))
    mean = float(re.search(r"mean = ([\d.]+) ms", out).group(1))
    runs = int(re.search(r"Enqueue count: (\d+)", out).group(1))
    act = int(re.search(r"Activation memory: [\d.]+ MiB \((\d+) bytes\)", out).group(1))
    own_peak = float(re.search(r"Peak resident memory: ([\d.]+) MiB", out).group(1))
    return {"median_ms": med, "mean_ms": mean, "runs": runs, "activation_mib": act / 2**20,
            "peak_rss_mib": peak, "reported_peak_rss_mib": own_peak}


def kiln_bench(a, plan, threads):
    with tempfile.TemporaryDirectory() as tmp:
        times = os.path.join(tmp, "kiln.times")
        rc, out, err, peak = run_measured(kiln_cmd(a, plan, threads, a.warmup_ms, a.duration, times),
                                          env=a.kiln_environ, cpus=a.cpus[:threads])
        if rc != 0:
            raise RuntimeError(f"kiln bench failed ({rc}):\n{err}")
        with open(times) as f:
            lat = [r["latencyMs"] for r in json.load(f)]
    return dict(kiln_report(out, peak), p10_ms=fast_ms(lat))


def ort_cmd(a, onnx_path, model, threads, warmup_ms, duration, profile=None, times=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--ort-worker", "--onnx", onnx_path, "--model", model,
           "--threads", str(threads), "--batch", str(a.batch), "--warmup-ms", str(warmup_ms),
           "--duration", str(duration), "--iterations", str(a.iterations)]
    return cmd + (["--profile", profile] if profile else []) + (["--times", times] if times else [])


def ort_report(out, peak):
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_rss_mib"] = peak
    r["rss_growth_mib"] = peak - r["baseline_rss_mib"]
    return r


def ort_bench(a, onnx_path, model, threads, profile=None):
    rc, out, err, peak = run_measured(ort_cmd(a, onnx_path, model, threads, a.warmup_ms, a.duration, profile),
                                      cpus=a.cpus[:threads])
    if rc != 0:
        raise RuntimeError(f"onnxruntime worker failed ({rc}):\n{err}")
    return ort_report(out, peak)


# ------------------------------------------------------------------ both at once, taking turns


def take_turns(procs, turn_s):
    """Runs the started processes by turns of turn_s seconds, the others stopped, until all have exited.
    Returns each one's turns [(start_ms, end_ms)] on time.monotonic() and its (exit code, peak RSS MiB).
    A turn starts before its process is continued and ends once it has stopped: no execution of
    another process falls inside it."""
    names = list(procs)
    turns, ended = {n: [] for n in names}, {}

    def stop(name):
        pid = procs[name].pid
        os.kill(pid, signal.SIGSTOP)
        _, status, ru = os.wait4(pid, os.WUNTRACED)  # until it has stopped, or exited meanwhile
        if not os.WIFSTOPPED(status):
            ended[name] = (os.waitstatus_to_exitcode(status), ru.ru_maxrss / 1024.0)

    for name in names[1:]:
        stop(name)
    i = 0
    while len(ended) < len(names):
        name = names[i % len(names)]
        i += 1
        if name in ended:
            continue
        pid = procs[name].pid
        t0 = time.monotonic()
        if i > 1:
            os.kill(pid, signal.SIGCONT)
        alone = len(ended) == len(names) - 1  # the last one runs to its end
        while alone or time.monotonic() - t0 < turn_s:
            done, status, ru = os.wait4(pid, os.WNOHANG)
            if done:
                ended[name] = (os.waitstatus_to_exitcode(status), ru.ru_maxrss / 1024.0)
                break
            time.sleep(0.002)
        if name not in ended:
            stop(name)
        turns[name].append((t0 * 1e3, time.monotonic() * 1e3))
    return turns, ended


def per_turn(times, turns):
    """Latencies of the executions that ran wholly inside each turn (one in flight when its process was
    stopped is left out: it includes the other's turn)."""
    return [[r["latencyMs"] for r in times if r["startMs"] >= t0 and r["endMs"] <= t1] for t0, t1 in turns]


def interleaved(a, plan, onnx_path, model, threads):
    """kiln and onnxruntime at once, by turns of a.interleave seconds: (kiln, ort, ratios per pair of turns)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {n: os.path.join(tmp, n) for n in ("kiln.times", "ort.times", "kiln.out", "ort.out", "kiln.err",
                                                    "ort.err")}
        # each runs about half the wall time: its warm-up and timed phase are wall clock
        cmds = {"kiln": (kiln_cmd(a, plan, threads, 2 * a.warmup_ms, 2 * a.duration, files["kiln.times"]),
                         a.kiln_environ),
                "ort": (ort_cmd(a, onnx_path, model, threads, 2 * a.warmup_ms, 2 * a.duration,
                                times=files["ort.times"]), None)}
        procs, outs = {}, []
        try:
            for name, (cmd, env) in cmds.items():
                out, err = open(files[f"{name}.out"], "w"), open(files[f"{name}.err"], "w")
                outs += [out, err]
                procs[name] = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, preexec_fn=pin(a.cpus[:threads]))
            turns, ended = take_turns(procs, a.interleave)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
            for f in outs:
                f.close()
        text = {}
        for n in (n for n in files if n.endswith((".out", ".err"))):
            with open(files[n]) as f:
                text[n] = f.read()
        for name, (rc, _) in ended.items():
            if rc != 0:
                raise RuntimeError(f"{name} failed ({rc}):\n{text[name + '.err']}")
        runs = {}
        for name in procs:
            with open(files[f"{name}.times"]) as f:
                runs[name] = per_turn(json.load(f), turns[name])
    k = kiln_report(text["kiln.out"], ended["kiln"][1])
    o = ort_report(text["ort.out"], ended["ort"][1])
    ratios = [statistics.median(x) / statistics.median(y) for x, y in zip(runs["kiln"], runs["ort"]) if x and y]
    if not ratios:
        raise RuntimeError(f"{model}: no turn held a whole execution of both; raise --interleave or --duration")
    for r, name in ((k, "kiln"), (o, "ort")):
        clean = [x for t in runs[name] for x in t]
        r.update(median_ms=statistics.median(clean), mean_ms=statistics.fmean(clean), p10_ms=fast_ms(clean),
                 runs=len(clean), turns=len(turns[name]))
    return k, o, ratios


def ensure_model(a, name):
    d = os.path.join(a.out, name)
    if not os.path.exists(os.path.join(d, "model.onnx")):
        py = a.torch_python or torch_python()
        subprocess.run([py, os.path.join(ROOT, "models", "export_models.py"), "--out", a.out, "--models", name,
                        "--no-reference"] + (["--own"] if a.own else []), check=True)
    if not os.path.exists(os.path.join(d, "meta.json")):
        return None
    with open(os.path.join(d, "meta.json")) as f:
        return json.load(f)


def build_plan(a, meta, d):
    plan = os.path.join(d, f"bench_b{a.batch}.plan")
    s = kiln_shapes(meta, a.batch)
    rc, out, err, _ = run_measured([a.kiln, "build", f"--onnx={d}/model.onnx", f"--saveEngine={plan}", "--device=cpu",
                                    f"--minShapes={s}", f"--optShapes={s}", f"--maxShapes={s}"])
    if rc != 0:
        raise RuntimeError(f"kiln build failed ({rc}):\n{err}")
    return plan


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2,bert_small")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench-models"), help="model directory")
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    ap.add_argument("--torch-python", default=None,
                    help="the Python that exports models (default: the first of this one and /usr/bin/python3 "
                         "that imports torch)")
    ap.add_argument("--own", action="store_true", help="export the torch.nn definitions, not torchvision's")
    ap.add_argument("--duration", type=float, default=5.0, help="timed seconds per measurement")
    ap.add_argument("--warmup-ms", type=float, default=1000)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate kiln and onnxruntime this many times; report the median of the rounds' ratios")
    ap.add_argument("--interleave", type=float, default=0, metavar="S",
                    help="run both at once by turns of S seconds each; report the median of the ratios of "
                         "neighbouring turns (replaces --rounds)")
    ap.add_argument("--cpus", default="", metavar="LIST",
                    help="comma-separated CPUs; with N threads both engines run on the first N of them")
    ap.add_argument("--kiln-env", action="append", default=[], metavar="VAR=VALUE",
                    help="environment for kiln's runs only, e.g. OPENBLAS_CORETYPE=SkylakeX (repeatable)")
    ap.add_argument("--json", help="also write all results here")
    ap.add_argument("--ort-profile", help="write onnxruntime per-node profiles with this prefix")
    # the worker mode
    ap.add_argument("--ort-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--profile", help=argparse.SUPPRESS)
    ap.add_argument("--times", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ort_worker:
        a.threads = int(a.threads)
        return ort_worker(a)

    threads = [int(t) for t in a.threads.split(",")]
    a.cpus = [int(c) for c in a.cpus.split(",") if c]
    if a.cpus and (len(a.cpus) < max(threads) or not set(a.cpus) <= os.sched_getaffinity(0)):
        sys.exit(f"--cpus {a.cpus}: needs at least {max(threads)} of this process's CPUs "
                 f"{sorted(os.sched_getaffinity(0))}")
    a.kiln_environ = dict(os.environ, **dict(kv.split("=", 1) for kv in a.kiln_env))
    rows, results = [], []
    how = (f"by turns of {a.interleave} s" if a.interleave > 0 else f"{a.rounds} alternating round(s)")
    print(f"# {os.uname().nodename}: {os.cpu_count()} CPUs; batch {a.batch}; median of >= {a.duration} s after "
          f"{a.warmup_ms:.0f} ms warm-up, {how}"
          + (f"; kiln env {' '.join(a.kiln_env)}" if a.kiln_env else "")
          + (f"; on CPUs {','.join(map(str, a.cpus))}" if a.cpus else ""), flush=True)
    for name in [m for m in a.models.split(",") if m]:
        meta = ensure_model(a, name)
        if meta is None:
            print(f"{name}: not exported here (needs torchvision / transformers)", flush=True)
            continue
        d = os.path.join(a.out, name)
        plan = build_plan(a, meta, d)
        for n in threads:
            if a.interleave > 0:
                k, o, ratios = interleaved(a, plan, os.path.join(d, "model.onnx"), name, n)
                ks, os_ = [k], [o]
                fast_ratios = [k["p10_ms"] / o["p10_ms"]]
            else:
                # Alternate the two engines, each round in the other order; the ratio reported is
                # the median of the rounds' ratios, so a slow spell on a shared machine, which lasts
                # a round or two, moves neither engine's figure alone.
                ks, os_ = [], []
                for r in range(a.rounds):
                    profile = f"{a.ort_profile}_{name}_t{n}" if a.ort_profile and r == 0 else None
                    for engine in ("kiln", "ort") if r % 2 == 0 else ("ort", "kiln"):
                        if engine == "kiln":
                            ks.append(kiln_bench(a, plan, n))
                        else:
                            os_.append(ort_bench(a, os.path.join(d, "model.onnx"), name, n, profile))
                ratios = [x["median_ms"] / y["median_ms"] for x, y in zip(ks, os_)]
                fast_ratios = [x["p10_ms"] / y["p10_ms"] for x, y in zip(ks, os_)]
            k = dict(min(ks, key=lambda x: x["median_ms"]), rounds_median_ms=[x["median_ms"] for x in ks])
            o = dict(min(os_, key=lambda x: x["median_ms"]), rounds_median_ms=[x["median_ms"] for x in os_])
            ratio, fast_ratio = statistics.median(ratios), statistics.median(fast_ratios)
            results.append({"model": name, "impl": meta["impl"], "threads": n, "kiln": k, "ort": o,
                            "round_ratios": ratios, "ratio": ratio, "round_p10_ratios": fast_ratios,
                            "p10_ratio": fast_ratio})
            rows.append((name, n, k["median_ms"], o["median_ms"], ratio, min(ratios), max(ratios), fast_ratio,
                         k["peak_rss_mib"], k["activation_mib"], o["peak_rss_mib"], o["rss_growth_mib"]))
            print(f"  {name} t={n}: kiln {k['median_ms']:.3f} ms ({k['runs']} runs), onnxruntime {o['median_ms']:.3f} ms "
                  f"({o['runs']} runs); " + ("turn" if a.interleave > 0 else "round") + " ratios "
                  + " ".join(f"{x:.3f}" for x in ratios), flush=True)
    hdr = ("model", "thr", "kiln ms", "ORT ms", "kiln/ORT", "round range", "p10 ratio", "kiln RSS", "kiln act",
           "ORT RSS", "ORT dRSS")
    print("\n| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f}-{r[6]:.2f} | {r[7]:.2f} | "
              f"{r[8]:.0f} MiB | {r[9]:.1f} MiB | {r[10]:.0f} MiB | {r[11]:.0f} MiB |")
    if a.interleave > 0:
        print("\nkiln ms, ORT ms: the median of each one's executions that ran wholly inside its turns. kiln/ORT: "
              "the median over neighbouring pairs of turns of kiln's median / ORT's median (> 1: kiln is slower); "
              "round range: the lowest and highest of those; p10 ratio: kiln's 10th-percentile latency over "
              "those executions / ORT's.", end=" ")
    else:
        print("\nkiln ms, ORT ms: each one's best median over the rounds. kiln/ORT: the median over the rounds of "
              "kiln's median / ORT's median in the same round (> 1: kiln is slower); round range: the lowest and "
              "highest of those; p10 ratio: the same median for the 10th-percentile latencies.", end=" ")
    print("RSS: peak resident set of each subprocess (wait4); kiln act: kiln's activation "
          "arena; ORT dRSS: ORT's peak over its interpreter before the session was created.")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
