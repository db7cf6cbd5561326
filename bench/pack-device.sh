#!/usr/bin/env bash
# Builds the makemore modules at S, L and XL, stores the flat module's loss and gradients beside
# them (the reference the GPU module is checked against there), and packs them with bench/gpu.mjs,
# bench/gpu-matmul.mjs, bench/gpu-examples.mjs (with generated/), bench/device.mjs (with
# bench/report.mjs) and bench/torch_cuda.py for the lent GPU machine (see ../shared/gpu/README.md).
# Then run there (carry [".device"]):
#   source .device/on-device.sh; cd .device/app && node gpu.mjs --mode webgpu --models models; python3 torch_cuda.py
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
mkdir -p "$work/models"
node bench/gpu.mjs --write-ref --models "$work/models"
../shared/gpu/prepare-device.sh bench/gpu.mjs bench/gpu-matmul.mjs bench/gpu-examples.mjs bench/device.mjs bench/report.mjs bench/torch_cuda.py generated "$work/models"
