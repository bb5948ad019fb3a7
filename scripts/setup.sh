#!/usr/bin/env bash
# Installs what kiln needs to build and test on Debian: compilers, CMake, Ninja, OpenBLAS, and
# the Python packages the tests compare against. Skips what is already there.
set -euo pipefail

need_apt=()
for pkg in build-essential cmake ninja-build libopenblas-dev python3 python3-pip clang libclang-rt-14-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PyTorch (CPU) for the model tests (tests/models), which export real models with
# torch.onnx.export. Debian's package serves /usr/bin/python3; PyPI's torch wheel would pull GBs
# of CUDA libraries.
if ! dpkg -s python3-torch >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  [ ${#need_apt[@]} -gt 0 ] || $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
fi

if ! python3 -c 'import onnx, onnxruntime, numpy, pytest' >/dev/null 2>&1; then
  python3 -m pip install -q onnx onnxruntime numpy pytest 2>/dev/null ||
    python3 -m pip install -q --break-system-packages onnx onnxruntime numpy pytest
fi
