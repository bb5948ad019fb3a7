#!/usr/bin/env bash
# One call on the GPU machine: configure and build kiln with CUDA (Release), run every test
# (the CUDA layer tests included), then a quick benchmark of models/demo_cnn.onnx on the GPU and
# the CPU. Logs go to $OUT (or bench/gpu-check-out); a short table is printed last.
#   usage: bench/gpu-check.sh            (BUILD=dir to choose the build folder)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/gpu-check-out}
BUILD=${BUILD:-/tmp/kiln-gpu-build}
mkdir -p "$OUT"
declare -a ROWS

row() { ROWS+=("$(printf '%-28s %s' "$1" "$2")"); }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$OUT/gpu.txt" 2>&1
row "gpu" "$(head -1 "$OUT/gpu.txt")"

t0=$(date +%s)
if cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=ON >"$OUT/configure.log" 2>&1 &&
    ninja -C "$BUILD" -k 0 >"$OUT/build.log" 2>&1; then
    row "build" "ok ($(($(date +%s) - t0)) s)"
else
    row "build" "FAILED (see build.log: $(grep -m1 -E 'error|FAILED' "$OUT/build.log" "$OUT/configure.log" | cut -c1-120))"
fi

if [ -x "$BUILD/kiln" ]; then # cuDNN and cuBLASLt are loaded on first CUDA use, not linked
    row "kiln links CUDA libs" "$(ldd "$BUILD/kiln" | grep -oE 'lib(cudnn|cublasLt|cudart|nvrtc)[^ ]*' | tr '\n' ' ' || true)(none expected)"
fi
if [ -x "$BUILD/tests/test_cuda_layers" ]; then
    "$BUILD/tests/test_cuda_layers" >"$OUT/test_cuda_layers.log" 2>&1
    row "test_cuda_layers" "$(tail -1 "$OUT/test_cuda_layers.log")"
fi
if [ -f "$BUILD/CTestTestfile.cmake" ]; then
    ctest --test-dir "$BUILD" --output-on-failure -j 8 --timeout 300 >"$OUT/ctest.log" 2>&1
    row "ctest" "$(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)"
    grep -E '^\s+[0-9]+ - ' "$OUT/ctest.log" | sed 's/^/    failed: /' >"$OUT/ctest_failed.txt"
fi

MODEL="$ROOT/models/demo_cnn.onnx"
if [ -x "$BUILD/kiln" ] && [ -f "$MODEL" ]; then
    for dev in cuda cpu; do
        "$BUILD/kiln" bench --onnx="$MODEL" --device=$dev --duration=2 >"$OUT/bench_$dev.log" 2>&1
        rc=$?
        line=$(grep -iE 'throughput|mean' "$OUT/bench_$dev.log" | head -2 | tr -s ' ' | tr '\n' ';')
        row "bench demo_cnn $dev" "$([ $rc -eq 0 ] && echo "$line" || echo "FAILED rc=$rc: $(tail -1 "$OUT/bench_$dev.log" | cut -c1-120)")"
    done
else
    row "bench demo_cnn" "skipped (no kiln tool or model)"
fi

# CPU_VS_ORT=resnet50,mobilenet_v2,bert_base: kiln against ONNX Runtime on two pinned cores
# of this machine (the torchvision/transformers models), batch 1, 1 and 2 threads.
if [ -n "${CPU_VS_ORT:-}" ] && [ -x "$BUILD/kiln" ]; then
    taskset -c 0,1 python3 "$ROOT/bench/cpu_vs_ort.py" --kiln "$BUILD/kiln" --out "$OUT/cpu-models" \
        --torch-python "$(command -v python3)" --models "$CPU_VS_ORT" --threads 1,2 --duration "${CPU_VS_ORT_SECONDS:-3}" --rounds "${CPU_VS_ORT_ROUNDS:-2}" \
        --json "$OUT/cpu_vs_ort.json" \
        >"$OUT/cpu_vs_ort.log" 2>&1
    row "cpu vs ort" "rc=$? (table in cpu_vs_ort.log)"
fi

echo
echo "==== gpu-check summary (logs in $OUT) ===="
grep -E 'ok$|FAILED$' "$OUT/test_cuda_layers.log" 2>/dev/null | grep FAILED | sed 's/^/  cuda case /'
cat "$OUT/ctest_failed.txt" 2>/dev/null
[ -f "$OUT/cpu_vs_ort.log" ] && tail -n 25 "$OUT/cpu_vs_ort.log"
for r in "${ROWS[@]}"; do echo "$r"; done
