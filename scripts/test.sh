#!/usr/bin/env bash
# The whole test suite: a release build with every CTest test (unit, conformance, CLI,
# models), a short libFuzzer run over the ONNX reader/importer/builder, then the whole suite
# again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")

# The libFuzzer target over the ONNX reader, importer and builder, run briefly.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DKILN_FUZZ=ON -DKILN_CUDA=OFF >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz_onnx
(cd build-fuzz && ctest --output-on-failure -R fuzz_onnx_smoke)

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON -DKILN_CUDA=OFF >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ctest --output-on-failure -j "$jobs")
