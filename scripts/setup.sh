#!/usr/bin/env bash
# Installs what kiln needs on Debian, skipping what is already there (so it also runs on
# machines where nothing can be installed but everything is present).
#   setup.sh build   compilers, CMake, Ninja, OpenBLAS: enough to build and run kiln
#   setup.sh test    (default) also clang + libFuzzer, Python with onnx/onnxruntime/numpy/pytest,
#                    and Debian's CPU PyTorch for exporting the real models the tests compare
set -euo pipefail
mode=${1:-test}

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v ninja >/dev/null 2>&1 || need_apt+=(ninja-build)
{ have_lib libopenblas.so && [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] ||
  [ -e /usr/include/openblas/cblas.h ]; } || need_apt+=(libopenblas-dev)
if [ "$mode" = test ]; then
  command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
  command -v clang >/dev/null 2>&1 || need_apt+=(clang)
  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need_apt+=(libclang-rt-14-dev)
  # PyTorch (CPU) exports the real models in tests/models. Debian's package serves
  # /usr/bin/python3; PyPI's torch wheel would pull GBs of CUDA libraries.
  /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need_apt+=(python3-torch)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "$mode" = test ] && ! python3 -c 'import onnx, onnxruntime, numpy, pytest' >/dev/null 2>&1; then
  python3 -m pip install -q onnx onnxruntime numpy pytest 2>/dev/null ||
    python3 -m pip install -q --break-system-packages onnx onnxruntime numpy pytest
fi
