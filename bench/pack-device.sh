#!/usr/bin/env bash
# Builds the makemore modules at S, L and XL, stores the flat module's loss and gradients beside
# them (the reference the GPU module is checked against there), and packs them with bench/gpu.mjs,
# bench/gpu-matmul.mjs (with bench/dawn.mjs), bench/gpu-examples.mjs (with generated/) and
# bench/torch_cuda.py for the lent GPU machine (see ../shared/gpu/README.md).
# Then run there (carry [".device"]):
#   source .device/on-device.sh; cd .device/app && node gpu.mjs --mode webgpu --models models; python3 torch_cuda.py
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
mkdir -p "$work/models"
node -e "
const { spawnSync } = require('node:child_process'); const fs = require('node:fs');
const sizes = { S: [32,3,10,64,27], L: [256,3,64,1024,27], XL: [4096,3,128,4096,27] };
for (const [s, [batch, block, nEmbd, nHidden, vocab]] of Object.entries(sizes)) {
  const src = '$work/makemore_' + s + '.ts';
  fs.writeFileSync(src, 'import { makemore } from ' + JSON.stringify(process.cwd() + '/examples/makemore.ts') + ';\nexport default makemore(' + JSON.stringify({ batch, block, nEmbd, nHidden, vocab }) + \", 'makemore_\" + s + \"');\n\");
  const r = spawnSync(process.execPath, ['bin/graphc.js', 'build', src, '--out', '$work/models/' + s], { stdio: 'inherit' });
  if (r.status) process.exit(r.status);
}"
node bench/gpu.mjs --write-ref --models "$work/models"
../shared/gpu/prepare-device.sh bench/gpu.mjs bench/gpu-matmul.mjs bench/gpu-examples.mjs bench/dawn.mjs bench/torch_cuda.py generated "$work/models"
