#!/usr/bin/env bash
# The main job: build kiln, bake the bundled model into an engine plan, run it and time it.
# kiln picks the GPU when one is present and the CPU otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
./build/kiln build --onnx=models/demo_cnn.onnx --saveEngine=build/demo_cnn.plan \
  --minShapes=image:1x3x32x32 --optShapes=image:8x3x32x32 --maxShapes=image:32x3x32x32
./build/kiln inspect --loadEngine=build/demo_cnn.plan
./build/kiln run --loadEngine=build/demo_cnn.plan --shapes=image:4x3x32x32 --exportOutput=build/demo_out
./build/kiln bench --loadEngine=build/demo_cnn.plan --shapes=image:1x3x32x32 --duration=2
